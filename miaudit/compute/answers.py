"""Reference models' answers, cached next to the models: a second audit queries nothing.

Querying 64 reference models on 60,000 records under 18 views costs minutes; the answers
only change when the model, the records, the views or the output defenses in front of the
model change. :class:`AnswerCache` keeps, per model, what
:func:`~miaudit.compute.pool.observe_models` computed from its answers (the scaled logit
φ, log p_y per view in float32, and whether the first view was right), keyed by all four:

    sha256(model key, record ids, query views, defenses)

Entries live in ``<model cache>/answers/<2 hex>/<key>.npz``, are written atomically and
are read with ``allow_pickle=False``; what an entry must hold (its record ids equal to
those asked for, arrays of the expected shapes and dtypes, finite values) is checked by
this code, and an entry that fails is ignored and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.atomic import atomic_write
from miaudit.compute.queries import QuerySet
from miaudit.signals.observations import OBSERVATION_DTYPE

__all__ = ["AnswerCache", "AnswerTask", "answer_key", "run_answer_task"]


def answer_key(model_key: str, records: np.ndarray, queries: QuerySet, defenses: str) -> str:
    """The content key of one model's answers on ``records`` under ``queries``."""
    h = hashlib.sha256()
    h.update(b"miaudit.answers.v2\0")  # v2: float32 answers
    h.update(model_key.encode() + b"\0")
    h.update(np.ascontiguousarray(records, dtype=np.int64).tobytes() + b"\0")
    views = [repr(q) for q in queries.queries] + [queries.padding_mode]
    h.update(json.dumps(views).encode() + b"\0")
    h.update(defenses.encode())
    return h.hexdigest()


def defenses_tag(answer_as: Any) -> str | None:
    """What stands between a reference model and the attacker, as text for the key: ``""``
    for nothing, the defense chain for :func:`~miaudit.targets.defenses.same_defenses`'s
    wrappers, None (do not cache) for any other callable."""
    if answer_as is None:
        return ""
    chain = getattr(answer_as, "defenses", None)
    if chain is None:
        return None
    return json.dumps(chain, sort_keys=True, default=str)


class AnswerCache:
    """Per-model answers on disk (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "answers"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, records: np.ndarray, n_queries: int) -> tuple | None:
        """``(phi, log_p, correct)`` of shapes ``(n, q)``, ``(n, q)``, ``(n,)``, or None."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                ids, phi, log_p, correct = (
                    entry[k] for k in ("records", "phi", "log_p", "correct")
                )
        except Exception as exc:  # truncated (BadZipFile), corrupt, not an .npz at all
            self._discard(path, f"{type(exc).__name__}: {exc}")
            return None
        n = records.size
        valid = (
            ids.dtype == np.int64
            and np.array_equal(ids, records)
            and phi.shape == log_p.shape == (n, n_queries)
            and phi.dtype == log_p.dtype == OBSERVATION_DTYPE
            and correct.shape == (n,)
            and correct.dtype == np.bool_
            and np.isfinite(phi).all()
            and np.isfinite(log_p).all()
        )
        if not valid:
            self._discard(path, "its arrays are not the answers asked for")
            return None
        return phi, log_p, correct

    @staticmethod
    def _discard(path: Path, why: str) -> None:
        """An unusable entry is reported, deleted and recomputed by the caller."""
        import warnings

        from miaudit.compute.cache import CacheWarning

        warnings.warn(
            f"answer cache entry {path.name[:12]}… in {str(path.parent)!r} is unusable "
            f"({why}); it was deleted and will be recomputed",
            CacheWarning,
            stacklevel=3,
        )
        path.unlink(missing_ok=True)

    def put(
        self, key: str, records: np.ndarray, phi: np.ndarray, log_p: np.ndarray, correct
    ) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    records=np.asarray(records, np.int64),
                    phi=np.asarray(phi, OBSERVATION_DTYPE),
                    log_p=np.asarray(log_p, OBSERVATION_DTYPE),
                    correct=np.asarray(correct, bool),
                )

        atomic_write(path, write)


@dataclass(frozen=True)
class AnswerTask:
    """Cached models to query on ``records`` under ``views``, for a remote executor: the
    worker loads each model from the shared model cache, wraps it in ``answer_as`` (a
    :class:`~miaudit.targets.defenses.DefenseChain`, or None), answers, and stores the
    answers in the answer cache under ``answer_keys``; the pool reads them back."""

    models: tuple[int, ...]
    model_keys: tuple[str, ...]
    answer_keys: tuple[str, ...]
    records: np.ndarray
    views: QuerySet
    answer_as: Any = None


def run_answer_task(recipe: Any, dataset: Any, task: AnswerTask, cache_root: str) -> tuple:
    """A worker's job for an :class:`AnswerTask`; returns the answer keys it stored."""
    from miaudit.compute.cache import ModelCache
    from miaudit.compute.pool import load_cached_model, observe_models
    from miaudit.errors import InvalidAuditInput

    cache = ModelCache(cache_root)
    models = []
    for k, key in zip(task.models, task.model_keys, strict=True):
        trained = load_cached_model(cache, key, recipe)
        if trained is None:
            raise InvalidAuditInput(
                f"answering: model {k} is not in the model cache at {cache_root} (is it a "
                "path the workers share?)"
            )
        model = trained.model
        models.append(model if task.answer_as is None else task.answer_as(model))
    answers = observe_models(models, dataset, task.records, queries=task.views)
    store = AnswerCache(cache_root)
    for i, key in enumerate(task.answer_keys):
        store.put(
            key,
            task.records,
            answers.scaled_logit[i],
            answers.log_confidence[i],
            answers.correct[i],
        )
    return task.answer_keys
