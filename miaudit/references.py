"""Reference models for an audit of a given target: train (or load) them once, query them
and the target once, and hand every reference attack the same evidence.

Design: references that mimic the target
----------------------------------------
A reference stands in for the target, so it is trained like it: by the target's recipe
and on **as many records as the target trained on** (``n_members``, or
``references.train_size``). The records are drawn so that each audited record is IN for
half of the references: complementary pairs split the audited records (members and
non-members alike: an attacker who asks about a record knows it and may train on it,
which is what makes online LiRA/RMIA possible), and each half is topped up from the
population when the target's training set is larger than half the audited records, or
subsampled when it is smaller. See "Mimicking a target" in :mod:`miaudit.compute.pool`.

Why not random halves of audited + population records, as before? Those references train
on ``(n_audited + n_population) / 2`` records: on the CIFAR-10 audit of the evidence issue
10,000 against the target's 5,000, so they fitted their records far more closely (train
accuracy 0.92 vs 0.72) and offline RMIA fell from above the loss attack to 5 AUC points
below it.

The population serves RMIA, which compares each audited record with population records
``z``. Those are kept apart from the top-up records: no reference trains on a ``z``, so no
``z`` is counted both as a training record and as a neutral comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.data.split import AuditSplit
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.recipe_match import RecipeMatch, measure_recipe_match
from miaudit.signals.observations import MEMORY_MAP_ABOVE_MB, Observations
from miaudit.targets.adapters import AccessLevel, Target
from miaudit.validation import is_int, is_real

#: Population records RMIA compares each audited record with, at most (a random subset).
DEFAULT_POPULATION_SIZE = 10_000


#: Where reference models can train (see :mod:`miaudit.compute.executors`); defined here,
#: where a configuration is checked before PyTorch is imported.
EXECUTORS = ("inprocess", "process", "ray")


@dataclass(frozen=True)
class ReferenceSetup:
    """How to obtain reference models.

    Attributes
    ----------
    recipe
        A :class:`~miaudit.models.TorchRecipe` or :class:`~miaudit.models.SklearnRecipe`
        that trains "one more model like the target".
    queries : str
        ``"auto"`` (flips for images when the recipe trains with augmentation, else the
        record alone), ``"none"``, ``"flips"`` or ``"flips_and_shifts"``: the
        augmentations each record is queried under (see :func:`query_set`).
    cache_dir : Path or None
        Model cache folder; None uses ``$MIAUDIT_CACHE`` or ``~/.cache/miaudit``.
    seed : int
        Seed of the inclusion matrix and of every reference model's training.
    population_size : int or None
        Population records RMIA compares against (default: all, at most 10,000).
    train_size : int or None
        Records each reference trains on; default the target's number of members.
    calibrate : tuple of numbers
        Candidate values of ``calibrate_param``: when given, a pair of references is
        trained for each, and the pool uses the one whose references best match the
        target's member and non-member losses (:func:`calibrate_epochs`).
    calibrate_param : str
        The recipe setting calibrated: ``"epochs"`` by default; for miaudit's trainer any
        numeric field of :class:`~miaudit.models.TrainingConfig` or architecture
        parameter, for a :class:`~miaudit.models.PythonRecipe` any of its ``params`` (a
        keyword of the user's function), for a scikit-learn recipe any estimator
        parameter.
    check_determinism : bool
        For recipes of the user's own code: train the first reference twice with one seed
        and report whether the answers agree (:func:`check_determinism`).
    reseed : int
        Up to this many retrainings, each with a fresh seed on the same records, of every
        reference outside the recipe-match tolerance (0: report them only). A fragile
        recipe trains some seeds far from the target (LeNet-5 on CIFAR-10: train accuracy
        0.79 for one reference against 0.67 to 0.69 for the target and the others); the
        records each reference trains on, and so the balance of the design, never change.
    executor : str
        Where the references train: ``"inprocess"`` (default), ``"process"`` (a local pool
        of ``workers`` processes) or ``"ray"`` (Ray tasks; ``ray_address`` ``"auto"`` or a
        URL joins a cluster, None starts a local instance). See
        :mod:`miaudit.compute.executors`; every executor trains the same models.
    workers : int
        Processes or Ray workers training at once.
    ray_address : str or None
    threads_per_worker : int or None
        Torch threads of each worker (default: the cores divided among the workers).
    memory_map_above_mb : float or None
        The references' answers larger than this many MiB are kept in a memory-mapped file
        on the model cache's disk instead of in memory (default 512); None never maps.
    predictions_file : Path or None
        Answers of references trained elsewhere, on the design ``miaudit plan-references``
        wrote (:mod:`miaudit.external_references`); ``recipe`` is then an
        :class:`~miaudit.external_references.ExternalRecipe` and nothing trains here.
    """

    recipe: Any
    queries: str = "auto"
    cache_dir: Path | None = None
    seed: int = 0
    population_size: int | None = None
    train_size: int | None = None
    calibrate: tuple[float, ...] = ()
    calibrate_param: str = "epochs"
    check_determinism: bool = True
    reseed: int = 0
    executor: str = "inprocess"
    workers: int = 2
    ray_address: str | None = None
    threads_per_worker: int | None = None
    memory_map_above_mb: float | None = MEMORY_MAP_ABOVE_MB
    predictions_file: Path | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.train_size is not None and (not is_int(self.train_size) or self.train_size < 1):
            problems.append(f"train_size must be a positive int, got {self.train_size!r}")
        if self.population_size is not None and (
            not is_int(self.population_size) or self.population_size < 1
        ):
            problems.append(f"population_size must be a positive int, got {self.population_size!r}")
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        if not is_int(self.reseed) or self.reseed < 0:
            problems.append(f"reseed must be a non-negative int, got {self.reseed!r}")
        values = tuple(self.calibrate)
        if any(not is_real(v) or v <= 0 for v in values):
            problems.append(f"calibrate must list positive numbers, got {list(values)}")
        elif values and self.recipe is not None:  # None: a plan's settings, checked later
            try:
                with_param(self.recipe, self.calibrate_param, values[0])
            except InvalidAuditInput as error:
                problems.append(f"calibrate: {error}")
        if self.executor not in EXECUTORS:
            problems.append(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if not is_int(self.workers) or self.workers < 1:
            problems.append(f"workers must be a positive int, got {self.workers!r}")
        if self.threads_per_worker is not None and (
            not is_int(self.threads_per_worker) or self.threads_per_worker < 1
        ):
            problems.append(
                f"threads_per_worker must be a positive int, got {self.threads_per_worker!r}"
            )
        mapped = self.memory_map_above_mb
        if mapped is not None and (not is_real(mapped) or mapped < 0):
            problems.append(f"memory_map_above_mb must be a number >= 0 or None, got {mapped!r}")
        raise_if_problems("references", problems)
        unique = sorted({int(v) if float(v).is_integer() else float(v) for v in values})
        object.__setattr__(self, "calibrate", tuple(unique))

    @property
    def memory_map_above(self) -> int | None:
        """:attr:`memory_map_above_mb` in bytes, as :class:`ReferencePool` takes it."""
        mb = self.memory_map_above_mb
        return None if mb is None else int(mb * (1 << 20))

    def make_executor(self):
        """The executor the references (and shadow models) train on."""
        from miaudit.compute.executors import make_executor

        return make_executor(
            self.executor,
            workers=self.workers,
            address=self.ray_address,
            threads_per_worker=self.threads_per_worker,
        )

    def cache(self):
        """The model cache shared by reference and shadow models of this setup."""
        from miaudit.compute import ModelCache

        return ModelCache(self.cache_dir)  # None: $MIAUDIT_CACHE or ~/.cache/miaudit


@dataclass(frozen=True)
class ReferenceDesign:
    """Which records the references train on, and which population records RMIA uses.

    Attributes
    ----------
    audited : (n,) int64
        The audited records, over which complementary pairs are drawn.
    top_up : (t,) int64
        Population records set aside to top training sets up to ``train_size``; empty
        when half the audited records are enough.
    population : (z,) int64
        Population records RMIA compares with; no reference ever trains on them.
    train_size : int
        Records each reference trains on.
    n_target_train : int
        Records the target trained on (its members), for the size check.
    """

    audited: np.ndarray
    top_up: np.ndarray
    population: np.ndarray
    train_size: int
    n_target_train: int

    @property
    def candidates(self) -> np.ndarray:
        return np.concatenate([self.audited, self.top_up])

    @property
    def sizes(self) -> DesignSizes:
        return DesignSizes(self.train_size, int(self.top_up.size), int(self.population.size))

    def describe(self) -> dict:
        return {
            "train_size": self.train_size,
            "target_train_size": self.n_target_train,
            "n_audited_balanced": int(self.audited.size),
            "n_top_up": int(self.top_up.size),
            "n_population_compared": int(self.population.size),
            "design": "complementary pairs over the audited records, each reference on "
            "train_size records (topped up from the population or subsampled); population "
            "records compared by RMIA are never trained on",
        }

    def warnings(self) -> list[str]:
        found = []
        if self.train_size != self.n_target_train:
            found.append(
                f"each reference model trains on {self.train_size} records but the target "
                f"trained on {self.n_target_train} (references.train_size): references trained "
                "on a different number of records fit each record differently, and reference "
                "attacks may understate leakage"
            )
        if self.train_size < self.audited.size // 2:
            share = self.train_size / self.audited.size
            found.append(
                f"the references train on {self.train_size} records, fewer than half of the "
                f"{self.audited.size} audited records: each audited record is IN for about "
                f"{share:.0%} of them, so online attacks have fewer IN models to fit"
            )
        return found


@dataclass(frozen=True)
class DesignSizes:
    """How many records each part of the reference design gets (:func:`design_sizes`)."""

    train_size: int
    n_top_up: int
    n_compared: int


def design_sizes(
    n_members: int,
    n_nonmembers: int,
    n_population: int,
    *,
    train_size: int | None = None,
    population_size: int | None = None,
) -> DesignSizes:
    """The sizes of the reference design from the split's sizes alone (no data needed),
    so that an audit file's sizes can be checked before its data set is loaded.

    Each reference trains on ``train_size`` records (default ``n_members``): half of the
    audited records plus ``need`` from the population. Twice ``need`` are set aside for
    top-up when the population allows (for variety between references), at least
    ``need``; RMIA compares with the rest, at most ``population_size`` (10,000).

    Raises
    ------
    InvalidAuditInput
        When the population is too small to top the training sets up to ``train_size``.
    """
    n_audited = n_members + n_nonmembers
    size = int(train_size or n_members)
    need = max(0, size - n_audited // 2)
    if need > n_population:
        raise InvalidAuditInput(
            f"references.train_size: each reference must train on {size} records (the "
            f"target's {n_members} members unless train_size says otherwise), but half of "
            f"the {n_audited} audited records give {n_audited // 2} and the population "
            f"(split.population) holds only {n_population} more; give a population of at "
            f"least {need} records or a smaller train_size"
        )
    reserve = 0 if need == 0 else max(need, min(2 * need, n_population - need))
    if population_size is not None and population_size > n_population - reserve:
        raise InvalidAuditInput(
            f"references.population_size: {population_size} population records asked for "
            f"RMIA, but split.population holds {n_population}"
            + (f", {reserve} of them set aside to top training sets up" if reserve else "")
            + f"; give at most {n_population - reserve}, or leave it out (all of them)"
        )
    limit = population_size or DEFAULT_POPULATION_SIZE
    return DesignSizes(size, reserve, min(n_population - reserve, limit))


def plan_references(split: AuditSplit, setup: ReferenceSetup) -> ReferenceDesign:
    """The reference design of an audit, computed (and checked) before any training.

    Raises
    ------
    InvalidAuditInput
        When the population is too small to top the training sets up to ``train_size``.
    """
    sizes = design_sizes(
        split.members.size,
        split.nonmembers.size,
        split.population.size,
        train_size=setup.train_size,
        population_size=setup.population_size,
    )
    # A seeded order of the population, its own stream (never the pool's): the first
    # records top training sets up, the rest are RMIA's z.
    stream = np.random.default_rng(np.random.SeedSequence(setup.seed, spawn_key=(7,)))
    order = stream.permutation(split.population)
    reserve = sizes.n_top_up
    return ReferenceDesign(
        audited=split.audited,
        top_up=np.sort(order[:reserve]),
        population=np.sort(order[reserve : reserve + sizes.n_compared]),
        train_size=sizes.train_size,
        n_target_train=int(split.members.size),
    )


def check_population(specs: list, sizes: DesignSizes, n_population: int) -> None:
    """Refuse reference attacks that compare with population records (RMIA) when none is
    left for them."""
    lacking = [s.label for s in specs if s.requirements.references and s.requirements.population]
    if lacking and sizes.n_compared == 0:
        raise InvalidAuditInput(
            f"attacks {lacking} compare audited records with population records, but no "
            f"population record is left (split.population holds {n_population}, "
            f"{sizes.n_top_up} of them top the references' training sets up): give "
            "split.population records the target never saw"
        )


@dataclass(frozen=True, eq=False)
class ReferenceEvidence:
    """What the reference attacks may use, for the largest number of models asked for.

    ``match`` is the recipe-match table of all the models and ``design`` the records they
    trained on (both None in the self-audit, where references match the target by
    construction); ``calibration`` is the JSON-ready account of :func:`calibrate_epochs`.
    """

    audited_references: Observations
    audited_target: Observations | None  # None for a label-only target
    population_references: Observations | None
    population_target: Observations | None
    model_info: list[dict] = field(default_factory=list)
    queries: str = "none"
    match: RecipeMatch | None = None
    design: ReferenceDesign | None = None
    calibration: dict | None = None
    #: The reference models themselves (``TrainedModel``, pool order), for attacks that
    #: read more than their answers (the white-box attack's gradients): a sequence that
    #: loads each model when it is read (:class:`~miaudit.compute.pool.PoolModels`).
    models: Sequence = ()
    #: What trained the references (:func:`_describe_recipe`), for the report.
    recipe: dict | None = None
    #: Whether the user's training code gives the same model twice for one seed
    #: (:func:`check_determinism`); None when not measured.
    determinism: dict | None = None

    @property
    def n_models(self) -> int:
        return self.audited_references.n_models

    def with_models(self, k: int) -> ReferenceEvidence:
        """The same evidence restricted to the first ``k`` reference models (views of the
        answers, not copies)."""
        models = slice(0, k)
        pop = self.population_references
        return replace(
            self,
            audited_references=self.audited_references.select_models(models),
            population_references=None if pop is None else pop.select_models(models),
            model_info=self.model_info[:k],
            models=self.models[:k],
        )

    def describe(self) -> dict:
        """JSON-ready summary for the report."""
        train = [m.get("train_accuracy") for m in self.model_info]
        test = [m.get("test_accuracy") for m in self.model_info]
        out = {
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
        if self.design is not None:
            out["design"] = self.design.describe()
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        if self.recipe is not None:
            out["recipe"] = dict(self.recipe)
        if self.determinism is not None:
            out["determinism"] = dict(self.determinism)
        reseeded = {str(m["model"]): m["attempt"] for m in self.model_info if m.get("attempt")}
        if reseeded:
            out["reseeded"] = reseeded
        if self.match is not None:
            out["recipe_match"] = self.match.describe()
        return out


def _mean(values: list) -> float | None:
    clean = [v for v in values if v is not None]
    return float(np.mean(clean)) if clean else None


#: Query-set names a setup may give, besides "auto".
QUERY_SETS = ("none", "flips", "flips_and_shifts")


def resolve_queries(name: str, dataset: Dataset, recipe: Any = None) -> str:
    """The query set ``name`` stands for on ``dataset``, checked (no PyTorch needed).

    ``"auto"`` queries the views the models were trained on: the record and its mirror
    when ``recipe`` trains with augmentation on images, the record alone otherwise. A
    model that never saw a mirrored record answers on its mirror like on a new record, and
    averaging that answer in dilutes the evidence: measured on CIFAR-10 (LeNet-5 trained
    without augmentation, 4 references), flips cost offline RMIA 5 AUC points (0.633 vs
    0.681).
    """
    if name == "auto":
        augmented = bool(getattr(getattr(recipe, "training", None), "augment", False))
        name = "flips" if dataset.is_image and augmented else "none"
    if name not in QUERY_SETS:
        raise InvalidAuditInput(
            f"references.queries must be one of {['auto', *QUERY_SETS]}, got {name!r}"
        )
    if name != "none" and not dataset.is_image:
        raise InvalidAuditInput(
            f"references.queries: {name!r} augments images, but {dataset.name!r} is tabular; "
            "use 'none' or 'auto'"
        )
    return name


def reference_queries(target: Target, dataset: Dataset, setup: ReferenceSetup):
    """``(name, QuerySet)`` that the target and the references of ``setup`` are asked
    under: precomputed predictions can only answer on the records themselves."""
    if target.queries_by_index and setup.queries not in ("auto", "none"):
        raise InvalidAuditInput(
            "references.queries: precomputed predictions cannot be queried on augmented "
            "records; use 'none'"
        )
    name = "none" if target.queries_by_index else setup.queries
    return query_set(name, dataset, setup.recipe)


def query_set(name: str, dataset: Dataset, recipe: Any = None):
    """``(resolved name, QuerySet)`` of :func:`resolve_queries`."""
    from miaudit.compute import QuerySet

    name = resolve_queries(name, dataset, recipe)
    makers = {
        "none": QuerySet.none,
        "flips": QuerySet.flips,
        "flips_and_shifts": QuerySet.flips_and_shifts,
    }
    return name, makers[name]()


def with_param(recipe: Any, param: str, value: float) -> Any:
    """``recipe`` with one numeric setting changed: a keyword of the user's function
    (:class:`~miaudit.models.PythonRecipe`), a training field or architecture parameter of
    miaudit's trainer, an estimator parameter of a scikit-learn recipe.

    Raises
    ------
    InvalidAuditInput
        When the recipe has no such setting.
    """
    value = int(value) if float(value).is_integer() else float(value)
    if hasattr(recipe, "with_params"):  # the user's code: any keyword it takes
        params = getattr(recipe, "params", {})
        import inspect

        try:
            accepted = inspect.signature(recipe.train_fn).parameters
        except (TypeError, ValueError):
            accepted = {}
        open_ended = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        if param not in params and param not in accepted and not open_ended:
            raise InvalidAuditInput(
                f"{param!r} is not an argument of the training function {recipe.name}"
            )
        return recipe.with_params(**{param: value})
    training = getattr(recipe, "training", None)
    if training is not None and hasattr(training, param):
        return replace(recipe, training=replace(training, **{param: value}))
    arch_params = getattr(recipe, "arch_params", None)
    if arch_params is not None and param in arch_params:
        return replace(recipe, arch_params={**arch_params, param: value})
    estimator = getattr(recipe, "estimator", None)
    if estimator is not None and param in estimator.get_params():
        from sklearn.base import clone

        return replace(recipe, estimator=clone(estimator).set_params(**{param: value}))
    raise InvalidAuditInput(
        f"the references' recipe ({type(recipe).__name__}) has no setting {param!r} to calibrate"
    )


def calibrate_epochs(
    target_answers: Observations,
    dataset: Dataset,
    design: ReferenceDesign,
    setup: ReferenceSetup,
    is_member: np.ndarray,
    *,
    progress=None,
    answer_as=None,
) -> tuple[Any, dict]:
    """Pick, among ``setup.calibrate``'s values of ``setup.calibrate_param`` (epoch counts
    by default), the one whose references best match the target; return that recipe and a
    JSON-ready account of the choice. ``answer_as``
    wraps each reference as the target's answers are wrapped (its output defenses).

    For each candidate a pair of references (the pool's first two models: complementary
    halves of the audited records) is trained and compared with the target by
    :attr:`RecipeMatch.distance` (KS statistics of member/IN and non-member/OUT losses plus
    the accuracy gaps). Each candidate is trained as its own run rather than read from
    checkpoints of the longest run: under a cosine or one-cycle schedule the state at
    epoch ``e`` of a longer run is not a model trained for ``e`` epochs, and the chosen
    references must be trained exactly like a model of that recipe. The winning pair is
    the pool's first two models, so the cache hands them to the audit for free.

    ``target_answers`` are the target's observations on the audited records (the first
    query is the record itself), so calibrating queries the target no further.
    """
    from miaudit.compute import QuerySet, ReferencePool

    audited = design.audited
    target_loss = -target_answers.log_confidence[0, :, 0]
    target_correct = target_answers.correct[0]
    rows = []
    param = setup.calibrate_param
    for value in setup.calibrate:
        recipe = with_param(setup.recipe, param, value)
        pool = ReferencePool(
            recipe,
            dataset,
            design.candidates,
            n_models=2,
            seed=setup.seed,
            cache=setup.cache(),
            balanced=audited,
            train_size=design.train_size,
            executor=setup.make_executor(),
            memory_map_above=setup.memory_map_above,
        )
        pool.train(progress=progress, answer_on=[(audited, QuerySet.none(), answer_as)])
        refs = pool.observe(audited, queries=QuerySet.none(), answer_as=answer_as)
        match = measure_recipe_match(target_loss, target_correct, is_member, refs)
        rows.append(
            {
                "value": value,
                **({"epochs": value} if param == "epochs" else {}),
                "distance": match.distance,
                "train_accuracy": match.mean("train_accuracy"),
                "test_accuracy": match.mean("test_accuracy"),
                "train_loss": match.mean("train_loss"),
                "test_loss": match.mean("test_loss"),
                "n_matched": match.n_matched,
            }
        )
    best = min(rows, key=lambda r: r["distance"])
    return with_param(setup.recipe, param, best["value"]), {
        "param": param,
        "chosen_value": best["value"],
        **({"chosen_epochs": best["value"]} if param == "epochs" else {}),
        "distance": best["distance"],
        "candidates": rows,
        "rule": "smallest mean of KS(member, IN loss) + KS(non-member, OUT loss) + "
        "|train accuracy gap| + |test accuracy gap| over a pair of references",
    }


def gather_reference_evidence(
    target: Target,
    dataset: Dataset,
    split: AuditSplit,
    setup: ReferenceSetup,
    *,
    n_models: int,
    progress=None,
    design: ReferenceDesign | None = None,
    audited_target: Observations | None = None,
) -> ReferenceEvidence:
    """Train or load ``n_models`` references that mimic the target (see the module
    docstring), query them and the target, and measure how well they match it.

    ``audited_target`` is the target's observations on the audited records under the same
    queries when the caller already has them (the audit queries the target once); without
    it they are queried here."""
    from miaudit.compute import ReferencePool, observe_models

    query_name, queries = reference_queries(target, dataset, setup)
    design = design or plan_references(split, setup)
    audited = design.audited
    # A label-only target has no losses to compare the references with: they are trained
    # the same way, but neither calibrated, matched nor reseeded against it.
    answers = target.access >= AccessLevel.PROBABILITIES
    from miaudit.targets.defenses import same_defenses

    # References answer through the target's output defenses (the attacker knows them);
    # behind labels only there is nothing to compare, and label attacks query the models.
    answer_as = same_defenses(target) if answers else None
    if audited_target is None and answers:
        audited_target = observe_models([target], dataset, audited, queries=queries)
    recipe, calibration = setup.recipe, None
    if setup.predictions_file is not None:
        return _external_evidence(
            target, dataset, split, setup, n_models, design, query_name, queries, audited_target
        )
    if setup.calibrate and answers:
        recipe, calibration = calibrate_epochs(
            audited_target,
            dataset,
            design,
            setup,
            split.is_member,
            progress=progress,
            answer_as=answer_as,
        )
    pool = ReferencePool(
        recipe,
        dataset,
        design.candidates,
        n_models=n_models,
        seed=setup.seed,
        cache=setup.cache(),
        balanced=audited,
        train_size=design.train_size,
        executor=setup.make_executor(),
        memory_map_above=setup.memory_map_above,
    )
    population = design.population
    # Each reference answers every question as soon as it is trained and is released:
    # the pool holds one model at a time, and a rerun needs only the cached answers.
    questions = [(audited, queries, answer_as)]
    if population.size:
        questions.append((population, queries, answer_as))
    pool.train(progress=progress, answer_on=questions)

    audited_refs = pool.observe(audited, queries=queries, answer_as=answer_as)
    if population.size:
        pop_refs = pool.observe(population, queries=queries, answer_as=answer_as)
        pop_target = pool.observe_target(target, population, queries=queries) if answers else None
    else:
        pop_refs = pop_target = None
    if not answers:
        return ReferenceEvidence(
            audited_refs,
            None,
            pop_refs,
            None,
            [pool.model_info(k) for k in range(n_models)],
            query_name,
            design=design,
            models=pool.lazy_models(),
            recipe=_describe_recipe(recipe),
        )

    def match_of(refs: Observations) -> RecipeMatch:
        return measure_recipe_match(
            -audited_target.log_confidence[0, :, 0],
            audited_target.correct[0],
            split.is_member,
            refs,
        )

    match = match_of(audited_refs)
    for _ in range(setup.reseed):
        unmatched = [r["model"] for r in match.references if not r["matched"]]
        if not unmatched:
            break
        pool.reseed(unmatched, progress=progress)
        audited_refs = pool.observe(audited, queries=queries, answer_as=answer_as)
        if population.size:
            pop_refs = pool.observe(population, queries=queries, answer_as=answer_as)
        match = match_of(audited_refs)
    model_info = [pool.model_info(k) for k in range(n_models)]
    return ReferenceEvidence(
        audited_refs,
        audited_target,
        pop_refs,
        pop_target,
        model_info,
        query_name,
        match=match,
        design=design,
        calibration=calibration,
        models=pool.lazy_models(),
        recipe=_describe_recipe(recipe),
        determinism=check_determinism(pool, audited, queries, audited_refs, setup),
    )


def _external_evidence(
    target, dataset, split, setup, n_models, design, query_name, queries, audited_target
) -> ReferenceEvidence:
    """:func:`gather_reference_evidence` for references trained elsewhere: their answers
    are read from ``setup.predictions_file`` and checked against the design."""
    from miaudit.compute import observe_models
    from miaudit.external_references import load_external_evidence

    audited_refs, pop_refs, info = load_external_evidence(
        dataset, split, setup, n_models=n_models, design=design, queries_name=query_name
    )
    answers = audited_target is not None
    pop_target = None
    if answers and design.population.size:
        pop_target = observe_models([target], dataset, design.population, queries=queries)
    match = None
    if answers:
        match = measure_recipe_match(
            -audited_target.log_confidence[0, :, 0],
            audited_target.correct[0],
            split.is_member,
            audited_refs,
        )
    return ReferenceEvidence(
        audited_refs,
        audited_target,
        pop_refs,
        pop_target,
        info,
        query_name,
        match=match,
        design=design,
        recipe=_describe_recipe(setup.recipe),
    )


def _describe_recipe(recipe: Any) -> dict:
    """What trained the references, as the report gives it: the user's code with its
    files' sha256 for a :class:`~miaudit.models.PythonRecipe`, the kind and fingerprint
    for miaudit's own recipes."""
    describe = getattr(recipe, "describe", None)
    if callable(describe):
        return describe()
    return {"kind": type(recipe).__name__, "fingerprint": recipe.fingerprint()}


#: Records on which :func:`check_determinism` compares two trainings with one seed.
DETERMINISM_RECORDS = 256


def check_determinism(pool, audited, queries, audited_refs: Observations, setup) -> dict | None:
    """Train the first reference again with its seed and compare its answers with the
    first training's, on up to 256 audited records: whether the user's training code is
    deterministic, reported rather than assumed. Only for recipes of user code
    (``in_process_only``) and when ``setup.check_determinism``; miaudit's own trainers
    are deterministic by construction and test.

    Non-deterministic code still gives valid references (each is one draw of "a model like
    the target"); what it costs is that a cached model and a retrained one differ, so the
    report says so.
    """
    from miaudit.compute import observe_models

    if not getattr(setup, "check_determinism", True) or not getattr(
        pool.recipe, "in_process_only", False
    ):
        return None
    records = audited[: min(DETERMINISM_RECORDS, audited.size)]
    stored = None if pool.cache is None else _determinism_file(pool, records)
    if stored is not None and (known := _read_determinism(stored)) is not None:
        return {**_determinism_facts(records.size, known), "from_cache": True}
    again = pool.recipe.train(pool.dataset, pool.training_indices(0), seed=pool.model_seed(0))
    second = observe_models([again.model], pool.dataset, records, queries=queries)
    first = audited_refs.scaled_logit[0, : records.size]
    difference = float(np.max(np.abs(second.scaled_logit[0] - first)))
    if stored is not None:
        import json

        from miaudit.atomic import atomic_write

        stored.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(stored, lambda tmp: tmp.write_text(json.dumps({"difference": difference})))
    return {**_determinism_facts(records.size, difference), "from_cache": False}


def _determinism_facts(n_records: int, difference: float) -> dict:
    same = difference <= 1e-5
    return {
        "checked_records": int(n_records),
        "max_abs_difference_scaled_logit": difference,
        "deterministic": same,
        "note": "two trainings of reference 0 with one seed gave the same answers"
        if same
        else "two trainings of reference 0 with one seed gave different answers: the "
        "training code is not deterministic (GPU kernels, its own unseeded generators, "
        "threads); references are still valid draws, but a cached model and a retrained "
        "one differ",
    }


def _determinism_file(pool, records: np.ndarray):
    """Where the model cache keeps the outcome of a determinism check: keyed by reference
    0's cache key (code, params, data, records, seed) and the records compared."""
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(records, dtype=np.int64).tobytes()).hexdigest()
    return pool.cache.root / "determinism" / f"{pool.model_key(0)}-{digest[:16]}.json"


def _read_determinism(path) -> float | None:
    """The difference a past check measured, or None (absent, or not exactly what this
    code writes: one finite, non-negative float; anything else is ignored and redone)."""
    import json
    import math

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("difference") if isinstance(data, dict) and len(data) == 1 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return value
    return None


def reference_warnings(evidence: ReferenceEvidence, n_classes: int) -> list[str]:
    """Caveats that make a reference attack understate leakage: references that did not
    train, a training-set size unlike the target's, and references outside the
    recipe-match tolerance (with the direction to fix)."""
    found = []
    chance = 1.0 / n_classes
    ref_train = evidence.describe()["mean_train_accuracy"]
    if ref_train is not None and ref_train < 1.5 * chance:
        found.append(
            f"the reference models reach only {ref_train:.3f} accuracy on their own training "
            f"data (chance {chance:.3f}): they did not train, and reference attacks "
            "understate leakage"
        )
    if evidence.design is not None:
        found += evidence.design.warnings()
    if evidence.match is not None:
        found += evidence.match.warnings()
    if evidence.determinism is not None and not evidence.determinism["deterministic"]:
        found.append(evidence.determinism["note"])
    return found
