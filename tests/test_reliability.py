"""Reliability: interruptions lose little, the target is cached, the log says what came from
the cache, and a model that cannot read the data is refused with both shapes named."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from miaudit.audit import run_audit
from miaudit.cli import main
from miaudit.compute import ReferencePool
from miaudit.compute import pool as pool_module
from miaudit.data import load_dataset, make_split
from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput
from miaudit.models import TorchRecipe, TrainingConfig, build_model
from miaudit.targets import LabelOnlyTarget, SklearnTarget, TorchTarget


def _tabular(n: int, features: int = 5, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, features), dtype=np.float32)
    return Dataset(name="toy", x=x, y=rng.integers(0, 3, n).astype(np.int64), n_classes=3)


def _recipe(epochs: int, hidden: tuple[int, ...] = (8,)) -> TorchRecipe:
    return TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": hidden},
        training=TrainingConfig(epochs=epochs, batch_size=16, lr=0.05, device="cpu"),
    )


# ------------------------------------------------------------------ interruption granularity


@pytest.mark.parametrize(("epochs", "hidden", "largest"), [(2, (8,), 16), (200, (512, 512), 1)])
def test_ensemble_groups_shrink_so_an_interruption_loses_little(epochs, hidden, largest):
    # Cheap models train 16 at a time; models whose group would take long train alone, so a
    # SIGINT during reference training loses at most about one model's work.
    data = _tabular(400, features=200)
    pool = ReferencePool(_recipe(epochs, hidden), data, np.arange(400), n_models=16)
    groups = pool._training_groups(list(range(16)))
    assert max(len(g) for g in groups) == largest
    assert sorted(k for g in groups for k in g) == list(range(16))
    weights = pool._weights()
    n_train = int(pool.training_indices(0).size)
    work = max(len(g) for g in groups) * n_train * 3 * epochs * weights
    assert work <= pool_module._ENSEMBLE_WORK or largest == 1


# ------------------------------------------------------------------ the target is cached


def _recipe_audit(tmp_path, cache) -> str:
    config = {
        "dataset": "digits",
        "split": {"members": 150, "nonmembers": 150, "seed": 0},
        "target": {
            "recipe": {
                "architecture": "mlp",
                "params": {"hidden": [16]},
                "training": {"epochs": 3, "batch_size": 32, "device": "cpu"},
            }
        },
        "attacks": ["loss", {"name": "lira", "online": False, "num_references": 2}],
        "references": {"cache_dir": str(cache)},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_rerun_loads_the_target_and_references_from_the_cache_and_says_so(
    tmp_path, capsys, train_calls, monkeypatch
):
    from miaudit.compute import ensemble as ensemble_module

    original = ensemble_module.train_ensemble

    def counting_ensemble(recipe, dataset, index_sets, seeds, **kwargs):
        train_calls.extend(seeds)
        return original(recipe, dataset, index_sets, seeds, **kwargs)

    monkeypatch.setattr(ensemble_module, "train_ensemble", counting_ensemble)
    monkeypatch.setenv("COLUMNS", "200")  # log lines unwrapped
    config = _recipe_audit(tmp_path, tmp_path / "cache")
    assert main(["audit", config, "--out", str(tmp_path / "first")]) == 0
    first = capsys.readouterr().out
    assert len(train_calls) == 3  # the target and two references
    assert "2 reference models ready: 0 from the model cache, 2 trained" in first
    assert "target loaded from the model cache" not in first
    train_calls.clear()
    assert main(["audit", config, "--out", str(tmp_path / "second")]) == 0
    second = capsys.readouterr().out
    assert train_calls == []  # nothing retrained
    assert "target loaded from the model cache" in second
    assert "2 reference models ready: 2 from the model cache, 0 trained" in second
    import json

    one = json.loads((tmp_path / "first" / "report.json").read_text())
    two = json.loads((tmp_path / "second" / "report.json").read_text())
    assert one["target"]["from_cache"] is False and two["target"]["from_cache"] is True
    assert [a["auc"] for a in one["attacks"]] == [a["auc"] for a in two["attacks"]]


# ------------------------------------------------------------------ models that cannot read


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data, make_split(data.n_records, n_members=100, n_nonmembers=100, seed=0)


def test_torch_target_of_another_width_is_refused_with_both_widths(digits):
    data, split = digits
    module = build_model("mlp", input_shape=(20,), n_classes=10, hidden=(8,), seed=0)
    target = TorchTarget(module, n_classes=10)
    message = r"expects 20 input features but dataset 'digits' has 64 per record"
    with pytest.raises(InvalidAuditInput, match=message):
        run_audit(target, data, split, attacks=["loss"])
    with pytest.raises(InvalidAuditInput, match=message):
        run_audit(LabelOnlyTarget(target), data, split, attacks=["gap"])


def test_sklearn_target_of_another_width_is_refused_with_both_widths(digits):
    data, split = digits
    estimator = LogisticRegression(max_iter=200).fit(data.x[:200, :30], data.y[:200])
    with pytest.raises(InvalidAuditInput, match=r"expects 30 input features .* has 64"):
        run_audit(SklearnTarget(estimator, n_classes=10), data, split, attacks=["loss"])


def test_a_convolutional_target_that_cannot_read_the_records_is_refused(digits):
    data, split = digits
    module = build_model("small_cnn", input_shape=(3, 32, 32), n_classes=10, seed=0)
    with pytest.raises(InvalidAuditInput, match=r"cannot read the records .* shape \(64,\)"):
        run_audit(TorchTarget(module, n_classes=10), data, split, attacks=["loss"])


# ------------------------------------------------------------------ API boundary


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda m, e: TorchTarget(m, n_classes="ten"), "TorchTarget: n_classes must be an int"),
        (lambda m, e: TorchTarget(m, n_classes=True), "n_classes must be an int >= 2"),
        (lambda m, e: TorchTarget(m, n_classes=1), "n_classes must be an int >= 2"),
        (lambda m, e: TorchTarget(m, n_classes=3, batch_size=0), "batch_size"),
        (lambda m, e: TorchTarget(m, n_classes=3, description=7), "description"),
        (lambda m, e: SklearnTarget(e, n_classes="ten"), "SklearnTarget: n_classes"),
        (lambda m, e: SklearnTarget("model.pkl", n_classes=3), "needs a fitted scikit-learn"),
    ],
)
def test_target_constructors_check_their_arguments(build, message):
    module = build_model("mlp", input_shape=(5,), n_classes=3, hidden=(4,), seed=0)
    estimator = LogisticRegression()
    with pytest.raises(InvalidAuditInput, match=message):
        build(module, estimator)


def test_mindarmour_wrapper_refuses_no_model():
    from miaudit.compat.mindarmour import MembershipInference

    with pytest.raises(InvalidAuditInput, match="model must be the model to audit"):
        MembershipInference(None)
