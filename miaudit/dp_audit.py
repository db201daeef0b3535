"""Auditing differential privacy with canaries: empirical lower bounds on ε to put next to
the accountant's upper bound.

A canary is a record the training may or may not include, built to be easy to recognise
when included: a mislabelled record (its label changed to another class) or an
out-of-distribution one (uniform noise with a random label). Two protocols:

- **One run** (Steinke, Nasr and Jagielski, NeurIPS 2023): ``m`` canaries, each included
  independently with probability 1/2 in a *single* training run. The auditor ranks the
  canaries by a membership score, guesses "in" for the ``k+`` highest and "out" for the
  ``k-`` lowest, and counts the correct guesses ``v`` of ``r = k+ + k-``. For an
  (ε, δ)-DP training, ``P[v correct] <= P[Binomial(r, e^ε / (1 + e^ε)) >= v] + 2 m δ α``
  (their Theorem 3 with the α of their Algorithm 2); the ε lower bound at confidence
  ``1 - β`` is the largest ε that this p-value rejects, found by bisection. Several
  ``(k+, k-)`` are tried and β is split among them (Bonferroni), so trying does not
  inflate the bound.
- **Classic** (Jagielski, Ullman and Oprea, NeurIPS 2020): ``n_models`` training runs, half
  with all canaries and half without; one score per run (the canaries' mean membership
  score); ε from one-sided Clopper-Pearson bounds on the FPR and FNR of a threshold chosen
  on half of the runs and applied to the other half (:func:`~miaudit.evaluation.epsilon_bound`).

Both report the accountant's ε of the runs when the recipe trains with DP-SGD, which the
empirical bound may approach but, if the accountant and the training are right, never
exceed (a test checks this for several settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binom

from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.validation import is_int, is_real

__all__ = [
    "CanaryAudit",
    "add_canaries",
    "classic_canary_audit",
    "one_run_audit",
    "one_run_epsilon",
    "one_run_p_value",
]

_KINDS = ("mislabelled", "ood")


@dataclass(frozen=True)
class CanaryAudit:
    """The result of a canary audit.

    ``epsilon_lower`` holds with probability at least ``confidence``; ``accountant_epsilon``
    is the DP-SGD accountant's ε at ``delta`` (None for a non-private recipe).
    """

    method: str
    epsilon_lower: float
    confidence: float
    delta: float
    n_canaries: int
    accountant_epsilon: float | None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "epsilon_lower_bound": self.epsilon_lower,
            "confidence": self.confidence,
            "delta": self.delta,
            "n_canaries": self.n_canaries,
            "accountant_epsilon": self.accountant_epsilon,
            **self.details,
        }


def add_canaries(
    dataset: Dataset, sources: np.ndarray, kind: str = "mislabelled", *, seed: int = 0
) -> tuple[Dataset, np.ndarray]:
    """A copy of ``dataset`` with one canary per record of ``sources`` appended.

    ``mislabelled``: the source record with its label moved to another class (uniformly);
    ``ood``: uniform noise over the data's value range, shaped like a record, with a random
    label. Returns the new data set and the canaries' indices in it.
    """
    if kind not in _KINDS:
        raise InvalidAuditInput(f"canary kind must be one of {_KINDS}, got {kind!r}")
    src = np.asarray(sources, np.int64)
    if src.ndim != 1 or src.size == 0 or src.min() < 0 or src.max() >= dataset.n_records:
        raise InvalidAuditInput("sources must be a non-empty 1-d array of record indices")
    rng = np.random.default_rng(seed)
    c = dataset.n_classes
    if kind == "mislabelled":
        x = dataset.x[src].copy()
        y = (dataset.y[src] + rng.integers(1, c, src.size)) % c
    else:
        low, high = float(dataset.x.min()), float(dataset.x.max())
        x = rng.uniform(low, high, (src.size, *dataset.input_shape)).astype(np.float32)
        y = rng.integers(0, c, src.size)
    grown = Dataset(
        name=f"{dataset.name}+{src.size} {kind} canaries",
        x=np.concatenate([dataset.x, x.astype(np.float32)]),
        y=np.concatenate([dataset.y, y.astype(np.int64)]),
        n_classes=c,
        class_names=dataset.class_names,
        source=dataset.source,
    )
    return grown, np.arange(dataset.n_records, grown.n_records)


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P-value of ``v`` or more correct guesses of ``r`` under (ε, δ)-DP, ``m`` canaries."""
    q = 1.0 / (1.0 + math.exp(-epsilon))  # accuracy of ε-DP randomised response
    beta = float(binom.sf(v - 1, r, q))
    if delta == 0 or v == 0:
        return min(1.0, beta)
    # α = max over i of P[v - i <= Binomial(r, q) < v] / i, all i at once.
    below = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # pmf(v-1), pmf(v-2), ..., pmf(0)
    alpha = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(1.0, beta + alpha * delta * 2 * m)


def one_run_epsilon(m: int, r: int, v: int, delta: float, beta: float) -> float:
    """Largest ε rejected at level ``beta`` by :func:`one_run_p_value` (0 if none)."""
    if r == 0 or one_run_p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    low, high = 0.0, 1.0
    while one_run_p_value(m, r, v, high, delta) < beta:
        low, high = high, high * 2
        if high > 200:
            return math.inf
    for _ in range(60):
        mid = (low + high) / 2
        if one_run_p_value(m, r, v, mid, delta) < beta:
            low = mid
        else:
            high = mid
    return low


def _check_common(m: int, confidence: float, delta: float, problems: list[str]) -> None:
    if not is_real(confidence) or not 0.5 <= confidence < 1:
        problems.append(f"confidence must lie in [0.5, 1), got {confidence!r}")
    if not is_real(delta) or not 0 <= delta < 1:
        problems.append(f"delta must lie in [0, 1), got {delta!r}")
    if m < 2:
        problems.append(f"at least 2 canaries are needed, got {m}")


def _canary_scores(model, dataset: Dataset, canaries: np.ndarray) -> np.ndarray:
    """Membership score of each canary: minus its loss under the model."""
    from miaudit.signals import compute_signals
    from miaudit.targets import as_target

    target = as_target(model, n_classes=dataset.n_classes)
    return -compute_signals(target, dataset.x[canaries], dataset.y[canaries]).loss


def _accountant(trained) -> tuple[float | None, float | None]:
    privacy = getattr(trained, "privacy", None)
    if not privacy:
        return None, None
    return float(privacy["epsilon"]), float(privacy["delta"])


def one_run_audit(
    recipe,
    dataset: Dataset,
    train_indices: np.ndarray,
    canaries: np.ndarray,
    *,
    seed: int = 0,
    confidence: float = 0.95,
    delta: float | None = None,
    guess_fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3),
) -> CanaryAudit:
    """Steinke et al.'s audit in one training run (see the module docstring).

    ``canaries`` are indices of ``dataset`` (from :func:`add_canaries`), disjoint from
    ``train_indices``. Each is included with probability 1/2 (seeded); the model trains on
    ``train_indices`` plus the included ones. For each fraction ``f`` of
    ``guess_fractions`` the auditor guesses "in" for the top ``f m`` canaries and "out" for
    the bottom ``f m``; the reported bound is the largest over the fractions, each computed
    at level ``(1 - confidence) / len(guess_fractions)``. ``delta`` defaults to the
    recipe's DP δ (else 0: the pure-DP bound).
    """
    canaries = np.asarray(canaries, np.int64)
    problems: list[str] = []
    d = delta
    if d is None:
        training = getattr(recipe, "training", None)
        d = training.dp_delta if training is not None and training.private else 0.0
    _check_common(canaries.size, confidence, d, problems)
    if np.intersect1d(canaries, train_indices).size:
        problems.append("canaries must not be among train_indices")
    if not guess_fractions or any(not is_real(f) or not 0 < f <= 0.5 for f in guess_fractions):
        problems.append(f"guess_fractions must be numbers in (0, 0.5], got {guess_fractions!r}")
    raise_if_problems("one_run_audit", problems)
    m = canaries.size
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(11,)))
    included = rng.random(m) < 0.5
    trained = recipe.train(
        dataset, np.concatenate([train_indices, canaries[included]]), seed=int(seed)
    )
    scores = _canary_scores(trained.model, dataset, canaries)
    order = np.argsort(-scores, kind="stable")
    beta = (1.0 - confidence) / len(guess_fractions)
    trials = []
    for f in guess_fractions:
        k = max(1, int(f * m))
        guessed_in, guessed_out = order[:k], order[m - k :]
        v = int(included[guessed_in].sum() + (~included[guessed_out]).sum())
        eps = one_run_epsilon(m, 2 * k, v, d, beta)
        trials.append({"k_plus": k, "k_minus": k, "correct": v, "guesses": 2 * k, "epsilon": eps})
    best = max(trials, key=lambda t: t["epsilon"])
    accountant_eps, _ = _accountant(trained)
    return CanaryAudit(
        method="one_run",
        epsilon_lower=float(best["epsilon"]),
        confidence=float(confidence),
        delta=float(d),
        n_canaries=int(m),
        accountant_epsilon=accountant_eps,
        details={
            "k_plus": best["k_plus"],
            "k_minus": best["k_minus"],
            "correct": best["correct"],
            "guesses": best["guesses"],
            "trials": trials,
            "n_included": int(included.sum()),
            "train_accuracy": trained.train_accuracy,
        },
    )


def classic_canary_audit(
    recipe,
    dataset: Dataset,
    train_indices: np.ndarray,
    canaries: np.ndarray,
    *,
    n_models: int = 16,
    seed: int = 0,
    confidence: float = 0.95,
    delta: float | None = None,
    cache=None,
) -> CanaryAudit:
    """Jagielski et al.'s audit: ``n_models`` runs, alternately with and without all the
    canaries; one score per run; a held-out threshold; Clopper-Pearson bounds."""
    from miaudit.compute import train_or_load
    from miaudit.evaluation import calibration_mask, epsilon_bound

    canaries = np.asarray(canaries, np.int64)
    problems: list[str] = []
    d = delta
    if d is None:
        training = getattr(recipe, "training", None)
        d = training.dp_delta if training is not None and training.private else 1e-5
    _check_common(canaries.size, confidence, d, problems)
    if not is_int(n_models) or n_models < 4 or n_models % 2:
        problems.append(f"n_models must be an even int >= 4, got {n_models!r}")
    raise_if_problems("classic_canary_audit", problems)
    with_canaries = np.arange(n_models) % 2 == 0
    scores = np.empty(n_models)
    accountant = []
    for k in range(n_models):
        indices = np.concatenate([train_indices, canaries]) if with_canaries[k] else train_indices
        run_seed = int(np.random.SeedSequence(seed, spawn_key=(13, k)).generate_state(1)[0])
        if cache is not None:
            trained, _ = train_or_load(cache, recipe, dataset, indices, seed=run_seed)
        else:
            trained = recipe.train(dataset, indices, seed=run_seed)
        scores[k] = _canary_scores(trained.model, dataset, canaries).mean()
        eps, _ = _accountant(trained)
        if eps is not None:
            accountant.append(eps)
    cal = calibration_mask(with_canaries, fraction=0.5, seed=seed)
    bound = epsilon_bound(scores, with_canaries, cal, delta=d, confidence=confidence)
    return CanaryAudit(
        method="classic",
        epsilon_lower=float(bound.epsilon),
        confidence=float(confidence),
        delta=float(d),
        n_canaries=int(canaries.size),
        accountant_epsilon=max(accountant) if accountant else None,
        details={
            "n_models": int(n_models),
            "fpr_upper": bound.fpr_upper,
            "fnr_upper": bound.fnr_upper,
        },
    )
