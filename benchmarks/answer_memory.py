"""Memory of the reference answers: held in memory against mapped from disk, 8 and 64 models.

The issue's case: reference models' answers on all 60,000 CIFAR-10 records under LiRA's 18
views (flips and one-pixel shifts). The models are deliberately cheap (an MLP with 16
hidden units trained for 2 epochs on 1,000 records) because what is measured is the
answers, not the models. A warm-up process trains the pool and fills the answer cache;
then each measured process, fresh, reads the pool's answers from the cache
(:meth:`ReferencePool.observe`) and fits LiRA (online) and offline RMIA on them, once with
the answers held in memory (``memory_map_above=None``) and once mapped from the cache's
disk (the default above 512 MiB; forced here for both sizes).

Two figures per run, because a mapped file's pages count in the resident set while they
are cached even though the OS may drop them at any time: the peak anonymous memory
(``RssAnon``, sampled every 5 ms: what the process itself holds) and the peak resident
set (``ru_maxrss``, mapped pages included, and loading CIFAR-10, 737 MB of float32, with
its own peak). The anonymous figure is counted from the process's memory after loading the
data set and the models.

    python benchmarks/answer_memory.py            # about 5 minutes on 2 cores

Run it alone: two torch processes on two cores slow each other 10-100x.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
import torch

import miaudit
from miaudit.attacks import RMIA, LiRA
from miaudit.compute import ModelCache, QuerySet, ReferencePool
from miaudit.data import load_dataset
from miaudit.models import TorchRecipe, TrainingConfig

RECIPE = TorchRecipe(
    architecture="mlp",
    arch_params={"hidden": (16,)},
    training=TrainingConfig(epochs=2, batch_size=128, lr=0.05, device="cpu"),
)
N_TRAIN_POOL = 2000  # candidates: each model trains on 1,000 of them
N_POPULATION = 5000  # RMIA's z, among the 60,000 observed records


def _anon_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _PeakSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _anon_mb()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, _anon_mb())


def _pool(data, n_models: int, cache_dir: str, mapped: bool | None) -> ReferencePool:
    kwargs = {} if mapped is None else {"memory_map_above": 0 if mapped else None}
    pool = ReferencePool(
        RECIPE,
        data,
        np.arange(N_TRAIN_POOL),
        n_models=n_models,
        seed=3,
        cache=ModelCache(cache_dir),
        **kwargs,
    )
    pool.train()
    return pool


def measured_run(n_models: int, cache_dir: str, mapped: bool) -> None:
    """Observe from the answer cache and fit LiRA and RMIA (in a fresh process)."""
    warnings.filterwarnings("ignore")
    data = load_dataset("cifar10")
    pool = _pool(data, n_models, cache_dir, mapped)
    records = np.arange(data.n_records)
    population = records[-N_POPULATION:]
    base_anon = _anon_mb()
    sampler = _PeakSampler()
    sampler.start()
    started = time.perf_counter()
    refs = pool.observe(records, queries=QuerySet.flips_and_shifts())
    pop_refs = pool.observe(population, queries=QuerySet.flips_and_shifts())
    from_cache = pool.answers_from_cache
    LiRA(online=True).fit(refs)
    RMIA(online=False).fit(
        refs, population_references=pop_refs, population_target=pop_refs.select_models(slice(0, 1))
    )
    seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    answers_mb = 2 * (refs.scaled_logit.nbytes + pop_refs.scaled_logit.nbytes) / 2**20
    print(
        f"RESULT {answers_mb:.0f} {sampler.peak - base_anon:.0f} "
        f"{peak_rss:.0f} {seconds:.1f} {from_cache}"
    )


def warm_up(n_models: int, cache_dir: str) -> None:
    """Train the pool and fill the answer cache (in a fresh process)."""
    warnings.filterwarnings("ignore")
    data = load_dataset("cifar10")
    pool = _pool(data, n_models, cache_dir, mapped=True)
    records = np.arange(data.n_records)
    pool.observe(records, queries=QuerySet.flips_and_shifts())
    pool.observe(records[-N_POPULATION:], queries=QuerySet.flips_and_shifts())
    print("RESULT done")


def _child(threads: int, *args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, __file__, "--threads", str(threads), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return next(line for line in out.stdout.splitlines() if line.startswith("RESULT")).split()[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="8,64")
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child is not None:
        kind, n_models, cache_dir = args.child
        if kind == "warm":
            warm_up(int(n_models), cache_dir)
        else:
            measured_run(int(n_models), cache_dir, mapped=kind == "mapped")
        return
    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads; CIFAR-10, 60,000 + {N_POPULATION:,} records x "
        "18 views"
    )
    print(
        f"{'models':>6} {'answers':>12} {'answers MB':>10} {'peak anon MB':>12} "
        f"{'peak RSS MB':>11} {'seconds':>8}"
    )
    for n_models in (int(k) for k in args.models.split(",")):
        with tempfile.TemporaryDirectory() as cache_dir:
            started = time.perf_counter()
            _child(args.threads, "--child", "warm", str(n_models), cache_dir)
            warm = time.perf_counter() - started
            for kind in ("memory", "mapped"):
                mb, anon, rss, seconds, cached = _child(
                    args.threads, "--child", kind, str(n_models), cache_dir
                )
                assert int(cached) == n_models, "answers were not read from the cache"
                label = "in memory" if kind == "memory" else "mapped"
                print(
                    f"{n_models:>6} {label:>12} {mb:>10} {anon:>12} {rss:>11} {seconds:>8}",
                    flush=True,
                )
            print(f"{'':>6} (warm-up: training and answering took {warm:.0f} s)")


if __name__ == "__main__":
    main()
