"""Where the benchmark data sets live on disk.

miaudit never downloads anything: the benchmark ``.npz`` files are expected in a data
directory that the user names, or in the ``shared/data`` folder that sits beside a checkout
of the repository. This module decides which directory that is, and says exactly where it
looked when it finds none.
"""

from __future__ import annotations

import os
from pathlib import Path

from miaudit.errors import DataNotFoundError

__all__ = ["DATA_DIR_ENV", "default_data_dirs", "resolve_data_dir"]

#: Environment variable naming the data directory (used when no ``data_dir`` is passed).
DATA_DIR_ENV = "MIAUDIT_DATA"

_HOW_TO_FIX = (
    f"pass --data-dir DIR on the command line (data_dir=... in Python) or set {DATA_DIR_ENV}=DIR "
    "to the folder that holds mnist.npz, fashion_mnist.npz, cifar10_jpeg.npz and location.npz"
)


def _checkout_root() -> Path:
    """The folder that holds the ``miaudit`` package (the repository root in a checkout)."""
    import miaudit  # local import: the package is fully initialised by the time this runs

    return Path(miaudit.__file__).resolve().parents[1]


def default_data_dirs() -> list[Path]:
    """The places searched, in order, when neither ``data_dir`` nor the environment says.

    Returns
    -------
    list of Path
        ``shared/data`` beside the checkout, then ``shared/data`` beside the working
        directory; duplicates removed. The second one helps when miaudit is installed
        into site-packages but run from inside a checkout.
    """
    candidates = [
        _checkout_root().parent / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
    ]
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def _require_dir(path: Path, origin: str) -> Path:
    if not path.exists():
        raise DataNotFoundError(
            f"data directory {str(path)!r} given by {origin} does not exist; {_HOW_TO_FIX}"
        )
    if not path.is_dir():
        raise DataNotFoundError(
            f"data directory {str(path)!r} given by {origin} is not a directory; {_HOW_TO_FIX}"
        )
    return path


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Find the directory holding the benchmark data files.

    The order is: the explicit ``data_dir``, then the ``MIAUDIT_DATA`` environment variable,
    then :func:`default_data_dirs`. A directory that the user *named* (argument or
    environment) but that does not exist is an error rather than a reason to fall through
    to the defaults: silently auditing other data than the user asked for would be worse
    than stopping.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Directory given by the caller (``--data-dir`` on the command line). ``~`` is
        expanded. An empty ``MIAUDIT_DATA`` counts as unset.

    Returns
    -------
    Path
        An existing directory (not resolved further, so messages show what the user wrote).

    Raises
    ------
    DataNotFoundError
        When the named directory is missing, or when none is named and no default exists;
        the message lists every place looked at and how to point miaudit at the data.
    """
    if data_dir is not None:
        return _require_dir(Path(data_dir).expanduser(), "data_dir (--data-dir)")
    from_env = os.environ.get(DATA_DIR_ENV, "")
    if from_env:
        return _require_dir(Path(from_env).expanduser(), f"the {DATA_DIR_ENV} environment variable")
    looked = default_data_dirs()
    for path in looked:
        if path.is_dir():
            return path
    places = ", ".join(repr(str(p)) for p in looked)
    raise DataNotFoundError(
        f"no data directory found: --data-dir was not given, {DATA_DIR_ENV} is not set, and "
        f"none of the default places exists ({places}); {_HOW_TO_FIX}"
    )
