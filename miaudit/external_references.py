"""References trained elsewhere: miaudit draws the design, the user's infrastructure
trains the models, miaudit reads their answers back.

Some references cannot train on the auditor's machine: a GPU cluster, another framework, a
training service. ``miaudit plan-references FILE --out design.npz`` writes, for each
reference, the records it trains on and its seed (:func:`write_design`); the user trains
one model per row with their own code and saves each model's answers on the records
``answer_records`` of the design. ``references: {predictions_file: refs.npz}`` then reads:

* ``logits`` or ``probabilities``: ``(n_references, n_rows, n_classes)``;
* ``record_ids``: ``(n_rows,)``, the data-set index of each row (it must cover the
  design's ``answer_records``);
* ``inclusion``: ``(n_references, n_candidates)`` bool, the design's matrix as trained
  (checked against the design, so that a model trained on the wrong records is caught).

Recipe match, calibration-free reference attacks (LiRA, RMIA, Attack-R) and the report
work from these answers as from models trained here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.data.split import AuditSplit
from miaudit.errors import InvalidAuditInput
from miaudit.validation import check_readable_file

__all__ = ["ExternalRecipe", "load_external_evidence", "reference_design", "write_design"]

_DESIGN_FORMAT = "miaudit.reference_design.v1"


@dataclass(frozen=True)
class ExternalRecipe:
    """Stands for "the user's own infrastructure" where a recipe is expected: it fixes the
    design (records and seeds) but trains nothing here."""

    source: str

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(f"external:{self.source}".encode()).hexdigest()

    def validate(self, dataset: Dataset) -> None:
        """Nothing to check here: the models are trained elsewhere."""

    def train(self, *args: Any, **kwargs: Any):
        raise InvalidAuditInput(
            f"references come from {self.source}: they are trained elsewhere, so attacks "
            "that train models here (shadow models, white-box attacks on references) cannot "
            "run; give references.recipe instead"
        )

    def describe(self) -> dict:
        return {"kind": "external", "predictions_file": self.source}


def _design_pool(dataset: Dataset, split: AuditSplit, setup: Any, n_models: int, design):
    """A pool that is never trained, for its inclusion matrix and seeds: exactly those an
    audit of this file would train with here."""
    from miaudit.compute import ReferencePool

    return ReferencePool(
        ExternalRecipe("design"),
        dataset,
        design.candidates,
        n_models=n_models,
        seed=setup.seed,
        cache=None,
        balanced=design.audited,
        train_size=design.train_size,
    )


def reference_design(dataset: Dataset, split: AuditSplit, setup: Any, n_models: int) -> dict:
    """The arrays of a design file: ``candidates`` (n_candidates,), ``inclusion``
    (n_models, n_candidates; reference ``k`` trains on ``candidates[inclusion[k]]``),
    ``seeds`` (n_models,), ``answer_records`` (the audited and population records each
    model must answer), ``train_size`` and ``n_classes``."""
    from miaudit.references import plan_references

    design = plan_references(split, setup)
    pool = _design_pool(dataset, split, setup, n_models, design)
    answer = np.unique(np.concatenate([design.audited, design.population]))
    return {
        "format": np.array(_DESIGN_FORMAT),
        "candidates": pool.candidates,
        "inclusion": pool.inclusion,
        "seeds": np.array([pool.model_seed(k) for k in range(n_models)], dtype=np.int64),
        "answer_records": answer.astype(np.int64),
        "train_size": np.array(design.train_size),
        "n_classes": np.array(dataset.n_classes),
    }


def write_design(path: str | Path, arrays: dict) -> Path:
    """Write a design file atomically (``.npz``, no pickles)."""
    from miaudit.atomic import atomic_write

    path = Path(path)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)
    return path


def _read_answers(
    path: Path, n_models: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
    field = "references.predictions_file"
    check_readable_file(path, field)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            kind = [k for k in ("logits", "probabilities") if k in keys]
            if len(kind) != 1 or "record_ids" not in keys or "inclusion" not in keys:
                raise InvalidAuditInput(
                    f"{field} {str(path)!r} must hold exactly one of 'logits' or "
                    f"'probabilities', and 'record_ids' and 'inclusion' (it has {sorted(keys)})"
                )
            answers = archive[kind[0]]
            ids = archive["record_ids"]
            inclusion = archive["inclusion"]
    except (OSError, ValueError) as error:
        if isinstance(error, InvalidAuditInput):
            raise
        raise InvalidAuditInput(f"{field} {str(path)!r}: not a readable .npz ({error})") from None
    if answers.dtype.kind != "f" or answers.ndim != 3 or answers.shape[2] != n_classes:
        raise InvalidAuditInput(
            f"{field}: {kind[0]} must be floats of shape (n_references, n_rows, {n_classes}), "
            f"got {answers.dtype} {answers.shape}"
        )
    if answers.shape[0] < n_models:
        raise InvalidAuditInput(
            f"{field}: the attacks need {n_models} references, the file answers for "
            f"{answers.shape[0]}"
        )
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or ids.size != answers.shape[1]:
        raise InvalidAuditInput(
            f"{field}: record_ids must be {answers.shape[1]} integers (one per row), got "
            f"{ids.dtype} {ids.shape}"
        )
    if np.unique(ids).size != ids.size:
        raise InvalidAuditInput(f"{field}: record_ids repeat a record")
    if not np.isfinite(answers).all():
        raise InvalidAuditInput(f"{field}: {kind[0]} hold NaN or infinite values")
    return answers[:n_models], ids.astype(np.int64), kind[0] == "logits", inclusion


def load_external_evidence(
    dataset: Dataset,
    split: AuditSplit,
    setup: Any,
    *,
    n_models: int,
    design,
    queries_name: str,
):
    """The references' observations on the audited and population records, read from
    ``setup.predictions_file`` and checked against the design: ``(audited, population,
    model_info)``."""
    from miaudit.signals.observations import OBSERVATION_DTYPE, Observations
    from miaudit.signals.table import scaled_logit_and_log_confidence

    field = "references.predictions_file"
    if queries_name != "none":
        raise InvalidAuditInput(
            f"{field}: answers from elsewhere are on the records themselves; set "
            "references.queries to none"
        )
    path = Path(setup.predictions_file)
    answers, ids, logits, inclusion = _read_answers(path, n_models, dataset.n_classes)
    pool = _design_pool(dataset, split, setup, n_models, design)
    expected = pool.inclusion
    if inclusion.shape[1:] != expected.shape[1:] or inclusion.shape[0] < n_models:
        raise InvalidAuditInput(
            f"{field}: inclusion has shape {inclusion.shape}, the design "
            f"{(n_models, expected.shape[1])}; write the design with 'miaudit "
            "plan-references' for this audit file and train one model per row"
        )
    differ = np.flatnonzero((inclusion[:n_models].astype(bool) != expected).any(axis=1))
    if differ.size:
        raise InvalidAuditInput(
            f"{field}: references {differ.tolist()[:10]} were trained on other records than "
            "the design gives them (inclusion differs); was the design written for this "
            "audit file, split and references.seed?"
        )
    order = np.argsort(ids)
    sorted_ids = ids[order]

    def observe(records: np.ndarray):
        if records.size == 0:
            return None
        pos = np.searchsorted(sorted_ids, records).clip(0, sorted_ids.size - 1)
        lacking = records[sorted_ids[pos] != records]
        if lacking.size:
            raise InvalidAuditInput(
                f"{field}: no answers for {lacking.size} records the audit needs (first: "
                f"{lacking[:5].tolist()}); answer every record of the design's answer_records"
            )
        rows = order[pos]
        labels = dataset.y[records]
        phi = np.empty((n_models, records.size, 1), OBSERVATION_DTYPE)
        log_p = np.empty_like(phi)
        correct = np.empty((n_models, records.size), bool)
        for k in range(n_models):
            out = answers[k, rows].astype(np.float64)
            ph, lp = scaled_logit_and_log_confidence(out, labels, from_logits=logits)
            phi[k, :, 0], log_p[k, :, 0] = ph, lp
            correct[k] = out.argmax(axis=1) == labels
        return Observations(records, phi, log_p, pool._record_inclusion(records), correct)

    audited = observe(design.audited)
    population = observe(design.population)
    info = []
    for k in range(n_models):
        member = audited.inclusion[k]
        info.append(
            {
                "model": k,
                "from_cache": False,
                "seconds": 0.0,
                "train_accuracy": float(audited.correct[k][member].mean())
                if member.any()
                else None,
                "test_accuracy": float(audited.correct[k][~member].mean())
                if (~member).any()
                else None,
                "n_train": int(design.train_size),
                "seed": pool.model_seed(k),
                "key": None,
                "attempt": 0,
                "origin": f"answers from {path.name}",
            }
        )
    return audited, population, info
