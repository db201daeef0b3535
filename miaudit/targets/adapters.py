"""Access adapters: what an attacker may ask of the audited model, and nothing more.

Every target declares an :class:`AccessLevel`. Attacks ask for the outputs they need through
``predict_labels`` / ``predict_proba`` / ``predict_logits``; a target refuses (with
:class:`~miaudit.errors.AccessLevelError`) anything above its level, so an audit declared
"black-box" can never quietly use logits or weights.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np

from miaudit.errors import AccessLevelError, InvalidAuditInput, raise_if_problems
from miaudit.validation import is_int


class AccessLevel(IntEnum):
    """How much of the model the attacker sees; each level includes the ones below it."""

    LABEL_ONLY = 0
    PROBABILITIES = 1
    LOGITS = 2
    WHITE_BOX = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: AccessLevel | str) -> AccessLevel:
        if isinstance(value, AccessLevel):
            return value
        key = str(value).strip().upper().replace("-", "_")
        key = {"BLACK_BOX": "PROBABILITIES", "LABELS": "LABEL_ONLY"}.get(key, key)
        try:
            return cls[key]
        except KeyError:
            allowed = ", ".join(level.label for level in cls)
            raise InvalidAuditInput(
                f"access level {value!r} is unknown; allowed: {allowed}"
            ) from None


@runtime_checkable
class Target(Protocol):
    """What every target adapter offers. Queries ``x`` are records, or record ids for
    :class:`PrecomputedTarget` (``queries_by_index`` says which)."""

    access: AccessLevel
    n_classes: int
    description: str
    queries_by_index: bool

    def predict_labels(self, x: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...

    def predict_logits(self, x: np.ndarray) -> np.ndarray: ...


def require_access(target: Target, needed: AccessLevel, what: str) -> None:
    """Raise if ``target`` is declared below ``needed``."""
    if target.access < needed:
        raise AccessLevelError(
            f"{what} needs {needed.label} access, but the target ({target.description}) "
            f"is declared {target.access.label}; declare a higher access level or choose an "
            f"attack that works with {target.access.label} access"
        )


def check_probabilities(proba: np.ndarray, n_rows: int, n_classes: int, source: str) -> np.ndarray:
    """Validate a probability matrix returned by a model; return it as float64."""
    proba = np.asarray(proba, dtype=np.float64)
    problems = []
    if proba.shape != (n_rows, n_classes):
        problems.append(f"expected shape ({n_rows}, {n_classes}), got {proba.shape}")
    else:
        if not np.isfinite(proba).all():
            bad = int((~np.isfinite(proba)).any(axis=1).sum())
            problems.append(f"{bad} rows contain NaN or infinite probabilities")
        elif proba.min() < -1e-6 or proba.max() > 1 + 1e-6:
            problems.append(
                f"probabilities must lie in [0, 1], found [{proba.min()}, {proba.max()}]"
            )
        else:
            sums = proba.sum(axis=1)
            if np.abs(sums - 1).max() > 1e-3:
                worst = float(sums[np.argmax(np.abs(sums - 1))])
                problems.append(
                    f"rows must sum to 1 (a row sums to {worst:.4g}); "
                    "were logits given as probabilities?"
                )
    raise_if_problems(source, problems)
    return np.clip(proba, 0.0, 1.0)


def check_logits(logits: np.ndarray, n_rows: int, n_classes: int, source: str) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    problems = []
    if logits.shape != (n_rows, n_classes):
        problems.append(f"expected logits of shape ({n_rows}, {n_classes}), got {logits.shape}")
    elif not np.isfinite(logits).all():
        bad = int((~np.isfinite(logits)).any(axis=1).sum())
        problems.append(f"{bad} rows contain NaN or infinite logits")
    raise_if_problems(source, problems)
    return logits


def check_labels(labels: np.ndarray, n_rows: int, n_classes: int, source: str) -> np.ndarray:
    labels = np.asarray(labels)
    problems = []
    if labels.shape != (n_rows,):
        problems.append(f"expected labels of shape ({n_rows},), got {labels.shape}")
    elif labels.size and (
        labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= n_classes
    ):
        problems.append(f"labels must be integers in [0, {n_classes})")
    raise_if_problems(source, problems)
    return labels.astype(np.int64)


def check_n_classes(owner: str, n_classes: Any) -> int:
    """``n_classes`` as an int, refusing what is not a class count (``'ten'``, ``True``, 1)."""
    if not is_int(n_classes) or n_classes < 2:
        raise InvalidAuditInput(f"{owner}: n_classes must be an int >= 2, got {n_classes!r}")
    return int(n_classes)


def _check_description(owner: str, description: Any) -> None:
    if not isinstance(description, str):
        raise InvalidAuditInput(
            f"{owner}: description must be a string, got {type(description).__name__}"
        )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


class TorchTarget:
    """A ``torch.nn.Module`` returning logits. White-box by default; declare a lower
    ``access`` to audit it as the API it will be served behind."""

    queries_by_index = False

    def __init__(
        self,
        module,
        *,
        n_classes: int,
        access: AccessLevel | str = AccessLevel.WHITE_BOX,
        description: str = "",
        batch_size: int = 2048,
    ) -> None:
        import torch

        if not isinstance(module, torch.nn.Module):
            raise InvalidAuditInput(
                f"TorchTarget needs a torch.nn.Module, got {type(module).__name__}"
            )
        self.module = module
        self.n_classes = check_n_classes("TorchTarget", n_classes)
        self.access = AccessLevel.parse(access)
        _check_description("TorchTarget", description)
        self.description = description or f"PyTorch {type(module).__name__}"
        if not is_int(batch_size) or batch_size < 1:
            raise InvalidAuditInput(
                f"TorchTarget: batch_size must be a positive int, got {batch_size!r}"
            )
        self.batch_size = int(batch_size)

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.LOGITS, "predict_logits")
        return self._logits(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.PROBABILITIES, "predict_proba")
        return _softmax(self._logits(x))

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        return self._logits(x).argmax(axis=1)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        from miaudit.models.training import predict_logits

        out = predict_logits(self.module, x, batch_size=self.batch_size)
        return check_logits(out, len(x), self.n_classes, self.description)


class SklearnTarget:
    """A fitted scikit-learn classifier with ``predict_proba``: black-box probabilities."""

    queries_by_index = False

    def __init__(
        self,
        estimator,
        *,
        n_classes: int,
        access: AccessLevel | str = AccessLevel.PROBABILITIES,
        description: str = "",
    ) -> None:
        missing = [m for m in ("predict", "get_params") if not hasattr(estimator, m)]
        if missing:
            raise InvalidAuditInput(
                f"SklearnTarget needs a fitted scikit-learn classifier, got "
                f"{type(estimator).__name__} (no {', '.join(missing)})"
            )
        _check_description("SklearnTarget", description)
        self.estimator = estimator
        self.n_classes = check_n_classes("SklearnTarget", n_classes)
        self.access = AccessLevel.parse(access)
        if self.access > AccessLevel.PROBABILITIES:
            raise InvalidAuditInput(
                "SklearnTarget: a scikit-learn estimator exposes probabilities at most; "
                f"got access={self.access.label}"
            )
        if not hasattr(estimator, "predict_proba") and self.access >= AccessLevel.PROBABILITIES:
            raise InvalidAuditInput(
                f"SklearnTarget: {type(estimator).__name__} has no predict_proba; declare "
                "access='label_only' to audit it through its predicted labels"
            )
        self.description = description or f"scikit-learn {type(estimator).__name__}"

    def _flat(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).reshape(len(x), -1)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.PROBABILITIES, "predict_proba")
        raw = np.asarray(self.estimator.predict_proba(self._flat(x)), dtype=np.float64)
        classes = np.asarray(getattr(self.estimator, "classes_", np.arange(raw.shape[1])))
        if raw.ndim != 2 or raw.shape[1] != classes.size:
            raise InvalidAuditInput(
                f"{self.description}: predict_proba returned shape {raw.shape} for "
                f"{classes.size} classes"
            )
        if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= self.n_classes:
            raise InvalidAuditInput(
                f"{self.description}: classes_ {classes.tolist()[:10]} are not indices in "
                f"[0, {self.n_classes})"
            )
        # An estimator fitted on data missing some class has fewer columns: place them.
        proba = np.zeros((len(x), self.n_classes))
        proba[:, classes] = raw
        return check_probabilities(proba, len(x), self.n_classes, self.description)

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        pred = np.asarray(self.estimator.predict(self._flat(x)))
        return check_labels(pred, len(x), self.n_classes, self.description)

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.LOGITS, "predict_logits")
        raise AssertionError("unreachable: SklearnTarget never has logits access")


#: The access level each kind of answer gives (what a callable, a predictions file or an
#: API returns).
OUTPUT_ACCESS = {
    "logits": AccessLevel.LOGITS,
    "probabilities": AccessLevel.PROBABILITIES,
    "labels": AccessLevel.LABEL_ONLY,
}


def _parse_output_kind(output: str, owner: str) -> AccessLevel:
    if output not in OUTPUT_ACCESS:
        raise InvalidAuditInput(
            f"{owner}: output must be one of {sorted(OUTPUT_ACCESS)}, got {output!r}"
        )
    return OUTPUT_ACCESS[output]


class CallableTarget:
    """Any function of a batch of records: a black-box prediction API.

    ``output`` says what it returns (``"probabilities"``, ``"logits"`` or ``"labels"``) and
    fixes the access level. Every answer is validated: NaN, wrong shapes or rows that do
    not sum to one are errors, not silent garbage in the audit.
    """

    queries_by_index = False

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        *,
        n_classes: int,
        output: str = "probabilities",
        description: str = "",
    ) -> None:
        if not callable(fn):
            raise InvalidAuditInput(f"CallableTarget needs a callable, got {type(fn).__name__}")
        _check_description("CallableTarget", description)
        self.fn = fn
        self.n_classes = check_n_classes("CallableTarget", n_classes)
        self.output = output
        self.access = _parse_output_kind(output, "CallableTarget")
        self.description = description or f"callable {getattr(fn, '__name__', type(fn).__name__)}"

    def _call(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(x))

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.LOGITS, "predict_logits")
        return check_logits(self._call(x), len(x), self.n_classes, self.description)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.PROBABILITIES, "predict_proba")
        if self.access == AccessLevel.LOGITS:
            return _softmax(self.predict_logits(x))
        return check_probabilities(self._call(x), len(x), self.n_classes, self.description)

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        if self.access == AccessLevel.LABEL_ONLY:
            return check_labels(self._call(x), len(x), self.n_classes, self.description)
        if self.access == AccessLevel.LOGITS:
            return self.predict_logits(x).argmax(axis=1)
        return self.predict_proba(x).argmax(axis=1)


class LabelOnlyTarget:
    """Wraps any target and lets only its predicted labels through."""

    access = AccessLevel.LABEL_ONLY

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.n_classes = inner.n_classes
        self.description = f"{inner.description} (labels only)"
        self.queries_by_index = inner.queries_by_index

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        return self.inner.predict_labels(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.PROBABILITIES, "predict_proba")
        raise AssertionError("unreachable")

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.LOGITS, "predict_logits")
        raise AssertionError("unreachable")


class PrecomputedTarget:
    """Predictions computed elsewhere: no model at all.

    ``outputs`` row ``i`` holds the model's answer on record ``i`` of the data set (or on
    ``record_ids[i]`` when given). Queries are record ids, not records.
    """

    queries_by_index = True

    def __init__(
        self,
        outputs: np.ndarray,
        *,
        output: str = "probabilities",
        n_classes: int | None = None,
        record_ids: np.ndarray | None = None,
        description: str = "precomputed predictions",
    ) -> None:
        self.output = output
        self.access = _parse_output_kind(output, "PrecomputedTarget")
        outputs = np.asarray(outputs)
        if self.access == AccessLevel.LABEL_ONLY:
            if n_classes is None:
                raise InvalidAuditInput("PrecomputedTarget: n_classes is required for labels")
            self.n_classes = check_n_classes("PrecomputedTarget", n_classes)
            outputs = check_labels(outputs, len(outputs), self.n_classes, description)
        else:
            if outputs.ndim != 2:
                raise InvalidAuditInput(
                    f"PrecomputedTarget: {output} must be a 2-d array, got shape {outputs.shape}"
                )
            self.n_classes = check_n_classes(
                "PrecomputedTarget", outputs.shape[1] if n_classes is None else n_classes
            )
            check = check_logits if self.access == AccessLevel.LOGITS else check_probabilities
            outputs = check(outputs, len(outputs), self.n_classes, description)
        self.outputs = outputs
        self.description = description
        if record_ids is None:
            self._row_of = None
        else:
            record_ids = np.asarray(record_ids, dtype=np.int64)
            if record_ids.shape != (len(outputs),) or np.unique(record_ids).size != record_ids.size:
                raise InvalidAuditInput(
                    "PrecomputedTarget: record_ids must be unique, one per row of outputs"
                )
            order = np.argsort(record_ids)
            self._row_of = (record_ids[order], order)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise InvalidAuditInput(
                "PrecomputedTarget is queried with record ids (1-d integers), got an array "
                f"of shape {ids.shape} and dtype {ids.dtype}"
            )
        if self._row_of is None:
            if ids.size and (ids.min() < 0 or ids.max() >= len(self.outputs)):
                raise InvalidAuditInput(
                    f"PrecomputedTarget: record id out of range [0, {len(self.outputs)})"
                )
            return self.outputs[ids]
        sorted_ids, order = self._row_of
        pos = np.searchsorted(sorted_ids, ids).clip(0, sorted_ids.size - 1)
        missing = sorted_ids[pos] != ids
        if missing.any():
            raise InvalidAuditInput(
                f"PrecomputedTarget: no prediction for {int(missing.sum())} queried records "
                f"(e.g. record {int(ids[missing][0])})"
            )
        return self.outputs[order[pos]]

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.LOGITS, "predict_logits")
        return self._rows(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.PROBABILITIES, "predict_proba")
        rows = self._rows(x)
        return _softmax(rows) if self.access == AccessLevel.LOGITS else rows

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        rows = self._rows(x)
        return rows if self.access == AccessLevel.LABEL_ONLY else rows.argmax(axis=1)


def as_target(
    model: Any,
    *,
    n_classes: int,
    access: AccessLevel | str | None = None,
    description: str = "",
) -> Target:
    """Wrap a raw model as a target: the adapter for a trained model of any form a recipe
    returns: a network
    (:class:`TorchTarget`, white-box), a fitted classifier with ``predict_proba``
    (:class:`SklearnTarget`: scikit-learn, XGBoost, LightGBM, CatBoost), or a callable with
    its output kind (:class:`~miaudit.models.python_recipe.AnsweringFunction`,
    :class:`CallableTarget`). A target adapter is returned as it is.

    ``access`` lowers the model's own access level (None keeps it).
    """
    import torch

    from miaudit.models.python_recipe import AnsweringFunction

    if isinstance(
        model, TorchTarget | SklearnTarget | CallableTarget | LabelOnlyTarget | PrecomputedTarget
    ):
        return model
    if isinstance(model, torch.nn.Module):
        return TorchTarget(
            model,
            n_classes=n_classes,
            access=access or AccessLevel.WHITE_BOX,
            description=description,
        )
    if isinstance(model, AnsweringFunction):
        target = CallableTarget(
            model, n_classes=n_classes, output=model.output, description=description
        )
    elif hasattr(model, "predict") and (
        hasattr(model, "predict_proba") or access in ("label_only", AccessLevel.LABEL_ONLY)
    ):
        if access is not None and AccessLevel.parse(access) == AccessLevel.LABEL_ONLY:
            return LabelOnlyTarget(SklearnTarget(model, n_classes=n_classes, access="label_only"))
        if not hasattr(model, "get_params"):
            target = CallableTarget(
                lambda x: model.predict_proba(np.asarray(x).reshape(len(x), -1)),
                n_classes=n_classes,
                output="probabilities",
                description=description or f"{type(model).__name__}.predict_proba",
            )
        else:
            target = SklearnTarget(model, n_classes=n_classes, description=description)
    elif callable(model):
        target = CallableTarget(model, n_classes=n_classes, description=description)
    else:
        raise InvalidAuditInput(
            f"cannot audit a {type(model).__name__}: pass a torch.nn.Module, a fitted "
            "classifier with predict_proba, a callable returning logits or probabilities, "
            "or a target adapter"
        )
    if access is not None and AccessLevel.parse(access) < target.access:
        if AccessLevel.parse(access) == AccessLevel.LABEL_ONLY:
            return LabelOnlyTarget(target)
        inner = target  # logits lowered to probabilities
        return CallableTarget(
            lambda x: _softmax(inner.predict_logits(x)),
            n_classes=n_classes,
            output="probabilities",
            description=inner.description,
        )
    return target
