"""Attack power in an audit of a given model: references that mimic the target.

Unlike ``reference_attacks.py`` (the self-audit protocol, where every model trains on half
of one data set and references match the target by construction), this benchmark audits a
target the way a user does: the target is trained once on its members, and ``run_audit``
trains the references from the recipe, each on as many records as the target, in
complementary pairs over the audited records. It prints, per K and attack, AUC (mean ± std
over targets), TPR at 1 % and 0.1 % FPR with Clopper-Pearson 95 % intervals (pooled over
the targets' scores), the references' train/test accuracy against the target's, the
recipe-match table's verdict, and the wall time of the whole audit.

Protocols (from the evidence issue):

* ``location``: ML Privacy Meter's. The first 3,757 records are audited; the target trains
  on a random half of them; the last 1,253 records are the population. MLP 446-128-30
  tanh, SGD lr 0.1, batch 256, 100 epochs, constant schedule (ML Privacy Meter's
  ``purchase.yaml`` training settings).
* ``cifar10``: 5,000 members, 5,000 non-members, 10,000 population; LeNet-5, 40 epochs,
  SGD lr 0.02, momentum 0.9, cosine, batch 128, no weight decay; flip queries.

    python benchmarks/reference_power.py                       # Location, 3 targets, K=1,2,4,8
    python benchmarks/reference_power.py --datasets cifar10    # CIFAR-10, 1 target, K=1,2,4
    python benchmarks/reference_power.py --datasets cifar10 --reseed 2   # retrain outliers

Torch threads are capped at ``--threads`` (default 2); the benchmark should run alone.
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
from reference_attacks import LOCATION  # the same Location recipe as the self-audit benchmark

import miaudit
from miaudit.attacks import ReferenceCoverageWarning
from miaudit.audit import run_audit
from miaudit.compute import ModelCache
from miaudit.data import load_dataset
from miaudit.data.split import AuditSplit
from miaudit.evaluation import LowFprResolutionWarning, SmallSliceWarning
from miaudit.evaluation.intervals import clopper_pearson
from miaudit.evaluation.roc import roc_auc, tpr_at_fpr
from miaudit.models import TorchRecipe, TrainingConfig
from miaudit.references import ReferenceSetup
from miaudit.targets import TorchTarget

CIFAR10 = TorchRecipe(
    architecture="lenet5",
    training=TrainingConfig(
        epochs=40,
        batch_size=128,
        optimizer="sgd",
        lr=0.02,
        momentum=0.9,
        weight_decay=0.0,
        schedule="cosine",
    ),
)

ATTACKS = (
    ("rmia_offline", {"name": "rmia", "online": False}),
    ("rmia_online", {"name": "rmia", "online": True}),
    ("lira_offline", {"name": "lira", "online": False}),
    ("lira_online", {"name": "lira", "online": True}),
)


def location_split(n_records: int, seed: int) -> AuditSplit:
    """ML Privacy Meter's Location protocol: 3,757 audited records, half of them members."""
    audited = np.arange(3757)
    order = np.random.default_rng(seed).permutation(audited)
    return AuditSplit(
        np.sort(order[:1878]), np.sort(order[1878:]), np.arange(3757, n_records), seed=seed
    )


def cifar_split(n_records: int, seed: int) -> AuditSplit:
    order = np.random.default_rng(seed).permutation(n_records)
    return AuditSplit(
        np.sort(order[:5000]),
        np.sort(order[5000:10000]),
        np.sort(order[10000:20000]),
        seed=seed,
    )


def attack_entries(ks: list[int]) -> list[dict]:
    entries = [{"name": "loss"}]
    for k in ks:
        for label, entry in ATTACKS:
            entries.append({**entry, "num_references": k, "label": f"{label}@{k}"})
    return entries


def run(
    name: str,
    recipe: TorchRecipe,
    ks: list[int],
    n_targets: int,
    cache: ModelCache,
    queries: str,
    reseed: int,
):
    data = load_dataset(name)
    make = location_split if name == "location" else cifar_split
    print(
        f"\n## {name}: {data.n_records} records; recipe {recipe.architecture} "
        f"{recipe.training.to_dict()}"
    )
    scores: dict[str, list[np.ndarray]] = {}
    members, audits = [], []
    for t in range(n_targets):
        split = make(data.n_records, seed=t)
        started = time.perf_counter()
        trained = recipe.train(data, split.members, seed=1000 + t, eval_indices=split.nonmembers)
        target = TorchTarget(trained.model, n_classes=data.n_classes, access="logits")
        setup = ReferenceSetup(
            recipe=recipe, cache_dir=cache.root, seed=t, queries=queries, reseed=reseed
        )
        result = run_audit(target, data, split, attacks=attack_entries(ks), references=setup)
        seconds = time.perf_counter() - started
        refs = result.target["references"]
        match = refs["recipe_match"]
        audits.append((seconds, trained.seconds, result, match))
        members.append(result.is_member)
        for label, vector in result.scores.items():
            scores.setdefault(label, []).append(vector)
        print(
            f"  target {t}: train acc {match['target']['train_accuracy']:.3f} test "
            f"{match['target']['test_accuracy']:.3f} | {refs['n_models']} references: train "
            f"{match['mean']['train_accuracy']:.3f} test {match['mean']['test_accuracy']:.3f}, "
            f"{match['n_matched']}/{refs['n_models']} within tolerance | whole audit "
            f"{seconds:.1f} s (target {trained.seconds:.1f} s, "
            f"{refs['models_loaded_from_cache']} references from cache"
            f"{', reseeded ' + str(refs['reseeded']) if 'reseeded' in refs else ''})"
        )
        for warning in result.warnings:
            print(f"    warning: {warning}")
    print(f"{'attack':<18} {'AUC':>13} {'TPR@1% [95% CI]':>24} {'TPR@0.1% [95% CI]':>24}")
    is_member = np.concatenate(members)
    for label, vectors in scores.items():
        aucs = [roc_auc(v, m) for v, m in zip(vectors, members, strict=True)]
        # Scores of different targets are not on one scale: TPR at FPR is measured per
        # target and the counts pooled (equal audit sizes), with one exact interval.
        cells = []
        for fpr in (0.01, 0.001):
            points = [tpr_at_fpr(v, m, fpr) for v, m in zip(vectors, members, strict=True)]
            tp = sum(round(p.tpr * int(m.sum())) for p, m in zip(points, members, strict=True))
            n_pos = int(is_member.sum())
            low, high = clopper_pearson(tp, n_pos, 0.95)
            cells.append(f"{tp / n_pos:.3f} [{low:.3f},{high:.3f}]")
        print(f"{label:<18} {np.mean(aucs):.3f}±{np.std(aucs):.3f} {cells[0]:>24} {cells[1]:>24}")
    total = [a[0] for a in audits]
    print(
        f"  sweep audit (target + {max(ks)} references + all attacks): {np.mean(total):.1f} ± "
        f"{np.std(total):.1f} s per target"
    )
    if name != "location":
        return
    # The figure to compare with ML Privacy Meter (Location only): one fresh audit, nothing
    # cached, the loss attack and offline RMIA with 4 references, target training included.
    with tempfile.TemporaryDirectory() as fresh:
        split = make(data.n_records, seed=0)
        started = time.perf_counter()
        trained = recipe.train(data, split.members, seed=1000, eval_indices=split.nonmembers)
        target = TorchTarget(trained.model, n_classes=data.n_classes, access="logits")
        setup = ReferenceSetup(recipe=recipe, cache_dir=Path(fresh), seed=0, queries=queries)
        entries = ["loss", {"name": "rmia", "online": False, "num_references": 4}]
        run_audit(target, data, split, attacks=entries, references=setup)
        print(
            f"  one audit from scratch (target + 4 references + loss and offline RMIA): "
            f"{time.perf_counter() - started:.1f} s"
        )


def main() -> None:
    warnings.filterwarnings("ignore", category=LowFprResolutionWarning)
    warnings.filterwarnings("ignore", category=SmallSliceWarning)
    warnings.filterwarnings("ignore", category=ReferenceCoverageWarning)  # K = 1
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="location")
    parser.add_argument("--ks", default=None, help="default 1,2,4,8 (Location), 1,2,4 (CIFAR)")
    parser.add_argument("--targets", type=int, default=None, help="default 3 (Location), 1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--queries", default="auto", help="references.queries")
    parser.add_argument("--reseed", type=int, default=0, help="references.reseed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = ModelCache(args.cache_dir or Path(tmp))
        for name in args.datasets.split(","):
            if name == "location":
                ks = [int(k) for k in (args.ks or "1,2,4,8").split(",")]
                run("location", LOCATION, ks, args.targets or 3, cache, args.queries, args.reseed)
            elif name == "cifar10":
                ks = [int(k) for k in (args.ks or "1,2,4").split(",")]
                run("cifar10", CIFAR10, ks, args.targets or 1, cache, args.queries, args.reseed)
            else:
                raise SystemExit(f"unknown data set {name!r}")


if __name__ == "__main__":
    main()
