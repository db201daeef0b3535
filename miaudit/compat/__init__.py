"""Drop-in interfaces of other membership-inference tools, backed by miaudit.

``from miaudit.compat import MembershipInference`` stands in for MindArmour's
``mindarmour.privacy.evaluation.MembershipInference``; ``import
miaudit.compat.privacy_meter as ml_privacy_meter`` for ML Privacy Meter v1's white-box flow
(``attack_data`` / ``initialize`` / ``train_attack``).
"""

from miaudit.compat.mindarmour import (
    METRICS,
    MembershipInference,
    TrainedOnEvaluatedRecordsWarning,
)

__all__ = ["METRICS", "MembershipInference", "TrainedOnEvaluatedRecordsWarning"]
