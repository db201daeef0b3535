"""What an audit will cost, known before it starts: models to train, queries, memory, time.

A typo (``hidden: [100000000000]``, 25.6 TB of weights) must end the run with a message
that gives the estimate and what the machine has, not with an allocator's traceback after
the data has loaded; and a user about to commit hours wants the plan first
(``miaudit audit FILE --dry-run``). Estimates are deliberately simple and said to be so:

* a network's training memory: its parameters four times over (weights, gradients and up
  to two optimiser moments) plus the activations of one batch, measured by running the
  network on PyTorch's ``meta`` device (shapes only, nothing allocated);
* the answers held for reference attacks: φ and log p_y in float32 for every reference,
  audited and population record and query view (mapped from disk above
  ``memory_map_above_mb``, then not counted);
* time, with ``--dry-run``: one epoch of the target's recipe timed on its members, scaled
  to the recipe's epochs and to the number of models. The user's own code and estimators
  are not timed (only running them would tell).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from miaudit.errors import InvalidAuditInput

__all__ = [
    "QUERY_VIEWS",
    "AuditEstimate",
    "StudyEstimate",
    "answers_bytes",
    "available_memory",
    "check_memory",
    "estimate_audit",
    "network_memory",
    "time_one_epoch",
]

#: Bytes of a float32.
_FLOAT = 4

#: Views each record is queried with, per query set (:func:`miaudit.references.query_set`).
QUERY_VIEWS = {"none": 1, "flips": 2, "flips_and_shifts": 18}


def answers_bytes(n_models: int, n_records: int, n_views: int) -> int:
    """Memory of the answers held for reference attacks: φ and log p_y in float32."""
    return 2 * n_models * n_records * n_views * _FLOAT


def available_memory() -> int | None:
    """Bytes this process may still allocate: the kernel's ``MemAvailable`` (Linux), or
    the physical memory elsewhere; None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def network_memory(recipe: Any, dataset: Any) -> tuple[int, int]:
    """``(parameters, training bytes)`` of one network of a miaudit recipe (a registry
    architecture), measured on the ``meta`` device."""
    import torch

    from miaudit.models import build_model

    with torch.device("meta"):
        model = build_model(
            recipe.architecture,
            input_shape=dataset.input_shape,
            n_classes=dataset.n_classes,
            **recipe.arch_params,
        )
        n_params = sum(p.numel() for p in model.parameters())
        activations = [0]

        def count(module, inputs, output):
            if isinstance(output, torch.Tensor):
                activations[0] += output.numel()

        hooks = [m.register_forward_hook(count) for m in model.modules()]
        batch = min(int(recipe.training.batch_size), dataset.n_records)
        model(torch.empty((batch, *dataset.input_shape)))
        for hook in hooks:
            hook.remove()
    # Weights, gradients, two optimiser moments; activations kept for the backward pass.
    return n_params, 4 * n_params * _FLOAT + 2 * activations[0] * _FLOAT


@dataclass
class AuditEstimate:
    """The plan of an audit and what it costs (see the module docstring)."""

    target: str
    n_references: int
    references_cached: int | None
    queries_target: int
    queries_references: int
    memory_bytes: int
    memory_parts: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None
    seconds_note: str = ""
    available_bytes: int | None = None

    def lines(self) -> list[str]:
        """The plan in plain lines, for the terminal."""
        out = [f"target: {self.target}"]
        if self.n_references:
            cached = (
                ""
                if self.references_cached is None
                else f" ({self.references_cached} already in the model cache, "
                f"{self.n_references - self.references_cached} to train)"
            )
            out.append(f"reference models: {self.n_references}{cached}")
        out.append(
            f"queries: {self.queries_target:,} to the target, {self.queries_references:,} to "
            "the reference models"
        )
        return out + _cost_lines(self)


@dataclass
class StudyEstimate:
    """The plan of a study (an unlearning study, a self-audit experiment): what it trains,
    one line each, and what it costs (see the module docstring)."""

    models: list[str]
    memory_bytes: int
    memory_parts: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None
    seconds_note: str = ""
    available_bytes: int | None = None

    def lines(self) -> list[str]:
        """The plan in plain lines, for the terminal."""
        return list(self.models) + _cost_lines(self)


def _cost_lines(estimate: AuditEstimate | StudyEstimate) -> list[str]:
    """The memory and time lines of a plan."""
    mib = 1 << 20
    parts = ", ".join(f"{k} {v / mib:,.0f} MiB" for k, v in estimate.memory_parts.items())
    have = (
        ""
        if estimate.available_bytes is None
        else f"; this machine has {estimate.available_bytes / mib:,.0f} MiB available"
    )
    out = [f"memory: about {estimate.memory_bytes / mib:,.0f} MiB at most ({parts}){have}"]
    if estimate.seconds is not None:
        out.append(
            f"time: about {duration_text(estimate.seconds)} of training ({estimate.seconds_note})"
        )
    elif estimate.seconds_note:
        out.append(f"time: {estimate.seconds_note}")
    return out


def duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_audit(
    config: Any,
    dataset: Any,
    split: Any,
    plan: Any,
    target_recipe: Any,
    references: Any,
    *,
    calibrate_time: bool = False,
    look_up_cache: bool = True,
) -> AuditEstimate:
    """The cost of the audit ``config`` describes, from its plan (checked, nothing trained).

    ``look_up_cache`` False skips what only the printed plan needs (which models the
    cache holds), leaving the memory check that every audit runs.

    Raises
    ------
    InvalidAuditInput
        When the estimated memory exceeds what the machine has available: both figures are
        in the message.
    """
    from miaudit.models import TorchRecipe

    parts: dict[str, int] = {}
    n_views = 1
    if references is not None and plan.n_references:
        from miaudit.references import resolve_queries

        name = resolve_queries(references.queries, dataset, references.recipe)
        n_views = QUERY_VIEWS.get(name, 1)
    n_audited = int(split.audited.size)
    n_population = 0 if plan.design is None else int(plan.design.population.size)
    answer_records = n_audited + n_population
    queries_target = answer_records * n_views if plan.n_references else n_audited
    queries_references = plan.n_references * answer_records * n_views
    answers = answers_bytes(plan.n_references, answer_records, n_views)
    mapped_above = None if references is None else references.memory_map_above
    if answers and (mapped_above is None or answers <= mapped_above):
        parts["reference answers"] = answers
    parts["data set"] = int(dataset.x.nbytes + dataset.y.nbytes)
    recipes = [r for r in (target_recipe, getattr(references, "recipe", None)) if r is not None]
    network = 0
    for recipe in recipes:
        if isinstance(recipe, TorchRecipe):
            network = max(network, network_memory(recipe, dataset)[1])
    if network:
        parts["one network in training"] = network
    total, available = check_memory(
        parts,
        "the audit",
        "make the network smaller (target.recipe.params), audit fewer records or use fewer "
        "references",
    )
    target, cached = "", None
    if look_up_cache:  # hashes the data set and the design: for the plan, not every run
        target = _describe_target(config, target_recipe, references, dataset, split)
        cached = _cached_references(references, dataset, split, plan)
    estimate = AuditEstimate(
        target=target,
        n_references=plan.n_references,
        references_cached=cached,
        queries_target=queries_target,
        queries_references=queries_references,
        memory_bytes=total,
        memory_parts=parts,
        available_bytes=available,
    )
    if calibrate_time:
        _time_estimate(estimate, target_recipe, references, dataset, split, plan, cached)
    return estimate


def check_memory(parts: dict[str, int], what: str, advice: str) -> tuple[int, int | None]:
    """``(total, available)`` bytes of a plan whose parts are ``parts``.

    Raises
    ------
    InvalidAuditInput
        When the total exceeds what the machine has available, with both figures, the
        parts, and ``advice``.
    """
    total = sum(parts.values())
    available = available_memory()
    if available is not None and total > available:
        mib = 1 << 20
        raise InvalidAuditInput(
            f"{what} would need about {total / mib:,.0f} MiB of memory ("
            + ", ".join(f"{k} {v / mib:,.0f} MiB" for k, v in parts.items())
            + f") but this machine has {available / mib:,.0f} MiB available; {advice}"
        )
    return total, available


def time_one_epoch(recipe: Any, dataset: Any, indices: Any) -> float | None:
    """Seconds of one epoch of ``recipe`` on records ``indices``; None for a recipe that
    is not miaudit's trainer (only running the user's code would tell)."""
    from dataclasses import replace

    from miaudit.models import TorchRecipe

    if not isinstance(recipe, TorchRecipe):
        return None
    one_epoch = replace(recipe, training=replace(recipe.training, epochs=1))
    started = time.perf_counter()
    one_epoch.train(dataset, indices, seed=0)
    return time.perf_counter() - started


#: Why a plan has no time: the recipe is not miaudit's trainer.
NOT_TIMED = (
    "not estimated: the recipe is not miaudit's trainer, and only running the user's code "
    "or estimator would tell"
)


def _describe_target(config, target_recipe, references, dataset, split) -> str:
    section = config.target
    if target_recipe is None:
        source = next(k for k in ("model_file", "predictions_file", "http") if getattr(section, k))
        return f"given ({source}), not trained"
    from miaudit.compute import ModelCache, cache_key, data_fingerprint

    cache = ModelCache(None if config.references is None else config.references.cache_dir)
    seed = (section.recipe or section.sklearn).seed
    key = cache_key(target_recipe.fingerprint(), data_fingerprint(dataset), split.members, seed)
    where = "in the model cache" if key in cache else "to train"
    return f"{type(target_recipe).__name__} on {split.members.size} members, {where}"


def _cached_references(references, dataset, split, plan) -> int | None:
    """How many of the references are in the model cache already (None without any)."""
    if references is None or not plan.n_references or references.predictions_file:
        return None
    from miaudit.compute import ReferencePool

    design = plan.design
    pool = ReferencePool(
        references.recipe,
        dataset,
        design.candidates,
        n_models=plan.n_references,
        seed=references.seed,
        cache=references.cache(),
        balanced=design.audited,
        train_size=design.train_size,
    )
    return sum(pool.model_key(k) in pool.cache for k in range(plan.n_references))


def _time_estimate(estimate, target_recipe, references, dataset, split, plan, cached) -> None:
    """One epoch of miaudit's trainer, timed on the target's members, scaled up."""
    recipe = getattr(references, "recipe", None) or target_recipe
    members = split.members
    per_epoch = time_one_epoch(recipe, dataset, members)
    if per_epoch is None:
        estimate.seconds_note = NOT_TIMED
        return
    n_train = plan.design.train_size if plan.design is not None else members.size
    per_model = per_epoch * recipe.training.epochs * n_train / max(members.size, 1)
    to_train = plan.n_references - (cached or 0)
    target_trains = 1 if "to train" in estimate.target else 0
    estimate.seconds = per_model * (to_train + target_trains)
    estimate.seconds_note = (
        f"one epoch on {members.size} records took {per_epoch:.2f} s; "
        f"{to_train + target_trains} models of {recipe.training.epochs} epochs"
    )
