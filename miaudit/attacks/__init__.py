"""Membership inference attacks. Each exposes ``fit(...)`` then ``score(...)`` returning a
float64 vector aligned with the audited records, higher meaning more likely a member."""

from miaudit.attacks.metric import METRIC_ATTACKS, MetricAttack

__all__ = ["METRIC_ATTACKS", "MetricAttack"]
