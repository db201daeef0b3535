"""The one atomic file writer: a reader never sees half a file.

Models in the cache, saved model files and reports are written through a temporary file in
the destination folder, flushed to disk, then renamed over the final name (``os.replace``
is atomic on POSIX and Windows). A run killed at any moment leaves the old file or the new
one, never a torn one, and another process sharing the folder sees the same.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(final: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary path next to ``final``, then move it into place.

    The folder of ``final`` must exist. On any exception (including KeyboardInterrupt) the
    temporary file is removed and ``final`` is untouched.
    """
    final = Path(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
