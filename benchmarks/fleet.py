"""Reference fleets: models per hour by executor, and the memory of an audit by fleet size.

For Location's MLP and CIFAR-10's LeNet-5 (the recipes of the reference-power benchmark,
trained on that benchmark's audited records), a fresh pool of models is trained by each
way miaudit has: one after another in this process (all ``--threads`` threads), a local
process pool and Ray (2 workers of ``--threads / 2`` threads each), and the batched
ensemble (forced on, also for LeNet-5, whose ``auto`` rule it measures; the small CNN,
``--datasets cifar10-small-cnn``, only one by one against batched). Nothing comes
from a cache: each run has a fresh one. Then the peak resident memory of a whole Location
audit (offline RMIA) with 8 and with 64 references, each in a fresh process, and the wall
time of the same audit again with the models and their answers cached (it queries no
reference model).

    python benchmarks/fleet.py                         # both data sets
    python benchmarks/fleet.py --datasets location     # a minute or two
    python benchmarks/fleet.py --datasets cifar10-small-cnn --memory-ks ""  # the CNN rule
    # On a GPU (recipes train on CUDA when one is present), the issue's 64-model run:
    python benchmarks/fleet.py --datasets cifar10-small-cnn --memory-ks "" \
        --small-cnn-models 64 --precision bfloat16

Run it alone: two torch processes on two cores slow each other 10-100x.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from reference_attacks import CIFAR10 as SHADOW_CIFAR10
from reference_attacks import LOCATION
from reference_power import CIFAR10, cifar_split, location_split

import miaudit
from miaudit.compute import ModelCache, ReferencePool
from miaudit.compute.ensemble import ENSEMBLE_ARCHITECTURES
from miaudit.compute.executors import InProcessExecutor, ProcessPoolExecutor, RayExecutor
from miaudit.data import load_dataset
from miaudit.models.training import resolve_device


def _modes(threads: int, mlp: bool) -> list[tuple[str, object, str]]:
    per_worker = max(1, threads // 2)
    modes = [
        (f"sequential, in process ({threads} threads)", InProcessExecutor(), "off"),
        (
            f"process pool, 2 workers x {per_worker} thread(s)",
            ProcessPoolExecutor(2, threads_per_worker=per_worker),
            "off",
        ),
    ]
    try:
        modes.append(
            (
                f"Ray, 2 workers x {per_worker} thread(s)",
                RayExecutor(2, threads_per_worker=per_worker),
                "off",
            )
        )
    except Exception as error:  # Ray missing: say so and go on
        print(f"  (Ray skipped: {error})")
    if mlp:
        modes.append((f"batched ensemble, in process ({threads} threads)", None, "on"))
    return modes


#: The small CNN (BatchNorm) of the shadow / reference benchmarks, for the ensemble rule:
#: CIFAR-10 widths 16-32-64, 2 epochs (the rule compares speeds, not models).
SMALL_CNN = replace(
    SHADOW_CIFAR10, training=replace(SHADOW_CIFAR10.training, epochs=2, augment=False)
)


def throughput(name: str, n_models: int, threads: int, precision: str = "float32") -> None:
    small_cnn = name == "cifar10-small-cnn"
    data = load_dataset("cifar10" if small_cnn else name)
    recipe = {"location": LOCATION, "cifar10": CIFAR10}.get(name, SMALL_CNN)
    recipe = replace(recipe, training=replace(recipe.training, precision=precision))
    split = (location_split if name == "location" else cifar_split)(data.n_records, seed=0)
    candidates = np.concatenate([split.members, split.nonmembers])
    print(
        f"\n## {name}: {recipe.architecture}, {recipe.training.epochs} epochs, {n_models} "
        f"models on {candidates.size // 2} records each, {precision}, "
        f"{resolve_device(recipe.training.device)}"
    )
    print(f"{'executor':<48} {'seconds':>8} {'models/hour':>12}")
    batched = recipe.architecture in ENSEMBLE_ARCHITECTURES
    modes = _modes(threads, batched)
    if small_cnn:  # the ensemble rule only: one by one against batched
        modes = [modes[0], modes[-1]]
    for label, executor, ensemble in modes:
        with tempfile.TemporaryDirectory() as cache_dir:
            pool = ReferencePool(
                recipe,
                data,
                candidates,
                n_models=n_models,
                seed=7,
                cache=ModelCache(cache_dir),
                ensemble=ensemble,
                executor=executor,
            )
            started = time.perf_counter()
            pool.train()
            seconds = time.perf_counter() - started
        print(f"{label:<48} {seconds:>8.1f} {n_models / seconds * 3600:>12.0f}", flush=True)


def memory_run(k: int, cache_dir: str) -> None:
    """One Location audit with ``k`` references (called in a fresh process)."""
    from miaudit.audit import run_audit
    from miaudit.references import ReferenceSetup
    from miaudit.targets import TorchTarget

    warnings.filterwarnings("ignore")
    data = load_dataset("location")
    split = location_split(data.n_records, seed=0)
    target = LOCATION.train(data, split.members, seed=1000).model
    started = time.perf_counter()
    run_audit(
        TorchTarget(target, n_classes=data.n_classes, access="logits"),
        data,
        split,
        attacks=[{"name": "rmia", "online": False, "num_references": k}],
        references=ReferenceSetup(recipe=LOCATION, cache_dir=Path(cache_dir)),
    )
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{k} {peak_mb:.0f} {seconds:.1f}")


def memory(ks: list[int], threads: int) -> None:
    print("\n## Location audit (offline RMIA): peak memory by number of references")
    print(f"{'references':>10} {'peak RSS (MB)':>14} {'audit s':>8} {'again, cached s':>16}")
    for k in ks:
        with tempfile.TemporaryDirectory() as cache_dir:
            rows = []
            for _ in range(2):  # the second run finds models and answers in the cache
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--memory-run",
                        str(k),
                        "--cache-dir",
                        cache_dir,
                        "--threads",
                        str(threads),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append(out.stdout.split()[-3:])
        (_, peak, first), (_, _, second) = rows
        print(f"{k:>10} {peak:>14} {first:>8} {second:>16}", flush=True)


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="location,cifar10")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--location-models", type=int, default=16)
    parser.add_argument("--cifar-models", type=int, default=4)
    parser.add_argument("--small-cnn-models", type=int, default=4)
    parser.add_argument(
        "--precision", default="float32", help="float32, or bfloat16 (mixed precision)"
    )
    parser.add_argument("--memory-ks", default="8,64")
    parser.add_argument("--memory-run", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_run is not None:
        memory_run(args.memory_run, args.cache_dir)
        return
    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )
    for name in args.datasets.split(","):
        name = name.strip()
        n = {"location": args.location_models, "cifar10": args.cifar_models}.get(
            name, args.small_cnn_models
        )
        throughput(name, n, args.threads, args.precision)
    if "location" in args.datasets and args.memory_ks:
        memory([int(k) for k in args.memory_ks.split(",")], args.threads)


if __name__ == "__main__":
    main()
