"""Exceptions raised by miaudit.

Every error caused by what the user gave us (a file, a config field, an array) is an
``InvalidAuditInput``, a ``ValueError`` subclass, so library callers can catch it like any
bad argument and the command line can map it to exit status 2 without a traceback.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError

__all__ = [
    "AccessLevelError",
    "DataNotFoundError",
    "InvalidAuditInput",
    "NotFittedError",
    "UntrustedFileError",
]


class InvalidAuditInput(ValueError):
    """The user's input (arrays, files, configuration) cannot be audited as given."""


class DataNotFoundError(InvalidAuditInput):
    """A data set or file the audit needs is not where we looked; the message says where."""


class AccessLevelError(InvalidAuditInput):
    """An attack asked a target for more than its declared access level allows."""


class UntrustedFileError(InvalidAuditInput):
    """A model file would need unsafe deserialisation that the user did not allow."""


def raise_if_problems(owner: str, problems: list[str]) -> None:
    """Raise one ``InvalidAuditInput`` listing every problem found, or do nothing.

    Gathering all problems before raising (as Opacus' ModuleValidator does) saves the
    user a fix-run-fix loop.
    """
    if problems:
        raise InvalidAuditInput(f"{owner}: " + "; ".join(problems))
