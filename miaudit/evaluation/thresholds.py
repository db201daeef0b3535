"""Hard decisions at thresholds chosen on held-out calibration records.

A threshold picked on the same records it is scored on flatters the attack (the maximum of
many noisy advantages is biased upwards; a null attack on 100 records easily shows 0.2). So
the audited records are split once, stratified by membership, into *calibration* records
that choose the threshold and *evaluation* records that measure it. Jagielski et al.
(NeurIPS 2020, Sec. 4) require exactly this for the epsilon bound to be a valid claim.
Nothing here looks at an evaluation record while choosing.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from miaudit.errors import raise_if_problems
from miaudit.evaluation.epsilon import _epsilon_lower_bounds
from miaudit.evaluation.intervals import _clopper_pearson_upper
from miaudit.evaluation.results import EpsilonBound, ThresholdMetrics
from miaudit.evaluation.roc import (
    _check_rate,
    _check_scores,
    _max_advantage,
    _roc_counts,
    _RocCounts,
)

__all__ = [
    "calibration_mask",
    "choose_advantage_threshold",
    "epsilon_bound",
    "threshold_metrics",
]


def calibration_mask(
    is_member: ArrayLike,
    *,
    fraction: float = 0.5,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Draw the calibration records, stratified by membership.

    Members and non-members are each split in ``fraction``, so both parts keep the audit's
    balance and each holds at least one member and one non-member whenever there are two
    or more of each.

    Parameters
    ----------
    is_member : (n,) array_like of bool
    fraction : float in (0, 1)
        Share of the members, and of the non-members, that goes to calibration (rounded,
        then kept within [1, count - 1]).
    seed : int or numpy.random.Generator
        Randomness is passed in: the same ``is_member`` and ``seed`` give the same mask.

    Returns
    -------
    (n,) bool
        True for calibration records, False for evaluation records.
    """
    problems: list[str] = []
    m = np.asarray(is_member)
    if m.ndim != 1 or not (
        m.dtype == np.bool_ or (m.dtype.kind in "iuf" and np.isin(m, (0, 1)).all())
    ):
        problems.append(f"is_member must be a 1-d boolean array, got {m.dtype} {m.shape}")
    _check_rate("fraction", fraction, problems, allow_one=False)
    if not isinstance(seed, int | np.integer | np.random.Generator) or isinstance(seed, bool):
        problems.append(f"seed must be an int or a numpy Generator, got {seed!r}")
    raise_if_problems("calibration_mask", problems)

    m = m.astype(bool)
    rng = np.random.default_rng(seed)
    mask = np.zeros(m.size, bool)
    for group in (np.flatnonzero(m), np.flatnonzero(~m)):  # two groups, not records
        k = int(np.floor(fraction * group.size + 0.5))
        if group.size >= 2:
            k = min(max(k, 1), group.size - 1)
        mask[rng.permutation(group)[:k]] = True
    return mask


def _check_split(
    scores: ArrayLike, is_member: ArrayLike, calibration: ArrayLike, problems: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather problems with scores, is_member and the mask; each part needs both classes."""
    n_before = len(problems)
    s, m, _ = _check_scores(scores, is_member, None, problems)
    cal = np.asarray(calibration)
    if cal.dtype != np.bool_ or cal.shape != m.shape:
        problems.append(
            f"calibration must be a boolean mask shaped like is_member {m.shape}, "
            f"got {cal.dtype} {cal.shape}"
        )
    elif len(problems) == n_before:
        for part, sel in (("calibration", cal), ("evaluation", ~cal)):
            n_pos = int(np.count_nonzero(m[sel]))
            n_all = int(np.count_nonzero(sel))
            if n_pos == 0 or n_pos == n_all:
                problems.append(
                    f"the {part} records hold {n_pos} members and {n_all - n_pos} "
                    "non-members; each part needs at least one of each"
                )
    return s, m, cal


def _counts_at(scores: np.ndarray, is_member: np.ndarray, threshold: float) -> tuple:
    """(tp, fp, tn, fn) of the decision ``score >= threshold``."""
    pred = scores >= threshold
    tp = int(np.count_nonzero(pred & is_member))
    fp = int(np.count_nonzero(pred & ~is_member))
    n_pos = int(np.count_nonzero(is_member))
    return tp, fp, is_member.size - n_pos - fp, n_pos - tp


def _between(c: _RocCounts, i: int) -> float:
    """A threshold making the same calibration decisions as ROC point ``i``, centred in its gap.

    Any threshold in ``(thresholds[i + 1], thresholds[i]]`` splits the calibration records
    alike; the chosen score itself sits at the very edge of the members' side, so an
    evaluation member scoring a hair below it would be lost. The midpoint of the gap, as a
    decision stump uses, leaves no such bias. The origin and the lowest score keep their own
    value.
    """
    hi = float(c.thresholds[i])
    if i == 0 or i == c.thresholds.size - 1:
        return hi
    lo = float(c.thresholds[i + 1])
    mid = 0.5 * hi + 0.5 * lo
    return mid if lo < mid <= hi else hi


def _advantage_threshold(c: _RocCounts) -> float:
    return _between(c, _max_advantage(c)[1])


def choose_advantage_threshold(scores: ArrayLike, is_member: ArrayLike) -> float:
    """The threshold maximising the membership advantage TPR - FPR on these records.

    Maximising TPR - FPR (Youden's J; membership advantage in Yeom et al., CSF 2018,
    Definition 4) is the balanced-accuracy choice, fitting an audit where members and
    non-members are equally weighted. Pass only calibration records.

    Parameters
    ----------
    scores : (n,) array_like of float
    is_member : (n,) array_like of bool

    Returns
    -------
    float
        Predict member when ``score >= threshold``. Of several maximising ROC points the
        one with the highest threshold (the most conservative) wins, and the threshold is
        placed midway between its score and the next lower distinct score, which makes the
        same decisions on these records. If no threshold beats advantage 0 it lies just
        above the highest score and predicts nobody.
    """
    problems: list[str] = []
    s, m, _ = _check_scores(scores, is_member, None, problems)
    raise_if_problems("choose_advantage_threshold", problems)
    return _advantage_threshold(_roc_counts(s, m))


def precision_recall(tp: int, n_predicted: int, n_members: int) -> tuple[float, float]:
    """Precision and recall from counts; -1 where undefined (MindArmour's convention:
    no record predicted a member, or no member among the records)."""
    precision = tp / n_predicted if n_predicted else -1.0
    recall = tp / n_members if n_members else -1.0
    return float(precision), float(recall)


def threshold_metrics(
    scores: ArrayLike, is_member: ArrayLike, calibration: ArrayLike
) -> ThresholdMetrics:
    """Accuracy, precision, recall, F1 and advantage at a held-out threshold.

    The threshold maximises TPR - FPR on the calibration records only
    (:func:`choose_advantage_threshold`); every figure is measured on the other records.

    Parameters
    ----------
    scores : (n,) array_like of float
    is_member : (n,) array_like of bool
    calibration : (n,) bool
        True for records that choose the threshold (see :func:`calibration_mask`). Each
        part must hold at least one member and one non-member.

    Returns
    -------
    ThresholdMetrics
        Undefined figures follow MindArmour's convention: precision and F1 are -1 when no
        evaluation record is predicted a member, recall (= TPR) and F1 are -1 without
        members. When some records are predicted but none correctly, F1 is 0.
    """
    problems: list[str] = []
    s, m, cal = _check_split(scores, is_member, calibration, problems)
    raise_if_problems("threshold_metrics", problems)
    threshold = _advantage_threshold(_roc_counts(s[cal], m[cal]))

    ev = ~cal
    tp, fp, tn, fn = _counts_at(s[ev], m[ev], threshold)
    n_eval = tp + fp + tn + fn
    precision, recall = precision_recall(tp, tp + fp, tp + fn)
    if precision < 0 or recall < 0:
        f1 = -1.0
    elif precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    fpr = fp / (fp + tn)
    return ThresholdMetrics(
        threshold=threshold,
        n_calibration=int(np.count_nonzero(cal)),
        n_evaluation=n_eval,
        accuracy=(tp + tn) / n_eval,
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        tpr=float(recall),
        fpr=float(fpr),
        advantage=float(recall - fpr),
    )


def epsilon_bound(
    scores: ArrayLike,
    is_member: ArrayLike,
    calibration: ArrayLike,
    *,
    delta: float = 1e-5,
    confidence: float = 0.95,
) -> EpsilonBound:
    """Empirical epsilon lower bound at a threshold chosen on calibration records.

    Following Jagielski et al. (NeurIPS 2020, Sec. 4): on the calibration records, compute
    the bound of :func:`~miaudit.evaluation.epsilon_lower_bound` with one-sided
    Clopper-Pearson upper bounds on FPR and FNR at every candidate threshold at once and
    keep the threshold that maximises it; then report the bound measured on the evaluation
    records alone at that threshold. Choosing on the same records would overstate epsilon.

    Parameters
    ----------
    scores : (n,) array_like of float
    is_member : (n,) array_like of bool
    calibration : (n,) bool
        True for records that choose the threshold.
    delta : float in [0, 1)
    confidence : float in (0, 1)
        Level of each one-sided Clopper-Pearson bound.

    Returns
    -------
    EpsilonBound
        ``epsilon`` >= 0 on the evaluation records, with the ``fpr_upper``/``fnr_upper``
        behind it. Near 0 for a model that never saw its audited records.

    Notes
    -----
    Only Pareto corners of the calibration ROC are candidates: a point with the same false
    positives as the next one, or the same false negatives as the previous one, has no
    smaller error on either side, so its bound cannot be larger. This thins the
    ``beta.ppf`` calls without changing the largest bound (among equal bounds the highest
    kept threshold wins). As in :func:`choose_advantage_threshold`, the threshold is placed
    midway between the chosen calibration score and the next lower one.
    """
    problems: list[str] = []
    if not (isinstance(delta, int | float | np.number) and 0.0 <= delta < 1.0):
        problems.append(f"delta must be in [0, 1), got {delta!r}")
    _check_rate("confidence", confidence, problems, allow_one=False)
    s, m, cal = _check_split(scores, is_member, calibration, problems)
    raise_if_problems("epsilon_bound", problems)
    delta, confidence = float(delta), float(confidence)

    c = _roc_counts(s[cal], m[cal])
    fns = c.n_pos - c.tps
    # Keep i unless point i+1 has the same FP (and no more FN) or point i-1 the same FN.
    keep = np.ones(c.tps.size, bool)
    keep[:-1] &= c.fps[1:] > c.fps[:-1]
    keep[1:] &= fns[:-1] > fns[1:]
    idx = np.flatnonzero(keep)
    eps_cal = _epsilon_lower_bounds(
        _clopper_pearson_upper(c.fps[idx], np.int64(c.n_neg), confidence),
        _clopper_pearson_upper(fns[idx], np.int64(c.n_pos), confidence),
        delta,
    )
    threshold = _between(c, int(idx[int(np.argmax(eps_cal))]))

    ev = ~cal
    tp, fp, tn, fn = _counts_at(s[ev], m[ev], threshold)
    fpr_u = float(_clopper_pearson_upper(np.int64(fp), np.int64(fp + tn), confidence))
    fnr_u = float(_clopper_pearson_upper(np.int64(fn), np.int64(fn + tp), confidence))
    return EpsilonBound(
        epsilon=float(_epsilon_lower_bounds(fpr_u, fnr_u, delta)),
        delta=delta,
        confidence=confidence,
        threshold=threshold,
        fpr_upper=fpr_u,
        fnr_upper=fnr_u,
        false_positives=int(fp),
        nonmembers=int(fp + tn),
        false_negatives=int(fn),
        members=int(fn + tp),
    )
