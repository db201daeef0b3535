"""The worked examples of examples/ run as their headers say, from a copy of their
folder, through the command line a user types: a model trained by its owner's code (own
PyTorch class and loop, exported to ONNX), XGBoost from YAML, and references trained
elsewhere. Each reference attack must see more than the loss attack at 1 % FPR."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MIAUDIT = [sys.executable, "-m", "miaudit.cli"]


def _run(args: list[str], folder: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    done = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _copy(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("results", "*.npz"))
    return folder


def _tpr(folder: Path) -> dict:
    report = json.loads((folder / "results" / "report.json").read_text())
    return {a["name"]: a["tpr_at_fpr"]["0.01"] for a in report["attacks"]}, report


@pytest.mark.slow
def test_own_pytorch_cnn_through_onnx_with_python_references(tmp_path):
    pytest.importorskip("onnxruntime")
    folder = _copy("own_pytorch_cnn", tmp_path)
    _run([sys.executable, "make_target.py"], folder)
    _run([*MIAUDIT, "audit", "audit.yaml", "--trust-code"], folder)
    tpr, report = _tpr(folder)
    assert tpr["rmia_offline"] > 3 * max(tpr["loss"], 0.005), tpr
    refs = report["target"]["references"]
    assert refs["recipe"]["function"] == "train_cnn.py:train"
    assert refs["recipe_match"]["n_matched"] >= 3


@pytest.mark.slow
def test_xgboost_target_and_references_from_yaml(tmp_path):
    pytest.importorskip("xgboost")
    folder = _copy("xgboost_tabular", tmp_path)
    _run([*MIAUDIT, "audit", "audit.yaml", "--trust-code"], folder)
    tpr, report = _tpr(folder)
    assert tpr["rmia_offline"] > 3 * max(tpr["loss"], 0.005), tpr
    assert report["target"]["description"] == "xgboost.XGBClassifier"
    # A rerun trains nothing: target and references come from XGBoost's own format.
    _run([*MIAUDIT, "audit", "audit.yaml", "--trust-code"], folder)
    _, again = _tpr(folder)
    assert again["target"]["references"]["models_loaded_from_cache"] == 8
    assert again["target"]["from_cache"] is True


@pytest.mark.slow
def test_references_trained_elsewhere(tmp_path):
    folder = _copy("references_elsewhere", tmp_path)
    _run([sys.executable, "make_target.py"], folder)
    _run([*MIAUDIT, "plan-references", "audit.yaml", "--out", "design.npz"], folder)
    _run([sys.executable, "train_elsewhere.py", "design.npz", "refs.npz"], folder)
    _run([*MIAUDIT, "audit", "audit.yaml"], folder)
    tpr, report = _tpr(folder)
    assert tpr["rmia_offline"] > tpr["loss"], tpr
    assert report["target"]["references"]["recipe"]["kind"] == "external"
    # Answers of references trained on other records than the design's are refused.
    import numpy as np

    with np.load(folder / "refs.npz") as refs:
        arrays = dict(refs)
    arrays["inclusion"] = arrays["inclusion"][::-1]
    np.savez(folder / "refs.npz", **arrays)
    done = subprocess.run(
        [*MIAUDIT, "audit", "audit.yaml", "--out", "other"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2 and "inclusion differs" in done.stderr
    assert not (folder / "other").exists()
