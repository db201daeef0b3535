"""Shokri et al.'s shadow-model attack on CIFAR-10, through the YAML pipeline.

A small CNN target (widths 16-32-64, 15 epochs without augmentation, so that it overfits
as Shokri et al.'s CIFAR targets do and trains in about a minute on 2 CPU cores) on 10,000
images; 10,000 other images are its audited non-members; 4 shadow models trained like the
target on the attacker's remaining images, one random-forest attack model per class.
Prints the target's and the shadows' accuracy and the attack's figures beside the loss
attack's, and the wall time.

    python benchmarks/shadow_cifar.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from miaudit.config import parse_config
from miaudit.evaluation import LowFprResolutionWarning, SmallSliceWarning
from miaudit.pipeline import run_config

RECIPE = {
    "architecture": "small_cnn",
    "params": {"widths": [16, 32, 64]},
    "training": {
        "epochs": 15,
        "batch_size": 256,
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "onecycle",
        "augment": False,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=LowFprResolutionWarning)
    warnings.filterwarnings("ignore", category=SmallSliceWarning)
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {
                "dataset": "cifar10",
                "split": {"members": 10000, "nonmembers": 10000, "seed": 0},
                "target": {"recipe": RECIPE},
                "attacks": [
                    {"name": "shadow", "n_shadow": 4, "attack_model": "rf", "shadow_size": 10000},
                    "loss",
                ],
                "references": {"cache_dir": str(args.cache_dir or tmp)},
            },
            source="shadow_cifar",
        )
        started = time.perf_counter()
        result = run_config(
            config,
            on_stage=lambda m: print(f"[{time.perf_counter() - started:6.0f} s] {m}", flush=True),
        )
    print(
        f"\ntarget: train acc {result.target['train_accuracy']:.3f}, "
        f"test acc {result.target['test_accuracy']:.3f}"
    )
    shadow = result.target["shadow_models"]["shadow_real"]
    print(
        f"shadows: {shadow['n_shadow']}, train acc {shadow['mean_train_accuracy']:.3f}, "
        f"test acc {shadow['mean_test_accuracy']:.3f}"
    )
    print(f"{'attack':<12} {'auc':>6} {'tpr@1%':>7} {'precision':>9} {'recall':>7} {'adv':>6}")
    for a in result.attacks:
        tm = a.threshold_metrics
        print(
            f"{a.name:<12} {a.auc:>6.3f} {a.tpr_at_fpr[0.01].tpr:>7.3f} {tm.precision:>9.3f} "
            f"{tm.recall:>7.3f} {tm.advantage:>6.3f}"
        )
    print(f"wall time: {result.seconds:.0f} s")


if __name__ == "__main__":
    main()
