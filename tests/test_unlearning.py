"""Machine unlearning: deletion requests, exact retraining, SISA, approximate methods, and
verification by attack."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import memorising_recipe, synthetic_dataset

from miaudit.errors import InvalidAuditInput
from miaudit.models import TorchRecipe, TrainingConfig
from miaudit.targets import TorchTarget
from miaudit.unlearning import (
    SISA,
    deletion_request,
    finetune,
    gradient_ascent,
    retrain,
    verify_forgetting,
)

RECIPE = memorising_recipe(epochs=60)


@pytest.fixture(scope="module")
def world():
    data = synthetic_dataset(n_samples=3000)
    members = np.arange(600)  # few records: the original memorises them
    never_seen = np.arange(2000, 2600)
    original = RECIPE.train(data, members, seed=0).model
    return data, members, never_seen, original


def test_deletion_requests(world):
    data, members, _, _ = world
    a = deletion_request(members, data.y, fraction=0.05, seed=0)
    b = deletion_request(members, data.y, fraction=0.10, seed=0)
    assert a.size == 30 and b.size == 60 and np.isin(a, members).all()
    klass = deletion_request(members, data.y, klass=2)
    assert (data.y[klass] == 2).all() and klass.size == int((data.y[members] == 2).sum())
    assert deletion_request(members, data.y, indices=[5, 3, 5]).tolist() == [3, 5]
    for bad, message in (
        ({"indices": [5000]}, "not training members"),
        ({"indices": members.tolist()}, "deleting every member"),
        ({"klass": 9}, "has no member"),
        ({"fraction": 1.5}, "fraction must lie in"),
        ({"fraction": 0.1, "klass": 1}, "exactly one of"),
    ):
        with pytest.raises(InvalidAuditInput, match=message):
            deletion_request(members, data.y, **bad)


@pytest.mark.slow
def test_retraining_forgets_and_the_original_remembers(world):
    data, members, never_seen, original = world
    deleted = deletion_request(members, data.y, fraction=0.5, seed=1)  # 300 records
    before = {
        c.attack: c
        for c in verify_forgetting(TorchTarget(original, n_classes=4), data, deleted, never_seen)
    }
    assert before["loss"].auc > 0.56 and before["loss"].p_value < 0.01
    exact = retrain(RECIPE, data, members, deleted, seed=1)
    after = verify_forgetting(TorchTarget(exact.model, n_classes=4), data, deleted, never_seen)
    for check in after:  # never saw them: chance, within 3 standard errors (0.024 each)
        low, high = check.auc_interval
        assert low < 0.5 < high or abs(check.auc - 0.5) < 0.07, check
        assert check.p_value > 0.001 and check.n_deleted == 300 and check.n_never_seen == 600
    assert exact.trainings == 1 and exact.remaining.size == 300


def test_sisa_retrains_only_the_shards_that_held_deleted_records(world):
    data, members, never_seen, _ = world
    quick = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (16,)},
        training=TrainingConfig(epochs=3, batch_size=64, device="cpu"),
    )
    sisa = SISA(quick, n_shards=4, n_slices=3).fit(data, members)
    assert sisa.trainings == 12
    # Records from the last slice of shard 2 only: one stage retrains, from its checkpoint.
    last = sisa.shards[2][2][:5]
    later = sisa.unlearn(last)
    assert later.retrained_shards_ == [2] and later.trainings == 1
    assert all(later.models[k] is sisa.models[k] for k in (0, 1, 3))
    assert not np.isin(last, np.concatenate(later.shards[2])).any()
    # From the first slice: the whole shard retrains, every stage.
    first = sisa.shards[1][0][:5]
    assert sisa.unlearn(first).trainings == 3
    proba = later.target().predict_proba(data.x[never_seen[:10]])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    vote = SISA(quick, n_shards=3, aggregate="vote").fit(data, members)
    assert vote.target().access.label == "label_only"
    with pytest.raises(InvalidAuditInput, match="cannot fill"):
        SISA(quick, n_shards=2000).fit(data, members)


def test_approximate_methods_can_be_audited_the_same_way(world):
    data, members, never_seen, original = world
    deleted = deletion_request(members, data.y, fraction=0.05, seed=2)
    remaining = np.setdiff1d(members, deleted)
    ascended = gradient_ascent(original, data, remaining, deleted, seed=0, lr=0.05, steps=10)
    tuned = finetune(original, data, remaining, deleted, seed=0, recipe=RECIPE, epochs=1)

    def loss_on_deleted(model):
        check = verify_forgetting(TorchTarget(model, n_classes=4), data, deleted, never_seen)
        return -check[0].deleted_scores.mean()  # the loss attack scores minus the loss

    assert loss_on_deleted(ascended) > loss_on_deleted(original)
    assert np.isfinite(loss_on_deleted(tuned))
    with pytest.raises(InvalidAuditInput, match="overlap"):
        verify_forgetting(TorchTarget(original, n_classes=4), data, deleted, deleted)
    # A typo in lr is refused at once; a divergent ascent is named, not audited as NaN.
    with pytest.raises(InvalidAuditInput, match="lr must be a positive number at most 1000"):
        gradient_ascent(original, data, remaining, deleted, seed=0, lr=1e300)
    with pytest.raises(InvalidAuditInput, match="drove the model's weights to NaN"):
        gradient_ascent(original, data, remaining, deleted, seed=0, lr=1000.0, steps=200)


def _unlearn_config(tmp_path, **unlearning) -> str:
    import yaml

    config = {
        "dataset": "digits",
        "split": {"members": 200, "nonmembers": 200, "seed": 0},
        "target": {
            "recipe": {
                "architecture": "mlp",
                "params": {"hidden": [32]},
                "training": {
                    "epochs": 10,
                    "batch_size": 32,
                    "optimizer": "adam",
                    "lr": 0.001,
                    "schedule": "constant",
                    "device": "cpu",
                },
            }
        },
        "unlearning": unlearning,
    }
    path = tmp_path / "unlearn.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_unlearn_command_writes_its_report(tmp_path, capsys, monkeypatch):
    import json

    from miaudit.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    path = _unlearn_config(
        tmp_path,
        fractions=[0.05, 0.1],
        methods=[{"name": "retrain"}, {"name": "sisa", "shards": 4}, {"name": "finetune"}],
        ulira_references=2,
    )
    assert main(["unlearn", path, "--out", str(tmp_path / "o")]) == 0
    assert "Unlearning: deleted against never-seen records" in capsys.readouterr().out
    report = json.loads((tmp_path / "o" / "unlearning.json").read_text())
    rows = report["rows"]
    assert [(r["request"], r["method"]) for r in rows][:3] == [
        ("5% random", "full retraining"),
        ("5% random", "SISA 4x1 (mean)"),
        ("5% random", "fine-tune 2 epochs"),
    ]
    assert {r["n_deleted"] for r in rows} == {10, 20}
    for row in rows:
        expected = {"loss", "gap"} | ({"u_lira"} if "SISA" not in row["method"] else set())
        assert {c["attack"] for c in row["attacks_after"]} == expected
        assert row["full_retrain_seconds"] > 0
    assert "<table>" in (tmp_path / "o" / "unlearning.html").read_text()
    with np.load(tmp_path / "o" / report["scores_file"]) as scores:
        assert scores["row0_deleted"].size == rows[0]["n_deleted"]
        assert scores["row0_loss"].shape == (rows[0]["n_deleted"],)


@pytest.mark.parametrize(
    ("unlearning", "message"),
    [
        ({"klass": 42, "fractions": []}, "class 42 has no member"),
        ({"fractions": [1.0]}, "fractions must lie in"),
        ({"methods": [{"name": "forget_everything"}]}, "unlearning.methods.0.name"),
        ({"indices": [99999], "fractions": []}, "not training members"),
        ({"indices": list(range(1797)), "fractions": []}, "not training members"),
    ],
)
def test_bad_deletion_requests_exit_2_before_training(
    tmp_path, capsys, monkeypatch, unlearning, message
):
    from miaudit.cli import main

    monkeypatch.setattr(TorchRecipe, "train", lambda *a, **k: pytest.fail("trained"))
    path = _unlearn_config(tmp_path, **unlearning)
    assert main(["unlearn", path, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_ulira_passes_exact_unlearning_and_catches_a_model_that_forgot_nothing(world):
    from miaudit.unlearning import ulira

    data, members, never_seen, original = world
    deleted = deletion_request(members, data.y, fraction=0.5, seed=1)
    never = never_seen[:300]
    exact = retrain(RECIPE, data, members, deleted, seed=1)

    def retrain_fn(model, dataset, remaining, forget, seed):
        return RECIPE.train(dataset, remaining, seed=seed).model

    passed = ulira(
        RECIPE,
        data,
        members,
        deleted,
        never,
        TorchTarget(exact.model, n_classes=4),
        retrain_fn,
        n_references=4,
    )
    assert abs(passed.auc - 0.5) < 0.08, passed  # chance, within about 3 standard errors

    def forget_nothing(model, dataset, remaining, forget, seed):
        return model

    caught = ulira(
        RECIPE,
        data,
        members,
        deleted,
        never,
        TorchTarget(original, n_classes=4),
        forget_nothing,
        n_references=4,
    )
    assert caught.auc > 0.6 and caught.p_value < 1e-6
    with pytest.raises(InvalidAuditInput, match="n_references"):
        ulira(RECIPE, data, members, deleted, never, original, forget_nothing, n_references=3)
