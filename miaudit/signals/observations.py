"""Answers of one or several models on a set of records, under one or several queries.

Reference-model attacks (LiRA, RMIA, Attack-R) compare how the target answers on a record
with how models trained with and without that record answer. This record carries those
answers in one layout for the target (``n_models == 1``) and for a reference pool
(``n_models == K``, with the inclusion matrix saying which model trained on which record).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import raise_if_problems


@dataclass(frozen=True, eq=False)
class Observations:
    """Per-record answers of ``m`` models under ``a`` queries (augmentations) each.

    Attributes
    ----------
    record_ids : (n,) int64
        Data set indices of the records, in the order of the other axes.
    scaled_logit : (m, n, a) float64
        φ = log(p_y / (1 − p_y)), computed stably from logits (Carlini et al. 2022).
    log_confidence : (m, n, a) float64
        log p_y, the log true-class probability (RMIA's Pr(x | θ), in log space).
    inclusion : (m, n) bool or None
        ``inclusion[k, i]`` is True when model ``k`` trained on record ``i``. None for the
        target, whose membership is what the audit estimates.
    correct : (m, n) bool or None
        Whether model ``k`` predicts record ``i``'s class on the first (unaugmented) query:
        what the recipe-match table needs to compare accuracies; φ and log p_y alone cannot
        tell a correct prediction below p_y = 1/2 from a wrong one.
    """

    record_ids: np.ndarray
    scaled_logit: np.ndarray
    log_confidence: np.ndarray
    inclusion: np.ndarray | None = None
    correct: np.ndarray | None = None

    def __post_init__(self) -> None:
        problems = []
        ids = np.asarray(self.record_ids)
        if ids.ndim != 1:
            problems.append(f"record_ids must be 1-d, got shape {ids.shape}")
        for name in ("scaled_logit", "log_confidence"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[1] != ids.size:
                problems.append(
                    f"{name} must be (models, {ids.size}, queries), got "
                    f"{getattr(arr, 'shape', type(arr))}"
                )
            elif not np.isfinite(arr).all():
                problems.append(f"{name} contains NaN or infinite values")
        if not problems and self.scaled_logit.shape != self.log_confidence.shape:
            problems.append(
                f"scaled_logit {self.scaled_logit.shape} and log_confidence "
                f"{self.log_confidence.shape} differ in shape"
            )
        if self.inclusion is not None and not problems:
            inc = np.asarray(self.inclusion)
            if inc.dtype != bool or inc.shape != self.scaled_logit.shape[:2]:
                problems.append(
                    f"inclusion must be bool of shape {self.scaled_logit.shape[:2]}, got "
                    f"{inc.dtype} {inc.shape}"
                )
        if self.correct is not None and not problems:
            cor = np.asarray(self.correct)
            if cor.dtype != bool or cor.shape != self.scaled_logit.shape[:2]:
                problems.append(
                    f"correct must be bool of shape {self.scaled_logit.shape[:2]}, got "
                    f"{cor.dtype} {cor.shape}"
                )
        raise_if_problems("Observations", problems)
        object.__setattr__(self, "record_ids", ids.astype(np.int64, copy=False))

    @property
    def n_models(self) -> int:
        return int(self.scaled_logit.shape[0])

    @property
    def n_records(self) -> int:
        return int(self.scaled_logit.shape[1])

    @property
    def n_queries(self) -> int:
        return int(self.scaled_logit.shape[2])

    def select_models(self, models: np.ndarray) -> Observations:
        """The same records seen by a subset of the models (e.g. all but a held-out one)."""
        inc = None if self.inclusion is None else self.inclusion[models]
        cor = None if self.correct is None else self.correct[models]
        return Observations(
            self.record_ids, self.scaled_logit[models], self.log_confidence[models], inc, cor
        )

    def select_records(self, records: np.ndarray) -> Observations:
        """A subset of the records, every model kept."""
        inc = None if self.inclusion is None else self.inclusion[:, records]
        cor = None if self.correct is None else self.correct[:, records]
        return Observations(
            self.record_ids[records],
            self.scaled_logit[:, records],
            self.log_confidence[:, records],
            inc,
            cor,
        )
