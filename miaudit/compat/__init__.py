"""Drop-in interfaces of other membership-inference tools, backed by miaudit.

``from miaudit.compat import MembershipInference`` stands in for MindArmour's
``mindarmour.privacy.evaluation.MembershipInference``.
"""

from miaudit.compat.mindarmour import (
    METRICS,
    MembershipInference,
    TrainedOnEvaluatedRecordsWarning,
)

__all__ = ["METRICS", "MembershipInference", "TrainedOnEvaluatedRecordsWarning"]
