"""Membership inference attacks. Each follows :class:`~miaudit.attacks.protocol.Attack`:
``fit(evidence)`` then ``score(evidence)`` returning a float64 vector aligned with the
audited records, higher meaning more likely a member.

Names are imported on first use (PEP 562), so that checking an audit file's attack list
loads neither PyTorch nor the attack families it does not name.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ReferenceCoverageWarning": "miaudit.attacks._reference",
    "AttackR": "miaudit.attacks.attack_r",
    "CLASSIFIER_METHODS": "miaudit.attacks.classifier",
    "DEFAULT_FEATURES": "miaudit.attacks.classifier",
    "FEATURES": "miaudit.attacks.classifier",
    "ClassifierAttack": "miaudit.attacks.classifier",
    "FeatureSubstitutionWarning": "miaudit.attacks.classifier",
    "attack_features": "miaudit.attacks.classifier",
    "check_param_grid": "miaudit.attacks.classifier",
    "feature_names": "miaudit.attacks.classifier",
    "LiRA": "miaudit.attacks.lira",
    "METRIC_ATTACKS": "miaudit.attacks.metric",
    "MetricAttack": "miaudit.attacks.metric",
    "Attack": "miaudit.attacks.protocol",
    "Requirements": "miaudit.attacks.protocol",
    "RMIA": "miaudit.attacks.rmia",
    "ATTACK_MODELS": "miaudit.attacks.shadow",
    "PerClassMetrics": "miaudit.attacks.shadow",
    "ShadowCoverageWarning": "miaudit.attacks.shadow",
    "ShadowModelAttack": "miaudit.attacks.shadow",
    "per_class_metrics": "miaudit.attacks.shadow",
    "WhiteBoxAttack": "miaudit.attacks.whitebox",
    "GradientNormAttack": "miaudit.attacks.whitebox",
    "AugmentationAttack": "miaudit.attacks.label_only",
    "BoundaryDistanceAttack": "miaudit.attacks.label_only",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'miaudit.attacks' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
