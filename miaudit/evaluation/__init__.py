"""Evaluation: from membership scores and ``is_member`` to metrics, intervals and ε bounds.

The only place in miaudit where ROC curves, thresholds, confidence intervals and empirical
ε bounds are computed. It sees a float64 score per audited record (higher = more likely a
member) and never which attack made it.
"""

from miaudit.evaluation.epsilon import epsilon_lower_bound
from miaudit.evaluation.evaluate import (
    DEFAULT_FPRS,
    LowFprResolutionWarning,
    SmallSliceWarning,
    evaluate_attack,
)
from miaudit.evaluation.intervals import clopper_pearson, clopper_pearson_upper
from miaudit.evaluation.results import (
    AttackEvaluation,
    AuditResult,
    ClassResult,
    EpsilonBound,
    ThresholdMetrics,
    TprAtFpr,
)
from miaudit.evaluation.roc import (
    auc_interval,
    max_advantage,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
    validate_scores,
)
from miaudit.evaluation.thresholds import (
    calibration_mask,
    choose_advantage_threshold,
    epsilon_bound,
    threshold_metrics,
)

__all__ = [
    "DEFAULT_FPRS",
    "AttackEvaluation",
    "AuditResult",
    "ClassResult",
    "EpsilonBound",
    "LowFprResolutionWarning",
    "SmallSliceWarning",
    "ThresholdMetrics",
    "TprAtFpr",
    "auc_interval",
    "calibration_mask",
    "choose_advantage_threshold",
    "clopper_pearson",
    "clopper_pearson_upper",
    "epsilon_bound",
    "epsilon_lower_bound",
    "evaluate_attack",
    "max_advantage",
    "roc_auc",
    "roc_curve",
    "threshold_metrics",
    "tpr_at_fpr",
    "validate_scores",
]
