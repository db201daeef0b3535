"""Type predicates shared by the parameter checks at miaudit's boundaries.

Booleans are integers to Python, but ``n_shadow=True`` or ``epochs=False`` is a mistake, not
a count: both predicates refuse them (and NumPy's booleans), and accept NumPy numbers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

#: Largest epoch count, batch size, step size or shard count a setting accepts: a typo
#: (1e20) is refused instead of running until killed.
MAX_COUNT = 1_000_000

#: Largest learning rate accepted: far above any that trains (SGD diverges well below) and
#: far below float32's range, so a typo (1e300) is refused instead of overflowing mid-run.
MAX_LR = 1_000.0


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a boolean."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    """A finite real number (Python or NumPy), not a boolean."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(float(value))
    )


def check_writable_dir(path: Any, field: str) -> None:
    """Refuse, before any work, a folder that cannot be created or written.

    ``path`` may not exist yet (it is created later); then its nearest existing ancestor
    must be a writable folder. Raises :class:`~miaudit.errors.InvalidAuditInput` naming
    ``field``.
    """
    import os
    from pathlib import Path

    from miaudit.errors import InvalidAuditInput

    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise InvalidAuditInput(f"{field}: {str(target)!r} exists and is not a folder")
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InvalidAuditInput(
            f"{field}: {str(target)!r} cannot be created: {str(probe)!r} is a file"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InvalidAuditInput(f"{field}: {str(probe)!r} is not writable")
    # Permission bits do not tell everything (root, read-only mounts, /proc): write a file.
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".miaudit-probe-", dir=probe)
    except OSError as error:
        raise InvalidAuditInput(
            f"{field}: nothing can be written under {str(probe)!r} ({error.strerror})"
        ) from None
    os.close(fd)
    os.unlink(name)


def check_readable_file(path: Any, field: str) -> None:
    """Refuse, before any work, a path that is missing, a folder, or unreadable.

    Raises :class:`~miaudit.errors.DataNotFoundError` when nothing is there and
    :class:`~miaudit.errors.InvalidAuditInput` otherwise, naming ``field``.
    """
    import os
    from pathlib import Path

    from miaudit.errors import DataNotFoundError, InvalidAuditInput

    target = Path(path).expanduser()
    if not target.exists():
        raise DataNotFoundError(f"{field}: {str(target)!r} does not exist")
    if target.is_dir():
        raise InvalidAuditInput(f"{field}: {str(target)!r} is a folder, not a file")
    if not os.access(target, os.R_OK):
        raise InvalidAuditInput(f"{field}: {str(target)!r} is not readable")


def is_torchscript_file(path: Any) -> bool:
    """Whether a model file is TorchScript (``torch.jit.save``): named ``.ts`` or
    ``.torchscript``, or a ``.pt``/``.pth`` that is a zip whose entries include compiled
    ``code/`` (TorchScript files are often named like weights files)."""
    import zipfile
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    if suffix in (".ts", ".torchscript"):
        return True
    if suffix not in (".pt", ".pth"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
