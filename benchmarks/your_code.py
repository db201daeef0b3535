"""Your model, your training code: reference attacks on models miaudit did not train.

Three parts, each printing what the issue asks for:

1. ``location``: ML Privacy Meter's Location protocol (3,757 audited records, half of them
   members; the last 1,253 records are the population). The target is trained by a
   user-style function that reproduces another tool's trainer, not miaudit's: its own
   ``nn.Module`` (446-128-30, tanh), plain SGD without momentum, batch 256, 100 epochs,
   learning rate 0.1 with 1 % linear warm-up and the cosine decay to 0.02 of LiRA's and
   ML Privacy Meter's trainers (``0.1 cos(progress 7 pi / 16)``), batches shuffled by its
   own generator. The references are trained by the same function through
   :class:`miaudit.models.PythonRecipe`. Target: offline RMIA at K = 4 with AUC >= 0.886
   and TPR@1% >= 0.20 (what miaudit reaches on targets of its own trainer).
2. ``examples``: the worked examples at full size: the own PyTorch CNN (digits, 600 + 600
   records, K = 8) and XGBoost (breast cancer, K = 8); every reference attack against the
   loss attack's TPR at 1 % FPR.
3. ``memory``: peak resident memory of a random-forest reference pool (Location, 100 trees
   per forest, references of 1,878 records) with K = 16 and K = 100, each audit in a fresh
   process (``ru_maxrss``).

    python benchmarks/your_code.py                      # all three
    python benchmarks/your_code.py --parts location --targets 3

Torch threads are capped at ``--threads`` (default 2); run it alone.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from reference_attacks import LOCATION  # miaudit's own Location recipe
from torch import nn

import miaudit
from miaudit.audit import run_audit
from miaudit.data import load_dataset, make_split
from miaudit.data.split import AuditSplit
from miaudit.evaluation import LowFprResolutionWarning, SmallSliceWarning
from miaudit.models import PythonRecipe
from miaudit.references import ReferenceSetup
from miaudit.targets import TorchTarget, as_target

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------- the user's code


class LocationNet(nn.Module):
    """The owner's network: 446 features, 128 tanh units, 30 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(446, 128)
        self.out = nn.Linear(128, 30)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def train_like_privacy_meter(x, y, *, seed, epochs=100, lr=0.1, batch=256):
    """Plain SGD with the learning-rate curve of LiRA's and ML Privacy Meter's trainers:
    ``lr * cos(progress * 7 pi / 16) * clip(100 * progress, 0, 1)`` per step, a 1 % linear
    warm-up and a decay to ``0.195 lr`` (0.0195 for 0.1); shuffled mini-batches from the
    function's own generator. Another tool's trainer, not miaudit's."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = LocationNet()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0)
    xs, ys = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    total = epochs * math.ceil(len(xs) / batch)
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        for start in range(0, len(xs), batch):
            progress = step / total
            rate = lr * math.cos(progress * 7 * math.pi / 16) * min(max(100 * progress, 0), 1)
            for group in opt.param_groups:
                group["lr"] = rate
            idx = order[start : start + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
            opt.step()
            step += 1
    return model.eval()


# ----------------------------------------------------------------------- helpers


def location_split(n_records: int, seed: int) -> AuditSplit:
    audited = np.arange(3757)
    order = np.random.default_rng(seed).permutation(audited)
    return AuditSplit(
        np.sort(order[:1878]), np.sort(order[1878:]), np.arange(3757, n_records), seed=seed
    )


def _row(result, label: str) -> tuple[float, float, float]:
    attack = next(a for a in result.attacks if a.name == label)
    return attack.auc, attack.tpr_at_fpr[0.01].tpr, attack.tpr_at_fpr[0.001].tpr


def _print_attacks(result) -> None:
    loss_tpr = _row(result, "loss")[1]
    print(f"    {'attack':<16} {'AUC':>6} {'TPR@1%':>7} {'TPR@0.1%':>9} {'x loss@1%':>9}")
    for attack in result.attacks:
        auc, tpr1, tpr01 = _row(result, attack.name)
        ratio = tpr1 / loss_tpr if loss_tpr > 0 else float("inf")
        print(f"    {attack.name:<16} {auc:6.3f} {tpr1:7.3f} {tpr01:9.3f} {ratio:9.1f}")


def _attacks(k: int) -> list:
    return [
        "loss",
        {"name": "rmia", "online": False, "num_references": k},
        {"name": "rmia", "online": True, "num_references": k},
        {"name": "lira", "online": False, "num_references": k},
        {"name": "lira", "online": True, "num_references": k},
    ]


# ----------------------------------------------------------------------- parts


def part_location(n_targets: int, cache_dir: Path) -> None:
    data = load_dataset("location")
    recipe = PythonRecipe(train_like_privacy_meter)
    print("\n## Location, a target trained by a user-style function (another tool's recipe)")
    for t in range(n_targets):
        split = location_split(data.n_records, seed=t)
        started = time.perf_counter()
        model = train_like_privacy_meter(
            data.x[split.members], data.y[split.members], seed=1000 + t
        )
        target = TorchTarget(model, n_classes=data.n_classes, access="logits")
        setup = ReferenceSetup(recipe=recipe, cache_dir=cache_dir, seed=t)
        result = run_audit(target, data, split, attacks=_attacks(4), references=setup)
        refs = result.target["references"]
        match = refs["recipe_match"]
        print(
            f"  target {t}: train acc {match['target']['train_accuracy']:.3f} test "
            f"{match['target']['test_accuracy']:.3f} | references train "
            f"{match['mean']['train_accuracy']:.3f} test {match['mean']['test_accuracy']:.3f}, "
            f"{match['n_matched']}/4 matched, deterministic "
            f"{refs['determinism']['deterministic']} | audit {time.perf_counter() - started:.1f} s"
        )
        _print_attacks(result)
        # Before user code: references by miaudit's nearest own recipe (cosine to 0, no
        # warm-up, its MLP) on the same target.
        own = replace(LOCATION, training=replace(LOCATION.training, schedule="cosine"))
        setup = ReferenceSetup(recipe=own, cache_dir=cache_dir, seed=t)
        other = run_audit(target, data, split, attacks=_attacks(4), references=setup)
        match = other.target["references"]["recipe_match"]
        print(
            f"    same target, references by miaudit's own cosine recipe: train "
            f"{match['mean']['train_accuracy']:.3f} test {match['mean']['test_accuracy']:.3f}, "
            f"{match['n_matched']}/4 matched"
        )
        _print_attacks(other)


def part_examples(cache_dir: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples" / "own_pytorch_cnn"))
    from train_cnn import train as train_cnn

    print("\n## Example (a): own PyTorch CNN and loop, digits 600 + 600, K = 8")
    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=600, n_nonmembers=600, seed=0, labels=data.y)
    model = train_cnn(data.x[split.members], data.y[split.members], seed=0)
    target = TorchTarget(model, n_classes=10, access="logits")
    setup = ReferenceSetup(recipe=PythonRecipe(train_cnn), cache_dir=cache_dir, population_size=597)
    started = time.perf_counter()
    result = run_audit(target, data, split, attacks=_attacks(8), references=setup)
    print(f"  audit {time.perf_counter() - started:.1f} s")
    _print_attacks(result)

    print("\n## Example (b): XGBoost, breast cancer 200 + 200, K = 8")
    import xgboost

    from miaudit.models import SklearnRecipe

    data = load_dataset("breast_cancer")
    split = make_split(data.n_records, n_members=200, n_nonmembers=200, n_population=169)
    recipe = SklearnRecipe(
        xgboost.XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.3, n_jobs=1)
    )
    trained = recipe.train(data, split.members, seed=0)
    target = as_target(trained.model, n_classes=data.n_classes)
    setup = ReferenceSetup(recipe=recipe, cache_dir=cache_dir)
    started = time.perf_counter()
    result = run_audit(target, data, split, attacks=_attacks(8), references=setup)
    print(f"  audit {time.perf_counter() - started:.1f} s")
    _print_attacks(result)


MEMORY_CHILD = """
import json, resource, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(2)
from sklearn.ensemble import RandomForestClassifier
from miaudit.audit import run_audit
from miaudit.data import load_dataset
from miaudit.models import SklearnRecipe
from miaudit.references import ReferenceSetup
from miaudit.targets import as_target
sys.path.insert(0, sys.argv[3])
from your_code import location_split
k, cache = int(sys.argv[1]), sys.argv[2]
data = load_dataset("location")
split = location_split(data.n_records, 0)
recipe = SklearnRecipe(RandomForestClassifier(n_estimators=100, n_jobs=2))
target = as_target(recipe.train(data, split.members, seed=1).model, n_classes=30)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = run_audit(target, data, split, attacks=["loss", {"name": "rmia", "num_references": k}],
                   references=ReferenceSetup(recipe=recipe, cache_dir=cache))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"k": k, "peak_mb": peak / 1024, "before_mb": before / 1024}))
"""


def part_memory(cache_dir: Path) -> None:
    print("\n## Memory: random-forest pools (Location, 100 trees, 1,878 records each)")
    for k in (16, 100):
        started = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_CHILD,
                str(k),
                str(cache_dir / f"rf{k}"),
                str(Path(__file__).parent),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  K = {k:>3}: peak RSS {figures['peak_mb']:.0f} MB (process before the audit "
            f"{figures['before_mb']:.0f} MB), {time.perf_counter() - started:.0f} s"
        )


def main() -> None:
    warnings.filterwarnings("ignore", category=LowFprResolutionWarning)
    warnings.filterwarnings("ignore", category=SmallSliceWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="location,examples,memory")
    parser.add_argument("--targets", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        parts = args.parts.split(",")
        if "location" in parts:
            part_location(args.targets, cache)
        if "examples" in parts:
            part_examples(cache)
        if "memory" in parts:
            part_memory(cache)


if __name__ == "__main__":
    main()
