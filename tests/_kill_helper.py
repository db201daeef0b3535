"""A process for test_compute's kill test to kill: it fills a model cache, one model at a time.

Run as ``python _kill_helper.py CACHE_DIR``. The test imports the same builders, so the
process and the test agree on every cache key.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from miaudit.compute import ModelCache, ReferencePool
from miaudit.data.dataset import Dataset
from miaudit.models import TorchRecipe, TrainingConfig

N_MODELS = 6


def kill_dataset() -> Dataset:
    rng = np.random.default_rng(7)
    x = rng.random((300, 32), dtype=np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int64)
    return Dataset(name="kill", x=x, y=y, n_classes=2)


def kill_recipe() -> TorchRecipe:
    # Slow enough (a few tenths of a second a model) for the test to catch it in the act.
    return TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (128, 128)},
        training=TrainingConfig(epochs=25, batch_size=16, lr=0.05, device="cpu"),
    )


def kill_pool(cache_dir: Path) -> ReferencePool:
    data = kill_dataset()
    return ReferencePool(
        kill_recipe(),
        data,
        np.arange(data.n_records),
        n_models=N_MODELS,
        seed=3,
        cache=ModelCache(cache_dir),
        ensemble="off",  # one model at a time, so that some finish before the kill
    )


if __name__ == "__main__":
    kill_pool(Path(sys.argv[1])).train()
