"""The one atomic file writer: a reader never sees half a file.

Models in the cache, saved model files and reports are written through a temporary file in
the destination folder, flushed to disk, then renamed over the final name (``os.replace``
is atomic on POSIX and Windows). A run killed at any moment leaves the old file or the new
one, never a torn one, and another process sharing the folder sees the same.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "disk_full", "disk_full_error"]


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
    except Exception as error:
        tmp.unlink(missing_ok=True)
        if disk_full(error, final.parent):
            raise disk_full_error(
                final.parent,
                f"while writing {final.name!r}",
                advice="free some space or point the cache (MIAUDIT_CACHE, "
                "references.cache_dir) or --out elsewhere",
            ) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Below this many free bytes, a failed write is taken for a full disk: libraries that
#: write through their own streams (``torch.save``) report it as an iostream error, not
#: as ``ENOSPC``.
_NEARLY_FULL = 1 << 20


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether ``error``, raised while writing into ``folder``, means the disk is full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL
    except OSError:
        return False


def disk_full_error(
    folder: Path, doing: str, *, advice: str, need_bytes: int | None = None
) -> Exception:
    """The one message for a full disk: the folder, what was being written, the space
    needed (where known) and free, and what to do."""
    from miaudit.errors import InvalidAuditInput

    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    need = "" if need_bytes is None else f"about {need_bytes / 2**20:.1f} MiB needed, "
    return InvalidAuditInput(
        f"no space left on the device of {str(folder)!r} {doing} ({need}{free}); {advice}"
    )
