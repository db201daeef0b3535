"""Metric (threshold) attacks: the membership score is one signal, oriented so that higher
means member.

A record the model fits unusually well (low loss, high confidence, low entropy) is more
likely a training member (Yeom et al., CSF 2018; Song & Mittal, USENIX Security 2021). These
attacks learn nothing; ``fit`` only checks that the population's signals carry what the
attack needs, so that they share the ``fit``/``score`` contract of the learned attacks. The
threshold itself is chosen later, by ``evaluation``, on records it does not score.
"""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from miaudit.attacks.protocol import Requirements
from miaudit.errors import InvalidAuditInput
from miaudit.signals.evidence import Evidence
from miaudit.signals.table import SignalTable
from miaudit.targets.adapters import AccessLevel

# attack name -> (signal, orientation, access needed, paper)
METRIC_ATTACKS: dict[str, tuple[str, float, AccessLevel, str]] = {
    "loss": ("loss", -1.0, AccessLevel.PROBABILITIES, "Yeom et al. 2018"),
    "confidence": ("confidence", 1.0, AccessLevel.PROBABILITIES, "Salem et al. 2019"),
    "scaled_logit": ("scaled_logit", 1.0, AccessLevel.PROBABILITIES, "Carlini et al. 2022"),
    "entropy": ("entropy", -1.0, AccessLevel.PROBABILITIES, "Salem et al. 2019"),
    "modified_entropy": ("modified_entropy", -1.0, AccessLevel.PROBABILITIES, "Song & Mittal 2021"),
    "gap": ("correct", 1.0, AccessLevel.LABEL_ONLY, "Yeom et al. 2018"),
}


class MetricAttack(BaseEstimator):
    """Threshold attack on one per-record signal.

    Parameters
    ----------
    metric : str
        One of ``loss``, ``confidence``, ``scaled_logit``, ``entropy``,
        ``modified_entropy``, ``gap`` (correctly classified ⇒ member).
    """

    family: ClassVar[str] = "metric"

    def __init__(self, *, metric: str = "loss") -> None:
        self.metric = metric

    @property
    def required_access(self) -> AccessLevel:
        return self._spec()[2]

    @property
    def requirements(self) -> Requirements:
        return Requirements(access=self._spec()[2])

    def check_params(self) -> None:
        self._spec()

    def default_label(self) -> str:
        return str(self.metric)

    def _spec(self) -> tuple[str, float, AccessLevel, str]:
        if self.metric not in METRIC_ATTACKS:
            raise InvalidAuditInput(
                f"MetricAttack: metric must be one of {', '.join(METRIC_ATTACKS)}, "
                f"got {self.metric!r}"
            )
        return METRIC_ATTACKS[self.metric]

    def fit(self, population: SignalTable | Evidence | None = None) -> Self:
        """Check the attack is usable; threshold attacks learn nothing from data.

        Parameters
        ----------
        population : SignalTable or Evidence, optional
            Signals on the attacker's population records, or the audit's evidence; if
            given, its signals must carry the attack's signal (an early, clear error
            instead of one at scoring time).
        """
        if isinstance(population, Evidence):
            population = population.signals
        signal, orientation, _, _ = self._spec()
        if population is not None:
            population.get(signal)
        self.signal_ = signal
        self.orientation_ = orientation
        return self

    def score(self, audited: SignalTable | Evidence) -> np.ndarray:
        """Membership scores, ``(n_records,)`` float64, higher = more likely a member."""
        check_is_fitted(self, "signal_")
        if isinstance(audited, Evidence):
            audited = audited.signals
        values = audited.get(self.signal_)
        return (self.orientation_ * values).astype(np.float64)
