"""Self-audit experiments: the research protocol of LiRA and RMIA.

miaudit trains models by one recipe on random halves of one data set (in complementary
pairs, see :class:`~miaudit.compute.ReferencePool`). Model ``t`` (t < n_targets) in turn
plays the target: the records it trained on are the members, the others the non-members,
and ``n_references`` models from other pairs are its references. Every record is
audited, any model can serve as the target, and the results of several targets average
into tighter figures (Carlini et al. 2022; Zarifzadeh et al. 2024).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from miaudit.attacks.registry import AttackSpec, build_attacks
from miaudit.audit import EvaluationSettings, run_attacks
from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput
from miaudit.evaluation.results import AttackEvaluation
from miaudit.references import DEFAULT_POPULATION_SIZE, ReferenceEvidence, query_set
from miaudit.signals.evidence import Evidence
from miaudit.signals.observations import Observations
from miaudit.signals.table import compute_signals
from miaudit.targets.adapters import TorchTarget


@dataclass(frozen=True)
class TargetRun:
    """One model audited as the target: its accuracies, every attack's evaluation, and what
    a report of it needs (scores by attack, membership, labels, record ids, population)."""

    target_index: int
    train_accuracy: float
    test_accuracy: float
    attacks: list[AttackEvaluation]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    is_member: np.ndarray | None = None
    records: np.ndarray | None = None
    n_population: int = 0


@dataclass(frozen=True)
class SelfAuditResult:
    """All targets of one self-audit, plus the cost of the models.

    ``training_seconds`` has one entry per model trained by this call (cache hits cost
    nothing and are counted in ``models_from_cache``)."""

    runs: list[TargetRun]
    n_references: int
    n_models: int = 0
    training_seconds: list[float] = field(default_factory=list)
    models_from_cache: int = 0

    def summary(self) -> list[dict]:
        """One row per attack: figures averaged over the targets (mean and std)."""
        names = [a.name for a in self.runs[0].attacks]
        rows = []
        for i, name in enumerate(names):
            evals = [run.attacks[i] for run in self.runs]
            row = {"attack": name, "K": self.n_references, "n_targets": len(evals)}
            row["auc"] = float(np.mean([e.auc for e in evals]))
            row["auc_std"] = float(np.std([e.auc for e in evals]))
            for fpr, key in ((0.01, "tpr@1%"), (0.001, "tpr@0.1%")):
                points = [e.tpr_at_fpr[fpr] for e in evals]
                row[key] = float(np.mean([p.tpr for p in points]))
                row[key + "_ci"] = (
                    float(np.mean([p.ci_low for p in points])),
                    float(np.mean([p.ci_high for p in points])),
                )
            row["seconds"] = float(np.mean([e.seconds for e in evals]))
            rows.append(row)
        return rows


def self_audit(
    recipe,
    dataset: Dataset,
    *,
    n_references: int,
    n_targets: int = 1,
    attacks: Sequence[str | dict | AttackSpec] = ("lira", "rmia", "attack_r", "loss"),
    queries: str = "auto",
    seed: int = 0,
    cache=None,
    population_size: int | None = None,
    settings: EvaluationSettings | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    executor=None,
) -> SelfAuditResult:
    """Train (or load from the cache) the models and audit ``n_targets`` of them.

    Parameters
    ----------
    recipe
        Recipe of every model (targets and references alike).
    dataset : Dataset
        Every record is a candidate: each model trains on a random half.
    n_references, n_targets : int
        Reference models per target, and how many models serve as targets in turn.
    attacks : sequence
        As for :func:`miaudit.audit.run_audit`; reference attacks use at most
        ``n_references`` models (their own ``num_references`` if smaller).
    queries : str
        Augmentation queries (``"auto"``: flips for images when the recipe augments, none
        otherwise; see :func:`miaudit.references.query_set`).
    seed : int
        Seed of the inclusion matrix and of every model.
    cache : ModelCache, optional
        Default: ``ModelCache.default()``.
    population_size : int, optional
        Records RMIA compares against (a seeded random subset of the data set).
    executor : optional
        Where the models train (:mod:`miaudit.compute.executors`; default in process).
    """
    from miaudit.compute import ModelCache, ReferencePool, self_audit_size

    if n_references < 1 or n_targets < 1:
        raise InvalidAuditInput(
            f"self_audit: n_references and n_targets must be positive, got "
            f"{n_references} and {n_targets}"
        )
    settings = settings or EvaluationSettings()
    specs = build_attacks(attacks)
    unsupported = [s.label for s in specs if s.requirements.shadows]
    if unsupported:
        raise InvalidAuditInput(
            f"self_audit: attacks {unsupported} train shadow models on the attacker's own "
            "data, but every record of a self-audit is audited; run them with run_audit"
        )
    query_name, augmentations = query_set(queries, dataset, recipe)
    records = np.arange(dataset.n_records)
    # Model k's pair partner trained on exactly the records k did not: as a reference it
    # would make the references' IN count reveal the target's membership. Targets are
    # audited with references from other pairs only, so that every record is IN for half
    # of its references whatever the target did.
    n_models = self_audit_size(n_references, n_targets)
    pool = ReferencePool(
        recipe,
        dataset,
        records,
        n_models=n_models,
        seed=seed,
        cache=cache or ModelCache.default(),
        executor=executor,
    )
    trained = pool.train(progress=progress)
    infos = [pool.model_info(k) for k in range(n_models)]
    observed = pool.observe(records, queries=augmentations)
    rng = np.random.default_rng(seed)
    z_size = min(records.size, population_size or DEFAULT_POPULATION_SIZE)
    z_rows = np.sort(rng.choice(records.size, size=z_size, replace=False))

    runs = []
    for t in range(n_targets):
        others = pool.references_for(t)[:n_references]
        is_member = observed.inclusion[t].copy()
        target_obs = Observations(
            records, observed.scaled_logit[[t]], observed.log_confidence[[t]], None
        )
        target = TorchTarget(trained[t].model, n_classes=dataset.n_classes, access="logits")
        signals = compute_signals(target, dataset.x, dataset.y)
        evaluations, scores = _audit_one_target(
            specs,
            target,
            signals,
            is_member,
            dataset,
            settings,
            observed.select_models(others),
            target_obs,
            z_rows,
            infos,
            query_name,
            n_references,
            tuple(trained[j] for j in others),
        )
        runs.append(
            TargetRun(
                target_index=t,
                train_accuracy=float(signals.correct[is_member].mean()),
                test_accuracy=float(signals.correct[~is_member].mean()),
                attacks=evaluations,
                scores=scores,
                is_member=is_member,
                records=records,
                n_population=int(z_rows.size),
            )
        )
    return SelfAuditResult(
        runs=runs,
        n_references=n_references,
        n_models=n_models,
        training_seconds=[float(i["seconds"]) for i in infos if not i.get("from_cache")],
        models_from_cache=sum(bool(i.get("from_cache")) for i in infos),
    )


def _audit_one_target(
    specs: list[AttackSpec],
    target: TorchTarget,
    signals,
    is_member: np.ndarray,
    dataset: Dataset,
    settings: EvaluationSettings,
    references: Observations,
    target_obs: Observations,
    z_rows: np.ndarray,
    infos: list[dict],
    query_name: str,
    n_references: int,
    models: tuple = (),
) -> tuple[list[AttackEvaluation], dict[str, np.ndarray]]:
    """The audit loop of :func:`~miaudit.audit.run_audit` on one pool model as the target:
    the evaluations and the scores by attack."""
    reference_evidence = ReferenceEvidence(
        audited_references=references,
        audited_target=target_obs,
        population_references=references.select_records(z_rows),
        population_target=target_obs.select_records(z_rows),
        model_info=infos,
        queries=query_name,
        models=models,
    )
    records = target_obs.record_ids
    evidence = Evidence(
        target=target,
        dataset=dataset,
        records=records,
        labels=dataset.y[records],
        signals=signals,
        # Every record is audited here; RMIA's z come with the reference evidence, and no
        # other record is left for an attacker's own (shadow) models.
        population=np.empty(0, np.int64),
        references=reference_evidence,
        is_member=is_member,
        seed=settings.seed,
    )
    capped = [
        replace(spec, num_references=min(spec.num_references or n_references, n_references))
        if spec.requirements.references
        else spec
        for spec in specs
    ]
    evaluations, scores, _ = run_attacks(evidence, capped, settings)
    return evaluations, scores
