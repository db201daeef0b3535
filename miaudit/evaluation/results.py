"""Frozen result records of the evaluation stage.

These are data only: ``evaluation`` fills them from scores and ``is_member``, ``report`` reads
them. Neither side knows which attack produced the scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TprAtFpr:
    """The ROC operating point with the highest TPR whose FPR is at most ``fpr_target``.

    ``ci_low``/``ci_high`` is the Clopper-Pearson interval of that TPR over the members.
    ``resolvable`` is False when there are fewer than ``1 / fpr_target`` non-members: the
    only FPR reachable at or below the target is then 0, and the figure says little.
    """

    fpr_target: float
    tpr: float
    fpr: float
    threshold: float
    ci_low: float
    ci_high: float
    resolvable: bool


@dataclass(frozen=True)
class ThresholdMetrics:
    """Hard-decision metrics at a threshold chosen on calibration records only.

    ``threshold`` was picked to maximise the membership advantage (TPR - FPR) on the
    ``n_calibration`` calibration records; every other figure is measured on the
    ``n_evaluation`` evaluation records, which did not take part in the choice.
    Precision is -1 when the attack predicts no member (MindArmour's convention).
    """

    threshold: float
    n_calibration: int
    n_evaluation: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    tpr: float
    fpr: float
    advantage: float


@dataclass(frozen=True)
class EpsilonBound:
    """Empirical lower bound on epsilon of (epsilon, delta)-DP (Jagielski et al. 2020).

    ``fpr_upper`` and ``fnr_upper`` are one-sided Clopper-Pearson upper bounds at
    ``confidence`` on the evaluation records, at ``threshold`` chosen on the calibration
    records. The counts behind them (false positives among the evaluation non-members,
    false negatives among the evaluation members) let the verdict recompute the bound at
    the stricter confidence its multiple-testing correction asks for.
    """

    epsilon: float
    delta: float
    confidence: float
    threshold: float
    fpr_upper: float
    fnr_upper: float
    false_positives: int
    nonmembers: int
    false_negatives: int
    members: int


@dataclass(frozen=True)
class ClassResult:
    """Attack results restricted to the audited records of one class.

    ``auc`` is None when the class lacks members or non-members; ``note`` then says why.
    ``precision`` and ``recall`` are the hard decisions at the attack's held-out threshold
    (chosen on calibration records of all classes), measured on this class's evaluation
    records; -1 where undefined (MindArmour's convention), None without such records.
    """

    class_index: int
    class_name: str
    n_members: int
    n_nonmembers: int
    auc: float | None
    tpr_at_fpr: dict[float, TprAtFpr]
    advantage: float | None
    note: str = ""
    precision: float | None = None
    recall: float | None = None


@dataclass(frozen=True)
class AttackEvaluation:
    """Everything the evaluation knows about one attack's scores.

    Attributes
    ----------
    name, family : str
        Attack name (unique within an audit) and family (``"metric"``, ...).
    auc : float
        Area under the ROC over all audited records.
    auc_se : float
        DeLong's standard error of ``auc``.
    auc_ci : (float, float)
        Two-sided normal interval ``auc ± z auc_se`` at the evaluation's confidence.
    roc_fpr, roc_tpr : np.ndarray
        The full ROC curve over all audited records (for plots).
    tpr_at_fpr : dict[float, TprAtFpr]
        Keyed by the FPR target, e.g. ``0.001``.
    max_advantage : float
        max(TPR - FPR) over the ROC of all records (optimistic: threshold not held out).
    threshold_metrics : ThresholdMetrics
        Metrics at a held-out threshold.
    epsilon : EpsilonBound
    per_class : list[ClassResult]
    n_members, n_nonmembers : int
    seconds : float
        Wall time of the attack's fit and score.
    warnings : list[str]
        Caveats a reader must see (unresolvable FPRs, tiny classes, ...).
    """

    name: str
    family: str
    auc: float
    auc_se: float
    auc_ci: tuple[float, float]
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    tpr_at_fpr: dict[float, TprAtFpr]
    max_advantage: float
    threshold_metrics: ThresholdMetrics
    epsilon: EpsilonBound
    per_class: list[ClassResult]
    n_members: int
    n_nonmembers: int
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AuditResult:
    """One complete audit: what was attacked, on which records, and every attack's results.

    Attributes
    ----------
    target : dict
        JSON-ready: ``description``, ``access`` (access level name), ``architecture``,
        ``train_accuracy``, ``test_accuracy`` (on members / non-members), maybe more.
    data : dict
        JSON-ready: ``dataset`` (name), ``source``, ``n_classes``, ``class_names``,
        ``n_members``, ``n_nonmembers``, ``n_population``, ``split`` (seed and sizes).
    attacks : list[AttackEvaluation]
    scores : dict[str, np.ndarray]
        Per attack name, float64 scores aligned with ``is_member`` (higher = member).
    is_member : (n_audited,) bool
    labels : (n_audited,) int64
        Class of each audited record (labels only; raw records never enter a report).
    settings : dict
        JSON-ready evaluation settings: ``fprs``, ``delta``, ``confidence``,
        ``calibration_fraction``, ``seed``.
    warnings : list[str]
        Audit-level caveats (e.g. a target that did not train).
    seconds : float
        Wall time of the whole audit.
    records : (n_audited,) int64 or None
        Dataset index of each audited record (for the table of records that leak most).
    """

    target: dict
    data: dict
    attacks: list[AttackEvaluation]
    scores: dict[str, np.ndarray]
    is_member: np.ndarray
    labels: np.ndarray
    settings: dict
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    records: np.ndarray | None = None
