"""Shared pieces of the reference-model attacks (LiRA, RMIA, Attack-R).

Each of those attacks learns, in ``fit``, per-record statistics of how ``K`` reference
models answer on the audited records, and in ``score`` compares the target's answers with
them. This module holds what they share: input checks (gathered, then raised once),
masked per-record moments over the model axis, log-space averages of probabilities, and
the bounded squashing used to break ties without reordering distinct scores.

Everything is vectorised over records and models; the only Python loops in the attacks run
over the handful of queries (augmentations) or over a short grid of hyperparameters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from miaudit.errors import raise_if_problems
from miaudit.signals.evidence import Evidence
from miaudit.signals.observations import Observations

__all__ = ["ReferenceCoverageWarning"]


class ReferenceCoverageWarning(UserWarning):
    """Some audited records lack IN or OUT reference models; their statistics fell back
    to values pooled over all records (see the attack's ``n_records_without_*_``)."""


def check_references(
    name: str, references: object, problems: list[str], *, need_inclusion: bool = True
) -> bool:
    """Append problems with a reference pool's observations; True when it is usable."""
    if not isinstance(references, Observations):
        problems.append(f"{name} must be an Observations, got {type(references).__name__}")
        return False
    if references.n_records == 0:
        problems.append(f"{name} holds no records")
    if references.n_queries == 0:
        problems.append(f"{name} holds no queries (its last axis is empty)")
    if references.n_models == 0:
        problems.append(f"{name} holds no reference models")
    if need_inclusion and references.inclusion is None:
        problems.append(
            f"{name}.inclusion is None: reference attacks need to know which reference "
            "model trained on which record"
        )
    return not problems


def raise_param_problems(estimator: BaseEstimator) -> None:
    """``check_params`` of the reference attacks: their ``_check_params`` problems, raised
    once, before any reference model is trained."""
    problems: list[str] = []
    estimator._check_params(problems)
    raise_if_problems(type(estimator).__name__, problems)


def fit_inputs(
    estimator: BaseEstimator,
    references: Observations | Evidence,
    population_references: Observations | None,
    population_target: Observations | None,
) -> tuple[Observations, Observations | None, Observations | None]:
    """What ``fit`` works on: the reference evidence of an audit (the protocol's
    ``fit(evidence)``), or the observations a caller passed directly."""
    if isinstance(references, Evidence):
        refs = references.require_references(type(estimator).__name__)
        return refs.audited_references, refs.population_references, refs.population_target
    return references, population_references, population_target


def score_input(estimator: BaseEstimator, target: Observations | Evidence) -> Observations:
    """What ``score`` works on: the target's answers in the evidence, or ``target``."""
    if isinstance(target, Evidence):
        return target.require_references(type(estimator).__name__).audited_target
    return target


def check_bool(owner: BaseEstimator, param: str, problems: list[str]) -> None:
    value = getattr(owner, param)
    if not isinstance(value, bool | np.bool_):
        problems.append(f"{param} must be True or False, got {value!r}")


def check_target(estimator: BaseEstimator, target: object) -> Observations:
    """Check that ``target`` is one model's answers on the records ``fit`` saw, in order."""
    check_is_fitted(estimator, "record_ids_")
    owner = type(estimator).__name__
    problems: list[str] = []
    if not isinstance(target, Observations):
        raise_if_problems(owner, [f"target must be an Observations, got {type(target).__name__}"])
    assert isinstance(target, Observations)  # for type checkers; checked just above
    if target.n_models != 1:
        problems.append(
            f"target must hold exactly one model's answers (shape (1, n, queries)), got "
            f"{target.n_models} models"
        )
    if target.n_queries != estimator.n_queries_:
        problems.append(
            f"target has {target.n_queries} queries per record but the references had "
            f"{estimator.n_queries_}; use the same augmentations for both"
        )
    fitted_ids = estimator.record_ids_
    if target.n_records != fitted_ids.size:
        problems.append(
            f"target has {target.n_records} records but fit saw {fitted_ids.size}; score the "
            "same audited records, in the same order, as the references"
        )
    elif not np.array_equal(target.record_ids, fitted_ids):
        bad = np.flatnonzero(target.record_ids != fitted_ids)
        problems.append(
            f"target.record_ids differ from those seen in fit at {bad.size} positions (first "
            f"at position {bad[0]}: {target.record_ids[bad[0]]} vs {fitted_ids[bad[0]]}); "
            "score the same audited records, in the same order, as the references"
        )
    raise_if_problems(owner, problems)
    return target


class MaskedMoments(NamedTuple):
    """Per-record Gaussian moments of the models selected by a mask.

    ``count`` (n,) int64: models selected for each record; ``mean`` (n, a): their mean
    (0 where ``count`` is 0); ``sum_sq`` (n, a): sum of squared deviations from that mean.
    """

    count: np.ndarray
    mean: np.ndarray
    sum_sq: np.ndarray


# Values per block of records in masked_moments: the squared deviations of one block take
# 64 MB in float64, whatever the number of models, records and queries.
_MOMENT_BLOCK = 1 << 23


def masked_moments(values: np.ndarray, mask: np.ndarray) -> MaskedMoments:
    """Moments over the model axis of ``values`` (K, n, a), keeping models where ``mask``
    (K, n) is True, in float64 whatever the dtype of ``values`` (float32 observations).

    Vectorised with ``einsum`` over blocks of records, so that the temporaries stay
    bounded (``values`` may be a memory-mapped pool of hundreds of models): the only loop
    runs over record blocks, one block for a few thousand records.
    """
    n_models, n_records, n_queries = values.shape
    count = mask.sum(axis=0).astype(np.int64)
    mean = np.empty((n_records, n_queries))
    sum_sq = np.empty((n_records, n_queries))
    step = max(1, _MOMENT_BLOCK // max(1, n_models * n_queries))
    for lo in range(0, n_records, step):
        rows = slice(lo, lo + step)
        weights = mask[:, rows].astype(np.float64)
        block = values[:, rows].astype(np.float64, copy=False)
        mean[rows] = np.einsum("kn,kna->na", weights, block) / np.maximum(count[rows], 1)[:, None]
        sum_sq[rows] = np.einsum("kn,kna->na", weights, np.square(block - mean[None, rows]))
    return MaskedMoments(count, mean, sum_sq)


def pooled_variance(moments: MaskedMoments, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Within-record variance pooled over all records, per query: ``(a,)``.

    Σ_i Σ_k (φ_ki − μ_i)² / Σ_i (count_i − 1), the estimate of one variance shared by every
    record (Carlini et al. 2022, "fixed variance"). When no record has two
    selected models, the variance of all selected ``values`` (K, n, a) around their common
    mean is the (over-)estimate used instead.
    """
    dof = int(np.maximum(moments.count - 1, 0).sum())
    if dof > 0:
        return moments.sum_sq.sum(axis=0) / dof
    selected = values[mask]
    if selected.shape[0] < 2:
        return np.zeros(values.shape[2])
    return selected.var(axis=0, ddof=1)


def log_query_mean(log_values: np.ndarray) -> np.ndarray:
    """log of the mean over the last (query) axis of exp(``log_values``), computed stably,
    in float64.

    Max-shifted, with a loop over the few queries: numpy reduces a short innermost axis
    slowly, and ``scipy.special.logsumexp`` is slower still.
    """
    n_queries = log_values.shape[-1]
    top = log_values[..., 0].astype(np.float64)  # float64 whatever the observations' dtype
    if n_queries == 1:
        return top
    for q in range(1, n_queries):
        np.maximum(top, log_values[..., q], out=top)
    total = np.zeros_like(top)
    for q in range(n_queries):
        total += np.exp(log_values[..., q] - top)
    return top + np.log(total) - np.log(n_queries)


def masked_log_mean(log_values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """log of the mean over axis 0 of exp(``log_values``) (K, n), over models where ``mask``
    is True (all models when None). ``-inf`` for records with no selected model."""
    masked = log_values if mask is None else np.where(mask, log_values, -np.inf)
    top = masked.max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    total = np.exp(masked - top).sum(axis=0)
    count = np.full(total.shape, log_values.shape[0]) if mask is None else mask.sum(axis=0)
    out = np.full(total.shape, -np.inf)
    ok = count > 0
    out[ok] = top[ok] + np.log(total[ok]) - np.log(count[ok])
    return out


class LeaveOneOutLogMean:
    """log of the mean of exp(``log_values``) (K, n) over selected models, leaving one out.

    The masked, max-shifted sum is computed once; leaving model j out subtracts its term,
    O(n) per model instead of O(K n). Where that subtraction cancels (model j carried
    almost all of a record's sum) the few affected records are recomputed directly.
    """

    def __init__(self, log_values: np.ndarray, mask: np.ndarray | None) -> None:
        self.selected = np.ones(log_values.shape, bool) if mask is None else mask
        self.masked = np.where(self.selected, log_values, -np.inf)
        top = self.masked.max(axis=0)
        self.top = np.where(np.isfinite(top), top, 0.0)
        self.shifted = np.exp(self.masked - self.top)
        self.total = self.shifted.sum(axis=0)
        self.count = self.selected.sum(axis=0)

    def without(self, j: int) -> np.ndarray:
        """(n,) log mean over the selected models other than ``j``; -inf where none."""
        rest = self.total - self.shifted[j]
        count = self.count - self.selected[j]
        out = np.full(rest.shape, -np.inf)
        ok = count > 0
        out[ok] = self.top[ok] + np.log(np.maximum(rest[ok], 0.0)) - np.log(count[ok])
        unstable = np.flatnonzero(ok & self.selected[j] & (rest < 1e-6 * self.total))
        if unstable.size:
            others = np.arange(self.masked.shape[0]) != j
            sub = self.masked[others][:, unstable]
            sub_top = sub.max(axis=0)
            out[unstable] = (
                sub_top + np.log(np.exp(sub - sub_top).sum(axis=0)) - np.log(count[unstable])
            )
        return out


def squash(x: np.ndarray) -> np.ndarray:
    """Strictly increasing map of the real line onto (0, 1): ``1/2 + arctan(x)/π``.

    Used for tie-breaking keys. Its tails approach 0 and 1 like 1/x, not exponentially
    (as a logistic would), so keys stay distinguishable in float64 even when they are
    far out in the tails, which is where the records that matter at low FPR sit.
    """
    return 0.5 + np.arctan(x) / np.pi
