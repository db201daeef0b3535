"""How each kind of trained model is stored in the model cache, as data, never as code.

One entry per format, tried in order: the first whose ``matches`` accepts a model stores
it. A model no format accepts (a network of a class the registry does not know, a plain
callable) is not stored at all: the cache then keeps its metadata, and the answer cache
keeps its answers, which is all an audit needs to rerun without retraining it.

* ``torch``: an ``nn.Module`` of a recipe naming a registry architecture, as ``.pt``
  weights read with ``torch.load(weights_only=True)`` into the rebuilt architecture;
* ``xgboost``: XGBoost's scikit-learn classifiers, as ``.ubj`` (XGBoost's UBJSON), read by
  XGBoost's own parser;
* ``lightgbm``: LightGBM's classifiers and boosters, as ``.lgb.txt``, read by LightGBM's
  own text parser;
* ``sklearn``: anything skops stores, as ``.skops``, loading only the types the recipe
  trusts in code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from miaudit.atomic import atomic_write
from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput
from miaudit.models.architectures import ARCHITECTURES, build_model
from miaudit.models.recipes import TorchRecipe
from miaudit.models.serialization import load_torch_model, save_torch_model

__all__ = ["FORMATS", "BoosterClassifier", "ModelFormat", "format_for", "format_named"]


@dataclass(frozen=True)
class ModelFormat:
    """One way of storing models: which it takes, its file suffix, how to write and read."""

    kind: str
    suffix: str
    matches: Callable[[Any, Any], bool]
    save: Callable[[Any, Path, Any, Dataset], None]
    load: Callable[[Path, frozenset[str]], Any]


# ------------------------------------------------------------------------- PyTorch


def _registered_architecture(recipe: Any) -> str | None:
    name = getattr(recipe, "architecture", None)
    return name if isinstance(name, str) and name in ARCHITECTURES else None


def _torch_matches(model: Any, recipe: Any) -> bool:
    return isinstance(model, nn.Module) and _registered_architecture(recipe) is not None


def _torch_save(model: nn.Module, path: Path, recipe: Any, dataset: Dataset) -> None:
    architecture = _registered_architecture(recipe)
    params = dict(getattr(recipe, "arch_params", None) or {})
    if not isinstance(recipe, TorchRecipe):  # a TorchRecipe built the network itself
        _check_same_network(model, architecture, params, dataset)
    # save_torch_model writes through miaudit.atomic (flushed, then renamed).
    save_torch_model(
        path,
        model,
        architecture=architecture,
        arch_params=params,
        input_shape=dataset.input_shape,
        n_classes=dataset.n_classes,
    )


def _check_same_network(model: nn.Module, architecture: str, params: dict, dataset) -> None:
    """The user's network must be the registered one, or its weights would load into
    another shape (or fail) when read back."""
    import torch

    with torch.device("meta"):
        blank = build_model(
            architecture, input_shape=dataset.input_shape, n_classes=dataset.n_classes, **params
        )
    expected = {k: tuple(v.shape) for k, v in blank.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if expected != got:
        differ = sorted(set(expected) ^ set(got)) or [k for k in got if expected[k] != got[k]]
        raise InvalidAuditInput(
            f"the network the recipe returned is not a {architecture!r} as registered "
            f"(state_dict entries differ: {differ[:5]}); register the class it returns, or "
            "leave architecture out (its answers are then cached, not its weights)"
        )


def _torch_load(path: Path, trusted: frozenset[str]) -> nn.Module:
    return load_torch_model(path)[0]


# ------------------------------------------------------------------------- XGBoost


def _module_of(model: Any) -> str:
    return type(model).__module__.split(".")[0]


def _xgboost_matches(model: Any, recipe: Any) -> bool:
    return _module_of(model) == "xgboost" and hasattr(model, "save_model")


def _xgboost_save(model: Any, path: Path, recipe: Any, dataset: Dataset) -> None:
    def write(tmp: Path) -> None:
        # XGBoost picks the format by suffix; UBJSON is its compact JSON.
        staged = tmp.with_name(tmp.name + ".ubj")
        try:
            model.save_model(str(staged))
            staged.replace(tmp)
        finally:
            staged.unlink(missing_ok=True)

    atomic_write(path, write)


def _xgboost_load(path: Path, trusted: frozenset[str]) -> Any:
    import xgboost

    model = xgboost.XGBClassifier()
    model.load_model(str(path))  # the cache names it ``<key>.ubj``: read as UBJSON
    return model


# ------------------------------------------------------------------------- LightGBM


@dataclass(frozen=True, eq=False)
class BoosterClassifier:
    """A LightGBM booster read back from its text format, answering like a classifier."""

    booster: Any

    @property
    def classes_(self) -> np.ndarray:
        n = int(self.booster.num_model_per_iteration())
        return np.arange(max(n, 2))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.asarray(self.booster.predict(np.asarray(x).reshape(len(x), -1)), np.float64)
        return np.column_stack([1 - p, p]) if p.ndim == 1 else p

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)

    def get_params(self, deep: bool = True) -> dict:
        return {}


def _lightgbm_matches(model: Any, recipe: Any) -> bool:
    if isinstance(model, BoosterClassifier):
        return True
    return _module_of(model) == "lightgbm" and (
        hasattr(model, "booster_") or hasattr(model, "save_model")
    )


def _lightgbm_save(model: Any, path: Path, recipe: Any, dataset: Dataset) -> None:
    booster = model.booster if isinstance(model, BoosterClassifier) else model
    booster = getattr(booster, "booster_", booster)
    classes = np.asarray(getattr(model, "classes_", np.arange(2)))
    if classes.dtype.kind not in "iu" or not np.array_equal(classes, np.arange(classes.size)):
        raise InvalidAuditInput(
            "a LightGBM model is cached only when its classes are 0 .. n-1, got "
            f"{classes.tolist()[:10]}"
        )
    atomic_write(path, lambda tmp: booster.save_model(str(tmp)))


def _lightgbm_load(path: Path, trusted: frozenset[str]) -> BoosterClassifier:
    import lightgbm

    return BoosterClassifier(lightgbm.Booster(model_file=str(path)))


# ------------------------------------------------------------------------- skops


def _sklearn_matches(model: Any, recipe: Any) -> bool:
    return hasattr(model, "get_params") and (
        hasattr(model, "predict_proba") or hasattr(model, "predict")
    )


def _sklearn_save(model: Any, path: Path, recipe: Any, dataset: Dataset) -> None:
    import skops.io as sio

    try:
        atomic_write(path, lambda tmp: sio.dump(model, tmp))
    except (TypeError, NotImplementedError) as exc:
        raise InvalidAuditInput(f"skops cannot store this {type(model).__name__} ({exc})") from None


def _sklearn_load(path: Path, trusted: frozenset[str]) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - trusted)
    if refused:
        raise ValueError(
            f"model holds types its recipe does not trust: {refused} (to trust them, pass "
            "trusted_types=[...] to the recipe in Python, or define trusted_types() on it)"
        )
    return sio.load(path, trusted=list(untrusted))


#: The formats, tried in order (:func:`format_for`).
FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat("torch", ".pt", _torch_matches, _torch_save, _torch_load),
    ModelFormat("xgboost", ".ubj", _xgboost_matches, _xgboost_save, _xgboost_load),
    ModelFormat("lightgbm", ".lgb.txt", _lightgbm_matches, _lightgbm_save, _lightgbm_load),
    ModelFormat("sklearn", ".skops", _sklearn_matches, _sklearn_save, _sklearn_load),
)


def format_for(model: Any, recipe: Any) -> ModelFormat | None:
    """The first format that stores ``model`` of ``recipe``, or None (answers only)."""
    return next((f for f in FORMATS if f.matches(model, recipe)), None)


def format_named(kind: str) -> ModelFormat:
    """The format a cache entry's metadata names (checked against this list, in code)."""
    for f in FORMATS:
        if f.kind == kind:
            return f
    raise ValueError(f"unknown model kind {kind!r}")
