"""One-sided lower confidence bounds on an attack's AUC, TPR at a low FPR and ε.

The verdict of an audit claims that *some* attack leaks at least so much. Such a claim is a
statement about the model, not about the sample, only when it rests on a lower confidence
bound; and an audit runs several attacks, so the bounds must hold simultaneously. Each
function here takes the confidence it is asked for (the verdict passes ``1 - alpha / m``,
Bonferroni over its ``m`` bounds) and works from the counts an
:class:`~miaudit.evaluation.AttackEvaluation` already holds, so that no score is re-read.

- **AUC**: ``auc - z se`` with DeLong's standard error (DeLong et al., Biometrics 1988).
- **TPR at FPR f, threshold included.** The table's TPR at 1% FPR picks the best threshold
  on the very records it is measured on, so its true FPR may well exceed 1%. Here the
  threshold is fixed by the non-members alone: the lowest one at which the one-sided
  Clopper-Pearson upper bound of the FPR is still at most ``f``. With probability at least
  ``1 - a`` its true FPR is at most ``f`` (the count of non-members above the true ``f``
  quantile is Binomial(N, f)); the members, independent of the non-members, then give a
  one-sided Clopper-Pearson lower bound on its TPR at level ``1 - a``. Both hold together
  with probability ``1 - 2a``, so each side gets half of the confidence asked for.
- **ε**: the held-out bound of Jagielski et al. (NeurIPS 2020) recomputed from its
  evaluation counts, each side's upper bound at half the error.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from miaudit.evaluation.epsilon import _epsilon_lower_bounds
from miaudit.evaluation.intervals import _clopper_pearson_lower, _clopper_pearson_upper
from miaudit.evaluation.results import AttackEvaluation

__all__ = [
    "auc_chance_halfwidth",
    "auc_lower_bound",
    "epsilon_lower_bound_at",
    "nonmembers_to_bound_fpr",
    "records_for_auc_halfwidth",
    "tpr_lower_bound",
]


def auc_lower_bound(attack: AttackEvaluation, confidence: float) -> float:
    """One-sided normal lower bound ``auc - z_conf se`` (DeLong), at least 0."""
    return max(0.0, attack.auc - float(norm.ppf(confidence)) * attack.auc_se)


def nonmembers_to_bound_fpr(fpr: float, confidence: float) -> int:
    """Fewest non-members for which zero false positives bound the FPR by ``fpr``.

    With no false positive among ``N`` non-members the one-sided Clopper-Pearson bound is
    ``1 - (1 - confidence)^(1/N)``; it reaches ``fpr`` at ``N = log(1 - conf) / log(1 - fpr)``.
    """
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-fpr) - 1e-9)


def tpr_lower_bound(attack: AttackEvaluation, fpr: float, confidence: float) -> float | None:
    """Lower bound on the TPR of a threshold whose FPR is bounded by ``fpr``, or None.

    None when the audit has too few non-members (:func:`nonmembers_to_bound_fpr` at half
    the error) to bound any threshold's FPR by ``fpr``.
    """
    side = 1.0 - (1.0 - confidence) / 2.0
    n_pos, n_neg = attack.n_members, attack.n_nonmembers
    if n_neg < nonmembers_to_bound_fpr(fpr, side):
        return None
    fps = np.rint(np.asarray(attack.roc_fpr) * n_neg).astype(np.int64)
    tps = np.rint(np.asarray(attack.roc_tpr) * n_pos).astype(np.int64)
    # Largest false-positive count whose FPR upper bound stays within fpr (monotone in k).
    candidates = np.arange(int(n_neg * fpr) + 1, dtype=np.int64)
    uppers = _clopper_pearson_upper(candidates, np.int64(n_neg), side)
    allowed = int(candidates[uppers <= fpr][-1])
    # The ROC is a staircase with non-decreasing fps and tps: the last point within the
    # allowed false positives is the lowest such threshold and has the most members above.
    i = int(np.searchsorted(fps, allowed, side="right")) - 1
    return float(_clopper_pearson_lower(np.int64(tps[i]), np.int64(n_pos), side))


def epsilon_lower_bound_at(attack: AttackEvaluation, confidence: float) -> float:
    """The held-out ε bound recomputed with each error bound at ``1 - (1 - conf) / 2``."""
    eps = attack.epsilon
    if eps.nonmembers == 0 or eps.members == 0:
        return 0.0
    side = 1.0 - (1.0 - confidence) / 2.0
    fpr_u = _clopper_pearson_upper(np.int64(eps.false_positives), np.int64(eps.nonmembers), side)
    fnr_u = _clopper_pearson_upper(np.int64(eps.false_negatives), np.int64(eps.members), side)
    return float(_epsilon_lower_bounds(fpr_u, fnr_u, eps.delta))


def auc_chance_halfwidth(n_members: int, n_nonmembers: int, confidence: float = 0.95) -> float:
    """Half-width of the two-sided interval of a chance attack's AUC on these counts.

    Under no leakage the AUC is a Mann-Whitney statistic with variance
    ``(P + N + 1) / (12 P N)`` (Mann & Whitney 1947): how finely the audit can tell AUCs
    apart, whatever the attack.
    """
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p, n = n_members, n_nonmembers
    return z * math.sqrt((p + n + 1) / (12.0 * p * n))


def records_for_auc_halfwidth(halfwidth: float, confidence: float = 0.95) -> int:
    """Members (and as many non-members) that bring :func:`auc_chance_halfwidth` within
    ``halfwidth``: the root of ``12 h^2 n^2 = z^2 (2 n + 1)``."""
    z2 = float(norm.ppf(0.5 + confidence / 2.0)) ** 2
    a = 12.0 * halfwidth**2
    return math.ceil((2.0 * z2 + math.sqrt(4.0 * z2**2 + 4.0 * a * z2)) / (2.0 * a))
