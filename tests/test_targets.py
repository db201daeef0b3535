"""Target adapters: access levels are enforced and every model answer is validated."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from miaudit.errors import AccessLevelError, InvalidAuditInput
from miaudit.targets import (
    AccessLevel,
    CallableTarget,
    LabelOnlyTarget,
    PrecomputedTarget,
    SklearnTarget,
    TorchTarget,
    as_target,
)


def _proba(n=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((n, k))
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("white_box", AccessLevel.WHITE_BOX),
        ("logits", AccessLevel.LOGITS),
        ("black-box", AccessLevel.PROBABILITIES),
        ("LABEL_ONLY", AccessLevel.LABEL_ONLY),
    ],
)
def test_access_level_parse(text, level):
    assert AccessLevel.parse(text) is level


def test_access_level_unknown_lists_allowed():
    with pytest.raises(InvalidAuditInput, match="label_only"):
        AccessLevel.parse("gray_box")


def test_label_only_target_refuses_probabilities():
    inner = CallableTarget(lambda x: _proba(len(x)), n_classes=3)
    target = LabelOnlyTarget(inner)
    x = np.zeros((6, 2))
    assert target.predict_labels(x).shape == (6,)
    with pytest.raises(AccessLevelError, match="probabilities access"):
        target.predict_proba(x)
    with pytest.raises(AccessLevelError):
        target.predict_logits(x)


def test_torch_target_declared_black_box_refuses_logits():
    module = torch.nn.Linear(4, 3)
    target = TorchTarget(module, n_classes=3, access="probabilities")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    proba = target.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(AccessLevelError, match="logits"):
        target.predict_logits(x)


def test_torch_target_restores_train_mode():
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.5))
    module.train()
    TorchTarget(module, n_classes=3).predict_logits(np.zeros((2, 4), np.float32))
    assert module.training


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda n: np.full((n, 3), np.nan), "NaN"),
        (lambda n: np.ones((n, 4)) / 4, "shape"),
        (lambda n: np.ones((n, 3)), "sum to 1"),
        (lambda n: -np.ones((n, 3)), r"\[0, 1\]"),
    ],
)
def test_callable_target_validates_answers(answer, message):
    target = CallableTarget(lambda x: answer(len(x)), n_classes=3)
    with pytest.raises(InvalidAuditInput, match=message):
        target.predict_proba(np.zeros((4, 2)))


def test_callable_target_output_kind_sets_access():
    assert CallableTarget(lambda x: x, n_classes=2, output="logits").access == AccessLevel.LOGITS
    labels = CallableTarget(lambda x: np.zeros(len(x), int), n_classes=2, output="labels")
    assert labels.access == AccessLevel.LABEL_ONLY
    with pytest.raises(InvalidAuditInput, match="output must be one of"):
        CallableTarget(lambda x: x, n_classes=2, output="scores")


def test_sklearn_target_places_missing_class_columns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = np.where(x[:, 0] > 0, 2, 0)  # class 1 never seen in training
    est = LogisticRegression().fit(x, y)
    target = SklearnTarget(est, n_classes=3)
    proba = target.predict_proba(x)
    assert proba.shape == (40, 3)
    np.testing.assert_array_equal(proba[:, 1], 0.0)
    np.testing.assert_allclose(proba[:, [0, 2]], est.predict_proba(x))


def test_sklearn_target_cannot_claim_logits():
    est = LogisticRegression().fit(np.eye(2), [0, 1])
    with pytest.raises(InvalidAuditInput, match="probabilities at most"):
        SklearnTarget(est, n_classes=2, access="logits")


def test_precomputed_target_with_record_ids():
    proba = _proba(4)
    target = PrecomputedTarget(proba, record_ids=np.array([10, 3, 7, 5]))
    np.testing.assert_allclose(target.predict_proba(np.array([7, 10])), proba[[2, 0]])
    with pytest.raises(InvalidAuditInput, match="no prediction"):
        target.predict_proba(np.array([4]))
    with pytest.raises(InvalidAuditInput, match="record ids"):
        target.predict_proba(np.zeros((2, 3)))


def test_precomputed_logits_give_softmax_and_labels():
    logits = np.array([[2.0, 0.0], [0.0, 3.0]])
    target = PrecomputedTarget(logits, output="logits")
    np.testing.assert_allclose(target.predict_proba(np.array([0, 1])).sum(axis=1), 1.0)
    np.testing.assert_array_equal(target.predict_labels(np.array([0, 1])), [0, 1])


def test_precomputed_rejects_nan():
    bad = _proba(3)
    bad[1, 0] = np.nan
    with pytest.raises(InvalidAuditInput, match="NaN"):
        PrecomputedTarget(bad)


def test_as_target_dispatch():
    assert isinstance(as_target(torch.nn.Linear(2, 2), n_classes=2), TorchTarget)
    est = LogisticRegression().fit(np.eye(2), [0, 1])
    assert isinstance(as_target(est, n_classes=2), SklearnTarget)
    assert as_target(est, n_classes=2, access="label_only").access == AccessLevel.LABEL_ONLY
    assert isinstance(as_target(lambda x: _proba(len(x), 2), n_classes=2), CallableTarget)
    with pytest.raises(InvalidAuditInput, match="cannot audit"):
        as_target(42, n_classes=2)
