"""Per-record signals computed once from a target's outputs and shared by every attack.

Formulas (REFERENCES.md, "Signals"): loss ℓ = −log p_y (Yeom et al. 2018); scaled logit
φ = z_y − logsumexp_{j≠y} z_j (Carlini et al. 2022), computed from logits whenever the
target exposes them, because rounding probabilities destroys exactly the confident tail
LiRA-style tests rely on; entropy; modified entropy (Song & Mittal 2021); correctness.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.special import logsumexp

from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.targets.adapters import AccessLevel, Target

# Smallest probability we take the log of when only (possibly rounded) probabilities exist.
_TINY = np.finfo(np.float64).tiny

SIGNAL_NAMES = ("loss", "confidence", "scaled_logit", "entropy", "modified_entropy", "correct")


@dataclass(frozen=True, eq=False)
class SignalTable:
    """Signals of ``n`` records, each a ``(n,)`` float64 array or None when the target's
    access level does not allow it (label-only targets give ``correct`` alone).

    ``labels`` are the records' true classes, ``predicted`` the target's predicted classes.
    ``from_logits`` records whether the signals came from logits (exact) or probabilities.
    ``log_proba`` (and ``logits``, when the target exposes them) are the ``(n, n_classes)``
    outputs themselves, kept for attacks that learn from whole prediction vectors.
    """

    labels: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray
    loss: np.ndarray | None = None
    confidence: np.ndarray | None = None
    scaled_logit: np.ndarray | None = None
    entropy: np.ndarray | None = None
    modified_entropy: np.ndarray | None = None
    log_proba: np.ndarray | None = None
    logits: np.ndarray | None = None
    from_logits: bool = False

    @property
    def n_records(self) -> int:
        return int(self.labels.size)

    def available(self) -> tuple[str, ...]:
        """Names of the signals this table holds."""
        return tuple(name for name in SIGNAL_NAMES if getattr(self, name) is not None)

    def get(self, name: str) -> np.ndarray:
        """The signal called ``name``; a clear error if it is unknown or unavailable."""
        if name not in SIGNAL_NAMES:
            raise InvalidAuditInput(f"unknown signal {name!r}; known: {', '.join(SIGNAL_NAMES)}")
        value = getattr(self, name)
        if value is None:
            raise InvalidAuditInput(
                f"signal {name!r} is not available from this target (available: "
                f"{', '.join(self.available())}); it needs probability or logit access"
            )
        return value

    def subset(self, mask_or_index: np.ndarray) -> SignalTable:
        """The same signals restricted to some records."""
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = v[mask_or_index] if isinstance(v, np.ndarray) else v
        return SignalTable(**values)


def _log1mexp(a: np.ndarray) -> np.ndarray:
    """log(1 − exp(a)) for a ≤ 0, accurate near 0 and near −inf (Mächler 2012)."""
    a = np.minimum(a, 0.0)
    with np.errstate(divide="ignore"):
        out = np.where(a > -np.log(2.0), np.log(-np.expm1(a)), np.log1p(-np.exp(a)))
    return np.maximum(out, np.log(_TINY))


def signals_from_log_proba(
    log_proba: np.ndarray,
    labels: np.ndarray,
    *,
    scaled_logit: np.ndarray,
    logits: np.ndarray | None = None,
) -> SignalTable:
    """All signals from a ``(n, k)`` matrix of log-probabilities (rows log-sum to 0)."""
    n = labels.size
    rows = np.arange(n)
    log_py = log_proba[rows, labels]
    proba = np.exp(log_proba)
    entropy = -(proba * log_proba).sum(axis=1)
    log_1m = _log1mexp(log_proba)  # log(1 − p_i) per class
    others = proba * log_1m
    others[rows, labels] = 0.0
    p_y = proba[rows, labels]
    modified_entropy = -(1.0 - p_y) * log_py - others.sum(axis=1)
    predicted = log_proba.argmax(axis=1)
    return SignalTable(
        labels=labels,
        predicted=predicted,
        correct=(predicted == labels).astype(np.float64),
        loss=-log_py,
        confidence=p_y,
        scaled_logit=scaled_logit,
        entropy=entropy,
        modified_entropy=modified_entropy,
        log_proba=log_proba,
        logits=logits,
        from_logits=logits is not None,
    )


def _scaled_logit_of_logits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    rows = np.arange(labels.size)
    masked = logits.copy()
    masked[rows, labels] = -np.inf
    return logits[rows, labels] - logsumexp(masked, axis=1)


def _log_proba_of_proba(proba: np.ndarray) -> np.ndarray:
    log_proba = np.log(np.maximum(proba, _TINY))
    return log_proba - logsumexp(log_proba, axis=1, keepdims=True)  # renormalise rounded rows


def _scaled_logit_of_proba(
    proba: np.ndarray, log_proba: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    rows = np.arange(labels.size)
    others = proba.copy()
    others[rows, labels] = 0.0
    return log_proba[rows, labels] - np.log(np.maximum(others.sum(axis=1), _TINY))


def scaled_logit_and_log_confidence(
    outputs: np.ndarray, labels: np.ndarray, *, from_logits: bool
) -> tuple[np.ndarray, np.ndarray]:
    """φ and log p_y alone, for reference pools that need nothing else (same formulas as
    :func:`signals_from_logits` and :func:`signals_from_proba`)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    rows = np.arange(labels.size)
    if from_logits:
        log_p_y = outputs[rows, labels] - logsumexp(outputs, axis=1)
        return _scaled_logit_of_logits(outputs, labels), log_p_y
    log_proba = _log_proba_of_proba(outputs)
    return _scaled_logit_of_proba(outputs, log_proba, labels), log_proba[rows, labels]


def signals_from_logits(logits: np.ndarray, labels: np.ndarray) -> SignalTable:
    """Signals from logits: φ = z_y − logsumexp_{j≠y} z_j, exact even when p_y rounds to 1."""
    logits = np.asarray(logits, dtype=np.float64)
    log_proba = logits - logsumexp(logits, axis=1, keepdims=True)
    phi = _scaled_logit_of_logits(logits, labels)
    return signals_from_log_proba(log_proba, labels, scaled_logit=phi, logits=logits)


def signals_from_proba(proba: np.ndarray, labels: np.ndarray) -> SignalTable:
    """Signals from probabilities (black-box APIs). φ = log p_y − log Σ_{j≠y} p_j, which
    avoids the cancellation in 1 − p_y; probabilities of 0 are floored at the smallest
    positive double."""
    proba = np.asarray(proba, dtype=np.float64)
    log_proba = _log_proba_of_proba(proba)
    phi = _scaled_logit_of_proba(proba, log_proba, labels)
    return signals_from_log_proba(log_proba, labels, scaled_logit=phi)


def signals_from_labels(predicted: np.ndarray, labels: np.ndarray) -> SignalTable:
    """Label-only access: correctness is the only signal (Choquette-Choo et al. 2021's gap)."""
    predicted = np.asarray(predicted, dtype=np.int64)
    return SignalTable(
        labels=labels, predicted=predicted, correct=(predicted == labels).astype(np.float64)
    )


def check_query_labels(x: np.ndarray, labels: np.ndarray, n_classes: int, owner: str) -> np.ndarray:
    """Validate the true labels of queried records; return them as int64.

    One error lists every problem: not 1-d, empty, not integers, outside
    ``[0, n_classes)``, or a count that differs from the records'.
    """
    labels = np.asarray(labels)
    problems = []
    if labels.ndim != 1:
        problems.append(f"labels must be 1-d, got shape {labels.shape}")
    elif labels.size == 0:
        problems.append("no records to compute signals on")
    elif labels.dtype.kind not in "iu":
        problems.append(f"labels must be integers, got dtype {labels.dtype}")
    elif labels.min() < 0 or labels.max() >= n_classes:
        problems.append(
            f"labels must lie in [0, {n_classes}), found [{labels.min()}, {labels.max()}]"
        )
    if len(x) != labels.size:
        problems.append(f"x has {len(x)} records but labels has {labels.size}")
    raise_if_problems(owner, problems)
    return labels.astype(np.int64)


def compute_signals(target: Target, x: np.ndarray, labels: np.ndarray) -> SignalTable:
    """Query ``target`` once on ``x`` and compute every signal its access level allows.

    Parameters
    ----------
    target : Target
        The audited model's adapter.
    x : np.ndarray
        Records (or record ids, for a target whose ``queries_by_index`` is True).
    labels : (n,) int array
        True classes of the records.
    """
    labels = check_query_labels(x, labels, target.n_classes, "compute_signals")
    if target.access >= AccessLevel.LOGITS:
        return signals_from_logits(target.predict_logits(x), labels)
    if target.access >= AccessLevel.PROBABILITIES:
        return signals_from_proba(target.predict_proba(x), labels)
    return signals_from_labels(target.predict_labels(x), labels)
