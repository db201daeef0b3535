"""Run attacks against one target and evaluate them: the Python entry point of an audit.

The flow is the one of ARCHITECTURE.md: signals are computed once per target (one query per
audited record), each attack turns them into a score vector, and ``evaluation`` turns each
score vector into metrics without knowing which attack produced it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from miaudit import __version__
from miaudit.attacks.classifier import features_from_signals
from miaudit.attacks.metric import METRIC_ATTACKS
from miaudit.attacks.registry import AttackSpec, as_attack_spec
from miaudit.data.dataset import Dataset
from miaudit.data.split import AuditSplit
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.evaluation import evaluate_attack
from miaudit.evaluation.results import AttackEvaluation, AuditResult
from miaudit.references import (
    ReferenceEvidence,
    ReferenceSetup,
    gather_reference_evidence,
    reference_warnings,
)
from miaudit.signals.table import SignalTable, compute_signals
from miaudit.targets.adapters import AccessLevel, Target, require_access

log = logging.getLogger(__name__)

#: A target whose accuracy on its own members is below this multiple of chance did not
#: really train; attacks on it understate what a trained model would leak.
UNTRAINED_FACTOR = 1.5


@dataclass(frozen=True)
class EvaluationSettings:
    """How scores become metrics (shared by every attack of an audit).

    Attributes
    ----------
    fprs : tuple of float
        FPRs at which TPR is reported; the report contract needs at least 0.001, 0.01, 0.1.
    delta : float
        δ of the empirical (ε, δ) lower bound.
    confidence : float
        Confidence of Clopper–Pearson intervals and of the ε bound.
    calibration_fraction : float
        Share of the audited records (per membership class) that chooses thresholds; the
        metrics that need a threshold are measured on the rest.
    seed : int
        Seed of the calibration split.
    """

    fprs: tuple[float, ...] = (0.001, 0.01, 0.1)
    delta: float = 1e-5
    confidence: float = 0.95
    calibration_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not self.fprs or any(not 0 < f < 1 for f in self.fprs):
            problems.append(f"fprs must be values in (0, 1), got {list(self.fprs)}")
        if not 0 <= self.delta < 1:
            problems.append(f"delta must lie in [0, 1), got {self.delta}")
        if not 0.5 <= self.confidence < 1:
            problems.append(f"confidence must lie in [0.5, 1), got {self.confidence}")
        if not 0 < self.calibration_fraction < 1:
            problems.append(
                f"calibration_fraction must lie in (0, 1), got {self.calibration_fraction}"
            )
        raise_if_problems("EvaluationSettings", problems)
        object.__setattr__(self, "fprs", tuple(sorted(float(f) for f in self.fprs)))

    def evaluate(
        self,
        spec: AttackSpec,
        scores: np.ndarray,
        is_member: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        seconds: float,
    ) -> AttackEvaluation:
        """Evaluate one attack's scores under these settings."""
        return evaluate_attack(
            spec.label,
            spec.family,
            scores,
            is_member,
            labels=labels,
            class_names=class_names,
            fprs=self.fprs,
            delta=self.delta,
            confidence=self.confidence,
            calibration_fraction=self.calibration_fraction,
            seed=self.seed,
            seconds=seconds,
        )


def default_attacks(access: AccessLevel) -> list[str]:
    """Every metric attack the access level allows (all of them above label-only)."""
    return [name for name, spec in METRIC_ATTACKS.items() if spec[2] <= access]


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
        Attack-R), which train ``max(num_references)`` models once and share them.
    progress : callable, optional
        Called with a short message as each stage starts.
    on_reference : callable, optional
        ``on_reference(done, total, info)`` as each reference model is trained or loaded.

    Returns
    -------
    AuditResult
        Nothing is written; pass it to :func:`miaudit.report.write_report`.
    """
    started = time.perf_counter()
    settings = settings or EvaluationSettings()
    split.check_within(dataset.n_records)
    if target.n_classes != dataset.n_classes:
        raise InvalidAuditInput(
            f"the target predicts {target.n_classes} classes but dataset {dataset.name!r} "
            f"has {dataset.n_classes}"
        )
    entries = list(attacks) if attacks is not None else default_attacks(target.access)
    if not entries:
        raise InvalidAuditInput("no attack to run: the attack list is empty")
    specs = [as_attack_spec(entry) for entry in entries]
    labels_ = [spec.label for spec in specs]
    if len(set(labels_)) != len(labels_):
        raise InvalidAuditInput(
            f"attack labels must be unique, got {labels_}; give repeated attacks a 'label'"
        )
    for spec in specs:  # refuse before any query or training, not half-way through
        require_access(target, spec.attack.required_access, f"attack {spec.label!r}")
    n_refs = max((spec.num_references or 0 for spec in specs), default=0)
    needs_recipe = [s.label for s in specs if s.num_references or s.family == "shadow"]
    if needs_recipe and references is None:
        names = needs_recipe
        raise InvalidAuditInput(
            f"attacks {names} need reference models: give a reference recipe (YAML "
            "'references: {recipe: ...}', or references=ReferenceSetup(...))"
        )

    notify = progress or (lambda message: None)
    notify("computing signals")
    audited = split.audited
    is_member = split.is_member
    labels = dataset.y[audited]
    queries = audited if target.queries_by_index else dataset.x[audited]
    signals = compute_signals(target, queries, labels)
    warnings_ = _target_warnings(signals, is_member, dataset.n_classes)

    evidence = None
    if n_refs:
        notify(f"reference models: {n_refs}")
        evidence = gather_reference_evidence(
            target, dataset, split, references, n_models=n_refs, progress=on_reference
        )
        warnings_ += reference_warnings(evidence, signals, is_member, dataset.n_classes)

    context = AuditContext(target, dataset, split, references)
    evaluations, scores = [], {}
    for spec in specs:
        notify(f"attack {spec.label}")
        t0 = time.perf_counter()
        score = run_attack_spec(
            spec,
            signals,
            is_member,
            evidence,
            seed=settings.seed,
            n_classes=dataset.n_classes,
            context=context,
        )
        seconds = time.perf_counter() - t0
        _check_scores(spec.label, score, audited.size)
        scores[spec.label] = score
        evaluations.append(
            settings.evaluate(spec, score, is_member, labels, dataset.class_names, seconds)
        )
    info = {
        "description": target.description,
        "access": target.access.label,
        "n_classes": target.n_classes,
        "train_accuracy": float(signals.correct[is_member].mean()),
        "test_accuracy": float(signals.correct[~is_member].mean()),
        "accuracy_measured_on": "train: the audited members; test: the audited non-members",
        **(target_info or {}),
    }
    if evidence is not None:
        info["references"] = evidence.describe()
    if context.shadow_models:
        info["shadow_models"] = context.shadow_models
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
    settings_dict = asdict(settings)
    settings_dict["fprs"] = list(settings.fprs)
    settings_dict["miaudit_version"] = __version__
    return AuditResult(
        target=info,
        data=data,
        attacks=evaluations,
        scores=scores,
        is_member=is_member,
        labels=labels,
        settings=settings_dict,
        warnings=warnings_,
        seconds=time.perf_counter() - started,
    )


def run_attack_spec(
    spec: AttackSpec,
    signals: SignalTable,
    is_member: np.ndarray,
    evidence: ReferenceEvidence | None,
    *,
    seed: int,
    n_classes: int,
    context: AuditContext | None = None,
) -> np.ndarray:
    """Fit and score one attack on what its family may know."""
    attack = spec.attack
    if spec.family == "shadow":
        return _run_shadow(spec, signals, context, seed)
    if spec.family == "reference":
        assert evidence is not None and spec.num_references is not None
        refs = evidence.with_models(min(spec.num_references, evidence.n_models))
        attack.fit(
            refs.audited_references,
            population_references=refs.population_references,
            population_target=refs.population_target,
        )
        return attack.score(refs.audited_target)
    if spec.family == "classifier":
        # The attacker knows part of the membership (MindArmour's setting): cross-fitting
        # trains on some audited records and scores only the others, in turn.
        features = features_from_signals(
            signals,
            attack.features,
            n_classes=n_classes,
        )
        return attack.cross_fit_scores(features, is_member, seed=seed)
    return attack.fit(None).score(signals)


@dataclass
class AuditContext:
    """What attacks that train their own models need beyond signals; ``shadow_models``
    collects, per shadow attack, the facts the report shows next to the target's."""

    target: Target
    dataset: Dataset
    split: AuditSplit
    references: ReferenceSetup | None
    shadow_models: dict = field(default_factory=dict)


def _run_shadow(
    spec: AttackSpec, signals: SignalTable, context: AuditContext | None, seed: int
) -> np.ndarray:
    """Shokri et al.'s attack: shadow models on the attacker's (real, noisy or synthetic)
    data by the target's recipe, attack models on their answers, applied to the target's
    probabilities on the audited records."""
    if context is None or context.references is None:
        raise InvalidAuditInput(f"attack {spec.label!r} needs a recipe to train shadow models")
    if signals.log_proba is None:
        raise InvalidAuditInput(f"attack {spec.label!r} needs the target's probabilities")
    from miaudit.shadow_data import shadow_training_data

    params = spec.params
    data, indices, info = shadow_training_data(
        params.get("shadow_data", "real"),
        context.target,
        context.dataset,
        context.split.population,
        noise=float(params.get("noise", 0.1)),
        synthesis=params.get("synthesis"),
        seed=seed,
    )
    setup = context.references
    attack = spec.attack
    attack.fit(data, indices, recipe=setup.recipe, cache=setup.cache())
    context.shadow_models[spec.label] = {
        **info,
        "n_shadow": int(attack.n_shadow),
        "mean_train_accuracy": float(np.mean(attack.shadow_train_accuracy_)),
        "mean_test_accuracy": float(np.mean(attack.shadow_test_accuracy_)),
        "classes_without_model": [int(c) for c in attack.classes_without_model_],
    }
    return attack.score(np.exp(signals.log_proba), signals.labels)


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
