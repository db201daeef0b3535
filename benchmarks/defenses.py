"""Defenses and their price: the sweep table on Location (and CIFAR-10 LeNet-5), with canary
audits of the DP settings.

Each setting is a whole audit through :func:`miaudit.sweep.run_sweep` on the reference-power
benchmark's target (same recipe, same split): training defenses change the recipe (the
references train the same way), output defenses wrap the target's answers (the references
answer through the same wrappers). Attacks: loss, offline RMIA with 4 references, and the
label-only gap, augmentation and boundary attacks, so that confidence masking is attacked
by what it leaves. Printed per setting: test accuracy, the strongest attack's AUC and TPR
at 1 % FPR with intervals, the best held-out ε lower bound, the accountant's ε for DP-SGD,
training seconds; then, for the baseline and the DP settings, Steinke et al.'s one-run
canary audit (500 mislabelled canaries) next to the accountant's ε.

    python benchmarks/defenses.py                       # Location
    python benchmarks/defenses.py --datasets cifar10    # CIFAR-10 LeNet-5 (about an hour)

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
from miaudit.config import parse_config
from miaudit.data import load_dataset
from miaudit.dp_audit import add_canaries, one_run_audit
from miaudit.models import TorchRecipe, TrainingConfig
from miaudit.sweep import run_sweep, sweep_table

#: Settings: (label, training changes, architecture changes, output defenses).
SETTINGS = [
    ("baseline", {}, {}, []),
    ("weight decay 5e-3", {"weight_decay": 5e-3}, {}, []),
    ("dropout 0.5", {}, {"dropout": 0.5}, []),
    ("label smoothing 0.2", {"label_smoothing": 0.2}, {}, []),
    ("mixup 0.4", {"mixup_alpha": 0.4}, {}, []),
    ("DP-SGD eps 8", {"dp_target_epsilon": 8.0, "dp_max_grad_norm": 1.0}, {}, []),
    ("DP-SGD eps 1", {"dp_target_epsilon": 1.0, "dp_max_grad_norm": 1.0}, {}, []),
    ("top-1", {}, {}, [{"name": "top_k", "k": 1}]),
    ("rounding 1", {}, {}, [{"name": "rounding", "decimals": 1}]),
    ("temperature 5", {}, {}, [{"name": "temperature", "temperature": 5.0}]),
    ("labels only", {}, {}, [{"name": "label_only"}]),
]

ATTACKS = [
    "loss",
    {"name": "rmia", "online": False, "num_references": 4},
    "gap",
    {"name": "augmentation", "n_augmentations": 16},
    {"name": "boundary", "query_budget": 200},
]


def _config(name: str, recipe: TorchRecipe, split, cache_dir: Path) -> dict:
    training = recipe.training.to_dict()
    training["device"] = "cpu"
    return {
        "dataset": name,
        "split": {"indices_file": None},
        "target": {
            "recipe": {
                "architecture": recipe.architecture,
                "params": dict(recipe.arch_params),
                "training": training,
                "seed": 1000,
            }
        },
        "attacks": ATTACKS,
        "references": {"cache_dir": str(cache_dir)},
        "sweep": [
            {"label": label, "training": t, "params": p, "defenses": d}
            for label, t, p, d in SETTINGS
        ],
    }


def run(name: str, cache_dir: Path, tmp: Path, out: Path | None = None) -> None:
    data = load_dataset(name)
    recipe = LOCATION if name == "location" else CIFAR10
    split = (location_split if name == "location" else cifar_split)(data.n_records, seed=0)
    np.savez(
        tmp / f"{name}-split.npz",
        members=split.members,
        nonmembers=split.nonmembers,
        population=split.population,
    )
    raw = _config(name, recipe, split, cache_dir)
    raw["split"] = {"indices_file": str(tmp / f"{name}-split.npz")}
    config = parse_config(raw, source=f"{name} sweep")
    started = time.perf_counter()
    result = run_sweep(config)
    print(f"\n## {name}: {len(SETTINGS)} settings, {time.perf_counter() - started:.0f} s")
    if out is not None:
        from miaudit.report.sweep_report import write_sweep_report

        paths = write_sweep_report(result, out / name)
        print(f"  report: {paths['html']}, plot: {paths['plot']}")
    for cells in sweep_table(result.rows):
        print(" | ".join(cells))
    # Canary audits (Steinke et al.'s one run) of the baseline and the DP-SGD settings.
    sources = split.population[:500]
    grown, canaries = add_canaries(data, sources, "mislabelled", seed=0)
    print("\none-run canary audit (500 mislabelled canaries, 95 %):")
    for label, training, _, _ in SETTINGS:
        if label != "baseline" and "dp_target_epsilon" not in training:
            continue
        settings = {**recipe.training.to_dict(), **training, "device": "cpu"}
        audited = TorchRecipe(
            architecture=recipe.architecture,
            arch_params=recipe.arch_params,
            training=TrainingConfig(**settings),
        )
        t0 = time.perf_counter()
        audit = one_run_audit(audited, grown, split.members, canaries, seed=0)
        accountant = "-" if audit.accountant_epsilon is None else f"{audit.accountant_epsilon:.2f}"
        print(
            f"  {label:<16} empirical ε ≥ {audit.epsilon_lower:.2f} (accountant ε {accountant}; "
            f"{audit.details['correct']} of {audit.details['guesses']} guesses right; "
            f"{time.perf_counter() - t0:.0f} s)"
        )


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="location")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "miaudit")
    parser.add_argument("--out", type=Path, default=None, help="write each sweep report here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            run(name.strip(), args.cache_dir, Path(tmp), args.out)


if __name__ == "__main__":
    main()
