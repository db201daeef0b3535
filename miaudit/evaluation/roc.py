"""ROC curve, AUC, TPR at a fixed FPR and membership advantage, from scores alone.

Every function here sees only a float64 score per audited record (higher = more likely a
member) and a boolean ``is_member``; none knows which attack made the scores. A record is
predicted "member" when ``score >= threshold``.

The ROC has one point per *distinct* score (Fawcett, "An introduction to ROC analysis",
Pattern Recognition Letters 27, 2006, Algorithm 2): records with tied scores enter the
positive side together, so no point is ever placed "between" tied records, where no
threshold could put it. Everything is one sort plus cumulative sums: O(n log n), no Python
loop over records.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm, rankdata

from miaudit.errors import raise_if_problems
from miaudit.evaluation.intervals import _clopper_pearson
from miaudit.evaluation.results import TprAtFpr
from miaudit.evaluation.settings import MIN_PER_SIDE

__all__ = [
    "auc_interval",
    "max_advantage",
    "roc_auc",
    "roc_curve",
    "tpr_at_fpr",
    "validate_scores",
]


# --------------------------------------------------------------------------- validation


def _check_scores(
    scores: ArrayLike,
    is_member: ArrayLike,
    labels: ArrayLike | None,
    problems: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Append every problem with the inputs to ``problems``; return what could be cleaned.

    Split from :func:`validate_scores` so that :func:`~miaudit.evaluation.evaluate_attack`
    can add its own settings problems and still raise only once.
    """
    s = np.asarray(scores)
    m = np.asarray(is_member)
    lab = None if labels is None else np.asarray(labels)

    if s.ndim != 1:
        problems.append(f"scores must be a 1-d array, got shape {s.shape}")
    if m.ndim != 1:
        problems.append(f"is_member must be a 1-d array, got shape {m.shape}")
    if s.ndim == 1 and m.ndim == 1 and s.shape != m.shape:
        problems.append(
            f"scores and is_member must have the same length, got {s.size} and {m.size}"
        )
    if s.size == 0 or m.size == 0:
        problems.append("no records: scores and is_member must not be empty")

    # scores: real numbers, all finite
    if s.dtype.kind not in "biuf":
        problems.append(f"scores must be real numbers, got dtype {s.dtype}")
        s = np.zeros(s.shape)
    else:
        s = s.astype(np.float64, copy=False)
        if (bad := int(np.count_nonzero(~np.isfinite(s)))) > 0:
            n_nan = int(np.count_nonzero(np.isnan(s)))
            problems.append(
                f"scores must be finite, got {n_nan} NaN and {bad - n_nan} infinite values "
                "(an attack that cannot score a record must say so, not return NaN)"
            )

    # is_member: booleans, or numbers that are all 0 or 1
    if m.dtype == np.bool_:
        pass
    elif m.dtype.kind in "iuf" and np.isin(m, (0, 1)).all():
        m = m.astype(bool)
    else:
        problems.append(f"is_member must be boolean (or only 0 and 1), got dtype {m.dtype}")
        m = np.zeros(m.shape, bool)
    if m.ndim == 1 and m.size:
        n_pos = int(np.count_nonzero(m))
        if n_pos == 0:
            problems.append(f"is_member has no members among {m.size} records; need both")
        elif n_pos == m.size:
            problems.append(f"is_member has no non-members among {m.size} records; need both")

    # labels: optional, non-negative integers aligned with the scores
    if lab is not None:
        if lab.ndim != 1 or lab.shape != m.shape:
            problems.append(
                f"labels must be a 1-d array as long as is_member ({m.size}), got shape {lab.shape}"
            )
        if lab.dtype.kind in "iu" or lab.size == 0:
            lab = lab.astype(np.int64, copy=False)
        elif lab.dtype.kind == "f" and np.isfinite(lab).all() and (lab == np.round(lab)).all():
            lab = lab.astype(np.int64)
        else:
            problems.append(f"labels must be integers (class indices), got dtype {lab.dtype}")
            lab = np.zeros(lab.shape, np.int64)
        if lab.size and (neg := int(np.count_nonzero(lab < 0))) > 0:
            problems.append(f"labels must be >= 0, got {neg} negative values (min {lab.min()})")
    return s, m, lab


def validate_scores(
    scores: ArrayLike,
    is_member: ArrayLike,
    labels: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check membership scores at the evaluation boundary and return clean arrays.

    Every problem is gathered first and raised once, so one run shows the user everything
    that is wrong.

    Parameters
    ----------
    scores : (n,) array_like of real numbers
        Membership scores, higher = more likely a member.
    is_member : (n,) array_like of bool (or 0/1)
        Ground truth aligned with ``scores``.
    labels : (n,) array_like of non-negative int, optional
        Class index of each record, for per-class results.

    Returns
    -------
    scores : (n,) float64
    is_member : (n,) bool
    labels : (n,) int64 or None

    Raises
    ------
    InvalidAuditInput
        If an array is not 1-d, lengths differ, a score is NaN or infinite, there are no
        records, no members or no non-members, or labels are negative, non-integer or of
        the wrong length.
    """
    problems: list[str] = []
    out = _check_scores(scores, is_member, labels, problems)
    raise_if_problems("validate_scores", problems)
    return out


# ------------------------------------------------------------------------------ ROC core


class _RocCounts(NamedTuple):
    """ROC as integer counts, one point per distinct score plus the origin.

    ``thresholds`` is strictly decreasing; ``tps[i]`` / ``fps[i]`` count the members /
    non-members with ``score >= thresholds[i]``. Point 0 is the origin: its threshold lies
    just above the highest score, so nobody is predicted a member.
    """

    thresholds: np.ndarray  # (k + 1,) float64
    tps: np.ndarray  # (k + 1,) int64
    fps: np.ndarray  # (k + 1,) int64
    n_pos: int
    n_neg: int


def _above_all(top: float) -> float:
    """A finite threshold that no score reaches (so it survives a JSON round trip)."""
    return float(np.nextafter(top, np.inf))


def _roc_counts(scores: np.ndarray, is_member: np.ndarray) -> _RocCounts:
    """One stable sort, then cumulative counts at the last record of each tied group."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    cum_tp = np.cumsum(is_member[order], dtype=np.int64)
    # The last position of each run of equal scores (s is sorted descending).
    ends = np.append(np.flatnonzero(s[1:] != s[:-1]), s.size - 1)
    tps = np.concatenate(([0], cum_tp[ends]))
    fps = np.concatenate(([0], ends + 1 - cum_tp[ends]))
    thresholds = np.concatenate(([_above_all(s[0])], s[ends]))
    n_pos = int(cum_tp[-1])
    return _RocCounts(thresholds, tps, fps, n_pos, s.size - n_pos)


def _auc(c: _RocCounts) -> float:
    """Trapezoidal area under the count staircase, exact in integers before one division.

    A tied group that holds members and non-members gives a diagonal segment, which credits
    each tied (member, non-member) pair with 1/2: the Mann-Whitney statistic U / (P N)
    (Hanley & McNeil, Radiology 143, 1982, eq. 1-2), as ``sklearn.metrics.roc_auc_score``.
    """
    twice_area = np.sum(np.diff(c.fps) * (c.tps[1:] + c.tps[:-1]))
    return float(twice_area / (2.0 * c.n_pos * c.n_neg))


def _auc_se(scores: np.ndarray, is_member: np.ndarray) -> float:
    """DeLong's standard error of the AUC, from placement values in one ranking.

    DeLong, DeLong & Clarke-Pearson (Biometrics 44, 1988): the AUC is the mean of each
    member's placement (the share of non-members it outscores, ties 1/2) and also of each
    non-member's; its variance is ``var(member placements) / P + var(non-member placements)
    / N``. Placements come from midranks (Sun & Xu, IEEE SPL 21, 2014): a record's rank among
    all records minus its rank among its own side, so the cost is three sorts, no loop.
    Needs at least two members and two non-members.
    """
    pos, neg = scores[is_member], scores[~is_member]
    n_pos, n_neg = pos.size, neg.size
    ranks = rankdata(scores)
    member_placement = (ranks[is_member] - rankdata(pos)) / n_neg
    nonmember_placement = 1.0 - (ranks[~is_member] - rankdata(neg)) / n_pos
    variance = member_placement.var(ddof=1) / n_pos + nonmember_placement.var(ddof=1) / n_neg
    return float(np.sqrt(max(variance, 0.0)))


def _auc_bounds(auc: float, se: float, confidence: float) -> tuple[float, float]:
    """Two-sided normal interval ``auc ± z se``, clipped to [0, 1]."""
    z = float(norm.ppf(0.5 + confidence / 2.0))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def _rates(c: _RocCounts) -> tuple[np.ndarray, np.ndarray]:
    return c.fps / c.n_neg, c.tps / c.n_pos


def _resolvable(n_neg: int, fpr_target: float) -> bool:
    """At least one non-member may be a false positive at the target FPR."""
    return n_neg * fpr_target >= 1.0 - 1e-9


def _tpr_at(c: _RocCounts, fpr_target: float, confidence: float) -> TprAtFpr:
    fpr, tpr = _rates(c)
    # fpr is non-decreasing and so is tpr: the last point with FPR <= target has the
    # highest TPR among them. Point 0 (FPR 0) always qualifies.
    i = int(np.searchsorted(fpr, fpr_target, side="right")) - 1
    low, high = _clopper_pearson(np.int64(c.tps[i]), np.int64(c.n_pos), confidence)
    return TprAtFpr(
        fpr_target=float(fpr_target),
        tpr=float(tpr[i]),
        fpr=float(fpr[i]),
        threshold=float(c.thresholds[i]),
        ci_low=float(low),
        ci_high=float(high),
        resolvable=_resolvable(c.n_neg, fpr_target),
    )


def _max_advantage(c: _RocCounts) -> tuple[float, int]:
    """Largest TPR - FPR over the ROC and the index of its (first, highest) threshold."""
    fpr, tpr = _rates(c)
    adv = tpr - fpr
    i = int(np.argmax(adv))
    return float(adv[i]), i


def _check_rate(name: str, value: float, problems: list[str], *, allow_one: bool) -> None:
    ok = isinstance(value, int | float | np.number) and np.isfinite(value)
    if not ok or not (0.0 < value < 1.0 or (allow_one and value == 1.0)):
        upper = "1]" if allow_one else "1)"
        problems.append(f"{name} must be a number in (0, {upper}, got {value!r}")


# -------------------------------------------------------------------------- public API


def roc_curve(scores: ArrayLike, is_member: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve with one point per distinct score, starting at (0, 0).

    Parameters
    ----------
    scores : (n,) array_like of float
        Membership scores, higher = more likely a member.
    is_member : (n,) array_like of bool

    Returns
    -------
    fpr, tpr : (k + 1,) float64
        False / true positive rate when every record with ``score >= thresholds[i]`` is
        predicted a member; ``k`` is the number of distinct scores. Both non-decreasing,
        from (0, 0) to (1, 1).
    thresholds : (k + 1,) float64
        Strictly decreasing. ``thresholds[0]`` is the smallest float above the highest
        score (finite, unlike scikit-learn's ``inf``), so that point predicts nobody.

    Notes
    -----
    Tied scores move together (Fawcett 2006, Algorithm 2): the curve never interpolates
    between tied records, which no threshold could separate.
    """
    s, m, _ = validate_scores(scores, is_member)
    c = _roc_counts(s, m)
    fpr, tpr = _rates(c)
    return fpr, tpr, c.thresholds


def roc_auc(scores: ArrayLike, is_member: ArrayLike) -> float:
    """Area under the ROC: the probability that a random member outscores a non-member.

    Ties count 1/2 (Mann-Whitney U / (P N); Hanley & McNeil 1982), so 0.5 means the scores
    carry no membership information. Equal to ``sklearn.metrics.roc_auc_score``.

    Parameters
    ----------
    scores : (n,) array_like of float
    is_member : (n,) array_like of bool

    Returns
    -------
    float
        In [0, 1].
    """
    s, m, _ = validate_scores(scores, is_member)
    return _auc(_roc_counts(s, m))


def auc_interval(
    scores: ArrayLike, is_member: ArrayLike, *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """AUC with DeLong's standard error and a two-sided normal confidence interval.

    Parameters
    ----------
    scores : (n,) array_like of float
    is_member : (n,) array_like of bool
        At least two members and two non-members.
    confidence : float in (0, 1)

    Returns
    -------
    auc, low, high : float
        ``low, high = auc ∓ z se`` clipped to [0, 1], ``se`` by DeLong et al. (1988). The
        interval is asymptotic; at 50 + 50 records a chance attack's AUC spreads by about
        ±0.11 (95%), which is what it reports.
    """
    problems: list[str] = []
    s, m, _ = _check_scores(scores, is_member, None, problems)
    _check_rate("confidence", confidence, problems, allow_one=False)
    if m.ndim == 1 and not problems and min(m.sum(), m.size - m.sum()) < MIN_PER_SIDE:
        problems.append(
            f"the AUC's standard error needs at least {MIN_PER_SIDE} members and "
            f"{MIN_PER_SIDE} non-members"
        )
    raise_if_problems("auc_interval", problems)
    auc = _auc(_roc_counts(s, m))
    low, high = _auc_bounds(auc, _auc_se(s, m), float(confidence))
    return auc, low, high


def tpr_at_fpr(
    scores: ArrayLike,
    is_member: ArrayLike,
    fpr_target: float,
    *,
    confidence: float = 0.95,
) -> TprAtFpr:
    """Highest TPR among ROC points whose FPR is at most ``fpr_target``, with its CI.

    Carlini et al. (S&P 2022, "Membership inference attacks from first principles", Sec. III)
    argue that an attack matters when it identifies *some* members with near certainty, so
    the TPR at a low FPR (0.1%, 0.001) is the headline figure rather than AUC.

    Parameters
    ----------
    scores : (n,) array_like of float
    is_member : (n,) array_like of bool
    fpr_target : float in (0, 1]
    confidence : float in (0, 1)
        Level of the two-sided Clopper-Pearson interval of the TPR (``k`` = true positives,
        ``n`` = members).

    Returns
    -------
    TprAtFpr
        ``resolvable`` is False when ``n_nonmembers * fpr_target < 1``: then no non-member
        may be a false positive, the point is the last one with FPR exactly 0, and the
        figure says little about the target FPR. It is flagged, not warned about here;
        :func:`~miaudit.evaluation.evaluate_attack` warns.
    """
    problems: list[str] = []
    s, m, _ = _check_scores(scores, is_member, None, problems)
    _check_rate("fpr_target", fpr_target, problems, allow_one=True)
    _check_rate("confidence", confidence, problems, allow_one=False)
    raise_if_problems("tpr_at_fpr", problems)
    return _tpr_at(_roc_counts(s, m), float(fpr_target), float(confidence))


def max_advantage(scores: ArrayLike, is_member: ArrayLike) -> tuple[float, float]:
    """Largest membership advantage TPR - FPR over every threshold, and that threshold.

    Membership advantage is Yeom et al.'s measure (CSF 2018, Definition 4). Its maximum over
    the ROC of the same records that define it is optimistic: the threshold was not held
    out. :func:`~miaudit.evaluation.threshold_metrics` gives the held-out figure.

    Returns
    -------
    advantage : float
        In [0, 1] (the origin of the ROC has advantage 0).
    threshold : float
        The highest threshold reaching it.
    """
    s, m, _ = validate_scores(scores, is_member)
    c = _roc_counts(s, m)
    adv, i = _max_advantage(c)
    return adv, float(c.thresholds[i])
