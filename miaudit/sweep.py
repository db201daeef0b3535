"""``miaudit sweep``: every defense setting re-attacked, and what each costs in accuracy.

An audit file with a ``sweep:`` list describes one target per setting: the target's recipe
with some training options changed (weight decay, dropout, label smoothing, mixup, DP-SGD)
and/or output defenses wrapped around its answers (top-k, rounding, temperature, noise,
labels only). Each setting is a whole audit (:func:`miaudit.pipeline.run_config`): its
references and shadow models train with the same recipe (the attacker knows the training
algorithm), every attack of the file that the setting's access level allows runs (the
label-only ones included, so that masking confidences never looks like a cure when it is
not), and the ones it does not allow are listed as skipped. Models already trained come
from the cache. The sweep's table has one row per setting: test accuracy, the strongest
attack's AUC and TPR at 1 % FPR with their intervals, the best ε lower bound, the
accountant's ε for DP-SGD, and training time.

Every setting is checked before the first model is trained.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from miaudit.attacks.registry import build_attacks, default_attacks
from miaudit.config import AuditConfig, SweepSetting
from miaudit.errors import InvalidAuditInput
from miaudit.evaluation.results import AuditResult
from miaudit.preflight import preflight, target_access

__all__ = ["SweepResult", "SweepRow", "plan_sweep", "plan_sweep_costs", "run_sweep", "sweep_table"]


@dataclass(frozen=True)
class SweepRow:
    """One setting's figures (JSON-ready through :meth:`to_dict`)."""

    label: str
    changes: dict
    train_accuracy: float
    test_accuracy: float
    best_auc_attack: str
    best_auc: float
    best_auc_interval: tuple[float, float]
    best_tpr_attack: str
    best_tpr_at_1pct: float
    best_tpr_interval: tuple[float, float]
    best_epsilon_lower: float
    accountant_epsilon: float | None
    training_seconds: float | None
    risk: str
    skipped_attacks: list[str] = field(default_factory=list)
    canary: dict | None = None

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "changes": self.changes,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "best_auc": {
                "attack": self.best_auc_attack,
                "value": self.best_auc,
                "interval": list(self.best_auc_interval),
            },
            "best_tpr_at_fpr_0.01": {
                "attack": self.best_tpr_attack,
                "value": self.best_tpr_at_1pct,
                "interval": list(self.best_tpr_interval),
            },
            "best_epsilon_lower_bound": self.best_epsilon_lower,
            "accountant_epsilon": self.accountant_epsilon,
            "training_seconds": self.training_seconds,
            "risk": self.risk,
            "skipped_attacks": self.skipped_attacks,
            "canary_audit": self.canary,
        }


@dataclass(frozen=True)
class SweepResult:
    rows: list[SweepRow]
    results: list[AuditResult]
    seconds: float


def _setting_config(config: AuditConfig, setting: SweepSetting) -> tuple[AuditConfig, list[str]]:
    """The audit of one setting, and the attacks of the file it cannot run."""
    target = config.target
    if (setting.training or setting.params) and target.recipe is None:
        raise InvalidAuditInput(
            f"sweep {setting.label!r}: training and params change the target's recipe, but "
            "the target is not trained from target.recipe"
        )
    update: dict[str, Any] = {"defenses": [*target.defenses, *setting.defenses]}
    if target.recipe is not None:
        recipe = target.recipe.model_copy(
            update={
                "training": {**target.recipe.training, **setting.training},
                "params": {**target.recipe.params, **setting.params},
            }
        )
        update["recipe"] = recipe
    derived = config.model_copy(update={"target": target.model_copy(update=update)})
    access = target_access(derived)
    entries = config.attack_entries()
    specs = build_attacks(entries if entries is not None else default_attacks(access))
    keep = [i for i, s in enumerate(specs) if s.requirements.access <= access]
    skipped = [s.label for s in specs if s.requirements.access > access]
    if not keep:
        raise InvalidAuditInput(
            f"sweep {setting.label!r}: no attack of the file runs at {access.label} access; "
            "add a label-only attack (gap, augmentation, boundary)"
        )
    if entries is not None:
        derived = derived.model_copy(update={"attacks": [config.attacks[i] for i in keep]})
    else:
        derived = derived.model_copy(update={"attacks": [specs[i].label for i in keep]})
    return derived, skipped


def plan_sweep(config: AuditConfig) -> list[tuple[SweepSetting, AuditConfig, list[str]]]:
    """Every setting's audit, each checked (attacks, recipe, defenses) before any work."""
    if not config.sweep:
        raise InvalidAuditInput(
            "the audit file has no 'sweep:' list of defense settings (e.g. "
            "[{label: baseline}, {label: dp, training: {dp_target_epsilon: 8}}])"
        )
    labels = [s.label for s in config.sweep]
    if len(set(labels)) != len(labels):
        raise InvalidAuditInput(f"sweep labels must be unique, got {labels}")
    planned = []
    for setting in config.sweep:
        derived, skipped = _setting_config(config, setting)
        preflight(derived)
        planned.append((setting, derived, skipped))
    return planned


def _row(setting: SweepSetting, result: AuditResult, skipped: list[str]) -> SweepRow:
    from miaudit.report.verdict import decide_verdict, find_tpr_at_fpr

    best_auc = max(result.attacks, key=lambda a: a.auc)
    tprs = [(a, find_tpr_at_fpr(a.tpr_at_fpr, 0.01)) for a in result.attacks]
    tprs = [(a, p) for a, p in tprs if p is not None]
    best_tpr_attack, point = max(tprs, key=lambda ap: ap[1].tpr)
    eps = [a.epsilon.epsilon for a in result.attacks if not math.isnan(a.epsilon.epsilon)]
    privacy = result.target.get("privacy") or {}
    changes = {
        **({"training": setting.training} if setting.training else {}),
        **({"params": setting.params} if setting.params else {}),
        **(
            {"defenses": [{"name": d.name, **d.params()} for d in setting.defenses]}
            if setting.defenses
            else {}
        ),
    }
    return SweepRow(
        label=setting.label,
        changes=changes,
        train_accuracy=float(result.target["train_accuracy"]),
        test_accuracy=float(result.target["test_accuracy"]),
        best_auc_attack=best_auc.name,
        best_auc=best_auc.auc,
        best_auc_interval=tuple(best_auc.auc_ci),
        best_tpr_attack=best_tpr_attack.name,
        best_tpr_at_1pct=point.tpr,
        best_tpr_interval=(point.ci_low, point.ci_high),
        best_epsilon_lower=max(eps) if eps else 0.0,
        accountant_epsilon=privacy.get("epsilon"),
        training_seconds=result.target.get("training_seconds"),
        risk=decide_verdict(result.attacks)["risk"],
        skipped_attacks=skipped,
    )


def _check_recipes(planned, dataset) -> None:
    """Each setting's recipe builds and fits the data (DP layers included)."""
    from miaudit.pipeline import _torch_recipe
    from miaudit.resources import check_memory, network_memory
    from miaudit.targets.defenses import check_output_defenses

    for setting, derived, _ in planned:
        check_output_defenses(
            [(d.name, d.params()) for d in derived.target.defenses],
            dataset.n_classes,
            f"sweep {setting.label!r}: defenses",
        )
        if derived.target.recipe is not None:
            recipe = _torch_recipe(derived.target.recipe, where=f"sweep {setting.label!r}")
            try:
                recipe.validate(dataset)
                parts = {
                    "data set": int(dataset.x.nbytes + dataset.y.nbytes),
                    "one network in training": network_memory(recipe, dataset)[1],
                }
                check_memory(parts, "the setting", "make its network smaller (params)")
            except InvalidAuditInput as error:
                raise InvalidAuditInput(f"sweep {setting.label!r}: {error}") from None


def plan_sweep_costs(
    config: AuditConfig,
    *,
    data_dir: str | Path | None = None,
    trust_pickle: bool = False,
    on_stage=None,
) -> list[tuple[str, Any]]:
    """What :func:`run_sweep` would do, without doing it (``miaudit sweep --dry-run``):
    every check, then each setting's plan (:func:`miaudit.pipeline.plan_config`, one timed
    epoch each), as ``(label, AuditEstimate)``."""
    from miaudit.data import load_dataset
    from miaudit.pipeline import plan_config

    planned = plan_sweep(config)
    dataset = load_dataset(
        config.dataset.name, data_dir=data_dir or config.data_dir, **config.dataset.options
    )
    _check_recipes(planned, dataset)
    notify = on_stage or (lambda message: None)
    plans = []
    for i, (setting, derived, _) in enumerate(planned):
        notify(f"setting {i + 1}/{len(planned)}: {setting.label}")
        plans.append(
            (
                setting.label,
                plan_config(
                    derived, data_dir=data_dir, trust_pickle=trust_pickle, on_stage=on_stage
                ),
            )
        )
    return plans


def run_sweep(
    config: AuditConfig,
    *,
    data_dir: str | Path | None = None,
    trust_pickle: bool = False,
    on_stage=None,
    on_epoch=None,
    on_reference=None,
) -> SweepResult:
    """Audit every setting of ``config.sweep``; nothing is written."""
    from miaudit.data import load_dataset
    from miaudit.pipeline import run_config

    started = time.perf_counter()
    planned = plan_sweep(config)
    dataset = load_dataset(
        config.dataset.name, data_dir=data_dir or config.data_dir, **config.dataset.options
    )
    _check_recipes(planned, dataset)  # before the first setting trains anything
    if config.canary_audit is not None:
        from miaudit.pipeline import build_split

        split = build_split(config, dataset)
        pool = split.population if split.population.size else split.nonmembers
        if pool.size < config.canary_audit.canaries:
            raise InvalidAuditInput(
                f"canary_audit: {config.canary_audit.canaries} canaries are made from as many "
                f"population records, and the split has {pool.size}"
            )
    rows, results = [], []
    canary_cache: dict = {}
    notify = on_stage or (lambda message: None)
    for i, (setting, derived, skipped) in enumerate(planned):
        notify(f"setting {i + 1}/{len(planned)}: {setting.label}")
        result = run_config(
            derived,
            data_dir=data_dir,
            trust_pickle=trust_pickle,
            on_stage=on_stage,
            on_epoch=on_epoch,
            on_reference=on_reference,
        )
        results.append(result)
        row = _row(setting, result, skipped)
        if config.canary_audit is not None and derived.target.recipe is not None:
            notify(f"setting {i + 1}/{len(planned)}: canary audit")
            row = replace(row, canary=_canary(derived, dataset, canary_cache))
        rows.append(row)
    return SweepResult(rows=rows, results=results, seconds=time.perf_counter() - started)


def _canary(derived: AuditConfig, dataset, cache: dict) -> dict:
    """The canary audit of a setting's training, once per distinct recipe (output defenses
    do not change what the training leaks into the weights)."""
    from miaudit.dp_audit import add_canaries, classic_canary_audit, one_run_audit
    from miaudit.pipeline import _torch_recipe, build_split

    section = derived.canary_audit
    recipe = _torch_recipe(derived.target.recipe)
    key = recipe.fingerprint()
    if key in cache:
        return cache[key]
    split = build_split(derived, dataset)
    pool = split.population if split.population.size else split.nonmembers
    grown, canaries = add_canaries(
        dataset, pool[: section.canaries], section.kind, seed=section.seed
    )
    if section.method == "one_run":
        audit = one_run_audit(
            recipe,
            grown,
            split.members,
            canaries,
            seed=section.seed,
            confidence=section.confidence,
        )
    else:
        audit = classic_canary_audit(
            recipe,
            grown,
            split.members,
            canaries,
            n_models=section.n_models,
            seed=section.seed,
            confidence=section.confidence,
        )
    cache[key] = audit.to_dict()
    return cache[key]


def sweep_table(rows: list[SweepRow]) -> list[list[str]]:
    """Header and one row of strings per setting, for the terminal and the HTML."""

    def interval(low: float, high: float) -> str:
        return f"[{low:.3f}, {high:.3f}]"

    header = [
        "setting",
        "test acc",
        "best AUC [95%]",
        "best TPR@1% [95%]",
        "ε lower",
        "accountant ε",
        "canary ε",
        "train s",
        "risk",
    ]
    body = []
    for r in rows:
        accountant = "" if r.accountant_epsilon is None else f"{r.accountant_epsilon:.2f}"
        seconds = "" if r.training_seconds is None else f"{r.training_seconds:.1f}"
        body.append(
            [
                r.label,
                f"{r.test_accuracy:.3f}",
                f"{r.best_auc:.3f} {interval(*r.best_auc_interval)} ({r.best_auc_attack})",
                f"{r.best_tpr_at_1pct:.3f} {interval(*r.best_tpr_interval)} ({r.best_tpr_attack})",
                f"{r.best_epsilon_lower:.2f}",
                accountant,
                "" if r.canary is None else f"{r.canary['epsilon_lower_bound']:.2f}",
                seconds,
                r.risk,
            ]
        )
    return [header, *body]
