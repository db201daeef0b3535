"""The one protocol every attack follows, and the needs it declares.

An attack is configured in ``__init__``, learns in ``fit(evidence)`` and returns, from
``score(evidence)``, a float64 vector aligned with the audited records (higher = more
likely a member). ``evidence`` is the audit's frozen
:class:`~miaudit.signals.evidence.Evidence`: the target's signals and answers, the
reference models' answers, the population, and the known membership where the attack
declares that it uses it. The audit reads :attr:`requirements` and checks them, together
with every parameter (:meth:`check_params`), before any model is trained.

Adding an attack family is one module with a class that follows :class:`Attack`, plus one
line in :data:`miaudit.attacks.registry.ATTACK_CLASSES`; see "Adding an attack" in the
README for a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

import numpy as np

from miaudit.targets.adapters import AccessLevel

if TYPE_CHECKING:
    from miaudit.signals.evidence import Evidence

__all__ = ["Attack", "Requirements", "scores_of_fit"]


@dataclass(frozen=True)
class Requirements:
    """What an attack needs from an audit; checked before any training.

    Attributes
    ----------
    access : AccessLevel
        The least access to the target the attack works with.
    references : bool
        Reference models trained like the target (LiRA, RMIA, Attack-R); the audit trains
        the largest number any attack asks for once, and gives each its share.
    population : bool
        Population records (``split.population``) beyond the audited ones: RMIA's z,
        shadow models' training data.
    shadows : bool
        A recipe to train the attacker's own models on its data (Shokri et al.).
    membership : bool
        Part of the true membership of the audited records (an attack model trained on
        some audited records and scored on the others, MindArmour's setting). Attacks that
        do not declare it never see ``evidence.is_member``.
    """

    access: AccessLevel = AccessLevel.PROBABILITIES
    references: bool = False
    population: bool = False
    shadows: bool = False
    membership: bool = False

    @property
    def needs_recipe(self) -> bool:
        return self.references or self.shadows


@runtime_checkable
class Attack(Protocol):
    """The role of every attack (a ``sklearn.base.BaseEstimator`` in practice)."""

    family: str

    @property
    def requirements(self) -> Requirements: ...

    def check_params(self) -> None:
        """Raise :class:`~miaudit.errors.InvalidAuditInput` naming each bad parameter."""

    def fit(self, evidence: Evidence) -> Self: ...

    def score(self, evidence: Evidence) -> np.ndarray: ...


def scores_of_fit(attack, evidence: Evidence) -> np.ndarray:
    """The scores an attack computed in ``fit(evidence)`` (``scores_`` for ``records_``),
    for attacks that score while fitting (learned on the audit's own models, cross-fitted
    or query-based): refused before ``fit``, or for other records than those fitted on."""
    from miaudit.errors import InvalidAuditInput, NotFittedError

    name = type(attack).__name__
    if not hasattr(attack, "scores_"):
        raise NotFittedError(f"{name}: call fit(evidence) first")
    if not np.array_equal(np.asarray(evidence.records), attack.records_):
        raise InvalidAuditInput(
            f"{name} scores the records it was fitted on (the audit's); fit it again for "
            "other records"
        )
    return np.asarray(attack.scores_, dtype=np.float64)
