"""Metric attacks: orientation, the estimator contract, equality with roc_auc_score."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from miaudit.attacks import METRIC_ATTACKS, MetricAttack
from miaudit.errors import InvalidAuditInput, NotFittedError
from miaudit.evaluation import roc_auc
from miaudit.signals import signals_from_labels, signals_from_proba


@pytest.fixture
def table():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, 200)
    return signals_from_proba(p, y)


@pytest.mark.parametrize("metric", list(METRIC_ATTACKS))
def test_attack_contract(metric, table):
    attack = MetricAttack(metric=metric)
    fresh = clone(attack)
    with pytest.raises(NotFittedError):
        fresh.score(table)
    params = fresh.get_params()
    scores = fresh.fit(table).score(table)
    assert fresh.get_params() == params
    assert scores.dtype == np.float64 and scores.shape == (table.n_records,)
    assert np.isfinite(scores).all()


def test_orientation_low_loss_scores_high(table):
    scores = MetricAttack(metric="loss").fit().score(table)
    order = np.argsort(table.loss)
    assert np.all(np.diff(scores[order]) <= 0)
    entropy_scores = MetricAttack(metric="entropy").fit().score(table)
    np.testing.assert_allclose(entropy_scores, -table.entropy)


def test_loss_attack_auc_equals_sklearn_on_negative_loss(table):
    is_member = np.random.default_rng(2).random(table.n_records) < 0.5
    scores = MetricAttack(metric="loss").fit().score(table)
    assert roc_auc(scores, is_member) == pytest.approx(roc_auc_score(is_member, -table.loss))


def test_unknown_metric_is_a_clear_error(table):
    with pytest.raises(InvalidAuditInput, match="loss, confidence"):
        MetricAttack(metric="bogus").fit(table)


def test_gap_attack_works_label_only_and_loss_does_not():
    table = signals_from_labels(np.array([0, 1, 2]), np.array([0, 1, 1]))
    np.testing.assert_array_equal(MetricAttack(metric="gap").fit(table).score(table), [1, 1, 0])
    with pytest.raises(InvalidAuditInput, match="not available"):
        MetricAttack(metric="loss").fit(table)
