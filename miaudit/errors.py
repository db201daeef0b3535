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
    "UserCodeError",
]


class InvalidAuditInput(ValueError):
    """The user's input (arrays, files, configuration) cannot be audited as given."""


class DataNotFoundError(InvalidAuditInput):
    """A data set or file the audit needs is not where we looked; the message says where."""


class AccessLevelError(InvalidAuditInput):
    """An attack asked a target for more than its declared access level allows."""


class UntrustedFileError(InvalidAuditInput):
    """A model file would need unsafe deserialisation that the user did not allow."""


class UserCodeError(RuntimeError):
    """The user's training code raised, or returned something that is not a model. Its own
    exception is the ``__cause__`` (the command line shows its traceback: it is the user's
    code); the message names the model and seed."""


def raise_if_problems(owner: str, problems: list[str]) -> None:
    """Raise one ``InvalidAuditInput`` listing every problem found, or do nothing.

    Gathering all problems before raising (as Opacus' ModuleValidator does) saves the
    user a fix-run-fix loop.
    """
    if problems:
        raise InvalidAuditInput(f"{owner}: " + "; ".join(problems))


def untrusted_program_message(name: str, kind: str) -> str:
    """Why a model file that is a program is refused, and the safe ways out."""
    return (
        f"model file {name!r} is {kind}, which is a program: loading or calling it can run "
        "code on this machine (read or write files, start processes). miaudit opens it only "
        "when you say you trust its author: pass --trust-model-code (trust_pickle=True in "
        "Python). Or convert the model to a format that is data: its state_dict saved by "
        "miaudit.models.save_torch_model for an architecture in the registry "
        "(miaudit.models.register_architecture for your own class), or ONNX "
        "(torch.onnx.export), which onnxruntime runs without Python code"
    )
