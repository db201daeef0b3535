"""Hand-made audit results for the report tests.

The evaluation stage is built elsewhere; these fixtures compute just enough of it here, with
scikit-learn and SciPy, from synthetic scores, so the report tests do not depend on it and the
AUC in them is known to match ``roc_auc_score`` on the very scores written to ``scores.npz``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve

from miaudit.evaluation.results import (
    AttackEvaluation,
    AuditResult,
    ClassResult,
    EpsilonBound,
    ThresholdMetrics,
    TprAtFpr,
)

FPRS = (0.001, 0.01, 0.1)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def tpr_points(scores: np.ndarray, is_member: np.ndarray, fprs=FPRS) -> dict[float, TprAtFpr]:
    """Highest TPR with FPR <= target, read off the full ROC."""
    fpr, tpr, thr = roc_curve(is_member, scores, drop_intermediate=False)
    n_mem = int(is_member.sum())
    n_non = int((~is_member).sum())
    out = {}
    for target in fprs:
        ok = np.flatnonzero(fpr <= target)
        i = ok[np.argmax(tpr[ok])]
        low, high = clopper_pearson(round(tpr[i] * n_mem), n_mem)
        out[target] = TprAtFpr(
            fpr_target=target,
            tpr=float(tpr[i]),
            fpr=float(fpr[i]),
            threshold=float(thr[i]),
            ci_low=low,
            ci_high=high,
            resolvable=n_non >= 1 / target,
        )
    return out


def delong_se(scores: np.ndarray, is_member: np.ndarray) -> float:
    """DeLong's AUC standard error by brute force over all (member, non-member) pairs."""
    pos, neg = scores[is_member], scores[~is_member]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    var = psi.mean(1).var(ddof=1) / pos.size + psi.mean(0).var(ddof=1) / neg.size
    return float(np.sqrt(var))


def make_attack(
    name: str,
    scores: np.ndarray,
    is_member: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    family: str = "metric",
    epsilon: float = 0.05,
) -> AttackEvaluation:
    """An AttackEvaluation computed from real scores (AUC by scikit-learn)."""
    auc = float(roc_auc_score(is_member, scores))
    fpr, tpr, _ = roc_curve(is_member, scores)
    half = np.arange(scores.size) % 2 == 0
    cal_fpr, cal_tpr, cal_thr = roc_curve(is_member[half], scores[half])
    best = int(np.argmax(cal_tpr - cal_fpr))
    threshold = float(min(cal_thr[best], np.finfo(float).max))
    pred = scores[~half] >= threshold
    truth = is_member[~half]
    tp = int((pred & truth).sum())
    fp = int((pred & ~truth).sum())
    tpr_e = tp / max(1, truth.sum())
    fpr_e = fp / max(1, (~truth).sum())
    precision = tp / (tp + fp) if tp + fp else -1.0
    f1 = 2 * precision * tpr_e / (precision + tpr_e) if precision > 0 else 0.0
    per_class = []
    for c, cname in enumerate(class_names):
        sel = labels == c
        m, nm = int((is_member & sel).sum()), int((~is_member & sel).sum())
        if m and nm:
            c_auc = float(roc_auc_score(is_member[sel], scores[sel]))
            per_class.append(
                ClassResult(c, cname, m, nm, c_auc, tpr_points(scores[sel], is_member[sel]), 0.1)
            )
        else:
            per_class.append(ClassResult(c, cname, m, nm, None, {}, None, note="one-sided"))
    se = delong_se(scores, is_member)
    return AttackEvaluation(
        name=name,
        family=family,
        auc=auc,
        auc_se=se,
        auc_ci=(max(0.0, auc - 1.96 * se), min(1.0, auc + 1.96 * se)),
        roc_fpr=fpr,
        roc_tpr=tpr,
        tpr_at_fpr=tpr_points(scores, is_member),
        max_advantage=float(np.max(tpr - fpr)),
        threshold_metrics=ThresholdMetrics(
            threshold=threshold,
            n_calibration=int(half.sum()),
            n_evaluation=int((~half).sum()),
            accuracy=float((pred == truth).mean()),
            precision=float(precision),
            recall=float(tpr_e),
            f1=float(f1),
            tpr=float(tpr_e),
            fpr=float(fpr_e),
            advantage=float(tpr_e - fpr_e),
        ),
        epsilon=EpsilonBound(
            epsilon=epsilon,
            delta=1e-5,
            confidence=0.95,
            threshold=threshold,
            fpr_upper=0.6,
            fnr_upper=0.6,
            false_positives=fp,
            nonmembers=int((~truth).sum()),
            false_negatives=int(truth.sum()) - tp,
            members=int(truth.sum()),
        ),
        per_class=per_class,
        n_members=int(is_member.sum()),
        n_nonmembers=int((~is_member).sum()),
        seconds=0.25,
        warnings=[f"{name} warns"],
    )


def make_result(
    names: Sequence[str] = ("loss", "confidence"),
    *,
    n_members: int = 300,
    n_nonmembers: int = 300,
    shifts: Sequence[float] | None = None,
    class_names: Sequence[str] = ("cat", "dog", "bird"),
    dataset: str = "toy",
    description: str = "a toy model",
    warnings: Sequence[str] = ("target barely trained",),
    seed: int = 0,
) -> AuditResult:
    """An AuditResult over synthetic scores: members shifted up by ``shifts`` std devs."""
    rng = np.random.default_rng(seed)
    n = n_members + n_nonmembers
    is_member = np.zeros(n, bool)
    is_member[:n_members] = True
    labels = rng.integers(0, len(class_names), n).astype(np.int64)
    shifts = shifts if shifts is not None else [0.5 + 0.5 * i for i in range(len(names))]
    scores, attacks = {}, []
    for name, shift in zip(names, shifts, strict=True):
        s = rng.normal(size=n) + shift * is_member
        scores[name] = s.astype(np.float64)
        attacks.append(make_attack(name, scores[name], is_member, labels, class_names))
    return AuditResult(
        target={
            "description": description,
            "access": "probabilities",
            "architecture": "mlp",
            "train_accuracy": np.float64(0.99),
            "test_accuracy": 0.81,
        },
        data={
            "dataset": dataset,
            "source": "synthetic",
            "n_classes": len(class_names),
            "class_names": list(class_names),
            "n_members": n_members,
            "n_nonmembers": n_nonmembers,
            "n_population": 1000,
            "split": {"seed": seed, "n_members": n_members, "n_nonmembers": n_nonmembers},
        },
        attacks=attacks,
        scores=scores,
        is_member=is_member,
        labels=labels,
        settings={
            "fprs": list(FPRS),
            "delta": 1e-5,
            "confidence": 0.95,
            "calibration_fraction": 0.5,
            "seed": seed,
        },
        warnings=list(warnings),
        seconds=3.5,
    )


def point(tpr_low: float, *, resolvable: bool = True, fpr: float = 0.01) -> TprAtFpr:
    """A TprAtFpr whose CI lower bound is ``tpr_low`` (for verdict boundary tests)."""
    return TprAtFpr(fpr, min(1.0, tpr_low + 0.05), fpr, 0.5, tpr_low, 1.0, resolvable)


def bare_attack(
    name: str = "a",
    *,
    auc: float = 0.5,
    tpr_low: float = 0.0,
    resolvable: bool = True,
    epsilon: float = 0.0,
) -> AttackEvaluation:
    """An AttackEvaluation with chosen headline figures and dummy details."""
    tm = ThresholdMetrics(0.0, 10, 10, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0)
    eps = EpsilonBound(epsilon, 1e-5, 0.95, 0.0, 1.0, 1.0, 5, 10, 5, 10)
    pts = {f: point(tpr_low if f == 0.01 else 0.0, resolvable=resolvable, fpr=f) for f in FPRS}
    return AttackEvaluation(
        name=name,
        family="metric",
        auc=auc,
        auc_se=0.0,
        auc_ci=(auc, auc),
        roc_fpr=np.array([0.0, 1.0]),
        roc_tpr=np.array([0.0, 1.0]),
        tpr_at_fpr=pts,
        max_advantage=0.0,
        threshold_metrics=tm,
        epsilon=eps,
        per_class=[],
        n_members=10,
        n_nonmembers=10,
    )


__all__ = ["FPRS", "bare_attack", "clopper_pearson", "make_attack", "make_result", "point"]
