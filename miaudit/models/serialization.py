"""Saving and loading models without running code from the file.

A model file handed to an auditor is untrusted input. Unpickling runs arbitrary code, so:

* PyTorch models are saved as plain data (a dict of strings, numbers, tuples and tensors)
  and loaded with ``torch.load(..., weights_only=True)``, which refuses anything else;
  the network is then rebuilt from the architecture registry.
* scikit-learn models go through ``skops.io``, which loads only types the caller trusts.
  Raw pickle or joblib files, TorchScript and ``torch.export`` archives (programs) are
  opened only when the user says so (``trust_pickle``; ``--trust-model-code`` on the
  command line, ``--trust-pickle`` its older name).
"""

from __future__ import annotations

import os
import pickle
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from miaudit.atomic import atomic_write
from miaudit.errors import (
    DataNotFoundError,
    InvalidAuditInput,
    UntrustedFileError,
    raise_if_problems,
    untrusted_program_message,
)
from miaudit.models.architectures import build_model, resolve_arch_params

__all__ = [
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "load_exported_program",
    "load_sklearn_model",
    "load_torch_model",
    "load_torchscript_model",
    "save_sklearn_model",
    "save_torch_model",
]

FORMAT_TAG = "miaudit.torch_model"
FORMAT_VERSION = 1
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_MAX_LISTED = 5


def _existing_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        where = "is a directory" if p.is_dir() else "does not exist"
        raise DataNotFoundError(f"{what} file {str(p)!r} {where}")
    return p


def _atomic_write(path: Path, write: Any) -> None:
    """:func:`miaudit.atomic.atomic_write`, with a clear error when the folder is missing."""
    if not path.parent.is_dir():
        raise DataNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} missing")
    atomic_write(path, lambda tmp: write(str(tmp)))


def _state_dict_problems(model: nn.Module, state: Mapping[str, Any]) -> list[str]:
    """Missing, unexpected and mis-shaped entries, named, instead of torch's long message."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems: list[str] = []
    bad_type = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in set(expected) & set(state)
        if isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != expected[k]
    )
    for label, items in (
        ("entries that are not tensors", bad_type),
        ("missing weights", missing),
        ("unexpected weights", unexpected),
        ("weights of the wrong shape", shapes),
    ):
        if items:
            more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:_MAX_LISTED])}{more}")
    return problems


def save_torch_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    architecture: str,
    arch_params: Mapping[str, Any] | None,
    input_shape: tuple[int, ...],
    n_classes: int,
) -> None:
    """Write a model as plain data that :func:`load_torch_model` can rebuild safely.

    The file holds ``{"format", "version", "architecture", "arch_params", "input_shape",
    "n_classes", "state_dict"}`` with CPU tensors; ``torch.load(path, weights_only=True)``
    reads it. The metadata are checked against the weights before writing, so a file that
    cannot be loaded back is never written.

    Raises
    ------
    InvalidAuditInput
        Unknown architecture, bad parameters, or weights that do not fit the described
        architecture.
    DataNotFoundError
        The destination folder does not exist.
    """
    target = Path(path)
    params = resolve_arch_params(architecture, arch_params)
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        skeleton = build_model(
            architecture, input_shape=tuple(input_shape), n_classes=n_classes, **params
        )
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    raise_if_problems(
        f"save_torch_model {target.name!r}: the model is not a {architecture!r}",
        _state_dict_problems(skeleton, state),
    )
    payload = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "architecture": architecture,
        "arch_params": params,
        "input_shape": tuple(int(s) for s in input_shape),
        "n_classes": int(n_classes),
        "state_dict": state,
    }
    _atomic_write(target, lambda tmp: torch.save(payload, tmp))


_OBJECT_REFUSALS = ("GLOBAL", "Can only create new object", "Can only build")


def _read_weights_only(p: Path) -> Any:
    try:
        return torch.load(p, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        # torch wraps the unpickler's own reason in a long explanation; keep the reason.
        reason = next((ln for ln in lines if any(k in ln for k in _OBJECT_REFUSALS)), "")
        if reason:
            raise UntrustedFileError(
                f"model file {p.name!r} contains pickled Python objects, not only weights "
                f"({reason}); loading it could run arbitrary code, so miaudit refuses. Save "
                "the weights with miaudit.models.save_torch_model, or "
                "torch.save(model.state_dict(), path)"
            ) from None
        after = [i + 1 for i, ln in enumerate(lines) if "WeightsUnpickler error" in ln]
        detail = lines[after[0]] if after and after[0] < len(lines) else lines[0] if lines else ""
        raise InvalidAuditInput(
            f"model file {p.name!r} is not a PyTorch file that can be read safely "
            f"(weights-only loader: {detail})"
        ) from None
    except Exception as exc:  # torch raises KeyError, RuntimeError, EOFError... on junk
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InvalidAuditInput(
            f"model file {p.name!r} is not a PyTorch file that can be read "
            f"({type(exc).__name__}: {first})"
        ) from None


def load_torch_model(
    path: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    arch_params: Mapping[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a file without executing anything stored in it.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save_torch_model`, or a bare ``state_dict`` saved with
        ``torch.save(model.state_dict(), path)``.
    architecture, arch_params, input_shape, n_classes : optional
        Required for a bare ``state_dict``, which does not say what network it belongs
        to. For a miaudit file they may be given as a check and must then agree with it.

    Returns
    -------
    model : torch.nn.Module
        On the CPU, in eval mode, with every weight loaded (``strict=True``).
    metadata : dict
        ``architecture``, ``arch_params`` (resolved), ``input_shape``, ``n_classes`` and
        ``format`` (``FORMAT_TAG`` or ``"state_dict"``).

    Raises
    ------
    DataNotFoundError
        No such file.
    UntrustedFileError
        The file holds pickled objects that ``weights_only`` loading refuses (a whole
        pickled model, a custom class): the payload is never executed.
    InvalidAuditInput
        Not a PyTorch file, not our format and no description given, unknown
        architecture, or weights that do not match it. The message names the file.
    """
    p = _existing_file(path, "model")
    obj = _read_weights_only(p)
    given = {
        "architecture": architecture,
        "arch_params": arch_params,
        "input_shape": input_shape,
        "n_classes": n_classes,
    }
    owner = f"model file {p.name!r}"
    problems: list[str] = []

    if isinstance(obj, Mapping) and obj.get("format") == FORMAT_TAG:
        if obj.get("version") != FORMAT_VERSION:
            raise InvalidAuditInput(
                f"{owner}: format version {obj.get('version')!r} is not supported "
                f"(this miaudit reads version {FORMAT_VERSION})"
            )
        meta = {k: obj.get(k) for k in given}
        state = obj.get("state_dict")
        for key, value in given.items():
            if value is None:
                continue
            stored = meta[key]
            if key == "arch_params":
                agrees = _resolved_or_none(meta["architecture"], value) == _resolved_or_none(
                    meta["architecture"], stored
                )
            elif key == "input_shape":
                agrees = isinstance(value, (list, tuple)) and isinstance(stored, (list, tuple))
                agrees = agrees and tuple(value) == tuple(stored)
            else:
                agrees = value == stored
            if not agrees:
                problems.append(f"{key} is {stored!r} in the file but {value!r} was given")
        fmt = FORMAT_TAG
    elif isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj):
        state = obj
        missing = [k for k in ("architecture", "input_shape", "n_classes") if given[k] is None]
        if missing:
            raise InvalidAuditInput(
                f"{owner} holds bare weights without a description of the network; pass "
                f"{', '.join(missing)} (or save it with miaudit.models.save_torch_model)"
            )
        meta = dict(given)
        fmt = "state_dict"
    else:
        raise InvalidAuditInput(
            f"{owner} is neither a miaudit model file nor a state_dict "
            f"(it holds a {type(obj).__name__})"
        )
    if not isinstance(state, Mapping):
        problems.append(f"state_dict is a {type(state).__name__}, not a dict of tensors")
    params = meta["arch_params"]
    if params is not None and (
        not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params)
    ):
        problems.append(f"arch_params must be a dict with str keys, got {params!r}")
        params = None
    shape = meta["input_shape"]
    model = None
    try:
        model = build_model(
            meta["architecture"],
            input_shape=tuple(shape) if isinstance(shape, (list, tuple)) else shape,
            n_classes=meta["n_classes"],
            **dict(params or {}),
        )
    except InvalidAuditInput as exc:
        problems.append(str(exc))
    raise_if_problems(owner, problems)
    assert model is not None and isinstance(state, Mapping)
    raise_if_problems(
        f"{owner}: weights do not match {meta['architecture']!r}",
        _state_dict_problems(model, state),
    )
    model.load_state_dict(state, strict=True)
    model.eval()
    meta["arch_params"] = resolve_arch_params(meta["architecture"], params)
    meta["input_shape"] = tuple(int(s) for s in shape)
    meta["format"] = fmt
    return model, meta


def _resolved_or_none(architecture: Any, params: Any) -> dict[str, Any] | None:
    try:
        return resolve_arch_params(architecture, params)
    except (InvalidAuditInput, TypeError, ValueError):
        return None


def save_sklearn_model(path: str | os.PathLike[str], estimator: Any) -> None:
    """Write a scikit-learn estimator with ``skops.io.dump`` (conventionally ``.skops``).

    skops files can be inspected and loaded without unpickling arbitrary objects, unlike
    pickle or joblib files.
    """
    import skops.io as sio

    target = Path(path)
    try:
        _atomic_write(target, lambda tmp: sio.dump(estimator, tmp))
    except (TypeError, NotImplementedError) as exc:
        raise InvalidAuditInput(
            f"save_sklearn_model {target.name!r}: skops cannot store this "
            f"{type(estimator).__name__} ({exc})"
        ) from None


def load_sklearn_model(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Any:
    """Load a scikit-learn model, running no code the user has not trusted.

    Parameters
    ----------
    path : path-like
        ``.skops`` (preferred), or ``.pkl`` / ``.pickle`` / ``.joblib``.
    trust_pickle : bool
        For ``.skops``: also load the types skops does not trust by default. For pickle and
        joblib files: allow opening them at all. Only set it for files from a source you
        trust, because unpickling can run any code.

    Raises
    ------
    DataNotFoundError
        No such file.
    UntrustedFileError
        A ``.skops`` file with untrusted types (they are listed) or a pickle/joblib file,
        and ``trust_pickle`` is False.
    InvalidAuditInput
        Unknown suffix or unreadable file.
    """
    p = _existing_file(path, "model")
    suffix = p.suffix.lower()
    if suffix == ".skops":
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=p)
        except Exception as exc:  # skops raises many kinds on a corrupt archive
            raise InvalidAuditInput(
                f"model file {p.name!r} is not a readable skops file ({exc})"
            ) from None
        if untrusted and not trust_pickle:
            raise UntrustedFileError(
                f"model file {p.name!r} contains types that skops does not trust by default: "
                f"{', '.join(untrusted)}. Loading them may run their code; if you trust the "
                "file's source, pass trust_pickle=True (--trust-model-code on the command line)"
            )
        try:
            return sio.load(p, trusted=list(untrusted))
        except Exception as exc:
            raise InvalidAuditInput(f"model file {p.name!r} could not be loaded ({exc})") from None
    if suffix in _PICKLE_SUFFIXES:
        if not trust_pickle:
            raise UntrustedFileError(
                f"model file {p.name!r} is a {suffix[1:]} file; unpickling it can run any code "
                "inside it, so miaudit opens it only with trust_pickle=True (--trust-model-code "
                "on the command line). Better: save the model with skops "
                "(miaudit.models.save_sklearn_model or skops.io.dump) and pass the .skops file"
            )
        try:
            if suffix == ".joblib":
                import joblib

                return joblib.load(p)
            with p.open("rb") as fh:
                return pickle.load(fh)  # the user explicitly trusted this file
        except Exception as exc:
            raise InvalidAuditInput(
                f"model file {p.name!r} could not be unpickled ({exc})"
            ) from None
    raise InvalidAuditInput(
        f"model file {p.name!r}: unknown suffix {suffix or '(none)'!r}; scikit-learn models are "
        f"read from .skops (safe) or {', '.join(_PICKLE_SUFFIXES)} (with trust_pickle)"
    )


def load_torchscript_model(
    path: str | os.PathLike[str], *, trust_pickle: bool = False
) -> nn.Module:
    """A TorchScript model (``torch.jit.save``): any PyTorch class, no miaudit architecture.

    A TorchScript archive is a program: its ``forward`` is code that PyTorch's interpreter
    runs, and TorchScript can read and write files (``torch.from_file``, ``torch.save``)
    among other things. PyTorch's own security guidance says to treat it as code. So it is
    opened only with ``trust_pickle`` (``--trust-model-code`` on the command line), like a
    pickle or a ``torch.export`` file. It runs on the CPU, in eval mode. TorchScript modules
    do not work with ``torch.func`` (per-record gradients), so a TorchScript target gives
    logits access at most; a ``torch.export`` program serves white-box attacks.
    """
    p = _existing_file(path, "TorchScript model")
    if not trust_pickle:
        raise UntrustedFileError(untrusted_program_message(p.name, "a TorchScript archive"))
    try:
        module = torch.jit.load(str(p), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError and its own C++ errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidAuditInput(
            f"model file {p.name!r} is not a TorchScript archive that can be read ({first})"
        ) from None
    module.eval()
    return module


def load_exported_program(path: str | os.PathLike[str], *, trust_pickle: bool) -> nn.Module:
    """A ``torch.export`` program (``.pt2``, ``torch.export.save``) as a module.

    ``torch.export.load`` falls back to unrestricted unpickling for some payloads (custom
    objects, some constants), so a ``.pt2`` file can run code: it is read only with
    ``trust_pickle`` (``--trust-model-code``), like a pickle file.
    """
    p = _existing_file(path, "torch.export model")
    if not trust_pickle:
        raise UntrustedFileError(
            untrusted_program_message(p.name, "a torch.export archive (it may unpickle objects)")
        )
    try:
        program = torch.export.load(str(p))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidAuditInput(
            f"model file {p.name!r} is not a torch.export archive that can be read ({first})"
        ) from None
    inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        value = node.meta.get("val") if node.op == "placeholder" and node.name in inputs else None
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) and isinstance(shape[0], int):
            raise InvalidAuditInput(
                f"model file {p.name!r}: the program was exported for batches of exactly "
                f"{shape[0]} records; an audit queries batches of any size. Export it with "
                "a dynamic batch dimension: torch.export.export(model, (x,), dynamic_shapes="
                '{"x": {0: torch.export.Dim("batch", min=1)}}), naming forward\'s argument'
            )
    module = program.module()
    # The program was captured in one mode (eval, for a model exported for serving) and
    # refuses ``train()`` / ``eval()``; make them no-ops so that it is queried as it is.
    module.train = types.MethodType(lambda self, mode=True: self, module)
    module.eval = types.MethodType(lambda self: self, module)
    return module
