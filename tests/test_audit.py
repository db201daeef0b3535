"""The audit as a whole: known answers, statistical checks with fixed seeds, bad input."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from miaudit.audit import EvaluationSettings, run_audit
from miaudit.data import load_dataset, make_split
from miaudit.errors import AccessLevelError, InvalidAuditInput
from miaudit.models import TorchRecipe, TrainingConfig
from miaudit.signals import compute_signals
from miaudit.targets import CallableTarget, LabelOnlyTarget, SklearnTarget, TorchTarget


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def split(digits):
    return make_split(digits.n_records, n_members=600, n_nonmembers=600, seed=0, labels=digits.y)


def _mlp_target(data, indices, *, epochs=60, seed=0, hidden=(128,), batch_size=32):
    recipe = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": hidden},
        training=TrainingConfig(
            epochs=epochs,
            batch_size=batch_size,
            optimizer="adam",
            lr=1e-3,
            weight_decay=0.0,
            schedule="constant",
        ),
    )
    trained = recipe.train(data, indices, seed=seed)
    return TorchTarget(trained.model, n_classes=data.n_classes, access="logits")


def test_loss_attack_equals_roc_auc_score_on_negative_loss(digits, split):
    est = LogisticRegression(C=100.0, max_iter=2000).fit(
        digits.x[split.members], digits.y[split.members]
    )
    target = SklearnTarget(est, n_classes=10)
    result = run_audit(target, digits, split, attacks=["loss"])
    signals = compute_signals(target, digits.x[split.audited], digits.y[split.audited])
    expected = roc_auc_score(split.is_member, -signals.loss)
    assert result.attacks[0].auc == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(result.scores["loss"], -signals.loss)


def test_model_that_never_saw_the_audited_records_is_at_chance(digits, split):
    # Trained on the attacker's population only: members and non-members are both unseen,
    # so no attack may find a difference beyond sampling noise.
    target = _mlp_target(digits, split.population, epochs=60)
    result = run_audit(target, digits, split)
    for attack in result.attacks:
        assert abs(attack.auc - 0.5) < 0.05, (attack.name, attack.auc)
        assert attack.epsilon.epsilon < 0.3, (attack.name, attack.epsilon)
    assert result.target["train_accuracy"] == pytest.approx(
        result.target["test_accuracy"], abs=0.05
    )


def test_overfit_target_is_detected(digits):
    small = make_split(digits.n_records, n_members=100, n_nonmembers=600, seed=1, labels=digits.y)
    target = _mlp_target(digits, small.members, epochs=300, hidden=(256, 256), batch_size=16)
    result = run_audit(target, digits, small, attacks=["loss", "scaled_logit"])
    by_name = {a.name: a for a in result.attacks}
    assert by_name["loss"].auc > 0.6
    assert result.target["train_accuracy"] == 1.0


def test_access_is_refused_before_any_query(digits, split):
    calls = []

    def api(x):
        calls.append(len(x))
        return np.full((len(x), 10), 0.1)

    target = LabelOnlyTarget(CallableTarget(api, n_classes=10))
    with pytest.raises(AccessLevelError, match="loss"):
        run_audit(target, digits, split, attacks=["gap", "loss"])
    assert calls == []
    # Label-only access still runs the label-only attack by default.
    result = run_audit(target, digits, split)
    assert [a.name for a in result.attacks] == ["gap"]


def test_untrained_target_is_flagged(digits, split):
    target = CallableTarget(lambda x: np.full((len(x), 10), 0.1), n_classes=10)
    result = run_audit(target, digits, split, attacks=["loss"])
    assert any("did not really train" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("attacks", "message"),
    [(["loss", "loss"], "unique"), (["bogus"], "unknown attack"), ([], "empty")],
)
def test_bad_attack_lists(digits, split, attacks, message):
    target = CallableTarget(lambda x: np.full((len(x), 10), 0.1), n_classes=10)
    with pytest.raises(InvalidAuditInput, match=message):
        run_audit(target, digits, split, attacks=attacks)


def test_class_count_mismatch(digits, split):
    target = CallableTarget(lambda x: np.full((len(x), 3), 1 / 3), n_classes=3)
    with pytest.raises(InvalidAuditInput, match="3 classes"):
        run_audit(target, digits, split)


def test_split_out_of_range(digits):
    from miaudit.data import AuditSplit

    bad = AuditSplit(np.array([0, 1]), np.array([2, 5000]), np.array([], dtype=np.int64))
    target = CallableTarget(lambda x: np.full((len(x), 10), 0.1), n_classes=10)
    with pytest.raises(InvalidAuditInput, match="out of range"):
        run_audit(target, digits, bad)


def test_nan_answers_are_a_clear_error(digits, split):
    target = CallableTarget(lambda x: np.full((len(x), 10), np.nan), n_classes=10)
    with pytest.raises(InvalidAuditInput, match="NaN"):
        run_audit(target, digits, split)


def test_evaluation_settings_validation():
    with pytest.raises(InvalidAuditInput) as info:
        EvaluationSettings(fprs=(0.0, 2.0), delta=1.5, calibration_fraction=1.0)
    text = str(info.value)
    assert "fprs" in text and "delta" in text and "calibration_fraction" in text


def test_classifier_attack_runs_in_the_audit_with_cross_fitting(digits):
    small = make_split(digits.n_records, n_members=100, n_nonmembers=600, seed=1, labels=digits.y)
    target = _mlp_target(digits, small.members, epochs=300, hidden=(256, 256), batch_size=16)
    # On the loss alone a learned attack recovers the loss threshold (AUC ~0.69 here); the
    # MindArmour default [loss, logits] needs more members than 50 per fold to learn.
    entry = {"name": "classifier", "method": "lr", "params": {"C": [1.0]}, "features": ["loss"]}
    result = run_audit(target, digits, small, attacks=[entry, "loss"])
    names = [a.name for a in result.attacks]
    assert names == ["classifier_lr", "loss"]
    assert result.attacks[0].family == "classifier"
    assert result.attacks[0].auc > 0.6


def test_reference_attack_without_recipe_is_a_clear_error(digits, split):
    target = CallableTarget(lambda x: np.full((len(x), 10), 0.1), n_classes=10)
    with pytest.raises(InvalidAuditInput, match="need reference models"):
        run_audit(target, digits, split, attacks=["rmia"])
