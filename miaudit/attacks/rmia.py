"""RMIA, the relative membership inference attack of Zarifzadeh, Liu and Shokri (ICML 2024,
"Low-Cost High-Power Membership Inference Attacks").

RMIA tests whether the target likes record x *more than it likes typical population
records z*, each relative to how much reference models like them. With
Pr(x | θ) the target's true-class probability on x (averaged over queries) and Pr(x) its
average under reference models, the pairwise likelihood ratio is (their Sec. 3)

    LR(x, z) = (Pr(x | θ) / Pr(x)) / (Pr(z | θ) / Pr(z)),

and the score is the fraction of population records z that x dominates, LR(x, z) ≥ γ
(their Sec. 3, the test they call RMIA).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import ClassVar, Self

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from miaudit.attacks._reference import (
    LeaveOneOutLogMean,
    ReferenceCoverageWarning,
    check_bool,
    check_references,
    check_target,
    fit_inputs,
    log_query_mean,
    masked_log_mean,
    raise_param_problems,
    score_input,
    squash,
)
from miaudit.attacks.protocol import Requirements
from miaudit.errors import raise_if_problems
from miaudit.evaluation.roc import roc_auc
from miaudit.signals.evidence import Evidence
from miaudit.signals.observations import Observations
from miaudit.targets.adapters import AccessLevel

# Candidate values of the offline interpolation parameter a.
DEFAULT_A_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

# a used offline when it can be neither given nor tuned (e.g. a single reference model):
# the value the authors' reference implementation (ml_privacy_meter) ships as its default.
FALLBACK_A = 0.3


class RMIA(BaseEstimator):
    """Relative membership inference attack (Zarifzadeh, Liu & Shokri, ICML 2024).

    Parameters
    ----------
    online : bool, default False
        Online: Pr(x) is the mean of Pr(x | θ′) over *all* reference models (IN and OUT,
        their Sec. 3). Offline: only models that did not train on x are available, and
        Pr(x) is approximated from their mean Pr_OUT(x) by the paper's linear rule
        (their offline setting)
        Pr(x) = ½ ((1 + a) · Pr_OUT(x) + (1 − a)).
    gamma : float > 0, default 1.0
        x dominates z when LR(x, z) ≥ γ.
    offline_a : float in [0, 1] or None, default None
        The offline a. None tunes it (see Notes); ignored online.
    a_grid : tuple of float in [0, 1], default 0.0, 0.1, …, 1.0
        Candidates for the tuned a.
    n_tuning_models : int ≥ 1, default 4
        How many reference models (evenly spaced in the pool) take turns as a simulated
        target while tuning a.
    tie_break : bool, default True
        Add a bounded secondary key that orders records tied on the fraction (see Notes).
        False returns the paper's fraction exactly.

    Attributes
    ----------
    record_ids_ : (n,) int64
    n_queries_, n_population_ : int
    online_ : bool
        The ``online`` setting this fit used.
    a_ : float or None
        The a in use offline (given, tuned, or :data:`FALLBACK_A`); None online.
    a_source_ : str
        ``"given"``, ``"tuned"``, ``"fallback"`` or ``"online"``.
    tuning_auc_ : (len(a_grid),) float64
        Mean AUC of the simulated attacks for each candidate a; NaN where not tuned.
    tuning_models_ : (k,) int64
        The reference models used as simulated targets.
    log_pr_x_ : (n,) float64
        log Pr(x) of each audited record.
    sorted_log_ratio_z_ : (Z,) float64
        log(Pr(z | θ) / Pr(z)) of the population records, sorted.
    tie_epsilon_ : float
        Weight of the secondary key, ``0.5 / Z``.
    n_records_without_out_, n_population_without_out_ : int
        Offline: audited (population) records every reference model trained on; their
        Pr_OUT falls back to the average over the other records, with a warning.

    Notes
    -----
    *Computation.* log LR(x, z) ≥ log γ ⇔ log r_z ≤ log r_x − log γ, with r = Pr(·|θ)/Pr(·).
    ``fit`` sorts the Z population ratios once; ``score`` does one binary search per x
    (``np.searchsorted``): O((N + Z) log Z) time and O(N + Z) memory, never an N × Z
    matrix. Everything is in log space, so tiny probabilities neither underflow nor divide
    by zero.

    *Tie-breaking.* The fraction takes at most Z + 1 values, so at the top many records
    tie (all dominate every z) and the ROC cannot go below the FPR of that whole group: the
    TPR at 0.1 % FPR can read 0 although the attack separates those records. For a fixed
    target θ the fraction is a non-decreasing step function of log r_x (the empirical CDF
    of the log r_z evaluated at log r_x − log γ; the same observation the authors make for
    a single fixed target), so the natural secondary key is log r_x itself. The score is

        fraction(x) + ε · s(log r_x),  s(t) = ½ + arctan(t)/π ∈ (0, 1),  ε = 0.5 / Z,

    Distinct fractions are at least 1/Z apart and the added term is below 0.5/Z, so records
    with different fractions keep their order exactly; only ties are ordered. The result is
    strictly increasing in log r_x, i.e. the ordering RMIA would reach with infinitely many
    population records.

    *Tuning a* (offline, ``offline_a=None``), as the paper does it, by attacking a reference
    model with the others: each of ``n_tuning_models`` reference models in turn plays the
    target, the remaining ones are its references, and its own inclusion is the ground
    truth. The audited records are used when that model trained on some but not all of
    them; otherwise (reference models trained on population data only) the population
    records are attacked against themselves, using ``population_references.inclusion``.
    The a with the highest mean AUC over these simulated attacks wins (the first, i.e.
    smallest, on ties). If no reference model can play the target (a single model, or no
    usable inclusion), a = :data:`FALLBACK_A` with a warning. Tuning reads the reference
    models' answers only, never the target's.

    ``required_access`` is :attr:`AccessLevel.PROBABILITIES`: RMIA needs Pr(x | θ) = p_y
    only. Logits are preferred where available, for log p_y exact in the confident tail.
    """

    family: ClassVar[str] = "reference"

    def __init__(
        self,
        *,
        online: bool = False,
        gamma: float = 1.0,
        offline_a: float | None = None,
        a_grid: tuple[float, ...] = DEFAULT_A_GRID,
        n_tuning_models: int = 4,
        tie_break: bool = True,
    ) -> None:
        self.online = online
        self.gamma = gamma
        self.offline_a = offline_a
        self.a_grid = a_grid
        self.n_tuning_models = n_tuning_models
        self.tie_break = tie_break

    @property
    def required_access(self) -> AccessLevel:
        return AccessLevel.PROBABILITIES

    @property
    def requirements(self) -> Requirements:
        return Requirements(AccessLevel.PROBABILITIES, references=True, population=True)

    def check_params(self) -> None:
        """Raise, naming each bad parameter, before any reference model is trained."""
        raise_param_problems(self)

    def default_label(self) -> str:
        return f"rmia_{'online' if self.online else 'offline'}"

    # ------------------------------------------------------------------ validation

    def _check_params(self, problems: list[str]) -> None:
        check_bool(self, "online", problems)
        check_bool(self, "tie_break", problems)
        g = self.gamma
        if not isinstance(g, Real) or isinstance(g, bool) or not (np.isfinite(g) and g > 0):
            problems.append(f"gamma must be a finite number > 0, got {g!r}")
        a = self.offline_a
        if a is not None and (not isinstance(a, Real) or isinstance(a, bool) or not 0 <= a <= 1):
            problems.append(f"offline_a must be None or a number in [0, 1], got {a!r}")
        try:
            grid = np.asarray(self.a_grid, dtype=np.float64)
            ok = grid.ndim == 1 and grid.size > 0 and bool(((grid >= 0) & (grid <= 1)).all())
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(
                f"a_grid must be a non-empty sequence of numbers in [0, 1], got {self.a_grid!r}"
            )
        k = self.n_tuning_models
        if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
            problems.append(f"n_tuning_models must be an integer >= 1, got {k!r}")

    def _check_data(
        self,
        references: Observations,
        population_references: Observations | None,
        population_target: Observations | None,
        problems: list[str],
    ) -> None:
        ok = check_references("references", references, problems)
        if population_references is None or population_target is None:
            problems.append(
                "RMIA compares each audited record with population records z: pass "
                "population_references= (the reference models' answers on z) and "
                "population_target= (the target's answers on z)"
            )
            return
        ok &= check_references(
            "population_references", population_references, problems, need_inclusion=False
        )
        ok &= check_references(
            "population_target", population_target, problems, need_inclusion=False
        )
        if not ok:
            return
        k = references.n_models
        if population_references.n_models != k:
            problems.append(
                f"population_references has {population_references.n_models} models but "
                f"references has {k}; both must come from the same reference models"
            )
        if population_target.n_models != 1:
            problems.append(
                f"population_target must hold one model's answers, got {population_target.n_models}"
            )
        queries = {references.n_queries, population_references.n_queries}
        queries.add(population_target.n_queries)
        if len(queries) != 1:
            problems.append(
                f"references, population_references and population_target must have the "
                f"same number of queries, got {references.n_queries}, "
                f"{population_references.n_queries} and {population_target.n_queries}"
            )
        if not np.array_equal(population_references.record_ids, population_target.record_ids):
            problems.append(
                "population_references and population_target must hold the same population "
                "records in the same order (their record_ids differ)"
            )
        if self.online is False and not (~references.inclusion).any():
            problems.append(
                "references: every reference model trained on every audited record; "
                "offline RMIA needs OUT models (use online=True)"
            )

    # ------------------------------------------------------------------ fit / score

    def fit(
        self,
        references: Observations | Evidence,
        *,
        population_references: Observations | None = None,
        population_target: Observations | None = None,
    ) -> Self:
        """Learn Pr(x) for the audited records and the target's population ratios.

        Parameters
        ----------
        references : Observations or Evidence
            The audit's evidence (its reference answers are used), or ``(K, n, a)`` answers of the
            reference models on the audited records, with ``inclusion`` ``(K, n)``.
        population_references : Observations
            ``(K, Z, a)`` answers of the same ``K`` reference models on population records
            z. ``inclusion`` is optional; when None, no reference model is taken to have
            trained on any z.
        population_target : Observations
            ``(1, Z, a)`` answers of the target on the same z, in the same order.

        Returns
        -------
        self
        """
        references, population_references, population_target = fit_inputs(
            self, references, population_references, population_target
        )
        problems: list[str] = []
        self._check_params(problems)
        self._check_data(references, population_references, population_target, problems)
        raise_if_problems(type(self).__name__, problems)
        assert population_references is not None and population_target is not None

        inc = references.inclusion
        z_inc = population_references.inclusion
        lp_ref = log_query_mean(references.log_confidence)  # (K, n): log Pr(x | θ′)
        lp_ref_z = log_query_mean(population_references.log_confidence)  # (K, Z)
        lp_tgt_z = log_query_mean(population_target.log_confidence)[0]  # (Z,)

        self.online_ = bool(self.online)
        self.tuning_auc_ = np.full(len(self.a_grid), np.nan)
        self.tuning_models_ = np.zeros(0, dtype=np.int64)
        if self.online_:
            self.a_, self.a_source_ = None, "online"
            x_mask = z_mask = None
        else:
            x_mask = ~inc
            z_mask = None if z_inc is None else ~z_inc
            if self.offline_a is not None:
                self.a_, self.a_source_ = float(self.offline_a), "given"
            else:
                self._tune_a(lp_ref, inc, lp_ref_z, z_inc)

        log_mean_x = masked_log_mean(lp_ref, x_mask)
        log_mean_z = masked_log_mean(lp_ref_z, z_mask)
        self.n_records_without_out_ = int(np.count_nonzero(np.isneginf(log_mean_x)))
        self.n_population_without_out_ = int(np.count_nonzero(np.isneginf(log_mean_z)))
        for what, k, total in (
            ("audited", self.n_records_without_out_, lp_ref.shape[1]),
            ("population", self.n_population_without_out_, lp_ref_z.shape[1]),
        ):
            if k:
                warnings.warn(
                    f"RMIA: {k} of {total} {what} records have no OUT reference model; their "
                    "Pr_OUT falls back to the average over the other records",
                    ReferenceCoverageWarning,
                    stacklevel=2,
                )
        self.log_pr_x_ = _log_marginal(_fill_missing(log_mean_x), self.a_)
        log_ratio_z = lp_tgt_z - _log_marginal(_fill_missing(log_mean_z), self.a_)
        self.sorted_log_ratio_z_ = np.sort(log_ratio_z)
        self.n_population_ = int(log_ratio_z.size)
        self.tie_epsilon_ = 0.5 / self.n_population_
        self.record_ids_ = references.record_ids.copy()
        self.n_queries_ = references.n_queries
        return self

    def score(self, target: Observations | Evidence) -> np.ndarray:
        """Membership scores of the audited records, higher = more likely a member.

        Parameters
        ----------
        target : Observations or Evidence
            The audit's evidence (the target's answers in it), or ``(1, n, a)`` answers of the
            target on the records given to ``fit``, in order.

        Returns
        -------
        (n,) float64
            The fraction of population records x dominates, in [0, 1], plus (with
            ``tie_break``) a secondary key below ``tie_epsilon_``.
        """
        target = score_input(self, target)
        check_is_fitted(self, "sorted_log_ratio_z_")
        lp_target = log_query_mean(check_target(self, target).log_confidence)[0]
        log_ratio_x = lp_target - self.log_pr_x_
        return _dominance(
            log_ratio_x, self.sorted_log_ratio_z_, float(self.gamma), bool(self.tie_break)
        )

    # ------------------------------------------------------------------ tuning a

    def _tune_a(
        self,
        lp_ref: np.ndarray,
        inc: np.ndarray,
        lp_ref_z: np.ndarray,
        z_inc: np.ndarray | None,
    ) -> None:
        """Choose a by attacking reference models with the others (see class Notes)."""
        n_models = lp_ref.shape[0]
        grid = np.asarray(self.a_grid, dtype=np.float64)
        n_held = min(n_models, int(self.n_tuning_models)) if n_models >= 2 else 0
        held = np.unique(np.round(np.linspace(0, n_models - 1, n_held)).astype(np.int64))
        aucs = np.full((held.size, grid.size), np.nan)
        on_audited = LeaveOneOutLogMean(lp_ref, ~inc) if held.size else None
        on_population = LeaveOneOutLogMean(lp_ref_z, None if z_inc is None else ~z_inc)
        for row, j in enumerate(held):
            if 0 < inc[j].sum() < inc.shape[1]:
                lp_x, truth, log_out_x = lp_ref[j], inc[j], on_audited.without(j)
            elif z_inc is not None and 0 < z_inc[j].sum() < z_inc.shape[1]:
                lp_x, truth, log_out_x = lp_ref_z[j], z_inc[j], on_population.without(j)
            else:
                continue
            # With tie_break the attack's score is strictly increasing in log r_x, so its
            # ROC is that of log r_x and the population side is not needed here.
            log_out_z = None if self.tie_break else on_population.without(j)
            if np.isneginf(log_out_x).all() or (
                log_out_z is not None and np.isneginf(log_out_z).all()
            ):
                continue
            log_out_x = _fill_missing(log_out_x)
            for col, a in enumerate(grid):
                scores = lp_x - _log_marginal(log_out_x, a)
                if log_out_z is not None:
                    log_pr_z = _log_marginal(_fill_missing(log_out_z), a)
                    ratio_z = np.sort(lp_ref_z[j] - log_pr_z)
                    scores = _dominance(scores, ratio_z, float(self.gamma), tie_break=False)
                aucs[row, col] = roc_auc(scores, truth)
        used = ~np.isnan(aucs).all(axis=1)
        if not used.any():
            warnings.warn(
                f"RMIA: cannot tune offline_a (no reference model can play the target: "
                f"{n_models} reference model(s), and none trained on some but not all "
                f"audited or population records); using a = {FALLBACK_A}",
                ReferenceCoverageWarning,
                stacklevel=3,
            )
            self.a_, self.a_source_ = FALLBACK_A, "fallback"
            return
        self.tuning_auc_ = aucs[used].mean(axis=0)
        self.tuning_models_ = held[used]
        self.a_ = float(grid[int(np.argmax(self.tuning_auc_))])
        self.a_source_ = "tuned"


def _fill_missing(log_mean: np.ndarray) -> np.ndarray:
    """Replace -inf (no model selected) by the log of the average over the other entries."""
    missing = np.isneginf(log_mean)
    if not missing.any():
        return log_mean
    filled = log_mean.copy()
    filled[missing] = logsumexp(log_mean[~missing]) - np.log(np.count_nonzero(~missing))
    return filled


def _log_marginal(log_mean: np.ndarray, a: float | None) -> np.ndarray:
    """log Pr(x): the reference mean itself online (``a`` None), else the offline rule
    log(½((1 + a) · Pr_OUT + (1 − a))) of Zarifzadeh et al., computed in log space."""
    if a is None or a >= 1.0:
        return log_mean
    return np.logaddexp(np.log1p(a) + log_mean, np.log1p(-a)) - np.log(2.0)


def _dominance(
    log_ratio_x: np.ndarray, sorted_log_ratio_z: np.ndarray, gamma: float, tie_break: bool
) -> np.ndarray:
    """Fraction of z with LR(x, z) ≥ γ, by binary search; plus the tie-breaking key."""
    n_z = sorted_log_ratio_z.size
    count = np.searchsorted(sorted_log_ratio_z, log_ratio_x - np.log(gamma), side="right")
    scores = count / n_z
    if tie_break:
        scores = scores + (0.5 / n_z) * squash(log_ratio_x)
    return scores.astype(np.float64, copy=False)
