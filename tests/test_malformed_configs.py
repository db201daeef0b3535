"""A corpus of malformed audit files, each run through the whole command line.

Every case must end with exit status 2 and a short message naming the field or file, with
no Python traceback anywhere in the output, no model trained and nothing written. The
command line runs in this process (``miaudit.cli.main``) with every training entry point
replaced by one that fails the test, so "before any model is trained" is checked directly
rather than by timing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from miaudit.cli import main
from miaudit.models import SklearnRecipe, TorchRecipe, build_model, save_torch_model

BASE = {
    "dataset": "digits",
    "split": {"members": 200, "nonmembers": 200, "seed": 0},
    "target": {"recipe": {"architecture": "mlp", "params": {"hidden": [16]}}},
    "attacks": ["loss"],
}


def _with(path: str, value) -> dict:
    """BASE with the dotted ``path`` set to ``value`` (``None``: removed)."""
    config = yaml.safe_load(yaml.safe_dump(BASE))
    *parents, leaf = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return config


#: name -> (config as a dict, or raw text / bytes, and a regular expression the message matches)
CORPUS: dict[str, tuple[object, str]] = {
    # YAML and file level
    "empty file": ("", "audit file|dataset"),
    "top-level list": ("- dataset: digits\n", "mapping|dict|object"),
    "top-level scalar": ("just words\n", "mapping|dict|object"),
    "tab indentation": ("dataset: digits\nsplit:\n\tmembers: 3\n", "not valid YAML"),
    "unclosed bracket": ("dataset: [digits\n", "not valid YAML"),
    "not utf-8": (b"dataset: \xff\xfe digits\n", "UTF-8"),
    "duplicate key": ("dataset: digits\ndataset: location\n", "duplicate key 'dataset'"),
    "alias": ("a: &x 1\nb: *x\n", "aliases"),
    # schema
    "unknown top-level key": (_with("datasett", "digits"), "datasett"),
    "no dataset": (_with("dataset", None), "dataset"),
    "no target": (_with("target", None), "target"),
    "two target kinds": (
        _with("target.sklearn", {"estimator": "LogisticRegression"}),
        "exactly one of recipe, sklearn, model_file",
    ),
    "no split sizes": (_with("split", {"seed": 1}), "members and nonmembers"),
    "zero members": (_with("split.members", 0), "split.members"),
    "one member": (_with("split.members", 1), "split.members: an audit needs at least 2 members"),
    "one non-member": (_with("split.nonmembers", 1), "split.nonmembers: .*at least 2"),
    "negative non-members": (_with("split.nonmembers", -5), "split.nonmembers"),
    "members as text": (_with("split.members", "many"), "split.members"),
    "members as boolean": (_with("split.members", True), "split.members"),
    "members as float": (_with("split.members", 2.5), "split.members"),
    "seed as text": (_with("split.seed", "x"), "split.seed"),
    "negative population": (_with("split.population", -1), "split.population"),
    "more records than the data set": (_with("split.members", 5000), "members|records"),
    "unknown data set": (_with("dataset", "no-such-data"), "no-such-data"),
    "unknown architecture": (_with("target.recipe.architecture", "transformer9"), "transformer9"),
    "unknown architecture parameter": (
        _with("target.recipe.params", {"hiddne": [3]}),
        "hiddne",
    ),
    "zero epochs": (_with("target.recipe.training", {"epochs": 0}), "epochs"),
    "negative learning rate": (_with("target.recipe.training", {"lr": -1}), "lr"),
    "unknown optimizer": (_with("target.recipe.training", {"optimizer": "bogus"}), "optimizer"),
    "unknown training key": (_with("target.recipe.training", {"epochz": 3}), "epochz"),
    "unknown device": (_with("target.recipe.training", {"device": "tpu"}), "device"),
    "unknown access": (_with("target.access", "root"), "target.access"),
    "unknown sklearn estimator": (
        _with("target", {"sklearn": {"estimator": "DeepForest"}}),
        "DeepForest",
    ),
    "bad sklearn parameter": (
        _with("target", {"sklearn": {"estimator": "LogisticRegression", "params": {"C": "x"}}}),
        "target.sklearn.params",
    ),
    "unknown model format": (
        _with("target", {"model_file": "model.h5"}),
        "target: .*unknown model format '.h5'",
    ),
    "missing model file": (
        {**_with("target", {"model_file": "absent.pt"}), "split": {"indices_file": "s.npz"}},
        "target.model_file: .*absent.pt' does not exist",
    ),
    # evaluation
    "fpr above one": (_with("evaluation", {"fprs": [0.5, 2.0]}), "fprs"),
    "no fprs": (_with("evaluation", {"fprs": []}), "fprs"),
    "delta above one": (_with("evaluation", {"delta": 1.5}), "delta"),
    "confidence one": (_with("evaluation", {"confidence": 1}), "confidence"),
    "calibration fraction zero": (
        _with("evaluation", {"calibration_fraction": 0}),
        "calibration_fraction",
    ),
    "unknown evaluation key": (_with("evaluation", {"fprz": [0.1]}), "fprz"),
    # attacks
    "attacks as a string": (_with("attacks", "loss"), "attacks"),
    "attacks as a mapping": (_with("attacks", {"name": "loss"}), "attacks"),
    "no attacks": (_with("attacks", []), "attack"),
    "attack as a number": (_with("attacks", [5]), "attacks"),
    "attack without a name": (_with("attacks", [{"label": "x"}]), "name"),
    "unknown attack": (_with("attacks", ["bogus"]), "unknown attack 'bogus'"),
    "markup attack name": (_with("attacks", ["[/bogus]"]), r"unknown attack '\[/bogus\]'"),
    "markup and control characters": (
        _with("attacks", ["[bold red]x\x1b[31m"]),
        r"unknown attack",
    ),
    "very long attack name": (_with("attacks", ["z" * 20000]), "unknown attack"),
    "empty label": (_with("attacks", [{"name": "loss", "label": ""}]), "label"),
    "duplicate label": (
        _with("attacks", ["loss", {"name": "confidence", "label": "loss"}]),
        "unique",
    ),
    "unknown attack parameter": (_with("attacks", [{"name": "rmia", "gama": 2}]), "gama"),
    "zero references": (
        _with("attacks", [{"name": "rmia", "num_references": 0}]),
        "num_references",
    ),
    "fractional references": (
        _with("attacks", [{"name": "lira", "num_references": 2.5}]),
        "num_references",
    ),
    "references on a metric attack": (
        _with("attacks", [{"name": "loss", "num_references": 2}]),
        "num_references",
    ),
    "negative gamma": (_with("attacks", [{"name": "rmia", "gamma": -1}]), "gamma"),
    "access too low": (
        {**_with("target.access", "label_only"), "attacks": ["loss"]},
        "needs probabilities access",
    ),
    "reference attack without recipe": (
        {**_with("target", {"model_file": "m.pt"}), "attacks": ["lira"]},
        "recipe|model_file",
    ),
    "white-box attack on a black-box target": (
        {**_with("target.access", "probabilities"), "attacks": ["whitebox"]},
        "needs white_box access",
    ),
    "unknown layer": (
        _with("attacks", [{"name": "whitebox", "gradients_to_exploit": ["fc9"]}]),
        "gradients_to_exploit: no gradient layer named 'fc9'.*layers are 1: ",
    ),
    "bad attack optimizer": (
        _with("attacks", [{"name": "whitebox", "optimizer": "lbfgs"}]),
        "optimizer must be one of",
    ),
    "gradient boundary on a label-only target": (
        {
            **_with("target.access", "label_only"),
            "attacks": [{"name": "boundary", "method": "gradient"}],
        },
        "needs white_box access",
    ),
    # references
    "unknown queries": (
        {**_with("references", {"queries": "rotations"}), "attacks": ["lira"]},
        "references.queries",
    ),
    "calibrate as text": (
        {**_with("references", {"calibrate": "yes"}), "attacks": ["lira"]},
        "references.calibrate",
    ),
    "zero train size": (
        {**_with("references", {"train_size": 0}), "attacks": ["lira"]},
        "references.train_size",
    ),
    "train size beyond the population": (
        {
            **_with("references", {"train_size": 900}),
            "attacks": ["lira"],
            "split": {"members": 200, "nonmembers": 200, "population": 300},
        },
        "references.train_size",
    ),
    "unknown references key": (
        {**_with("references", {"cachedir": "x"}), "attacks": ["lira"]},
        "cachedir",
    ),
    "epochs beyond any sense": (
        _with("target.recipe.training", {"epochs": 10**20}),
        "epochs must be at most 1,000,000",
    ),
    "population size beyond the population": (
        {
            **_with("references", {"population_size": 100_000_000}),
            "attacks": ["rmia"],
            "split": {"members": 200, "nonmembers": 200, "population": 300},
        },
        "references.population_size: 100000000 .* holds 300",
    ),
    "python recipe without trust": (
        _with("target.recipe", {"python": "train.py:train"}),
        "does not exist|--trust-code",
    ),
    "estimator by import path without trust": (
        _with("target", {"sklearn": {"estimator": "xgboost.XGBClassifier"}}),
        "--trust-code",
    ),
    "recipe with python and sklearn": (
        _with(
            "references",
            {"recipe": {"python": "t.py:f", "sklearn": {"estimator": "SVC"}}},
        ),
        "python or sklearn",
    ),
    "references predictions and recipe": (
        {
            **_with(
                "references",
                {"predictions_file": "refs.npz", "recipe": {"architecture": "mlp"}},
            ),
            "attacks": ["rmia"],
        },
        "recipe .* or predictions_file",
    ),
    "calibrate an unknown setting": (
        {
            **_with("references", {"calibrate": {"param": "warp_speed", "values": [1, 2]}}),
            "attacks": ["lira"],
            "split": {"members": 200, "nonmembers": 200, "population": 300},
        },
        "warp_speed",
    ),
}

#: Cases that need files made by the test: name -> expected message.
FILE_CASES = {
    "config is a folder": "is a folder",
    "model file is a folder": "target.model_file.*is a folder",
    "model file for other records": r"saved for records of shape \(20,\).*\(64,\)",
    "model file with other classes": "predicts 3 classes but data set 'digits' has 10",
    "model file not torch": "not a PyTorch file",
    "pickle without trust": "trust-model-code",
    "split seed with a model file": "indices_file",
    "indices file missing": "split.indices_file.*does not exist",
    "indices file is a folder": "split.indices_file.*is a folder",
    "indices file is text": "split.indices_file.*not an .npz archive",
    "indices file is an npy": "split.indices_file.*not an .npz archive",
    "indices file lacks keys": r"missing keys \['nonmembers'\]",
    "indices out of range": "split.indices_file.*out of range",
    "overlapping members and non-members": "split.indices_file.*(overlap|both)",
    "indices file with one member": "split.indices_file.*at least 2 members.*got 1",
    "cache folder is a file": "references.cache_dir",
    "output is a file": "--out",
}


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to train a model fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was trained before the bad input was reported")

    monkeypatch.setattr(TorchRecipe, "train", refuse)
    monkeypatch.setattr(SklearnRecipe, "train", refuse)
    monkeypatch.setattr("miaudit.compute.ensemble.train_ensemble", refuse)


def _run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _check(code: int, output: str, message: str, out: Path) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    assert re.search(message, output, re.S), output
    assert len(output) < 2600, f"{len(output)} characters"  # capped messages
    assert not out.exists() or not any(out.iterdir()), "something was written"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_config_exits_2_without_a_traceback(name, tmp_path, capsys, no_training):
    content, message = CORPUS[name]
    path = tmp_path / "audit.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(yaml.safe_dump(content))
    out = tmp_path / "out"
    code, output = _run(["audit", str(path), "--out", str(out)], capsys)
    _check(code, output, message, out)


def _save_mlp(path: Path, width: int, n_classes: int) -> None:
    model = build_model("mlp", input_shape=(width,), n_classes=n_classes, hidden=(8,), seed=0)
    save_torch_model(
        path,
        model,
        architecture="mlp",
        arch_params={"hidden": (8,)},
        input_shape=(width,),
        n_classes=n_classes,
    )


def _file_case(name: str, tmp: Path) -> tuple[Path, list[str]]:
    """Write what ``name`` needs; return the audit file and extra CLI arguments."""
    config = yaml.safe_load(yaml.safe_dump(BASE))
    split_file = tmp / "split.npz"
    np.savez(split_file, members=np.arange(100), nonmembers=np.arange(100, 200))
    model_config = {
        **config,
        "target": {"model_file": str(tmp / "model.pt")},
        "split": {"indices_file": str(split_file)},
    }
    _save_mlp(tmp / "model.pt", 64, 10)
    args: list[str] = []
    if name == "config is a folder":
        return tmp, args
    if name == "model file is a folder":
        (tmp / "dir.pt").mkdir()
        config = {**model_config, "target": {"model_file": str(tmp / "dir.pt")}}
    elif name == "model file for other records":
        _save_mlp(tmp / "model.pt", 20, 10)
        config = model_config
    elif name == "model file with other classes":
        _save_mlp(tmp / "model.pt", 64, 3)
        config = model_config
    elif name == "model file not torch":
        (tmp / "model.pt").write_text("weights, honest")
        config = model_config
    elif name == "pickle without trust":
        (tmp / "model.pkl").write_bytes(b"\x80\x04K\x01.")
        config = {**model_config, "target": {"model_file": str(tmp / "model.pkl")}}
    elif name == "split seed with a model file":
        config = {**model_config, "split": {"members": 100, "nonmembers": 100}}
    elif name.startswith("indices") or name in (
        "indices out of range",
        "overlapping members and non-members",
    ):
        bad = tmp / "bad.npz"
        if name == "indices file is a folder":
            bad.mkdir()
        elif name == "indices file is text":
            bad.write_text("members: 1 2 3\nnonmembers: 4 5 6\n")
        elif name == "indices file is an npy":
            np.save(tmp / "bad.npy", np.arange(10))
            (tmp / "bad.npy").rename(bad)
        elif name == "indices file lacks keys":
            np.savez(bad, members=np.arange(10))
        elif name == "indices out of range":
            np.savez(bad, members=np.arange(10), nonmembers=np.arange(10**6, 10**6 + 10))
        elif name == "overlapping members and non-members":
            np.savez(bad, members=np.arange(10), nonmembers=np.arange(5, 15))
        elif name == "indices file with one member":
            np.savez(bad, members=np.arange(1), nonmembers=np.arange(5, 15))
        config = {**model_config, "split": {"indices_file": str(bad)}}
    elif name == "cache folder is a file":
        (tmp / "blocker").write_text("a file")
        config = {
            **config,
            "attacks": ["lira"],
            "references": {"cache_dir": str(tmp / "blocker" / "cache")},
        }
    elif name == "output is a file":
        (tmp / "out-file").write_text("a file")
        args = ["--out", str(tmp / "out-file")]
    else:
        raise AssertionError(name)
    path = tmp / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, args


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_bad_files_exit_2_without_a_traceback(name, tmp_path, capsys, no_training):
    case = tmp_path / "case"
    case.mkdir()
    config, args = _file_case(name, case)
    out = tmp_path / "out"
    code, output = _run(["audit", str(config), *(args or ["--out", str(out)])], capsys)
    _check(code, output, FILE_CASES[name], out)


#: Files of the other commands (sweep, unlearn) whose settings only the data set can
#: check: command -> (extra sections, expected message).
STUDY_CASES = {
    "sweep top_k above the class count": (
        "sweep",
        {"sweep": [{"label": "base"}, {"label": "top", "defenses": [{"name": "top_k", "k": 12}]}]},
        r"sweep 'top': defenses: .*k must be an int in \[1, 10\], got 12",
    ),
    "sweep with repeated labels": (
        "sweep",
        {"sweep": [{"label": "a"}, {"label": "a"}]},
        "sweep labels must be unique",
    ),
    "sweep setting with an unknown defense": (
        "sweep",
        {"sweep": [{"label": "x", "defenses": [{"name": "blur"}]}]},
        "blur",
    ),
    "sweep setting with epochs beyond the maximum": (
        "sweep",
        {"sweep": [{"label": "long", "training": {"epochs": 10**20}}]},
        r"epochs must be at most 1,000,000",
    ),
    "sweep setting with a network that cannot fit": (
        "sweep",
        {"sweep": [{"label": "huge", "params": {"hidden": [10**11]}}]},
        r"sweep 'huge': the setting would need about .* MiB available",
    ),
    "audit top_k above the class count": (
        "audit",
        {"target": {**BASE["target"], "defenses": [{"name": "top_k", "k": 11}]}},
        r"target.defenses: .*\[1, 10\], got 11",
    ),
    "SISA with more slices than records": (
        "unlearn",
        {
            "unlearning": {
                "fractions": [0.1],
                "methods": [{"name": "sisa", "shards": 50, "slices": 5}],
            }
        },
        "50 shards x 5 slices need at least 250 records, but as few as 180 remain",
    ),
    "gradient ascent with a learning rate that overflows": (
        "unlearn",
        {"unlearning": {"fractions": [0.1], "methods": [{"name": "gradient_ascent", "lr": 1e300}]}},
        r"unlearning.methods.0.lr: .*less than or equal to 1000",
    ),
    "a deletion fraction that deletes one record": (
        "unlearn",
        {"unlearning": {"fractions": [0.001], "methods": [{"name": "retrain"}]}},
        r"'0.1% random' deletes 1 record.*unlearning.fractions",
    ),
    "SISA shards beyond the maximum count": (
        "unlearn",
        {"unlearning": {"fractions": [0.1], "methods": [{"name": "sisa", "shards": 10**12}]}},
        r"unlearning.methods.0.shards: .*less than or equal to 1000000",
    ),
    "unlearning with no method": (
        "unlearn",
        {"unlearning": {"fractions": [0.1], "methods": []}},
        "methods",
    ),
}


@pytest.mark.parametrize("name", sorted(STUDY_CASES))
def test_study_settings_fail_before_training(name, tmp_path, capsys, no_training):
    command, sections, message = STUDY_CASES[name]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(yaml.safe_dump(BASE)), **sections}))
    out = tmp_path / "out"
    code, output = _run([command, str(path), "--out", str(out)], capsys)
    _check(code, output, message, out)
