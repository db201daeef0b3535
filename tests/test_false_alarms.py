"""The verdict's false-alarm rate and power, measured with real audits (fixed seeds).

The protocol lives in ``benchmarks/false_alarms.py`` (which prints the same table); here it
runs on its synthetic data and the counts of the issue are asserted: at most 1 of 40 null
audits above "low" at 200 + 200 and at 50 + 50 records, at least 38 of 40 overfit positive
controls flagged.
"""

from __future__ import annotations

import pytest
from synthetic import false_alarms


@pytest.fixture(scope="module")
def dataset():
    return false_alarms.synthetic_dataset()


@pytest.mark.slow
@pytest.mark.parametrize("n_each", false_alarms.SIZES)
def test_null_audits_rarely_leave_low(dataset, n_each):
    cell = false_alarms.run_controls(dataset, "null", n_each, audits=40)
    assert cell.above_low <= 1, cell.risks
    assert abs(cell.train_accuracy - cell.test_accuracy) < 0.05  # members really unseen


@pytest.mark.slow
@pytest.mark.parametrize("n_each", false_alarms.SIZES)
def test_overfit_positive_controls_are_flagged(dataset, n_each):
    cell = false_alarms.run_controls(dataset, "positive", n_each, audits=40)
    assert cell.above_low >= 38, cell.risks
    assert cell.train_accuracy == 1.0 and cell.test_accuracy < 0.8
