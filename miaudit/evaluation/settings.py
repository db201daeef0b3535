"""How scores become metrics: the evaluation settings shared by every attack of an audit.

One definition: the YAML ``evaluation:`` section is validated by building this dataclass
(see :meth:`miaudit.config.AuditConfig.evaluation_settings`), and the Python API takes it
as is. Importing this module loads no model code, so a configuration error surfaces in the
first seconds of a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from miaudit.errors import raise_if_problems
from miaudit.evaluation.results import AttackEvaluation
from miaudit.validation import is_int, is_real

__all__ = ["MIN_PER_SIDE", "EvaluationSettings"]

#: Audited members and non-members each needs at least: a held-out threshold takes some of
#: each side, and the AUC's standard error (DeLong) is undefined below two.
MIN_PER_SIDE = 2


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

    # The YAML schema (pydantic) validates an ``evaluation:`` section by building this
    # class; unknown keys there are errors, as everywhere in an audit file.
    __pydantic_config__: ClassVar[dict] = {"extra": "forbid"}

    fprs: tuple[float, ...] = (0.001, 0.01, 0.1)
    delta: float = 1e-5
    confidence: float = 0.95
    calibration_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        fprs = self.fprs
        if isinstance(fprs, str) or not isinstance(fprs, Sequence | np.ndarray):
            problems.append(f"fprs must be a list of values in (0, 1), got {fprs!r}")
            fprs = ()
        elif not fprs or any(not is_real(f) or not 0 < f < 1 for f in fprs):
            problems.append(f"fprs must be values in (0, 1), got {list(fprs)}")
        if not is_real(self.delta) or not 0 <= self.delta < 1:
            problems.append(f"delta must lie in [0, 1), got {self.delta!r}")
        if not is_real(self.confidence) or not 0.5 <= self.confidence < 1:
            problems.append(f"confidence must lie in [0.5, 1), got {self.confidence!r}")
        if not is_real(self.calibration_fraction) or not 0 < self.calibration_fraction < 1:
            problems.append(
                f"calibration_fraction must lie in (0, 1), got {self.calibration_fraction!r}"
            )
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        raise_if_problems("EvaluationSettings", problems)
        object.__setattr__(self, "fprs", tuple(sorted(float(f) for f in self.fprs)))

    def evaluate(
        self,
        spec,
        scores: np.ndarray,
        is_member: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        seconds: float,
    ) -> AttackEvaluation:
        """Evaluate one attack's scores under these settings (``spec``: an AttackSpec)."""
        from miaudit.evaluation.evaluate import evaluate_attack

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
