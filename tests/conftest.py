"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from miaudit.models import TorchRecipe


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts TorchRecipe.train calls (their seeds), i.e. models actually trained."""
    calls: list[int] = []
    original = TorchRecipe.train

    def counting(self, dataset, indices, *, seed, **kwargs):
        calls.append(seed)
        return original(self, dataset, indices, seed=seed, **kwargs)

    monkeypatch.setattr(TorchRecipe, "train", counting)
    return calls
