"""Run attacks against one target and evaluate them: the Python entry point of an audit.

The flow is the one of ARCHITECTURE.md: signals are computed once per target (one query per
audited record), each attack turns them into a score vector, and ``evaluation`` turns each
score vector into metrics without knowing which attack produced it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from miaudit import __version__
from miaudit.attacks.metric import METRIC_ATTACKS, MetricAttack
from miaudit.data.dataset import Dataset
from miaudit.data.split import AuditSplit
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.evaluation import evaluate_attack
from miaudit.evaluation.results import AuditResult
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


def make_attack(spec: str | MetricAttack) -> tuple[str, MetricAttack]:
    """Turn an attack name (or a configured attack object) into ``(name, attack)``."""
    if isinstance(spec, str):
        if spec not in METRIC_ATTACKS:
            raise InvalidAuditInput(
                f"unknown attack {spec!r}; available: {', '.join(METRIC_ATTACKS)}"
            )
        return spec, MetricAttack(metric=spec)
    if hasattr(spec, "fit") and hasattr(spec, "score"):
        name = getattr(spec, "metric", None) or type(spec).__name__
        return str(name), spec
    raise InvalidAuditInput(f"an attack must be a name or an object with fit/score, got {spec!r}")


def default_attacks(access: AccessLevel) -> list[str]:
    """Every metric attack the access level allows (all of them above label-only)."""
    return [name for name, spec in METRIC_ATTACKS.items() if spec[2] <= access]


def run_audit(
    target: Target,
    dataset: Dataset,
    split: AuditSplit,
    *,
    attacks: Sequence[str | MetricAttack] | None = None,
    settings: EvaluationSettings | None = None,
    target_info: dict | None = None,
    progress: Callable[[str], None] | None = None,
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
    attacks : sequence of str or attack objects, optional
        Default: every metric attack the target's access level allows.
    settings : EvaluationSettings, optional
    target_info : dict, optional
        Extra JSON-ready facts about the target for the report (architecture, recipe, ...).
    progress : callable, optional
        Called with a short message as each stage starts.

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
    specs = list(attacks) if attacks is not None else default_attacks(target.access)
    if not specs:
        raise InvalidAuditInput("no attack to run: the attack list is empty")
    named = [make_attack(s) for s in specs]
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise InvalidAuditInput(f"attack names must be unique, got {names}")
    for name, attack in named:  # refuse before any query, not half-way through
        require_access(target, attack.required_access, f"attack {name!r}")

    notify = progress or (lambda message: None)
    notify("computing signals")
    audited = split.audited
    is_member = split.is_member
    labels = dataset.y[audited]
    queries = audited if target.queries_by_index else dataset.x[audited]
    signals = compute_signals(target, queries, labels)

    warnings_ = _target_warnings(signals, is_member, dataset.n_classes)
    evaluations, scores = [], {}
    for name, attack in named:
        notify(f"attack {name}")
        t0 = time.perf_counter()
        score = attack.fit(None).score(signals)
        seconds = time.perf_counter() - t0
        _check_scores(name, score, audited.size)
        scores[name] = score
        evaluations.append(
            evaluate_attack(
                name,
                getattr(attack, "family", "custom"),
                score,
                is_member,
                labels=labels,
                class_names=dataset.class_names,
                fprs=settings.fprs,
                delta=settings.delta,
                confidence=settings.confidence,
                calibration_fraction=settings.calibration_fraction,
                seed=settings.seed,
                seconds=seconds,
            )
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
