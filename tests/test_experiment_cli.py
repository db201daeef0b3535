"""``miaudit experiment``: the self-audit protocol from a YAML file, one audit report per
target, and the progress display (bars in a terminal, lines in a log, nothing with -q)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from miaudit.cli import main

RECIPE = {
    "architecture": "mlp",
    "params": {"hidden": [64]},
    "training": {"epochs": 80, "optimizer": "adam", "lr": 0.001, "batch_size": 32},
}


def _write(path, **changes):
    config = {
        "dataset": "digits",
        "records": 600,
        "recipe": RECIPE,
        "n_references": 2,
        "n_targets": 2,
        "attacks": ["loss", {"name": "rmia", "online": False}],
        "cache_dir": "cache",
        **changes,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_experiment_writes_an_audit_report_per_target_and_a_summary(tmp_path, capsys):
    path = _write(tmp_path / "exp.yaml")
    out = tmp_path / "out"
    assert main(["experiment", str(path), "--out", str(out)]) == 0
    log = capsys.readouterr().out
    # Not a terminal here: progress comes as plain lines with an ETA, then the table.
    summary = json.loads((out / "experiment.json").read_text())
    n_models = summary["n_models"]  # pairs of complementary halves: 2 targets + 2 others
    assert n_models == 4 and summary["records"] == 600
    assert f"reference models: 1/{n_models} models" in log and "left" in log
    assert "Self-audit" in log
    rows = {row["attack"]: row for row in summary["summary"]}
    assert set(rows) == {"loss", "rmia_offline"}
    aucs = []
    for t in (0, 1):
        report = json.loads((out / f"target-{t}" / "report.json").read_text())
        assert (out / f"target-{t}" / "report.html").exists()
        with np.load(out / f"target-{t}" / "scores.npz") as scores:
            is_member = scores["is_member"]
            names = [a["name"] for a in report["attacks"]]
            for attack in report["attacks"]:
                auc = roc_auc_score(is_member, scores[attack["name"]])
                assert auc == pytest.approx(attack["auc"], abs=1e-9)
            aucs.append([a["auc"] for a in report["attacks"]])
        assert report["data"]["n_members"] + report["data"]["n_nonmembers"] == 600
        assert is_member.mean() == pytest.approx(0.5, abs=0.01)
    # The summary is the mean over the targets; the overfit MLP is detected.
    mean = np.mean(aucs, axis=0)
    for name, value in zip(names, mean, strict=True):
        assert rows[name]["auc"] == pytest.approx(value)
        assert value > 0.53  # deterministic (fixed seeds); chance is 0.5 ± 0.02
    # A rerun trains nothing: every model comes from the cache.
    assert main(["--quiet", "experiment", str(path), "--out", str(out)]) == 0
    assert json.loads((out / "experiment.json").read_text())["models_from_cache"] == n_models


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_references": 0}, "n_references"),
        ({"records": 10**6}, "records"),
        ({"attacks": ["shadow"]}, "train shadow models"),
        ({"attacks": ["nope"]}, "nope"),
        ({"recipe": {**RECIPE, "architecture": "vgg99"}}, "vgg99"),
        ({"split": {"members": 3}}, "split"),
        ({"n_references": 10**12}, "n_references"),
        ({"n_targets": 10**9}, "n_targets"),
        ({"population_size": 10**8}, "population_size"),
        ({"recipe": {**RECIPE, "training": {"epochs": 10**20}}}, "epochs"),
        ({"recipe": {**RECIPE, "training": {"lr": 1e300}}}, "lr"),
        ({"recipe": {**RECIPE, "params": {"hidden": [10**11]}}}, "MiB available"),
        ({"queries": "mirror"}, "queries"),
        ({"executor": "cluster"}, "executor"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_experiment_files_exit_2_before_training(
    tmp_path, capsys, train_calls, changes, message
):
    path = _write(tmp_path / "exp.yaml", **changes)
    out = tmp_path / "out"
    assert main(["experiment", str(path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert train_calls == []
    assert not out.exists()


def test_progress_display_lines_bars_and_quiet():
    from rich.console import Console

    from miaudit.console_progress import ProgressDisplay

    log = io.StringIO()
    display = ProgressDisplay(Console(file=log, force_terminal=False, width=200))
    with display:
        for epoch in range(1, 21):
            display.epochs(epoch, 20, 0.5)
        for k in range(1, 4):
            display.models(k, 3, {"test_accuracy": 0.7, "seconds": 1.0, "model": k})
    text = log.getvalue()
    assert "training the target: 2/20 epochs" in text and "20/20" in text
    assert "training the target: 3/20" not in text  # about every tenth, not every epoch
    assert "reference models: 3/3 models" in text and "3 reference models ready" in text
    terminal = io.StringIO()
    bars = ProgressDisplay(Console(file=terminal, force_terminal=True, width=120))
    assert bars.live
    with bars:
        bars.models(1, 2, {"test_accuracy": 0.7})
    quiet = io.StringIO()
    silent = ProgressDisplay(Console(file=quiet, force_terminal=True, quiet=True))
    with silent:
        silent.models(1, 1, {})
    assert quiet.getvalue() == ""


def test_audit_shows_attacks_and_shadow_models_progress(tmp_path, capsys):
    """A shadow attack on synthesised data: the log shows the synthesis, each shadow model
    and each attack as they advance."""
    rng = np.random.default_rng(0)
    x = (rng.random((600, 20)) < 0.5).astype(np.float32)  # binary, as synthesis needs
    y = (x[:, :3].sum(axis=1) >= 2).astype(np.int64)
    np.savez(tmp_path / "binary.npz", x=x, y=y)
    config = {
        "dataset": "binary.npz",
        "split": {"members": 150, "nonmembers": 150, "population": 250, "seed": 0},
        "target": {"recipe": {**RECIPE, "training": {**RECIPE["training"], "epochs": 5}}},
        "attacks": [
            "loss",
            {
                "name": "shadow",
                "n_shadow": 3,
                "shadow_data": "synthetic",
                "synthesis": {"records_per_class": 20, "iter_max": 20},
            },
        ],
        "references": {"cache_dir": "cache"},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["audit", str(path), "--out", str(tmp_path / "out")]) == 0
    log = capsys.readouterr().out
    assert "training the target: 1/5 epochs" in log
    assert "synthesis:" in log and "records" in log
    assert "shadow models: 3/3 models" in log
    assert "attacks: 2/2 done" in log
