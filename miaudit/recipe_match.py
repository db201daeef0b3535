"""How closely the reference models mimic the target: the recipe-match table.

A reference attack compares the target's answer on a record with how models trained with
and without it answer, so it is only as strong as those models are like the target. A
reference that fits its training records more loosely than the target fits its members
makes every member look like an outlier *in the wrong direction*: LiRA and RMIA then
understate leakage and can lose to a plain loss threshold (measured on CIFAR-10 in the
evidence issue: references on twice the target's records cost RMIA 5 AUC points).

The auditor knows the target's members, so the match can be measured instead of hoped
for. For the target, on the audited records: accuracy and mean loss on its members (train)
and on its non-members (test). For each reference, on the same audited records: accuracy
and mean loss on the records it trained on (IN) and on the others (OUT). The loss
distributions are compared with a two-sample Kolmogorov–Smirnov test, member losses
against IN losses and non-member losses against OUT losses.

Each reference is checked on its own, not only their mean: a fragile recipe can train one
reference to 0.78 and another to 0.10 accuracy from the same settings, and a mean of 0.44
hides both.

Tolerances
----------
A reference is *matched* when its train and test accuracy are each within
:data:`ACCURACY_TOLERANCE` of the target's and both KS statistics are at most
:data:`KS_TOLERANCE`. The KS *statistic* (an effect size: the largest gap between the two
loss CDFs), not its p-value, decides: with thousands of records any real difference,
however small, has a tiny p-value, while two models trained alike by one recipe differ by
a KS statistic of a few hundredths. The p-values are reported for the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.signals.observations import Observations

__all__ = ["ACCURACY_TOLERANCE", "KS_TOLERANCE", "RecipeMatch", "measure_recipe_match"]

#: Largest gap in train or test accuracy between a reference and the target that counts as
#: matched.
ACCURACY_TOLERANCE = 0.05

#: Largest two-sample KS statistic between the target's and a reference's losses (members
#: vs IN, non-members vs OUT) that counts as matched.
KS_TOLERANCE = 0.15


@dataclass(frozen=True)
class RecipeMatch:
    """The recipe-match table of one reference pool against the target.

    Attributes
    ----------
    target : dict
        ``train_accuracy``, ``train_loss`` (on members), ``test_accuracy``, ``test_loss``
        (on non-members); losses are None for a target without probabilities.
    references : list of dict
        Per reference ``k``: the same four figures on its IN and OUT audited records,
        ``n_in``, ``n_out``, the KS statistics and p-values ``ks_train``, ``p_train``,
        ``ks_test``, ``p_test`` and ``matched``.
    """

    target: dict
    references: list[dict]

    @property
    def n_matched(self) -> int:
        return sum(bool(r["matched"]) for r in self.references)

    @property
    def distance(self) -> float:
        """Mean over references of the two KS statistics plus the two accuracy gaps: what
        calibration minimises (0 is a perfect match)."""
        t = self.target
        return float(
            np.mean(
                [
                    (r["ks_train"] or 0.0)
                    + (r["ks_test"] or 0.0)
                    + abs(r["train_accuracy"] - t["train_accuracy"])
                    + abs(r["test_accuracy"] - t["test_accuracy"])
                    for r in self.references
                ]
            )
        )

    def mean(self, key: str) -> float | None:
        values = [r[key] for r in self.references if r[key] is not None]
        return float(np.mean(values)) if values else None

    def describe(self) -> dict:
        """JSON-ready: the table, the tolerances and the verdict per reference."""
        return {
            "target": dict(self.target),
            "references": [dict(r) for r in self.references],
            "mean": {
                key: self.mean(key)
                for key in ("train_accuracy", "train_loss", "test_accuracy", "test_loss")
            },
            "tolerance": {"accuracy": ACCURACY_TOLERANCE, "ks_statistic": KS_TOLERANCE},
            "n_matched": self.n_matched,
            "distance": self.distance,
            "test": "two-sample Kolmogorov-Smirnov on the per-record loss: target members "
            "vs reference IN records (train), non-members vs OUT records (test)",
        }

    def warnings(self) -> list[str]:
        """One warning when any reference is outside the tolerance, saying which way."""
        bad = [r for r in self.references if not r["matched"]]
        if not bad:
            return []
        t = self.target
        ref_train = float(np.mean([r["train_accuracy"] for r in bad]))
        ref_test = float(np.mean([r["test_accuracy"] for r in bad]))
        models = ", ".join(str(r["model"]) for r in bad)
        head = (
            f"{len(bad)} of {len(self.references)} reference models do not match the target "
            f"(models {models}; train accuracy {ref_train:.3f} vs the target's "
            f"{t['train_accuracy']:.3f}, test accuracy {ref_test:.3f} vs "
            f"{t['test_accuracy']:.3f}; tolerance ±{ACCURACY_TOLERANCE} in accuracy and "
            f"{KS_TOLERANCE} in the KS statistic of the losses)"
        )
        return [
            f"{head}: {_direction(t, bad)}; reference attacks may understate leakage. When "
            "only some references differ, their seeds may be to blame (a fragile recipe): "
            "references.reseed retrains them with fresh seeds on the same records"
        ]


def _direction(target: dict, bad: list[dict]) -> str:
    """Which way the references differ, and what to change in their recipe.

    The generalisation gap decides: test minus train loss when losses exist (the quantity
    membership inference feeds on), else train minus test accuracy. References whose gap
    is more than a quarter smaller than the target's overfit less than it.
    """
    losses = [r["test_loss"] - r["train_loss"] for r in bad if r["train_loss"] is not None]
    if losses and target["train_loss"] is not None:
        ref_gap = float(np.mean(losses))
        target_gap = target["test_loss"] - target["train_loss"]
        slack = 0.25 * abs(target_gap)
    else:
        ref_gap = float(np.mean([r["train_accuracy"] - r["test_accuracy"] for r in bad]))
        target_gap = target["train_accuracy"] - target["test_accuracy"]
        slack = ACCURACY_TOLERANCE
    if ref_gap < target_gap - slack:
        return (
            "the references overfit less than the target: train them longer (more epochs), "
            "with less regularisation, or on fewer records (references.train_size)"
        )
    if ref_gap > target_gap + slack:
        return (
            "the references overfit more than the target: train them for fewer epochs or "
            "with more regularisation"
        )
    if np.mean([r["test_accuracy"] for r in bad]) < target["test_accuracy"]:
        return (
            "the references are less accurate than the target on both train and test "
            "records: check their architecture, optimiser and schedule"
        )
    return (
        "the references are more accurate than the target on both train and test records: "
        "check their architecture, optimiser, schedule and training-set size"
    )


def _figures(loss: np.ndarray | None, correct: np.ndarray, mask: np.ndarray) -> tuple:
    acc = float(correct[mask].mean()) if mask.any() else float("nan")
    mean_loss = None if loss is None or not mask.any() else float(loss[mask].mean())
    return acc, mean_loss


def _ks(a: np.ndarray | None, b: np.ndarray | None) -> tuple[float | None, float | None]:
    from scipy.stats import ks_2samp  # scipy.stats takes a second to import: only when used

    if a is None or b is None or a.size == 0 or b.size == 0:
        return None, None
    result = ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def measure_recipe_match(
    target_loss: np.ndarray | None,
    target_correct: np.ndarray,
    is_member: np.ndarray,
    references: Observations,
) -> RecipeMatch:
    """Compare each reference with the target on the audited records.

    Parameters
    ----------
    target_loss : (n,) float64 or None
        The target's cross-entropy loss on each audited record (None: labels only).
    target_correct : (n,) bool
        Whether the target predicts each audited record's class.
    is_member : (n,) bool
        The target's membership (known to the auditor).
    references : Observations
        The references' answers on the same records, with ``inclusion`` and ``correct``.
    """
    assert references.inclusion is not None and references.correct is not None
    member = np.asarray(is_member, bool)
    train_acc, train_loss = _figures(target_loss, target_correct, member)
    test_acc, test_loss = _figures(target_loss, target_correct, ~member)
    target = {
        "train_accuracy": train_acc,
        "train_loss": train_loss,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "n_members": int(member.sum()),
        "n_nonmembers": int((~member).sum()),
    }
    rows = []
    for k in range(references.n_models):
        inside = references.inclusion[k]
        loss = None if target_loss is None else -references.log_confidence[k, :, 0]
        r_train_acc, r_train_loss = _figures(loss, references.correct[k], inside)
        r_test_acc, r_test_loss = _figures(loss, references.correct[k], ~inside)
        ks_train, p_train = _ks(
            None if target_loss is None else target_loss[member],
            None if loss is None else loss[inside],
        )
        ks_test, p_test = _ks(
            None if target_loss is None else target_loss[~member],
            None if loss is None else loss[~inside],
        )
        within = (
            inside.any()
            and (~inside).any()
            and abs(r_train_acc - train_acc) <= ACCURACY_TOLERANCE
            and abs(r_test_acc - test_acc) <= ACCURACY_TOLERANCE
            and all(d is None or d <= KS_TOLERANCE for d in (ks_train, ks_test))
        )
        rows.append(
            {
                "model": k,
                "n_in": int(inside.sum()),
                "n_out": int((~inside).sum()),
                "train_accuracy": r_train_acc,
                "train_loss": r_train_loss,
                "test_accuracy": r_test_acc,
                "test_loss": r_test_loss,
                "ks_train": ks_train,
                "p_train": p_train,
                "ks_test": ks_test,
                "p_test": p_test,
                "matched": bool(within),
            }
        )
    return RecipeMatch(target, rows)
