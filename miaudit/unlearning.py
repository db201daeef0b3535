"""Machine unlearning: delete records from a trained model, and check by attack that it
forgot them.

- **Deletion requests** (:func:`deletion_request`): a random fraction of the training
  records, one class, or a given list of indices; each fraction is drawn from the original
  training set, not cumulatively.
- **Methods.** :func:`retrain` trains from scratch on the remaining records (the exact
  baseline). :class:`SISA` (Bourtoule et al., IEEE S&P 2021) splits the training records
  into ``n_shards`` disjoint shards, each into ``n_slices`` slices; a shard's model trains
  on its first slice, is checkpointed, continues on the first two slices, and so on; the
  ensemble predicts by averaging the shards' probabilities (or by majority vote, which
  releases labels only). Deleting a record retrains only its shard, from the checkpoint
  taken before the earliest slice holding a deleted record. ``n_shards`` groups with one
  slice each is the "grouped retraining" of the common tutorial. Approximate methods are
  any ``callable(model, dataset, remaining, deleted, seed) -> model``
  (:func:`finetune` and :func:`gradient_ascent` are provided) and are audited the same way.
- **Verification** (:func:`verify_forgetting`; per record, :func:`ulira`): the question is
  whether the deleted records are distinguishable from records no model ever saw. Each
  attack's scores on the deleted records and on fresh never-seen records give an AUC (about
  0.5 when forgotten) with DeLong's interval and a Mann-Whitney two-sample p-value, on the
  original model (where the deleted records were members) and on the unlearned one. Exact
  methods come out at chance by construction; a test checks it. Population-level attacks
  overstate forgetting (Hayes et al., SaTML 2025): :func:`ulira` tests each record against
  references trained with it and unlearned by the same method.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.models.recipes import TorchRecipe, check_indices
from miaudit.validation import is_int, is_real

__all__ = [
    "SISA",
    "ForgettingCheck",
    "deletion_request",
    "finetune",
    "gradient_ascent",
    "retrain",
    "ulira",
    "verify_forgetting",
]


def deletion_request(
    members: np.ndarray,
    labels: np.ndarray,
    *,
    fraction: float | None = None,
    klass: int | None = None,
    indices: Sequence[int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The records to delete from ``members`` (dataset indices, sorted).

    Exactly one of ``fraction`` (a seeded random share in (0, 1)), ``klass`` (every member
    of that class) or ``indices`` (dataset indices, all of them members). Deleting every
    member leaves nothing to train on and is refused.
    """
    members = np.asarray(members, np.int64)
    given = [
        name
        for name, v in (("fraction", fraction), ("klass", klass), ("indices", indices))
        if v is not None
    ]
    if len(given) != 1:
        raise InvalidAuditInput(
            f"deletion_request: give exactly one of fraction, klass, indices (got {given})"
        )
    if fraction is not None:
        if not is_real(fraction) or not 0 < fraction < 1:
            raise InvalidAuditInput(
                f"deletion_request: fraction must lie in (0, 1), got {fraction!r}"
            )
        k = max(1, round(fraction * members.size))
        chosen = np.random.default_rng(seed).choice(members, size=k, replace=False)
    elif klass is not None:
        present = np.unique(labels[members])
        if not is_int(klass) or klass not in present:
            raise InvalidAuditInput(
                f"deletion_request: class {klass!r} has no member; the members hold classes "
                f"{present.tolist()[:20]}"
            )
        chosen = members[labels[members] == klass]
    else:
        chosen = np.asarray(indices)
        if chosen.ndim != 1 or chosen.size == 0 or chosen.dtype.kind not in "iu":
            raise InvalidAuditInput("deletion_request: indices must be a non-empty list of ints")
        outside = np.setdiff1d(chosen, members)
        if outside.size:
            raise InvalidAuditInput(
                f"deletion_request: {outside.size} indices are not training members "
                f"(e.g. {outside[:5].tolist()})"
            )
    chosen = np.unique(chosen.astype(np.int64))
    if chosen.size >= members.size:
        raise InvalidAuditInput(
            "deletion_request: deleting every member leaves nothing to train on"
        )
    return chosen


@dataclass(frozen=True)
class Retrained:
    """An unlearned model, the seconds it took, and how many models were (re)trained."""

    model: Any
    seconds: float
    trainings: int
    remaining: np.ndarray


def retrain(recipe, dataset: Dataset, members: np.ndarray, deleted: np.ndarray, *, seed: int = 0):
    """Exact unlearning: train from scratch on the members that remain."""
    remaining = np.setdiff1d(members, deleted)
    start = time.perf_counter()
    trained = recipe.train(dataset, remaining, seed=seed)
    return Retrained(trained.model, time.perf_counter() - start, 1, remaining)


def _torch_fit(recipe: TorchRecipe, model, dataset: Dataset, indices: np.ndarray, seed: int):
    from miaudit.models.training import train_model

    train_model(model, dataset.x[indices], dataset.y[indices], recipe.training, seed=seed)
    return model


class SISA:
    """Sharded, isolated, sliced, aggregated training (Bourtoule et al., S&P 2021).

    Parameters
    ----------
    recipe : TorchRecipe
        How each shard's model trains; every slice stage trains ``recipe.training.epochs``
        epochs on the slices seen so far, starting from the previous stage's weights.
    n_shards, n_slices : int
    aggregate : ``"mean"`` (average probabilities) or ``"vote"`` (majority of labels)
    seed : int
    """

    def __init__(
        self,
        recipe: TorchRecipe,
        n_shards: int = 5,
        n_slices: int = 1,
        *,
        aggregate: str = "mean",
        seed: int = 0,
    ) -> None:
        problems = []
        if not isinstance(recipe, TorchRecipe):
            problems.append(f"recipe must be a TorchRecipe, got {type(recipe).__name__}")
        for name, value in (("n_shards", n_shards), ("n_slices", n_slices)):
            if not is_int(value) or value < 1:
                problems.append(f"{name} must be a positive int, got {value!r}")
        if aggregate not in ("mean", "vote"):
            problems.append(f"aggregate must be 'mean' or 'vote', got {aggregate!r}")
        raise_if_problems("SISA", problems)
        self.recipe, self.n_shards, self.n_slices = recipe, int(n_shards), int(n_slices)
        self.aggregate, self.seed = aggregate, int(seed)
        self.trainings = 0

    def fit(self, dataset: Dataset, members: np.ndarray) -> SISA:
        members = check_indices(members, dataset.n_records, "members")
        if members.size < self.n_shards * self.n_slices:
            raise InvalidAuditInput(
                f"SISA: {members.size} records cannot fill {self.n_shards} shards of "
                f"{self.n_slices} slices"
            )
        order = np.random.default_rng(self.seed).permutation(members)
        self.dataset = dataset
        self.shards = [
            np.array_split(s, self.n_slices) for s in np.array_split(order, self.n_shards)
        ]
        start = time.perf_counter()
        self.checkpoints: list[list[dict]] = []
        self.models = []
        for shard in range(self.n_shards):
            model, checkpoints = self._train_shard(shard, first_slice=0, start_state=None)
            self.models.append(model)
            self.checkpoints.append(checkpoints)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _shard_seed(self, shard: int, stage: int) -> int:
        return int(np.random.SeedSequence(self.seed, spawn_key=(shard, stage)).generate_state(1)[0])

    def _train_shard(self, shard: int, first_slice: int, start_state: dict | None):
        """Train shard ``shard`` from the checkpoint before ``first_slice``; return the
        model and the checkpoints after every slice stage."""
        from miaudit.models import build_model

        model = build_model(
            self.recipe.architecture,
            input_shape=self.dataset.input_shape,
            n_classes=self.dataset.n_classes,
            seed=self._shard_seed(shard, self.n_slices),  # the initial weights
            **self.recipe.arch_params,
        )
        if start_state is not None:
            model.load_state_dict(start_state)
        kept = list(self.checkpoints[shard][:first_slice]) if start_state is not None else []
        for stage in range(first_slice, self.n_slices):
            seen = np.concatenate(self.shards[shard][: stage + 1])
            if seen.size:  # a shard whose records were all deleted trains on nothing
                _torch_fit(self.recipe, model, self.dataset, seen, self._shard_seed(shard, stage))
                self.trainings += 1
            kept.append(copy.deepcopy(model.state_dict()))
        return model, kept

    def unlearn(self, deleted: np.ndarray) -> SISA:
        """A copy with ``deleted`` removed: only the shards that held them retrain, each from
        the checkpoint before its earliest affected slice."""
        deleted = np.asarray(deleted, np.int64)
        other = copy.copy(self)
        other.shards = [[np.setdiff1d(s, deleted) for s in shard] for shard in self.shards]
        other.models = list(self.models)
        other.checkpoints = [list(c) for c in self.checkpoints]
        other.trainings = 0
        start = time.perf_counter()
        retrained = []
        for shard, slices in enumerate(self.shards):
            hit = [i for i, s in enumerate(slices) if np.isin(s, deleted).any()]
            if not hit:
                continue
            first = hit[0]
            state = self.checkpoints[shard][first - 1] if first > 0 else None
            model, checkpoints = other._train_shard(shard, first, state)
            other.models[shard], other.checkpoints[shard] = model, checkpoints
            retrained.append(shard)
        other.unlearn_seconds_ = time.perf_counter() - start
        other.retrained_shards_ = retrained
        return other

    def target(self):
        """The ensemble as a target adapter: averaged probabilities, or labels by vote."""
        from miaudit.models.training import predict_logits
        from miaudit.targets import CallableTarget
        from miaudit.targets.adapters import _softmax

        live = [
            m
            for m, shard in zip(self.models, self.shards, strict=True)
            if sum(s.size for s in shard)
        ]  # shards left without records do not vote

        def answer(x: np.ndarray) -> np.ndarray:
            probs = [_softmax(predict_logits(m, x)) for m in live]
            if self.aggregate == "mean":
                return np.mean(probs, axis=0)
            counts = np.zeros((len(x), self.dataset.n_classes))
            for p in probs:  # a loop over the few shards, never over records
                counts[np.arange(len(x)), p.argmax(axis=1)] += 1
            return counts.argmax(axis=1)

        output = "probabilities" if self.aggregate == "mean" else "labels"
        return CallableTarget(
            answer,
            n_classes=self.dataset.n_classes,
            output=output,
            description=f"SISA ({self.n_shards} shards x {self.n_slices} slices, {self.aggregate})",
        )


def finetune(model, dataset: Dataset, remaining, deleted, seed: int, *, recipe, epochs: int = 2):
    """Approximate unlearning: a few more epochs on the remaining records only."""
    from miaudit.models.training import TrainingConfig, train_model

    config = TrainingConfig(**{**recipe.training.to_dict(), "epochs": epochs})
    tuned = copy.deepcopy(model)
    train_model(tuned, dataset.x[remaining], dataset.y[remaining], config, seed=seed)
    return tuned


def gradient_ascent(
    model, dataset: Dataset, remaining, deleted, seed: int, *, lr: float = 1e-3, steps: int = 5
):
    """Approximate unlearning: a few steps that *raise* the loss on the deleted records.

    Raises
    ------
    InvalidAuditInput
        ``lr`` or ``steps`` out of range, or the steps drove the weights to NaN or
        infinity (too large an ``lr`` for this model): a model that answers NaN would make
        every later check meaningless.
    """
    import torch
    import torch.nn.functional as F

    from miaudit.validation import MAX_COUNT, MAX_LR

    if not is_real(lr) or not 0 < lr <= MAX_LR:
        raise InvalidAuditInput(
            f"gradient_ascent: lr must be a positive number at most {MAX_LR:g}, got {lr!r}"
        )
    if not is_int(steps) or not 1 <= steps <= MAX_COUNT:
        raise InvalidAuditInput(
            f"gradient_ascent: steps must be an int in [1, {MAX_COUNT:,}], got {steps!r}"
        )
    tuned = copy.deepcopy(model)
    tuned.train()
    opt = torch.optim.SGD(tuned.parameters(), lr=lr)
    x = torch.as_tensor(dataset.x[deleted])
    y = torch.as_tensor(dataset.y[deleted])
    for _ in range(steps):
        opt.zero_grad()
        (-F.cross_entropy(tuned(x), y)).backward()
        opt.step()
    if not all(torch.isfinite(p).all() for p in tuned.parameters()):
        raise InvalidAuditInput(
            f"gradient_ascent: {steps} steps with lr {lr:g} drove the model's weights to NaN "
            "or infinity; choose a smaller lr (unlearning.methods[].lr)"
        )
    tuned.eval()
    return tuned


@dataclass(frozen=True)
class ForgettingCheck:
    """Can an attack tell the deleted records from never-seen ones on a model?"""

    attack: str
    auc: float
    auc_interval: tuple[float, float]
    p_value: float
    n_deleted: int
    n_never_seen: int
    deleted_scores: np.ndarray = field(repr=False)

    @classmethod
    def of(cls, attack: str, scores: np.ndarray, is_deleted: np.ndarray) -> ForgettingCheck:
        """AUC of the deleted records (``is_deleted``) against the others, DeLong's interval
        and a two-sided Mann-Whitney p-value."""
        from miaudit.evaluation import auc_interval

        auc, low, high = auc_interval(scores, is_deleted)
        p = float(mannwhitneyu(scores[is_deleted], scores[~is_deleted]).pvalue)
        n = int(is_deleted.sum())
        return cls(attack, auc, (low, high), p, n, int(is_deleted.size - n), scores[is_deleted])

    def to_dict(self) -> dict:
        return {
            "attack": self.attack,
            "auc": self.auc,
            "auc_interval": list(self.auc_interval),
            "p_value": self.p_value,
            "n_deleted": self.n_deleted,
            "n_never_seen": self.n_never_seen,
        }


def verify_forgetting(
    target,
    dataset: Dataset,
    deleted: np.ndarray,
    never_seen: np.ndarray,
    *,
    attacks: Sequence[str] = ("loss", "confidence", "gap"),
) -> list[ForgettingCheck]:
    """For each metric attack: AUC of deleted (as "members") against never-seen records on
    ``target`` with DeLong's interval, and a two-sided Mann-Whitney p-value."""
    from miaudit.attacks.metric import METRIC_ATTACKS
    from miaudit.signals import compute_signals

    deleted = np.asarray(deleted, np.int64)
    never_seen = np.asarray(never_seen, np.int64)
    if np.intersect1d(deleted, never_seen).size:
        raise InvalidAuditInput("verify_forgetting: deleted and never-seen records overlap")
    records = np.concatenate([deleted, never_seen])
    signals = compute_signals(target, dataset.x[records], dataset.y[records])
    is_deleted = np.arange(records.size) < deleted.size
    out = []
    for name in attacks:
        if name not in METRIC_ATTACKS:
            raise InvalidAuditInput(f"verify_forgetting: unknown metric attack {name!r}")
        signal, sign, access, _ = METRIC_ATTACKS[name]
        if target.access < access:
            continue
        scores = sign * np.asarray(getattr(signals, signal), np.float64)
        out.append(ForgettingCheck.of(name, scores, is_deleted))
    return out


def _scaled_logit(model, dataset: Dataset, records: np.ndarray) -> np.ndarray:
    """φ = log p_y − log(1 − p_y) of each record's true class (LiRA's statistic)."""
    from miaudit.signals import compute_signals
    from miaudit.targets import as_target

    target = model if hasattr(model, "access") else as_target(model, n_classes=dataset.n_classes)
    return np.asarray(
        compute_signals(target, dataset.x[records], dataset.y[records]).scaled_logit, np.float64
    )


def ulira(
    recipe,
    dataset: Dataset,
    members: np.ndarray,
    deleted: np.ndarray,
    never_seen: np.ndarray,
    unlearned_target,
    unlearn: Callable[..., Any],
    *,
    n_references: int = 4,
    seed: int = 0,
) -> ForgettingCheck:
    """U-LiRA (Hayes et al., "Inexact unlearning needs more careful evaluations", SaTML 2025):
    a per-record test of forgetting with reference models that were themselves trained and
    then unlearned by the same method.

    The evaluation records ``E = deleted ∪ never_seen`` are split in complementary halves over
    ``n_references`` models (each trains on the other members plus one half of ``E``, then
    unlearns that half with ``unlearn``), so every record of ``E`` has ``n_references / 2``
    references that trained on it and unlearned it and as many that never saw it. Each
    record's score on ``unlearned_target`` is LiRA's likelihood ratio between the two
    Gaussians of its scaled logit (a shared variance, as LiRA with few references), and the
    result is the AUC of deleted against never-seen records. An exact method makes the two
    reference groups one distribution, so it comes out at chance; an approximate one that
    leaves traces does not.

    ``unlearn(model, dataset, remaining, forget, seed) -> model`` (``finetune`` and
    ``gradient_ascent`` fit with their keywords bound; exact retraining is
    ``lambda m, d, r, f, s: recipe.train(d, r, seed=s).model``).
    """

    if not is_int(n_references) or n_references < 2 or n_references % 2:
        raise InvalidAuditInput(
            f"ulira: n_references must be an even int >= 2, got {n_references!r}"
        )
    deleted = np.asarray(deleted, np.int64)
    never_seen = np.asarray(never_seen, np.int64)
    evaluation = np.concatenate([deleted, never_seen])
    base = np.setdiff1d(members, deleted)  # the members every reference keeps
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(17,)))
    n_pairs = n_references // 2
    inside = np.zeros((n_references, evaluation.size), bool)
    for pair in range(n_pairs):
        half = rng.permutation(evaluation.size) < evaluation.size // 2
        inside[2 * pair], inside[2 * pair + 1] = half, ~half
    phi = np.empty((n_references, evaluation.size))
    for k in range(n_references):
        forget = evaluation[inside[k]]
        k_seed = int(np.random.SeedSequence(seed, spawn_key=(19, k)).generate_state(1)[0])
        trained = recipe.train(dataset, np.concatenate([base, forget]), seed=k_seed).model
        model = unlearn(trained, dataset, base, forget, k_seed)
        phi[k] = _scaled_logit(model, dataset, evaluation)
    target_phi = _scaled_logit(unlearned_target, dataset, evaluation)
    n_in = inside.sum(axis=0)
    mu_in = (phi * inside).sum(axis=0) / n_in
    mu_out = (phi * ~inside).sum(axis=0) / (n_references - n_in)
    residuals = np.where(inside, phi - mu_in, phi - mu_out)
    var = max(float(residuals.var()), 1e-12)  # one variance for every record
    scores = ((target_phi - mu_out) ** 2 - (target_phi - mu_in) ** 2) / (2 * var)
    is_deleted = np.arange(evaluation.size) < deleted.size
    return ForgettingCheck.of("u_lira", scores, is_deleted)
