"""``miaudit experiment CONFIG.yaml``: the self-audit protocol from a file, with the report of
an audit for each target model and one table across them.

The benchmark tables of the README (reference-model attacks at K references, several targets
averaged) come from :func:`miaudit.experiment.self_audit`; this module lets a user produce
them without Python. Each target's audit is an :class:`~miaudit.evaluation.AuditResult`
like any other, so ``report.json``, ``scores.npz`` and ``report.html`` keep their contract;
``experiment.json`` adds the figures averaged over the targets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from miaudit import __version__
from miaudit.atomic import atomic_write
from miaudit.audit import settings_report
from miaudit.config import ExperimentConfig
from miaudit.data import load_dataset
from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput
from miaudit.evaluation.results import AuditResult
from miaudit.experiment import SelfAuditResult, TargetRun
from miaudit.targets.adapters import AccessLevel

__all__ = ["ExperimentRun", "experiment_table", "run_experiment", "write_experiment"]


@dataclass(frozen=True)
class ExperimentRun:
    """A finished self-audit: the pooled result, one audit per target, the file's facts."""

    result: SelfAuditResult
    audits: list[AuditResult]
    facts: dict
    seconds: float


def _subset(dataset: Dataset, size: int | None, seed: int) -> tuple[Dataset, np.ndarray]:
    """``size`` records drawn with ``seed`` (all, in order, when None), and their indices."""
    if size is None:
        return dataset, np.arange(dataset.n_records)
    if size > dataset.n_records:
        raise InvalidAuditInput(
            f"records: {size} asked for, but data set {dataset.name!r} has {dataset.n_records}"
        )
    chosen = np.sort(np.random.default_rng(seed).choice(dataset.n_records, size, replace=False))
    subset = Dataset(
        dataset.name,
        dataset.x[chosen],
        dataset.y[chosen],
        dataset.n_classes,
        class_names=dataset.class_names,
        source=dataset.source,
    )
    return subset, chosen


def _prepare(config: ExperimentConfig, data_dir, notify):
    """Every check of the experiment, before anything trains: ``(attacks, recipe, full
    data set, the records it uses, their indices)``."""
    from miaudit.attacks.registry import build_attacks, check_requirements
    from miaudit.pipeline import _torch_recipe

    specs = build_attacks(config.attack_entries())
    # Every self-audit target is a model miaudit trained, queried for its logits.
    check_requirements(specs, AccessLevel.LOGITS, has_recipe=True)
    shadows = [s.label for s in specs if s.requirements.shadows]
    if shadows:
        raise InvalidAuditInput(
            f"attacks: {shadows} train shadow models on the attacker's own data, but every "
            "record of a self-audit is audited; run them with miaudit audit"
        )
    recipe = _torch_recipe(config.recipe, where="recipe")
    if config.cache_dir is not None:
        from miaudit.validation import check_writable_dir

        check_writable_dir(config.cache_dir, "cache_dir")
    notify(f"loading data set {config.dataset.name}")
    full = load_dataset(config.dataset.name, data_dir=data_dir or config.data_dir)
    dataset, indices = _subset(full, config.records, config.seed)
    if config.population_size is not None and config.population_size > dataset.n_records:
        raise InvalidAuditInput(
            f"population_size: {config.population_size} population records asked for, but "
            f"the experiment has {dataset.n_records} records (every record is a candidate); "
            "give at most that many, or leave it out to use them all"
        )
    recipe.validate(dataset)
    return specs, recipe, full, dataset, indices


def estimate_experiment(config: ExperimentConfig, recipe, dataset, *, calibrate_time=False):
    """What the self-audit trains (and finds in the cache) and what it costs (a
    :class:`~miaudit.resources.StudyEstimate`); refuses one that cannot fit in memory.
    ``calibrate_time`` times one epoch of the recipe on half the records (``--dry-run``)."""
    from miaudit.compute import ModelCache, ReferencePool, self_audit_size
    from miaudit.references import resolve_queries
    from miaudit.resources import (
        QUERY_VIEWS,
        StudyEstimate,
        answers_bytes,
        check_memory,
        network_memory,
        time_one_epoch,
    )
    from miaudit.signals.observations import MEMORY_MAP_ABOVE_MB

    n_models = self_audit_size(config.n_references, config.n_targets)
    n_views = QUERY_VIEWS.get(resolve_queries(config.queries, dataset, recipe), 1)
    parts = {"data set": int(dataset.x.nbytes + dataset.y.nbytes)}
    answers = answers_bytes(n_models, dataset.n_records, n_views)
    if answers <= MEMORY_MAP_ABOVE_MB << 20:  # larger answers are mapped from disk
        parts["model answers"] = answers
    parts["one network in training"] = network_memory(recipe, dataset)[1]
    total, available = check_memory(
        parts,
        "the experiment",
        "use fewer references or targets, fewer records or a smaller network",
    )
    pool = ReferencePool(
        recipe,
        dataset,
        np.arange(dataset.n_records),
        n_models=n_models,
        seed=config.seed,
        cache=ModelCache(config.cache_dir),
    )
    cached = sum(pool.model_key(k) in pool.cache for k in range(n_models))
    half = dataset.n_records // 2  # every model trains on a random half
    lines = [
        f"models: {n_models} {recipe.architecture} on {half} of "
        f"{dataset.n_records} records each ({cached} already in the model cache, "
        f"{n_models - cached} to train); {config.n_targets} of them audited in turn with "
        f"{config.n_references} references",
        f"queries: {n_models * dataset.n_records * n_views:,} to the models",
    ]
    estimate = StudyEstimate(
        models=lines, memory_bytes=total, memory_parts=parts, available_bytes=available
    )
    if calibrate_time:
        per_epoch = time_one_epoch(recipe, dataset, np.arange(half))
        estimate.seconds = per_epoch * recipe.training.epochs * (n_models - cached)
        estimate.seconds_note = (
            f"one epoch on {half} records took {per_epoch:.2f} s; "
            f"{n_models - cached} models of {recipe.training.epochs} epochs"
        )
    return estimate


def plan_experiment(config: ExperimentConfig, *, data_dir=None, on_stage=None):
    """What :func:`run_experiment` would do, without doing it (``miaudit experiment
    --dry-run``): every check, then the plan with memory and, from one timed epoch, time."""
    notify = on_stage or (lambda message: None)
    _, recipe, _, dataset, _ = _prepare(config, data_dir, notify)
    notify("estimating (one epoch of training is timed)")
    return estimate_experiment(config, recipe, dataset, calibrate_time=True)


def run_experiment(
    config: ExperimentConfig,
    *,
    data_dir: str | Path | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_reference: Callable[[int, int, dict], None] | None = None,
) -> ExperimentRun:
    """Train (or load) the models of the self-audit the file describes and audit its
    targets. The attacks and the recipe are checked before the data loads."""
    from miaudit.compute import ModelCache
    from miaudit.compute.executors import make_executor
    from miaudit.experiment import self_audit

    started = time.perf_counter()
    notify = on_stage or (lambda message: None)
    specs, recipe, full, dataset, indices = _prepare(config, data_dir, notify)
    estimate_experiment(config, recipe, dataset)  # memory: refused before any training
    notify(
        f"self-audit: {config.n_targets} target(s), {config.n_references} references each, "
        f"{dataset.n_records} records"
    )
    result = self_audit(
        recipe,
        dataset,
        n_references=config.n_references,
        n_targets=config.n_targets,
        attacks=specs,
        queries=config.queries,
        seed=config.seed,
        cache=ModelCache(config.cache_dir),
        population_size=config.population_size,
        settings=config.evaluation,
        progress=on_reference,
        executor=make_executor(config.executor, workers=config.workers, address=config.ray_address),
    )
    facts = {
        "dataset": full.name,
        "records": int(dataset.n_records),
        "architecture": recipe.architecture,
        "architecture_params": dict(recipe.arch_params),
        "training": asdict(recipe.training),
        "n_references": config.n_references,
        "n_targets": config.n_targets,
        "n_models": result.n_models,
        "models_from_cache": result.models_from_cache,
        "training_seconds": [round(s, 3) for s in result.training_seconds],
    }
    audits = [_audit_of(run, result, dataset, indices, config, facts) for run in result.runs]
    return ExperimentRun(result, audits, facts, time.perf_counter() - started)


def _audit_of(
    run: TargetRun,
    result: SelfAuditResult,
    dataset: Dataset,
    indices: np.ndarray,
    config: ExperimentConfig,
    facts: dict,
) -> AuditResult:
    """One target's audit as an :class:`AuditResult` (the report of ``miaudit audit``)."""
    is_member = np.asarray(run.is_member, bool)
    target = {
        "description": f"{facts['architecture']} model {run.target_index} of a self-audit",
        "access": "logits",
        "n_classes": dataset.n_classes,
        "train_accuracy": run.train_accuracy,
        "test_accuracy": run.test_accuracy,
        "accuracy_measured_on": "train: the audited members; test: the audited non-members",
        "architecture": facts["architecture"],
        "architecture_params": facts["architecture_params"],
        "training": facts["training"],
        "origin": "trained by miaudit experiment (self-audit protocol: the model's own "
        f"training half are the members, the rest the non-members; {result.n_references} "
        "reference models from other pairs)",
    }
    data = {
        "dataset": dataset.name,
        "source": dataset.source,
        "n_classes": dataset.n_classes,
        "class_names": list(dataset.class_names),
        "n_members": int(is_member.sum()),
        "n_nonmembers": int((~is_member).sum()),
        "n_population": run.n_population,
        "split": {
            "seed": config.seed,
            "n_members": int(is_member.sum()),
            "n_nonmembers": int((~is_member).sum()),
            "n_population": run.n_population,
        },
    }
    records = np.asarray(run.records, np.int64)
    return AuditResult(
        target=target,
        data=data,
        attacks=run.attacks,
        scores=run.scores,
        is_member=is_member,
        labels=dataset.y[records],
        settings=settings_report(config.evaluation),
        warnings=[],
        seconds=0.0,
        records=indices[records],
    )


def experiment_table(run: ExperimentRun) -> list[list[str]]:
    """Header and one row per attack: AUC (mean ± std over targets), TPR at 1 % and 0.1 %
    FPR with their mean Clopper–Pearson intervals."""
    rows = [["attack", "K", "targets", "AUC", "TPR@1% FPR", "TPR@0.1% FPR"]]
    for row in run.result.summary():
        lo1, hi1 = row["tpr@1%_ci"]
        lo01, hi01 = row["tpr@0.1%_ci"]
        rows.append(
            [
                row["attack"],
                str(row["K"]),
                str(row["n_targets"]),
                f"{row['auc']:.3f} ± {row['auc_std']:.3f}",
                f"{row['tpr@1%']:.3f} [{lo1:.3f}, {hi1:.3f}]",
                f"{row['tpr@0.1%']:.3f} [{lo01:.3f}, {hi01:.3f}]",
            ]
        )
    return rows


def write_experiment(run: ExperimentRun, out: str | Path) -> dict[str, Path]:
    """``out/target-<t>/`` (an audit report per target) and ``out/experiment.json``."""
    from miaudit.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for run_t, audit in zip(run.result.runs, run.audits, strict=True):
        folder = out / f"target-{run_t.target_index}"
        write_report(audit, folder)
        paths[f"target-{run_t.target_index}"] = folder
    document = {
        "miaudit_version": __version__,
        "protocol": "self-audit (Carlini et al. 2022; Zarifzadeh et al. 2024)",
        **run.facts,
        "summary": run.result.summary(),
        "targets": [
            {
                "target": r.target_index,
                "train_accuracy": r.train_accuracy,
                "test_accuracy": r.test_accuracy,
                "report": f"target-{r.target_index}/report.json",
            }
            for r in run.result.runs
        ],
        "seconds": round(run.seconds, 3),
    }
    path = out / "experiment.json"
    text = json.dumps(document, indent=2, allow_nan=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    paths["experiment"] = path
    return paths
