"""Reference attacks end to end: self-audit protocol, YAML audits, cache reuse across runs."""

import json

import numpy as np
import pytest
import yaml

from miaudit.cli import main
from miaudit.compute import ModelCache
from miaudit.data import load_dataset
from miaudit.experiment import self_audit
from miaudit.models import TorchRecipe, TrainingConfig

DIGITS_RECIPE = TorchRecipe(
    architecture="mlp",
    arch_params={"hidden": (128,)},
    training=TrainingConfig(
        epochs=40, batch_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant"
    ),
)


@pytest.fixture(scope="module")
def digits_self_audit(tmp_path_factory):
    cache = ModelCache(tmp_path_factory.mktemp("cache"))
    data = load_dataset("digits")
    attacks = [
        {"name": "rmia", "online": False, "num_references": 4},
        {"name": "lira", "online": True, "num_references": 4},
        {"name": "attack_r", "num_references": 4},
        "loss",
    ]
    result = self_audit(
        DIGITS_RECIPE, data, n_references=4, n_targets=2, attacks=attacks, cache=cache, seed=0
    )
    return result, cache, data, attacks


def test_reference_attacks_beat_the_loss_attack_at_low_fpr(digits_self_audit):
    result, *_ = digits_self_audit
    rows = {row["attack"]: row for row in result.summary()}
    assert set(rows) == {"rmia_offline", "lira_online", "attack_r", "loss"}
    assert rows["rmia_offline"]["tpr@1%"] > 2 * rows["loss"]["tpr@1%"]
    assert rows["rmia_offline"]["auc"] > rows["loss"]["auc"]
    assert rows["lira_online"]["tpr@1%"] > rows["loss"]["tpr@1%"]
    # Every record is audited; members are exactly the target's training half.
    for run in result.runs:
        assert run.attacks[0].n_members + run.attacks[0].n_nonmembers == 1797
        assert run.train_accuracy > 0.98


def test_rerun_loads_every_model_from_the_cache(digits_self_audit):
    first, cache, data, attacks = digits_self_audit
    calls = []
    again = self_audit(
        DIGITS_RECIPE,
        data,
        n_references=4,
        n_targets=2,
        attacks=attacks,
        cache=cache,
        seed=0,
        progress=lambda d, t, info: calls.append(info),
    )
    assert again.models_from_cache == len(calls) == first.n_models
    assert again.training_seconds == [] and len(first.training_seconds) == first.n_models
    assert all(info["from_cache"] for info in calls)
    a = [r["auc"] for r in first.summary()]
    b = [r["auc"] for r in again.summary()]
    np.testing.assert_allclose(a, b)


def test_self_audit_references_exclude_the_target_pair(digits_self_audit):
    # With the target's complement among the references, members would be IN for one
    # reference fewer than non-members; RMIA online would read membership off that count.
    result, *_ = digits_self_audit
    assert result.n_models == 6  # 4 references + the target's pair


def _yaml_audit(tmp_path, cache_dir):
    return {
        "dataset": "digits",
        "split": {"members": 300, "nonmembers": 300, "seed": 0},
        "target": {
            "recipe": {
                "architecture": "mlp",
                "params": {"hidden": [128]},
                "training": {
                    "epochs": 40,
                    "batch_size": 32,
                    "optimizer": "adam",
                    "lr": 0.001,
                    "weight_decay": 0.0,
                    "schedule": "constant",
                },
            }
        },
        "attacks": [
            {"name": "rmia", "num_references": 2, "offline_a": 0.3},
            {"name": "lira", "online": True, "num_references": 2},
            {"name": "attack_r", "num_references": 2},
            "loss",
        ],
        "references": {"cache_dir": str(cache_dir), "population_size": 500},
        "output": str(tmp_path / "report"),
    }


def test_yaml_reference_audit_and_cache_reuse(tmp_path):
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(_yaml_audit(tmp_path, tmp_path / "cache")))
    assert main(["--quiet", "audit", str(path)]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    names = [a["name"] for a in report["attacks"]]
    assert names == ["rmia_offline", "lira_online", "attack_r", "loss"]
    refs = report["target"]["references"]
    assert refs["n_models"] == 2 and refs["models_loaded_from_cache"] == 0
    for attack in report["attacks"]:
        assert {"0.001", "0.01", "0.1"} <= set(attack["tpr_at_fpr"])
    # A second run trains nothing.
    assert main(["--quiet", "audit", str(path)]) == 0
    again = json.loads((tmp_path / "report" / "report.json").read_text())
    assert again["target"]["references"]["models_loaded_from_cache"] == 2
    assert [a["auc"] for a in again["attacks"]] == [a["auc"] for a in report["attacks"]]


def test_yaml_reference_attack_with_loaded_model_needs_a_recipe(tmp_path, capsys):
    from miaudit.data import make_split
    from miaudit.models import save_torch_model

    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=200, n_nonmembers=200, seed=0)
    np.savez(tmp_path / "split.npz", members=split.members, nonmembers=split.nonmembers)
    trained = DIGITS_RECIPE.train(data, split.members, seed=0)
    save_torch_model(
        tmp_path / "m.pt",
        trained.model,
        architecture="mlp",
        arch_params={"hidden": (128,)},
        input_shape=(64,),
        n_classes=10,
    )
    config = {
        "dataset": "digits",
        "split": {"indices_file": "split.npz"},
        "target": {"model_file": "m.pt"},
        "attacks": ["rmia"],
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["audit", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "need reference models" in capsys.readouterr().err


def test_reference_warnings_flag_untrained_references():
    from miaudit.references import ReferenceEvidence, reference_warnings
    from miaudit.signals.observations import Observations

    phi = np.zeros((2, 4, 1))
    obs = Observations(np.arange(4), phi, phi - 1.0, np.array([[1, 0, 1, 0], [0, 1, 0, 1]], bool))
    for train_acc, flagged in ((0.12, True), (0.99, False)):
        info = [{"train_accuracy": train_acc, "test_accuracy": 0.1}] * 2
        evidence = ReferenceEvidence(obs, obs.select_models([0]), None, None, info)
        found = reference_warnings(evidence, n_classes=10)
        assert any("did not train" in w for w in found) is flagged
