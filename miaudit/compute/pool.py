"""A pool of reference models on random halves of the candidate records, never trained twice.

LiRA (Carlini et al., S&P 2022) and RMIA (Zarifzadeh et al., ICML 2024) compare how the
target answers on a record with how models trained with ("IN") and without ("OUT") that
record answer. :class:`ReferencePool` trains those models by the target's recipe, each on
a random half of a set of candidate records, remembers which model saw which record (the
inclusion matrix), stores every model in a :class:`~miaudit.compute.cache.ModelCache`,
and queries them all on any records.

Inclusion: pairs of complementary halves
----------------------------------------
Models come in pairs. Pair ``j`` draws a random half ``H_j`` of the candidates from its
own random stream, ``SeedSequence(seed, spawn_key=(0, j))``; model ``2j`` trains on
``H_j`` and model ``2j + 1`` on the complement. Hence

* balance: with an even number of models every candidate is IN for exactly half of them
  (LiRA's balanced scheme, which LiRA obtains by sorting a random matrix per record); with
  an odd number the last model is the first of an unfinished pair, and each candidate is
  IN for ``⌊K/2⌋`` or ``⌈K/2⌉`` models; a pool of one model trains on a random half;
* stability: model ``k`` depends on ``(seed, candidates, k)`` only, never on ``n_models``,
  so asking for 8 models after 4 reuses the first 4 (same records, same seed, same cache
  key). LiRA's per-record sorting has balance but not this: its assignment changes with
  the number of models;
* order-free: the candidates are sorted before drawing, so the same set given in another
  order gives the same models (the inclusion matrix follows the order given).

With an odd number of candidates, ``H_j`` has ``⌊n/2⌋`` records and its complement one more.

Mimicking a target: a balanced core and a fixed training-set size
-----------------------------------------------------------------
In an audit of a given model, a reference stands in for the target only if it trains on
as many records as the target did: a model trained on twice the records fits each of them
less, and the attacks then understate leakage (measured on CIFAR-10: references on 10,000
records against a target on 5,000 cost RMIA 5 AUC points and lost to the loss attack).
``balanced`` names the candidates (the audited records) over which the complementary
pairs are drawn, and ``train_size`` the size of every training set:

* pair ``j`` splits the balanced records into ``H_j`` and its complement as above, so each
  balanced record is IN for exactly half of an even pool;
* a model whose part is smaller than ``train_size`` is topped up with records drawn from
  the other candidates (the top-up reservoir, e.g. population records set aside for it),
  ``SeedSequence(seed, spawn_key=(3, k))``; one whose part is larger keeps a random
  ``train_size`` of it (``spawn_key=(4, k)``), and each balanced record is then IN for
  about ``train_size / n_balanced`` of the models.

Without ``balanced`` and ``train_size`` the pool is the plain halves design (the self-audit
protocol, in which every model, the target included, trains on half of one data set).
``train_fraction`` other than 0.5 cannot be balanced by complements; each model then draws
its own ``round(train_fraction · n)`` records from ``SeedSequence(seed, spawn_key=(0, k))``
(independent subsets, as in LiRA's runs without experiment ids).

Model ``k`` is trained with seed ``SeedSequence(seed, spawn_key=(1, k))`` (one 32-bit
word), and its ``test_accuracy`` is measured on at most ``eval_sample`` candidates it did
not train on (a seeded sample, ``spawn_key=(2, k)``): the accuracy is for the report and a
sanity check, and 2,000 records pin it to about ±1 %.

Self-audit
----------
In the research protocol of both papers, models trained on halves of one data set take
turns as the target, the others acting as its references. Here, the target's pair partner
must sit out: its training set is the exact complement of the target's, so the references'
IN count for a record would reveal the record's membership (members are IN for one
reference fewer) — a bias that, e.g., RMIA's online average over all references picks up.
Without the partner, the references are whole pairs independent of the target, and every
record is IN for exactly half of them. :meth:`ReferencePool.references_for` and
:meth:`ReferencePool.leave_one_out` do this; :func:`self_audit_size` says how many models
to train for ``n_references`` references per target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from miaudit.compute.cache import ModelCache, cache_key, data_fingerprint
from miaudit.compute.ensemble import ensemble_ineligibility, ensemble_pays
from miaudit.compute.queries import QuerySet
from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput, NotFittedError, raise_if_problems
from miaudit.models.architectures import build_model
from miaudit.models.recipes import Recipe, TrainedModel, check_indices, trusted_types_of
from miaudit.models.training import _EVAL_BATCH, predict_logits, resolve_device
from miaudit.signals.observations import MEMORY_MAP_ABOVE_MB, OBSERVATION_DTYPE, Observations
from miaudit.signals.table import scaled_logit_and_log_confidence
from miaudit.targets.adapters import AccessLevel, Target, as_target, require_access
from miaudit.validation import is_int, is_real

__all__ = [
    "EVAL_SAMPLE",
    "MEMORY_MAP_ABOVE",
    "LeaveOneOut",
    "PoolModels",
    "PoolProgress",
    "ReferencePool",
    "observe_models",
    "self_audit_size",
]

logger = logging.getLogger(__name__)

#: Largest number of held-out candidates a model's test accuracy is measured on.
EVAL_SAMPLE = 2000

# Spawn keys of the random streams derived from the pool seed (see the module docstring).
_HALVES, _TRAIN_SEED, _EVAL, _TOP_UP, _SUBSET = 0, 1, 2, 3, 4
_ENSEMBLE_MODES = ("auto", "off", "on")
# Largest ensemble group (progress is reported once per group), and the most floats its
# stacked training sets may take (512 MB), so that e.g. MLPs on CIFAR train one by one.
_ENSEMBLE_GROUP = 16
_ENSEMBLE_BUDGET = 1 << 27
# The most multiply-adds one group may take (records x epochs x weights x 3 for forward and
# backward), so that an interrupted group loses little: 16 of Location's 446-128-30 MLPs on
# 1,252 records for 20 epochs (7.3e10) train in 1.3-2.3 s on 2 cores; a group of heavier
# models gets fewer members, down to one at a time.
_ENSEMBLE_WORK = 8 * 10**10
# Floats per chunk of augmented records in observe (a chunk of views is 128 MB).
_OBSERVE_BUDGET = 1 << 25

#: Bytes of answers above which :meth:`ReferencePool.observe` maps them from disk.
MEMORY_MAP_ABOVE = MEMORY_MAP_ABOVE_MB << 20

#: ``progress(done, total, info)`` after each model is loaded or trained; ``info`` holds
#: ``model``, ``from_cache``, ``seconds``, ``train_accuracy``, ``test_accuracy``, ``seed``,
#: ``n_train``, ``key``, ``n_to_train`` (models this call had to train) and
#: ``n_trained`` (of those, done so far): enough for a bar with an ETA.
PoolProgress = Callable[[int, int, dict], None]


def self_audit_size(n_references: int, n_targets: int = 1) -> int:
    """Models to train so that each of models ``0 … n_targets − 1`` can be the target with
    at least ``n_references`` references (all models but itself and its pair partner).

    ``max(n_references + 2, n_targets)``: targets 0 and 1 are partners, so two targets cost
    no more than one.
    """
    for name, value in (("n_references", n_references), ("n_targets", n_targets)):
        if not is_int(value) or value < 1:
            raise InvalidAuditInput(
                f"self_audit_size: {name} must be a positive int, got {value!r}"
            )
    return max(int(n_references) + 2, int(n_targets))


@dataclass(frozen=True, eq=False)
class LeaveOneOut:
    """One pool model audited as the target, the other pairs as its references.

    Attributes
    ----------
    target_index : int
        The model playing the target.
    target_model : TrainedModel
        That model (e.g. to compute plain signals with a target adapter).
    is_member : (n,) bool
        Which observed records it trained on: the ground truth of the audit.
    target : Observations
        Its answers, ``n_models == 1`` and ``inclusion`` None (as for a real target).
    references : Observations
        The answers of the models in ``reference_indices``, with their inclusion.
    reference_indices : (n_references,) int64
        Pool indices of the references: every model but the target and its partner.
    """

    target_index: int
    target_model: TrainedModel
    is_member: np.ndarray
    target: Observations
    references: Observations
    reference_indices: np.ndarray


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class _Answerer:
    """How to get one model's answers on a batch: logits or probabilities, and whether
    it is queried with records or with record ids (precomputed predictions)."""

    fn: Callable[[Any], np.ndarray]
    logits: bool
    by_index: bool
    wants_tensor: bool


def _answerer(model: Any, n_classes: int) -> _Answerer:
    if isinstance(model, TrainedModel):
        model = model.model
    if isinstance(model, nn.Module):
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        batch = _EVAL_BATCH.get(device.type, 2048)
        return _Answerer(lambda x: predict_logits(model, x, batch_size=batch), True, False, True)
    if not isinstance(model, Target):
        # Any model a recipe returns: a classifier with predict_proba (scikit-learn,
        # XGBoost, LightGBM), a callable of the user's training code.
        model = as_target(model, n_classes=n_classes)
    if model.access >= AccessLevel.LOGITS:
        return _Answerer(model.predict_logits, True, model.queries_by_index, False)
    require_access(model, AccessLevel.PROBABILITIES, "reference-model attacks (LiRA, RMIA)")
    return _Answerer(model.predict_proba, False, model.queries_by_index, False)


def _answerer_as(model: Any, answer_as: Callable[[Any], Any] | None, n_classes: int) -> _Answerer:
    """The answerer of ``model`` as the attacker queries it: through ``answer_as`` (the
    target's output defenses) where one is given."""
    return _answerer(model if answer_as is None else answer_as(model), n_classes)


def _check_views(answerers: list[_Answerer], queries: QuerySet, dataset: Dataset) -> QuerySet:
    if not answerers:
        raise InvalidAuditInput("observe: no models to query")
    views = queries.for_records(dataset.input_shape)
    if any(a.by_index for a in answerers) and not views.is_identity:
        raise InvalidAuditInput(
            f"observe: precomputed predictions cannot answer {len(views)} augmented views of "
            "a record; use QuerySet.none()"
        )
    return views


def _answer_into(
    answerers: list[_Answerer],
    slots: Sequence[int],
    dataset: Dataset,
    records: np.ndarray,
    views: QuerySet,
    phi: np.ndarray,
    log_p: np.ndarray,
    correct: np.ndarray,
    first_view: list[np.ndarray] | None = None,
) -> None:
    """Write answerer ``j``'s φ, log p_y and first-view correctness into row ``slots[j]``
    of ``phi``, ``log_p`` (m, n, a) and ``correct`` (m, n), chunk of records by chunk.

    Each chunk is augmented once for all models; a model's answers on it are computed in
    float64 and rounded only when stored, so nothing larger than one chunk's answers is
    ever held besides the output arrays themselves (which may be memory-mapped)."""
    n, a = records.size, len(views)
    per_record = int(np.prod(dataset.input_shape)) * a
    chunk = max(1, _OBSERVE_BUDGET // per_record)
    for lo in range(0, n, chunk):
        ids = records[lo : lo + chunk]
        c = ids.size
        flat = views.apply(torch.from_numpy(dataset.x[ids])).reshape(a * c, *dataset.input_shape)
        flat_np = None
        labels = np.tile(dataset.y[ids], a)  # row q * c + i is view q of record i
        for j, ans in enumerate(answerers):
            k = slots[j]
            if ans.by_index:
                out = ans.fn(ids)
            elif ans.wants_tensor:
                out = ans.fn(flat)
            else:
                flat_np = flat.numpy() if flat_np is None else flat_np
                out = ans.fn(flat_np)
            out = np.asarray(out, dtype=np.float64)
            expected = (a * c, dataset.n_classes)
            if out.shape != expected:
                raise InvalidAuditInput(
                    f"observe: model {k} answered with shape {out.shape}, expected {expected}"
                )
            if not np.isfinite(out).all():
                raise InvalidAuditInput(
                    f"observe: model {k} answered with NaN or infinite values (did its "
                    "training diverge?)"
                )
            ph, lp = scaled_logit_and_log_confidence(out, labels, from_logits=ans.logits)
            phi[k, lo : lo + c] = ph.reshape(a, c).T
            log_p[k, lo : lo + c] = lp.reshape(a, c).T
            correct[k, lo : lo + c] = out[:c].argmax(axis=1) == labels[:c]  # the first view
            if j == 0 and first_view is not None:
                first_view.append(out[:c])


def observe_models(
    models: Sequence[Any],
    dataset: Dataset,
    records: np.ndarray,
    *,
    queries: QuerySet,
    inclusion: np.ndarray | None = None,
    first_view: list[np.ndarray] | None = None,
) -> Observations:
    """Every model's answers on ``records`` under every query, in one pass over the data.

    Parameters
    ----------
    models : sequence
        ``torch.nn.Module``, :class:`~miaudit.models.TrainedModel`, fitted scikit-learn
        classifiers, or target adapters (logit access gives exact φ; probability access
        computes φ from probabilities; label-only access is refused).
    dataset : Dataset
        Where the records are.
    records : (n,) int array
        Distinct dataset indices.
    queries : QuerySet
        Views of each record; reduced to the identity for tabular records (with a
        warning, see :meth:`QuerySet.for_records`).
    inclusion : (m, n) bool, optional
        Passed through to the result.
    first_view : list, optional
        When given, the first model's raw answers (logits or probabilities, float64) on
        the first view are appended to it chunk by chunk, so that a caller can compute
        every signal from the same answers without querying the model again.

    Returns
    -------
    Observations
        ``scaled_logit`` and ``log_confidence`` of shape ``(m, n, n_queries)``, computed
        in float64 and stored in float32
        (:data:`~miaudit.signals.observations.OBSERVATION_DTYPE`).

    Raises
    ------
    InvalidAuditInput
        Bad records, a model that cannot be queried, augmented queries to precomputed
        predictions, or non-finite answers (a model whose training diverged).
    AccessLevelError
        A label-only target.

    Notes
    -----
    Records are processed in chunks whose views fit in about 128 MB; every model answers
    a chunk's views in one call (``predict_logits`` batches them), and the chunk is
    augmented once for all models.
    """
    records = check_indices(records, dataset.n_records, "records")
    answerers = [_answerer(m, dataset.n_classes) for m in models]
    views = _check_views(answerers, queries, dataset)
    m, n, a = len(answerers), records.size, len(views)
    phi = np.empty((m, n, a), OBSERVATION_DTYPE)
    log_p = np.empty((m, n, a), OBSERVATION_DTYPE)
    correct = np.empty((m, n), dtype=bool)
    _answer_into(answerers, range(m), dataset, records, views, phi, log_p, correct, first_view)
    return Observations(records, phi, log_p, inclusion, correct)


def _answer_arrays(shape: tuple[int, int, int], spill_dir: Any) -> tuple[np.ndarray, np.ndarray]:
    """Empty φ and log p_y arrays of ``shape``: in memory, or, with ``spill_dir``, mapped
    from a file there that is unlinked at once (the mapping keeps it until the arrays are
    freed; nothing stays on disk, even after a crash, and the OS pages the answers in and
    out instead of holding them in the process's memory)."""
    if spill_dir is None:
        return np.empty(shape, OBSERVATION_DTYPE), np.empty(shape, OBSERVATION_DTYPE)
    import os
    import tempfile

    os.makedirs(spill_dir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="observations-", suffix=".f32", dir=spill_dir)
    try:
        os.close(fd)
        block = np.memmap(path, dtype=OBSERVATION_DTYPE, mode="w+", shape=(2, *shape))
    finally:
        os.unlink(path)
    return block[0], block[1]


def load_cached_model(cache: ModelCache, key: str, recipe: Any) -> TrainedModel | None:
    """Model ``key`` from ``cache`` on ``recipe``'s device, or None. What a cached model may
    hold is the recipe's decision, never the cache's. Used by the pool and by the workers
    that answer queries with cached models."""
    found = cache.get(key, trusted_types=trusted_types_of(recipe))
    if found is None:
        return None
    trained = found.trained
    device = getattr(getattr(recipe, "training", None), "device", None)
    if device is not None and isinstance(trained.model, nn.Module):
        trained.model.to(resolve_device(device))
    return trained


# --------------------------------------------------------------------------- pool


def _stream(seed: int, purpose: int, k: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(purpose, k)))


class ReferencePool:
    """Reference models trained by one recipe on random halves of the candidate records.

    Parameters
    ----------
    recipe : Recipe
        Trains "one more model like the target" (:class:`~miaudit.models.TorchRecipe` or
        :class:`~miaudit.models.SklearnRecipe`).
    dataset : Dataset
        Source of every record.
    candidates : (n_candidates,) int array
        Distinct dataset indices the models may train on (for an online attack: the
        audited records and the population).
    n_models : int
        Number of models.
    seed : int
        Fixes the inclusion matrix and every model's training seed.
    cache : ModelCache, optional
        Where trained models are stored and found. None keeps them in memory only.
    train_fraction : float
        Share of the candidates each model trains on; 0.5 (the default) is the balanced
        pair scheme of the module docstring. Ignored when ``train_size`` is given.
    balanced : (n_balanced,) int array, optional
        Candidates over which the complementary pairs are drawn (the audited records of an
        audit); the other candidates only top training sets up to ``train_size``. Default:
        every candidate.
    train_size : int, optional
        Records every model trains on (the target's training-set size). Default: half of
        the balanced records (half of the candidates without ``balanced``).
    training_sets, seeds : sequences, optional
        Explicit training records (each a subset of the candidates) and training seeds of
        the ``n_models`` models, for designs drawn elsewhere: the shadow models of Shokri
        et al. are trained, cached and batched through a pool this way, so that shadow and
        reference models share one training path and one cache.
    ensemble : {"auto", "off", "on"}
        Train eligible models (MLPs, LeNet-5 and the small CNN without dropout, see
        :func:`~miaudit.compute.ensemble.ensemble_ineligibility`) as batched ensembles of
        up to 16 with equal training-set sizes. ``"auto"`` does so where it was measured
        faster (:func:`~miaudit.compute.ensemble.ensemble_pays`: MLPs, 1.1x with one
        thread and 1.4x with two on a CPU; the CNNs on a GPU only), ``"on"`` whenever the
        recipe is eligible (and requires it), ``"off"`` trains one model after another.
    eval_sample : int
        Largest number of held-out candidates each model's test accuracy uses.
    executor : executor, optional
        Where the models train (:mod:`miaudit.compute.executors`): in this process (the
        default), a local process pool, or Ray. Every executor trains the same models.
    memory_map_above : int or None, default 512 MiB
        With a model cache, :meth:`observe` keeps answers (φ and log p_y, float32) larger
        than this many bytes in a memory-mapped file on the cache's disk instead of in the
        process's memory, and fills it one model at a time from the answer cache, so that
        what the process holds grows with records × queries, not with the number of
        models as well. None never maps.

    Attributes
    ----------
    models_ : list of TrainedModel
        Set by :meth:`train`, in model order.

    Examples
    --------
    >>> pool = ReferencePool(recipe, data, candidates, n_models=16, cache=ModelCache())
    >>> models = pool.train(progress=print)                  # doctest: +SKIP
    >>> refs = pool.observe(audited, queries=QuerySet.flips())  # doctest: +SKIP
    """

    def __init__(
        self,
        recipe: Recipe,
        dataset: Dataset,
        candidates: np.ndarray,
        *,
        n_models: int,
        seed: int = 0,
        cache: ModelCache | None = None,
        train_fraction: float = 0.5,
        balanced: np.ndarray | None = None,
        train_size: int | None = None,
        training_sets: Sequence[np.ndarray] | None = None,
        seeds: Sequence[int] | None = None,
        ensemble: str = "auto",
        eval_sample: int = EVAL_SAMPLE,
        executor: Any = None,
        memory_map_above: int | None = MEMORY_MAP_ABOVE,
    ) -> None:
        problems: list[str] = []
        if not (hasattr(recipe, "train") and hasattr(recipe, "fingerprint")):
            problems.append(f"recipe must be a Recipe, got {type(recipe).__name__}")
        if not isinstance(dataset, Dataset):
            problems.append(f"dataset must be a Dataset, got {type(dataset).__name__}")
        for name, value, low in (
            ("n_models", n_models, 1),
            ("seed", seed, 0),
            ("eval_sample", eval_sample, 1),
            ("memory_map_above", 0 if memory_map_above is None else memory_map_above, 0),
        ):
            if not is_int(value) or value < low:
                problems.append(f"{name} must be an int >= {low}, got {value!r}")
        if cache is not None and not isinstance(cache, ModelCache):
            problems.append(f"cache must be a ModelCache or None, got {type(cache).__name__}")
        if not is_real(train_fraction) or not 0 < train_fraction < 1:
            problems.append(f"train_fraction must lie in (0, 1), got {train_fraction!r}")
        if ensemble not in _ENSEMBLE_MODES:
            problems.append(f"ensemble must be one of {_ENSEMBLE_MODES}, got {ensemble!r}")
        raise_if_problems("ReferencePool", problems)
        cand = check_indices(candidates, dataset.n_records, "candidates")
        if cand.size < 2:
            raise InvalidAuditInput("ReferencePool: candidates must hold at least 2 records")
        explicit = None
        if training_sets is not None:
            explicit = [check_indices(t, dataset.n_records, "training_sets") for t in training_sets]
            if len(explicit) != n_models or seeds is None or len(seeds) != n_models:
                problems.append(
                    f"training_sets and seeds must each hold n_models = {n_models} entries"
                )
            elif any(not is_int(x) or x < 0 for x in seeds):
                problems.append("seeds must be non-negative ints")
            elif any(np.setdiff1d(t, cand).size for t in explicit):
                problems.append("training_sets: every training record must be a candidate")
            if balanced is not None or train_size is not None:
                problems.append("training_sets exclude balanced and train_size")
        core = None
        if balanced is not None:
            core = np.sort(check_indices(balanced, dataset.n_records, "balanced"))
            if (outside := np.setdiff1d(core, cand).size) > 0:
                problems.append(f"balanced: {outside} records are not candidates")
        if train_size is not None:
            n_core = cand.size if core is None else core.size
            if not is_int(train_size) or train_size < 1:
                problems.append(f"train_size must be a positive int, got {train_size!r}")
            elif (need := int(train_size) - n_core // 2) > cand.size - n_core:
                problems.append(
                    f"train_size {train_size} needs {need} records beyond half of the "
                    f"{n_core} balanced records, but only {cand.size - n_core} other "
                    "candidates exist"
                )
        raise_if_problems("ReferencePool", problems)
        if ensemble == "on" and (reason := ensemble_ineligibility(recipe, dataset)):
            raise InvalidAuditInput(f"ReferencePool: ensemble='on' but {reason}")
        recipe.validate(dataset)

        self.recipe = recipe
        self.dataset = dataset
        self.candidates = cand
        self.n_models = int(n_models)
        self.seed = int(seed)
        self.cache = cache
        self.train_fraction = float(train_fraction)
        self.balanced = core
        self.train_size = None if train_size is None else int(train_size)
        self._explicit = explicit
        self._explicit_seeds = None if explicit is None else [int(x) for x in seeds]
        self.ensemble = ensemble
        self.eval_sample = int(eval_sample)
        from miaudit.compute.executors import InProcessExecutor

        if executor is not None and executor.remote and getattr(recipe, "in_process_only", 0):
            logger.warning(
                "%s trains in this process: the %s executor cannot import the user's "
                "training code in its workers",
                type(recipe).__name__,
                executor.name,
            )
            executor = None
        self.executor = executor if executor is not None else InProcessExecutor()
        self.memory_map_above = None if memory_map_above is None else int(memory_map_above)

        self._sorted = np.sort(cand)
        self._inclusion_sorted = self._draw_inclusion()
        self._data_fp: str | None = None
        self.models_: list[TrainedModel] | None = None
        self._info: list[dict] | None = None
        self._attempts: dict[int, int] = {}
        self.answers_from_cache = 0
        self._answer_on: list[tuple] = []

    # ------------------------------------------------------------------ inclusion

    def _draw_inclusion(self) -> np.ndarray:
        n = self._sorted.size
        inc = np.zeros((self.n_models, n), dtype=bool)
        if self._explicit is not None:
            for k, records in enumerate(self._explicit):
                inc[k, np.searchsorted(self._sorted, records)] = True
            return inc
        if self.balanced is not None or self.train_size is not None:
            return self._draw_sized_inclusion(inc)
        if self.train_fraction == 0.5:
            for j in range(0, self.n_models, 2):
                half = _stream(self.seed, _HALVES, j // 2).permutation(n)[: n // 2]
                inc[j, half] = True
                if j + 1 < self.n_models:
                    inc[j + 1] = ~inc[j]
        else:
            size = min(max(round(self.train_fraction * n), 1), n - 1)
            for k in range(self.n_models):
                inc[k, _stream(self.seed, _HALVES, k).permutation(n)[:size]] = True
        return inc

    def _draw_sized_inclusion(self, inc: np.ndarray) -> np.ndarray:
        """Complementary pairs over the balanced records, each part resized to
        ``train_size`` (see "Mimicking a target" in the module docstring)."""
        if self.balanced is None:
            core = np.arange(self._sorted.size)
        else:
            core = np.searchsorted(self._sorted, self.balanced)
        reservoir = np.setdiff1d(np.arange(self._sorted.size), core)
        size = self.train_size if self.train_size is not None else core.size // 2
        for j in range(0, self.n_models, 2):
            order = _stream(self.seed, _HALVES, j // 2).permutation(core.size)
            parts = (core[order[: core.size // 2]], core[order[core.size // 2 :]])
            for k, part in zip((j, j + 1), parts, strict=True):
                if k >= self.n_models:
                    break
                if part.size > size:
                    part = _stream(self.seed, _SUBSET, k).choice(part, size, replace=False)
                elif part.size < size:
                    extra = _stream(self.seed, _TOP_UP, k).choice(
                        reservoir, size - part.size, replace=False
                    )
                    part = np.concatenate([part, extra])
                inc[k, part] = True
        return inc

    @property
    def inclusion(self) -> np.ndarray:
        """``(n_models, n_candidates)`` bool: model ``k`` trained on ``candidates[i]``.

        Columns follow the order of ``candidates`` as given; a fresh copy each call.
        """
        cols = np.searchsorted(self._sorted, self.candidates)
        return self._inclusion_sorted[:, cols].copy()

    def _check_model(self, k: int) -> int:
        if not is_int(k) or not 0 <= k < self.n_models:
            raise InvalidAuditInput(
                f"model index must be an int in [0, {self.n_models}), got {k!r}"
            )
        return int(k)

    def training_indices(self, k: int) -> np.ndarray:
        """Sorted dataset indices model ``k`` trains on (``candidates[inclusion[k]]``)."""
        return self._sorted[self._inclusion_sorted[self._check_model(k)]]

    def model_seed(self, k: int) -> int:
        """The seed model ``k`` is trained with: a function of ``(seed, k)`` only, and of
        the attempt when :meth:`reseed` replaced it."""
        k = self._check_model(k)
        attempt = self._attempts.get(k, 0)
        if self._explicit_seeds is not None and attempt == 0:
            return self._explicit_seeds[k]
        key = (_TRAIN_SEED, k) if attempt == 0 else (_TRAIN_SEED, k, attempt)
        ss = np.random.SeedSequence(self.seed, spawn_key=key)
        return int(ss.generate_state(1, dtype=np.uint32)[0])

    def attempts(self) -> dict[int, int]:
        """Models :meth:`reseed` retrained, and how many times."""
        return dict(self._attempts)

    def reseed(self, models: Sequence[int], progress: PoolProgress | None = None) -> None:
        """Retrain ``models`` on the same records with a fresh seed (cache first).

        Their training records, and so the inclusion matrix and its balance, stay as they
        are; only the randomness of their training (initial weights, batch order) changes.
        This is how an audit replaces a reference that a fragile recipe trained unlike the
        target (see :func:`miaudit.references.gather_reference_evidence`).
        """
        self._check_trained()
        ks = sorted({self._check_model(k) for k in models})
        for k in ks:
            self._attempts[k] = self._attempts.get(k, 0) + 1
        self._obtain(ks, progress)

    def eval_indices(self, k: int) -> np.ndarray:
        """Sorted candidates model ``k`` did not train on, at most ``eval_sample`` of them."""
        out = self._sorted[~self._inclusion_sorted[self._check_model(k)]]
        if out.size > self.eval_sample:
            out = np.sort(_stream(self.seed, _EVAL, k).choice(out, self.eval_sample, replace=False))
        return out

    def partner(self, k: int) -> int | None:
        """The model trained on the complement of model ``k``'s half, if in the pool."""
        k = self._check_model(k)
        sized = self.balanced is not None or self.train_size is not None
        if self.train_fraction != 0.5 or sized or self._explicit is not None:
            return None
        other = k ^ 1
        return other if other < self.n_models else None

    def references_for(self, k: int) -> np.ndarray:
        """Models that may serve as references when model ``k`` is the target: all but
        ``k`` and its partner (see "Self-audit" in the module docstring)."""
        k = self._check_model(k)
        out = {k, self.partner(k)}
        return np.array([j for j in range(self.n_models) if j not in out], dtype=np.int64)

    @property
    def data_fingerprint(self) -> str:
        """:func:`~miaudit.compute.cache.data_fingerprint` of the data set, computed once."""
        if self._data_fp is None:
            self._data_fp = data_fingerprint(self.dataset)
        return self._data_fp

    def model_key(self, k: int) -> str:
        """Cache key of model ``k``."""
        return cache_key(
            self.recipe.fingerprint(),
            self.data_fingerprint,
            self.training_indices(k),
            self.model_seed(k),
        )

    # ------------------------------------------------------------------ training

    def _use_ensemble(self) -> bool:
        if self.ensemble == "off" or ensemble_ineligibility(self.recipe, self.dataset):
            return False
        return self.ensemble == "on" or ensemble_pays(self.recipe)

    def train(
        self, progress: PoolProgress | None = None, *, answer_on: Sequence[tuple] = ()
    ) -> list[TrainedModel]:
        """Load every model the cache has, train the others (and cache them).

        Parameters
        ----------
        progress : callable, optional
            ``progress(done, total, info)`` after each model; see :data:`PoolProgress`.
        answer_on : sequence of ``(records, queries, answer_as)``, optional
            With a model cache: the questions :meth:`observe` will ask. Each model is then
            trained (or loaded), answers them, stores its answers in the answer cache and
            is released before the next, so that the pool never holds more than one model
            (one ensemble group) however many it trains; a model whose answers are all
            cached is not even loaded. :meth:`observe` reads the answers back, and
            :meth:`load_model` brings a released model back when an attack needs it.
            This is also how a model that no cache format can store (a network of the
            user's own class) is audited again without retraining.

        Returns
        -------
        list of TrainedModel
            One per model, in model order (also kept as ``models_``). A second call
            returns the same models without looking anything up. Released models have
            ``model`` None (their accuracies, seed and size are kept).
        """
        if self.models_ is not None:
            return list(self.models_)
        questions = [self._question(*a) for a in answer_on] if self.cache is not None else []
        # Answers through a defense without a stable text cannot be cached: no streaming.
        streamable = all(tag is not None for *_, tag in questions)
        self._answer_on = questions if streamable else []
        start = time.perf_counter()
        self.models_ = [None] * self.n_models  # type: ignore[list-item]
        self._info = [None] * self.n_models  # type: ignore[list-item]
        try:
            n_trained = self._obtain(list(range(self.n_models)), progress)
        except BaseException:  # interrupted or failed: no half-filled pool stays behind
            self.models_ = self._info = None
            raise
        logger.info(
            "reference pool: %d models (%d from cache, %d trained) in %.1f s",
            self.n_models,
            self.n_models - n_trained,
            n_trained,
            time.perf_counter() - start,
        )
        return list(self.models_)

    def _obtain(self, ks: list[int], progress: PoolProgress | None) -> int:
        """Load models ``ks`` from the cache or train them (in ensemble groups where
        eligible, caching each); fill ``models_`` and the info. Returns how many trained."""
        assert self.models_ is not None and self._info is not None
        keys = {k: self.model_key(k) if self.cache is not None else None for k in ks}
        done = 0

        def report(k: int, trained: TrainedModel, from_cache: bool, n_trained: int) -> None:
            nonlocal done
            self.models_[k] = trained
            self._info[k] = {
                "model": k,
                "from_cache": from_cache,
                "seconds": float(trained.seconds),
                "train_accuracy": trained.train_accuracy,
                "test_accuracy": trained.test_accuracy,
                "n_train": trained.n_train,
                "seed": trained.seed,
                "key": keys[k],
                "n_to_train": len(missing),
                "n_trained": n_trained,
                "attempt": self._attempts.get(k, 0),
            }
            done += 1
            if progress is not None:
                progress(done, len(ks), dict(self._info[k]))

        missing = list(ks)
        if self.cache is not None:
            hits = {k: self._load_hit(keys[k]) for k in ks}
            missing = [k for k in ks if hits[k] is None]
            for k, trained in hits.items():
                if trained is not None:
                    report(k, trained, True, 0)

        n_trained = 0
        groups = self._training_groups(missing)
        if not groups:
            return 0
        tasks = [self._task(group, keys) for group in groups]
        if not self.executor.remote:
            for group, task in zip(groups, tasks, strict=True):
                with self._locked(task.keys):
                    # Another audit sharing the cache may have trained them meanwhile.
                    if self.cache is not None:
                        found = {k: self._load_hit(keys[k]) for k in group}
                        if all(t is not None for t in found.values()):
                            for k in group:
                                report(k, found[k], True, n_trained)
                            continue
                    for _, models in self._run_naming_models(task, group):
                        for k, trained in zip(group, models, strict=True):
                            if self.cache is not None:
                                self.cache.put(keys[k], trained, self.recipe, self.dataset)
                            n_trained += 1
                            report(k, self._answer_and_release(keys[k], trained), False, n_trained)
                        del models
            return n_trained
        # Remote workers store what they train in the cache (a temporary one when the pool
        # has none) and return the keys.
        import shutil
        import tempfile

        scratch = None
        cache = self.cache
        if cache is None:
            scratch = tempfile.mkdtemp(prefix="miaudit-pool-")
            cache = ModelCache(scratch)
        try:
            for i, _ in self.executor.run(self.recipe, self.dataset, tasks, cache):
                for k, key in zip(groups[i], tasks[i].keys, strict=True):
                    trained = self._load(cache, key)
                    if trained is None:
                        raise InvalidAuditInput(
                            f"{self.executor.name} executor: model {k} is missing from the "
                            f"model cache at {cache.root} after training (is it a path the "
                            "workers share?)"
                        )
                    n_trained += 1
                    report(k, self._answer_and_release(key, trained), False, n_trained)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        return n_trained

    def _load(self, cache: ModelCache, key: str) -> TrainedModel | None:
        return load_cached_model(cache, key, self.recipe)

    def _run_naming_models(self, task, group: list[int]):
        """The executor's run of one task; a failure of the user's training code names
        the pool's models it was training (their work before is already cached)."""
        from miaudit.errors import UserCodeError

        try:
            yield from self.executor.run(self.recipe, self.dataset, [task], self.cache)
        except UserCodeError as error:
            which = ", ".join(map(str, group))
            raise UserCodeError(
                f"pool model {which} of {self.n_models}: {error}"
            ) from error.__cause__

    def _locked(self, keys):
        """The cache's lock on ``keys`` (no lock without a cache)."""
        from contextlib import nullcontext

        return nullcontext() if self.cache is None else self.cache.lock(keys)

    # ------------------------------------------------------------------ streaming

    def _question(self, records, queries: QuerySet, answer_as=None) -> tuple:
        """One of :meth:`train`'s ``answer_on`` questions, checked, with its views and the
        text of its defenses (for the answer keys)."""
        from miaudit.compute.answers import defenses_tag

        records = check_indices(records, self.dataset.n_records, "records")
        views = queries.for_records(self.dataset.input_shape)
        return records, views, answer_as, defenses_tag(answer_as)

    def _answer_keys(self, model_key: str) -> list[str]:
        from miaudit.compute.answers import answer_key

        return [answer_key(model_key, r, v, tag) for r, v, _, tag in self._answer_on]

    def _answers_cached(self, model_key: str) -> bool:
        from miaudit.compute.answers import AnswerCache

        store = AnswerCache(self.cache.root)
        return all(
            store.path(key).is_file() for key in self._answer_keys(model_key)
        )  # read (and checked) when observe asks

    def _load_hit(self, key: str) -> TrainedModel | None:
        """A cached model: its facts only when the answers it is asked for are cached too
        (the model is not loaded at all), else the model (answered and released)."""
        if not self._answer_on:
            found = self._load(self.cache, key)
            return found if found is None or found.model is not None else None
        trusted = trusted_types_of(self.recipe)
        facts = self.cache.get(key, trusted_types=trusted, load_model=False)
        if facts is None:
            return None
        if self._answers_cached(key):
            return facts.trained
        trained = self._load(self.cache, key)
        if trained is None or trained.model is None:
            return None  # an answers-only entry lacking answers: train it again
        return self._answer_and_release(key, trained)

    def _answer_and_release(self, model_key: str, trained: TrainedModel) -> TrainedModel:
        """With :meth:`train`'s ``answer_on``: answer every question with the model
        cached as ``model_key``, store the answers, and return its facts without the
        model (released)."""
        if not self._answer_on:
            return trained
        from miaudit.compute.answers import AnswerCache

        store = AnswerCache(self.cache.root)
        for (records, views, answer_as, _), key in zip(
            self._answer_on, self._answer_keys(model_key), strict=True
        ):
            if store.get(key, records, len(views)) is not None:
                continue
            shape = (1, records.size, len(views))
            phi, log_p = np.empty(shape, OBSERVATION_DTYPE), np.empty(shape, OBSERVATION_DTYPE)
            correct = np.empty(shape[:2], dtype=bool)
            answerer = _answerer_as(trained.model, answer_as, self.dataset.n_classes)
            _answer_into([answerer], [0], self.dataset, records, views, phi, log_p, correct)
            store.put(key, records, phi[0], log_p[0], correct[0])
        return replace(trained, model=None)

    def load_model(self, k: int) -> TrainedModel:
        """Model ``k`` itself, for an attack that reads more than its answers: held, else
        from the model cache, else (a model no cache format stores) trained again with its
        seed on its records. Released again by the caller dropping it."""
        models = self._check_trained()
        k = self._check_model(k)
        if models[k].model is not None:
            return models[k]
        if self.cache is not None:
            found = self._load(self.cache, self.model_key(k))
            if found is not None and found.model is not None:
                return found
        return self.recipe.train(
            self.dataset,
            self.training_indices(k),
            seed=self.model_seed(k),
            eval_indices=self.eval_indices(k),
        )

    def lazy_models(self) -> PoolModels:
        """The pool's models as a sequence that loads each one when it is read
        (:meth:`load_model`), so that iterating holds one model at a time."""
        return PoolModels(self, tuple(range(self.n_models)))

    def _task(self, group: list[int], keys: dict[int, str | None]):
        """What an executor needs to train ``group`` (one model, or an ensemble group):
        :func:`~miaudit.compute.executors.run_task` trains it as the pool always did."""
        from miaudit.compute.executors import TrainTask

        return TrainTask(
            models=tuple(group),
            keys=tuple(keys[k] or self.model_key(k) for k in group),
            training_indices=tuple(self.training_indices(k) for k in group),
            seeds=tuple(self.model_seed(k) for k in group),
            eval_indices=tuple(self.eval_indices(k) for k in group),
        )

    def _training_groups(self, missing: list[int]) -> list[list[int]]:
        if not self._use_ensemble():
            return [[k] for k in missing]
        by_size: dict[int, list[int]] = {}
        for k in missing:
            by_size.setdefault(int(self._inclusion_sorted[k].sum()), []).append(k)
        groups = []
        record_floats = int(np.prod(self.dataset.input_shape))
        per_record = 3 * self.recipe.training.epochs * self._weights()
        for n_train, ks in by_size.items():
            size = min(
                _ENSEMBLE_GROUP,
                _ENSEMBLE_BUDGET // (n_train * record_floats),
                _ENSEMBLE_WORK // (n_train * per_record),
            )
            size = max(1, size)
            groups += [ks[i : i + size] for i in range(0, len(ks), size)]
        return sorted(groups, key=lambda g: g[0])

    def _weights(self) -> int:
        """Weights of one model of the (ensemble-eligible) recipe."""
        model = build_model(
            self.recipe.architecture,
            input_shape=self.dataset.input_shape,
            n_classes=self.dataset.n_classes,
            **self.recipe.arch_params,
        )
        return sum(p.numel() for p in model.parameters())

    def _check_trained(self) -> list[TrainedModel]:
        if self.models_ is None:
            raise NotFittedError("this ReferencePool has no models yet; call train() first")
        return self.models_

    def model_info(self, k: int) -> dict:
        """What :meth:`train` reported for model ``k`` (accuracies, seconds, cache use)."""
        self._check_trained()
        assert self._info is not None
        return dict(self._info[self._check_model(k)])

    def describe(self) -> dict:
        """JSON-ready summary: sizes, seed, mean accuracies and cache use."""
        models = self._check_trained()
        test = [m.test_accuracy for m in models if m.test_accuracy is not None]
        assert self._info is not None
        return {
            "n_models": self.n_models,
            "n_candidates": int(self.candidates.size),
            "seed": self.seed,
            "train_fraction": self.train_fraction,
            "train_size": int(self._inclusion_sorted[0].sum()),
            "mean_train_accuracy": float(np.mean([m.train_accuracy for m in models])),
            "mean_test_accuracy": float(np.mean(test)) if test else None,
            "models_from_cache": sum(bool(i["from_cache"]) for i in self._info),
            "training_seconds": float(sum(m.seconds for m in models)),
        }

    # ------------------------------------------------------------------ queries

    def _record_inclusion(self, records: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._sorted, records).clip(0, self._sorted.size - 1)
        found = self._sorted[pos] == records
        inc = np.zeros((self.n_models, records.size), dtype=bool)
        inc[:, found] = self._inclusion_sorted[:, pos[found]]
        return inc

    def observe(
        self,
        records: np.ndarray,
        *,
        queries: QuerySet,
        answer_as: Callable[[Any], Any] | None = None,
    ) -> Observations:
        """Every model's answers on ``records`` (dataset indices), with their inclusion.

        Records that are not candidates count as OUT for every model. ``answer_as(model)``
        turns each model into the target adapter the attacker queries, e.g. with the
        audited target's output defenses (the attacker knows them).

        With a model cache, each model's answers are cached beside it
        (:mod:`miaudit.compute.answers`, keyed by model, records, views and defenses): a
        second audit of the same records with the same pool queries no reference model.
        With a remote executor (process pool, Ray) and a model cache, the workers answer,
        each with a share of the models, and return the answers through that cache.
        ``answers_from_cache`` counts the models read back by the last call.

        Returns
        -------
        Observations
            ``(n_models, n, n_queries)`` φ and log p_y, and ``inclusion`` ``(n_models, n)``.
        """
        from miaudit.compute.answers import AnswerCache, answer_key, defenses_tag

        models = self._check_trained()
        records = check_indices(records, self.dataset.n_records, "records")
        held = [m.model is not None for m in models]
        answerers = {
            k: _answerer_as(m.model, answer_as, self.dataset.n_classes)
            for k, m in enumerate(models)
            if held[k]
        }
        if answerers:
            views = _check_views(list(answerers.values()), queries, self.dataset)
        else:
            views = queries.for_records(self.dataset.input_shape)
        shape = (len(models), records.size, len(views))
        phi, log_p = _answer_arrays(shape, self._spill_dir(shape))
        correct = np.empty(shape[:2], dtype=bool)
        tag = defenses_tag(answer_as)
        self.answers_from_cache = 0
        store = None if self.cache is None or tag is None else AnswerCache(self.cache.root)
        missing = list(range(len(models)))

        def fill_from_store(ks: list[int]) -> list[int]:
            """Copy the cached answers of models ``ks`` in, one model's entry in memory at
            a time; return the models the answer cache lacks."""
            lacking = []
            for k in ks:
                entry = store.get(keys[k], records, len(views))
                if entry is None:
                    lacking.append(k)
                else:
                    phi[k], log_p[k], correct[k] = entry
            return lacking

        if store is not None:
            keys = [answer_key(self.model_key(k), records, views, tag) for k in missing]
            missing = fill_from_store(missing)
        if missing and store is not None and self.executor.remote:
            self._answer_remotely(missing, keys, records, views, answer_as)
            if lost := fill_from_store(missing):
                raise InvalidAuditInput(
                    f"{self.executor.name} executor: the answers of model {lost[0]} are "
                    f"missing from the cache at {self.cache.root} after answering (is it a "
                    "path the workers share?)"
                )
        elif missing:
            in_memory = [k for k in missing if held[k]]
            if in_memory:
                _answer_into(
                    [answerers[k] for k in in_memory],
                    in_memory,
                    self.dataset,
                    records,
                    views,
                    phi,
                    log_p,
                    correct,
                )
            for k in (k for k in missing if not held[k]):  # released: one at a time
                model = self.load_model(k).model
                one = _answerer_as(model, answer_as, self.dataset.n_classes)
                _answer_into([one], [k], self.dataset, records, views, phi, log_p, correct)
                del model, one
            if store is not None:
                for k in missing:
                    store.put(keys[k], records, phi[k], log_p[k], correct[k])
        self.answers_from_cache = len(models) - len(missing)
        return Observations(records, phi, log_p, self._record_inclusion(records), correct)

    def _answer_remotely(self, missing, keys, records, views, answer_as) -> None:
        """Have the executor's workers answer with models ``missing`` (cached), in about
        one task per worker, each storing its answers in the answer cache."""
        from miaudit.compute.answers import AnswerTask

        workers = max(1, int(getattr(self.executor, "workers", 1)))
        per_task = -(-len(missing) // workers)
        tasks = [
            AnswerTask(
                models=tuple(group),
                model_keys=tuple(self.model_key(k) for k in group),
                answer_keys=tuple(keys[k] for k in group),
                records=records,
                views=views,
                answer_as=answer_as,
            )
            for group in (missing[i : i + per_task] for i in range(0, len(missing), per_task))
        ]
        for _ in self.executor.run(self.recipe, self.dataset, tasks, self.cache):
            pass

    def _spill_dir(self, shape: tuple[int, int, int]):
        """Where :meth:`observe` maps answers larger than ``memory_map_above`` bytes from
        (the model cache's disk), or None to hold them in memory."""
        nbytes = 2 * int(np.prod(shape)) * np.dtype(OBSERVATION_DTYPE).itemsize
        if self.cache is None or self.memory_map_above is None:
            return None
        return self.cache.root / "answers" / "mapped" if nbytes > self.memory_map_above else None

    def observe_target(
        self, target: Any, records: np.ndarray, *, queries: QuerySet
    ) -> Observations:
        """The audited model's answers on ``records``, in the layout of :meth:`observe`.

        ``target`` is a target adapter (logit access gives exact φ, probability access
        computes it from probabilities, label-only access is refused), a
        ``torch.nn.Module``, a :class:`~miaudit.models.TrainedModel` or a fitted
        scikit-learn classifier. The result has one model and ``inclusion`` None.
        """
        return observe_models([target], self.dataset, records, queries=queries)

    def leave_one_out(self, k: int, observations: Observations) -> LeaveOneOut:
        """Split :meth:`observe`'s result into model ``k`` as the target and its references.

        The references are :meth:`references_for` ``(k)``: every model but ``k`` and its
        pair partner, so each record is IN for exactly half of them, independently of
        whether model ``k`` trained on it.
        """
        models = self._check_trained()
        k = self._check_model(k)
        if observations.inclusion is None or observations.n_models != self.n_models:
            raise InvalidAuditInput(
                f"leave_one_out: pass the result of this pool's observe() ({self.n_models} "
                f"models with inclusion), got {observations.n_models} models"
            )
        refs = self.references_for(k)
        target = Observations(
            observations.record_ids,
            observations.scaled_logit[k : k + 1],
            observations.log_confidence[k : k + 1],
            None,
        )
        return LeaveOneOut(
            target_index=k,
            target_model=models[k],
            is_member=observations.inclusion[k].copy(),
            target=target,
            references=observations.select_models(refs),
            reference_indices=refs,
        )


class PoolModels(Sequence):
    """A pool's models, loaded one by one when read (:meth:`ReferencePool.load_model`):
    ``for trained in pool.lazy_models()`` holds one model at a time."""

    def __init__(self, pool: ReferencePool, indices: tuple[int, ...]) -> None:
        self._pool = pool
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return PoolModels(self._pool, self._indices[item])
        return self._pool.load_model(self._indices[item])
