"""Does deleting a record really remove it? The deletion study on MNIST (and CIFAR-10) with
LeNet-5: full retraining against SISA with 5 and 10 shards and one approximate method, at
5 % and 10 % random deletions.

Runs :func:`miaudit.unlearn_study.run_unlearning` on an audit file built here: 10,000
members and 5,000 never-seen records, LeNet-5 trained with SGD for 10 epochs. Prints, per
deletion and method, the test accuracy before and after, the loss attack's AUC of deleted
against never-seen records before and after (with its interval and p-value), U-LiRA's
(4 references trained and unlearned the same way; not for SISA), and the seconds of the
method against full retraining.

    python benchmarks/unlearning.py                       # MNIST (../shared/data)
    python benchmarks/unlearning.py --datasets cifar10

Torch threads are capped at ``--threads`` (default 2); the benchmark should run alone.
"""

from __future__ import annotations

import argparse
import platform
import warnings

import torch

import miaudit
from miaudit.config import parse_config
from miaudit.unlearn_study import run_unlearning, unlearning_table


def config(name: str) -> dict:
    return {
        "dataset": name,
        "split": {"members": 10_000, "nonmembers": 5_000, "seed": 0},
        "target": {
            "recipe": {
                "architecture": "lenet5",
                "training": {
                    "epochs": 10,
                    "batch_size": 128,
                    "optimizer": "sgd",
                    "lr": 0.05,
                    "momentum": 0.9,
                    "weight_decay": 0.0,
                    "schedule": "cosine",
                    "device": "auto",
                },
            }
        },
        "unlearning": {
            "fractions": [0.05, 0.10],
            "methods": [
                {"name": "retrain"},
                {"name": "sisa", "shards": 5},
                {"name": "sisa", "shards": 10},
                {"name": "finetune", "epochs": 2},
            ],
            "attacks": ["loss", "gap"],
            "ulira_references": 4,
        },
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )
    for name in args.datasets.split(","):
        result = run_unlearning(parse_config(config(name.strip()), source=name))
        t = result.target
        print(
            f"\n## {name}: LeNet-5 on {t['n_members']} members (train acc "
            f"{t['train_accuracy']:.3f}, {t['training_seconds']:.0f} s), {t['n_never_seen']} "
            f"never-seen records; {result.seconds:.0f} s in all"
        )
        for cells in unlearning_table(result.rows):
            print(" | ".join(cells))


if __name__ == "__main__":
    main()
