"""``report.json`` (a **contract**: other tools read it) and the companion ``scores.npz``.

The JSON holds every figure of the audit and none of the per-record scores; those go to
``scores.npz`` so that anyone can recompute ``auc`` and ``tpr_at_fpr`` from them. Layout
(contract keys first, miaudit extras after them)::

    miaudit_version, target{description, access, train_accuracy, test_accuracy, ...},
    data{dataset, n_members, n_nonmembers, split{seed, ...}, ...},
    attacks[{name, family, auc, tpr_at_fpr{"0.001": tpr, ...}, accuracy, precision, recall,
             advantage, epsilon_lower_bound, n_members, n_nonmembers, seconds,
             auc_interval{low, high, se}, tpr_at_fpr_interval, f1, max_advantage, threshold,
             epsilon, per_class, warnings}],
    verdict{risk, reason, rule, triggers, false_alarm_rate, confidence_per_bound, bounds,
            resolved, notes}, leaky_records{ranked_by, fpr, records[{record, class,
    class_name, member, score, flagged_by}]}, settings, warnings, seconds

Every value is JSON-native: numpy scalars become Python numbers and NaN or infinity becomes
``null``, because ``NaN`` is not JSON and strict parsers reject it.
"""

from __future__ import annotations

import enum
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePath

import numpy as np
from numpy.lib import format as npy_format

from miaudit import __version__
from miaudit.errors import raise_if_problems
from miaudit.evaluation.results import AttackEvaluation, AuditResult, ClassResult, TprAtFpr
from miaudit.report.leaks import leaky_records
from miaudit.report.verdict import decide_verdict

__all__ = [
    "RESERVED_SCORE_KEYS",
    "build_report_dict",
    "check_result",
    "fpr_key",
    "to_jsonable",
    "write_scores_npz",
]

#: Keys of ``scores.npz`` that are not attack names; an attack may not be called so.
RESERVED_SCORE_KEYS = ("is_member", "labels")


def fpr_key(fpr: float) -> str:
    """The JSON key of an FPR target: the shortest repr of the float (``0.001`` -> ``"0.001"``).

    The value is first rounded to 12 significant digits so that arithmetic noise
    (``0.010000000000000002``) does not leak into a key that readers look up as ``"0.01"``.
    """
    return repr(float(f"{float(fpr):.12g}"))


def to_jsonable(value: object, where: str = "value") -> object:
    """Convert ``value`` to JSON-native types: numpy to Python, non-finite floats to ``None``.

    Parameters
    ----------
    value : object
        Nested dicts, lists, tuples, numpy arrays and scalars, strings, numbers, ``None``,
        paths and enums.
    where : str
        Path of ``value`` in the report, used in the error message.

    Raises
    ------
    TypeError
        For any other type, naming where it sits: turning it into ``str`` silently would
        put an unreadable repr into a contract file.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), where)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, (float, np.floating)):
                key = fpr_key(key)
            elif isinstance(key, (int, np.integer)):
                key = str(int(key))
            elif not isinstance(key, str):
                raise TypeError(f"{where}: dictionary key {key!r} is not a string or number")
            out[key] = to_jsonable(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, where)
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-serialisable")


def check_result(result: AuditResult) -> None:
    """Check that ``result`` can be reported: unique attack names with scores that line up.

    All problems are gathered and raised once as ``InvalidAuditInput``.
    """
    problems: list[str] = []
    names = [a.name for a in result.attacks]
    if not names:
        problems.append("attacks is empty; a report needs at least one attack")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"attack names must be unique, repeated: {dupes}")
    clash = sorted(set(names) & set(RESERVED_SCORE_KEYS))
    if clash:
        problems.append(
            f"attack names {clash} clash with the keys {list(RESERVED_SCORE_KEYS)} of scores.npz"
        )
    if any("\x00" in n for n in names):
        problems.append("attack names may not contain a NUL character (scores.npz key)")
    is_member = np.asarray(result.is_member)
    if is_member.ndim != 1:
        problems.append(f"is_member must be 1-d, got shape {is_member.shape}")
    n = is_member.shape[0] if is_member.ndim == 1 else -1
    labels = np.asarray(result.labels)
    if labels.shape != (n,):
        problems.append(f"labels has shape {labels.shape}, is_member has {is_member.shape}")
    missing = [name for name in names if name not in result.scores]
    if missing:
        problems.append(f"no scores for attacks {missing}")
    extra = sorted(set(result.scores) - set(names))
    if extra:
        problems.append(f"scores given for attacks that were not evaluated: {extra}")
    for name in names:
        if name in result.scores and np.shape(result.scores[name]) != (n,):
            problems.append(
                f"scores[{name!r}] has shape {np.shape(result.scores[name])}, expected ({n},)"
            )
    raise_if_problems("AuditResult", problems)


def _calibration_words(n_calibration: int, n_evaluation: int) -> tuple[str, str]:
    """Say in words which records chose a threshold and which were scored with it."""
    total = n_calibration + n_evaluation
    if abs(n_calibration - n_evaluation) <= 1:
        chosen = f"calibration half of the audited records (n={n_calibration})"
        scored = f"the other half (n={n_evaluation})"
    else:
        share = n_calibration / total if total else float("nan")
        chosen = f"calibration part ({share:.0%}) of the audited records (n={n_calibration})"
        scored = f"the remaining audited records (n={n_evaluation})"
    return chosen, scored


def _interval(point: TprAtFpr) -> dict:
    return {
        "low": point.ci_low,
        "high": point.ci_high,
        "fpr_achieved": point.fpr,
        "threshold": point.threshold,
        "resolvable": point.resolvable,
    }


def _class_dict(cls: ClassResult) -> dict:
    return {
        "class_index": cls.class_index,
        "class_name": cls.class_name,
        "n_members": cls.n_members,
        "n_nonmembers": cls.n_nonmembers,
        "auc": cls.auc,
        "advantage": cls.advantage,
        "tpr_at_fpr": {fpr_key(f): p.tpr for f, p in sorted(cls.tpr_at_fpr.items())},
        "tpr_at_fpr_interval": {
            fpr_key(f): _interval(p) for f, p in sorted(cls.tpr_at_fpr.items())
        },
        "precision": None if cls.precision is None or cls.precision < 0 else cls.precision,
        "recall": None if cls.recall is None or cls.recall < 0 else cls.recall,
        "note": cls.note,
    }


def _attack_dict(attack: AttackEvaluation) -> dict:
    tm = attack.threshold_metrics
    chosen, scored = _calibration_words(tm.n_calibration, tm.n_evaluation)
    points = sorted(attack.tpr_at_fpr.items())
    eps = attack.epsilon
    return {
        # contract
        "name": attack.name,
        "family": attack.family,
        "auc": attack.auc,
        "tpr_at_fpr": {fpr_key(f): p.tpr for f, p in points},
        "accuracy": tm.accuracy,
        # The evaluation marks "no record predicted member" with precision -1; in a
        # contract file that would read as a (terrible) precision, so it becomes null.
        "precision": None if tm.precision < 0 else tm.precision,
        "recall": tm.recall,
        "advantage": tm.advantage,
        "epsilon_lower_bound": eps.epsilon,
        "n_members": attack.n_members,
        "n_nonmembers": attack.n_nonmembers,
        "seconds": attack.seconds,
        # extras
        "auc_interval": {"low": attack.auc_ci[0], "high": attack.auc_ci[1], "se": attack.auc_se},
        "tpr_at_fpr_interval": {fpr_key(f): _interval(p) for f, p in points},
        "f1": tm.f1,
        "max_advantage": attack.max_advantage,
        "threshold": {
            "value": tm.threshold,
            "tpr": tm.tpr,
            "fpr": tm.fpr,
            "chosen_on": chosen,
            "scored_on": scored,
        },
        "epsilon": {
            "delta": eps.delta,
            "confidence": eps.confidence,
            "fpr_upper": eps.fpr_upper,
            "fnr_upper": eps.fnr_upper,
            "threshold": eps.threshold,
            "chosen_on": chosen,
            "scored_on": scored,
        },
        "per_class": [_class_dict(c) for c in attack.per_class],
        "warnings": list(attack.warnings),
    }


def merge_attack_warnings(attacks: list[AttackEvaluation]) -> list[str]:
    """Each distinct attack warning once, prefixed by the attacks that raised it.

    Caveats about the audited records (too few non-members for an FPR, tiny classes) are
    the same for every attack; listing them once per attack buries the rest.
    """
    raised_by: dict[str, list[str]] = {}
    for attack in attacks:
        for message in attack.warnings:
            raised_by.setdefault(message, []).append(attack.name)
    merged = []
    for message, names in raised_by.items():
        who = "all attacks" if len(names) == len(attacks) > 1 else ", ".join(names)
        merged.append(f"{who}: {message}")
    return merged


def build_report_dict(result: AuditResult) -> dict:
    """Build the ``report.json`` contract from an audit result.

    Parameters
    ----------
    result : AuditResult
        The complete audit. Its ``target``, ``data`` and ``settings`` dicts are copied,
        with the contract keys added as ``null`` when absent so readers can rely on them.

    Returns
    -------
    dict
        JSON-native (``json.dumps(d, allow_nan=False)`` succeeds). Top-level ``warnings``
        gathers the audit's own warnings and every attack's, prefixed by the attack name,
        so a reader of the top level misses no caveat.

    Raises
    ------
    InvalidAuditInput
        When attack names repeat, clash with ``scores.npz`` keys, or scores do not line up.
    """
    check_result(result)
    is_member = np.asarray(result.is_member, dtype=bool)
    target = dict(result.target)
    for key in ("description", "access", "train_accuracy", "test_accuracy"):
        target.setdefault(key, None)
    data = dict(result.data)
    data.setdefault("dataset", None)
    data.setdefault("n_members", int(is_member.sum()))
    data.setdefault("n_nonmembers", int((~is_member).sum()))
    data.setdefault("split", None)
    warnings = list(result.warnings) + merge_attack_warnings(result.attacks)
    report = {
        "miaudit_version": __version__,
        "target": target,
        "data": data,
        "attacks": [_attack_dict(a) for a in result.attacks],
        "verdict": decide_verdict(result.attacks),
        "leaky_records": leaky_records(result),
        "settings": dict(result.settings),
        "warnings": warnings,
        "seconds": result.seconds,
    }
    return to_jsonable(report, "report")


def write_scores_npz(path: str | os.PathLike, result: AuditResult) -> Path:
    """Write per-record scores to ``path`` as an ``.npz`` archive.

    Keys: one float64 array per attack name, ``is_member`` (bool) and ``labels`` (int64),
    all aligned. The archive is written entry by entry rather than through ``np.savez``
    because ``np.savez(file, **arrays)`` would choke on an attack called ``file`` or
    ``allow_pickle``; any other name (slashes, spaces, non-ASCII) loads back unchanged with
    ``np.load``. The file is not compressed: scores are random-looking floats.

    Returns
    -------
    Path
        ``path`` as a ``Path``; no suffix is added.
    """
    check_result(result)
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        a.name: np.asarray(result.scores[a.name], dtype=np.float64) for a in result.attacks
    }
    arrays["is_member"] = np.asarray(result.is_member, dtype=bool)
    arrays["labels"] = np.asarray(result.labels, dtype=np.int64)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as entry:
                npy_format.write_array(entry, np.ascontiguousarray(array), allow_pickle=False)
    return path
