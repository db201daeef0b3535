"""The shadow attack inside an audit: YAML entries, shadow-data options, report facts."""

import json
import re

import pytest
import yaml

from miaudit.attacks.registry import build_attack
from miaudit.cli import main
from miaudit.errors import InvalidAuditInput


def _config(tmp_path, attacks):
    return {
        "dataset": "digits",
        "split": {"members": 150, "nonmembers": 150, "seed": 0},
        "target": {
            "recipe": {
                "architecture": "mlp",
                "params": {"hidden": [64]},
                "training": {
                    "epochs": 60,
                    "batch_size": 16,
                    "optimizer": "adam",
                    "lr": 0.002,
                    "weight_decay": 0.0,
                    "schedule": "constant",
                },
            }
        },
        "attacks": attacks,
        "references": {"cache_dir": str(tmp_path / "cache")},
        "output": str(tmp_path / "report"),
    }


def test_shadow_attacks_in_a_yaml_audit(tmp_path):
    attacks = [
        {"name": "shadow", "n_shadow": 2, "attack_model": "lr", "shadow_size": 150},
        {
            "name": "shadow",
            "n_shadow": 2,
            "attack_model": "lr",
            "shadow_size": 150,
            "shadow_data": "statistics",
        },
        "loss",
    ]
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, attacks)))
    assert main(["--quiet", "audit", str(path)]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [a["name"] for a in report["attacks"]] == ["shadow_real", "shadow_statistics", "loss"]
    shadows = report["target"]["shadow_models"]
    assert shadows["shadow_real"]["n_shadow"] == 2
    assert shadows["shadow_real"]["mean_train_accuracy"] > 0.9
    assert shadows["shadow_statistics"]["shadow_data"] == "statistics"
    real = report["attacks"][0]
    assert real["family"] == "shadow" and real["auc"] > 0.5


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("shadow", {"shadow_datas": "real"}, "unknown parameter"),
        ("loss", {"noise": 0.1}, "takes no parameters"),
        ("lira", {"shadow_data": "noisy"}, r"unknown parameter\(s\) \['shadow_data'\]"),
        ("shadow", {"attack_model": "svm"}, "attack_model must be one of"),
        ("shadow", {"shadow_data": "fake"}, "shadow_data must be one of"),
        ("shadow", {"noise": -0.5}, r"noise must be a number in \[0, 1\]"),
    ],
)
def test_bad_shadow_entries(name, params, message):
    # Every parameter is checked when the entry is built, before any model is trained.
    with pytest.raises(InvalidAuditInput, match=message):
        build_attack(name, params)


def test_synthetic_shadow_data_reports_queries_and_records_per_class(tmp_path):
    from miaudit.config import parse_config
    from miaudit.data import resolve_data_dir
    from miaudit.errors import DataNotFoundError
    from miaudit.pipeline import run_config

    try:
        resolve_data_dir()
    except DataNotFoundError:
        pytest.skip("the shared data directory (location.npz) is not available")
    config = parse_config(
        {
            "dataset": "location",
            "split": {"members": 400, "nonmembers": 400, "population": 1200, "seed": 0},
            "target": {
                "recipe": {
                    "architecture": "mlp",
                    "params": {"hidden": [64]},
                    "training": {
                        "epochs": 40,
                        "batch_size": 64,
                        "lr": 0.1,
                        "momentum": 0.0,
                        "weight_decay": 0.0,
                    },
                }
            },
            "attacks": [
                {
                    "name": "shadow",
                    "n_shadow": 2,
                    "shadow_size": 100,
                    "shadow_data": "synthetic",
                    "synthesis": {"iter_max": 100, "records_per_class": 20},
                }
            ],
            "references": {"cache_dir": str(tmp_path)},
        }
    )
    result = run_config(config)
    info = result.target["shadow_models"]["shadow_synthetic"]
    assert info["target_queries"] > 0
    assert set(info["records_per_class"]) == {str(c) for c in range(30)}
    assert info["records"] == sum(info["records_per_class"].values())
    assert result.attacks[0].auc > 0.5


@pytest.mark.parametrize(
    ("synthesis", "message"),
    [
        # digits' pixels are continuous: hill climbing needs binary or categorical features.
        ({}, "feature_kind must be 'binary' or 'categorical'"),
        ({"feature_kind": "binary", "k_max": 0}, r"k_max must be an int in \[1, n_features=64\]"),
        ({"feature_kind": "binary", "steps": 5}, r"unknown option\(s\) \['steps'\]"),
        ({"feature_kind": "binary", "records_per_class": 0}, "records_per_class"),
    ],
)
def test_bad_synthesis_options_exit_2_before_any_model_trains(
    tmp_path, monkeypatch, capsys, synthesis, message
):
    from miaudit.models import TorchRecipe

    def no_training(*args, **kwargs):
        raise AssertionError("a model was trained before the options were checked")

    monkeypatch.setattr(TorchRecipe, "train", no_training)
    attack = {"name": "shadow", "n_shadow": 2, "shadow_data": "synthetic", "synthesis": synthesis}
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, [attack, "loss"])))
    assert main(["--quiet", "audit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "shadow_synthetic" in err and re.search(message, err), err
    assert not (tmp_path / "report").exists()
