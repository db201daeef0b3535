"""Reference models for an audit of a given target: train (or load) them once, query them
and the target once, and hand every reference attack the same evidence.

The references are trained by the target's recipe on random halves of the records the
attacker may use: the population *and* the audited records themselves (an attacker who
asks about a record knows it and can train on it; this is what makes online LiRA/RMIA
possible). Each audited record is therefore IN for about half of the references, and an
offline attack simply restricts itself to the OUT ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.data.split import AuditSplit
from miaudit.errors import InvalidAuditInput
from miaudit.signals.observations import Observations
from miaudit.signals.table import SignalTable
from miaudit.targets.adapters import Target

#: Population records RMIA compares each audited record with, at most (a random subset).
DEFAULT_POPULATION_SIZE = 10_000

#: References whose mean test accuracy differs from the target's by more than this are
#: flagged: the recipe probably does not match the target's training.
ACCURACY_MISMATCH = 0.10


@dataclass(frozen=True)
class ReferenceSetup:
    """How to obtain reference models.

    Attributes
    ----------
    recipe
        A :class:`~miaudit.models.TorchRecipe` or :class:`~miaudit.models.SklearnRecipe`
        that trains "one more model like the target".
    queries : str
        ``"auto"`` (flips for images, identity for tabular data), ``"none"``, ``"flips"``
        or ``"flips_and_shifts"``: the augmentations each record is queried under.
    cache_dir : Path or None
        Model cache folder; None uses ``$MIAUDIT_CACHE`` or ``~/.cache/miaudit``.
    seed : int
        Seed of the inclusion matrix and of every reference model's training.
    population_size : int or None
        Population records RMIA compares against (default: all, at most 10,000).
    """

    recipe: Any
    queries: str = "auto"
    cache_dir: Path | None = None
    seed: int = 0
    population_size: int | None = None

    def cache(self):
        """The model cache shared by reference and shadow models of this setup."""
        from miaudit.compute import ModelCache

        return ModelCache(self.cache_dir)  # None: $MIAUDIT_CACHE or ~/.cache/miaudit


@dataclass(frozen=True, eq=False)
class ReferenceEvidence:
    """What the reference attacks may use, for the largest number of models asked for."""

    audited_references: Observations
    audited_target: Observations
    population_references: Observations | None
    population_target: Observations | None
    model_info: list[dict] = field(default_factory=list)
    queries: str = "none"

    @property
    def n_models(self) -> int:
        return self.audited_references.n_models

    def with_models(self, k: int) -> ReferenceEvidence:
        """The same evidence restricted to the first ``k`` reference models."""
        models = np.arange(k)
        pop = self.population_references
        return ReferenceEvidence(
            self.audited_references.select_models(models),
            self.audited_target,
            None if pop is None else pop.select_models(models),
            self.population_target,
            self.model_info[:k],
            self.queries,
        )

    def describe(self) -> dict:
        """JSON-ready summary for the report."""
        train = [m.get("train_accuracy") for m in self.model_info]
        test = [m.get("test_accuracy") for m in self.model_info]
        return {
            "n_models": self.audited_references.n_models,
            "queries": self.queries,
            "n_queries": self.audited_references.n_queries,
            "n_population_compared": (
                0 if self.population_target is None else self.population_target.n_records
            ),
            "mean_train_accuracy": _mean(train),
            "mean_test_accuracy": _mean(test),
            "models_loaded_from_cache": sum(bool(m.get("from_cache")) for m in self.model_info),
        }


def _mean(values: list) -> float | None:
    clean = [v for v in values if v is not None]
    return float(np.mean(clean)) if clean else None


def query_set(name: str, dataset: Dataset):
    from miaudit.compute import QuerySet

    if name == "auto":
        name = "flips" if dataset.is_image else "none"
    if name != "none" and not dataset.is_image:
        raise InvalidAuditInput(
            f"references.queries: {name!r} augments images, but {dataset.name!r} is tabular; "
            "use 'none' or 'auto'"
        )
    makers = {
        "none": QuerySet.none,
        "flips": QuerySet.flips,
        "flips_and_shifts": QuerySet.flips_and_shifts,
    }
    if name not in makers:
        raise InvalidAuditInput(
            f"references.queries must be one of {['auto', *makers]}, got {name!r}"
        )
    return name, makers[name]()


def gather_reference_evidence(
    target: Target,
    dataset: Dataset,
    split: AuditSplit,
    setup: ReferenceSetup,
    *,
    n_models: int,
    progress=None,
) -> ReferenceEvidence:
    """Train or load ``n_models`` references and query them and the target."""
    from miaudit.compute import ReferencePool

    if target.queries_by_index and setup.queries not in ("auto", "none"):
        raise InvalidAuditInput(
            "references.queries: precomputed predictions cannot be queried on augmented "
            "records; use 'none'"
        )
    query_name, queries = query_set("none" if target.queries_by_index else setup.queries, dataset)
    audited = split.audited
    candidates = np.concatenate([audited, split.population])
    pool = ReferencePool(
        setup.recipe, dataset, candidates, n_models=n_models, seed=setup.seed, cache=setup.cache()
    )
    trained = pool.train(progress=progress)
    model_info = [pool.model_info(k) for k in range(n_models)]
    del trained

    population = split.population
    limit = setup.population_size or DEFAULT_POPULATION_SIZE
    if population.size > limit:
        rng = np.random.default_rng(setup.seed)
        population = np.sort(rng.choice(population, size=limit, replace=False))
    audited_refs = pool.observe(audited, queries=queries)
    audited_target = pool.observe_target(target, audited, queries=queries)
    if population.size:
        pop_refs = pool.observe(population, queries=queries)
        pop_target = pool.observe_target(target, population, queries=queries)
    else:
        pop_refs = pop_target = None
    return ReferenceEvidence(
        audited_refs, audited_target, pop_refs, pop_target, model_info, query_name
    )


def reference_warnings(
    evidence: ReferenceEvidence, signals: SignalTable, is_member: np.ndarray, n_classes: int
) -> list[str]:
    """Caveats that make a reference attack understate leakage: references that did not
    train, or that train to a different accuracy than the target (mismatched recipe)."""
    found = []
    chance = 1.0 / n_classes
    info = evidence.describe()
    ref_train, ref_test = info["mean_train_accuracy"], info["mean_test_accuracy"]
    target_test = float(signals.correct[~is_member].mean())
    if ref_train is not None and ref_train < 1.5 * chance:
        found.append(
            f"the reference models reach only {ref_train:.3f} accuracy on their own training "
            f"data (chance {chance:.3f}): they did not train, and reference attacks "
            "understate leakage"
        )
    if ref_test is not None and abs(ref_test - target_test) > ACCURACY_MISMATCH:
        found.append(
            f"the reference models' test accuracy ({ref_test:.3f}) is far from the target's "
            f"({target_test:.3f}): their recipe or training-set size probably does not match "
            "the target's, and reference attacks may understate leakage"
        )
    return found
