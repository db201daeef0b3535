"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from miaudit.models import SklearnRecipe, TorchRecipe


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
