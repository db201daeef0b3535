"""Empirical lower bound on the epsilon of (epsilon, delta)-differential privacy.

Membership inference is a hypothesis test between "trained with x" and "trained without x".
Kairouz, Oh & Viswanath (ICML 2015, Theorem 2.1) show that any test against an
(epsilon, delta)-DP mechanism satisfies

    FPR + e^epsilon * FNR >= 1 - delta    and    FNR + e^epsilon * FPR >= 1 - delta.

Solving for epsilon, an attack's error rates prove that the training cannot be DP for any
epsilon below

    epsilon_lb = max(0, log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR)).

Jagielski, Ullman & Oprea (NeurIPS 2020, "Auditing differentially private machine learning",
Sec. 4) make it a statistically valid claim by plugging in one-sided Clopper-Pearson upper
bounds FPR_u, FNR_u measured at a threshold chosen on separate data; the bound then holds
with the bounds' confidence.
"""

from __future__ import annotations

import numpy as np

from miaudit.errors import raise_if_problems
from miaudit.validation import is_real

__all__ = ["epsilon_lower_bound"]


def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """log(num / den) where the inequality says something, else -inf.

    A numerator <= 0 means that side of the inequality holds for every epsilon >= 0 and
    bounds nothing (-inf, dropped by the max with 0). A zero denominator with a positive
    numerator means no finite epsilon satisfies it: +inf.
    """
    out = np.full(np.broadcast(num, den).shape, -np.inf)
    num, den = np.broadcast_arrays(num, den)
    finite = (num > 0) & (den > 0)
    out[finite] = np.log(num[finite] / den[finite])
    out[(num > 0) & (den <= 0)] = np.inf
    return out


def _epsilon_lower_bounds(fpr_upper: np.ndarray, fnr_upper: np.ndarray, delta: float) -> np.ndarray:
    """Unchecked, vectorised bound over arrays of (FPR_u, FNR_u) pairs."""
    fpr_upper = np.asarray(fpr_upper, dtype=np.float64)
    fnr_upper = np.asarray(fnr_upper, dtype=np.float64)
    one_side = _log_ratio(1.0 - delta - fpr_upper, fnr_upper)
    other_side = _log_ratio(1.0 - delta - fnr_upper, fpr_upper)
    return np.maximum(0.0, np.maximum(one_side, other_side))


def epsilon_lower_bound(fpr_upper: float, fnr_upper: float, delta: float) -> float:
    """Lower bound on epsilon implied by an attack's (upper-bounded) error rates.

    ``max(0, log((1 - delta - FPR_u) / FNR_u), log((1 - delta - FNR_u) / FPR_u))``
    (Kairouz et al. 2015, Theorem 2.1; Jagielski et al. 2020, Sec. 4).

    Parameters
    ----------
    fpr_upper, fnr_upper : float in [0, 1]
        Upper confidence bounds on the attack's false positive and false negative rates,
        e.g. one-sided Clopper-Pearson bounds at 95%.
    delta : float in [0, 1)
        The delta of (epsilon, delta)-DP being tested, typically well below 1 / n.

    Returns
    -------
    float
        Non-negative. ``inf`` when an upper bound is exactly 0 while the other side is
        informative: no finite epsilon is consistent with a perfect test. Clopper-Pearson
        upper bounds are positive whenever there was at least one trial, so this only
        arises from bounds supplied by hand.

    Raises
    ------
    InvalidAuditInput
        For a rate outside [0, 1] or delta outside [0, 1).
    """
    problems: list[str] = []
    for name, value in (("fpr_upper", fpr_upper), ("fnr_upper", fnr_upper)):
        if not is_real(value) or not 0.0 <= value <= 1.0:
            problems.append(f"{name} must be a rate in [0, 1], got {value!r}")
    if not is_real(delta) or not 0.0 <= delta < 1.0:
        problems.append(f"delta must be in [0, 1), got {delta!r}")
    raise_if_problems("epsilon_lower_bound", problems)
    return float(_epsilon_lower_bounds(fpr_upper, fnr_upper, float(delta)))
