"""The one-word risk verdict of an audit, and the rule that produced it.

The verdict is a summary for a reader who will not study the metrics table, so the rule is
stated in words next to it and the strongest attack decides. It is also a claim a reviewer
must be able to defend, so it never rests on a point estimate: every figure it compares with
a threshold is a one-sided lower confidence bound (AUC by DeLong's standard error; TPR at
1% FPR at a threshold whose own FPR is bounded; the held-out ε bound), and the bounds of all
attacks and all three figures hold *simultaneously* at ``1 - FALSE_ALARM_RATE`` (Bonferroni:
each at ``1 - FALSE_ALARM_RATE / m`` for ``m`` bounds). So an audit of a model whose every
attack truly stays below the medium thresholds says "medium" or "high" with probability at
most ``FALSE_ALARM_RATE``, however many attacks it runs (Carlini et al., S&P 2022, argue
for judging attacks at low FPR; the bounds are in :mod:`miaudit.evaluation.lower_bounds`).

A small audit cannot resolve much: with 50 members and 50 non-members a chance attack's AUC
spreads by ±0.11. The verdict then says so, and a "low" there means "nothing shown", not
"nothing there".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from miaudit.errors import InvalidAuditInput
from miaudit.evaluation.lower_bounds import (
    auc_chance_halfwidth,
    auc_lower_bound,
    epsilon_lower_bound_at,
    nonmembers_to_bound_fpr,
    records_for_auc_halfwidth,
    tpr_lower_bound,
)
from miaudit.evaluation.results import AttackEvaluation, TprAtFpr

__all__ = [
    "AUC_HALFWIDTH",
    "FALSE_ALARM_RATE",
    "HIGH_AUC",
    "HIGH_EPSILON",
    "HIGH_TPR_LOW",
    "MEDIUM_AUC",
    "MEDIUM_EPSILON",
    "MEDIUM_TPR_LOW",
    "RISK_LEVELS",
    "VERDICT_FPR",
    "decide_verdict",
    "find_tpr_at_fpr",
    "verdict_rule",
]

RISK_LEVELS = ("low", "medium", "high")

#: Probability that an audit of a model below every medium threshold says medium or high.
FALSE_ALARM_RATE = 0.05

#: FPR at which the low-FPR criterion reads the TPR (1 %).
VERDICT_FPR = 0.01

#: Lower bound of AUC at or above which an attack makes the risk high.
HIGH_AUC = 0.75
#: Lower bound of TPR at ``VERDICT_FPR`` that makes the risk high (ten times chance).
HIGH_TPR_LOW = 0.10
#: Lower bound of ε that makes the risk high.
HIGH_EPSILON = 1.0

#: Lower bound of AUC at or above which an attack makes the risk at least medium.
MEDIUM_AUC = 0.60
#: Lower bound of TPR at ``VERDICT_FPR`` that makes the risk at least medium (three times
#: chance).
MEDIUM_TPR_LOW = 0.03
#: Lower bound of ε that makes the risk at least medium.
MEDIUM_EPSILON = 0.1

#: Half-width (95%) of a chance attack's AUC beyond which the audit is too small to resolve
#: AUC: half the distance from chance (0.5) to ``MEDIUM_AUC``.
AUC_HALFWIDTH = 0.05

#: Figures per attack that the rule bounds (AUC, TPR at ``VERDICT_FPR``, ε).
_FIGURES = 3


def verdict_rule() -> str:
    """The verdict rule in words, built from the module constants so text and code agree."""
    pct = f"{VERDICT_FPR * 100:g}%"
    return (
        f"Every figure below is a one-sided lower confidence bound, and all bounds of the "
        f"audit hold together at {1 - FALSE_ALARM_RATE:.0%} (Bonferroni over {_FIGURES} "
        f"figures per attack), so a model below every medium threshold is called medium or "
        f"high with probability at most {FALSE_ALARM_RATE:g}. "
        f"High risk if any attack's AUC bound (DeLong) ≥ {HIGH_AUC:g}, or its bound on TPR at "
        f"{pct} FPR (at a threshold whose FPR is itself bounded by {pct}) ≥ {HIGH_TPR_LOW:g}, "
        f"or its held-out ε bound ≥ {HIGH_EPSILON:g}. "
        f"Medium risk if any AUC bound ≥ {MEDIUM_AUC:g}, TPR bound ≥ {MEDIUM_TPR_LOW:g} or "
        f"ε bound ≥ {MEDIUM_EPSILON:g}. Low risk otherwise. The strongest attack decides."
    )


def find_tpr_at_fpr(tpr_at_fpr: dict[float, TprAtFpr], fpr: float) -> TprAtFpr | None:
    """Look up the operating point for ``fpr`` tolerating float noise in the dictionary key.

    Keys come from user settings (``0.01`` may arrive as ``0.010000000000000002`` after
    arithmetic), so an exact ``dict`` lookup would silently miss them.
    """
    for key, point in tpr_at_fpr.items():
        if math.isclose(float(key), fpr, rel_tol=1e-9, abs_tol=1e-12):
            return point
    return None


def _at_least(value: float | None, threshold: float) -> bool:
    """``value >= threshold`` where a missing or NaN figure never triggers anything."""
    return value is not None and not math.isnan(value) and value >= threshold


def _bounds(attack: AttackEvaluation, confidence: float) -> dict[str, float | None]:
    """The three lower bounds of one attack at ``confidence`` (None: cannot be bounded)."""
    return {
        "auc": auc_lower_bound(attack, confidence),
        "tpr_at_fpr": tpr_lower_bound(attack, VERDICT_FPR, confidence),
        "epsilon": epsilon_lower_bound_at(attack, confidence),
    }


_WORDS = {
    "auc": "an AUC lower bound of {bound:.3f} ≥ {threshold:g} (AUC {estimate:.3f})",
    "tpr_at_fpr": "a lower bound of {bound:.3f} ≥ {threshold:g} on TPR at "
    + f"{VERDICT_FPR * 100:g}% FPR"
    + " (table: {estimate:.3f})",
    "epsilon": "an ε lower bound of {bound:.3f} ≥ {threshold:g} ({estimate:.3f} at 95% alone)",
}
_THRESHOLDS = {
    "auc": (HIGH_AUC, MEDIUM_AUC),
    "tpr_at_fpr": (HIGH_TPR_LOW, MEDIUM_TPR_LOW),
    "epsilon": (HIGH_EPSILON, MEDIUM_EPSILON),
}


def _estimate(attack: AttackEvaluation, metric: str) -> float:
    """The point figure printed next to a bound, so the reader can find it in the table."""
    if metric == "auc":
        return attack.auc
    if metric == "epsilon":
        return attack.epsilon.epsilon
    # The table's convention: the best TPR among ROC points with FPR at most VERDICT_FPR.
    fpr, tpr = np.asarray(attack.roc_fpr), np.asarray(attack.roc_tpr)
    return float(tpr[int(np.searchsorted(fpr, VERDICT_FPR + 1e-12, side="right")) - 1])


def _findings(attack: AttackEvaluation, bounds: dict[str, float | None]) -> list[dict]:
    """Every bound of one attack that crosses a medium or high threshold, with its level."""
    found: list[dict] = []
    for metric, (high, medium) in _THRESHOLDS.items():
        value = bounds[metric]
        for level, threshold in (("high", high), ("medium", medium)):
            if _at_least(value, threshold):
                words = _WORDS[metric].format(
                    bound=value, threshold=threshold, estimate=_estimate(attack, metric)
                )
                found.append(
                    {
                        "attack": attack.name,
                        "metric": f"{metric}_low",
                        "value": float(value),
                        "threshold": threshold,
                        "level": level,
                        "words": words,
                    }
                )
                break
    return found


def decide_verdict(attacks: Sequence[AttackEvaluation]) -> dict:
    """Classify the audit as low, medium or high membership-inference risk.

    Parameters
    ----------
    attacks : sequence of AttackEvaluation
        Every attack run in the audit; the strongest one decides, and every one counts in
        the multiple-testing correction (so adding attacks never inflates false alarms).

    Returns
    -------
    dict
        JSON-ready: ``risk`` (``"low"``, ``"medium"`` or ``"high"``), ``reason`` (which attack
        and which bound decided, in words), ``rule`` (the whole rule in words),
        ``triggers`` (every bound that crossed the decisive level: attack, metric, value,
        threshold), ``false_alarm_rate``, ``confidence_per_bound``, ``bounds`` (each
        attack's three lower bounds; null where the audit is too small to bound one),
        ``resolved`` (False when the audit is too small to resolve AUC to ±``AUC_HALFWIDTH``)
        and ``notes`` (what the audit is too small to judge, and what would be needed).

    Raises
    ------
    InvalidAuditInput
        When no attack was run: "low risk" would then be a claim with no evidence behind it.
    """
    if not attacks:
        raise InvalidAuditInput("decide_verdict: no attack was run, so there is nothing to judge")
    confidence = 1.0 - FALSE_ALARM_RATE / (_FIGURES * len(attacks))
    bounds = {attack.name: _bounds(attack, confidence) for attack in attacks}
    findings = [f for attack in attacks for f in _findings(attack, bounds[attack.name])]
    risk = "low"
    for level in ("high", "medium"):
        if any(f["level"] == level for f in findings):
            risk = level
            break
    notes, resolved = _resolution_notes(attacks, bounds, confidence)
    decisive = [f for f in findings if f["level"] == risk]
    if decisive:
        by_attack: dict[str, list[str]] = {}
        for f in decisive:
            by_attack.setdefault(f["attack"], []).append(f["words"])
        # Name the attack with the most decisive figures; count the others, so the reason
        # stays one sentence however many attacks ran.
        name, words = max(by_attack.items(), key=lambda item: len(item[1]))
        reason = f"{risk.capitalize()} risk: {name!r} reached " + " and ".join(words)
        others = len(by_attack) - 1
        if others:
            reason += f" ({others} other attack{'s' if others > 1 else ''} also reached {risk})"
        reason += "."
    else:
        reason = "Low risk: " + _low_reason(attacks, bounds)
        if not resolved:
            reason += " The audit is too small to rule leakage out: " + notes[0]
        reason += "".join(" " + note[0].upper() + note[1:] for note in notes[1 - resolved :])
    triggers = [{k: v for k, v in f.items() if k != "words"} for f in decisive]
    return {
        "risk": risk,
        "reason": reason,
        "rule": verdict_rule(),
        "triggers": triggers,
        "false_alarm_rate": FALSE_ALARM_RATE,
        "confidence_per_bound": confidence,
        "bounds": [
            {"attack": name, **{f"{k}_low": v for k, v in b.items()}} for name, b in bounds.items()
        ],
        "resolved": resolved,
        "notes": notes,
    }


def _resolution_notes(
    attacks: Sequence[AttackEvaluation],
    bounds: dict[str, dict[str, float | None]],
    confidence: float,
) -> tuple[list[str], bool]:
    """What the audit is too small to judge; False when it cannot resolve AUC."""
    notes: list[str] = []
    smallest = min(attacks, key=lambda a: min(a.n_members, a.n_nonmembers))
    p, n = smallest.n_members, smallest.n_nonmembers
    halfwidth = auc_chance_halfwidth(p, n)
    resolved = halfwidth <= AUC_HALFWIDTH
    if not resolved:
        need = records_for_auc_halfwidth(AUC_HALFWIDTH)
        notes.append(
            f"with {p} members and {n} non-members a chance attack's AUC spreads by "
            f"±{halfwidth:.3f} (95%), wider than ±{AUC_HALFWIDTH:g}, so an AUC of "
            f"{MEDIUM_AUC:g} cannot be told from chance; about {need} members and {need} "
            "non-members resolve it."
        )
    unbounded = [name for name, b in bounds.items() if b["tpr_at_fpr"] is None]
    if unbounded:
        side = 1.0 - (1.0 - confidence) / 2.0
        need = nonmembers_to_bound_fpr(VERDICT_FPR, side)
        notes.append(
            f"TPR at {VERDICT_FPR * 100:g}% FPR was not judged: bounding a threshold's FPR by "
            f"{VERDICT_FPR * 100:g}% at this audit's confidence needs at least {need} "
            f"non-members, and the audit has {smallest.n_nonmembers}."
        )
    return notes, resolved


def _low_reason(
    attacks: Sequence[AttackEvaluation], bounds: dict[str, dict[str, float | None]]
) -> str:
    """Say how far the strongest attack stayed below the medium thresholds."""
    text = "no attack's lower bound crossed a medium-risk threshold"
    finite = [a for a in attacks if not math.isnan(a.auc)]
    if finite:
        best = max(finite, key=lambda a: a.auc)
        low, high = best.auc_ci
        text += (
            f"; the highest AUC was {best.auc:.3g} ({best.name!r}, 95% interval "
            f"{low:.3g}–{high:.3g}, lower bound {bounds[best.name]['auc']:.3g})"
        )
    eps = [a for a in attacks if not math.isnan(a.epsilon.epsilon)]
    if eps:
        best_eps = max(eps, key=lambda a: a.epsilon.epsilon)
        text += f"; the highest ε lower bound was {best_eps.epsilon.epsilon:.3g} at 95%"
    return text + "."
