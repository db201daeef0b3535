"""Answers of one or several models on a set of records, under one or several queries.

Reference-model attacks (LiRA, RMIA, Attack-R) compare how the target answers on a record
with how models trained with and without that record answer. This record carries those
answers in one layout for the target (``n_models == 1``) and for a reference pool
(``n_models == K``, with the inclusion matrix saying which model trained on which record).

Answers are stored in float32 (:data:`OBSERVATION_DTYPE`): a pool of 256 models on
60,000 records under 18 views then takes 2.2 GB instead of 4.4 GB. They are computed in
float64 (φ and log p_y from the logits, :mod:`miaudit.signals.table`) and only rounded when
stored; float32 keeps 7 significant digits of φ and log p_y, far finer than the spread of
φ across reference models that every attack compares against, and the attacks reduce in
float64 (``tests/test_observation_precision.py`` states the tolerance: attack scores agree
with float64 observations to 1e-4 and the AUC to 1e-6). The arrays may be memory-mapped
(:meth:`~miaudit.compute.ReferencePool.observe` maps large pools from the answer cache), so
nothing here copies them unless it must.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import raise_if_problems

#: The dtype answers are stored in (see the module docstring).
OBSERVATION_DTYPE = np.float32

#: MiB of answers above which a reference pool maps them from disk instead of holding them
#: (:meth:`~miaudit.compute.ReferencePool.observe`; the answers of 64 models on 60,000
#: records under 18 views take 527 MiB).
MEMORY_MAP_ABOVE_MB = 512


@dataclass(frozen=True, eq=False)
class Observations:
    """Per-record answers of ``m`` models under ``a`` queries (augmentations) each.

    Attributes
    ----------
    record_ids : (n,) int64
        Data set indices of the records, in the order of the other axes.
    scaled_logit : (m, n, a) float32
        φ = log(p_y / (1 − p_y)), computed stably from logits (Carlini et al. 2022).
        Arrays of another float dtype are converted once, on construction.
    log_confidence : (m, n, a) float32
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
            elif arr.dtype.kind != "f":
                problems.append(f"{name} must hold floats, got dtype {arr.dtype}")
            elif not _all_finite(arr):
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
        for name in ("scaled_logit", "log_confidence"):
            arr = getattr(self, name)
            if arr.dtype != OBSERVATION_DTYPE:
                object.__setattr__(self, name, arr.astype(OBSERVATION_DTYPE))

    @property
    def n_models(self) -> int:
        return int(self.scaled_logit.shape[0])

    @property
    def n_records(self) -> int:
        return int(self.scaled_logit.shape[1])

    @property
    def n_queries(self) -> int:
        return int(self.scaled_logit.shape[2])

    def select_models(self, models: np.ndarray | slice) -> Observations:
        """The same records seen by a subset of the models (e.g. all but a held-out one).

        A slice (e.g. the first ``k`` models) gives views, never copies, of the answers."""
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


# Records per block when checking a large (possibly memory-mapped) array for NaN: the
# check then needs a few MB of temporaries instead of a boolean copy of the whole array.
_FINITE_BLOCK = 1 << 22


def _all_finite(arr: np.ndarray) -> bool:
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr[None]
    step = max(1, _FINITE_BLOCK // max(1, flat.shape[1]))
    return all(np.isfinite(flat[i : i + step]).all() for i in range(0, flat.shape[0], step))
