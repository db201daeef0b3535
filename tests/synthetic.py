"""Shared by several test modules: the false-alarm benchmark's synthetic data (one
definition, in ``benchmarks/false_alarms.py``) and a recipe that memorises its records."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from miaudit.models import TorchRecipe, TrainingConfig

_NAME = "miaudit_false_alarms_benchmark"
if _NAME not in sys.modules:
    _path = Path(__file__).resolve().parents[1] / "benchmarks" / "false_alarms.py"
    _spec = importlib.util.spec_from_file_location(_NAME, _path)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module  # dataclasses look their module up there
    _spec.loader.exec_module(_module)
false_alarms = sys.modules[_NAME]
synthetic_dataset = false_alarms.synthetic_dataset


def memorising_recipe(epochs: int = 100, hidden: tuple[int, ...] = (64,)) -> TorchRecipe:
    """An MLP trained with Adam and no regularisation: train accuracy 1.00 on a few hundred
    synthetic records, test accuracy about 0.75."""
    return TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": hidden},
        training=TrainingConfig(
            epochs=epochs,
            batch_size=32,
            optimizer="adam",
            lr=1e-3,
            weight_decay=0.0,
            schedule="constant",
            device="cpu",
        ),
    )


__all__ = ["false_alarms", "memorising_recipe", "synthetic_dataset"]
