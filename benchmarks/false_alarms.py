"""Does the verdict cry wolf? Null audits and positive controls, 40 of each, fixed seeds.

A *null* audit attacks a target trained on records outside the audit (the attacker's
population), so its members and non-members are equally unseen: any risk above "low" is a
false alarm. A *positive control* attacks a target trained on the audited members until it
memorises them. Each audit runs every default metric attack through
:func:`miaudit.audit.run_audit` and is judged by :func:`miaudit.report.decide_verdict`.

The verdict's nominal false-alarm rate is 5% per audit (simultaneous lower bounds); the
issue asks for at most 1 of 40 null audits above "low" at 200 + 200 and at 50 + 50 records
and at least 38 of 40 positive controls flagged. ``tests/test_false_alarms.py`` runs this
protocol on the synthetic data and asserts those counts.

    python benchmarks/false_alarms.py                  # synthetic data, 40 audits per cell
    python benchmarks/false_alarms.py --dataset location --audits 40

``location`` reads ``location.npz`` from ``MIAUDIT_DATA`` or ``../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import make_classification
from sklearn.neural_network import MLPClassifier

from miaudit.audit import run_audit
from miaudit.data import load_dataset, make_split
from miaudit.data.dataset import Dataset
from miaudit.report import decide_verdict
from miaudit.targets import SklearnTarget

#: Audit sizes (members = non-members) of the issue.
SIZES = (200, 50)


@dataclass(frozen=True)
class Cell:
    """The verdicts of one kind of control at one size."""

    kind: str
    n_each: int
    risks: Counter
    auc_median: float
    train_accuracy: float
    test_accuracy: float
    seconds: float

    @property
    def above_low(self) -> int:
        return self.risks["medium"] + self.risks["high"]


def synthetic_dataset(seed: int = 0, n_samples: int = 1500) -> Dataset:
    """Four classes in 30 features, 10% of labels random: a small MLP trained on a few
    hundred records memorises them (train accuracy 1.00, test about 0.70)."""
    x, y = make_classification(
        n_samples=n_samples,
        n_features=30,
        n_informative=6,
        n_classes=4,
        flip_y=0.1,
        class_sep=2.0,
        random_state=seed,
    )
    return Dataset("synthetic", x.astype(np.float32), y.astype(np.int64), 4, source="sklearn")


def run_controls(dataset: Dataset, kind: str, n_each: int, audits: int = 40) -> Cell:
    """``audits`` audits of one kind (``"null"`` or ``"positive"``), seeds 0 .. audits - 1."""
    if kind not in ("null", "positive"):
        raise ValueError(f"kind must be 'null' or 'positive', got {kind!r}")
    started = time.perf_counter()
    risks: Counter = Counter()
    aucs, train_acc, test_acc = [], [], []
    for seed in range(audits):
        split = make_split(
            dataset.n_records, n_members=n_each, n_nonmembers=n_each, seed=seed, labels=dataset.y
        )
        # Null: as many training records as the positive control, none of them audited.
        train = split.members if kind == "positive" else split.population[:n_each]
        model = MLPClassifier((64,), alpha=0.0, max_iter=300, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence and small-slice warnings
            model.fit(dataset.x[train], dataset.y[train])
            result = run_audit(SklearnTarget(model, n_classes=dataset.n_classes), dataset, split)
        risks[decide_verdict(result.attacks)["risk"]] += 1
        aucs.append(max(a.auc for a in result.attacks))
        train_acc.append(result.target["train_accuracy"])
        test_acc.append(result.target["test_accuracy"])
    return Cell(
        kind,
        n_each,
        risks,
        float(np.median(aucs)),
        float(np.mean(train_acc)),
        float(np.mean(test_acc)),
        time.perf_counter() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("synthetic", "location"), default="synthetic")
    parser.add_argument("--audits", type=int, default=40)
    args = parser.parse_args()
    if args.dataset == "synthetic":
        dataset = synthetic_dataset()
    else:
        data_dir = os.environ.get("MIAUDIT_DATA", os.path.join("..", "shared", "data"))
        dataset = load_dataset("location", data_dir=data_dir)
    print(f"{dataset.name}: {dataset.n_records} records, {args.audits} audits per row")
    print(
        f"{'control':<9} {'records':>9} {'low':>4} {'medium':>6} {'high':>4} "
        f"{'median best AUC':>15} {'train/test acc':>14} {'s':>5}"
    )
    for n_each in SIZES:
        for kind in ("null", "positive"):
            cell = run_controls(dataset, kind, n_each, args.audits)
            print(
                f"{kind:<9} {f'{n_each}+{n_each}':>9} {cell.risks['low']:>4} "
                f"{cell.risks['medium']:>6} {cell.risks['high']:>4} {cell.auc_median:>15.3f} "
                f"{f'{cell.train_accuracy:.2f}/{cell.test_accuracy:.2f}':>14} "
                f"{cell.seconds:>5.1f}"
            )


if __name__ == "__main__":
    main()
