"""The two ends of attacker access: white-box against black-box, label-only against
confidence-based, on the reference-power benchmark's targets.

One target per data set, audited by every family at equal attacker knowledge where that is
possible: the reference attacks (LiRA, RMIA) and the white-box attack (Nasr et al.,
``train_on: references``) learn from the same 4 reference models; the label-only attacks
see predicted classes only. Printed per attack: AUC with DeLong's 95 % interval, TPR at 1 %
and 0.1 % FPR with Clopper-Pearson intervals, wall time of fit and score, the memory of the
white-box features, and label queries per record.

Protocols (``benchmarks/reference_power.py``):

* ``location``: 1,878 members and 1,879 non-members audited, 1,253 population; MLP
  446-128-30 tanh, SGD lr 0.1, 100 epochs.
* ``cifar10``: 5,000 + 5,000 audited, 10,000 population; LeNet-5, 40 epochs (slow on a
  CPU: about 15 minutes with the references; cached for reruns).

    python benchmarks/access_levels.py                     # Location
    python benchmarks/access_levels.py --datasets cifar10  # CIFAR-10 LeNet-5

Torch threads are capped at ``--threads`` (default 2); the benchmark should run alone.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from reference_attacks import LOCATION
from reference_power import CIFAR10, cifar_split, location_split

import miaudit
from miaudit.attacks import (
    AugmentationAttack,
    BoundaryDistanceAttack,
    GradientNormAttack,
    WhiteBoxAttack,
)
from miaudit.attacks.registry import AttackSpec
from miaudit.audit import run_audit
from miaudit.data import load_dataset
from miaudit.evaluation import LowFprResolutionWarning, SmallSliceWarning
from miaudit.references import ReferenceSetup
from miaudit.targets import LabelOnlyTarget, TorchTarget

K = 4


def attack_specs() -> tuple[list[AttackSpec], list[AttackSpec]]:
    """(attacks on the white-box target, attacks on its label-only view)."""
    full = [
        AttackSpec("loss", "loss"),
        AttackSpec("rmia_offline@4", {"name": "rmia", "online": False}, K),
        AttackSpec("lira_offline@4", {"name": "lira", "online": False}, K),
        AttackSpec("nasr_whitebox@4", WhiteBoxAttack(), K),
        AttackSpec("nasr_blackbox@4", WhiteBoxAttack(gradients_to_exploit=()), K),
        AttackSpec("boundary_gradient", BoundaryDistanceAttack(method="gradient")),
        AttackSpec("gradient_norm", GradientNormAttack(layers=())),
    ]
    labels = [
        AttackSpec("gap", "gap"),
        AttackSpec("augmentation", AugmentationAttack()),
        AttackSpec("augmentation_refs@4", AugmentationAttack(combine="references"), K),
        AttackSpec("boundary", BoundaryDistanceAttack(query_budget=200)),
    ]
    return full, labels


def _resolve(specs: list[AttackSpec]) -> list:
    """Names and mappings become configured attacks; estimators stay (we read them later)."""
    from miaudit.attacks.registry import as_attack_spec

    out = []
    for spec in specs:
        if isinstance(spec.attack, str | dict):
            built = as_attack_spec(spec.attack)
            out.append(AttackSpec(spec.label, built.attack, spec.num_references))
        else:
            out.append(spec)
    return out


def _row(attack, details: dict, extra: str) -> str:
    low, high = attack.auc_ci
    cells = []
    for fpr in (0.01, 0.001):
        p = attack.tpr_at_fpr[fpr]
        cells.append(f"{p.tpr:.3f} [{p.ci_low:.3f},{p.ci_high:.3f}]")
    queries = details.get(attack.name, {}).get("queries_per_record")
    q = f"{queries['mean']:.0f}" if queries else "-"
    return (
        f"{attack.name:<22} {attack.auc:.3f} [{low:.3f},{high:.3f}] {cells[0]:>22} "
        f"{cells[1]:>22} {attack.seconds:>7.1f} {q:>6} {extra}"
    )


def run(name: str, cache_dir: Path) -> None:
    data = load_dataset(name)
    recipe = LOCATION if name == "location" else CIFAR10
    split = (location_split if name == "location" else cifar_split)(data.n_records, seed=0)
    started = time.perf_counter()
    trained = recipe.train(data, split.members, seed=1000, eval_indices=split.nonmembers)
    print(
        f"\n## {name}: target {recipe.architecture}, train acc {trained.train_accuracy:.3f}, "
        f"test acc {trained.test_accuracy:.3f} ({trained.seconds:.0f} s)"
    )
    setup = ReferenceSetup(recipe=recipe, cache_dir=cache_dir, seed=0)
    full, labels = (_resolve(s) for s in attack_specs())
    target = TorchTarget(trained.model, n_classes=data.n_classes)
    print(
        f"{'attack':<22} {'AUC [95% CI]':>19} {'TPR@1% [95% CI]':>22} {'TPR@0.1% [95% CI]':>22} "
        f"{'s':>7} {'q/rec':>6}"
    )
    for view, specs in ((target, full), (LabelOnlyTarget(target), labels)):
        result = run_audit(view, data, split, attacks=specs, references=setup)
        details = result.target.get("attack_details", {})
        for spec, attack in zip(specs, result.attacks, strict=True):
            extra = ""
            if isinstance(spec.attack, WhiteBoxAttack):
                extra = f"features {spec.attack.feature_bytes_ / 2**20:.1f} MiB (target)"
            print(_row(attack, details, extra))
    print(f"  whole run {time.perf_counter() - started:.0f} s")


def main() -> None:
    warnings.filterwarnings("ignore", category=LowFprResolutionWarning)
    warnings.filterwarnings("ignore", category=SmallSliceWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="location")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "miaudit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
        f"{platform.machine()}, {torch.get_num_threads()} threads"
    )
    for name in args.datasets.split(","):
        run(name.strip(), args.cache_dir)


if __name__ == "__main__":
    main()
