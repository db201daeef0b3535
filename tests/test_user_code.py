"""Your model, your training code: recipes from the user's own function, registered
architectures, models of other libraries in the cache, and the trust that code needs.

Every target here is trained by code miaudit did not write (a PyTorch class and loop of
the test's own, XGBoost, LightGBM); the references are trained by the same code."""

from __future__ import annotations

import json
import textwrap
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from miaudit.cli import main
from miaudit.compute import CacheWarning, ModelCache, QuerySet, ReferencePool
from miaudit.data import load_dataset, make_split
from miaudit.errors import InvalidAuditInput, UserCodeError
from miaudit.models import PythonRecipe, register_architecture

ATTACKS = ["loss", {"name": "rmia", "num_references": 4}]


class _Net(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x):
        return self.body(x)


def _train_net(x, y, *, seed, epochs=40, width=32):
    """A user's loop: full-batch Adam, their own class; draws from torch's global RNG."""
    model = _Net(width)  # initial weights from the global generator miaudit seeds
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xs, ys = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xs), ys).backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=300, n_nonmembers=300, seed=1, labels=data.y)
    return data, split


def test_python_recipe_seeds_and_reproduces_the_users_training(digits):
    data, split = digits
    recipe = PythonRecipe(_train_net, params={"epochs": 30})
    a = recipe.train(data, split.members, seed=3, eval_indices=split.nonmembers)
    b = recipe.train(data, split.members, seed=3)
    c = recipe.train(data, split.members, seed=4)
    x = torch.as_tensor(data.x[:50])
    assert torch.equal(a.model(x), b.model(x))  # one seed, one model
    assert not torch.equal(a.model(x), c.model(x))
    assert a.train_accuracy > 0.95 and 0.5 < a.test_accuracy < a.train_accuracy
    # The caller's global generators are left as they were.
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    recipe.train(data, split.members[:50], seed=9)
    assert torch.equal(torch.rand(1), before)


def test_fingerprint_follows_the_code_and_params(tmp_path, digits):
    (tmp_path / "helpers.py").write_text("WIDTH = 8\n")
    (tmp_path / "train.py").write_text(
        textwrap.dedent(
            """
            from helpers import WIDTH
            from sklearn.linear_model import LogisticRegression

            def train(x, y, *, seed, c=1.0):
                return LogisticRegression(C=c, max_iter=200).fit(x, y)
            """
        )
    )
    from miaudit.models.user_code import (
        code_files,
        load_function,
        parse_code_reference,
    )

    ref = parse_code_reference("train.py:train", base_dir=tmp_path, field="f")
    fn = load_function(ref, trust_code=True, field="f")
    files = code_files(ref.file)
    assert set(files) == {"train.py", "helpers.py"}  # the sibling it imports
    first = PythonRecipe(fn, code=files).fingerprint()
    assert PythonRecipe(fn, code=files, params={"c": 2.0}).fingerprint() != first
    (tmp_path / "helpers.py").write_text("WIDTH = 16\n")
    assert PythonRecipe(fn, code=code_files(ref.file)).fingerprint() != first
    with pytest.raises(InvalidAuditInput, match="--trust-code"):
        load_function(ref, trust_code=False, field="references.recipe.python")


def test_a_function_without_source_needs_and_takes_a_code_version():
    namespace: dict = {}
    exec("def train(x, y, *, seed):\n    return None\n", namespace)  # as typed in a console
    with pytest.raises(InvalidAuditInput, match="pass code_version="):
        PythonRecipe(namespace["train"])
    v1 = PythonRecipe(namespace["train"], code_version="v1")
    assert v1.code == {} and v1.name.endswith(":train")
    assert PythonRecipe(namespace["train"], code_version="v2").fingerprint() != v1.fingerprint()


def test_bad_functions_are_refused_before_training():
    with pytest.raises(InvalidAuditInput, match="no 'seed' argument"):
        PythonRecipe(lambda x, y, epochs=1: None)
    with pytest.raises(InvalidAuditInput, match=r"params \['lr'\] are not arguments"):
        PythonRecipe(_train_net, params={"lr": 0.1})
    with pytest.raises(InvalidAuditInput, match="miaudit passes them"):
        PythonRecipe(_train_net, params={"seed": 1})


def test_a_failing_training_function_names_model_and_seed(digits):
    data, split = digits

    def broken(x, y, *, seed):
        raise RuntimeError("CUDA out of memory (pretend)")

    with pytest.raises(UserCodeError, match=r"seed 5: CUDA out of memory") as caught:
        PythonRecipe(broken).train(data, split.members, seed=5)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_unregistered_networks_are_cached_as_answers_and_pool_holds_one_model(tmp_path, digits):
    data, split = digits
    recipe = PythonRecipe(_train_net, params={"epochs": 20})
    cache = ModelCache(tmp_path / "cache")
    audited = split.audited
    questions = [(audited, QuerySet.none(), None)]

    def pool():
        return ReferencePool(recipe, data, audited, n_models=4, cache=cache)

    first = pool()
    models = first.train(answer_on=questions)
    assert all(m.model is None for m in models)  # answered, stored, released
    answers = first.observe(audited, queries=QuerySet.none())
    assert first.answers_from_cache == 4
    again = pool()
    calls = []
    original = recipe.train_fn

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    object.__setattr__(recipe, "train_fn", counting)
    try:
        again.train(answer_on=questions)
        assert calls == []  # a rerun trains nothing: the answers are in the cache
        np.testing.assert_array_equal(
            again.observe(audited, queries=QuerySet.none()).scaled_logit, answers.scaled_logit
        )
        # An attack that needs a model itself gets it back, trained again with its seed.
        lazy = again.lazy_models()
        assert len(lazy) == 4 and isinstance(lazy[2].model, nn.Module) and calls == [1]
    finally:
        object.__setattr__(recipe, "train_fn", original)
    entry = json.loads(next((tmp_path / "cache").glob("??/*.json")).read_text())
    assert entry["kind"] == "answers_only" and entry["model_file"] is None


def test_registered_architecture_caches_weights(tmp_path, digits):
    data, split = digits

    def build(shape, n_classes, width=32):
        return _Net(width)

    register_architecture("test_user_net", build)
    register_architecture("test_user_net", build)  # the same builder again: fine
    with pytest.raises(InvalidAuditInput, match="another builder"):
        register_architecture("test_user_net", lambda shape, n: _Net())
    with pytest.raises(InvalidAuditInput, match="miaudit's own"):
        register_architecture("mlp", lambda shape, n: _Net())
    recipe = PythonRecipe(_train_net, params={"epochs": 5}, architecture="test_user_net")
    cache = ModelCache(tmp_path)
    pool = ReferencePool(recipe, data, split.audited, n_models=2, cache=cache)
    trained = pool.train()
    assert list(tmp_path.glob("??/*.pt"))  # weights, loaded with weights_only=True
    loaded = cache.get(pool.model_key(0))
    x = torch.as_tensor(data.x[:20])
    assert torch.equal(loaded.trained.model(x), trained[0].model(x))
    wrong = PythonRecipe(_train_net, params={"epochs": 1, "width": 8}, architecture="test_user_net")
    with pytest.raises(InvalidAuditInput, match="not a 'test_user_net' as registered"):
        ReferencePool(
            wrong, data, split.audited, n_models=1, cache=ModelCache(tmp_path / "w")
        ).train()


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosted_trees_are_cached_in_their_own_format(tmp_path, library, digits):
    lib = pytest.importorskip(library)
    data, split = digits
    from miaudit.models import SklearnRecipe

    if library == "xgboost":
        estimator = lib.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1)
    else:
        estimator = lib.LGBMClassifier(n_estimators=20, num_leaves=8, n_jobs=1, verbose=-1)
    recipe = SklearnRecipe(estimator)
    cache = ModelCache(tmp_path)
    pool = ReferencePool(recipe, data, split.audited, n_models=2, cache=cache)
    trained = pool.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # no type needs trusting
        loaded = cache.get(pool.model_key(1), trusted_types=())
    assert loaded is not None
    np.testing.assert_allclose(
        loaded.trained.model.predict_proba(data.x[:30]),
        trained[1].model.predict_proba(data.x[:30]),
        rtol=1e-6,
    )
    assert not list(tmp_path.glob("??/*.skops"))  # nothing for skops to unpickle


def test_pool_memory_does_not_grow_with_the_models(tmp_path, digits):
    """Streaming: a pool of 12 forests holds one at a time (tracemalloc peak within 1.5x
    of a 3-forest pool's)."""
    from sklearn.ensemble import RandomForestClassifier

    from miaudit.models import SklearnRecipe

    data, split = digits
    recipe = SklearnRecipe(RandomForestClassifier(n_estimators=30, n_jobs=1))
    peaks = {}
    for k in (3, 12):
        pool = ReferencePool(recipe, data, split.audited, n_models=k, cache=ModelCache(tmp_path))
        tracemalloc.start()
        pool.train(answer_on=[(split.audited, QuerySet.none(), None)])
        pool.observe(split.audited, queries=QuerySet.none())
        peaks[k] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[12] < 1.5 * peaks[3], peaks


# -- from YAML, through the command line ---------------------------------------------


TRAIN_FILE = """
import torch
from torch import nn


class OwnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.body(x)


def train(x, y, *, seed, epochs=60):
    model = OwnNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xs, ys = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xs), ys).backward()
        opt.step()
    return model


def train_missing_seed(x, y, epochs=1):
    return None


def explode(x, y, *, seed):
    raise ValueError("my loop is broken")
"""


def _write(folder: Path, **overrides) -> Path:
    (folder / "train.py").write_text(TRAIN_FILE)
    config = {
        "dataset": "digits",
        "split": {"members": 300, "nonmembers": 300, "population": 400, "seed": 0},
        "target": {"recipe": {"python": "train.py:train", "params": {"epochs": 60}}},
        "attacks": ATTACKS,
        "references": {"cache_dir": "cache", "population_size": 400},
    }
    for key, value in overrides.items():
        config[key] = value
    path = folder / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_yaml_python_recipe_trains_target_and_references(tmp_path):
    path = _write(tmp_path)
    out = tmp_path / "out"
    assert main(["--quiet", "audit", str(path), "--out", str(out), "--trust-code"]) == 0
    report = json.loads((out / "report.json").read_text())
    refs = report["target"]["references"]
    assert refs["recipe"]["code_files"][0]["file"] == "train.py"
    assert len(refs["recipe"]["code_files"][0]["sha256"]) == 64
    assert refs["determinism"]["deterministic"] is True
    assert refs["recipe_match"]["n_matched"] >= 3
    auc = {a["name"]: a["auc"] for a in report["attacks"]}
    assert auc["rmia_offline"] > auc["loss"] > 0.55  # an overfit net, seen by both
    assert report["target"]["recipe"]["function"] == "train.py:train"
    assert refs["determinism"]["from_cache"] is False
    # A rerun does not train reference 0 again to check determinism: the outcome is cached,
    # as data this code reads back strictly (anything else is ignored and measured again).
    assert main(["--quiet", "audit", str(path), "--out", str(out), "--trust-code"]) == 0
    again = json.loads((out / "report.json").read_text())["target"]["references"]
    assert again["determinism"]["from_cache"] is True
    assert again["determinism"]["deterministic"] is True
    (stored,) = (tmp_path / "cache" / "determinism").glob("*.json")
    stored.write_text('{"difference": "__import__(\'os\')"}')
    assert main(["--quiet", "audit", str(path), "--out", str(out), "--trust-code"]) == 0
    third = json.loads((out / "report.json").read_text())["target"]["references"]
    assert third["determinism"]["from_cache"] is False
    assert json.loads(stored.read_text()) == {"difference": 0.0}


@pytest.mark.parametrize(
    ("overrides", "flags", "message"),
    [
        ({}, [], "--trust-code"),
        (
            {"target": {"recipe": {"python": "nowhere.py:train"}}},
            ["--trust-code"],
            "does not exist",
        ),
        (
            {"target": {"recipe": {"python": "train.py:absent"}}},
            ["--trust-code"],
            "has no 'absent'",
        ),
        (
            {"target": {"recipe": {"python": "train.py:train_missing_seed"}}},
            ["--trust-code"],
            "no 'seed' argument",
        ),
        (
            {"target": {"recipe": {"python": "train.py:train", "params": {"lr": 1}}}},
            ["--trust-code"],
            "not arguments of the function",
        ),
        (
            {"target": {"sklearn": {"estimator": "xgboost.XGBClassifier"}}},
            [],
            "--trust-code",
        ),
        (
            {"target": {"recipe": {"python": "train.py:train", "training": {"epochs": 3}}}},
            ["--trust-code"],
            "params",
        ),
    ],
)
def test_bad_user_code_ends_with_exit_2_before_training(
    tmp_path, capsys, overrides, flags, message
):
    path = _write(tmp_path, **overrides)
    out = tmp_path / "out"
    assert main(["audit", str(path), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_user_code_that_raises_shows_its_own_traceback(tmp_path, capsys):
    path = _write(tmp_path, target={"recipe": {"python": "train.py:explode"}})
    assert main(["audit", str(path), "--out", str(tmp_path / "o"), "--trust-code"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "my loop is broken" in err and 'train.py", line' in err
    assert "seed 0" in err
    assert not (tmp_path / "o").exists()


def test_calibration_tries_any_argument_of_the_users_function(tmp_path, digits):
    """references.calibrate on the user's own 'epochs': the value whose references match
    the target best is kept (here the target's own, 40, against 2 and 400)."""
    from miaudit.audit import run_audit
    from miaudit.references import ReferenceSetup
    from miaudit.targets import TorchTarget

    data, split = digits
    recipe = PythonRecipe(_train_net, params={"epochs": 40})
    model = recipe.train(data, split.members, seed=11).model
    target = TorchTarget(model, n_classes=10, access="logits")
    setup = ReferenceSetup(
        recipe=PythonRecipe(_train_net, params={"epochs": 2}),
        cache_dir=tmp_path,
        calibrate=(2, 40, 400),
        calibrate_param="epochs",
        population_size=300,
    )
    result = run_audit(target, data, split, attacks=["loss", {"name": "rmia"}], references=setup)
    calibration = result.target["references"]["calibration"]
    assert calibration["param"] == "epochs" and calibration["chosen_value"] == 40
    assert [c["value"] for c in calibration["candidates"]] == [2, 40, 400]
    with pytest.raises(InvalidAuditInput, match="'momentum' is not an argument"):
        ReferenceSetup(recipe=recipe, calibrate=(0.9,), calibrate_param="momentum")


def test_a_callable_returned_by_the_users_function_is_queried_as_it_answers(digits):
    """A plain function of records (logits here, detected) is a model too."""
    from miaudit.compute import observe_models

    data, split = digits

    def train_linear(x, y, *, seed):
        w = np.linalg.lstsq(x, np.eye(10)[y], rcond=None)[0]
        return lambda records: 5 * (np.asarray(records) @ w)  # logits, not probabilities

    trained = PythonRecipe(train_linear).train(data, split.members, seed=0)
    assert trained.model.output == "logits"
    assert trained.train_accuracy > 0.9
    answers = observe_models([trained], data, split.audited[:20], queries=QuerySet.none())
    assert answers.scaled_logit.shape == (1, 20, 1) and np.isfinite(answers.scaled_logit).all()


def test_lightgbm_from_yaml_by_import_path(tmp_path):
    pytest.importorskip("lightgbm")
    config = {
        "dataset": "breast_cancer",
        "split": {"members": 150, "nonmembers": 150, "population": 200, "seed": 0},
        "target": {
            "sklearn": {
                "estimator": "lightgbm.LGBMClassifier",
                "params": {"n_estimators": 50, "n_jobs": 1, "verbose": -1},
            }
        },
        "attacks": ["loss", {"name": "rmia", "num_references": 2}],
        "references": {"cache_dir": "cache"},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--quiet", "audit", str(path), "--out", str(tmp_path / "o"), "--trust-code"]) == 0
    assert list((tmp_path / "cache").glob("??/*.lgb.txt"))
    assert not list((tmp_path / "cache").glob("??/*.skops"))


def test_a_reference_that_fails_keeps_the_others_work(tmp_path, digits):
    """The third reference's training raises: the error names it and its seed, and the two
    trained before are in the cache, so a rerun trains only what is missing."""
    data, split = digits
    attempts = []

    def flaky(x, y, *, seed, fail_on=2):
        attempts.append(seed)
        if len(attempts) == fail_on + 1:
            raise MemoryError("out of memory (pretend)")
        return _train_net(x, y, seed=seed, epochs=5)

    recipe = PythonRecipe(flaky, params={"fail_on": 2}, code_version="flaky")
    cache = ModelCache(tmp_path)
    pool = ReferencePool(recipe, data, split.audited, n_models=4, cache=cache)
    with pytest.raises(UserCodeError, match=r"pool model 2 of 4: .*seed \d+: out of memory"):
        pool.train(answer_on=[(split.audited, QuerySet.none(), None)])
    assert len(list(tmp_path.glob("??/*.json"))) == 2
    attempts.clear()
    again = ReferencePool(
        PythonRecipe(flaky, params={"fail_on": 2}, code_version="flaky"),
        data,
        split.audited,
        n_models=4,
        cache=cache,
    )
    again.train(answer_on=[(split.audited, QuerySet.none(), None)])
    assert len(attempts) == 2  # only the two that were missing


def test_the_users_function_trains_shadow_models_too(tmp_path):
    path = _write(
        tmp_path,
        attacks=["loss", {"name": "shadow", "n_shadow": 2}],
        split={"members": 300, "nonmembers": 300, "population": 600, "seed": 0},
    )
    out = tmp_path / "out"
    assert main(["--quiet", "audit", str(path), "--out", str(out), "--trust-code"]) == 0
    report = json.loads((out / "report.json").read_text())
    shadow = next(a for a in report["attacks"] if a["family"] == "shadow")
    assert shadow["auc"] > 0.5
