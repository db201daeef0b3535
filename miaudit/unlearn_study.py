"""``miaudit unlearn``: the deletion study an audit file's ``unlearning:`` section describes.

The target trains from the file's recipe on the split's members (from the cache when it
did before). For every deletion request (each fraction drawn from the original members,
or one class) and every method, the deleted records are removed, the model is unlearned,
and the forgetting is checked by attack (:func:`miaudit.unlearning.verify_forgetting`):
deleted records against the split's non-members, which no model ever trained on, on the
original model (where they were members) and on the unlearned one. Each row reports the
test accuracy (on the non-members) before and after, the AUC and p-value before and after,
the seconds the method took, and the seconds full retraining took, so that the time saved
reads off directly. SISA's "before" is the SISA ensemble itself (it serves the predictions).

Every setting is checked before anything trains; bad requests (a class with no member, a
fraction that deletes everything) exit with status 2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from miaudit.config import AuditConfig, UnlearningMethod
from miaudit.errors import InvalidAuditInput

__all__ = [
    "UnlearningResult",
    "UnlearningRow",
    "estimate_unlearning",
    "plan_unlearning",
    "run_unlearning",
    "unlearning_table",
]


@dataclass(frozen=True)
class UnlearningRow:
    request: str
    method: str
    n_deleted: int
    test_accuracy_before: float
    test_accuracy_after: float
    checks_before: list[dict]
    checks_after: list[dict]
    seconds: float
    retrain_seconds: float
    trainings: int
    deleted: np.ndarray = field(default=None, repr=False)
    scores_after: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {
            "request": self.request,
            "method": self.method,
            "n_deleted": self.n_deleted,
            "test_accuracy_before": self.test_accuracy_before,
            "test_accuracy_after": self.test_accuracy_after,
            "attacks_before": self.checks_before,
            "attacks_after": self.checks_after,
            "seconds": self.seconds,
            "full_retrain_seconds": self.retrain_seconds,
            "time_saved": 1.0 - self.seconds / self.retrain_seconds
            if self.retrain_seconds > 0
            else None,
            "trainings": self.trainings,
        }


@dataclass(frozen=True)
class UnlearningResult:
    rows: list[UnlearningRow]
    target: dict
    seconds: float


def _accuracy(target, dataset, records) -> float:
    labels = np.asarray(target.predict_labels(dataset.x[records]))
    return float(np.mean(labels == dataset.y[records]))


def _requests(config: AuditConfig, members: np.ndarray, labels: np.ndarray):
    from miaudit.unlearning import deletion_request

    section = config.unlearning
    out = []
    if section.indices is not None:
        out.append(
            (
                f"{len(section.indices)} given records",
                deletion_request(members, labels, indices=section.indices),
            )
        )
    if section.klass is not None:
        out.append(
            (f"class {section.klass}", deletion_request(members, labels, klass=section.klass))
        )
    for f in section.fractions:
        out.append(
            (
                f"{f:.1%}".replace(".0%", "%") + " random",
                deletion_request(members, labels, fraction=f, seed=section.seed),
            )
        )
    return out


def _check_before_training(section, requests, n_members: int) -> None:
    """What the study needs of its methods, checked before the original model trains
    (:func:`~miaudit.unlearning.deletion_request` has checked each request): each request
    deletes enough records to be evaluated, and SISA's shards and slices fit the records
    that remain (each slice of each shard holds at least one)."""
    from miaudit.evaluation.settings import MIN_PER_SIDE

    problems = [
        f"the request {name!r} deletes {deleted.size} record(s); telling deleted records from "
        f"never-seen ones needs at least {MIN_PER_SIDE} (raise unlearning.fractions, or name "
        "more records)"
        for name, deleted in requests
        if deleted.size < MIN_PER_SIDE
    ]
    smallest = min((n_members - d.size for _, d in requests), default=n_members)
    for method in section.methods:
        if method.name == "sisa" and method.shards * method.slices > smallest:
            problems.append(
                f"sisa: {method.shards} shards x {method.slices} slices need at least "
                f"{method.shards * method.slices} records, but as few as {smallest} remain "
                "after a deletion (unlearning.methods)"
            )
    if problems:
        raise InvalidAuditInput("unlearning: " + "; ".join(problems))


def _describe(method: UnlearningMethod) -> str:
    if method.name == "sisa":
        return f"SISA {method.shards}x{method.slices} ({method.aggregate})"
    if method.name == "finetune":
        return f"fine-tune {method.epochs} epochs"
    if method.name == "gradient_ascent":
        return f"gradient ascent {method.steps} steps, lr {method.lr:g}"
    return "full retraining"


def _unlearn_fn(method: UnlearningMethod, recipe):
    """The method as ``f(model, dataset, remaining, forget, seed)`` for U-LiRA's references."""
    from miaudit.unlearning import finetune, gradient_ascent

    if method.name == "finetune":
        return lambda m, d, r, f, s: finetune(m, d, r, f, s, recipe=recipe, epochs=method.epochs)
    if method.name == "gradient_ascent":
        return lambda m, d, r, f, s: gradient_ascent(
            m, d, r, f, s, lr=method.lr, steps=method.steps
        )
    return lambda m, d, r, f, s: recipe.train(d, r, seed=s).model


def _prepare(config: AuditConfig, data_dir: str | Path | None):
    """Every check of the study, before anything trains: ``(dataset, split, recipe,
    requests)``."""
    from miaudit.data import load_dataset
    from miaudit.pipeline import _torch_recipe, build_split

    if config.unlearning is None:
        raise InvalidAuditInput("the audit file has no 'unlearning:' section")
    if config.target.recipe is None:
        raise InvalidAuditInput(
            "unlearning retrains the target, so it needs target.recipe (a PyTorch recipe)"
        )
    dataset = load_dataset(
        config.dataset.name, data_dir=data_dir or config.data_dir, **config.dataset.options
    )
    split = build_split(config, dataset)
    split.check_within(dataset.n_records)
    recipe = _torch_recipe(config.target.recipe)
    recipe.validate(dataset)
    requests = _requests(config, split.members, dataset.y)  # bad requests fail here
    _check_before_training(config.unlearning, requests, split.members.size)
    return dataset, split, recipe, requests


def _method_cost(method: UnlearningMethod, recipe) -> float:
    """Training a method costs per deletion, in full trainings of the recipe: retraining
    one; SISA at most (slices + 1) / 2 (every stage of every shard from the first slice,
    a stage training on the slices so far); fine-tuning its epochs over the recipe's;
    gradient ascent next to nothing."""
    if method.name == "retrain":
        return 1.0
    if method.name == "sisa":
        return (method.slices + 1) / 2
    if method.name == "finetune":
        return method.epochs / recipe.training.epochs
    return 0.0


def estimate_unlearning(
    config: AuditConfig, dataset, split, recipe, requests, *, calibrate_time: bool = False
):
    """What the study trains and what it costs (a
    :class:`~miaudit.resources.StudyEstimate`); refuses a study that cannot fit in memory.
    ``calibrate_time`` times one epoch of the recipe on the members (``--dry-run``)."""
    from miaudit.resources import (
        NOT_TIMED,
        StudyEstimate,
        check_memory,
        network_memory,
        time_one_epoch,
    )

    section = config.unlearning
    n_requests = len(requests)
    lines = [
        f"original model: 1 {recipe.architecture} on {split.members.size} members",
        f"deletion requests: {n_requests} ({', '.join(name for name, _ in requests)}), "
        "each followed by full retraining",
    ]
    full = 1.0 + n_requests  # the original and one exact retraining per request
    sisa_settings = {
        (m.shards, m.slices, m.aggregate): m for m in section.methods if m.name == "sisa"
    }
    for method in section.methods:
        if method.name == "retrain":
            continue  # the exact retraining above serves it
        cost = _method_cost(method, recipe)
        full += cost * n_requests
        lines.append(f"{_describe(method)}: per request about {cost:.2g} full trainings")
    for method in sisa_settings.values():
        full += _method_cost(method, recipe)  # the ensemble's first fit
    n_ulira = 0
    if section.ulira_references:
        ulira_methods = [m for m in section.methods if m.name != "sisa"]
        n_ulira = section.ulira_references * len(ulira_methods) * n_requests
        full += sum(
            section.ulira_references * (1.0 + _method_cost(m, recipe)) * n_requests
            for m in ulira_methods
        )
        lines.append(
            f"U-LiRA: {section.ulira_references} references per request and method "
            f"({n_ulira} models, each trained and unlearned)"
        )
    n_params, network = network_memory(recipe, dataset)
    parts = {
        "data set": int(dataset.x.nbytes + dataset.y.nbytes),
        "one network in training": network,
    }
    held = max((m.shards for m in sisa_settings.values()), default=0) + 2
    parts["models held"] = held * n_params * 4  # the original, one unlearned, a SISA's shards
    total, available = check_memory(
        parts,
        "the unlearning study",
        "make the network smaller (target.recipe.params), use fewer SISA shards or fewer members",
    )
    estimate = StudyEstimate(
        models=lines, memory_bytes=total, memory_parts=parts, available_bytes=available
    )
    if calibrate_time:
        per_epoch = time_one_epoch(recipe, dataset, split.members)
        if per_epoch is None:
            estimate.seconds_note = NOT_TIMED
        else:
            estimate.seconds = per_epoch * recipe.training.epochs * full
            estimate.seconds_note = (
                f"one epoch on {split.members.size} records took {per_epoch:.2f} s; about "
                f"{full:.3g} trainings of {recipe.training.epochs} epochs"
            )
    return estimate


def plan_unlearning(config: AuditConfig, *, data_dir: str | Path | None = None, on_stage=None):
    """What :func:`run_unlearning` would do, without doing it (``miaudit unlearn
    --dry-run``): every check, then the plan with memory and, from one timed epoch, time."""
    notify = on_stage or (lambda message: None)
    dataset, split, recipe, requests = _prepare(config, data_dir)
    notify("estimating (one epoch of training is timed)")
    return estimate_unlearning(config, dataset, split, recipe, requests, calibrate_time=True)


def run_unlearning(config: AuditConfig, *, data_dir: str | Path | None = None, on_stage=None):
    """Run the study; nothing is written."""
    from miaudit.targets import TorchTarget
    from miaudit.unlearning import (
        SISA,
        finetune,
        gradient_ascent,
        retrain,
        ulira,
        verify_forgetting,
    )

    notify = on_stage or (lambda message: None)
    started = time.perf_counter()
    if config.unlearning is not None:
        notify(f"loading data set {config.dataset.name}")
    dataset, split, recipe, requests = _prepare(config, data_dir)
    estimate_unlearning(config, dataset, split, recipe, requests)  # memory: refused now
    section = config.unlearning
    never_seen = split.nonmembers
    seed = config.target.recipe.seed
    notify("training the original model")
    t0 = time.perf_counter()
    original = recipe.train(dataset, split.members, seed=seed)
    original_seconds = time.perf_counter() - t0
    original_target = TorchTarget(original.model, n_classes=dataset.n_classes)
    sisa_models = {}
    rows = []
    for name, deleted in requests:
        before_checks = verify_forgetting(
            original_target, dataset, deleted, never_seen, attacks=section.attacks
        )
        notify(f"{name}: full retraining")
        exact = retrain(recipe, dataset, split.members, deleted, seed=seed)
        for method in section.methods:
            label = _describe(method)
            notify(f"{name}: {label}")
            before_target, before = original_target, before_checks
            if method.name == "retrain":
                model_target = TorchTarget(exact.model, n_classes=dataset.n_classes)
                seconds, trainings = exact.seconds, exact.trainings
            elif method.name == "sisa":
                key = (method.shards, method.slices, method.aggregate)
                if key not in sisa_models:
                    sisa_models[key] = SISA(
                        recipe,
                        method.shards,
                        method.slices,
                        aggregate=method.aggregate,
                        seed=seed,
                    ).fit(dataset, split.members)
                full = sisa_models[key]
                before_target = full.target()
                before = verify_forgetting(
                    before_target, dataset, deleted, never_seen, attacks=section.attacks
                )
                forgot = full.unlearn(deleted)
                model_target = forgot.target()
                seconds, trainings = forgot.unlearn_seconds_, forgot.trainings
            else:
                remaining = np.setdiff1d(split.members, deleted)
                t0 = time.perf_counter()
                if method.name == "finetune":
                    model = finetune(
                        original.model,
                        dataset,
                        remaining,
                        deleted,
                        seed,
                        recipe=recipe,
                        epochs=method.epochs,
                    )
                else:
                    model = gradient_ascent(
                        original.model,
                        dataset,
                        remaining,
                        deleted,
                        seed,
                        lr=method.lr,
                        steps=method.steps,
                    )
                seconds, trainings = time.perf_counter() - t0, 0
                model_target = TorchTarget(model, n_classes=dataset.n_classes)
            after = verify_forgetting(
                model_target, dataset, deleted, never_seen, attacks=section.attacks
            )
            if section.ulira_references and method.name != "sisa":
                notify(f"{name}: {label}: U-LiRA with {section.ulira_references} references")
                after.append(
                    ulira(
                        recipe,
                        dataset,
                        split.members,
                        deleted,
                        never_seen,
                        model_target,
                        _unlearn_fn(method, recipe),
                        n_references=section.ulira_references,
                        seed=section.seed,
                    )
                )
            rows.append(
                UnlearningRow(
                    request=name,
                    method=label,
                    n_deleted=int(deleted.size),
                    test_accuracy_before=_accuracy(before_target, dataset, never_seen),
                    test_accuracy_after=_accuracy(model_target, dataset, never_seen),
                    checks_before=[c.to_dict() for c in before],
                    checks_after=[c.to_dict() for c in after],
                    seconds=float(seconds),
                    retrain_seconds=float(exact.seconds),
                    trainings=int(trainings),
                    deleted=deleted,
                    scores_after={c.attack: c.deleted_scores for c in after},
                )
            )
    target = {
        "description": f"{recipe.architecture} trained by miaudit",
        "n_members": int(split.members.size),
        "n_never_seen": int(never_seen.size),
        "train_accuracy": original.train_accuracy,
        "training_seconds": original_seconds,
    }
    return UnlearningResult(rows=rows, target=target, seconds=time.perf_counter() - started)


def unlearning_table(rows: list[UnlearningRow]) -> list[list[str]]:
    """Header and one row per (request, method): the first attack's AUC before and after."""
    header = [
        "request",
        "method",
        "deleted",
        "test acc before/after",
        "AUC before",
        "AUC after [95%]",
        "p after",
        "U-LiRA after",
        "seconds (retrain)",
    ]
    body = []
    for r in rows:
        b, a = r.checks_before[0], r.checks_after[0]
        low, high = a["auc_interval"]
        body.append(
            [
                r.request,
                r.method,
                str(r.n_deleted),
                f"{r.test_accuracy_before:.3f}/{r.test_accuracy_after:.3f}",
                f"{b['auc']:.3f} ({b['attack']})",
                f"{a['auc']:.3f} [{low:.3f}, {high:.3f}]",
                f"{a['p_value']:.3g}",
                next(
                    (
                        f"{c['auc']:.3f} (p {c['p_value']:.2g})"
                        for c in r.checks_after
                        if c["attack"] == "u_lira"
                    ),
                    "-",
                ),
                f"{r.seconds:.1f} ({r.retrain_seconds:.1f})",
            ]
        )
    return [header, *body]
