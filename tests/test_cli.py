"""The command line end to end: demo, YAML audits, saved models, exit status 2 on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from miaudit.cli import main
from miaudit.data import load_dataset, make_split

CONTRACT_ATTACK_KEYS = {
    "name",
    "family",
    "auc",
    "tpr_at_fpr",
    "accuracy",
    "precision",
    "recall",
    "advantage",
    "epsilon_lower_bound",
    "n_members",
    "n_nonmembers",
    "seconds",
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    code = main(["--quiet", "demo", "--out", str(out)])
    return code, out


def test_demo_writes_the_three_files_and_detects_the_target(demo_run):
    code, out = demo_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "scores.npz"]
    report = json.loads((out / "report.json").read_text())
    assert {"miaudit_version", "target", "data", "attacks", "verdict"} <= set(report)
    by_name = {a["name"]: a for a in report["attacks"]}
    assert by_name["loss"]["auc"] > 0.6
    assert report["verdict"]["risk"] in {"medium", "high"}
    for attack in report["attacks"]:
        assert CONTRACT_ATTACK_KEYS <= set(attack)
        assert {"0.001", "0.01", "0.1"} <= set(attack["tpr_at_fpr"])
    # Anyone can recompute the AUC from scores.npz.
    with np.load(out / "scores.npz") as scores:
        for attack in report["attacks"]:
            auc = roc_auc_score(scores["is_member"], scores[attack["name"]])
            assert auc == pytest.approx(attack["auc"], abs=1e-12)


def _write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _sklearn_config(out: Path) -> dict:
    return {
        "dataset": "digits",
        "split": {"members": 400, "nonmembers": 400, "seed": 3},
        "target": {
            "sklearn": {"estimator": "LogisticRegression", "params": {"C": 50.0, "max_iter": 3000}}
        },
        "attacks": ["loss", {"name": "gap"}],
        "output": str(out),
    }


def test_audit_yaml_with_sklearn_target(tmp_path, capsys):
    config = _write_yaml(tmp_path / "audit.yaml", _sklearn_config(tmp_path / "report"))
    assert main(["audit", str(config)]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [a["name"] for a in report["attacks"]] == ["loss", "gap"]
    assert report["target"]["access"] == "probabilities"
    assert report["data"]["split"]["seed"] == 3
    assert "loss" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"split": {"members": -5, "nonmembers": 10}}, "split.members"),
        ({"target": {"recipe": {"architecture": "mlp", "training": {"lr": "fast"}}}}, "lr"),
        ({"target": {"recipe": {"architecture": "mlp", "training": {"epochz": 3}}}}, "epochz"),
        ({"target": {"sklearn": {"estimator": "os.system"}}}, "target.sklearn.estimator"),
        ({"attacks": ["loss", "lira2"]}, "lira2"),
        ({"dataset": "no_such_set"}, "no_such_set"),
        ({"evaluation": {"fprs": [0.5, 7]}}, "fprs"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_config_exits_2_naming_the_field(tmp_path, capsys, change, field):
    config = _sklearn_config(tmp_path / "report") | change
    path = _write_yaml(tmp_path / "audit.yaml", config)
    assert main(["audit", str(path)]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
    assert not (tmp_path / "report").exists()


def test_invalid_yaml_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [digits\nsplit: {")
    assert main(["audit", str(bad)]) == 2
    assert "line" in capsys.readouterr().err
    assert main(["audit", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_missing_data_directory_exits_2(tmp_path, capsys):
    config = _sklearn_config(tmp_path / "report") | {"dataset": "mnist"}
    path = _write_yaml(tmp_path / "audit.yaml", config)
    assert main(["audit", str(path), "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def _split_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=300, n_nonmembers=300, seed=5, labels=data.y)
    path = tmp_path / "split.npz"
    np.savez(path, members=split.members, nonmembers=split.nonmembers)
    return path, split.members


def test_saved_torch_model_audit(tmp_path):
    from miaudit.models import TorchRecipe, TrainingConfig, save_torch_model

    _, members = _split_file(tmp_path)
    data = load_dataset("digits")
    recipe = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (64,)},
        training=TrainingConfig(epochs=30, optimizer="adam", lr=1e-3),
    )
    trained = recipe.train(data, members, seed=0)
    save_torch_model(
        tmp_path / "model.pt",
        trained.model,
        architecture="mlp",
        arch_params={"hidden": (64,)},
        input_shape=data.input_shape,
        n_classes=10,
    )
    config = {
        "dataset": "digits",
        "split": {"indices_file": "split.npz"},  # relative to the YAML file
        "target": {"model_file": "model.pt", "access": "logits"},
        "attacks": ["loss", "scaled_logit"],
    }
    path = _write_yaml(tmp_path / "audit.yaml", config)
    assert main(["--quiet", "audit", str(path), "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["target"]["access"] == "logits"
    assert report["data"]["n_members"] == 300


def test_model_file_needs_the_training_split(tmp_path, capsys):
    config = {
        "dataset": "digits",
        "split": {"members": 100, "nonmembers": 100},
        "target": {"model_file": "model.pt"},
    }
    path = _write_yaml(tmp_path / "audit.yaml", config)
    assert main(["audit", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "indices_file" in capsys.readouterr().err


def test_pickle_model_needs_trust(tmp_path, capsys):
    import pickle

    from sklearn.linear_model import LogisticRegression

    _, members = _split_file(tmp_path)
    data = load_dataset("digits")
    est = LogisticRegression(max_iter=2000).fit(data.x[members], data.y[members])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(est))
    config = {
        "dataset": "digits",
        "split": {"indices_file": "split.npz"},
        "target": {"model_file": "model.pkl"},
    }
    path = _write_yaml(tmp_path / "audit.yaml", config)
    out = tmp_path / "r"
    assert main(["audit", str(path), "--out", str(out)]) == 2
    assert "--trust-model-code" in capsys.readouterr().err
    assert not out.exists()
    assert main(["--quiet", "audit", str(path), "--out", str(out), "--trust-pickle"]) == 0
    assert (out / "report.json").exists()


def test_datasets_command_lists_names(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist", "cifar10", "location"):
        assert name in out


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "miaudit"
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "miaudit" in done.stdout


def test_mlflow_logs_params_metrics_and_artifacts(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    config = {
        "dataset": "digits",
        "split": {"members": 200, "nonmembers": 200, "seed": 0},
        "target": {
            "sklearn": {"estimator": "RandomForestClassifier", "params": {"n_estimators": 20}}
        },
        "attacks": ["loss", "gap"],
        "tracking": {"kind": "mlflow", "uri": store.as_uri(), "experiment": "audits"},
    }
    path = _write_yaml(tmp_path / "audit.yaml", config)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert main(["--quiet", "audit", str(path), "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    client = mlflow.tracking.MlflowClient(store.as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "audits"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["dataset"] == "digits" and run.data.params["n_members"] == "200"
    for attack in report["attacks"]:
        assert run.data.metrics[f"{attack['name']}.auc"] == pytest.approx(attack["auc"])
        assert run.data.metrics[f"{attack['name']}.tpr_at_fpr_0.01"] == pytest.approx(
            attack["tpr_at_fpr"]["0.01"]
        )
    assert run.data.tags["miaudit.verdict"] == report["verdict"]["risk"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"report.html", "report.json"}
    # --mlflow on the command line does the same for a file without a tracking section.
    del config["tracking"]
    path = _write_yaml(tmp_path / "plain.yaml", config)
    other = (tmp_path / "other").as_uri()
    assert (
        main(["--quiet", "audit", str(path), "--out", str(tmp_path / "r2"), "--mlflow-uri", other])
        == 0
    )
    client = mlflow.tracking.MlflowClient(other)
    (experiment,) = [e for e in client.search_experiments() if e.name == "miaudit"]
    assert len(client.search_runs([experiment.experiment_id])) == 1
