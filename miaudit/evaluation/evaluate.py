"""One call from an attack's scores to every figure the report shows.

:func:`evaluate_attack` validates once, then computes the threshold-free figures (AUC, ROC,
TPR at fixed FPRs, maximum advantage) over all audited records, the threshold figures
(accuracy, precision, recall, epsilon bound) with a held-out threshold, and the same
threshold-free figures per class. Caveats never disappear: an FPR too low for the number of
non-members, or a class too small or one-sided, stays in the results, is flagged there, is
listed in ``AttackEvaluation.warnings`` and is raised as a Python warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from miaudit.errors import raise_if_problems
from miaudit.evaluation.results import AttackEvaluation, ClassResult, TprAtFpr
from miaudit.evaluation.roc import (
    _auc,
    _auc_bounds,
    _auc_se,
    _check_rate,
    _check_scores,
    _max_advantage,
    _rates,
    _resolvable,
    _roc_counts,
    _tpr_at,
)
from miaudit.evaluation.settings import MIN_PER_SIDE
from miaudit.evaluation.thresholds import (
    calibration_mask,
    epsilon_bound,
    precision_recall,
    threshold_metrics,
)

__all__ = [
    "DEFAULT_FPRS",
    "LowFprResolutionWarning",
    "SmallSliceWarning",
    "evaluate_attack",
]

DEFAULT_FPRS: tuple[float, ...] = (0.001, 0.01, 0.1)
"""FPR targets every report carries (report.json needs at least these three)."""

_MAX_LISTED = 10  # class names spelled out in one warning before "and N more"


class LowFprResolutionWarning(UserWarning):
    """Too few non-members to measure the TPR at a requested FPR.

    With ``N`` non-members the smallest non-zero FPR is ``1 / N``; below it the "TPR at FPR
    t" is the TPR at FPR 0 and says little about ``t``.
    """


class SmallSliceWarning(UserWarning):
    """A per-class slice is too small, or lacks members or non-members, to be measured well."""


def _needed_nonmembers(fpr_target: float) -> int:
    """Fewest non-members for which one false positive stays within ``fpr_target``."""
    return math.ceil(1.0 / fpr_target - 1e-9)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _check_settings(
    name: str,
    family: str,
    labels: np.ndarray | None,
    class_names: Sequence[str] | None,
    fprs: Sequence[float],
    delta: float,
    confidence: float,
    calibration_fraction: float,
    seconds: float,
    min_class_records: int,
    problems: list[str],
) -> None:
    for field, value in (("name", name), ("family", family)):
        if not isinstance(value, str) or not value:
            problems.append(f"{field} must be a non-empty string, got {value!r}")
    try:
        fpr_list = list(fprs)
    except TypeError:
        problems.append(f"fprs must be a sequence of rates in (0, 1], got {fprs!r}")
    else:
        if not fpr_list:
            problems.append("fprs must name at least one FPR target")
        for t in fpr_list:
            _check_rate(f"fprs entry {t!r}", t, problems, allow_one=True)
        if len(set(fpr_list)) != len(fpr_list):
            problems.append(f"fprs has repeated entries: {fpr_list}")
    if not (isinstance(delta, int | float | np.number) and 0.0 <= delta < 1.0):
        problems.append(f"delta must be in [0, 1), got {delta!r}")
    _check_rate("confidence", confidence, problems, allow_one=False)
    _check_rate("calibration_fraction", calibration_fraction, problems, allow_one=False)
    if not (isinstance(seconds, int | float | np.number) and 0.0 <= seconds < math.inf):
        problems.append(f"seconds must be a finite number >= 0, got {seconds!r}")
    if not isinstance(min_class_records, int | np.integer) or min_class_records < 1:
        problems.append(f"min_class_records must be an int >= 1, got {min_class_records!r}")
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
            problems.append("class_names must be a sequence of strings")
        elif labels is None:
            problems.append("class_names were given without labels")
        elif labels.ndim == 1 and labels.size and labels.max() >= len(class_names):
            problems.append(
                f"labels go up to {labels.max()} but only {len(class_names)} class_names were given"
            )


def _per_class(
    scores: np.ndarray,
    is_member: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None,
    fprs: list[float],
    confidence: float,
    min_class_records: int,
    threshold: float | None = None,
    evaluation: np.ndarray | None = None,
) -> tuple[list[ClassResult], list[tuple[str, type[Warning]]]]:
    """Threshold-free figures per class; notes and warnings for every class that is shaky.

    One stable sort by label, then a slice per class: the loop runs over classes only.
    """
    if class_names is not None:
        classes = np.arange(len(class_names))  # every named class, present or not
    else:
        classes = np.unique(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, classes, side="left")
    stops = np.searchsorted(sorted_labels, classes, side="right")

    results: list[ClassResult] = []
    undefined: list[str] = []
    tiny: list[str] = []
    unresolved: dict[float, int] = dict.fromkeys(fprs, 0)
    for cls, a, b in zip(classes.tolist(), starts.tolist(), stops.tolist(), strict=True):
        cname = class_names[cls] if class_names is not None else str(cls)
        tag = f"{cls} ({cname})" if cname != str(cls) else str(cls)
        idx = order[a:b]
        s, m = scores[idx], is_member[idx]
        n_pos = int(np.count_nonzero(m))
        n_neg = m.size - n_pos
        if n_pos == 0 or n_neg == 0:
            if m.size == 0:
                note = "no audited records of this class, so AUC, TPR and advantage are undefined"
            else:
                lacking = "members" if n_pos == 0 else "non-members"
                note = (
                    f"no {lacking} among the {m.size} audited records of this class, "
                    "so AUC, TPR and advantage are undefined"
                )
            undefined.append(tag)
            results.append(
                ClassResult(
                    class_index=cls,
                    class_name=cname,
                    n_members=n_pos,
                    n_nonmembers=n_neg,
                    auc=None,
                    tpr_at_fpr={},
                    advantage=None,
                    note=note,
                )
            )
            continue
        c = _roc_counts(s, m)
        notes = []
        if min(n_pos, n_neg) < min_class_records:
            notes.append(
                f"only {n_pos} members and {n_neg} non-members (fewer than "
                f"{min_class_records} on a side): figures are noisy"
            )
            tiny.append(tag)
        tprs = {t: _tpr_at(c, t, confidence) for t in fprs}
        bad = [t for t in fprs if not tprs[t].resolvable]
        for t in bad:
            unresolved[t] += 1
        if bad:
            notes.append(
                f"TPR at FPR {', '.join(f'{t:g}' for t in bad)} unresolvable with "
                f"{n_neg} non-members"
            )
        precision = recall = None
        if threshold is not None and evaluation is not None:
            held = evaluation[idx]
            predicted, members = s[held] >= threshold, m[held]
            precision, recall = precision_recall(
                int((predicted & members).sum()), int(predicted.sum()), int(members.sum())
            )
        results.append(
            ClassResult(
                class_index=cls,
                class_name=cname,
                n_members=n_pos,
                n_nonmembers=n_neg,
                auc=_auc(c),
                tpr_at_fpr=tprs,
                advantage=_max_advantage(c)[0],
                note="; ".join(notes),
                precision=precision,
                recall=recall,
            )
        )

    caveats: list[tuple[str, type[Warning]]] = []
    if undefined:
        caveats.append(
            (
                f"{len(undefined)} of {len(classes)} classes lack members or non-members; "
                f"their AUC is reported as None: {_listing(undefined)}",
                SmallSliceWarning,
            )
        )
    if tiny:
        caveats.append(
            (
                f"{len(tiny)} of {len(classes)} classes have fewer than {min_class_records} "
                f"members or non-members; their per-class figures are noisy: {_listing(tiny)}",
                SmallSliceWarning,
            )
        )
    measured = len(classes) - len(undefined)
    for t, k in unresolved.items():
        if k:
            caveats.append(
                (
                    f"per-class TPR at FPR {t:g} is unresolvable in {k} of {measured} "
                    f"classes: each needs at least {_needed_nonmembers(t)} non-members",
                    LowFprResolutionWarning,
                )
            )
    return results, caveats


def evaluate_attack(
    name: str,
    family: str,
    scores: ArrayLike,
    is_member: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    class_names: Sequence[str] | None = None,
    fprs: Sequence[float] = DEFAULT_FPRS,
    delta: float = 1e-5,
    confidence: float = 0.95,
    calibration_fraction: float = 0.5,
    seed: int | np.random.Generator = 0,
    seconds: float = 0.0,
    min_class_records: int = 20,
) -> AttackEvaluation:
    """Every evaluation figure for one attack's membership scores.

    Parameters
    ----------
    name, family : str
        Attack name (unique within an audit) and family, copied into the result.
    scores : (n,) array_like of float
        Membership scores, higher = more likely a member; finite.
    is_member : (n,) array_like of bool
        At least two members and two non-members, so both the calibration and the
        evaluation records hold one of each.
    labels : (n,) array_like of int, optional
        Class of each record; enables per-class results.
    class_names : sequence of str, optional
        Names of classes ``0 .. len(class_names) - 1``. When given, every named class gets a
        result, also those absent from the audited records (flagged, not dropped).
    fprs : sequence of float in (0, 1]
        FPR targets for TPR at fixed FPR (Carlini et al., S&P 2022).
    delta : float in [0, 1)
        Delta of the (epsilon, delta)-DP hypothesis tested by the epsilon bound.
    confidence : float in (0, 1)
        Level of the Clopper-Pearson intervals (two-sided for TPR, one-sided for epsilon).
    calibration_fraction : float in (0, 1)
        Share of members and of non-members that choose the thresholds
        (:func:`~miaudit.evaluation.calibration_mask`).
    seed : int or numpy.random.Generator
        Draws the calibration records.
    seconds : float
        Wall time of the attack's fit and score, copied into the result.
    min_class_records : int
        A class with fewer members or fewer non-members than this is flagged as noisy.

    Returns
    -------
    AttackEvaluation
        AUC (with DeLong's standard error and interval), ROC, TPR at each FPR and the
        maximum advantage use all records; the threshold metrics and epsilon bound use a
        threshold chosen on the calibration records and are measured on the rest.
        ``warnings`` lists every caveat, each also raised with :func:`warnings.warn`
        (:class:`LowFprResolutionWarning`, :class:`SmallSliceWarning`).

    Raises
    ------
    InvalidAuditInput
        Listing every problem with the arrays and settings at once.

    Notes
    -----
    O(n log n): a handful of sorts and cumulative sums, loops over classes and FPR targets
    only.
    """
    problems: list[str] = []
    s, m, lab = _check_scores(scores, is_member, labels, problems)
    _check_settings(
        name,
        family,
        lab,
        class_names,
        fprs,
        delta,
        confidence,
        calibration_fraction,
        seconds,
        min_class_records,
        problems,
    )
    if m.ndim == 1 and not problems:
        n_pos = int(np.count_nonzero(m))
        if min(n_pos, m.size - n_pos) < MIN_PER_SIDE:
            problems.append(
                f"is_member has {n_pos} members and {m.size - n_pos} non-members; a held-out "
                f"threshold needs at least {MIN_PER_SIDE} of each"
            )
    raise_if_problems(f"evaluate_attack({name!r})", problems)
    fpr_list = [float(t) for t in fprs]
    confidence = float(confidence)

    c = _roc_counts(s, m)
    roc_fpr, roc_tpr = _rates(c)
    tprs: dict[float, TprAtFpr] = {t: _tpr_at(c, t, confidence) for t in fpr_list}

    caveats: list[tuple[str, type[Warning]]] = []
    for t in fpr_list:
        if not _resolvable(c.n_neg, t):
            caveats.append(
                (
                    f"TPR at FPR {t:g} is unresolvable: with {c.n_neg} non-members the "
                    f"smallest non-zero FPR is {1 / c.n_neg:.3g}, so the figure is the TPR "
                    f"at FPR 0; at least {_needed_nonmembers(t)} non-members are needed",
                    LowFprResolutionWarning,
                )
            )

    cal = calibration_mask(m, fraction=calibration_fraction, seed=seed)
    held_out = threshold_metrics(s, m, cal)
    eps = epsilon_bound(s, m, cal, delta=float(delta), confidence=confidence)

    per_class: list[ClassResult] = []
    if lab is not None:
        per_class, class_caveats = _per_class(
            s,
            m,
            lab,
            class_names,
            fpr_list,
            confidence,
            int(min_class_records),
            threshold=held_out.threshold,
            evaluation=~cal,
        )
        caveats.extend(class_caveats)

    for message, category in caveats:
        warnings.warn(f"{name}: {message}", category, stacklevel=2)

    auc = _auc(c)
    auc_se = _auc_se(s, m)
    return AttackEvaluation(
        name=name,
        family=family,
        auc=auc,
        auc_se=auc_se,
        auc_ci=_auc_bounds(auc, auc_se, confidence),
        roc_fpr=roc_fpr,
        roc_tpr=roc_tpr,
        tpr_at_fpr=tprs,
        max_advantage=_max_advantage(c)[0],
        threshold_metrics=held_out,
        epsilon=eps,
        per_class=per_class,
        n_members=c.n_pos,
        n_nonmembers=c.n_neg,
        seconds=float(seconds),
        warnings=[message for message, _ in caveats],
    )
