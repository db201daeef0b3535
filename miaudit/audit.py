"""Run attacks against one target and evaluate them: the Python entry point of an audit.

The flow is the one of ARCHITECTURE.md: :func:`plan_audit` checks every attack, parameter
and requirement before anything is trained; :func:`build_evidence` queries the target once
per audited record and query and gathers the reference models' answers into one frozen
:class:`~miaudit.signals.evidence.Evidence`; :func:`run_attacks`, the one attack loop of
every audit (the self-audit's too), runs ``fit(evidence)`` then ``score(evidence)`` for each
attack; and ``evaluation`` turns each score vector into metrics without knowing which attack
produced it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from miaudit import __version__
from miaudit.attacks.registry import (
    AttackSpec,
    build_attacks,
    check_requirements,
    default_attacks,
)
from miaudit.data.dataset import Dataset
from miaudit.data.split import AuditSplit
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.evaluation.results import AttackEvaluation, AuditResult
from miaudit.evaluation.settings import EvaluationSettings
from miaudit.references import (
    ReferenceDesign,
    ReferenceSetup,
    check_population,
    gather_reference_evidence,
    plan_references,
    reference_queries,
    reference_warnings,
    resolve_queries,
)
from miaudit.signals.evidence import Evidence, StepCallback, query_target
from miaudit.signals.table import SignalTable
from miaudit.targets.adapters import AccessLevel, Target
from miaudit.validation import is_int

log = logging.getLogger(__name__)

__all__ = [
    "AuditPlan",
    "EvaluationSettings",
    "build_evidence",
    "default_attacks",
    "plan_audit",
    "run_attacks",
    "run_audit",
]

#: A target whose accuracy on its own members is below this multiple of chance did not
#: really train; attacks on it understate what a trained model would leak.
UNTRAINED_FACTOR = 1.5


@dataclass(frozen=True, eq=False)
class AuditPlan:
    """An audit checked before any model is trained or queried.

    Attributes
    ----------
    specs : list of AttackSpec
        The attacks, parameters checked, labels unique.
    n_references : int
        Reference models to train: the most any attack asks for (0: none needed).
    design : ReferenceDesign or None
        The records the references train on and RMIA's population (see
        :mod:`miaudit.references`); None without reference attacks.
    """

    specs: list[AttackSpec]
    n_references: int
    design: ReferenceDesign | None


def plan_audit(
    access: AccessLevel,
    dataset: Dataset,
    split: AuditSplit,
    attacks: Sequence[str | dict | AttackSpec] | None,
    references: ReferenceSetup | None,
    *,
    target_description: str = "the target",
) -> AuditPlan:
    """Check every attack, its requirements and the reference design; train nothing.

    This is what lets a configuration error end the audit within seconds, before the
    target or any reference model is trained: unknown attacks and parameters, repeated
    labels, an access level below an attack's needs, attacks needing a recipe without one,
    a population too small for RMIA or for references of the target's size, settings an
    attack cannot use on this data set (its ``check_dataset(dataset)``, e.g. shadow-data
    synthesis options).
    """
    split.check_within(dataset.n_records)
    specs = build_attacks(attacks if attacks is not None else default_attacks(access))
    check_requirements(
        specs, access, has_recipe=references is not None, target_description=target_description
    )
    n_refs = max((s.num_references or 0 for s in specs if s.requirements.references), default=0)
    design = None
    if n_refs:
        assert references is not None
        resolve_queries(references.queries, dataset, references.recipe)  # fails now
        design = plan_references(split, references)
        check_population(specs, design.sizes, split.population.size)
    for spec in specs:  # attacks with data-dependent settings (shadow data synthesis)
        check = getattr(spec.attack, "check_dataset", None)
        if check is not None:
            try:
                check(dataset)
            except ValueError as error:
                raise InvalidAuditInput(f"attack {spec.label!r}: {error}") from None
    shadows = [s.label for s in specs if s.requirements.shadows and s.requirements.population]
    if shadows and split.population.size == 0:
        raise InvalidAuditInput(
            f"attacks {shadows} train shadow models on the attacker's population, but "
            "split.population is empty"
        )
    return AuditPlan(specs, n_refs, design)


def check_attacks_against_model(specs: Sequence[AttackSpec], module: Any) -> None:
    """Let attacks that read a model's insides (layer names, the white-box attack) check
    them against ``module``, an ``nn.Module`` of the target's architecture (trained or
    not), before anything is trained."""
    if module is None:
        return
    for spec in specs:
        check = getattr(spec.attack, "check_model", None)
        if check is not None:
            check(module)


def build_evidence(
    target: Target,
    dataset: Dataset,
    split: AuditSplit,
    plan: AuditPlan,
    references: ReferenceSetup | None,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    on_reference: Callable[[int, int, dict], None] | None = None,
    on_step: StepCallback | None = None,
) -> Evidence:
    """Query the target once and gather the reference models' answers: the evidence every
    attack of ``plan`` reads."""
    notify = progress or (lambda message: None)
    notify("querying the target")
    audited = split.audited
    queries = None
    if plan.n_references:
        assert references is not None
        queries = reference_queries(target, dataset, references)[1]
    signals, target_observations = query_target(target, dataset, audited, queries)
    reference_evidence = None
    if plan.n_references:
        assert references is not None
        notify(f"reference models: {plan.n_references}")
        reference_evidence = gather_reference_evidence(
            target,
            dataset,
            split,
            references,
            n_models=plan.n_references,
            progress=on_reference,
            design=plan.design,
            audited_target=target_observations,
        )
    return Evidence(
        target=target,
        dataset=dataset,
        records=audited,
        labels=dataset.y[audited],
        signals=signals,
        population=split.population,
        references=reference_evidence,
        recipe=None if references is None else references.recipe,
        cache=None if references is None else references.cache(),
        executor=None if references is None else references.make_executor(),
        is_member=split.is_member,
        seed=seed,
        on_step=on_step,
    )


def run_attacks(
    evidence: Evidence,
    specs: Sequence[AttackSpec],
    settings: EvaluationSettings,
    *,
    progress: Callable[[str], None] | None = None,
    on_step: StepCallback | None = None,
) -> tuple[list[AttackEvaluation], dict[str, np.ndarray], dict[str, dict]]:
    """The one attack loop of every audit: ``fit(evidence)``, ``score(evidence)``, check the
    score contract, evaluate. Returns the evaluations, the score vectors by label, and the
    facts attacks report about themselves (e.g. their shadow models) by label.
    ``on_step("attacks", done, total, {"attack": label})`` follows each attack."""
    notify = progress or (lambda message: None)
    if evidence.is_member is None:
        raise InvalidAuditInput("run_attacks: the evidence must carry the known membership")
    is_member = evidence.is_member
    evaluations, scores, facts = [], {}, {}
    for spec in specs:
        notify(f"attack {spec.label}")
        view = evidence.for_attack(spec)
        t0 = time.perf_counter()
        score = spec.attack.fit(view).score(view)
        seconds = time.perf_counter() - t0
        _check_scores(spec.label, score, evidence.n_records)
        scores[spec.label] = score
        if callable(describe := getattr(spec.attack, "describe", None)):
            facts[spec.label] = describe()
        evaluations.append(
            settings.evaluate(
                spec, score, is_member, evidence.labels, evidence.dataset.class_names, seconds
            )
        )
        if on_step is not None:
            on_step("attacks", len(evaluations), len(specs), {"attack": spec.label})
    return evaluations, scores, facts


def run_audit(
    target: Target,
    dataset: Dataset,
    split: AuditSplit,
    *,
    attacks: Sequence[str | dict | AttackSpec] | None = None,
    settings: EvaluationSettings | None = None,
    target_info: dict | None = None,
    references: ReferenceSetup | None = None,
    progress: Callable[[str], None] | None = None,
    on_reference: Callable[[int, int, dict], None] | None = None,
    on_step: StepCallback | None = None,
) -> AuditResult:
    """Audit ``target`` on the members and non-members of ``split``.

    Parameters
    ----------
    target : Target
        The audited model behind its access adapter.
    dataset : Dataset
        The records ``split`` indexes into.
    split : AuditSplit
        Members (trained on), non-members (not), population (attacker's data).
    attacks : sequence, optional
        Attack names (``"loss"``, ``"rmia"``), mappings ``{"name": "lira", "online":
        False, "num_references": 8}``, :class:`AttackSpec` objects or configured attack
        estimators. Default: every metric attack the target's access level allows.
    settings : EvaluationSettings, optional
    target_info : dict, optional
        Extra JSON-ready facts about the target for the report (architecture, recipe, ...).
    references : ReferenceSetup, optional
        How to train reference models; needed by the reference family (LiRA, RMIA,
        Attack-R), which train ``max(num_references)`` models once and share them, each
        on as many records as the target (see :mod:`miaudit.references`).
    progress : callable, optional
        Called with a short message as each stage starts.
    on_reference : callable, optional
        ``on_reference(done, total, info)`` as each reference model is trained or loaded.
    on_step : callable, optional
        ``on_step(what, done, total, info)`` as the other long steps advance: ``"attacks"``
        (after each attack), ``"shadow models"``, ``"synthesis"`` (records found).

    Returns
    -------
    AuditResult
        Nothing is written; pass it to :func:`miaudit.report.write_report`.
    """
    started = time.perf_counter()
    settings = settings or EvaluationSettings()
    check_audit_inputs(target, dataset, split)
    plan = plan_audit(
        target.access, dataset, split, attacks, references, target_description=target.description
    )
    if target.access >= AccessLevel.WHITE_BOX:
        check_attacks_against_model(plan.specs, getattr(target, "module", None))
    evidence = build_evidence(
        target,
        dataset,
        split,
        plan,
        references,
        seed=settings.seed,
        progress=progress,
        on_reference=on_reference,
        on_step=on_step,
    )
    is_member = split.is_member
    signals = evidence.signals
    warnings_ = _target_warnings(signals, is_member, dataset.n_classes)
    if evidence.references is not None:
        warnings_ += reference_warnings(evidence.references, dataset.n_classes)
    evaluations, scores, facts = run_attacks(
        evidence, plan.specs, settings, progress=progress, on_step=on_step
    )
    from miaudit.targets.defenses import defenses_of

    info = {
        "description": target.description,
        "access": target.access.label,
        **({"defenses": defenses_of(target)} if defenses_of(target) else {}),
        "n_classes": target.n_classes,
        "train_accuracy": float(signals.correct[is_member].mean()),
        "test_accuracy": float(signals.correct[~is_member].mean()),
        "accuracy_measured_on": "train: the audited members; test: the audited non-members",
        **(target_info or {}),
    }
    if evidence.references is not None:
        info["references"] = evidence.references.describe()
    shadow_facts = {
        spec.label: facts[spec.label]
        for spec in plan.specs
        if spec.family == "shadow" and spec.label in facts
    }
    if shadow_facts:
        info["shadow_models"] = shadow_facts
    details = {label: f for label, f in facts.items() if label not in shadow_facts}
    if details:
        info["attack_details"] = details  # e.g. label queries per record
    data = {
        "dataset": dataset.name,
        "source": dataset.source,
        "n_classes": dataset.n_classes,
        "class_names": list(dataset.class_names),
        "n_members": int(split.members.size),
        "n_nonmembers": int(split.nonmembers.size),
        "n_population": int(split.population.size),
        "split": split.describe(),
    }
    return AuditResult(
        target=info,
        data=data,
        attacks=evaluations,
        scores=scores,
        is_member=is_member,
        labels=evidence.labels,
        settings=settings_report(settings),
        warnings=warnings_,
        seconds=time.perf_counter() - started,
        records=np.asarray(evidence.records, np.int64),
    )


def settings_report(settings: EvaluationSettings) -> dict:
    """The evaluation settings as the report's ``settings`` section (JSON-ready)."""
    report = asdict(settings)
    report["fprs"] = list(settings.fprs)
    report["miaudit_version"] = __version__
    return report


def check_audit_inputs(target: Any, dataset: Any, split: Any) -> None:
    """Types and sizes at the API boundary, with messages in the CLI's style."""
    problems = []
    if not isinstance(target, Target):
        problems.append(
            f"target must be a target adapter (TorchTarget, SklearnTarget, CallableTarget, "
            f"PrecomputedTarget, ...), got {type(target).__name__}"
        )
    if not isinstance(dataset, Dataset):
        problems.append(f"dataset must be a miaudit Dataset, got {type(dataset).__name__}")
    if not isinstance(split, AuditSplit):
        problems.append(
            f"split must be an AuditSplit (miaudit.data.make_split), got {type(split).__name__}"
        )
    raise_if_problems("run_audit", problems)
    split.check_within(dataset.n_records)
    if target.n_classes != dataset.n_classes:
        raise InvalidAuditInput(
            f"the target predicts {target.n_classes} classes but dataset {dataset.name!r} "
            f"has {dataset.n_classes}"
        )
    _check_target_takes(target, dataset, split)


def _expected_width(target: Any) -> int | None:
    """Input features the target's model was built for, where the model says so."""
    inner = getattr(target, "inner", target)
    estimator = getattr(inner, "estimator", None)
    if estimator is not None:
        width = getattr(estimator, "n_features_in_", None)
        return int(width) if is_int(width) else None
    module = getattr(inner, "module", None)
    if module is not None:
        from torch import nn

        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                return int(layer.in_features)
            if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d):
                return None  # convolutions take any width; the probe below decides
    return None


def _check_target_takes(target: Target, dataset: Dataset, split: AuditSplit) -> None:
    """Refuse, with both shapes in the message, a model that cannot read the data set's
    records, before anything is trained (instead of torch's ``mat1 and mat2 shapes cannot
    be multiplied`` or scikit-learn's feature-count error halfway through the audit)."""
    shape = tuple(dataset.input_shape)
    features = int(np.prod(shape))
    inner = getattr(target, "inner", target)
    width = _expected_width(target)
    if width is not None and len(shape) == 1 and width != features:
        raise InvalidAuditInput(
            f"the target ({target.description}) expects {width} input features but dataset "
            f"{dataset.name!r} has {features} per record (shape {shape})"
        )
    if callable(getattr(inner, "probe", None)):  # e.g. an ONNX graph: checks its own input
        inner.probe(dataset.x[split.members[:64]])
        return
    if getattr(inner, "module", None) is None and getattr(inner, "estimator", None) is None:
        return  # a callable or precomputed answers: nothing to probe without a query
    probe = dataset.x[split.members[:2]]
    try:
        target.predict_labels(probe)
    except InvalidAuditInput:
        raise
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        expected = f" (it expects {width} input features)" if width is not None else ""
        raise InvalidAuditInput(
            f"the target ({target.description}) cannot read the records of dataset "
            f"{dataset.name!r}, shape {shape}{expected}: {first}"
        ) from None


def _check_scores(name: str, score: np.ndarray, n: int) -> None:
    """Enforce the score contract: float64, one per audited record, finite."""
    if not isinstance(score, np.ndarray) or score.dtype != np.float64 or score.shape != (n,):
        raise InvalidAuditInput(
            f"attack {name!r} broke the score contract: expected a float64 array of shape "
            f"({n},), got {getattr(score, 'dtype', type(score))} {getattr(score, 'shape', '')}"
        )
    if not np.isfinite(score).all():
        raise InvalidAuditInput(f"attack {name!r} returned NaN or infinite scores")


def _target_warnings(signals: SignalTable, is_member: np.ndarray, n_classes: int) -> list[str]:
    """Caveats about the target itself that change how the results must be read."""
    found = []
    train_acc = float(signals.correct[is_member].mean())
    chance = 1.0 / n_classes
    if train_acc < UNTRAINED_FACTOR * chance:
        found.append(
            f"the target's accuracy on its own members is {train_acc:.3f}, near chance "
            f"({chance:.3f}): it did not really train, and this audit understates what a "
            "trained model would leak"
        )
    for message in found:
        log.warning(message)
    return found
