"""The white-box attack of Nasr, Shokri and Houmansadr (IEEE S&P 2019).

The attacker holds the weights. For each record it computes the gradient of the loss with
respect to chosen layers' weights, the outputs of chosen layers, the loss and the one-hot
label (:mod:`miaudit.signals.gradients`), and an attack network
(:mod:`miaudit.attacks.nasr_network`) learns membership from them. Where it learns:

- ``train_on="references"`` (default): on the audit's reference models, which mimic the
  target (same recipe, same training-set size, complementary halves of the audited
  records; :mod:`miaudit.references`). Each reference's features on the audited records
  are labelled by whether it trained on them; the network then scores the target's
  features. This is the knowledge LiRA and RMIA have, so their results compare directly.
- ``train_on="shadow"``: the attacker trains ``n_shadow`` models by the target's
  recipe on halves of its population records, so it knows which records each one trained
  on; the network learns on their features and scores the target's. The attacker knows
  the training algorithm and has data from the same distribution, nothing of the target's
  membership. Each shadow trains on half the population (at most half the audited count),
  so a small population gives shadows smaller than the target, which overfit differently
  and weaken the attack (Location: 626 records against the target's 1,878).
- ``train_on="known_members"``: as in ML Privacy Meter v1, the attacker knows
  ``attack_percentage`` % of the audited members and as many non-members; the network
  learns on the target's own features of those and scores the others. Cross-fitted, so
  every audited record is scored once, by a network that never saw it.

With ``gradients_to_exploit=()`` and ``layers_to_exploit=(-1,)`` (the last layer's output,
i.e. the logits) the attack is ML Privacy Meter v1's black-box variant and needs only
logits access; anything else needs white-box access (a ``torch.nn.Module`` target).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator

from miaudit.attacks.nasr_network import OPTIMIZERS, WIDTHS, train_attack_network
from miaudit.attacks.protocol import Requirements, scores_of_fit
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.signals.evidence import Evidence
from miaudit.targets.adapters import AccessLevel
from miaudit.validation import is_int, is_real

__all__ = ["GradientNormAttack", "WhiteBoxAttack"]

_TRAIN_ON = ("references", "shadow", "known_members")


def _is_layer_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) or is_int(v) for v in value)


class WhiteBoxAttack(BaseEstimator):
    """Nasr et al.'s attack network on gradients, layer outputs, loss and label.

    Parameters
    ----------
    layers_to_exploit : sequence of int or str
        Layers whose outputs the attack reads: module names (``"features.3"``) or 1-based
        indices among the model's leaf modules (``-1``: the last, the logits). ML Privacy
        Meter v1's meaning.
    gradients_to_exploit : sequence of int or str
        Layers whose weight gradients the attack reads: names, or 1-based indices among
        the leaf modules that hold a weight (``-1``: the last).
    exploit_loss, exploit_label : bool
        Feed the loss, the one-hot label.
    optimizer : str
        ``sgd``, ``adam``, ``adadelta``, ``adagrad``, ``momentum``, ``rmsprop``.
    learning_rate : float
    epochs : int
    batch_size : int
        Records per training step, half members and half non-members.
    train_on : str
        ``"references"``, ``"shadow"`` or ``"known_members"`` (see the module docstring).
    attack_percentage : float in (0, 100)
        ``known_members`` only: the share of the audited members (and as many
        non-members) each network learns on.
    n_shadow : int
        ``shadow`` only: shadow models trained by the target's recipe.
    width : str
        ``"compact"`` or ``"v1"`` sizes of the gradient components.
    max_gradient_size : int
        Entries per layer and record kept; larger gradients are average-pooled.
    seed : int
    """

    family: ClassVar[str] = "whitebox"

    def __init__(
        self,
        *,
        layers_to_exploit: Sequence[int | str] = (-1,),
        gradients_to_exploit: Sequence[int | str] = (-1,),
        exploit_loss: bool = True,
        exploit_label: bool = True,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        epochs: int = 20,
        batch_size: int = 64,
        train_on: str = "references",
        attack_percentage: float = 50.0,
        n_shadow: int = 2,
        width: str = "compact",
        max_gradient_size: int = 65_536,
        seed: int = 0,
    ) -> None:
        self.layers_to_exploit = layers_to_exploit
        self.gradients_to_exploit = gradients_to_exploit
        self.exploit_loss = exploit_loss
        self.exploit_label = exploit_label
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.train_on = train_on
        self.attack_percentage = attack_percentage
        self.n_shadow = n_shadow
        self.width = width
        self.max_gradient_size = max_gradient_size
        self.seed = seed

    # -- protocol -----------------------------------------------------------------------

    @property
    def black_box(self) -> bool:
        """Only the logits (the last layer's output), loss and label: logits access."""
        return not tuple(self.gradients_to_exploit) and tuple(self.layers_to_exploit) in (
            (),
            (-1,),
        )

    @property
    def requirements(self) -> Requirements:
        access = AccessLevel.LOGITS if self.black_box else AccessLevel.WHITE_BOX
        if self.train_on == "known_members":
            return Requirements(access=access, membership=True)
        if self.train_on == "shadow":
            return Requirements(access=access, population=True, shadows=True)
        return Requirements(access=access, references=True)

    def default_label(self) -> str:
        kind = "blackbox" if self.black_box else "whitebox"
        suffix = {"references": "", "shadow": "_shadow", "known_members": "_known"}
        return f"nasr_{kind}{suffix.get(self.train_on, '')}"

    def check_params(self) -> None:
        problems: list[str] = []
        for field in ("layers_to_exploit", "gradients_to_exploit"):
            if not _is_layer_list(getattr(self, field)):
                problems.append(
                    f"{field} must be a list of layer names or indices, got "
                    f"{getattr(self, field)!r}"
                )
        if _is_layer_list(self.layers_to_exploit) and _is_layer_list(self.gradients_to_exploit):
            if not (
                self.layers_to_exploit
                or self.gradients_to_exploit
                or self.exploit_loss is True
                or self.exploit_label is True
            ):
                problems.append("nothing to exploit: give layers, gradients, the loss or the label")
        for field in ("exploit_loss", "exploit_label"):
            if not isinstance(getattr(self, field), bool):
                problems.append(f"{field} must be true or false, got {getattr(self, field)!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not is_real(self.learning_rate) or self.learning_rate <= 0:
            problems.append(f"learning_rate must be a number > 0, got {self.learning_rate!r}")
        for field in ("epochs", "batch_size", "n_shadow", "max_gradient_size"):
            value = getattr(self, field)
            if not is_int(value) or value < (2 if field == "batch_size" else 1):
                problems.append(f"{field} must be a positive int, got {value!r}")
        if self.train_on not in _TRAIN_ON:
            problems.append(f"train_on must be one of {_TRAIN_ON}, got {self.train_on!r}")
        p = self.attack_percentage
        if not is_real(p) or not 0 < p < 100:
            problems.append(f"attack_percentage must be a number in (0, 100), got {p!r}")
        if self.width not in WIDTHS:
            problems.append(f"width must be one of {tuple(WIDTHS)}, got {self.width!r}")
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        raise_if_problems("WhiteBoxAttack", problems)

    def check_model(self, module: Any) -> None:
        """Resolve the layer names and indices on the target's network (an error lists the
        layers there are), before anything is trained."""
        self.check_params()
        if not self.black_box:
            self._layer_names(module)

    # -- features -----------------------------------------------------------------------

    def _layer_names(self, module) -> tuple[list[str], list[str]]:
        from miaudit.signals.gradients import resolve_layers

        outputs = resolve_layers(
            module, self.layers_to_exploit, kind="output", field="layers_to_exploit"
        )
        grads = resolve_layers(
            module, self.gradients_to_exploit, kind="gradient", field="gradients_to_exploit"
        )
        return outputs, grads

    def _inputs(self, source: Any, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict:
        """The attack network's inputs for records ``x`` of a model (an ``nn.Module``) or,
        in the black-box variant, of a target that answers with logits."""
        from torch import nn

        inputs: dict[str, np.ndarray] = {}
        if isinstance(source, nn.Module):
            from miaudit.signals.gradients import whitebox_features

            outputs, grads = self._layer_names(source)
            feats = whitebox_features(
                source,
                x,
                y,
                output_layer_names=outputs,
                gradient_layer_names=grads,
                max_gradient_size=int(self.max_gradient_size),
            )
            inputs.update({f"out:{k}": v for k, v in feats.outputs.items()})
            inputs.update({f"grad:{k}": v for k, v in feats.gradients.items()})
            loss = feats.loss
        else:  # logits through the target's API
            from miaudit.signals.table import signals_from_logits

            logits = np.asarray(source.predict_logits(x), dtype=np.float64)
            loss = signals_from_logits(logits, np.asarray(y, np.int64)).loss
            if self.layers_to_exploit:
                inputs["out:logits"] = logits.astype(np.float32)
        if self.exploit_loss:
            inputs["loss"] = np.asarray(loss, np.float32).reshape(-1, 1)
        if self.exploit_label:
            inputs["label"] = np.eye(n_classes, dtype=np.float32)[np.asarray(y, np.int64)]
        return inputs

    def _target_source(self, evidence: Evidence) -> Any:
        if self.black_box:
            return evidence.target
        module = getattr(evidence.target, "module", None)
        if module is None:
            raise InvalidAuditInput(
                f"WhiteBoxAttack needs the target's weights (a torch.nn.Module), but "
                f"{evidence.target.description} has none; use gradients_to_exploit=[] and "
                "layers_to_exploit=[-1] for the black-box variant"
            )
        return module

    def _train(self, inputs: dict, is_member: np.ndarray, n_classes: int, seed: int):
        return train_attack_network(
            inputs,
            is_member,
            n_classes=n_classes,
            width=self.width,
            optimizer=self.optimizer,
            learning_rate=float(self.learning_rate),
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            seed=seed,
        )

    # -- fit / score --------------------------------------------------------------------

    def fit(self, evidence: Evidence) -> Self:
        """Learn membership (on shadow models, or on known audited members) and score the
        audited records."""
        self.check_params()
        if not isinstance(evidence, Evidence):
            raise InvalidAuditInput(
                f"WhiteBoxAttack.fit takes the audit's Evidence, got {type(evidence).__name__}"
            )
        data = evidence.dataset
        x, y = data.x[evidence.records], evidence.labels
        target_inputs = self._inputs(self._target_source(evidence), x, y, data.n_classes)
        if self.train_on == "known_members":
            self.scores_ = self._cross_fit(target_inputs, evidence, data.n_classes)
        else:
            if self.train_on == "references":
                train_inputs, member = self._reference_inputs(evidence, x, y)
            else:
                train_inputs, member = self._shadow_inputs(evidence)
            predict = self._train(train_inputs, member, data.n_classes, int(self.seed))
            self.scores_ = predict(target_inputs)
        self.records_ = np.asarray(evidence.records).copy()
        self.feature_bytes_ = int(sum(a.nbytes for a in target_inputs.values()))
        return self

    def score(self, evidence: Evidence) -> np.ndarray:
        return scores_of_fit(self, evidence)

    def _fold_pairs(
        self, is_member: np.ndarray, labels: np.ndarray, seed: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train rows, scored rows) per network: every row scored once, never by a
        network that trained on it; each network trains on about ``attack_percentage`` %
        of the members and of the non-members.

        Folds are stratified by membership *and* class. Stratified by membership alone, a
        fold with more members than non-members of some class leaves the other folds
        with fewer (the audit's split is balanced per class), so a network that learns
        "this class means member" scores the other folds backwards: below-chance AUC on a
        model that leaks nothing.
        """
        p = float(self.attack_percentage)
        rng = np.random.default_rng(seed)
        small = p <= 50
        k = max(2, round(100 / p) if small else round(100 / (100 - p)))
        fold = np.empty(is_member.size, np.int64)
        offset = 0
        for side in (True, False):
            for cls in np.unique(labels):
                rows = np.flatnonzero((is_member == side) & (labels == cls))
                # Continue the round-robin across groups, so fold sizes stay even.
                fold[rows[rng.permutation(rows.size)]] = (np.arange(rows.size) + offset) % k
                offset += rows.size
        pairs = []
        for j in range(k):
            if small:  # train on fold j, score fold j + 1
                pairs.append((np.flatnonzero(fold == j), np.flatnonzero(fold == (j + 1) % k)))
            else:  # train on all folds but j, score fold j
                pairs.append((np.flatnonzero(fold != j), np.flatnonzero(fold == j)))
        return pairs

    def _cross_fit(self, inputs: dict, evidence: Evidence, n_classes: int) -> np.ndarray:
        is_member = np.asarray(evidence.is_member, bool)
        scores = np.full(is_member.size, np.nan)
        pairs = self._fold_pairs(is_member, np.asarray(evidence.labels), int(self.seed))
        for j, (train, scored) in enumerate(pairs):
            if is_member[train].all() or not is_member[train].any():
                raise InvalidAuditInput(
                    "WhiteBoxAttack: a training fold lacks members or non-members; audit "
                    "more records or raise attack_percentage"
                )
            predict = self._train(
                {k: v[train] for k, v in inputs.items()},
                is_member[train],
                n_classes,
                int(self.seed) + j,
            )
            scores[scored] = predict({k: v[scored] for k, v in inputs.items()})
        assert np.isfinite(scores).all(), "every record is scored once"
        self.n_networks_ = len(pairs)
        return scores

    def _model_source(self, model: Any, n_classes: int) -> Any:
        from torch import nn

        if not isinstance(model, nn.Module):
            raise InvalidAuditInput(
                f"WhiteBoxAttack needs PyTorch reference or shadow models (a TorchRecipe), "
                f"got {type(model).__name__}"
            )
        if self.black_box:
            from miaudit.targets.adapters import TorchTarget

            return TorchTarget(model, n_classes=n_classes, access="logits")
        return model

    def _reference_inputs(
        self, evidence: Evidence, x: np.ndarray, y: np.ndarray
    ) -> tuple[dict, np.ndarray]:
        """Features of every reference model on the audited records, labelled by whether
        that reference trained on them."""
        refs = evidence.references
        if refs is None or not refs.models:
            raise InvalidAuditInput(
                "WhiteBoxAttack(train_on='references') found no reference models in the "
                "audit's evidence"
            )
        observed = refs.audited_references
        if not np.array_equal(observed.record_ids, evidence.records):
            raise InvalidAuditInput("WhiteBoxAttack: references observed other records")
        n_classes = evidence.dataset.n_classes
        parts = [
            self._inputs(self._model_source(m.model, n_classes), x, y, n_classes)
            for m in refs.models
        ]
        inputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        member = np.concatenate([observed.inclusion[k] for k in range(len(refs.models))])
        self.n_models_ = len(refs.models)
        return inputs, member

    def _shadow_inputs(self, evidence: Evidence) -> tuple[dict, np.ndarray]:
        """Features of ``n_shadow`` models trained by the recipe on halves of the
        population, with their known membership."""
        from miaudit.compute.pool import ReferencePool

        if evidence.recipe is None:
            raise InvalidAuditInput("WhiteBoxAttack(train_on='shadow') needs the target's recipe")
        population = np.sort(np.asarray(evidence.population, np.int64))
        size = min(population.size // 2, math.ceil(len(evidence.records) / 2))
        if size < 2:
            raise InvalidAuditInput(
                f"WhiteBoxAttack: {population.size} population records are too few for "
                "shadow models (each needs 2 x shadow size); add split.population"
            )
        splits, seeds = [], []
        for k in range(int(self.n_shadow)):
            ss = np.random.SeedSequence(int(self.seed), spawn_key=(7, k))
            perm = population[np.random.default_rng(ss).permutation(population.size)]
            splits.append((np.sort(perm[:size]), np.sort(perm[size : 2 * size])))
            seeds.append(int(ss.generate_state(1)[0]))
        pool = ReferencePool(
            evidence.recipe,
            evidence.dataset,
            population,
            n_models=len(splits),
            seed=int(self.seed),
            cache=evidence.cache,
            training_sets=[inside for inside, _ in splits],
            seeds=seeds,
        )
        models = pool.train()
        data = evidence.dataset
        parts: list[dict] = []
        member = []
        for (inside, outside), trained in zip(splits, models, strict=True):
            both = np.concatenate([inside, outside])
            source = self._model_source(trained.model, data.n_classes)
            parts.append(self._inputs(source, data.x[both], data.y[both], data.n_classes))
            member.append(np.arange(both.size) < inside.size)
        inputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        self.shadow_sizes_ = (size, len(splits))
        return inputs, np.concatenate(member)


class GradientNormAttack(BaseEstimator):
    """Threshold on the norm of a record's loss gradient: a model fits its members closely,
    so their gradients are small (Nasr et al. 2019, Fig. 6). The cheapest white-box signal:
    no attack network, no reference model; the score is minus the L2 norm of the gradient
    with respect to the chosen layers' weights (all of them concatenated).

    Parameters
    ----------
    layers : sequence of int or str
        Layers whose weight gradients count: names, or 1-based indices among the leaf
        modules that hold a weight (``-1``: the last). Empty: every such layer.
    """

    family: ClassVar[str] = "whitebox"

    def __init__(self, *, layers: Sequence[int | str] = (-1,)) -> None:
        self.layers = layers

    @property
    def requirements(self) -> Requirements:
        return Requirements(access=AccessLevel.WHITE_BOX)

    def default_label(self) -> str:
        return "gradient_norm"

    def check_params(self) -> None:
        if not _is_layer_list(self.layers):
            raise InvalidAuditInput(
                f"GradientNormAttack: layers must be a list of layer names or indices, got "
                f"{self.layers!r}"
            )

    def check_model(self, module: Any) -> None:
        from miaudit.signals.gradients import resolve_layers

        self.check_params()
        if self.layers:
            resolve_layers(module, self.layers, kind="gradient", field="layers")

    def fit(self, evidence: Evidence) -> Self:
        from miaudit.signals.gradients import gradient_norms

        self.check_params()
        module = getattr(evidence.target, "module", None)
        if module is None:
            raise InvalidAuditInput("GradientNormAttack needs the target's weights")
        x = evidence.dataset.x[evidence.records]
        norms, self.layer_names_ = gradient_norms(
            module, x, evidence.labels, list(self.layers) or None
        )
        self.scores_ = -np.sqrt((norms**2).sum(axis=1))
        self.records_ = np.asarray(evidence.records).copy()
        return self

    def score(self, evidence: Evidence) -> np.ndarray:
        return scores_of_fit(self, evidence)
