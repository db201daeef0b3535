"""Tests of miaudit.models: architectures, augmentation, training, recipes, model files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from miaudit.data.dataset import Dataset
from miaudit.errors import DataNotFoundError, InvalidAuditInput, UntrustedFileError
from miaudit.models import (
    ARCHITECTURES,
    SklearnRecipe,
    TorchRecipe,
    TrainingConfig,
    accuracy,
    build_model,
    check_indices,
    flip_and_shift,
    list_architectures,
    load_sklearn_model,
    load_torch_model,
    predict_logits,
    resolve_arch_params,
    save_sklearn_model,
    save_torch_model,
    train_model,
)

FAST = TrainingConfig(epochs=2, batch_size=16, lr=0.05, device="cpu")
# The fingerprint of an MLP (hidden 8) trained with FAST, computed by miaudit before
# TrainingConfig had ``precision`` (commit dcd6c49).
KEY_BEFORE_PRECISION = "b57b647c99c017a9fde113141e67da1f3a371e7d23c0b41791887ed343ea7395"


def _tabular(n: int = 64, features: int = 10, n_classes: int = 3, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, features), dtype=np.float32)
    y = rng.integers(0, n_classes, n).astype(np.int64)
    return Dataset(name="toy", x=x, y=y, n_classes=n_classes)


def _images(n: int = 32, shape: tuple[int, ...] = (3, 32, 32), seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, 4, n).astype(np.int64)
    return Dataset(name="toy-images", x=x, y=y, n_classes=4)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------- architectures


@pytest.mark.parametrize(
    ("name", "shape", "params"),
    [
        ("mlp", (10,), {}),
        ("mlp", (1, 28, 28), {"hidden": [16, 8], "activation": "tanh", "dropout": 0.1}),
        ("lenet5", (1, 28, 28), {}),
        ("lenet5", (3, 32, 32), {"activation": "tanh"}),
        ("small_cnn", (3, 32, 32), {"widths": (8, 16)}),
        ("small_cnn", (1, 28, 28), {}),
        ("resnet18", (3, 32, 32), {"width": 4}),
        ("vgg16_bn", (3, 32, 32), {"width": 0.125}),
        ("vgg16_bn", (3, 64, 64), {"width": 0.125, "dropout": 0.5}),
        ("wide_resnet", (3, 32, 32), {"depth": 10, "k": 1}),
    ],
)
def test_forward_shape(name: str, shape: tuple[int, ...], params: dict) -> None:
    model = build_model(name, input_shape=shape, n_classes=5, seed=0, **params)
    out = model(torch.rand(3, *shape))
    assert out.shape == (3, 5)
    assert out.dtype == torch.float32


def test_registry_lists_every_architecture_with_params() -> None:
    listed = list_architectures()
    expected = {"mlp", "lenet5", "small_cnn", "resnet18", "vgg16_bn", "wide_resnet"}
    assert set(listed) == expected == set(ARCHITECTURES)
    assert listed["mlp"]["params"]["hidden"]["default"] == (128,)


def test_resnet18_is_the_cifar_variant() -> None:
    model = build_model("resnet18", input_shape=(3, 32, 32), n_classes=10)
    n_params = sum(p.numel() for p in model.parameters())
    assert 11_000_000 < n_params < 11_300_000  # ResNet-18 for CIFAR-10 has about 11.17 M
    assert model.stem[0].kernel_size == (3, 3)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_unknown_architecture_lists_allowed_names() -> None:
    with pytest.raises(InvalidAuditInput, match=r"unknown name 'vgg'.*lenet5.*mlp"):
        build_model("vgg", input_shape=(3, 32, 32), n_classes=10)


def test_bad_params_are_all_reported() -> None:
    with pytest.raises(InvalidAuditInput) as info:
        build_model("lenet5", input_shape=(20,), n_classes=1, activation="gelu", depth=3)
    msg = str(info.value)
    for part in ("'depth'", "allowed: activation", "'gelu'", "image input", "n_classes"):
        assert part in msg
    assert isinstance(info.value, ValueError)


def test_vgg16_bn_and_wide_resnet_have_the_published_layers() -> None:
    vgg = build_model("vgg16_bn", input_shape=(3, 32, 32), n_classes=100)
    convs = [m for m in vgg.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in vgg.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    linears = [m for m in vgg.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 13 == len(norms) and len(linears) == 2  # 16 weight layers with fc
    assert [c.out_channels for c in convs][-1] == 512 and linears[-1].out_features == 100
    wrn = build_model("wide_resnet", input_shape=(3, 32, 32), n_classes=10)  # WRN-28-2
    convs = [m for m in wrn.modules() if isinstance(m, torch.nn.Conv2d)]
    widths = sorted({c.out_channels for c in convs})
    assert widths == [16, 32, 64, 128]
    # 1 stem + 3 groups x 4 blocks x 2 convolutions + 3 projection shortcuts = 28 layers
    # counted as in the paper (stem, 24 block convolutions, classifier; shortcuts apart).
    assert len(convs) == 1 + 24 + 3
    params = sum(p.numel() for p in wrn.parameters())
    assert 1.4e6 < params < 1.6e6  # WRN-28-2 has 1.5 M parameters (Zagoruyko & Komodakis)
    with pytest.raises(InvalidAuditInput, match="6n"):
        build_model("wide_resnet", input_shape=(3, 32, 32), n_classes=10, depth=27)
    with pytest.raises(InvalidAuditInput, match="32x32"):
        build_model("vgg16_bn", input_shape=(3, 28, 28), n_classes=10)


@pytest.mark.parametrize(
    ("name", "params"),
    [("vgg16_bn", {"width": 0.125}), ("wide_resnet", {"depth": 10, "k": 1})],
)
def test_vgg_and_wrn_recipes_train_on_random_images(name: str, params: dict) -> None:
    """The recipe path end to end: trained for a few epochs on 64 random images with
    random labels, the network fits them better than at the start."""
    from miaudit.data import Dataset

    rng = np.random.default_rng(0)
    data = Dataset(
        "random",
        rng.random((64, 3, 32, 32), dtype=np.float32),
        rng.integers(0, 4, 64).astype(np.int64),
        4,
    )
    training = TrainingConfig(epochs=15, batch_size=16, optimizer="adam", lr=3e-3, device="cpu")
    recipe = TorchRecipe(architecture=name, arch_params=params, training=training)
    recipe.validate(data)
    trained = recipe.train(data, np.arange(64), seed=0)
    start = build_model(name, input_shape=(3, 32, 32), n_classes=4, seed=0, **params).eval()
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y)
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(start(x), y).item()
        after = torch.nn.functional.cross_entropy(trained.model.eval()(x), y).item()
    assert after < before


@pytest.mark.parametrize("name", ["lenet5", "small_cnn", "resnet18", "vgg16_bn", "wide_resnet"])
def test_image_architecture_refuses_tabular_input(name: str) -> None:
    with pytest.raises(InvalidAuditInput, match=r"image input"):
        build_model(name, input_shape=(30,), n_classes=2)


def test_lenet_refuses_unsupported_size() -> None:
    with pytest.raises(InvalidAuditInput, match=r"28x28 or 32x32"):
        build_model("lenet5", input_shape=(3, 64, 64), n_classes=2)


def test_seeded_build_is_reproducible_and_leaves_global_rng() -> None:
    before = torch.random.get_rng_state()
    a = build_model("mlp", input_shape=(6,), n_classes=2, seed=3)
    b = build_model("mlp", input_shape=(6,), n_classes=2, seed=3)
    c = build_model("mlp", input_shape=(6,), n_classes=2, seed=4)
    assert torch.equal(before, torch.random.get_rng_state())
    assert _same_state(a, b)
    assert not _same_state(a, c)


def test_resolved_params_fill_defaults() -> None:
    assert resolve_arch_params("mlp", {"hidden": [4]}) == {
        "hidden": (4,),
        "activation": "relu",
        "dropout": 0.0,
    }


# -------------------------------------------------------------------------- augmentation


def test_flip_and_shift_keeps_shape_and_input() -> None:
    x = torch.rand(10, 3, 8, 8)
    original = x.clone()
    out = flip_and_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(x, original)


def test_forced_flip_without_padding_is_a_mirror() -> None:
    x = torch.rand(5, 2, 6, 6)
    out = flip_and_shift(x, 0, torch.Generator().manual_seed(0), flip_probability=1.0)
    assert torch.equal(out, x.flip(-1))
    kept = flip_and_shift(x, 0, torch.Generator().manual_seed(0), flip_probability=0.0)
    assert torch.equal(kept, x)


def test_flip_and_shift_is_deterministic_given_generator() -> None:
    x = torch.rand(16, 3, 8, 8)
    a = flip_and_shift(x, 3, torch.Generator().manual_seed(7))
    b = flip_and_shift(x, 3, torch.Generator().manual_seed(7))
    c = flip_and_shift(x, 3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_shift_matches_per_image_crop() -> None:
    # The batched version must equal the obvious per-image definition: pad, then crop.
    x = torch.rand(12, 1, 5, 5)
    gen = torch.Generator().manual_seed(1)
    out = flip_and_shift(x, 2, gen, padding_mode="zeros", flip_probability=0.0)
    gen = torch.Generator().manual_seed(1)
    torch.rand(12, generator=gen)  # the flip draw
    dy, dx = torch.randint(0, 5, (2, 12), generator=gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(12):
        expected = padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 5]
        assert torch.equal(out[i], expected)


def test_flip_and_shift_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidAuditInput, match=r"pad must.*padding_mode.*flip_probability"):
        flip_and_shift(
            torch.rand(2, 1, 4, 4), -1, torch.Generator(), padding_mode="wrap", flip_probability=2.0
        )
    with pytest.raises(InvalidAuditInput, match=r"too large to reflect"):
        flip_and_shift(torch.rand(2, 1, 4, 4), 4, torch.Generator())


# ------------------------------------------------------------------------------ training


def test_training_config_lists_every_bad_field() -> None:
    with pytest.raises(InvalidAuditInput) as info:
        TrainingConfig(
            epochs=0,
            batch_size=0,
            optimizer="rmsprop",
            lr=-1.0,
            momentum=1.0,
            weight_decay=-0.1,
            schedule="linear",
            step_size=0,
            step_gamma=0.0,
            warmup_fraction=1.5,
            augment="yes",  # type: ignore[arg-type]
            crop_padding=-1,
            label_smoothing=1.0,
            device="tpu",
        )
    msg = str(info.value)
    for name in (
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "momentum",
        "weight_decay",
        "schedule",
        "step_size",
        "step_gamma",
        "warmup_fraction",
        "augment",
        "crop_padding",
        "label_smoothing",
        "device",
    ):
        assert f"{name} must" in msg, name


def test_nesterov_needs_sgd_with_momentum() -> None:
    with pytest.raises(InvalidAuditInput, match=r"nesterov"):
        TrainingConfig(optimizer="adam", nesterov=True)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step", "onecycle"])
def test_lr_schedules_stay_in_range(schedule: str) -> None:
    config = TrainingConfig(epochs=4, schedule=schedule, step_size=2)
    factors = [config.lr_factor(s, 5) for s in range(20)]
    assert all(0.0 <= f <= 1.0 for f in factors)
    assert max(factors) == pytest.approx(1.0, abs=0.05)


def test_mlp_overfits_tiny_random_data() -> None:
    data = _tabular(n=48, features=12, n_classes=3)
    model = build_model("mlp", input_shape=(12,), n_classes=3, hidden=(64,), seed=0)
    config = TrainingConfig(
        epochs=100, batch_size=48, optimizer="adam", lr=3e-2, weight_decay=0.0, device="cpu"
    )
    seen = []
    result = train_model(
        model,
        data.x,
        data.y,
        config,
        seed=0,
        progress=lambda e, n, loss: seen.append((e, n, loss)),
    )
    assert result.train_accuracy == 1.0
    assert result.test_accuracy is None
    assert len(result.epoch_losses) == 100 and result.epoch_losses[-1] < result.epoch_losses[0]
    assert [s[0] for s in seen] == list(range(1, 101)) and seen[0][1] == 100
    assert not result.model.training


def test_same_seed_same_weights_different_seed_different() -> None:
    data = _images(n=20, shape=(3, 16, 16))
    config = TrainingConfig(epochs=2, batch_size=8, augment=True, crop_padding=2, device="cpu")

    def run(seed: int) -> torch.nn.Module:
        model = build_model(
            "small_cnn", input_shape=(3, 16, 16), n_classes=4, widths=(4, 8), dropout=0.2, seed=0
        )
        return train_model(model, data.x, data.y, config, seed=seed).model

    before = torch.random.get_rng_state()
    a, b, c = run(1), run(1), run(2)
    assert torch.equal(before, torch.random.get_rng_state())
    assert _same_state(a, b)
    assert not _same_state(a, c)


def test_augment_is_ignored_with_warning_for_tabular() -> None:
    data = _tabular(n=20)
    model = build_model("mlp", input_shape=(10,), n_classes=3, hidden=(8,), seed=0)
    config = TrainingConfig(epochs=1, batch_size=8, augment=True, device="cpu")
    with pytest.warns(UserWarning, match=r"augment is ignored"):
        train_model(model, data.x, data.y, config, seed=0)


def test_single_record_last_batch_with_batchnorm() -> None:
    # 17 records in batches of 8 would leave a batch of one, which BatchNorm refuses.
    data = _images(n=17, shape=(1, 8, 8))
    model = build_model("small_cnn", input_shape=(1, 8, 8), n_classes=4, widths=(4,), seed=0)
    config = TrainingConfig(epochs=1, batch_size=8, device="cpu")
    result = train_model(model, data.x, data.y, config, seed=0, eval_x=data.x, eval_y=data.y)
    assert result.test_accuracy == result.train_accuracy


def test_train_model_rejects_inconsistent_input() -> None:
    data = _tabular(n=10)
    model = build_model("mlp", input_shape=(10,), n_classes=3, seed=0)
    with pytest.raises(InvalidAuditInput, match="eval_x and eval_y must be given together"):
        train_model(model, data.x, data.y, FAST, seed=0, eval_x=data.x)
    with pytest.raises(InvalidAuditInput, match=r"10 records but y has 9.*negative label"):
        train_model(model, data.x, np.r_[data.y[:8], -1], FAST, seed=0)
    with pytest.raises(InvalidAuditInput, match=r"label 7 but the model has 3 outputs"):
        train_model(model, data.x, np.full(10, 7), FAST, seed=0)
    with pytest.raises(InvalidAuditInput, match=r"rejects records of shape"):
        train_model(model, np.zeros((10, 4), np.float32), data.y, FAST, seed=0)


def test_predict_logits_restores_modes_and_returns_float64() -> None:
    model = build_model("mlp", input_shape=(10,), n_classes=3, hidden=(8,), dropout=0.5, seed=0)
    model.train()
    model[3].eval()  # a deliberately mixed model: one dropout layer frozen
    modes = [m.training for m in model.modules()]
    x = _tabular(n=5).x
    logits = predict_logits(model, x, batch_size=2)
    assert logits.dtype == np.float64 and logits.shape == (5, 3)
    assert [m.training for m in model.modules()] == modes
    # Eval mode inside: dropout off, so repeated calls agree.
    again = predict_logits(model, torch.from_numpy(x))  # other chunking: tiny float noise
    np.testing.assert_allclose(logits, again, rtol=1e-6, atol=1e-7)
    assert 0.0 <= accuracy(model, x, np.zeros(5, np.int64)) <= 1.0


# ------------------------------------------------------------------------------- recipes


def test_torch_recipe_trains_and_is_reproducible() -> None:
    data = _tabular(n=40)
    recipe = TorchRecipe(architecture="mlp", arch_params={"hidden": [16]}, training=FAST)
    a = recipe.train(data, np.arange(30), seed=5, eval_indices=np.arange(30, 40))
    b = recipe.train(data, np.arange(30), seed=5)
    assert a.n_train == 30 and a.seed == 5 and a.test_accuracy is not None
    assert b.test_accuracy is None
    assert _same_state(a.model, b.model)


def test_recipe_fingerprint_is_stable_and_sensitive() -> None:
    base = TorchRecipe(
        architecture="mlp", arch_params={"hidden": (16,)}, training=TrainingConfig(epochs=3)
    )
    same = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": [16], "dropout": 0.0},
        training=TrainingConfig(epochs=3),
    )
    fp = base.fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == same.fingerprint() == base.fingerprint()
    assert base == same and hash(base) == hash(same)
    numpy_config = TrainingConfig(epochs=np.int64(3), lr=np.float64(0.05))
    assert (
        TorchRecipe(
            architecture="mlp", arch_params={"hidden": (16,)}, training=numpy_config
        ).fingerprint()
        == fp
    )
    assert (
        TorchRecipe(
            architecture="mlp", arch_params={"hidden": (17,)}, training=TrainingConfig(epochs=3)
        ).fingerprint()
        != fp
    )
    assert (
        TorchRecipe(
            architecture="mlp", arch_params={"hidden": (16,)}, training=TrainingConfig(epochs=4)
        ).fingerprint()
        != fp
    )
    assert (
        TorchRecipe(
            architecture="mlp",
            arch_params={"hidden": (16,)},
            training=TrainingConfig(epochs=3, device="cpu"),
        ).fingerprint()
        == fp
    )


def test_recipe_rejects_bad_indices() -> None:
    data = _tabular(n=10)
    recipe = TorchRecipe(architecture="mlp", arch_params={}, training=FAST)
    with pytest.raises(InvalidAuditInput, match=r"outside.*more than once"):
        recipe.train(data, np.array([0, 1, 1, 12]), seed=0)
    with pytest.raises(InvalidAuditInput, match=r"no records"):
        recipe.train(data, np.array([], dtype=np.int64), seed=0)
    with pytest.raises(InvalidAuditInput, match=r"1-d integer"):
        check_indices(np.array([0.5]), 10)


def test_recipe_rejects_bad_architecture_early() -> None:
    with pytest.raises(InvalidAuditInput, match=r"width"):
        TorchRecipe(architecture="resnet18", arch_params={"width": 0})
    recipe = TorchRecipe(architecture="lenet5", arch_params={}, training=FAST)
    recipe.validate(_images(n=4))
    with pytest.raises(InvalidAuditInput, match="image input"):
        recipe.validate(_tabular(n=4))
    with pytest.raises(InvalidAuditInput, match="image input"):
        recipe.train(_tabular(n=4), np.arange(4), seed=0)


def test_sklearn_recipe_trains_logistic_regression() -> None:
    data = _images(n=40, shape=(1, 4, 4))
    recipe = SklearnRecipe(LogisticRegression(max_iter=500))
    trained = recipe.train(data, np.arange(30), seed=1, eval_indices=np.arange(30, 40))
    assert isinstance(trained.model, LogisticRegression)
    assert trained.model.coef_.shape == (4, 16)
    assert trained.model.random_state == 1
    assert recipe.estimator.random_state is None  # the template is never touched
    assert 0.0 <= trained.test_accuracy <= 1.0 and trained.n_train == 30
    fp = recipe.fingerprint()
    assert fp == SklearnRecipe(LogisticRegression(max_iter=500, random_state=9)).fingerprint()
    assert fp != SklearnRecipe(LogisticRegression(max_iter=500, C=0.1)).fingerprint()


# ------------------------------------------------------------------------- serialization


def test_torch_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    shape = (1, 28, 28)
    model = build_model("lenet5", input_shape=shape, n_classes=10, activation="tanh", seed=0)
    path = tmp_path / "model.pt"
    save_torch_model(
        path,
        model,
        architecture="lenet5",
        arch_params={"activation": "tanh"},
        input_shape=shape,
        n_classes=10,
    )
    # Only plain data inside: the strict loader reads it.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "miaudit.torch_model" and raw["architecture"] == "lenet5"
    loaded, meta = load_torch_model(path)
    assert meta["input_shape"] == shape and meta["n_classes"] == 10
    assert meta["arch_params"] == {"activation": "tanh", "dropout": 0.0}
    assert not loaded.training
    x = torch.rand(4, *shape)
    np.testing.assert_array_equal(predict_logits(model, x), predict_logits(loaded, x))


def test_save_refuses_metadata_that_do_not_fit(tmp_path: Path) -> None:
    model = build_model("mlp", input_shape=(10,), n_classes=3, seed=0)
    with pytest.raises(InvalidAuditInput, match=r"wrong shape"):
        save_torch_model(
            tmp_path / "m.pt",
            model,
            architecture="mlp",
            arch_params={},
            input_shape=(11,),
            n_classes=3,
        )
    assert not list(tmp_path.iterdir())


def test_bare_state_dict_needs_a_description(tmp_path: Path) -> None:
    model = build_model("mlp", input_shape=(10,), n_classes=3, hidden=(5,), seed=0)
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(InvalidAuditInput, match=r"weights.pt.*pass architecture, input_shape"):
        load_torch_model(path)
    loaded, meta = load_torch_model(
        path, architecture="mlp", arch_params={"hidden": (5,)}, input_shape=(10,), n_classes=3
    )
    assert meta["format"] == "state_dict" and _same_state(model, loaded)
    with pytest.raises(InvalidAuditInput, match=r"weights.pt.*wrong shape.*expected \(128, 10\)"):
        load_torch_model(path, architecture="mlp", input_shape=(10,), n_classes=3)


class _Payload:
    """Unpickling this would create a marker file: proof that code from the file ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickled_object_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload(str(marker))}, path)
    with pytest.raises(UntrustedFileError, match=r"evil.pt.*pickled Python objects"):
        load_torch_model(path)
    assert not marker.exists()
    # A whole pickled module (torch.save(model)) is refused in the same way.
    whole = tmp_path / "whole.pt"
    torch.save(build_model("mlp", input_shape=(3,), n_classes=2), whole)
    with pytest.raises(UntrustedFileError):
        load_torch_model(whole)


def test_load_torch_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"nowhere.pt"):
        load_torch_model(tmp_path / "nowhere.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(InvalidAuditInput, match=r"junk.pt.*not a PyTorch file"):
        load_torch_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "miaudit.torch_model", "version": 1, "architecture": "vgg"}, other)
    with pytest.raises(InvalidAuditInput, match=r"other.pt.*unknown name 'vgg'"):
        load_torch_model(other)


def test_skops_round_trip(tmp_path: Path) -> None:
    data = _tabular(n=30)
    est = LogisticRegression(max_iter=200).fit(data.x, data.y)
    path = tmp_path / "model.skops"
    save_sklearn_model(path, est)
    loaded = load_sklearn_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(data.x), est.predict_proba(data.x))


def test_pickle_needs_trust(tmp_path: Path) -> None:
    data = _tabular(n=30)
    est = LogisticRegression(max_iter=200).fit(data.x, data.y)
    path = tmp_path / "model.pkl"
    with path.open("wb") as fh:
        pickle.dump(est, fh)
    with pytest.raises(UntrustedFileError, match=r"trust_pickle.*skops"):
        load_sklearn_model(path)
    loaded = load_sklearn_model(path, trust_pickle=True)
    np.testing.assert_array_equal(loaded.predict(data.x), est.predict(data.x))
    other = tmp_path / "model.txt"
    other.write_text("?")
    with pytest.raises(InvalidAuditInput, match=r"unknown suffix"):
        load_sklearn_model(other)


def _double(x: np.ndarray) -> np.ndarray:
    return 2 * x


def test_skops_untrusted_types_need_trust(tmp_path: Path) -> None:
    path = tmp_path / "custom.skops"
    save_sklearn_model(path, FunctionTransformer(func=_double))
    with pytest.raises(UntrustedFileError, match=r"_double.*--trust-model-code"):
        load_sklearn_model(path)
    loaded = load_sklearn_model(path, trust_pickle=True)
    np.testing.assert_array_equal(loaded.fit_transform(np.ones((2, 2))), np.full((2, 2), 2.0))


# ------------------------------------------------------------------ precision and layout


def test_precision_is_checked_and_enters_the_fingerprint_only_when_used() -> None:
    with pytest.raises(InvalidAuditInput, match="precision must be one of"):
        TrainingConfig(precision="float16")
    with pytest.raises(InvalidAuditInput, match="cannot be combined with DP-SGD"):
        TrainingConfig(precision="bfloat16", dp_noise_multiplier=1.0)
    plain = TorchRecipe(architecture="mlp", arch_params={"hidden": (8,)}, training=FAST)
    mixed = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (8,)},
        training=TrainingConfig(**{**FAST.to_dict(), "precision": "bfloat16"}),
    )
    assert plain.fingerprint() != mixed.fingerprint()
    # The default leaves the fingerprint as it was before the setting existed (the key of
    # this recipe computed by miaudit before it had ``precision``): cached models stay.
    assert plain.fingerprint() == KEY_BEFORE_PRECISION


@pytest.mark.parametrize("architecture", ["mlp", "lenet5"])
def test_bfloat16_training_learns_and_differs_from_float32(architecture) -> None:
    """Mixed precision learns as float32 does (memorising 48 records: an MLP on a
    learnable synthetic task, a LeNet-5 on noise images), with float32 weights that
    differ from float32 training's."""
    from synthetic import synthetic_dataset

    data = synthetic_dataset(n_samples=200) if architecture == "mlp" else _images(n=48)
    config = TrainingConfig(epochs=60, batch_size=16, lr=0.05, device="cpu")
    recipes = {
        precision: TorchRecipe(
            architecture=architecture,
            arch_params={"hidden": (32,)} if architecture == "mlp" else {},
            training=TrainingConfig(**{**config.to_dict(), "precision": precision}),
        )
        for precision in ("float32", "bfloat16")
    }
    trained = {p: r.train(data, np.arange(48), seed=4) for p, r in recipes.items()}
    mixed, plain = trained["bfloat16"], trained["float32"]
    assert all(torch.isfinite(p).all() for p in mixed.model.parameters())
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())  # weights stay f32
    assert plain.train_accuracy > 0.9 and mixed.train_accuracy > 0.85
    assert abs(mixed.train_accuracy - plain.train_accuracy) <= 0.1
    assert not torch.equal(next(mixed.model.parameters()), next(plain.model.parameters()))


def test_channels_last_training_equals_the_default_layout(monkeypatch) -> None:
    """The layout used on GPUs changes the order of operations only: forced on a CPU, a
    LeNet-5 trains to the same weights as in the default layout, to rounding."""
    from miaudit.models import training as training_module

    data = _images(n=32)
    recipe = TorchRecipe(architecture="lenet5", training=FAST)
    default = recipe.train(data, np.arange(32), seed=2)
    monkeypatch.setattr(training_module, "channels_last_on", lambda device: True)
    last = recipe.train(data, np.arange(32), seed=2)
    assert last.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(last.model.parameters(), default.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
