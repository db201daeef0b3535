"""What an audit will cost, before it starts: a plan that cannot fit is refused with both
figures; --dry-run prints the plan (models to train and cached, queries, memory, time) and
trains and writes nothing."""

from __future__ import annotations

import yaml

from miaudit.cli import main
from miaudit.models import TorchRecipe

AUDIT = {
    "dataset": "digits",
    "split": {"members": 200, "nonmembers": 200, "population": 400, "seed": 0},
    "target": {
        "recipe": {"architecture": "mlp", "params": {"hidden": [32]}, "training": {"epochs": 5}}
    },
    "attacks": ["loss", {"name": "rmia", "num_references": 2}],
}


def _write(tmp_path, config) -> str:
    path = tmp_path / "audit.yaml"
    config = {**config, "references": {"cache_dir": str(tmp_path / "cache")}}
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_network_that_cannot_fit_is_refused_before_anything_trains(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(TorchRecipe, "train", refuse)
    huge = yaml.safe_load(yaml.safe_dump(AUDIT))
    huge["target"]["recipe"]["params"]["hidden"] = [100_000_000_000]
    out = tmp_path / "out"
    assert main(["audit", _write(tmp_path, huge), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "MiB of memory" in err and "one network in training" in err and "available" in err
    assert "Traceback" not in err and not out.exists()


def test_dry_run_prints_the_plan_and_does_nothing(tmp_path, capsys):
    path = _write(tmp_path, AUDIT)
    out = tmp_path / "out"
    assert main(["audit", path, "--out", str(out), "--dry-run"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "target: TorchRecipe on 200 members, to train" in printed
    assert "reference models: 2 (0 already in the model cache, 2 to train)" in printed
    assert "queries: 800 to the target, 1,600 to the reference models" in printed
    assert "time: about" in printed and "3 models of 5 epochs" in printed
    assert not out.exists() and not (tmp_path / "cache").exists()
    # After the audit ran, the plan finds everything in the cache.
    assert main(["--quiet", "audit", path, "--out", str(out)]) == 0
    assert main(["audit", path, "--out", str(out), "--dry-run"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert (
        "in the model cache" in printed and "(2 already in the model cache, 0 to train)" in printed
    )


def _study(tmp_path, sections: dict) -> str:
    config = yaml.safe_load(yaml.safe_dump(AUDIT))
    config["references"] = {"cache_dir": str(tmp_path / "cache")}
    path = tmp_path / f"{next(iter(sections))}.yaml"
    path.write_text(yaml.safe_dump({**config, **sections}))
    return str(path)


def test_every_command_has_a_dry_run_that_trains_and_writes_nothing(tmp_path, capsys):
    sweep = _study(
        tmp_path,
        {"sweep": [{"label": "base"}, {"label": "wide", "params": {"hidden": [64]}}]},
    )
    unlearn = _study(
        tmp_path,
        {
            "unlearning": {
                "fractions": [0.1],
                "methods": [{"name": "retrain"}, {"name": "sisa", "shards": 2, "slices": 3}],
                "ulira_references": 2,
            }
        },
    )
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "dataset": "digits",
                "records": 400,
                "recipe": AUDIT["target"]["recipe"],
                "n_references": 2,
                "n_targets": 2,
                "cache_dir": str(tmp_path / "cache"),
            }
        )
    )
    out = tmp_path / "out"
    for command, path in (("sweep", sweep), ("unlearn", unlearn), ("experiment", experiment)):
        assert main([command, str(path), "--out", str(out), "--dry-run"]) == 0, command
    printed = " ".join(capsys.readouterr().out.split())
    # The sweep: each setting's audit plan, and the total.
    assert "setting 'base': target: TorchRecipe on 200 members, to train" in printed
    assert "setting 'wide':" in printed and "all settings: about" in printed
    # The unlearning study: what trains, in full trainings of the recipe.
    assert "deletion requests: 1 (10% random), each followed by full retraining" in printed
    assert "SISA 2x3 (mean): per request about 2 full trainings" in printed
    assert "U-LiRA: 2 references per request and method (2 models" in printed
    # 1 original + 1 retraining + SISA (fit 2, unlearning 2) + U-LiRA 2 x (1 + 1) = 10.
    assert "about 10 trainings of 5 epochs" in printed
    # The experiment: models, cache, queries.
    assert "models: 4 mlp on 200 of 400 records each (0 already in the model cache" in printed
    assert "queries: 1,600 to the models" in printed
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_a_sweep_setting_that_cannot_fit_is_refused_before_the_first_trains(
    tmp_path, capsys, monkeypatch
):
    def refuse(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(TorchRecipe, "train", refuse)
    path = _study(
        tmp_path,
        {"sweep": [{"label": "base"}, {"label": "huge", "params": {"hidden": [100_000_000_000]}}]},
    )
    assert main(["sweep", path, "--out", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "sweep 'huge': the setting would need about" in err and "MiB available" in err
