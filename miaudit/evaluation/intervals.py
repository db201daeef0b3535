"""Exact (Clopper-Pearson) confidence intervals for a binomial proportion.

A TPR at 0.1% FPR may rest on a handful of true positives; a normal-approximation interval
is then wrong exactly where it matters. Clopper & Pearson (Biometrika 26, 1934) invert the
binomial test: for ``k`` successes in ``n`` trials and ``alpha = 1 - confidence``,

    low  = Beta^-1(alpha / 2;     k,     n - k + 1)   (0 when k = 0)
    high = Beta^-1(1 - alpha / 2; k + 1, n - k)       (1 when k = n)

It is conservative: coverage is at least the nominal level for every true proportion. The
one-sided upper bound puts all of ``alpha`` on one side, ``Beta^-1(1 - alpha; k + 1, n - k)``,
which is what the empirical epsilon bound needs (Jagielski et al., NeurIPS 2020, Sec. 4).

Everything is vectorised over arrays of ``k`` (and ``n``), because the epsilon threshold
search needs an upper bound at every candidate threshold at once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta

from miaudit.errors import raise_if_problems

__all__ = ["clopper_pearson", "clopper_pearson_upper"]


def _check_counts(
    owner: str, k: ArrayLike, n: ArrayLike, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    problems: list[str] = []
    k_arr = np.asarray(k)
    n_arr = np.asarray(n)
    for name, arr in (("k", k_arr), ("n", n_arr)):
        if arr.dtype.kind not in "iuf" or (
            arr.dtype.kind == "f" and not (np.isfinite(arr) & (arr == np.round(arr))).all()
        ):
            problems.append(f"{name} must be whole numbers, got dtype {arr.dtype}")
    if not problems:
        k_arr = k_arr.astype(np.int64)
        n_arr = n_arr.astype(np.int64)
        try:
            kb, nb = np.broadcast_arrays(k_arr, n_arr)
        except ValueError:
            problems.append(f"k and n shapes {k_arr.shape} and {n_arr.shape} do not broadcast")
        else:
            if (kb < 0).any() or (kb > nb).any():
                problems.append("need 0 <= k <= n for every count")
    ok = isinstance(confidence, int | float | np.number) and np.isfinite(confidence)
    if not ok or not 0.0 < confidence < 1.0:
        problems.append(f"confidence must be in (0, 1), got {confidence!r}")
    raise_if_problems(owner, problems)
    return k_arr, n_arr


def _clopper_pearson(k: np.ndarray, n: np.ndarray, confidence: float) -> tuple:
    """Unchecked two-sided interval; ``k``, ``n`` int64 arrays (or numpy scalars)."""
    alpha = 1.0 - confidence
    # Feed beta.ppf only valid shape parameters, then apply the k = 0 / k = n conventions.
    low = np.where(k > 0, beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1), 0.0)
    high = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)), 1.0)
    return low, high


def _clopper_pearson_upper(k: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """Unchecked one-sided upper bound; ``k``, ``n`` int64 arrays (or numpy scalars)."""
    return np.where(k < n, beta.ppf(confidence, k + 1, np.maximum(n - k, 1)), 1.0)


def _clopper_pearson_lower(k: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """Unchecked one-sided lower bound ``Beta^-1(1 - conf; k, n - k + 1)`` (0 at ``k = 0``)."""
    return np.where(k > 0, beta.ppf(1.0 - confidence, np.maximum(k, 1), n - k + 1), 0.0)


def _shape_like(value: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(value) if scalar else np.asarray(value, dtype=np.float64)


def clopper_pearson(
    k: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Two-sided Clopper-Pearson interval for ``k`` successes in ``n`` trials.

    Parameters
    ----------
    k, n : int or array_like of int
        Successes and trials, broadcast together; ``0 <= k <= n``. ``n = 0`` gives the
        uninformative interval (0, 1).
    confidence : float in (0, 1)
        Coverage of the interval, e.g. 0.95.

    Returns
    -------
    low, high : float, or float64 arrays of the broadcast shape
        ``Beta^-1(alpha/2; k, n-k+1)`` and ``Beta^-1(1-alpha/2; k+1, n-k)`` with
        ``alpha = 1 - confidence`` (Clopper & Pearson 1934); ``low = 0`` at ``k = 0`` and
        ``high = 1`` at ``k = n``.

    Raises
    ------
    InvalidAuditInput
        For non-integer counts, ``k < 0``, ``k > n`` or a confidence outside (0, 1).
    """
    k_arr, n_arr = _check_counts("clopper_pearson", k, n, confidence)
    scalar = k_arr.ndim == 0 and n_arr.ndim == 0
    low, high = _clopper_pearson(k_arr, n_arr, float(confidence))
    return _shape_like(low, scalar), _shape_like(high, scalar)


def clopper_pearson_upper(
    k: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> float | np.ndarray:
    """One-sided Clopper-Pearson upper confidence bound for ``k`` successes in ``n``.

    With probability at least ``confidence`` the true proportion is at most this bound.

    Parameters
    ----------
    k, n : int or array_like of int
        Broadcast together; ``0 <= k <= n``.
    confidence : float in (0, 1)

    Returns
    -------
    float or float64 array
        ``Beta^-1(confidence; k+1, n-k)``, and 1 at ``k = n`` (including ``n = 0``).

    Raises
    ------
    InvalidAuditInput
        For non-integer counts, ``k < 0``, ``k > n`` or a confidence outside (0, 1).
    """
    k_arr, n_arr = _check_counts("clopper_pearson_upper", k, n, confidence)
    scalar = k_arr.ndim == 0 and n_arr.ndim == 0
    return _shape_like(_clopper_pearson_upper(k_arr, n_arr, float(confidence)), scalar)
