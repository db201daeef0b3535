"""Read the CIFAR python pickles without letting them run code.

The official CIFAR-10 / CIFAR-100 "python version" files are pickles. A plain
``pickle.load`` calls whatever callables the file names (``os.system`` included), so a
tampered download would run code on the auditor's machine. The unpickler below resolves
only the handful of globals those files need to rebuild NumPy arrays; any other global is
refused with the name it asked for, before anything is called.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from miaudit.errors import DataNotFoundError, InvalidAuditInput

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "load_restricted_pickle"]

#: ``(module, name)`` pairs a CIFAR pickle may refer to. NumPy moved ``core`` to ``_core``
#: in 2.0, so files written by either generation name one of the two ``_reconstruct``s.
#: ``_codecs.encode`` and ``bytes`` are how Python 3 stores ``bytes`` in protocols 0-2
#: (``bytes`` under its Python 2 module name there); both only build byte strings. Dicts,
#: lists, ints and strings need no global at all.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("builtins", "bytes"),
        ("__builtin__", "bytes"),
        ("_codecs", "encode"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`.

    A pickle can only call (REDUCE, NEWOBJ) or rebuild (BUILD) objects it has first named,
    and names reach the unpickler through ``find_class``, so refusing there refuses before
    anything runs. (The other route, copyreg's extension codes, is empty unless a program
    registers codes.) Persistent ids are refused by the base class, which has no
    ``persistent_load``.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise InvalidAuditInput(
                f"refusing to load {module}.{name} from a pickle: only NumPy array "
                "reconstruction is allowed in a data file (it may have been tampered with)"
            )
        return super().find_class(module, name)


def load_restricted_pickle(path: str | os.PathLike[str], *, encoding: str = "bytes") -> Any:
    """Unpickle a data file with :class:`RestrictedUnpickler`.

    Parameters
    ----------
    path : str or path-like
        The pickle file.
    encoding : str
        How Python 2 strings are decoded. The CIFAR files were written by Python 2 and hold
        raw pixel bytes, so ``"bytes"`` (the loading recipe the CIFAR page gives) keeps
        them intact; their dict keys then come back as ``bytes`` too.

    Returns
    -------
    object
        Whatever the file held (for CIFAR, a dict).

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    InvalidAuditInput
        If the file names a global outside the allow-list, or is not a readable pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"pickle file {str(path)!r} does not exist")
    try:
        with path.open("rb") as stream:
            return RestrictedUnpickler(stream, encoding=encoding).load()
    except InvalidAuditInput as exc:
        raise InvalidAuditInput(f"{path}: {exc}") from None
    except Exception as exc:  # a corrupt pickle can fail in many ways; all mean "bad file"
        raise InvalidAuditInput(
            f"{path}: not a readable pickle ({type(exc).__name__}: {exc})"
        ) from None
