"""The shadow attack inside an audit: YAML entries, shadow-data options, report facts."""

import json

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
        ("lira", {"shadow_data": "noisy"}, "shadow attack only"),
        ("shadow", {"attack_model": "svm"}, "attack_model"),
    ],
)
def test_bad_shadow_entries(name, params, message):
    with pytest.raises(InvalidAuditInput, match=message):
        spec = build_attack(name, params)
        spec.attack._validate() if hasattr(spec.attack, "_validate") else spec.attack.fit(
            None, None
        )
