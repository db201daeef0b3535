"""How long the reference attacks take to fit and score 60,000 records × 64 models.

Synthetic per-record Gaussian scaled logits (the LiRA model of the world), Z = 10,000
population records for RMIA, one and two queries per record. Prints the best of three
runs of fit and of score for each attack; the issue's bar is under 1 s.

    python benchmarks/scoring_speed.py
"""

from __future__ import annotations

import platform
import time

import numpy as np
import torch

import miaudit
from miaudit.attacks import RMIA, AttackR, LiRA
from miaudit.signals.observations import Observations

N_RECORDS, N_MODELS, N_POPULATION = 60_000, 64, 10_000


def _log_sigmoid(phi: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -phi)


def world(n_queries: int, seed: int = 0):
    """References, target and population answers drawn from per-record Gaussians."""
    rng = np.random.default_rng(seed)

    def draw(n: int, ids: np.ndarray):
        base = rng.normal(2.0, 2.0, (1, n, 1))
        shift = rng.uniform(0.0, 2.0, (1, n, 1))
        inclusion = rng.random((N_MODELS, n)) < 0.5
        phi = base + shift * inclusion[..., None] + rng.normal(size=(N_MODELS, n, n_queries))
        member = rng.random(n) < 0.5
        t_phi = base[0] + shift[0] * member[:, None] + rng.normal(size=(n, n_queries))
        refs = Observations(ids, phi, _log_sigmoid(phi), inclusion)
        target = Observations(ids, t_phi[None], _log_sigmoid(t_phi)[None])
        return refs, target

    refs, target = draw(N_RECORDS, np.arange(N_RECORDS))
    pop_refs, pop_target = draw(N_POPULATION, np.arange(N_RECORDS, N_RECORDS + N_POPULATION))
    return refs, target, pop_refs, pop_target


def main() -> None:
    print(
        f"miaudit {miaudit.__version__}, numpy {np.__version__}, torch {torch.__version__}, "
        f"{platform.machine()}; {N_RECORDS} records x {N_MODELS} models, Z = {N_POPULATION}"
    )
    print(f"{'queries':>7} {'attack':<24} {'fit s':>7} {'score s':>8} {'total s':>8}")
    for n_queries in (1, 2):
        refs, target, pop_refs, pop_target = world(n_queries)
        attacks = {
            "LiRA online": LiRA(online=True),
            "LiRA offline": LiRA(online=False),
            "RMIA online": RMIA(online=True),
            "RMIA offline (a tuned)": RMIA(),
            "RMIA offline (a = 0.3)": RMIA(offline_a=0.3),
            "Attack-R": AttackR(),
        }
        for name, attack in attacks.items():
            fits, scores = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                attack.fit(refs, population_references=pop_refs, population_target=pop_target)
                t1 = time.perf_counter()
                attack.score(target)
                fits.append(t1 - t0)
                scores.append(time.perf_counter() - t1)
            fit, score = min(fits), min(scores)
            print(f"{n_queries:>7} {name:<24} {fit:>7.3f} {score:>8.4f} {fit + score:>8.3f}")


if __name__ == "__main__":
    main()
