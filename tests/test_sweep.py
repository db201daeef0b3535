"""``miaudit sweep``: one audit per defense setting, the table, the plot, and early errors."""

from __future__ import annotations

import json

import pytest
import yaml

from miaudit.cli import main
from miaudit.models import TorchRecipe

BASE = {
    "dataset": "digits",
    "split": {"members": 200, "nonmembers": 200, "seed": 0},
    "target": {
        "recipe": {
            "architecture": "mlp",
            "params": {"hidden": [32]},
            "training": {
                "epochs": 15,
                "batch_size": 32,
                "optimizer": "adam",
                "lr": 0.001,
                "weight_decay": 0.0,
                "schedule": "constant",
                "device": "cpu",
            },
        }
    },
    "attacks": ["loss", "gap", {"name": "rmia", "num_references": 2}],
}


def _write(tmp_path, sweep, **extra) -> str:
    config = {**BASE, "sweep": sweep, "references": {"cache_dir": str(tmp_path / "c")}, **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_sweep_audits_every_setting(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    path = _write(
        tmp_path,
        [
            {"label": "baseline"},
            {"label": "weight decay", "training": {"weight_decay": 0.01}},
            {
                "label": "DP-SGD",
                "training": {"dp_target_epsilon": 4.0, "optimizer": "sgd", "lr": 0.5},
            },
            {"label": "<script>top-1</script>", "defenses": [{"name": "top_k", "k": 1}]},
            {"label": "labels only", "defenses": [{"name": "label_only"}]},
        ],
        canary_audit={"canaries": 100, "seed": 0},
    )
    assert main(["sweep", path, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "Defenses and their price" in printed and "labels only" in printed
    report = json.loads((tmp_path / "out" / "sweep.json").read_text())
    rows = {r["label"]: r for r in report["settings"]}
    assert len(rows) == 5
    assert rows["DP-SGD"]["accountant_epsilon"] == pytest.approx(4.0, abs=0.05)
    assert rows["baseline"]["accountant_epsilon"] is None
    assert rows["labels only"]["skipped_attacks"] == ["loss", "rmia_offline"]
    # One canary audit per distinct training: output defenses share the baseline's.
    canary = {label: row["canary_audit"] for label, row in rows.items()}
    assert canary["labels only"] == canary["baseline"] == canary["<script>top-1</script>"]
    assert canary["DP-SGD"]["accountant_epsilon"] == pytest.approx(4.0, abs=0.05)
    assert canary["DP-SGD"]["epsilon_lower_bound"] <= canary["DP-SGD"]["accountant_epsilon"]
    assert canary["baseline"]["accountant_epsilon"] is None
    assert canary["baseline"]["method"] == "one_run" and canary["baseline"]["n_canaries"] == 100
    assert rows["labels only"]["best_auc"]["attack"] == "gap"
    for row in rows.values():
        low, high = row["best_auc"]["interval"]
        assert low <= row["best_auc"]["value"] <= high
        assert (tmp_path / "out" / row["report"]).is_file()
    # The attacker knows the recipe: the DP setting's references are DP models too.
    dp_report = json.loads((tmp_path / "out" / rows["DP-SGD"]["report"]).read_text())
    assert dp_report["target"]["privacy"]["epsilon"] == pytest.approx(4.0, abs=0.05)
    assert dp_report["target"]["training"]["dp_target_epsilon"] == 4.0
    plot = (tmp_path / "out" / "privacy_utility.svg").read_text()
    assert "<svg" in plot and 'xmlns="http://www.w3.org/2000/svg"' in plot
    assert "<script>" not in plot  # the hostile label is text there too
    html = (tmp_path / "out" / "sweep.html").read_text()
    assert "<script>top-1" not in html and "&lt;script&gt;top-1" in html
    assert "<svg" in html and "http" not in html.split("<svg", 1)[0].lower().replace(
        "http-equiv", ""
    )


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (None, "no 'sweep:' list"),
        ([{"label": "a"}, {"label": "a"}], "labels must be unique"),
        ([{"label": "x", "training": {"epochz": 3}}], "epochz"),
        (
            [{"label": "dp", "training": {"dp_noise_multiplier": 1.0}, "params": {"dropout": 2}}],
            "dropout",
        ),
        ([{"label": "bad", "defenses": [{"name": "blur"}]}], "sweep.0.defenses.0.name"),
    ],
)
def test_bad_sweeps_exit_2_before_training(tmp_path, capsys, monkeypatch, sweep, message):
    def refuse(*args, **kwargs):
        raise AssertionError("trained before the bad setting was reported")

    monkeypatch.setattr(TorchRecipe, "train", refuse)
    path = _write(tmp_path, sweep)
    assert main(["sweep", path, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_dp_recipe_with_batchnorm_fails_validation_before_training():
    import numpy as np

    from miaudit.data.dataset import Dataset
    from miaudit.errors import InvalidAuditInput
    from miaudit.models import TrainingConfig

    images = Dataset(
        name="img",
        x=np.zeros((4, 3, 8, 8), np.float32),
        y=np.arange(4, dtype=np.int64) % 2,
        n_classes=2,
    )
    recipe = TorchRecipe(
        architecture="small_cnn",
        arch_params={"widths": (4,)},
        training=TrainingConfig(epochs=1, dp_noise_multiplier=1.0),
    )
    with pytest.raises(InvalidAuditInput, match="DP-SGD cannot train this network"):
        recipe.validate(images)


def test_a_canary_audit_larger_than_the_population_exits_2_before_training(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(TorchRecipe, "train", lambda *a, **k: pytest.fail("trained"))
    path = _write(tmp_path, [{"label": "baseline"}], canary_audit={"canaries": 5000})
    assert main(["sweep", path, "--out", str(tmp_path / "out")]) == 2
    assert "canary_audit: 5000 canaries" in capsys.readouterr().err
