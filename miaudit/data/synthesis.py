"""Training data for shadow models when the attacker has none (Shokri et al., S&P 2017, §V-C).

Shadow models must be trained on records drawn like the target's training data. Shokri,
Stronati, Song and Shmatikov ("Membership Inference Attacks Against Machine Learning
Models", S&P 2017) give three ways to get such records without owning them:

* **model-based** (:func:`synthesize_model_based`): hill climbing in record space using only
  the target's answers, their Algorithm 1: records the target classifies as class ``c``
  with high confidence are taken to be statistically like its training records of ``c``;
* **statistics-based** (:func:`synthesize_statistics`): each feature drawn independently from
  its marginal distribution (given, or estimated from a few records);
* **noisy real data** (:func:`synthesize_noisy`): real records with a fraction of their
  features flipped (binary) or replaced (categorical, continuous), modelling an attacker
  whose data are only approximately like the target's.

Everything is vectorised over records: model-based synthesis advances a batch of hill-climbing
chains together, querying the target once per step for the whole batch, with numpy masks for
the per-chain decisions; a chain that finishes frees its slot for a new one.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.errors import raise_if_problems
from miaudit.targets.adapters import AccessLevel, Target, require_access
from miaudit.validation import is_int, is_real

__all__ = [
    "FEATURE_KINDS",
    "SynthesisReport",
    "SynthesisShortfallWarning",
    "SyntheticData",
    "check_model_based_options",
    "synthesize_model_based",
    "synthesize_noisy",
    "synthesize_statistics",
]

log = logging.getLogger(__name__)

FEATURE_KINDS = ("binary", "categorical", "continuous")
"""Kinds of features the generators understand (model-based synthesis: the first two)."""

# Memory bound (elements) of the temporary (records, features, values) array that
# inverse-CDF sampling from categorical marginals builds; rows are processed in chunks.
_CHUNK_ELEMENTS = 1 << 22


class SynthesisShortfallWarning(UserWarning):
    """A generator produced fewer records of some class than asked (chains gave up)."""


@dataclass(frozen=True)
class SynthesisReport:
    """What a generator did, for the audit report.

    Attributes
    ----------
    method : str
        ``"model_based"``, ``"statistics"`` or ``"noisy"``.
    requested_per_class : dict[int, int]
        Records asked for, per class (key -1: records without a class).
    produced_per_class : dict[int, int]
        Records returned, per class; below the request where synthesis fell short.
    n_queries : int
        Records sent to the target (0 for methods that do not query it).
    n_query_calls : int
        Calls to the target (one per step of the batch of chains).
    chains_started, chains_succeeded, chains_gave_up, chains_stopped : dict[int, int]
        Model-based synthesis, per class: hill-climbing chains started; those that returned
        a record (kept, or surplus when a class got more in its last step than it
        needed); those that reached ``iter_max`` queries without accepting one (Algorithm
        1's ⊥); and those stopped unfinished because their class had its records. Every
        started chain is in exactly one of the last three.
    queries_per_class : dict[int, int]
        Model-based synthesis: records queried on behalf of each class's chains.
    fraction_changed : float or None
        Noisy data: mean share of features changed per record.
    seconds : float
        Wall time.
    settings : dict
        The generator's parameters (JSON-ready).
    """

    method: str
    requested_per_class: dict[int, int]
    produced_per_class: dict[int, int]
    n_queries: int = 0
    n_query_calls: int = 0
    chains_started: dict[int, int] = field(default_factory=dict)
    chains_succeeded: dict[int, int] = field(default_factory=dict)
    chains_gave_up: dict[int, int] = field(default_factory=dict)
    chains_stopped: dict[int, int] = field(default_factory=dict)
    queries_per_class: dict[int, int] = field(default_factory=dict)
    fraction_changed: float | None = None
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_records(self) -> int:
        """Records produced in all."""
        return int(sum(self.produced_per_class.values()))

    @property
    def shortfall(self) -> dict[int, int]:
        """Classes that got fewer records than asked, and how many are missing."""
        return {
            c: want - self.produced_per_class.get(c, 0)
            for c, want in self.requested_per_class.items()
            if self.produced_per_class.get(c, 0) < want
        }


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """Records made for shadow training, with their classes and how they were made.

    Attributes
    ----------
    x : (n, n_features) float32
    y : (n,) int64 or None
        Class of each record; None when the generator had no classes (label the records by
        querying the target, e.g. ``target.predict_labels(x)``).
    report : SynthesisReport
    """

    x: np.ndarray
    y: np.ndarray | None
    report: SynthesisReport

    def as_dataset(self, n_classes: int, name: str = "synthetic") -> Dataset:
        """A :class:`~miaudit.data.Dataset` of these records, e.g. to train shadow models on
        (``ShadowModelAttack.fit(data.as_dataset(k), np.arange(n))``)."""
        y = self.y
        if y is None:
            raise_if_problems(
                "SyntheticData.as_dataset",
                ["the records have no classes; label them first (e.g. with the target)"],
            )
        return Dataset(
            name=name,
            x=np.ascontiguousarray(self.x, dtype=np.float32),
            y=np.asarray(y, dtype=np.int64),
            n_classes=int(n_classes),
            source=f"miaudit.data.synthesis ({self.report.method})",
        )


# ----------------------------------------------------------------------------------- checks


def _check_seed(seed: Any, problems: list[str]) -> None:
    if not is_int(seed) or seed < 0:
        problems.append(f"seed must be a non-negative int, got {seed!r}")


def _check_count(name: str, value: Any, problems: list[str], low: int = 1) -> bool:
    if not is_int(value) or value < low:
        problems.append(f"{name} must be an int >= {low}, got {value!r}")
        return False
    return True


def _value_table(
    n_features: int, feature_kind: str, categories: Any, problems: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Allowed values of every feature, padded: ``values`` (F, V) float64 (NaN padding) and
    ``counts`` (F,) int64."""
    if feature_kind == "binary":
        if categories is not None:
            problems.append("categories is only used with feature_kind='categorical'")
        return np.tile([0.0, 1.0], (n_features, 1)), np.full(n_features, 2, dtype=np.int64)
    if feature_kind != "categorical":
        problems.append(
            f"feature_kind must be 'binary' or 'categorical' for model-based synthesis, got "
            f"{feature_kind!r}"
        )
        return np.zeros((n_features, 1)), np.ones(n_features, dtype=np.int64)
    if isinstance(categories, str) or not isinstance(categories, Sequence | np.ndarray):
        problems.append(
            "feature_kind='categorical' needs categories: one sequence of allowed values per "
            f"feature, got {type(categories).__name__}"
        )
        return np.zeros((n_features, 1)), np.ones(n_features, dtype=np.int64)
    if len(categories) != n_features:
        problems.append(f"categories has {len(categories)} entries for {n_features} features")
        return np.zeros((n_features, 1)), np.ones(n_features, dtype=np.int64)
    try:
        cats = [np.unique(np.asarray(c, dtype=np.float64).ravel()) for c in categories]
    except (TypeError, ValueError):
        problems.append("categories must hold numbers")
        return np.zeros((n_features, 1)), np.ones(n_features, dtype=np.int64)
    counts = np.array([c.size for c in cats], dtype=np.int64)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        problems.append(f"categories of {empty.size} features are empty (e.g. feature {empty[0]})")
    if any(not np.isfinite(c).all() for c in cats):
        problems.append("categories must be finite numbers")
    values = np.full((n_features, max(1, int(counts.max(initial=1)))), np.nan)
    for j, c in enumerate(cats):  # once per feature, not per record
        values[j, : c.size] = c
    return values, np.maximum(counts, 1)


def _uniform_values(
    cols: np.ndarray, values: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One value drawn uniformly from the allowed values of each feature in ``cols``."""
    pick = np.floor(rng.random(cols.shape) * counts[cols]).astype(np.int64)
    return values[cols, np.minimum(pick, counts[cols] - 1)]


def _random_records(
    n: int, values: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """RANDRECORD(): every feature uniform over its allowed values; (n, F) float32."""
    cols = np.broadcast_to(np.arange(values.shape[0]), (n, values.shape[0]))
    return _uniform_values(cols, values, counts, rng).astype(np.float32)


def _redraw_features(
    best: np.ndarray,
    k: np.ndarray,
    k_max: int,
    values: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """RANDRECORD(x*, k): copy of each best record with ``k[i]`` distinct features, chosen
    uniformly at random, re-drawn uniformly from their allowed values.

    The ``k_max`` features with the smallest of ``F`` uniform keys, in increasing key
    order, are a uniformly random ordered sample without replacement, so the first
    ``k[i]`` of them are a uniform ``k[i]``-subset; one partition per step serves every
    chain whatever its current ``k``.
    """
    n, n_features = best.shape
    keys = rng.random((n, n_features))
    part = np.argpartition(keys, k_max - 1, axis=1)[:, :k_max]
    order = np.argsort(np.take_along_axis(keys, part, axis=1), axis=1)
    chosen = np.take_along_axis(part, order, axis=1)
    use = np.arange(k_max)[None, :] < k[:, None]
    rows = np.broadcast_to(np.arange(n)[:, None], chosen.shape)[use]
    cols = chosen[use]
    out = best.copy()
    out[rows, cols] = _uniform_values(cols, values, counts, rng)
    return out


def _round_robin(counts: np.ndarray) -> np.ndarray:
    """Class ids repeated ``counts`` times, interleaved: 0, 1, 2, 0, 1, 2, 0, 2, ..."""
    ids = np.repeat(np.arange(counts.size), counts)
    rank = np.arange(ids.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return ids[np.lexsort((ids, rank))]


def _warn_shortfall(report: SynthesisReport, what: str) -> None:
    short = report.shortfall
    if short:
        listed = ", ".join(f"class {c}: {m} missing" for c, m in sorted(short.items())[:10])
        more = f" and {len(short) - 10} more classes" if len(short) > 10 else ""
        warnings.warn(
            f"{what} fell short for {len(short)} classes ({listed}{more}); raise iter_max or "
            "max_chains, or lower conf_min",
            SynthesisShortfallWarning,
            stacklevel=3,
        )


# -------------------------------------------------------------------------- model-based


def _check_search_options(
    n_features: int,
    problems: list[str],
    *,
    k_max: int | None,
    k_min: int,
    conf_min: float,
    rej_max: int,
    iter_max: int,
    feature_kind: str,
    categories: Any,
    seed: int,
    batch_size: int,
    max_chains: int | None,
) -> tuple[int | None, np.ndarray, np.ndarray]:
    """The checks of :func:`synthesize_model_based`'s search options (no target needed);
    returns ``k_max`` (its default filled in) and the features' value table."""
    ok_features = _check_count("n_features", n_features, problems)
    if k_max is None and ok_features:
        k_max = max(1, n_features // 10)
    if not is_int(k_max) or k_max < 1 or (ok_features and k_max > n_features):
        problems.append(f"k_max must be an int in [1, n_features={n_features}], got {k_max!r}")
    elif not is_int(k_min) or k_min < 1 or k_min > k_max:
        problems.append(f"k_min must be an int in [1, k_max={k_max}], got {k_min!r}")
    if not is_real(conf_min) or not 0 <= conf_min < 1:
        problems.append(f"conf_min must be a number in [0, 1), got {conf_min!r}")
    _check_count("rej_max", rej_max, problems, low=0)
    _check_count("iter_max", iter_max, problems)
    _check_count("batch_size", batch_size, problems)
    if max_chains is not None:
        _check_count("max_chains", max_chains, problems)
    _check_seed(seed, problems)
    values, counts = (
        _value_table(n_features, feature_kind, categories, problems)
        if ok_features
        else (np.zeros((1, 1)), np.ones(1, dtype=np.int64))
    )
    return k_max, values, counts


def check_model_based_options(n_features: int, options: dict, seed: int = 0) -> None:
    """Raise, naming every problem, when ``options`` (keyword arguments of
    :func:`synthesize_model_based` besides the target, classes and record count) cannot
    run on records of ``n_features`` features: what lets an audit refuse them before any
    model is trained."""
    import inspect

    # The search's own keyword options and defaults, read off its signature.
    defaults = {
        name: param.default
        for name, param in inspect.signature(synthesize_model_based).parameters.items()
        if param.kind is param.KEYWORD_ONLY and name not in ("seed", "progress")
    }
    problems: list[str] = []
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        problems.append(f"unknown option(s) {unknown}; known: {sorted(defaults)}")
    settings = {**defaults, **{k: v for k, v in options.items() if k not in unknown}}
    _check_search_options(n_features, problems, seed=seed, **settings)
    raise_if_problems("model-based synthesis", problems)


def synthesize_model_based(
    target: Target,
    n_features: int,
    class_label: int | Sequence[int],
    n_records: int,
    *,
    k_max: int | None = None,
    k_min: int = 1,
    conf_min: float = 0.2,
    rej_max: int = 10,
    iter_max: int = 200,
    feature_kind: str = "binary",
    categories: Sequence[Sequence[float]] | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    max_chains: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticData:
    """Records the target classifies confidently, found by hill climbing on its answers.

    Shokri et al. (S&P 2017), §V-C, Algorithm 1 ("Data synthesis using the target model").
    One chain, for class ``c``: draw a random record ``x``; ``k ← k_max``, ``y*_c ← 0``,
    ``j ← 0``. At every iteration, query ``y = f(x)``:

    * if ``y_c ≥ y*_c`` (not worse than the best so far): when ``y_c > conf_min`` and
      ``c = argmax y``, return ``x`` with probability ``y_c``; otherwise (also when that
      draw fails) make ``x`` the best record ``x*``, ``y*_c ← y_c`` and ``j ← 0``;
    * else count a rejection, ``j ← j + 1``; when ``j > rej_max``, halve the number of
      re-drawn features, ``k ← max(k_min, ⌈k / 2⌉)``, and ``j ← 0``;

    then the next candidate is ``x*`` with ``k`` randomly chosen features re-drawn. A chain
    that has queried ``iter_max`` times without returning gives up (the algorithm's ⊥).

    Parameters
    ----------
    target : Target
        Black-box access with probabilities (``AccessLevel.PROBABILITIES`` or above); only
        ``predict_proba`` is called.
    n_features : int
        Features of a record; records are ``(n_features,)`` float32 vectors.
    class_label : int or sequence of int
        Class(es) to synthesise; chains of all classes advance together.
    n_records : int
        Records wanted per class.
    k_max, k_min : int
        Features re-drawn per step at the start and at the least. Default ``k_max``:
        ``max(1, n_features // 10)``; ``1 <= k_min <= k_max <= n_features``.
    conf_min : float in [0, 1)
        Confidence a record needs before it may be accepted.
    rej_max : int
        Consecutive rejections tolerated before ``k`` is halved.
    iter_max : int
        Queries per chain before it gives up.
    feature_kind : {"binary", "categorical"}
        Binary features take 0 or 1; categorical ones the values in ``categories``.
        Random records and re-drawn features are uniform over the allowed values (so a
        re-drawn feature may keep its value).
    categories : sequence of sequences of float, optional
        For ``"categorical"``: the allowed values of each feature.
    seed : int
        Seeds every random draw (records, features, acceptance).
    batch_size : int
        Chains advanced at once: one query of up to ``batch_size`` records per step.
    max_chains : int, optional
        Chains started per class at most; default ``20 * n_records``. Bounds the work for
        a class the target rarely predicts confidently.
    progress : callable, optional
        ``progress(found, wanted)`` before each query batch: records found so far, of the
        ``n_records`` per class wanted in all.

    Returns
    -------
    SyntheticData
        ``x`` (n, n_features) float32 and ``y`` (n,) int64, classes in the order of
        ``class_label``, at most ``n_records`` each; ``report`` counts queries, chains
        started and chains that gave up, per class.

    Raises
    ------
    InvalidAuditInput
        Listing every bad parameter at once.
    AccessLevelError
        A label-only target.

    Warns
    -----
    SynthesisShortfallWarning
        When a class got fewer than ``n_records`` records within ``max_chains`` chains.

    Notes
    -----
    Chains are rows of numpy arrays; each step queries the target once for every active
    chain and applies the algorithm's branches with boolean masks. When a chain returns
    or gives up, its slot starts a new chain for a class that still needs records
    (classes short of records first, round-robin). Records accepted beyond ``n_records``
    in the last step are discarded; chains of classes that have enough are stopped (they
    count neither as records nor as giving up).
    """
    start_time = time.perf_counter()
    problems: list[str] = []
    classes = np.atleast_1d(np.asarray(class_label))
    n_classes = int(getattr(target, "n_classes", 0))
    if classes.ndim != 1 or classes.size == 0 or classes.dtype.kind not in "iu":
        problems.append(f"class_label must be an int or a sequence of ints, got {class_label!r}")
        classes = np.zeros(1, dtype=np.int64)
    else:
        if classes.min() < 0 or classes.max() >= n_classes:
            problems.append(
                f"class_label must lie in [0, {n_classes}) (the target's classes), got "
                f"{classes.tolist()}"
            )
        if np.unique(classes).size != classes.size:
            problems.append(f"class_label names a class twice: {classes.tolist()}")
    _check_count("n_records", n_records, problems)
    k_max, values, counts = _check_search_options(
        n_features,
        problems,
        k_max=k_max,
        k_min=k_min,
        conf_min=conf_min,
        rej_max=rej_max,
        iter_max=iter_max,
        feature_kind=feature_kind,
        categories=categories,
        seed=seed,
        batch_size=batch_size,
        max_chains=max_chains,
    )
    raise_if_problems("synthesize_model_based", problems)
    require_access(target, AccessLevel.PROBABILITIES, "model-based synthesis")

    assert k_max is not None  # set above from n_features when None
    chain_budget = 20 * n_records if max_chains is None else int(max_chains)
    n_groups = classes.size
    rng = np.random.default_rng(seed)

    # Chain state, one row per slot. ``group`` indexes ``classes``; -1 marks an idle slot.
    x_cur = np.zeros((batch_size, n_features), dtype=np.float32)
    x_best = np.zeros_like(x_cur)
    best_conf = np.zeros(batch_size)
    k = np.full(batch_size, k_max, dtype=np.int64)
    rejections = np.zeros(batch_size, dtype=np.int64)
    iterations = np.zeros(batch_size, dtype=np.int64)
    group = np.full(batch_size, -1, dtype=np.int64)

    produced = np.zeros(n_groups, dtype=np.int64)
    started = np.zeros(n_groups, dtype=np.int64)
    gave_up = np.zeros(n_groups, dtype=np.int64)
    stopped = np.zeros(n_groups, dtype=np.int64)
    queried = np.zeros(n_groups, dtype=np.int64)
    out_x: list[np.ndarray] = []
    out_group: list[np.ndarray] = []
    n_calls = 0

    while True:
        if progress is not None:  # records found so far, of all wanted
            progress(int(np.minimum(produced, n_records).sum()), int(n_groups * n_records))
        need = n_records - produced
        # Chains of classes that have enough records stop here.
        done = (group >= 0) & (need[np.maximum(group, 0)] <= 0)
        stopped += np.bincount(group[done], minlength=n_groups)
        group[done] = -1
        idle = np.flatnonzero(group < 0)
        if idle.size:
            active_per_group = np.bincount(group[group >= 0], minlength=n_groups)
            allowed = np.where(need > 0, chain_budget - started, 0)
            # At most idle.size per class: the queue never grows beyond what can start now.
            first = np.minimum(np.maximum(need - active_per_group, 0), allowed).clip(0, idle.size)
            rest = np.minimum(allowed - first, idle.size)
            queue = np.concatenate([_round_robin(first), _round_robin(rest)])
            new = queue[: idle.size]
            slots = idle[: new.size]
            if slots.size:
                group[slots] = new
                started += np.bincount(new, minlength=n_groups)
                x_cur[slots] = _random_records(slots.size, values, counts, rng)
                best_conf[slots] = 0.0
                k[slots] = k_max
                rejections[slots] = 0
                iterations[slots] = 0
        live = np.flatnonzero(group >= 0)
        if live.size == 0:
            break

        proba = np.asarray(target.predict_proba(x_cur[live]), dtype=np.float64)
        n_calls += 1
        g = group[live]
        c = classes[g]
        queried += np.bincount(g, minlength=n_groups)
        conf = proba[np.arange(live.size), c]
        not_worse = conf >= best_conf[live]
        eligible = not_worse & (conf > conf_min) & (proba.argmax(axis=1) == c)
        accepted = eligible & (rng.random(live.size) < conf)

        took = live[accepted]
        if took.size:
            out_x.append(x_cur[took].copy())
            out_group.append(group[took].copy())
            produced += np.bincount(group[took], minlength=n_groups)

        improve = live[not_worse & ~accepted]
        x_best[improve] = x_cur[improve]
        best_conf[improve] = conf[not_worse & ~accepted]
        rejections[improve] = 0

        worse = live[~not_worse]
        rejections[worse] += 1
        halve = worse[rejections[worse] > rej_max]
        k[halve] = np.maximum(k_min, (k[halve] + 1) // 2)
        rejections[halve] = 0

        iterations[live] += 1
        ends = live[~accepted & (iterations[live] >= iter_max)]
        gave_up += np.bincount(group[ends], minlength=n_groups)
        group[took] = -1
        group[ends] = -1

        going = live[group[live] >= 0]
        if going.size:
            x_cur[going] = _redraw_features(x_best[going], k[going], k_max, values, counts, rng)

    if out_x:
        xs = np.concatenate(out_x)
        gs = np.concatenate(out_group)
    else:
        xs = np.zeros((0, n_features), dtype=np.float32)
        gs = np.zeros(0, dtype=np.int64)
    # Keep the first n_records of each class, classes in the order asked for.
    order = np.argsort(gs, kind="stable")
    gs_sorted = gs[order]
    rank = np.arange(gs.size) - np.searchsorted(gs_sorted, gs_sorted, side="left")
    keep = order[rank < n_records]
    xs, gs = xs[keep], gs[keep]
    kept = np.bincount(gs, minlength=n_groups)

    labels = [int(c) for c in classes]
    report = SynthesisReport(
        method="model_based",
        requested_per_class=dict.fromkeys(labels, int(n_records)),
        produced_per_class={c: int(v) for c, v in zip(labels, kept, strict=True)},
        n_queries=int(queried.sum()),
        n_query_calls=n_calls,
        chains_started={c: int(v) for c, v in zip(labels, started, strict=True)},
        chains_succeeded={c: int(v) for c, v in zip(labels, produced, strict=True)},
        chains_gave_up={c: int(v) for c, v in zip(labels, gave_up, strict=True)},
        chains_stopped={c: int(v) for c, v in zip(labels, stopped, strict=True)},
        queries_per_class={c: int(v) for c, v in zip(labels, queried, strict=True)},
        seconds=time.perf_counter() - start_time,
        settings={
            "k_max": int(k_max),
            "k_min": int(k_min),
            "conf_min": float(conf_min),
            "rej_max": int(rej_max),
            "iter_max": int(iter_max),
            "feature_kind": feature_kind,
            "seed": int(seed),
            "batch_size": int(batch_size),
            "max_chains": chain_budget,
        },
    )
    log.debug(
        "model-based synthesis: %d records, %d queries in %d calls",
        report.n_records,
        report.n_queries,
        n_calls,
    )
    _warn_shortfall(report, "model-based synthesis")
    return SyntheticData(x=xs.astype(np.float32), y=classes[gs].astype(np.int64), report=report)


# ---------------------------------------------------------------------- statistics-based


def _check_records(records: Any, problems: list[str], name: str = "records") -> np.ndarray:
    try:
        x = np.asarray(records, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(f"{name} must be a numeric (n, n_features) array")
        return np.zeros((0, 0))
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        problems.append(f"{name} must be a non-empty 2-d (n, n_features) array, got {x.shape}")
        return np.zeros((0, 0))
    if not np.isfinite(x).all():
        problems.append(f"{name} contains NaN or infinite values")
    return x


def _check_labels(labels: Any, n: int, problems: list[str]) -> np.ndarray | None:
    if labels is None:
        return None
    y = np.asarray(labels)
    if y.shape != (n,) or (y.size and y.dtype.kind not in "iu"):
        problems.append(f"labels must be ({n},) integers, got {y.dtype} {y.shape}")
        return None
    if y.size and y.min() < 0:
        problems.append(f"labels must be class indices >= 0, found {y.min()}")
        return None
    return y.astype(np.int64)


def synthesize_statistics(
    n_records: int,
    *,
    records: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    marginals: np.ndarray | None = None,
    values: np.ndarray | None = None,
    seed: int = 0,
) -> SyntheticData:
    """Records whose features are drawn independently from their marginal distributions.

    Shokri et al. (S&P 2017), §V-C, "statistics-based synthesis": an attacker who knows
    the marginal distribution of each feature draws every feature of a shadow record
    independently from it. Correlations between features are lost, which is what makes
    this data weaker than real data.

    Give exactly one of ``records`` (the marginals are estimated from them) or
    ``marginals``.

    Parameters
    ----------
    n_records : int
        Records per class when there are classes (``labels``, or ``marginals`` with a
        class axis), else in all.
    records : (m, n_features) array, optional
        Records whose empirical per-feature distributions (per class when ``labels`` are
        given) are sampled: each feature of a new record is that feature's value in a
        uniformly drawn record of the same class. Works for any kind of feature.
    labels : (m,) int array, optional
        Classes of ``records``; each class present gets ``n_records`` records.
    marginals : array, optional
        Binary features (``values`` None): ``(n_features,)`` or ``(n_classes, n_features)``
        probabilities that each feature is 1. Categorical: ``(n_features, n_values)`` or
        ``(n_classes, n_features, n_values)`` probabilities of ``values``; rows sum to 1.
        With a class axis, class ``c`` is row ``c``.
    values : (n_features, n_values) array, optional
        The values that ``marginals`` give probabilities for (pad short rows with any
        value of probability 0).
    seed : int

    Returns
    -------
    SyntheticData
        ``y`` holds the classes (in increasing order, ``n_records`` each) or is None
        without classes.

    Raises
    ------
    InvalidAuditInput
        Listing every problem with the arguments.
    """
    start_time = time.perf_counter()
    problems: list[str] = []
    _check_count("n_records", n_records, problems)
    _check_seed(seed, problems)
    if (records is None) == (marginals is None):
        problems.append("give exactly one of records or marginals")
        raise_if_problems("synthesize_statistics", problems)
    rng = np.random.default_rng(seed if is_int(seed) and seed >= 0 else 0)

    if records is not None:
        if values is not None:
            problems.append("values goes with marginals, not with records")
        x = _check_records(records, problems)
        y = _check_labels(labels, x.shape[0], problems)
        raise_if_problems("synthesize_statistics", problems)
        if y is None:
            group_of = np.zeros(x.shape[0], dtype=np.int64)
            classes = np.array([-1])
        else:
            classes, group_of = np.unique(y, return_inverse=True)
        order = np.argsort(group_of, kind="stable")
        size = np.bincount(group_of, minlength=classes.size)
        first = np.cumsum(size) - size
        out_group = np.repeat(np.arange(classes.size), n_records)
        u = rng.random((out_group.size, x.shape[1]))
        pick = first[out_group, None] + np.minimum(
            np.floor(u * size[out_group, None]).astype(np.int64), size[out_group, None] - 1
        )
        x_out = x[order][pick, np.arange(x.shape[1])[None, :]]
        settings: dict[str, Any] = {"source": "records", "n_source_records": int(x.shape[0])}
    else:
        if labels is not None:
            problems.append("labels goes with records, not with marginals")
        x_out, classes, out_group = _sample_marginals(marginals, values, n_records, rng, problems)
        settings = {"source": "marginals"}

    labelled = not (classes.size == 1 and classes[0] == -1)
    keys = [int(c) for c in classes]
    counts = dict.fromkeys(keys, int(n_records))
    report = SynthesisReport(
        method="statistics",
        requested_per_class=counts,
        produced_per_class=dict(counts),
        seconds=time.perf_counter() - start_time,
        settings={**settings, "seed": int(seed)},
    )
    y_out = classes[out_group].astype(np.int64) if labelled else None
    return SyntheticData(x=x_out.astype(np.float32), y=y_out, report=report)


def _sample_marginals(
    marginals: Any, values: Any, n_records: int, rng: np.random.Generator, problems: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-CDF sampling of independent features; see :func:`synthesize_statistics`."""
    try:
        p = np.asarray(marginals, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append("marginals must be a numeric array")
        raise_if_problems("synthesize_statistics", problems)
    binary = values is None
    want_ndim = (1, 2) if binary else (2, 3)
    if p.ndim not in want_ndim or p.size == 0:
        shapes = (
            "(n_features,) or (n_classes, n_features)"
            if binary
            else "(n_features, n_values) or (n_classes, n_features, n_values)"
        )
        problems.append(f"marginals must have shape {shapes}, got {p.shape}")
        raise_if_problems("synthesize_statistics", problems)
    labelled = p.ndim == want_ndim[1]
    table = p if labelled else p[None]
    if not np.isfinite(table).all() or table.min() < 0 or table.max() > 1:
        problems.append("marginals must be probabilities in [0, 1]")
    v = None
    if not binary:
        v = np.asarray(values, dtype=np.float64)
        if v.shape != table.shape[1:]:
            problems.append(
                f"values must have shape (n_features, n_values) = {table.shape[1:]}, got {v.shape}"
            )
        elif not np.isfinite(v).all():
            problems.append("values must be finite")
        sums = table.sum(axis=2)
        if np.abs(sums - 1).max(initial=0) > 1e-6:
            problems.append("each feature's marginal probabilities must sum to 1")
    raise_if_problems("synthesize_statistics", problems)
    n_groups, n_features = table.shape[0], table.shape[1]
    out_group = np.repeat(np.arange(n_groups), n_records)
    u = rng.random((out_group.size, n_features))
    if binary:
        x = (u < table[out_group]).astype(np.float64)
    else:
        assert v is not None
        cdf = np.cumsum(table, axis=2)
        n_values = table.shape[2]
        idx = np.empty(u.shape, dtype=np.int64)
        step = max(1, _CHUNK_ELEMENTS // (n_features * n_values))
        for lo in range(0, u.shape[0], step):  # chunks of records bound the memory
            hi = lo + step
            idx[lo:hi] = (u[lo:hi, :, None] >= cdf[out_group[lo:hi]]).sum(axis=2)
        idx = np.minimum(idx, n_values - 1)  # u just below 1 with rounded sums
        x = v[np.arange(n_features)[None, :], idx]
    classes = np.arange(n_groups) if labelled else np.array([-1])
    return x, classes, out_group


# ------------------------------------------------------------------------------ noisy data


def _column_categories(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of every column, sorted and padded with +inf: (F, V), counts (F,)."""
    xs = np.sort(x, axis=0)
    new = np.ones_like(xs, dtype=bool)
    new[1:] = xs[1:] != xs[:-1]
    counts = new.sum(axis=0)
    rank = np.cumsum(new, axis=0) - 1
    table = np.full((x.shape[1], int(counts.max())), np.inf)
    cols = np.broadcast_to(np.arange(x.shape[1]), xs.shape)
    table[cols[new], rank[new]] = xs[new]
    return table, counts.astype(np.int64)


def synthesize_noisy(
    records: np.ndarray,
    fraction: float,
    *,
    labels: np.ndarray | None = None,
    feature_kind: str = "binary",
    categories: Sequence[Sequence[float]] | None = None,
    seed: int = 0,
) -> SyntheticData:
    """Real records with a fraction of their features changed at random.

    Shokri et al. (S&P 2017), §V-C, "noisy real data": the attacker's records resemble
    the target's training data only approximately; they simulate this by flipping 10% or
    20% of the (binary) features of real records (their Fig. 8).

    Parameters
    ----------
    records : (n, n_features) array
    fraction : float in [0, 1]
        Share of the features changed in every record: exactly
        ``round(fraction * n_features)`` distinct features, chosen uniformly per record.
    labels : (n,) int array, optional
        Passed through as the noisy records' classes.
    feature_kind : {"binary", "categorical", "continuous"}
        ``"binary"`` flips 0 and 1. ``"categorical"`` replaces the value with another of
        the feature's categories, drawn uniformly (a feature with a single category is
        left as is). ``"continuous"`` replaces it with a draw from the feature's empirical
        distribution in ``records`` (the value of a uniformly drawn record).
    categories : sequence of sequences of float, optional
        For ``"categorical"``: each feature's allowed values; default the values seen in
        that column of ``records``.
    seed : int

    Returns
    -------
    SyntheticData
        Same shape as ``records``; ``report.fraction_changed`` is the mean share of
        features whose value actually changed.
    """
    start_time = time.perf_counter()
    problems: list[str] = []
    x = _check_records(records, problems)
    y = _check_labels(labels, x.shape[0], problems)
    if not is_real(fraction) or not 0 <= fraction <= 1:
        problems.append(f"fraction must be a number in [0, 1], got {fraction!r}")
    if feature_kind not in FEATURE_KINDS:
        problems.append(f"feature_kind must be one of {FEATURE_KINDS}, got {feature_kind!r}")
    elif feature_kind == "binary" and x.size and not np.isin(x, (0.0, 1.0)).all():
        problems.append("feature_kind='binary' needs records of 0s and 1s")
    if categories is not None and feature_kind != "categorical":
        problems.append("categories is only used with feature_kind='categorical'")
    _check_seed(seed, problems)
    table = counts = None
    if feature_kind == "categorical" and x.size:
        if categories is None:
            table, counts = _column_categories(x)
        else:
            values, counts = _value_table(x.shape[1], "categorical", categories, problems)
            table = np.where(np.isnan(values), np.inf, values)
            if not problems:
                inside = (x[:, :, None] == table[None]).any(axis=2)
                if not inside.all():
                    problems.append(
                        f"{int((~inside).sum())} values of records are not among their "
                        "feature's categories"
                    )
    raise_if_problems("synthesize_noisy", problems)

    rng = np.random.default_rng(seed)
    n, n_features = x.shape
    m = round(float(fraction) * n_features)
    out = x.copy()
    if m:
        keys = rng.random((n, n_features))
        cols = np.argpartition(keys, m - 1, axis=1)[:, :m].ravel()
        rows = np.repeat(np.arange(n), m)
        old = x[rows, cols]
        if feature_kind == "binary":
            out[rows, cols] = 1.0 - old
        elif feature_kind == "categorical":
            assert table is not None and counts is not None
            current = (table[cols] < old[:, None]).sum(axis=1)  # index of the old value
            others = counts[cols] - 1
            draw = np.floor(rng.random(cols.size) * np.maximum(others, 1)).astype(np.int64)
            draw = np.minimum(draw, np.maximum(others - 1, 0))
            new_idx = draw + (draw >= current)
            out[rows, cols] = np.where(
                others > 0, table[cols, np.minimum(new_idx, counts[cols] - 1)], old
            )
        else:
            source = rng.integers(0, n, size=cols.size)
            out[rows, cols] = x[source, cols]
    changed = float((out != x).mean()) if x.size else 0.0
    classes = [-1] if y is None else [int(c) for c in np.unique(y)]
    per_class = (
        {-1: n}
        if y is None
        else {c: int(v) for c, v in zip(classes, np.bincount(y)[classes], strict=True)}
    )
    report = SynthesisReport(
        method="noisy",
        requested_per_class=per_class,
        produced_per_class=dict(per_class),
        fraction_changed=changed,
        seconds=time.perf_counter() - start_time,
        settings={
            "fraction": float(fraction),
            "features_per_record": m,
            "feature_kind": feature_kind,
            "seed": int(seed),
        },
    )
    return SyntheticData(x=out.astype(np.float32), y=y, report=report)
