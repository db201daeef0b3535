"""DP-SGD through Opacus, mixup, and the canary audits (one run and classic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.linear_model import LogisticRegression
from synthetic import synthetic_dataset

from miaudit.compute import ModelCache, train_or_load
from miaudit.dp_audit import (
    add_canaries,
    classic_canary_audit,
    one_run_audit,
    one_run_epsilon,
    one_run_p_value,
)
from miaudit.errors import InvalidAuditInput
from miaudit.models import SklearnRecipe, TorchRecipe, TrainingConfig, build_model
from miaudit.models.training import train_model

BASE = {"epochs": 2, "batch_size": 16, "optimizer": "sgd", "lr": 0.1, "schedule": "constant"}


def _xy(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6), dtype=np.float32), rng.integers(0, 3, n)


def _mlp():
    return build_model("mlp", input_shape=(6,), n_classes=3, hidden=(8,), seed=0)


def test_dp_sgd_without_noise_or_clipping_is_plain_sgd():
    x, y = _xy()
    plain, private = _mlp(), _mlp()
    train_model(plain, x, y, TrainingConfig(**BASE, device="cpu"), seed=3)
    result = train_model(
        private,
        x,
        y,
        TrainingConfig(
            **BASE, device="cpu", dp_noise_multiplier=0.0, dp_max_grad_norm=1e9, dp_poisson=False
        ),
        seed=3,
    )
    for a, b in zip(plain.state_dict().values(), private.state_dict().values(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert result.privacy["noise_multiplier"] == 0.0 and math.isinf(result.privacy["epsilon"])


def test_target_epsilon_is_what_the_accountant_reports_and_is_cached(tmp_path):
    x, y = _xy(256)
    from miaudit.data.dataset import Dataset

    data = Dataset(name="toy", x=x, y=y.astype(np.int64), n_classes=3)
    recipe = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (8,)},
        training=TrainingConfig(**BASE, device="cpu", dp_target_epsilon=3.0, dp_delta=1e-4),
    )
    trained, cached = train_or_load(ModelCache(tmp_path), recipe, data, np.arange(200), seed=1)
    assert not cached and trained.privacy["epsilon"] == pytest.approx(3.0, abs=0.03)
    again, cached = train_or_load(ModelCache(tmp_path), recipe, data, np.arange(200), seed=1)
    assert cached and again.privacy == pytest.approx(trained.privacy)
    # The fingerprint of a recipe without the new options is what it always was.
    plain = TorchRecipe(architecture="mlp", training=TrainingConfig(**BASE))
    assert "dp_delta" not in str(plain.fingerprint())


def test_dp_refuses_batchnorm_and_mixup():
    x = np.random.default_rng(0).random((32, 3, 8, 8), dtype=np.float32)
    y = np.arange(32) % 3
    cnn = build_model("small_cnn", input_shape=(3, 8, 8), n_classes=3, widths=(4,), seed=0)
    with pytest.raises(InvalidAuditInput, match="DP-SGD cannot train this network"):
        train_model(cnn, x, y, TrainingConfig(**BASE, dp_noise_multiplier=1.0), seed=0)
    with pytest.raises(InvalidAuditInput, match="mixup blends records"):
        TrainingConfig(**BASE, dp_noise_multiplier=1.0, mixup_alpha=0.2)
    with pytest.raises(InvalidAuditInput, match="not both"):
        TrainingConfig(**BASE, dp_noise_multiplier=1.0, dp_target_epsilon=2.0)


def test_mixup_changes_training_deterministically():
    x, y = _xy()
    a, b, c = _mlp(), _mlp(), _mlp()
    config = TrainingConfig(**BASE, device="cpu", mixup_alpha=0.4)
    train_model(a, x, y, config, seed=5)
    train_model(b, x, y, config, seed=5)
    train_model(c, x, y, TrainingConfig(**BASE, device="cpu"), seed=5)
    sa, sb, sc = (m.state_dict() for m in (a, b, c))
    assert all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)
    assert any(not np.allclose(sa[k].numpy(), sc[k].numpy()) for k in sa)


# ------------------------------------------------------------------ the one-run bound


def test_one_run_p_value_and_epsilon():
    # Pure DP: the binomial tail of randomised response with accuracy e^ε / (1 + e^ε).
    q = 1 / (1 + math.exp(-1.0))
    assert one_run_p_value(100, 40, 30, 1.0, 0.0) == pytest.approx(binom.sf(29, 40, q))
    # δ only adds to the p-value, so it lowers the bound.
    assert one_run_p_value(100, 40, 30, 1.0, 1e-3) > one_run_p_value(100, 40, 30, 1.0, 0.0)
    eps = one_run_epsilon(100, 40, 38, 0.0, 0.05)
    assert one_run_p_value(100, 40, 38, eps, 0.0) == pytest.approx(0.05, abs=1e-6)
    assert one_run_epsilon(100, 40, 20, 0.0, 0.05) == 0.0  # chance guessing proves nothing
    assert eps > one_run_epsilon(100, 40, 38, 1e-5, 0.05)


@pytest.fixture(scope="module")
def canary_world():
    data = synthetic_dataset(n_samples=3000)
    grown, canaries = add_canaries(data, np.arange(2000, 2400), "mislabelled", seed=0)
    return grown, canaries, np.arange(1000)


def _recipe(**extra) -> TorchRecipe:
    return TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (64,)},
        training=TrainingConfig(
            epochs=30,
            batch_size=64,
            optimizer="sgd",
            lr=0.2,
            momentum=0.0,
            weight_decay=0.0,
            schedule="constant",
            device="cpu",
            **extra,
        ),
    )


def test_canaries_are_what_they_claim(canary_world):
    grown, canaries, _ = canary_world
    source = np.arange(2000, 2400)
    np.testing.assert_array_equal(grown.x[canaries], grown.x[source])
    assert (grown.y[canaries] != grown.y[source]).all()  # every label moved
    ood, ids = add_canaries(grown, source[:10], "ood", seed=1)
    assert ids.size == 10 and not np.isin(ood.x[ids][:, 0], grown.x[:, 0]).any()


@pytest.mark.slow
def test_one_run_audit_is_positive_without_dp_and_below_the_accountant_with_it(canary_world):
    grown, canaries, train = canary_world
    plain = one_run_audit(_recipe(), grown, train, canaries, seed=0)
    assert plain.epsilon_lower > 0.5 and plain.accountant_epsilon is None
    for sigma in (0.8, 2.0):
        private = one_run_audit(_recipe(dp_noise_multiplier=sigma), grown, train, canaries, seed=0)
        assert private.epsilon_lower <= private.accountant_epsilon
        assert private.delta == 1e-5
    strong = one_run_audit(_recipe(dp_noise_multiplier=2.0), grown, train, canaries, seed=0)
    assert strong.epsilon_lower < 0.3


def test_classic_audit_separates_runs_with_and_without_canaries(canary_world):
    grown, canaries, train = canary_world
    recipe = SklearnRecipe(LogisticRegression(C=100.0, max_iter=300))
    # 32 runs: 16 choose the threshold, 16 measure it; with no error on 8 + 8 runs the
    # Clopper-Pearson bounds allow at most ε = log(0.69 / 0.31) = 0.8 at 95 %.
    audit = classic_canary_audit(recipe, grown, train, canaries[:100], n_models=32, seed=0)
    assert audit.method == "classic" and audit.epsilon_lower > 0.5
    with pytest.raises(InvalidAuditInput, match="n_models"):
        classic_canary_audit(recipe, grown, train, canaries, n_models=3)


# ------------------------------------------------------------------ early stopping


def test_early_stopping_keeps_the_best_epoch_and_needs_held_out_records():
    from miaudit.models.training import _mean_loss

    rng = np.random.default_rng(0)
    x, y = rng.random((200, 6), dtype=np.float32), rng.integers(0, 3, 200)
    config = TrainingConfig(
        epochs=200,
        batch_size=16,
        optimizer="adam",
        lr=1e-2,
        schedule="constant",
        device="cpu",
        early_stopping_patience=5,
    )
    model = build_model("mlp", input_shape=(6,), n_classes=3, hidden=(32,), seed=0)
    result = train_model(model, x[:100], y[:100], config, seed=0, eval_x=x[100:], eval_y=y[100:])
    losses = result.validation_losses
    assert len(losses) < 200 and result.best_epoch == int(np.argmin(losses)) + 1
    assert len(losses) == result.best_epoch + 5  # stopped after 5 epochs without progress
    import torch

    held_out = _mean_loss(model, torch.from_numpy(x[100:]), torch.from_numpy(y[100:]), 512)
    assert held_out == pytest.approx(min(losses), rel=1e-6)
    with pytest.raises(InvalidAuditInput, match="early stopping needs held-out records"):
        train_model(_mlp(), *_xy(), TrainingConfig(**BASE, early_stopping_patience=3), seed=0)
    with pytest.raises(InvalidAuditInput, match="accountant does not count"):
        TrainingConfig(**BASE, early_stopping_patience=3, dp_noise_multiplier=1.0)


def test_a_target_that_stops_early_watches_the_population(tmp_path, capsys):
    import json

    import yaml

    from miaudit.cli import main

    config = {
        "dataset": "digits",
        "split": {"members": 150, "nonmembers": 150, "population": 300, "seed": 0},
        "target": {
            "recipe": {
                "architecture": "mlp",
                "params": {"hidden": [32]},
                "training": {
                    "epochs": 60,
                    "batch_size": 32,
                    "optimizer": "adam",
                    "lr": 0.003,
                    "schedule": "constant",
                    "device": "cpu",
                    "early_stopping_patience": 3,
                },
            }
        },
        "attacks": ["loss"],
        "references": {"cache_dir": str(tmp_path / "c")},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["audit", str(path), "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["target"]["training"]["early_stopping_patience"] == 3
    config["split"]["population"] = 0
    path.write_text(yaml.safe_dump(config))
    assert main(["audit", str(path), "--out", str(tmp_path / "p")]) == 2
    assert "split.population, which is empty" in capsys.readouterr().err


def test_dp_sgd_keeps_the_recipes_label_smoothing():
    x, y = _xy()
    plain, private = _mlp(), _mlp()
    smooth = {**BASE, "device": "cpu", "label_smoothing": 0.2}
    train_model(plain, x, y, TrainingConfig(**smooth), seed=3)
    train_model(
        private,
        x,
        y,
        TrainingConfig(**smooth, dp_noise_multiplier=0.0, dp_max_grad_norm=1e9, dp_poisson=False),
        seed=3,
    )
    for a, b in zip(plain.state_dict().values(), private.state_dict().values(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
