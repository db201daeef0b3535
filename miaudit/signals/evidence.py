"""The frozen evidence object: everything the attacks of one audit may read, built once.

An audit queries the target once per audited record and query (augmentation): the
per-record signals (loss, confidence, ...) come from the answers to the first query, the
reference attacks' observations from all of them. Reference models' answers, the
population, the attacker's recipe and cache (for shadow models), and the known
membership join them in one :class:`Evidence`. Each attack gets :meth:`Evidence.for_attack`
of it: the same object with what the attack did not declare (membership, more reference
models than it asked for) taken out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput
from miaudit.signals.observations import Observations
from miaudit.signals.table import (
    SignalTable,
    compute_signals,
    signals_from_logits,
    signals_from_proba,
)
from miaudit.targets.adapters import AccessLevel, Target

if TYPE_CHECKING:
    from miaudit.attacks.registry import AttackSpec
    from miaudit.compute.queries import QuerySet
    from miaudit.references import ReferenceEvidence

__all__ = ["Evidence", "query_target"]


#: ``on_step(what, done, total, info)``: progress of a long step inside an audit.
StepCallback = Callable[[str, int, int, dict], None]


@dataclass(frozen=True, eq=False)
class Evidence:
    """What the attacks of one audit may use.

    Attributes
    ----------
    target : Target
        The audited model behind its access adapter (attacks that query further, such as
        shadow-data synthesis, go through it and its access level).
    dataset : Dataset
        Where every record lives.
    records : (n,) int64
        The audited records (dataset indices), in the order of every score vector.
    labels : (n,) int64
        Their true classes.
    signals : SignalTable
        The target's per-record signals on ``records``.
    population : (z,) int64
        The attacker's population records (dataset indices), never audited.
    references : ReferenceEvidence or None
        Reference models' and the target's answers under every query; None when no attack
        needs references.
    recipe : Recipe or None
        How to train "one more model like the target" (shadow models).
    cache : ModelCache or None
        Where attacker-trained models are kept.
    executor : executor or None
        Where attacker-trained models (shadow models) train: the references' executor
        (:mod:`miaudit.compute.executors`); None trains in this process.
    is_member : (n,) bool or None
        The known membership; only attacks whose requirements declare ``membership`` see
        it (:meth:`for_attack`).
    seed : int
        Seed for attacks' own randomness (cross-fitting folds, shadow samples).
    on_step : callable or None
        ``on_step(what, done, total, info)`` for long steps inside an attack (``"shadow
        models"``, ``"synthesis"``), so that the command line can show their progress.
    """

    target: Target
    dataset: Dataset
    records: np.ndarray
    labels: np.ndarray
    signals: SignalTable
    population: np.ndarray
    references: ReferenceEvidence | None = None
    recipe: Any = None
    cache: Any = None
    executor: Any = None
    is_member: np.ndarray | None = None
    seed: int = 0
    on_step: StepCallback | None = None

    @property
    def n_records(self) -> int:
        return int(self.records.size)

    def for_attack(self, spec: AttackSpec) -> Evidence:
        """The evidence ``spec``'s attack may see: its share of the reference models, and
        the membership only if it declared it."""
        needs = spec.requirements
        refs = None
        if needs.references and self.references is not None:
            k = min(spec.num_references or self.references.n_models, self.references.n_models)
            refs = self.references.with_models(k)
        return replace(
            self, references=refs, is_member=self.is_member if needs.membership else None
        )

    def require_references(self, owner: str) -> ReferenceEvidence:
        if self.references is None:
            raise InvalidAuditInput(
                f"{owner} needs reference models, but the evidence holds none (declare "
                "references=True in its requirements so the audit trains them)"
            )
        return self.references

    def require_membership(self, owner: str) -> np.ndarray:
        if self.is_member is None:
            raise InvalidAuditInput(
                f"{owner} uses part of the known membership, but the evidence withholds it "
                "(declare membership=True in its requirements)"
            )
        return self.is_member


def query_target(
    target: Target, dataset: Dataset, records: np.ndarray, queries: QuerySet | None
) -> tuple[SignalTable, Observations | None]:
    """Ask the target about ``records`` once: signals from the first query's answers and,
    when ``queries`` is given, the observations of every query from the same answers.

    A label-only target (no probabilities) gives signals only; so does a call without
    ``queries`` (no attack of the audit needs observations).
    """
    from miaudit.compute.pool import observe_models

    labels = dataset.y[records]
    if queries is None or target.access < AccessLevel.PROBABILITIES:
        x = records if target.queries_by_index else dataset.x[records]
        return compute_signals(target, x, labels), None
    first: list[np.ndarray] = []
    observed = observe_models([target], dataset, records, queries=queries, first_view=first)
    outputs = np.concatenate(first)
    if target.access >= AccessLevel.LOGITS:
        return signals_from_logits(outputs, labels), observed
    return signals_from_proba(outputs, labels), observed
