"""White-box and label-only attacks: per-record gradients, the Nasr attack, augmentation and
boundary-distance attacks, and access enforced both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from synthetic import memorising_recipe, synthetic_dataset

from miaudit.attacks import AugmentationAttack, BoundaryDistanceAttack, WhiteBoxAttack
from miaudit.audit import plan_audit, run_audit
from miaudit.data import make_split
from miaudit.errors import AccessLevelError, InvalidAuditInput
from miaudit.models import build_model
from miaudit.references import ReferenceSetup
from miaudit.signals.gradients import (
    gradient_norms,
    per_record_gradients,
    resolve_layers,
    whitebox_features,
)
from miaudit.targets import LabelOnlyTarget, TorchTarget
from miaudit.targets.adapters import AccessLevel

# ------------------------------------------------------------------ per-record gradients


def _loop_gradients(module, x, y, names):
    """The reference: one loss.backward() per record."""
    modules = dict(module.named_modules())
    out = {name: [] for name in names}
    for i in range(len(x)):
        module.zero_grad()
        logits = module(torch.from_numpy(x[i : i + 1]))
        F.cross_entropy(logits, torch.tensor([int(y[i])])).backward()
        for name in names:
            out[name].append(modules[name].weight.grad.detach().clone().numpy())
    return {name: np.stack(v) for name, v in out.items()}


@pytest.mark.parametrize(
    ("arch", "shape", "params"),
    [("mlp", (6,), {"hidden": (5, 4)}), ("small_cnn", (3, 8, 8), {"widths": (4, 6)})],
)
def test_per_record_gradients_equal_a_loop_of_backward(arch, shape, params):
    module = build_model(arch, input_shape=shape, n_classes=3, seed=0, **params).eval()
    rng = np.random.default_rng(0)
    x = rng.random((9, *shape), dtype=np.float32)
    y = np.arange(9) % 3
    names = resolve_layers(module, [1, -1], kind="gradient", field="layers")
    batched = per_record_gradients(module, x, y, names, batch_size=4)
    expected = _loop_gradients(module, x, y, names)
    for name in names:
        assert batched[name].shape == expected[name].shape
        np.testing.assert_allclose(batched[name], expected[name], rtol=1e-4, atol=1e-6)


def test_large_gradients_are_pooled_within_the_budget():
    module = build_model("mlp", input_shape=(64,), n_classes=10, hidden=(32,), seed=0).eval()
    rng = np.random.default_rng(1)
    x, y = rng.random((5, 64), dtype=np.float32), np.arange(5)
    full = per_record_gradients(module, x, y, ["1"])["1"]  # (5, 32, 64)
    pooled = per_record_gradients(module, x, y, ["1"], max_gradient_size=512)["1"]
    assert pooled.shape == (5, 16, 32) and pooled[0].size <= 512
    # Average pooling of 2 x 2 blocks.
    blocks = full.reshape(5, 16, 2, 32, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(pooled, blocks, rtol=1e-5, atol=1e-7)


def test_layers_by_name_or_index_and_a_clear_error_otherwise():
    module = build_model("mlp", input_shape=(6,), n_classes=3, hidden=(5,), seed=0)
    # Leaf modules: 0 flatten, 1 linear, 2 activation, 3 linear.
    assert resolve_layers(module, [-1, "1"], kind="gradient", field="f") == ["3", "1"]
    assert resolve_layers(module, [3], kind="output", field="f") == ["2"]  # the activation
    with pytest.raises(InvalidAuditInput, match=r"gradients_to_exploit: no gradient layer .*1: 1"):
        resolve_layers(module, ["fc9"], kind="gradient", field="gradients_to_exploit")
    with pytest.raises(InvalidAuditInput, match="not a layer name or an index"):
        resolve_layers(module, [7], kind="gradient", field="f")


def test_gradient_norms_and_outputs():
    module = build_model("mlp", input_shape=(6,), n_classes=3, hidden=(5,), seed=0).eval()
    rng = np.random.default_rng(2)
    x, y = rng.random((7, 6), dtype=np.float32), np.arange(7) % 3
    norms, names = gradient_norms(module, x, y)
    grads = per_record_gradients(module, x, y, names)
    for j, name in enumerate(names):
        np.testing.assert_allclose(
            norms[:, j], np.linalg.norm(grads[name].reshape(7, -1), axis=1), rtol=1e-5
        )
    feats = whitebox_features(module, x, y, output_layer_names=["3"])
    logits = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(feats.outputs["3"], logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        feats.loss,
        F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y), reduction="none"),
        rtol=1e-5,
    )


# ------------------------------------------------------------------ the attacks detect leaks


@pytest.fixture(scope="module")
def world():
    """An MLP that memorises 800 synthetic records (train 1.00, test about 0.8), one that
    never saw the audited records, and the recipe both were trained by. 800 + 800 records
    put chance within ±0.05 AUC with more than 3 standard errors to spare."""
    data = synthetic_dataset(n_samples=3200)
    split = make_split(
        data.n_records, n_members=800, n_nonmembers=800, n_population=1600, seed=0, labels=data.y
    )
    recipe = memorising_recipe()
    overfit = recipe.train(data, split.members, seed=0).model
    null = recipe.train(data, split.population[:800], seed=1).model
    return data, split, recipe, overfit, null


WHITEBOX_ATTACKS = [
    {"name": "whitebox", "num_references": 2, "label": "references"},
    {"name": "whitebox", "train_on": "known_members", "label": "known"},
    {"name": "whitebox", "train_on": "shadow", "label": "shadow"},
    {"name": "whitebox", "gradients_to_exploit": [], "num_references": 2, "label": "blackbox"},
    {"name": "boundary", "method": "gradient", "label": "boundary_gradient"},
    {"name": "gradient_norm", "layers": []},
]


@pytest.mark.slow
def test_whitebox_attacks_detect_an_overfit_target_and_not_a_null_one(world, tmp_path):
    data, split, recipe, overfit, null = world
    setup = ReferenceSetup(recipe=recipe, cache_dir=tmp_path)
    leak = run_audit(
        TorchTarget(overfit, n_classes=4), data, split, attacks=WHITEBOX_ATTACKS, references=setup
    )
    clean = run_audit(
        TorchTarget(null, n_classes=4), data, split, attacks=WHITEBOX_ATTACKS, references=setup
    )
    for a, b in zip(leak.attacks, clean.attacks, strict=True):
        assert a.auc > 0.58, (a.name, a.auc)  # 5 standard errors above chance
        assert abs(b.auc - 0.5) < 0.05, (b.name, b.auc)


LABEL_ATTACKS = [
    "gap",
    {"name": "augmentation", "n_augmentations": 8},
    {"name": "augmentation", "n_augmentations": 8, "combine": "references", "num_references": 2},
    {"name": "boundary", "query_budget": 120},
]


class SpyTarget:
    """A label-only target that records every call; anything but labels fails the test."""

    access = AccessLevel.LABEL_ONLY
    queries_by_index = False

    def __init__(self, module, n_classes):
        self.module_ = module
        self.n_classes = n_classes
        self.description = "spy"
        self.rows_seen = 0
        self.calls = 0

    def predict_labels(self, x):
        self.calls += 1
        self.rows_seen += len(x)
        with torch.no_grad():
            return self.module_(torch.as_tensor(np.asarray(x, np.float32))).argmax(1).numpy()

    def predict_proba(self, x):
        raise AssertionError("a label-only attack asked for probabilities")

    def predict_logits(self, x):
        raise AssertionError("a label-only attack asked for logits")


@pytest.mark.slow
def test_label_only_attacks_use_labels_only_and_detect_the_leak(world, tmp_path):
    data, split, recipe, overfit, null = world
    spy = SpyTarget(overfit, 4)
    result = run_audit(
        spy,
        data,
        split,
        attacks=LABEL_ATTACKS,
        references=ReferenceSetup(recipe=recipe, cache_dir=tmp_path),
    )
    by_name = {a.name: a for a in result.attacks}
    assert by_name["augmentation"].auc > by_name["gap"].auc  # more views, more signal
    assert by_name["boundary"].auc > 0.58
    details = result.target["attack_details"]
    assert details["augmentation"]["queries_per_record"]["max"] == 9
    assert details["boundary"]["queries_per_record"]["max"] <= 120
    n = split.audited.size
    # The audit's own query (1), then 9 augmentation views, 9 again for the second
    # augmentation attack, and the boundary search: nothing else reached the target.
    spent = details["boundary"]["queries_per_record"]["mean"] * n
    assert spy.rows_seen == pytest.approx(n * (1 + 9 + 9) + spent, abs=1)
    clean = run_audit(
        LabelOnlyTarget(TorchTarget(null, n_classes=4)),
        data,
        split,
        attacks=LABEL_ATTACKS,
        references=ReferenceSetup(recipe=recipe, cache_dir=tmp_path),
    )
    for a in clean.attacks:
        assert abs(a.auc - 0.5) < 0.05, (a.name, a.auc)


def test_boundary_search_respects_its_budget_on_every_record(world):
    data, split, _, overfit, _ = world
    attack = BoundaryDistanceAttack(query_budget=40, n_probes=8)
    records = split.audited[:80]
    spy = SpyTarget(overfit, 4)
    distance, queries = attack._search(spy, data.x[records], data.y[records])
    assert queries.max() <= 40 and queries.min() >= 1
    assert spy.rows_seen == queries.sum()
    assert (distance >= 0).all()


# ------------------------------------------------------------------ access, both ways


def test_whitebox_attack_on_a_black_box_target_is_refused_before_work(world, train_calls):
    data, split, recipe, overfit, _ = world
    target = TorchTarget(overfit, n_classes=4, access="probabilities")
    with pytest.raises(AccessLevelError, match="needs white_box access"):
        run_audit(
            target,
            data,
            split,
            attacks=[{"name": "whitebox", "num_references": 2}],
            references=ReferenceSetup(recipe=recipe),
        )
    assert train_calls == []
    # The black-box variant needs logits only.
    plan_audit(
        AccessLevel.LOGITS,
        data,
        split,
        [{"name": "whitebox", "gradients_to_exploit": [], "num_references": 2}],
        ReferenceSetup(recipe=recipe),
    )
    with pytest.raises(AccessLevelError, match="needs white_box access"):
        plan_audit(
            AccessLevel.LABEL_ONLY, data, split, [{"name": "boundary", "method": "gradient"}], None
        )


def test_bad_whitebox_parameters_are_named():
    with pytest.raises(InvalidAuditInput) as info:
        WhiteBoxAttack(optimizer="lbfgs", epochs=0, attack_percentage=120).check_params()
    message = str(info.value)
    assert "optimizer" in message and "epochs" in message and "attack_percentage" in message
    with pytest.raises(InvalidAuditInput, match="combine"):
        AugmentationAttack(combine="vote").check_params()
    with pytest.raises(InvalidAuditInput, match="query_budget"):
        BoundaryDistanceAttack(query_budget=3).check_params()


def test_yaml_audit_with_whitebox_and_label_only_attacks(tmp_path, capsys, monkeypatch):
    import json

    import yaml

    from miaudit.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    config = {
        "dataset": "digits",
        "split": {"members": 200, "nonmembers": 200, "seed": 0},
        "target": {
            "recipe": {
                "architecture": "mlp",
                "params": {"hidden": [32]},
                "training": {"epochs": 10, "batch_size": 32, "device": "cpu"},
            }
        },
        "attacks": [
            {"name": "whitebox", "num_references": 2, "epochs": 3, "gradients_to_exploit": ["3"]},
            {"name": "augmentation", "n_augmentations": 4},
            {"name": "boundary", "query_budget": 40},
        ],
        "references": {"cache_dir": str(tmp_path / "cache")},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["audit", str(path), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "Label queries per record: augmentation 5.0 (max 5), boundary" in out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    names = [a["name"] for a in report["attacks"]]
    assert names == ["nasr_whitebox", "augmentation", "boundary"]
    assert report["target"]["attack_details"]["boundary"]["queries_per_record"]["max"] <= 40
