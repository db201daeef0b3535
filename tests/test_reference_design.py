"""References that mimic the target: design, one training path, recipe match, calibration,
checks before training, and the attack protocol (a toy attack through the registry)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import yaml
from sklearn.base import BaseEstimator
from sklearn.metrics import roc_auc_score

from miaudit.attacks import registry
from miaudit.attacks.protocol import Requirements
from miaudit.audit import plan_audit, run_audit
from miaudit.compute import ModelCache, ReferencePool
from miaudit.data import load_dataset, make_split
from miaudit.data.dataset import Dataset
from miaudit.data.split import AuditSplit
from miaudit.errors import InvalidAuditInput
from miaudit.models import TorchRecipe, TrainingConfig
from miaudit.recipe_match import measure_recipe_match
from miaudit.references import ReferenceSetup, plan_references
from miaudit.signals.observations import Observations
from miaudit.targets import TorchTarget
from miaudit.targets.adapters import AccessLevel

FAST = TrainingConfig(epochs=2, batch_size=16, lr=0.05, device="cpu")


def _tabular(n: int = 80, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 5), dtype=np.float32)
    return Dataset(name="toy", x=x, y=rng.integers(0, 3, n).astype(np.int64), n_classes=3)


def _mlp(training: TrainingConfig = FAST, hidden: tuple[int, ...] = (8,)) -> TorchRecipe:
    return TorchRecipe(architecture="mlp", arch_params={"hidden": hidden}, training=training)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- design


def test_sized_pool_balances_audited_records_and_keeps_every_size():
    data = _tabular(100)
    audited = np.arange(0, 60)
    top_up = np.arange(60, 100)
    pool = ReferencePool(
        _mlp(),
        data,
        np.concatenate([audited, top_up]),
        n_models=6,
        balanced=audited,
        train_size=40,
        ensemble="off",
    )
    inc = pool.inclusion
    assert (inc.sum(axis=1) == 40).all()  # every reference on the target's size
    in_audited = inc[:, :60]
    assert (in_audited.sum(axis=0) == 3).all()  # each audited record IN for half
    assert (in_audited[0] ^ in_audited[1]).all()  # complementary pair over audited
    # Each model of a pair adds 10 top-up records drawn from the reservoir only.
    assert (inc[:, 60:].sum(axis=1) == 10).all()
    # Stable under growth: the first models of a larger pool train on the same records.
    bigger = ReferencePool(
        _mlp(),
        data,
        np.concatenate([audited, top_up]),
        n_models=8,
        balanced=audited,
        train_size=40,
        ensemble="off",
    )
    for k in range(6):
        assert np.array_equal(pool.training_indices(k), bigger.training_indices(k))


def test_sized_pool_subsamples_when_the_target_trained_on_fewer_records():
    data = _tabular(100)
    audited = np.arange(100)
    pool = ReferencePool(
        _mlp(), data, audited, n_models=4, balanced=audited, train_size=20, ensemble="off"
    )
    inc = pool.inclusion
    assert (inc.sum(axis=1) == 20).all()
    assert not (inc[0] & inc[1]).any()  # drawn from complementary halves


def test_sized_pool_refuses_a_train_size_the_candidates_cannot_fill():
    data = _tabular(100)
    with pytest.raises(InvalidAuditInput, match="train_size 60 needs 30 records"):
        ReferencePool(
            _mlp(), data, np.arange(70), n_models=2, balanced=np.arange(60), train_size=60
        )


def test_plan_keeps_rmia_population_apart_from_top_up_records():
    split = AuditSplit(np.arange(0, 60), np.arange(60, 100), np.arange(100, 300), seed=0)
    design = plan_references(split, ReferenceSetup(recipe=_mlp()))
    assert design.train_size == 60
    need = 60 - 100 // 2
    assert design.top_up.size == 2 * need  # twice what one model needs, for variety
    assert np.intersect1d(design.top_up, design.population).size == 0
    assert design.population.size == 200 - 2 * need
    assert design.warnings() == []
    smaller = plan_references(split, ReferenceSetup(recipe=_mlp(), train_size=30))
    assert smaller.top_up.size == 0
    assert any("trained on 60" in w for w in smaller.warnings())  # size mismatch is warned
    with pytest.raises(InvalidAuditInput, match=r"population \(split.population\) holds only 5"):
        plan_references(
            AuditSplit(np.arange(0, 60), np.arange(60, 100), np.arange(100, 105)),
            ReferenceSetup(recipe=_mlp()),
        )


def test_audit_references_train_on_as_many_records_as_the_target():
    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=300, n_nonmembers=200, seed=0, labels=data.y)
    recipe = _mlp(TrainingConfig(epochs=3, batch_size=32, lr=0.05, device="cpu"))
    trained = recipe.train(data, split.members, seed=0)
    target = TorchTarget(trained.model, n_classes=10, access="logits")
    setup = ReferenceSetup(recipe=recipe, cache_dir=None, seed=0)
    result = run_audit(
        target,
        data,
        split,
        attacks=[{"name": "rmia", "num_references": 2}],
        references=ReferenceSetup(recipe=recipe, cache_dir=Path(setup.cache().root)),
    )
    refs = result.target["references"]
    assert refs["design"]["train_size"] == 300
    assert all(r["n_in"] + r["n_out"] == 500 for r in refs["recipe_match"]["references"])
    # 250 audited records per half plus 50 from the population: 300, like the target.
    assert refs["design"]["n_top_up"] == 100
    assert refs["n_population_compared"] == data.n_records - 500 - 100


# ----------------------------------------------------------------------------- one path


def test_a_reference_on_the_targets_records_and_seed_is_the_target(tmp_path):
    from miaudit.config import parse_config
    from miaudit.pipeline import build_split, build_target

    config = parse_config(
        {
            "dataset": "digits",
            "split": {"members": 200, "nonmembers": 200, "seed": 3},
            "target": {
                "recipe": {
                    "architecture": "mlp",
                    "params": {"hidden": [32]},
                    "training": {"epochs": 3, "batch_size": 32, "device": "cpu"},
                    "seed": 11,
                }
            },
            # A cache of its own: a target cached by a run with other thread counts
            # would differ in the last bits.
            "references": {"cache_dir": str(tmp_path / "cache")},
        }
    )
    data = load_dataset("digits")
    split = build_split(config, data)
    target, _, recipe = build_target(config, data, split)
    again = recipe.train(data, split.members, seed=11)
    assert _same_weights(target.module, again.model)
    # The pool's training path is recipe.train itself: its model k is reproduced exactly
    # from its records and seed.
    pool = ReferencePool(recipe, data, split.audited, n_models=2, ensemble="off")
    model = pool.train()[1].model
    replay = recipe.train(data, pool.training_indices(1), seed=pool.model_seed(1))
    assert _same_weights(model, replay.model)


# ----------------------------------------------------------------------------- match


def _observations(loss_in, loss_out, correct_in, correct_out):
    """One reference's answers on 4 audited records: 2 IN, 2 OUT."""
    loss = np.array([*loss_in, *loss_out], dtype=np.float64)
    log_p = -loss.reshape(1, 4, 1)
    inc = np.array([[True, True, False, False]])
    correct = np.array([[*correct_in, *correct_out]])
    return Observations(np.arange(4), np.zeros((1, 4, 1)), log_p, inc, correct)


def test_recipe_match_known_answer():
    # float32, as the audit passes the target's losses (from its observations).
    target_loss = np.array([0.1, 0.2, 1.0, 2.0], dtype=np.float32)
    target_correct = np.array([True, True, True, False])
    is_member = np.array([True, True, False, False])
    same = _observations([0.1, 0.2], [1.0, 2.0], [True, True], [True, False])
    match = measure_recipe_match(target_loss, target_correct, is_member, same)
    row = match.references[0]
    assert row["train_accuracy"] == 1.0 and row["test_accuracy"] == 0.5
    assert row["train_loss"] == pytest.approx(0.15) and row["ks_train"] == 0.0
    assert row["matched"] and match.warnings() == []
    loose = _observations([0.9, 1.1], [1.0, 2.0], [False, True], [True, False])
    match = measure_recipe_match(target_loss, target_correct, is_member, loose)
    row = match.references[0]
    assert row["ks_train"] == 1.0 and not row["matched"]
    (warning,) = match.warnings()
    assert "overfit less than the target: train them longer" in warning


@pytest.fixture(scope="module")
def digits_audit():
    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=400, n_nonmembers=400, seed=1, labels=data.y)
    recipe = _mlp(
        TrainingConfig(
            epochs=60,
            batch_size=32,
            optimizer="adam",
            lr=1e-3,
            weight_decay=0.0,
            schedule="constant",
            device="cpu",
        ),
        hidden=(128,),
    )
    trained = recipe.train(data, split.members, seed=5)
    target = TorchTarget(trained.model, n_classes=10, access="logits")
    return data, split, recipe, target


def test_recipe_match_warning_fires_on_a_mismatched_recipe_only(digits_audit, tmp_path):
    data, split, recipe, target = digits_audit
    attacks = [{"name": "lira", "online": False, "num_references": 2}]
    matched = run_audit(
        target,
        data,
        split,
        attacks=attacks,
        references=ReferenceSetup(recipe=recipe, cache_dir=tmp_path),
    )
    assert not any("do not match the target" in w for w in matched.warnings)
    table = matched.target["references"]["recipe_match"]
    assert table["n_matched"] == 2
    short = _mlp(TrainingConfig(**{**recipe.training.to_dict(), "epochs": 3}), hidden=(128,))
    mismatched = run_audit(
        target,
        data,
        split,
        attacks=attacks,
        references=ReferenceSetup(recipe=short, cache_dir=tmp_path),
    )
    (warning,) = [w for w in mismatched.warnings if "do not match the target" in w]
    assert "2 of 2 reference models" in warning and "overfit less" in warning


def test_calibration_picks_the_targets_epoch_count(digits_audit, tmp_path):
    data, split, recipe, target = digits_audit
    setup = ReferenceSetup(recipe=recipe, cache_dir=tmp_path, calibrate=(5, 60, 240))
    result = run_audit(
        target, data, split, attacks=[{"name": "lira", "num_references": 2}], references=setup
    )
    calibration = result.target["references"]["calibration"]
    assert calibration["chosen_epochs"] == 60
    distances = {row["epochs"]: row["distance"] for row in calibration["candidates"]}
    assert distances[60] < distances[5] and distances[60] < distances[240]


# ----------------------------------------------------------------------------- protocol


class OffsetAttack(BaseEstimator):
    """Confidence minus the mean confidence of the OUT references: a new family added by
    one class and one registry line."""

    family: ClassVar[str] = "offset"

    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = scale

    @property
    def requirements(self) -> Requirements:
        return Requirements(AccessLevel.PROBABILITIES, references=True)

    def check_params(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale!r}")

    def default_label(self) -> str:
        return "offset"

    def fit(self, evidence):
        refs = evidence.references.audited_references
        out = ~refs.inclusion
        lp = refs.log_confidence[:, :, 0]
        self.baseline_ = (lp * out).sum(axis=0) / np.maximum(out.sum(axis=0), 1)
        return self

    def score(self, evidence):
        lp = evidence.references.audited_target.log_confidence[0, :, 0]
        return self.scale * (lp - self.baseline_)


def test_a_toy_attack_added_through_the_registry_runs_end_to_end(
    digits_audit, tmp_path, monkeypatch
):
    data, split, recipe, target = digits_audit
    monkeypatch.setitem(registry.ATTACK_CLASSES, "offset", f"{__name__}:OffsetAttack")
    result = run_audit(
        target,
        data,
        split,
        attacks=["loss", {"name": "offset", "num_references": 2, "scale": 2.0}],
        references=ReferenceSetup(recipe=recipe, cache_dir=tmp_path),
    )
    offset = next(a for a in result.attacks if a.name == "offset")
    assert offset.family == "offset" and result.scores["offset"].dtype == np.float64
    assert offset.auc == pytest.approx(roc_auc_score(result.is_member, result.scores["offset"]))
    assert offset.auc > 0.52  # the target fits its members more tightly: the toy sees it
    with pytest.raises(InvalidAuditInput, match=r"attack 'offset': scale must be > 0"):
        plan_audit(AccessLevel.LOGITS, data, split, [{"name": "offset", "scale": -1}], None)


# ----------------------------------------------------------------------------- early errors

_SLOW_TARGET = {
    "architecture": "mlp",
    "params": {"hidden": [64]},
    "training": {"epochs": 100000, "batch_size": 8, "device": "cpu"},
}

BAD_ENTRIES = {
    "duplicate label": (
        {"attacks": ["loss", {"name": "confidence", "label": "loss"}]},
        "labels must be unique",
    ),
    "unknown attack": ({"attacks": ["bogus"]}, "unknown attack 'bogus'"),
    "unknown parameter": ({"attacks": [{"name": "rmia", "gama": 2}]}, "unknown parameter"),
    "zero references": (
        {"attacks": [{"name": "rmia", "num_references": 0}]},
        "num_references must be a positive integer",
    ),
    "negative references": (
        {"attacks": [{"name": "lira", "num_references": -2}]},
        "num_references",
    ),
    "fractional references": (
        {"attacks": [{"name": "lira", "num_references": 2.5}]},
        "num_references",
    ),
    "bad gamma": ({"attacks": [{"name": "rmia", "gamma": -1}]}, "gamma must be"),
    "access too low": (
        {"attacks": ["loss"], "target_access": "label_only"},
        "needs probabilities access",
    ),
    "rmia without population": ({"attacks": ["rmia"], "population": 0}, "population record"),
    "bad fprs": ({"evaluation": {"fprs": [0.5, 2.0]}}, "evaluation: .*fprs"),
    "train size too large": (
        {"attacks": ["lira"], "references": {"train_size": 5000}},
        "references.train_size",
    ),
    "bad calibrate": (
        {"attacks": ["lira"], "references": {"calibrate": [0, 3]}},
        "calibrate must list positive",
    ),
    "shadow bad noise": ({"attacks": [{"name": "shadow", "noise": 3}]}, "noise must be"),
    # User text is printed verbatim: rich markup in a name must neither crash nor vanish.
    "markup in a name": ({"attacks": ["[/bogus]"]}, r"unknown attack '\[/bogus\]'"),
    "evaluation unknown key": ({"evaluation": {"fprz": [0.1]}}, "evaluation.fprz"),
}


def _config(case: dict) -> dict:
    split = {"members": 300, "nonmembers": 300, "seed": 0}
    if "population" in case:
        split["population"] = case["population"]
    target = {"recipe": _SLOW_TARGET}
    if "target_access" in case:
        target["access"] = case["target_access"]
    config = {"dataset": "digits", "split": split, "target": target}
    for key in ("attacks", "evaluation", "references"):
        if key in case:
            config[key] = case[key]
    return config


@pytest.mark.parametrize("name", sorted(BAD_ENTRIES))
def test_configuration_errors_exit_2_before_any_training(name, tmp_path):
    case, message = BAD_ENTRIES[name]
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(_config(case)))
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "audit", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.perf_counter() - started
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    import re

    assert re.search(message, run.stderr), run.stderr
    # The target would train for hours; failing within 5 s (import included) proves the
    # check ran first.
    assert seconds < 5.0
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- report


def test_report_shows_the_recipe_match_table_everywhere(tmp_path):
    import json

    config = {
        "dataset": "digits",
        "split": {"members": 300, "nonmembers": 300, "seed": 0},
        "target": {
            "recipe": {
                "architecture": "mlp",
                "params": {"hidden": [64]},
                "training": {"epochs": 20, "batch_size": 32, "device": "cpu"},
            }
        },
        # A label that is rich markup must print as written, not crash the run.
        "attacks": ["loss", {"name": "rmia", "num_references": 2, "label": "[/]"}],
        "references": {"cache_dir": str(tmp_path / "cache"), "calibrate": [5, 20]},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "audit", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "Reference models against the target" in run.stdout
    assert "Calibration of epochs: " in run.stdout and "[/]" in run.stdout
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    refs = report["target"]["references"]
    assert [r["model"] for r in refs["recipe_match"]["references"]] == [0, 1]
    assert refs["calibration"]["chosen_epochs"] in (5, 20)
    html = (tmp_path / "o" / "report.html").read_text()
    assert "<h2>Reference models</h2>" in html and "KS train (p)" in html
    assert "Calibration of <code>epochs</code> chose" in html


@pytest.mark.parametrize("where", ["out", "out_parent", "cache_dir"])
def test_unwritable_output_or_cache_exits_2_before_any_training(where, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = _config({"attacks": ["lira"]})
    out = tmp_path / "o"
    if where == "out":
        out = blocker
    elif where == "out_parent":
        out = blocker / "report"
    else:
        config["references"] = {"cache_dir": str(blocker / "cache")}
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "audit", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert ("references.cache_dir" if where == "cache_dir" else "--out") in run.stderr
    assert "is a file" in run.stderr or "not a folder" in run.stderr
    assert time.perf_counter() - started < 5.0


def test_reseed_retrains_a_reference_on_the_same_records_with_a_new_seed(tmp_path, train_calls):
    data = _tabular(80)
    calls = train_calls
    cache = ModelCache(tmp_path)
    pool = ReferencePool(_mlp(), data, np.arange(80), n_models=4, cache=cache, ensemble="off")
    models = pool.train()
    before = {k: (pool.training_indices(k), pool.model_seed(k)) for k in range(4)}
    calls.clear()
    pool.reseed([2])
    assert len(calls) == 1 and calls[0] == pool.model_seed(2) != before[2][1]
    assert np.array_equal(pool.training_indices(2), before[2][0])
    assert pool.attempts() == {2: 1} and pool.model_info(2)["attempt"] == 1
    assert not _same_weights(pool.models_[2].model, models[2].model)
    for k in (0, 1, 3):
        assert pool.model_seed(k) == before[k][1] and pool.models_[k] is models[k]
    # A second pool reseeding the same model finds it in the cache.
    again = ReferencePool(_mlp(), data, np.arange(80), n_models=4, cache=cache, ensemble="off")
    again.train()
    calls.clear()
    again.reseed([2])
    assert calls == [] and again.model_info(2)["from_cache"]


def test_reseed_in_an_audit_reports_the_attempts(digits_audit, tmp_path):
    data, split, recipe, target = digits_audit
    short = _mlp(TrainingConfig(**{**recipe.training.to_dict(), "epochs": 3}), hidden=(128,))
    result = run_audit(
        target,
        data,
        split,
        attacks=[{"name": "lira", "online": False, "num_references": 2}],
        references=ReferenceSetup(recipe=short, cache_dir=tmp_path, reseed=1),
    )
    refs = result.target["references"]
    assert refs["reseeded"] == {"0": 1, "1": 1}  # a wrong recipe: every seed stays unmatched
    assert any("do not match the target" in w for w in result.warnings)


def test_api_misuse_is_a_clear_error_at_the_boundary(digits_audit):
    data, split, _, target = digits_audit
    with pytest.raises(InvalidAuditInput, match=r"write attacks=\['loss'\]"):
        run_audit(target, data, split, attacks="loss")
    with pytest.raises(InvalidAuditInput, match="split must be an AuditSplit"):
        run_audit(target, data, (split.members, split.nonmembers), attacks=["loss"])
    with pytest.raises(InvalidAuditInput, match="dataset must be a miaudit Dataset"):
        run_audit(target, data.x, split, attacks=["loss"])
    with pytest.raises(InvalidAuditInput, match="target must be a target adapter"):
        run_audit(target.module, data, split, attacks=["loss"])


@pytest.mark.parametrize(
    ("references", "population", "message"),
    [
        (None, 0, "no population record is left"),
        ({"train_size": 9000}, 1000, "references.train_size"),
    ],
)
def test_reference_design_errors_come_before_a_large_data_set_is_loaded(
    references, population, message, tmp_path
):
    # CIFAR-10 takes about 10 s to decompress: with every split size in the file, the
    # design is checked first (and the test needs no data files at all).
    config = {
        "dataset": "cifar10",
        "split": {"members": 5000, "nonmembers": 5000, "population": population},
        "target": {"recipe": {"architecture": "lenet5", "training": {"epochs": 40}}},
        "attacks": ["loss", "rmia"],
    }
    if references:
        config["references"] = references
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "audit", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert message in run.stderr
    assert time.perf_counter() - started < 5.0


def test_shadow_models_are_pool_models_in_the_reference_cache(tmp_path):
    from miaudit.attacks import ShadowModelAttack

    data = _tabular(120)
    cache = ModelCache(tmp_path)
    attacker = np.arange(120)
    shadow = ShadowModelAttack(n_shadow=3, attack_model="lr", min_class_records=2)
    shadow.fit(data, attacker, recipe=_mlp(), cache=cache)
    # The same records and seeds through a reference pool: every model is a cache hit,
    # and each is what recipe.train makes of its records and seed.
    pool = ReferencePool(
        _mlp(),
        data,
        attacker,
        n_models=3,
        cache=cache,
        training_sets=shadow.shadow_in_,
        seeds=shadow.shadow_seeds_.tolist(),
        ensemble="off",
    )
    models = pool.train()
    assert all(pool.model_info(k)["from_cache"] for k in range(3))
    for k in range(3):
        assert np.array_equal(pool.training_indices(k), shadow.shadow_in_[k])
        assert pool.model_seed(k) == shadow.shadow_seeds_[k]
    replay = _mlp().train(data, shadow.shadow_in_[0], seed=int(shadow.shadow_seeds_[0]))
    out = replay.model(torch.from_numpy(data.x[:5]))
    np.testing.assert_allclose(
        models[0].model(torch.from_numpy(data.x[:5])).detach(), out.detach(), atol=1e-5
    )


STRICT_YAML = {
    "duplicate key": (
        "dataset: digits\ndataset: location\nsplit: {members: 10, nonmembers: 10}\n"
        "target: {recipe: {architecture: mlp}}\n",
        "line 2, column 1: duplicate key 'dataset'",
    ),
    "boolean count": (
        "dataset: digits\nsplit: {members: true, nonmembers: 10}\n"
        "target: {recipe: {architecture: mlp}}\n",
        "split.members: Input should be a valid integer",
    ),
    "alias bomb": (
        'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
        + "".join(
            f"{q}: &{q} [{', '.join(['*' + p] * 9)}]\n"
            for p, q in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "dataset: *i\n",
        "aliases (*name) are not allowed",
    ),
}


@pytest.mark.parametrize("name", sorted(STRICT_YAML))
def test_yaml_is_read_strictly_with_short_messages(name, tmp_path):
    text, message = STRICT_YAML[name]
    path = tmp_path / "audit.yaml"
    path.write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "audit", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert message in run.stderr
    assert len(run.stderr) < 2500  # capped: a hostile file cannot flood the terminal


def test_long_messages_are_capped():
    from miaudit.config import MAX_MESSAGE, capped

    assert capped("x" * 10) == "x" * 10
    long = capped("y" * (MAX_MESSAGE + 500))
    assert long.startswith("y" * MAX_MESSAGE) and long.endswith("(500 more characters)")
