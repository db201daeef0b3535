"""Throughput of miaudit's trainer against the shortest honest PyTorch loop.

Reference-model attacks train dozens of models, so the trainer must not be slower than
what anyone would write by hand. For each case this script times
:func:`miaudit.models.train_model` and a minimal loop (same network, initial weights,
optimiser, learning-rate schedule, batch size and data) and prints records per second as
mean ± std over repeats, and the ratio ours / hand-written (goal: at least 0.9).

The hand-written loop comes in two forms. "bare" does only the optimisation steps.
"+ accuracy" also measures training accuracy afterwards with one eval-mode pass over the
training records, as ``train_model`` does (it must report ``train_accuracy``); that is the
like-for-like comparison, and the one the 0.9 goal applies to. Against the bare loop,
``train_model`` pays for that pass, plus input validation and a probe forward pass: for a
single epoch of a conv net on a CPU the accuracy pass alone costs about half an epoch
(BatchNorm, ReLU and max-pool forward passes dominate and the backward pass is cheap), so
the bare ratio is low there by construction; for multi-epoch runs it fades.

Run::

    OMP_NUM_THREADS=1 python benchmarks/trainer_throughput.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import miaudit
from miaudit.models import TrainingConfig, build_model, train_model


@dataclass(frozen=True)
class Case:
    name: str
    architecture: str
    arch_params: dict
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    config: TrainingConfig


def _cases() -> list[Case]:
    rng = np.random.default_rng(0)
    # Location (Shokri et al. 2017): 446 binary features, 30 classes; the MLP of ML-Leaks.
    loc_x = (rng.random((2505, 446)) < 0.25).astype(np.float32)
    loc_y = rng.integers(0, 30, 2505).astype(np.int64)
    # CIFAR-shaped images, 10 classes.
    img_x = rng.random((5000, 3, 32, 32), dtype=np.float32)
    img_y = rng.integers(0, 10, 5000).astype(np.int64)
    return [
        Case(
            "location-mlp 446-128-30 tanh, 2505 records, batch 256, 20 epochs",
            "mlp",
            {"hidden": (128,), "activation": "tanh"},
            loc_x,
            loc_y,
            30,
            TrainingConfig(epochs=20, batch_size=256, lr=0.05, device="cpu"),
        ),
        Case(
            "small_cnn 32-64-128, 5000 CIFAR-shaped images, batch 256, 1 epoch",
            "small_cnn",
            {},
            img_x,
            img_y,
            10,
            TrainingConfig(epochs=1, batch_size=256, lr=0.05, device="cpu"),
        ),
    ]


def _hand_loop(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainingConfig) -> None:
    """The loop a careful user writes: tensors in memory, shuffled slices, SGD, cosine."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    n = len(yt)
    steps_per_epoch = -(-n // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(0)
    model.train()
    step = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for lo in range(0, n, cfg.batch_size):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1 + np.cos(np.pi * step / total))
            idx = order[lo : lo + cfg.batch_size]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1


def _hand_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    correct = 0
    with torch.inference_mode():
        for lo in range(0, len(yt), 256):
            correct += int((model(xt[lo : lo + 256]).argmax(1) == yt[lo : lo + 256]).sum())
    return correct / len(yt)


def _hand_loop_with_accuracy(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainingConfig
) -> None:
    _hand_loop(model, x, y, cfg)
    _hand_accuracy(model, x, y)


def _time(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _rates(case: Case, repeats: int) -> dict[str, list[float]]:
    records = case.config.epochs * len(case.y)

    def fresh() -> torch.nn.Module:
        return build_model(
            case.architecture,
            input_shape=case.x.shape[1:],
            n_classes=case.n_classes,
            seed=0,
            **case.arch_params,
        )

    runners: dict[str, Callable[[torch.nn.Module], object]] = {
        "miaudit train_model": lambda m: train_model(m, case.x, case.y, case.config, seed=0),
        "hand loop, bare": lambda m: _hand_loop(m, case.x, case.y, case.config),
        "hand loop + accuracy": lambda m: _hand_loop_with_accuracy(m, case.x, case.y, case.config),
    }
    rates: dict[str, list[float]] = {name: [] for name in runners}
    # One untimed round warms up allocators and kernels; then the three alternate, so that
    # a change in machine load hits them alike.
    for run in runners.values():
        run(fresh())
    for _ in range(repeats):
        for name, run in runners.items():
            model = fresh()
            rates[name].append(records / _time(lambda run=run, model=model: run(model)))
    return rates


def _fmt(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):9.0f} ± {sd:6.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"miaudit {miaudit.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores")
    print(f"torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()}")
    print(f"repeats: {args.repeats} (records/s, mean ± std)\n")
    for case in _cases():
        rates = _rates(case, args.repeats)
        ours = statistics.mean(rates["miaudit train_model"])
        print(case.name)
        for name, values in rates.items():
            print(f"  {name:22s} {_fmt(values)} records/s")
        like = ours / statistics.mean(rates["hand loop + accuracy"])
        bare = ours / statistics.mean(rates["hand loop, bare"])
        verdict = "ok" if like >= 0.9 else "BELOW 0.9"
        print(f"  ratio vs hand + accuracy  {like:.3f}  ({verdict}; goal >= 0.9)")
        print(f"  ratio vs bare hand loop   {bare:.3f}\n")


if __name__ == "__main__":
    main()
