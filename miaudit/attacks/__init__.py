"""Membership inference attacks. Each exposes ``fit(...)`` then ``score(...)`` returning a
float64 vector aligned with the audited records, higher meaning more likely a member."""

from miaudit.attacks._reference import ReferenceCoverageWarning
from miaudit.attacks.attack_r import AttackR
from miaudit.attacks.classifier import (
    CLASSIFIER_METHODS,
    DEFAULT_FEATURES,
    FEATURES,
    ClassifierAttack,
    FeatureSubstitutionWarning,
    attack_features,
    check_param_grid,
    feature_names,
)
from miaudit.attacks.lira import LiRA
from miaudit.attacks.metric import METRIC_ATTACKS, MetricAttack
from miaudit.attacks.rmia import RMIA
from miaudit.attacks.shadow import (
    ATTACK_MODELS,
    PerClassMetrics,
    ShadowCoverageWarning,
    ShadowModelAttack,
    per_class_metrics,
)

__all__ = ["METRIC_ATTACKS", "MetricAttack"]
__all__ += ["RMIA", "AttackR", "LiRA", "ReferenceCoverageWarning"]
__all__ += [
    "CLASSIFIER_METHODS",
    "DEFAULT_FEATURES",
    "FEATURES",
    "ClassifierAttack",
    "FeatureSubstitutionWarning",
    "attack_features",
    "check_param_grid",
    "feature_names",
]
__all__ += [
    "ATTACK_MODELS",
    "PerClassMetrics",
    "ShadowCoverageWarning",
    "ShadowModelAttack",
    "per_class_metrics",
]
