"""Which records leak most: a ranked table for the report and a per-record CSV.

The ranking uses the strongest *calibrated* attack of the audit (a reference attack such as
LiRA or RMIA, whose scores compare each record with itself on models that did and did not
train on it), or the strongest attack when none ran; "strongest" is the highest AUC. Each
record also counts the attacks that flag it at 1 % FPR (score at or above the threshold of
that attack's TPR at 1 % FPR). Only indices, classes, membership and scores enter the table:
never a feature value.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from miaudit.atomic import atomic_write
from miaudit.evaluation.results import AuditResult
from miaudit.report.inert import csv_cell
from miaudit.report.verdict import find_tpr_at_fpr

__all__ = ["TOP_RECORDS", "leaky_records", "write_per_record_csv"]

#: Records listed in the report's table.
TOP_RECORDS = 20
_CALIBRATED = ("reference",)


def _ranking_attack(result: AuditResult):
    calibrated = [a for a in result.attacks if a.family in _CALIBRATED]
    return max(calibrated or result.attacks, key=lambda a: a.auc)


def _flag_counts(result: AuditResult, fpr: float) -> np.ndarray:
    counts = np.zeros(result.is_member.size, np.int64)
    for attack in result.attacks:
        point = find_tpr_at_fpr(attack.tpr_at_fpr, fpr)
        if point is not None and point.resolvable:
            counts += result.scores[attack.name] >= point.threshold
    return counts


def leaky_records(result: AuditResult, *, top: int = TOP_RECORDS, fpr: float = 0.01) -> dict:
    """JSON-ready: the ``top`` records with the highest score of the ranking attack."""
    attack = _ranking_attack(result)
    scores = result.scores[attack.name]
    order = np.argsort(-scores, kind="stable")[:top]
    flagged = _flag_counts(result, fpr)
    records = result.records if result.records is not None else np.arange(scores.size)
    names = result.data.get("class_names") or []
    rows = []
    for i in order.tolist():
        cls = int(result.labels[i])
        rows.append(
            {
                "record": int(records[i]),
                "class": cls,
                "class_name": names[cls] if cls < len(names) else str(cls),
                "member": bool(result.is_member[i]),
                "score": float(scores[i]),
                "flagged_by": int(flagged[i]),
            }
        )
    return {
        "ranked_by": attack.name,
        "fpr": fpr,
        "n_attacks": len(result.attacks),
        "records": rows,
    }


def write_per_record_csv(
    result: AuditResult, path: str | os.PathLike, *, fpr: float = 0.01
) -> Path:
    """Every audited record: its dataset index, class, membership, each attack's score and
    how many attacks flag it at ``fpr``. Written atomically."""
    path = Path(path)
    names = [a.name for a in result.attacks]
    flagged = _flag_counts(result, fpr)
    records = result.records if result.records is not None else np.arange(result.is_member.size)

    columns = [records, result.labels, result.is_member.astype(np.int64)]
    columns += [np.asarray(result.scores[n], np.float64) for n in names]
    table = np.column_stack([*columns, flagged])
    formats = ["%d", "%d", "%d", *(["%.17g"] * len(names)), "%d"]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            # The header through the csv module: attack labels are user text (quotes,
            # commas); the body, all numbers, in one vectorised call.
            # Labels beginning like a formula are quoted (see miaudit.report.inert).
            csv.writer(fh).writerow(
                ["record", "class", "member", *map(csv_cell, names), f"flagged_at_fpr_{fpr:g}"]
            )
            np.savetxt(fh, table, fmt=formats, delimiter=",")

    atomic_write(path, write)
    return path
