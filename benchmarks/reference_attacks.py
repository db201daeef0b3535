"""Reference attacks (LiRA, RMIA, Attack-R) against the loss attack, self-audit protocol.

Each model trains on a random half of one data set; each of several models in turn is the
target and K others its references (Carlini et al. 2022; Zarifzadeh et al. 2024). Prints,
per (attack, K): AUC, TPR at 1% and 0.1% FPR with their Clopper-Pearson intervals (mean
over targets), and the wall time of the attack; then the time per reference model.

    python benchmarks/reference_attacks.py --quick          # Location, K = 1, 2: < 5 min
    python benchmarks/reference_attacks.py                  # Location and CIFAR-10, K = 1..8

Models go to a fresh temporary cache unless --cache-dir is given (then a rerun trains
nothing it already has).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import miaudit
from miaudit.attacks import ReferenceCoverageWarning
from miaudit.compute import ModelCache
from miaudit.data import load_dataset
from miaudit.evaluation import LowFprResolutionWarning, SmallSliceWarning
from miaudit.experiment import self_audit
from miaudit.models import TorchRecipe, TrainingConfig

LOCATION = TorchRecipe(
    architecture="mlp",
    arch_params={"hidden": (128,), "activation": "tanh"},
    # The recipe: SGD lr 0.1, batch 256, 100 epochs, on 2,505 records.
    training=TrainingConfig(
        epochs=100,
        batch_size=256,
        optimizer="sgd",
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        schedule="constant",
    ),
)

CIFAR10 = TorchRecipe(
    architecture="small_cnn",
    # Half the default widths: ten models must train within the benchmark's time on 2 cores.
    arch_params={"widths": (16, 32, 64)},
    # Few epochs so one model trains in a few minutes on 2 CPU cores; flips and shifts.
    training=TrainingConfig(
        epochs=4,
        batch_size=256,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="onecycle",
        augment=True,
    ),
)


def attack_entries(k: int) -> list[dict]:
    return [
        {"name": "lira", "online": True, "num_references": k},
        {"name": "lira", "online": False, "num_references": k},
        {"name": "rmia", "online": True, "num_references": k},
        {"name": "rmia", "online": False, "num_references": k},
        {"name": "attack_r", "num_references": k},
        {"name": "loss"},
    ]


def run(name: str, recipe, ks: list[int], n_targets: int, cache: ModelCache, queries: str):
    data = load_dataset(name)
    print(
        f"\n## {name}: {data.n_records} records, {data.n_classes} classes, recipe "
        f"{recipe.architecture} {recipe.training.to_dict()}"
    )
    print(f"{'attack':<16} {'K':>2} {'auc':>13} {'tpr@1%':>22} {'tpr@0.1%':>22} {'seconds':>8}")
    started = time.perf_counter()
    for k in ks:

        def progress(done, total, info, k=k):
            acc = info.get("test_accuracy")
            src = "cache" if info.get("from_cache") else f"{info.get('seconds', 0):.1f}s"
            print(f"  [K={k}] model {done}/{total} test acc {acc:.3f} ({src})", flush=True)

        result = self_audit(
            recipe,
            data,
            n_references=k,
            n_targets=n_targets,
            attacks=attack_entries(k),
            queries=queries,
            cache=cache,
            progress=progress,
        )
        train = np.mean([r.train_accuracy for r in result.runs])
        test = np.mean([r.test_accuracy for r in result.runs])
        print(f"  targets: {n_targets}, train acc {train:.3f}, test acc {test:.3f}")
        for row in result.summary():
            lo1, hi1 = row["tpr@1%_ci"]
            lo01, hi01 = row["tpr@0.1%_ci"]
            print(
                f"{row['attack']:<16} {k:>2} {row['auc']:.3f}±{row['auc_std']:.3f} "
                f"{row['tpr@1%']:.3f} [{lo1:.3f},{hi1:.3f}] "
                f"{row['tpr@0.1%']:.3f} [{lo01:.3f},{hi01:.3f}] {row['seconds']:>8.3f}"
            )
        fresh = result.training_seconds
        if fresh:
            print(
                f"  trained {len(fresh)} new models: {np.mean(fresh):.1f} ± "
                f"{np.std(fresh):.1f} s per model ({result.models_from_cache} from cache)"
            )
    print(f"  total wall time for {name}: {time.perf_counter() - started:.1f} s")


def main() -> None:
    # Per-class low-FPR caveats are expected on these small per-class slices; the table
    # reports overall figures with their intervals.
    warnings.filterwarnings("ignore", category=LowFprResolutionWarning)
    warnings.filterwarnings("ignore", category=SmallSliceWarning)
    # With K = 1 half the records have no OUT reference; the attacks fall back and say so.
    warnings.filterwarnings("ignore", category=ReferenceCoverageWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Location only, K = 1, 2")
    parser.add_argument("--datasets", default="location,cifar10")
    parser.add_argument("--ks", default="1,2,4,8")
    parser.add_argument("--targets", type=int, default=None, help="targets per K")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    names = ["location"] if args.quick else args.datasets.split(",")
    ks = [1, 2] if args.quick else [int(k) for k in args.ks.split(",")]
    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = ModelCache(args.cache_dir or Path(tmp))
        for name in names:
            if name == "location":
                targets = args.targets or (2 if args.quick else 4)
                run("location", LOCATION, ks, targets, cache, "none")
            elif name == "cifar10":
                run("cifar10", CIFAR10, ks, args.targets or 1, cache, "flips")
            else:
                raise SystemExit(f"unknown data set {name!r}")


if __name__ == "__main__":
    main()
