"""The one-word risk verdict of an audit, and the rule that produced it.

The verdict is a summary for a reader who will not study the metrics table, so the rule is
deliberately simple, stated in words next to the verdict, and conservative: the strongest
attack decides. Low-FPR figures only count when the audit had enough non-members to resolve
that FPR, and they count through the lower end of their Clopper-Pearson interval, so a lucky
handful of members cannot raise the alarm on its own (Carlini et al., "Membership Inference
Attacks From First Principles", S&P 2022, argue for judging attacks at low FPR).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from miaudit.errors import InvalidAuditInput
from miaudit.evaluation.results import AttackEvaluation, TprAtFpr

__all__ = [
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

#: FPR at which the low-FPR criterion reads the TPR (1 %).
VERDICT_FPR = 0.01

#: AUC at or above which an attack makes the risk high.
HIGH_AUC = 0.75
#: Clopper-Pearson lower bound of TPR at ``VERDICT_FPR`` that makes the risk high
#: (ten times what a coin flip achieves at 1 % FPR).
HIGH_TPR_LOW = 0.10
#: Empirical epsilon lower bound that makes the risk high.
HIGH_EPSILON = 1.0

#: AUC at or above which an attack makes the risk at least medium.
MEDIUM_AUC = 0.60
#: Clopper-Pearson lower bound of TPR at ``VERDICT_FPR`` that makes the risk at least medium
#: (three times chance).
MEDIUM_TPR_LOW = 0.03
#: Empirical epsilon lower bound that makes the risk at least medium.
MEDIUM_EPSILON = 0.1


def verdict_rule() -> str:
    """The verdict rule in words, built from the module constants so text and code agree."""
    pct = f"{VERDICT_FPR * 100:g}%"
    return (
        f"High risk if any attack reaches AUC ≥ {HIGH_AUC:g}, or the Clopper-Pearson lower "
        f"bound of its TPR at {pct} FPR ≥ {HIGH_TPR_LOW:g} (with enough non-members to resolve "
        f"{pct} FPR), or an empirical ε lower bound ≥ {HIGH_EPSILON:g}. "
        f"Medium risk if any attack reaches AUC ≥ {MEDIUM_AUC:g}, or that TPR lower bound "
        f"≥ {MEDIUM_TPR_LOW:g}, or ε lower bound ≥ {MEDIUM_EPSILON:g}. "
        "Low risk otherwise. The strongest attack decides."
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


def _findings(attack: AttackEvaluation) -> list[dict]:
    """Every figure of one attack that crosses a medium or high threshold, with its level."""
    found: list[dict] = []
    pct = f"{VERDICT_FPR * 100:g}%"
    point = find_tpr_at_fpr(attack.tpr_at_fpr, VERDICT_FPR)
    tpr_low = point.ci_low if point is not None and point.resolvable else None
    checks = (
        ("auc", "AUC {:.3f}", attack.auc, HIGH_AUC, MEDIUM_AUC),
        (
            "tpr_at_fpr_low",
            "a Clopper-Pearson lower bound of {:.3f} on TPR at " + pct + " FPR",
            tpr_low,
            HIGH_TPR_LOW,
            MEDIUM_TPR_LOW,
        ),
        (
            "epsilon",
            "an ε lower bound of {:.3f}",
            attack.epsilon.epsilon,
            HIGH_EPSILON,
            MEDIUM_EPSILON,
        ),
    )
    for metric, words, value, high, medium in checks:
        for level, threshold in (("high", high), ("medium", medium)):
            if _at_least(value, threshold):
                found.append(
                    {
                        "attack": attack.name,
                        "metric": metric,
                        "value": float(value),
                        "threshold": threshold,
                        "level": level,
                        "words": f"{words.format(value)} (≥ {threshold:g})",
                    }
                )
                break
    return found


def decide_verdict(attacks: Sequence[AttackEvaluation]) -> dict:
    """Classify the audit as low, medium or high membership-inference risk.

    Parameters
    ----------
    attacks : sequence of AttackEvaluation
        Every attack run in the audit; the strongest one decides.

    Returns
    -------
    dict
        JSON-ready: ``risk`` (``"low"``, ``"medium"`` or ``"high"``), ``reason`` (which attack
        and which figure decided, in words), ``rule`` (the whole rule in words) and
        ``triggers`` (every figure that crossed the decisive level: attack, metric, value,
        threshold).

    Raises
    ------
    InvalidAuditInput
        When no attack was run: "low risk" would then be a claim with no evidence behind it.
    """
    if not attacks:
        raise InvalidAuditInput("decide_verdict: no attack was run, so there is nothing to judge")
    findings = [f for attack in attacks for f in _findings(attack)]
    risk = "low"
    for level in ("high", "medium"):
        if any(f["level"] == level for f in findings):
            risk = level
            break
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
        reason = "Low risk: " + _low_reason(attacks)
    triggers = [{k: v for k, v in f.items() if k != "words"} for f in decisive]
    return {"risk": risk, "reason": reason, "rule": verdict_rule(), "triggers": triggers}


def _low_reason(attacks: Sequence[AttackEvaluation]) -> str:
    """Say how far the strongest attack stayed below the medium thresholds."""
    finite = [a for a in attacks if not math.isnan(a.auc)]
    parts = []
    if finite:
        best = max(finite, key=lambda a: a.auc)
        parts.append(f"the highest AUC was {best.auc:.3g} ({best.name!r})")
    eps = [a for a in attacks if not math.isnan(a.epsilon.epsilon)]
    if eps:
        best_eps = max(eps, key=lambda a: a.epsilon.epsilon)
        parts.append(f"the highest ε lower bound was {best_eps.epsilon.epsilon:.3g}")
    missing = [a.name for a in attacks if find_tpr_at_fpr(a.tpr_at_fpr, VERDICT_FPR) is None]
    unresolved = [
        a.name
        for a in attacks
        if (p := find_tpr_at_fpr(a.tpr_at_fpr, VERDICT_FPR)) is not None and not p.resolvable
    ]
    text = "no attack crossed a medium-risk threshold"
    if parts:
        text += "; " + ", ".join(parts)
    pct = f"{VERDICT_FPR * 100:g}%"
    if unresolved:
        names = ", ".join(repr(n) for n in unresolved)
        text += f"; TPR at {pct} FPR could not be judged for {names} (too few non-members)"
    if missing:
        names = ", ".join(repr(n) for n in missing)
        text += f"; TPR at {pct} FPR was not measured for {names}"
    return text + "."
