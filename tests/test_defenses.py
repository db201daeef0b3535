"""Output defenses: each wrapper does what it claims, declares what it leaves an attacker,
and a label-only attack still sees through confidence masking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from synthetic import memorising_recipe, synthetic_dataset

from miaudit.audit import plan_audit, run_audit
from miaudit.cli import main
from miaudit.data import make_split
from miaudit.errors import AccessLevelError, InvalidAuditInput
from miaudit.targets import CallableTarget, LabelOnlyTarget, TorchTarget
from miaudit.targets.adapters import AccessLevel
from miaudit.targets.defenses import NoisyOutput, Rounded, Temperature, TopK, defenses_of

RNG = np.random.default_rng(0)
PROBA = RNG.dirichlet(np.ones(6), size=50)


def _raw():
    return CallableTarget(lambda x: PROBA[: len(x)], n_classes=6, output="probabilities")


X = np.zeros((50, 3), np.float32)


def test_top_k_keeps_k_entries_that_sum_to_one():
    out = TopK(_raw(), 2).predict_proba(X)
    assert ((out > 0).sum(axis=1) == 2).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_array_equal(out.argmax(axis=1), PROBA.argmax(axis=1))
    top2 = np.sort(PROBA, axis=1)[:, -2:]
    np.testing.assert_allclose(np.sort(out, axis=1)[:, -2:], top2 / top2.sum(1, keepdims=True))


def test_rounding_and_temperature():
    out = Rounded(_raw(), 1).predict_proba(X)
    rounded = np.round(PROBA, 1)
    np.testing.assert_allclose(out, rounded / rounded.sum(axis=1, keepdims=True))
    hot = Temperature(_raw(), 4.0).predict_proba(X)
    np.testing.assert_array_equal(hot.argmax(axis=1), PROBA.argmax(axis=1))

    def entropy(p):
        return -(p * np.log(p)).sum(axis=1)

    assert (entropy(hot) > entropy(PROBA)).all()
    np.testing.assert_allclose(Temperature(_raw(), 1.0).predict_proba(X), PROBA, rtol=1e-9)


def test_noise_is_seeded_and_still_a_distribution():
    a = NoisyOutput(_raw(), 0.05, seed=3).predict_proba(X)
    b = NoisyOutput(_raw(), 0.05, seed=3).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert (a >= 0).all() and np.allclose(a.sum(axis=1), 1.0)
    assert np.abs(a - PROBA).max() > 0.01


def test_defenses_compose_and_are_recorded():
    target = LabelOnlyTarget(TopK(Rounded(_raw(), 2), 3))
    assert defenses_of(target) == [
        {"defense": "rounding", "decimals": 2},
        {"defense": "top_k", "k": 3},
        {"defense": "label_only"},
    ]
    assert target.access == AccessLevel.LABEL_ONLY
    with pytest.raises(InvalidAuditInput, match="k must be an int in"):
        TopK(_raw(), 7)
    with pytest.raises(AccessLevelError):
        TopK(LabelOnlyTarget(_raw()), 1)  # nothing left to mask


@pytest.fixture(scope="module")
def overfit():
    data = synthetic_dataset(n_samples=3200)
    split = make_split(data.n_records, n_members=800, n_nonmembers=800, seed=0, labels=data.y)
    recipe = memorising_recipe()
    return data, split, TorchTarget(recipe.train(data, split.members, seed=0).model, n_classes=4)


@pytest.mark.parametrize("wrap", [lambda t: TopK(t, 1), LabelOnlyTarget])
def test_label_only_attacks_see_through_confidence_masking(overfit, wrap):
    data, split, target = overfit
    defended = wrap(target)
    plain = run_audit(target, data, split, attacks=["loss"])
    masked = run_audit(defended, data, split, attacks=["gap", {"name": "boundary"}])
    by_name = {a.name: a.auc for a in masked.attacks}
    assert by_name["boundary"] > 0.58 and by_name["boundary"] > by_name["gap"]
    assert plain.attacks[0].auc > 0.56  # the model leaks through its confidences
    assert masked.target["defenses"][-1]["defense"] in ("top_k", "label_only")
    with pytest.raises(AccessLevelError):
        plan_audit(defended.access, data, split, ["whitebox"], None)


def test_yaml_defenses_lower_the_access_level(tmp_path, capsys):
    config = {
        "dataset": "digits",
        "split": {"members": 150, "nonmembers": 150, "seed": 0},
        "target": {
            "sklearn": {"estimator": "LogisticRegression", "params": {"max_iter": 500}},
            "defenses": [{"name": "rounding", "decimals": 1}, {"name": "top_k", "k": 2}],
        },
        "attacks": ["loss", "gap"],
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["audit", str(path), "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["target"]["access"] == "probabilities"
    assert report["target"]["defenses"] == [
        {"defense": "rounding", "decimals": 1},
        {"defense": "top_k", "k": 2},
    ]
    config["target"]["defenses"] = [{"name": "label_only"}, {"name": "top_k", "k": 2}]
    path.write_text(yaml.safe_dump(config))
    assert main(["audit", str(path), "--out", str(tmp_path / "p")]) == 2
    assert "put label_only last" in capsys.readouterr().err
    config["target"]["defenses"] = [{"name": "label_only"}]
    path.write_text(yaml.safe_dump(config))
    assert main(["audit", str(path), "--out", str(tmp_path / "q")]) == 2
    assert "needs probabilities access" in capsys.readouterr().err  # loss behind labels


def test_references_answer_through_the_same_defenses(overfit):
    from miaudit.targets.defenses import same_defenses

    data, _, target = overfit
    defended = Rounded(TopK(target, 2), 1)
    wrap = same_defenses(defended)
    reference = wrap(target.module)  # any model, answering as the defended target does
    assert defenses_of(reference) == defenses_of(defended)
    proba = reference.predict_proba(data.x[:50])
    assert ((proba > 0).sum(axis=1) <= 2).all()
    np.testing.assert_allclose(proba, defended.predict_proba(data.x[:50]))
    assert same_defenses(target) is None
