"""Fixtures shared by several test modules."""

from __future__ import annotations

import os

import pytest

from miaudit.models import SklearnRecipe, TorchRecipe


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or fill the user's model cache (``~/.cache/miaudit``): a model
    cached there by another torch build or thread count may differ in its last bits from
    the one a test expects, and a test run should leave nothing behind. Subprocesses
    (the command-line tests) inherit the variable."""
    previous = os.environ.get("MIAUDIT_CACHE")
    os.environ["MIAUDIT_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    yield
    if previous is None:
        os.environ.pop("MIAUDIT_CACHE", None)
    else:
        os.environ["MIAUDIT_CACHE"] = previous


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts TorchRecipe.train and SklearnRecipe.train calls (their seeds), i.e. models
    actually trained."""
    calls: list[int] = []
    for recipe_class in (TorchRecipe, SklearnRecipe):
        original = recipe_class.train

        def counting(self, dataset, indices, *, seed, _original=original, **kwargs):
            calls.append(seed)
            return _original(self, dataset, indices, seed=seed, **kwargs)

        monkeypatch.setattr(recipe_class, "train", counting)
    return calls
