"""Signals: hand-computed values, stable scaled logits, access-level limits."""

import numpy as np
import pytest

from miaudit.errors import InvalidAuditInput
from miaudit.signals import (
    compute_signals,
    signals_from_labels,
    signals_from_logits,
    signals_from_proba,
)
from miaudit.targets import CallableTarget, PrecomputedTarget


def test_hand_computed_signals_from_probabilities():
    p = np.array([[0.7, 0.2, 0.1]])
    s = signals_from_proba(p, np.array([0]))
    assert s.loss[0] == pytest.approx(-np.log(0.7))
    assert s.confidence[0] == pytest.approx(0.7)
    assert s.scaled_logit[0] == pytest.approx(np.log(0.7 / 0.3))
    assert s.entropy[0] == pytest.approx(
        -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    )
    mentr = -(1 - 0.7) * np.log(0.7) - 0.2 * np.log(0.8) - 0.1 * np.log(0.9)
    assert s.modified_entropy[0] == pytest.approx(mentr)
    assert s.correct[0] == 1.0


def test_misclassified_record():
    s = signals_from_proba(np.array([[0.7, 0.2, 0.1]]), np.array([2]))
    assert s.correct[0] == 0.0
    assert s.loss[0] == pytest.approx(-np.log(0.1))
    mentr = -(0.9) * np.log(0.1) - 0.7 * np.log(0.3) - 0.2 * np.log(0.8)
    assert s.modified_entropy[0] == pytest.approx(mentr)


def test_logits_and_probabilities_agree():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 5)) * 3
    y = rng.integers(0, 5, 50)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    a, b = signals_from_logits(z, y), signals_from_proba(p, y)
    for name in a.available():
        np.testing.assert_allclose(a.get(name), b.get(name), rtol=1e-9, atol=1e-12)
    assert a.from_logits and not b.from_logits


def test_scaled_logit_is_exact_where_probabilities_round_to_one():
    z = np.array([[800.0, 0.0, 0.0]])
    s = signals_from_logits(z, np.array([0]))
    assert s.scaled_logit[0] == pytest.approx(800.0 - np.log(2.0))
    assert np.isfinite(s.modified_entropy).all() and np.isfinite(s.entropy).all()
    # From rounded probabilities the same record saturates: the reason to prefer logits.
    rounded = signals_from_proba(np.array([[1.0, 0.0, 0.0]]), np.array([0]))
    assert rounded.scaled_logit[0] < 800.0 - np.log(2.0)


def test_label_only_has_correctness_alone():
    s = signals_from_labels(np.array([0, 1, 1]), np.array([0, 0, 1]))
    assert s.available() == ("correct",)
    np.testing.assert_array_equal(s.correct, [1.0, 0.0, 1.0])
    with pytest.raises(InvalidAuditInput, match="not available"):
        s.get("loss")
    with pytest.raises(InvalidAuditInput, match="unknown signal"):
        s.get("bogus")


def test_compute_signals_uses_highest_access():
    logits = np.array([[3.0, 0.0], [0.0, 1.0]])
    s = compute_signals(
        PrecomputedTarget(logits, output="logits"), np.array([0, 1]), np.array([0, 0])
    )
    assert s.from_logits
    np.testing.assert_array_equal(s.correct, [1.0, 0.0])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 5]), r"\[0, 3\)"),
        (np.array([0, -1]), r"\[0, 3\)"),
        (np.array([0]), "x has 2 records"),
        (np.array([0.0, 1.0]), "integers"),
        (np.zeros((2, 1), int), "1-d"),
    ],
)
def test_compute_signals_rejects_bad_labels(labels, message):
    target = CallableTarget(lambda x: np.full((len(x), 3), 1 / 3), n_classes=3)
    with pytest.raises(InvalidAuditInput, match=message):
        compute_signals(target, np.zeros((2, 4)), labels)


def test_subset_keeps_alignment():
    s = signals_from_proba(np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]]), np.array([0, 0, 1]))
    sub = s.subset(np.array([2, 0]))
    np.testing.assert_allclose(sub.loss, s.loss[[2, 0]])
    np.testing.assert_array_equal(sub.labels, [1, 0])
