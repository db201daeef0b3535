"""Shadow-model attack of Shokri, Stronati, Song and Shmatikov ("Membership Inference Attacks
Against Machine Learning Models", S&P 2017).

The attacker trains ``k`` shadow models the way the target was trained, each on its own
sample of the attacker's records, and keeps for each a disjoint held-out sample of the same
size. Every shadow model's prediction vectors on its training records are labelled "in",
those on its held-out records "out". An attack model learns "in or out" from these vectors;
Shokri et al. train one per class (their §IV-D: the record's true class selects the attack
model), because a model's output distribution differs from class to class. At attack time
the target's prediction vector on ``(x, y)`` goes to attack model ``y``.

A class with too few shadow records of either kind gets no model of its own: its records are
scored by a pooled model trained on every class (with sorted probability vectors, which are
class-agnostic as in Salem et al., NDSS 2019), and the class is listed in
``classes_without_model_`` and in a warning, never dropped.

When the attacker owns no data like the target's, :mod:`miaudit.data.synthesis` makes some
(model-based, statistics-based, noisy; their §V-C); train the shadows on
``SyntheticData.as_dataset``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from miaudit.attacks.classifier import (
    ClassifierAttack,
    check_feature_names,
    check_param_grid,
    features_from_signals,
)
from miaudit.attacks.protocol import Requirements
from miaudit.attacks.shadow_data import SHADOW_DATA, check_shadow_source, shadow_training_data
from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.signals.evidence import Evidence
from miaudit.signals.table import signals_from_proba
from miaudit.targets.adapters import (
    AccessLevel,
    Target,
    as_target,
    check_probabilities,
    require_access,
)
from miaudit.validation import is_int, is_real

if TYPE_CHECKING:  # PyTorch loads when a shadow model or torch attack model is trained
    from miaudit.models.recipes import Recipe

__all__ = [
    "ATTACK_MODELS",
    "PerClassMetrics",
    "ShadowCoverageWarning",
    "ShadowModelAttack",
    "per_class_metrics",
]

log = logging.getLogger(__name__)

ATTACK_MODELS = ("rf", "lr", "mlp", "torch_mlp")
"""Attack-model kinds: scikit-learn random forest, logistic regression and MLP (through
:class:`~miaudit.attacks.ClassifierAttack`), or a small PyTorch fully-connected network."""

# Search spaces of the scikit-learn attack models, single values (no search). The forest is
# grown deeper than MindArmour's max_depth=2 default: a per-class model sees a few hundred
# prediction vectors and the in/out boundary is not a threshold on one coordinate.
_SKLEARN_DEFAULTS: dict[str, dict[str, list]] = {
    "rf": {"n_estimators": [100], "max_depth": [None], "min_samples_leaf": [5]},
    "lr": {"C": [1.0], "max_iter": [1000]},
    "mlp": {"hidden_layer_sizes": [(64,)], "max_iter": [500]},
}
# The attack network of Shokri et al.'s code: one hidden layer of 64 units.
_TORCH_DEFAULTS: dict[str, Any] = {
    "hidden": 64,
    "epochs": 80,
    "lr": 1e-3,
    "batch_size": 128,
    "weight_decay": 0.0,
}

ProgressFn = Callable[[int, int, dict], None]


class ShadowCoverageWarning(UserWarning):
    """Some classes had too few shadow records to train their own attack model; their
    records are scored by the pooled model (see ``classes_without_model_``)."""


# ------------------------------------------------------------------ the torch attack model


class _TorchMLPAttack:
    """A small fully-connected binary classifier: standardise, ``d → hidden`` tanh, ``→ 1``.

    Trained with Adam on the binary cross-entropy, mini-batches drawn from a seeded
    generator; weights initialised under ``torch.random.fork_rng`` so the caller's global
    torch state is untouched. Same ``fit`` / ``score`` as :class:`ClassifierAttack`.
    """

    def __init__(
        self,
        *,
        hidden: int,
        epochs: int,
        lr: float,
        batch_size: int,
        weight_decay: float,
        seed: int,
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.seed = seed

    def fit(self, features: np.ndarray, is_member: np.ndarray) -> Self:
        import torch
        from torch import nn

        f = np.asarray(features, dtype=np.float64)
        self.mean_ = f.mean(axis=0)
        std = f.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        x = torch.from_numpy(((f - self.mean_) / self.scale_).astype(np.float32))
        t = torch.from_numpy(np.asarray(is_member, dtype=np.float32))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = nn.Sequential(
                nn.Linear(x.shape[1], self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1)
            )
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n = x.shape[0]
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=gen)
            for lo in range(0, n, self.batch_size):
                batch = order[lo : lo + self.batch_size]
                loss = nn.functional.binary_cross_entropy_with_logits(
                    net(x[batch]).squeeze(1), t[batch]
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        net.eval()
        self.net_ = net
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        import torch

        f = (np.asarray(features, dtype=np.float64) - self.mean_) / self.scale_
        with torch.inference_mode():
            logit = self.net_(torch.from_numpy(f.astype(np.float32))).squeeze(1).double()
        # float64 sigmoid: float32 would round confident logits to exactly 1 and tie them.
        return torch.sigmoid(logit).numpy()


# ------------------------------------------------------------------------------ the attack


class ShadowModelAttack(BaseEstimator):
    """Shadow-model membership inference (Shokri et al., S&P 2017).

    Parameters
    ----------
    n_shadow : int, default 10
        Shadow models to train (at least 1).
    recipe : Recipe, optional
        How to train a shadow model. None: the recipe passed to :meth:`fit` (the target's,
        the paper's assumption that the attacker knows the training procedure).
    attack_model : {"rf", "lr", "mlp", "torch_mlp"}, default "rf"
        Kind of the attack models: scikit-learn random forest, logistic regression or MLP
        (each through :class:`~miaudit.attacks.ClassifierAttack`, features standardised),
        or ``"torch_mlp"``, a PyTorch network with one tanh hidden layer of 64 units as in
        the authors' code.
    attack_params : dict, optional
        scikit-learn kinds: a search space ``{parameter: [values]}`` merged over the
        defaults (a single value each: no search), see
        :func:`~miaudit.attacks.check_param_grid`. ``"torch_mlp"``: any of ``hidden``,
        ``epochs``, ``lr``, ``batch_size``, ``weight_decay`` (scalars).
    per_class : bool, default True
        One attack model per class (the paper's design). False: one pooled model for all.
    disjoint : bool, default False
        Whether shadow models use disjoint records. False: each draws its training and
        held-out samples independently from all the attacker's records (samples of
        different shadows overlap). True: all ``2 · n_shadow`` samples are disjoint, which
        needs ``2 · n_shadow · shadow_size`` attacker records.
    shadow_size : int, optional
        Training records per shadow model (and as many held out). Default: the largest
        that fits, ``n // 2`` (or ``n // (2 · n_shadow)`` when disjoint) for ``n`` attacker
        records. Shokri et al. give each shadow as many records as the target had.
    features : sequence of str, optional
        Attack features (names of :data:`~miaudit.attacks.FEATURES` computable from
        probabilities) for both per-class and pooled models. None: the paper's prediction
        vector, raw (``"probabilities"``) for per-class models and sorted
        (``"sorted_probabilities"``) for the pooled model.
    min_class_records : int, default 5
        A class needs at least this many "in" and this many "out" shadow records for its
        own attack model (at least 2).
    seed : int, default 0
        Seeds the shadow samples, shadow training and the attack models.
    n_jobs : int, default 1
        Parallel fits of a scikit-learn attack-model search.
    shadow_data : {"real", "noisy", "statistics", "synthetic"}, default "real"
        In an audit (``fit(evidence)``): what the shadow models train on, as Shokri et al.
        (§V-C) vary it: the population records, the same with ``noise`` of the features
        flipped, records drawn from the population's marginals, or records synthesised by
        hill climbing on the target's answers (see :mod:`miaudit.attacks.shadow_data`).
    noise : float, default 0.1
        Share of features perturbed for ``shadow_data="noisy"``.
    synthesis : dict, optional
        Options of the model-based synthesis (``shadow_data="synthetic"``).

    Attributes
    ----------
    recipe_ : Recipe
        The recipe the shadow models were trained with.
    n_shadow_ : int
    shadow_in_, shadow_out_ : list of (shadow_size,) int64
        Training and held-out records (indices into the fit data set) of each shadow model.
    shadow_seeds_ : (n_shadow,) int64
        Training seed of each shadow model.
    shadow_train_accuracies_, shadow_test_accuracies_ : (n_shadow,) float64
        Accuracy of each shadow model on its training and held-out records.
    shadow_train_accuracy_, shadow_test_accuracy_ : float
        Their means.
    n_cached_ : int
        Shadow models loaded from the cache instead of trained.
    n_classes_ : int
    class_counts_ : (n_classes, 2) int64
        "in" and "out" shadow records per class.
    attack_models_ : dict[int, model]
        The per-class attack models (empty when ``per_class`` is False).
    pooled_model_ : model or None
        The pooled attack model; fitted when ``per_class`` is False or some class has no
        model of its own.
    classes_without_model_ : tuple of int
        Classes (of ``range(n_classes_)``) scored by the pooled model because their shadow
        records were too few; empty when ``per_class`` is False.
    features_per_class_, features_pooled_ : tuple of str
    n_attack_records_ : int
        Prediction vectors the attack models learned from (``2 · n_shadow · shadow_size``).

    Notes
    -----
    Shadow models are models of a :class:`~miaudit.compute.ReferencePool` on the attacker's
    records (``training_sets`` = each shadow's "in" sample, with its seed): the training
    path of the reference models (``recipe.train``, or the batched ensemble for small
    MLPs) and, when a :class:`~miaudit.compute.cache.ModelCache` is given, the same cache
    under ``cache_key(recipe, data, in, s)``, so a rerun (or a larger ``n_shadow``: shadow
    ``i`` depends on ``seed`` and ``i`` only, unless ``disjoint``) trains none twice.
    """

    family: ClassVar[str] = "shadow"

    def __init__(
        self,
        *,
        n_shadow: int = 10,
        recipe: Recipe | None = None,
        attack_model: str = "rf",
        attack_params: dict | None = None,
        per_class: bool = True,
        disjoint: bool = False,
        shadow_size: int | None = None,
        features: Sequence[str] | None = None,
        min_class_records: int = 5,
        seed: int = 0,
        n_jobs: int = 1,
        shadow_data: str = "real",
        noise: float = 0.1,
        synthesis: dict | None = None,
    ) -> None:
        self.shadow_data = shadow_data
        self.noise = noise
        self.synthesis = synthesis
        self.n_shadow = n_shadow
        self.recipe = recipe
        self.attack_model = attack_model
        self.attack_params = attack_params
        self.per_class = per_class
        self.disjoint = disjoint
        self.shadow_size = shadow_size
        self.features = features
        self.min_class_records = min_class_records
        self.seed = seed
        self.n_jobs = n_jobs

    @property
    def required_access(self) -> AccessLevel:
        """Shadow attacks read the target's prediction vectors: probability access."""
        return AccessLevel.PROBABILITIES

    @property
    def requirements(self) -> Requirements:
        # Every kind of shadow data starts from the population: the records themselves,
        # their noisy copies or marginals, or (synthetic) its size per class.
        return Requirements(AccessLevel.PROBABILITIES, population=True, shadows=True)

    def check_params(self) -> None:
        """Raise, naming each bad parameter, before any shadow model is trained."""
        problems: list[str] = []
        self._check_settings(problems)
        self._feature_sets(problems)
        self._attack_settings(problems)
        if self.shadow_data not in SHADOW_DATA:
            problems.append(
                f"shadow_data must be one of {list(SHADOW_DATA)}, got {self.shadow_data!r}"
            )
        if not is_real(self.noise) or not 0 <= self.noise <= 1:
            problems.append(f"noise must be a number in [0, 1], got {self.noise!r}")
        if self.synthesis is not None and not isinstance(self.synthesis, Mapping):
            problems.append(
                f"synthesis must be a mapping of options or None, got {self.synthesis!r}"
            )
        raise_if_problems("ShadowModelAttack", problems)

    def check_dataset(self, dataset: Dataset) -> None:
        """Raise, before any model is trained, when the shadow data cannot be made from
        ``dataset``: a non-real source on images, or model-based synthesis options that
        the search would refuse (:func:`~miaudit.attacks.shadow_data.check_shadow_source`,
        the checks of :func:`~miaudit.attacks.shadow_data.shadow_training_data`)."""
        try:
            check_shadow_source(self.shadow_data, dataset, self.synthesis, int(self.seed))
        except InvalidAuditInput as error:
            raise InvalidAuditInput(f"ShadowModelAttack: {error}") from None

    def default_label(self) -> str:
        return f"shadow_{self.shadow_data}"

    def describe(self) -> dict:
        """Facts the report shows next to the target's (after ``fit(evidence)``)."""
        check_is_fitted(self, "attack_models_")
        return {
            **getattr(self, "shadow_data_info_", {}),
            "n_shadow": int(self.n_shadow),
            "mean_train_accuracy": float(np.mean(self.shadow_train_accuracy_)),
            "mean_test_accuracy": float(np.mean(self.shadow_test_accuracy_)),
            "classes_without_model": [int(c) for c in self.classes_without_model_],
        }

    # -- validation -----------------------------------------------------------------------

    def _feature_sets(self, problems: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if self.features is None:
            return ("probabilities",), ("sorted_probabilities",)
        names = check_feature_names(self.features, problems)
        return names, names

    def _attack_settings(self, problems: list[str]) -> dict[str, Any]:
        """The attack model's parameters after merging over the defaults."""
        kind = self.attack_model
        if kind not in ATTACK_MODELS:
            problems.append(f"attack_model must be one of {ATTACK_MODELS}, got {kind!r}")
            return {}
        given = self.attack_params
        if given is not None and not isinstance(given, Mapping):
            problems.append(f"attack_params must be a dict or None, got {type(given).__name__}")
            return {}
        given = dict(given or {})
        if kind != "torch_mlp":
            merged = {**_SKLEARN_DEFAULTS[kind], **given}
            _, grid_problems = check_param_grid(kind, merged, where="attack_params")
            problems.extend(grid_problems)
            return merged
        unknown = sorted(set(given) - set(_TORCH_DEFAULTS), key=str)
        if unknown:
            problems.append(
                f"attack_params: unknown {', '.join(map(repr, unknown))} for 'torch_mlp'; "
                f"allowed: {', '.join(_TORCH_DEFAULTS)}"
            )
        merged = {**_TORCH_DEFAULTS, **{k: v for k, v in given.items() if k in _TORCH_DEFAULTS}}
        for name in ("hidden", "epochs", "batch_size"):
            if not is_int(merged[name]) or merged[name] < 1:
                problems.append(
                    f"attack_params['{name}'] must be an int >= 1, got {merged[name]!r}"
                )
        if not is_real(merged["lr"]) or merged["lr"] <= 0:
            problems.append(f"attack_params['lr'] must be a positive number, got {merged['lr']!r}")
        if not is_real(merged["weight_decay"]) or merged["weight_decay"] < 0:
            problems.append(
                "attack_params['weight_decay'] must be a non-negative number, got "
                f"{merged['weight_decay']!r}"
            )
        return merged

    def _check_settings(self, problems: list[str]) -> None:
        if not is_int(self.n_shadow) or self.n_shadow < 1:
            problems.append(f"n_shadow must be an int >= 1, got {self.n_shadow!r}")
        for name in ("per_class", "disjoint"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                problems.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.shadow_size is not None and (not is_int(self.shadow_size) or self.shadow_size < 1):
            problems.append(f"shadow_size must be None or an int >= 1, got {self.shadow_size!r}")
        if not is_int(self.min_class_records) or self.min_class_records < 2:
            problems.append(
                f"min_class_records must be an int >= 2, got {self.min_class_records!r}"
            )
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        if not is_int(self.n_jobs) or not (self.n_jobs == -1 or self.n_jobs >= 1):
            problems.append(f"n_jobs must be -1 or a positive int, got {self.n_jobs!r}")

    def _make_model(self, settings: dict[str, Any], names: tuple[str, ...]) -> Any:
        if self.attack_model == "torch_mlp":
            return _TorchMLPAttack(**settings, seed=int(self.seed))
        cv = min(3, int(self.min_class_records))
        return ClassifierAttack(
            method=self.attack_model,
            params=settings,
            features=names,
            cv=cv,
            seed=int(self.seed),
            n_jobs=self.n_jobs,
        )

    # -- fit ------------------------------------------------------------------------------

    def fit(
        self,
        dataset: Dataset | Evidence,
        attacker_indices: np.ndarray | None = None,
        *,
        recipe: Recipe | None = None,
        cache: Any = None,
        executor: Any = None,
        progress: ProgressFn | None = None,
    ) -> Self:
        """Train the shadow models, then the attack models on their answers.

        Parameters
        ----------
        dataset : Dataset
            Holds the attacker's records (real, noisy or synthetic; see
            :mod:`miaudit.data.synthesis`). Never the target's audited records.
        attacker_indices : (n,) int array
            Records of ``dataset`` the attacker owns; shadow samples are drawn from them.
        recipe : Recipe, optional
            The target's recipe; used when the ``recipe`` parameter is None.
        cache : ModelCache, optional
            Where shadow models are looked up before training and stored after.
        executor : executor, optional
            Where the shadow models train (:mod:`miaudit.compute.executors`; in an audit,
            the references' executor). Default: in this process.
        progress : callable, optional
            ``progress(done, n_shadow, info)`` after each shadow model; ``info`` has
            ``shadow``, ``cached``, ``train_accuracy``, ``test_accuracy``, ``seconds``.

        Returns
        -------
        self

        Raises
        ------
        InvalidAuditInput
            Listing every problem: settings, recipe, indices, too few attacker records.

        Warns
        -----
        ShadowCoverageWarning
            When some class gets no attack model of its own (see
            ``classes_without_model_``).
        """
        if isinstance(dataset, Evidence):  # the audit protocol: shadows on the attacker's data
            evidence = dataset
            step = evidence.on_step
            data, indices, info = shadow_training_data(
                self.shadow_data,
                evidence.target,
                evidence.dataset,
                evidence.population,
                noise=float(self.noise),
                synthesis=self.synthesis,
                seed=evidence.seed,
                progress=None if step is None else lambda d, t: step("synthesis", d, t, {}),
            )
            self.fit(
                data,
                indices,
                recipe=evidence.recipe,
                cache=evidence.cache,
                executor=evidence.executor,
                progress=None if step is None else lambda d, t, i: step("shadow models", d, t, i),
            )
            self.shadow_data_info_ = info
            return self
        from miaudit.compute.pool import ReferencePool
        from miaudit.models.recipes import Recipe, check_indices

        problems: list[str] = []
        self._check_settings(problems)
        names_class, names_pooled = self._feature_sets(problems)
        settings = self._attack_settings(problems)
        chosen = self.recipe if self.recipe is not None else recipe
        if chosen is None:
            problems.append(
                "no recipe: pass the target's recipe to fit(recipe=...) or set the recipe parameter"
            )
        elif not isinstance(chosen, Recipe):
            problems.append(
                f"recipe must be a Recipe (TorchRecipe, SklearnRecipe), got {type(chosen).__name__}"
            )
        if cache is not None and not (hasattr(cache, "get") and hasattr(cache, "put")):
            problems.append(f"cache must be a ModelCache or None, got {type(cache).__name__}")
        if not isinstance(dataset, Dataset):
            problems.append(f"dataset must be a miaudit Dataset, got {type(dataset).__name__}")
            raise_if_problems("ShadowModelAttack", problems)
        pool = None
        try:
            pool = check_indices(attacker_indices, dataset.n_records, "attacker_indices")
        except InvalidAuditInput as exc:
            problems.append(str(exc))
        size = self._shadow_size(pool, problems)
        raise_if_problems("ShadowModelAttack", problems)
        assert pool is not None and size is not None and chosen is not None
        chosen.validate(dataset)

        n_shadow = int(self.n_shadow)
        n_classes = int(dataset.n_classes)
        splits = self._draw_splits(pool, size, n_shadow)
        seeds = np.array(
            [
                int(np.random.SeedSequence(int(self.seed), spawn_key=(1, k)).generate_state(1)[0])
                for k in range(n_shadow)
            ],
            dtype=np.int64,
        )
        # The shadow models are pool models on the attacker's records: one training path
        # (recipe.train, or the batched ensemble for small MLPs) and one cache with the
        # reference models, under the same keys (recipe, data, training records, seed).
        shadow_pool = ReferencePool(
            chosen,
            dataset,
            pool,
            n_models=n_shadow,
            seed=int(self.seed),
            cache=cache,
            training_sets=[inside for inside, _ in splits],
            seeds=[int(s) for s in seeds],
            executor=executor,
        )

        def report(done: int, total: int, info: dict) -> None:
            if progress is not None:
                progress(
                    done,
                    total,
                    {
                        "shadow": info["model"],
                        "cached": info["from_cache"],
                        "train_accuracy": info["train_accuracy"],
                        "test_accuracy": info["test_accuracy"],
                        "seconds": info["seconds"],
                    },
                )

        shadows = shadow_pool.train(progress=report)
        n_cached = sum(bool(shadow_pool.model_info(k)["from_cache"]) for k in range(n_shadow))
        probas, labels, member = [], [], []
        train_acc = np.zeros(n_shadow)
        test_acc = np.zeros(n_shadow)
        for k, (inside, outside) in enumerate(splits):  # answers of each shadow model
            model = as_target(shadows[k].model, n_classes=n_classes)
            both = np.concatenate([inside, outside])
            proba = np.asarray(model.predict_proba(dataset.x[both]), dtype=np.float64)
            y = dataset.y[both]
            is_in = np.arange(both.size) < inside.size
            correct = proba.argmax(axis=1) == y
            train_acc[k] = correct[is_in].mean()
            test_acc[k] = correct[~is_in].mean()
            probas.append(proba)
            labels.append(y)
            member.append(is_in)
            log.debug(
                "shadow %d/%d: train acc %.3f, test acc %.3f",
                k + 1,
                n_shadow,
                train_acc[k],
                test_acc[k],
            )

        p = np.concatenate(probas)
        y = np.concatenate(labels).astype(np.int64)
        m = np.concatenate(member)
        table = signals_from_proba(p, y)
        counts = np.stack(
            [np.bincount(y[m], minlength=n_classes), np.bincount(y[~m], minlength=n_classes)],
            axis=1,
        )

        attack_models: dict[int, Any] = {}
        without: tuple[int, ...] = ()
        if self.per_class:
            enough = counts.min(axis=1) >= self.min_class_records
            without = tuple(int(c) for c in np.flatnonzero(~enough))
            f_class = features_from_signals(
                table, names_class, n_classes=n_classes, source="the shadow models"
            )
            for c in np.flatnonzero(enough):  # one attack model per class
                rows = y == c
                attack_models[int(c)] = self._make_model(settings, names_class).fit(
                    f_class[rows], m[rows]
                )
            if without:
                listed = ", ".join(
                    f"{c} ({counts[c, 0]} in / {counts[c, 1]} out)" for c in without[:10]
                )
                more = f" and {len(without) - 10} more" if len(without) > 10 else ""
                warnings.warn(
                    f"ShadowModelAttack: {len(without)} of {n_classes} classes have fewer than "
                    f"{self.min_class_records} 'in' or 'out' shadow records and no attack "
                    f"model of their own; the pooled model scores their records: classes "
                    f"{listed}{more}",
                    ShadowCoverageWarning,
                    stacklevel=2,
                )
        pooled = None
        if not self.per_class or without:
            f_pooled = features_from_signals(
                table, names_pooled, n_classes=n_classes, source="the shadow models"
            )
            pooled = self._make_model(settings, names_pooled).fit(f_pooled, m)

        self.recipe_ = chosen
        self.n_shadow_ = n_shadow
        self.shadow_in_ = [s[0] for s in splits]
        self.shadow_out_ = [s[1] for s in splits]
        self.shadow_seeds_ = seeds
        self.shadow_train_accuracies_ = train_acc
        self.shadow_test_accuracies_ = test_acc
        self.shadow_train_accuracy_ = float(train_acc.mean())
        self.shadow_test_accuracy_ = float(test_acc.mean())
        self.n_cached_ = n_cached
        self.n_classes_ = n_classes
        self.class_counts_ = counts.astype(np.int64)
        self.features_per_class_ = tuple(names_class)
        self.features_pooled_ = tuple(names_pooled)
        self.n_attack_records_ = int(m.size)
        self.classes_without_model_ = without
        self.pooled_model_ = pooled
        self.attack_models_ = attack_models
        return self

    def _shadow_size(self, pool: np.ndarray | None, problems: list[str]) -> int | None:
        if pool is None or not is_int(self.n_shadow) or self.n_shadow < 1:
            return None
        n = pool.size
        groups = 2 * int(self.n_shadow) if self.disjoint else 2
        size = n // groups if self.shadow_size is None else self.shadow_size
        if not is_int(size) or size < 1 or size * groups > n:
            how = (
                f"disjoint=True needs 2 x n_shadow x shadow_size = {groups} x {size} records"
                if self.disjoint
                else f"each shadow model needs 2 x shadow_size = 2 x {size} records"
            )
            problems.append(
                f"not enough attacker records: {how}, but attacker_indices holds {n}; "
                "lower shadow_size or n_shadow, or set disjoint=False"
            )
            return None
        if is_int(self.min_class_records) and int(self.n_shadow) * size < self.min_class_records:
            problems.append(
                f"the shadow models hold {int(self.n_shadow) * size} 'in' records in all, "
                f"fewer than min_class_records={self.min_class_records}"
            )
            return None
        return int(size)

    def _draw_splits(
        self, pool: np.ndarray, size: int, n_shadow: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(training, held-out) indices of every shadow model, each sorted.

        Shadow ``k`` draws from ``SeedSequence(seed, spawn_key=(0, k))``, so it does not
        depend on ``n_shadow`` (a larger pool reuses the cached models); disjoint samples
        are consecutive blocks of one permutation drawn from ``spawn_key=(2,)``.
        """
        pool = np.sort(pool)
        if self.disjoint:
            rng = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(2,)))
            perm = pool[rng.permutation(pool.size)]
            blocks = perm[: 2 * n_shadow * size].reshape(n_shadow, 2, size)
            return [(np.sort(b[0]), np.sort(b[1])) for b in blocks]
        out = []
        for k in range(n_shadow):
            rng = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(0, k)))
            perm = pool[rng.permutation(pool.size)[: 2 * size]]
            out.append((np.sort(perm[:size]), np.sort(perm[size:])))
        return out

    # -- score ----------------------------------------------------------------------------

    def score(
        self, target_outputs_proba: np.ndarray | Evidence, labels: np.ndarray | None = None
    ) -> np.ndarray:
        """Membership probability of each record from the target's prediction vector.

        Parameters
        ----------
        target_outputs_proba : (n, n_classes) array of float
            The target's probabilities on the audited records (rows sum to 1).
        labels : (n,) int array
            True class of each record: it selects the attack model.

        Returns
        -------
        (n,) float64
            In [0, 1]; higher = more likely a member.
        """
        if isinstance(target_outputs_proba, Evidence):
            signals = target_outputs_proba.signals
            if signals.log_proba is None:
                raise InvalidAuditInput("ShadowModelAttack needs the target's probabilities")
            target_outputs_proba, labels = np.exp(signals.log_proba), signals.labels
        check_is_fitted(self, "attack_models_")
        problems: list[str] = []
        lab = np.asarray(labels)
        p = np.asarray(target_outputs_proba)
        if p.ndim != 2 or p.shape[1] != self.n_classes_:
            problems.append(
                f"target_outputs_proba must be (n, {self.n_classes_}), got shape {p.shape}"
            )
        if lab.ndim != 1 or (lab.size and lab.dtype.kind not in "iu"):
            problems.append(f"labels must be a 1-d integer array, got {lab.dtype} {lab.shape}")
        elif lab.size and (lab.min() < 0 or lab.max() >= self.n_classes_):
            problems.append(
                f"labels must lie in [0, {self.n_classes_}), found [{lab.min()}, {lab.max()}]"
            )
        elif p.ndim == 2 and lab.size != p.shape[0]:
            problems.append(f"target_outputs_proba has {p.shape[0]} rows but labels {lab.size}")
        raise_if_problems("ShadowModelAttack.score", problems)
        p = check_probabilities(p, lab.size, self.n_classes_, "ShadowModelAttack.score")
        lab = lab.astype(np.int64)
        table = signals_from_proba(p, lab)
        scores = np.full(lab.size, np.nan)
        own = np.isin(lab, list(self.attack_models_))
        if own.any():
            f = features_from_signals(
                table, self.features_per_class_, n_classes=self.n_classes_, source="the target"
            )
            for c, model in self.attack_models_.items():  # one call per class, not per record
                rows = lab == c
                if rows.any():
                    scores[rows] = model.score(f[rows])
        if (~own).any():
            assert self.pooled_model_ is not None, "a class without a model needs the pool"
            f = features_from_signals(
                table, self.features_pooled_, n_classes=self.n_classes_, source="the target"
            )
            scores[~own] = self.pooled_model_.score(f[~own])
        assert np.isfinite(scores).all(), "every record must get a score"
        return scores.astype(np.float64)

    def score_target(self, target: Target, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Query ``target`` for probabilities on ``x`` (one call) and :meth:`score` them.

        Raises
        ------
        AccessLevelError
            A label-only target.
        """
        check_is_fitted(self, "attack_models_")
        require_access(target, AccessLevel.PROBABILITIES, "the shadow-model attack")
        return self.score(target.predict_proba(x), labels)


# --------------------------------------------------------------------- per-class metrics


@dataclass(frozen=True)
class PerClassMetrics:
    """Precision and recall of hard decisions ``score >= threshold``, per class.

    Shokri et al. report attack precision and recall per class (their Figs. 4-5). A value
    that is undefined (precision without predicted members, recall without members) is
    -1, the convention of :class:`~miaudit.evaluation.ThresholdMetrics`.

    Attributes
    ----------
    threshold : float
    classes : (C,) int64
    n_members, n_nonmembers, n_predicted_members : (C,) int64
    precision, recall : (C,) float64
    overall_precision, overall_recall : float
        Over all records.
    """

    threshold: float
    classes: np.ndarray
    n_members: np.ndarray
    n_nonmembers: np.ndarray
    n_predicted_members: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    overall_precision: float
    overall_recall: float


def per_class_metrics(
    scores: np.ndarray,
    is_member: np.ndarray,
    labels: np.ndarray,
    threshold: float = 0.5,
    *,
    n_classes: int | None = None,
) -> PerClassMetrics:
    """Per-class precision and recall of the decisions ``scores >= threshold``.

    Parameters
    ----------
    scores : (n,) float
    is_member : (n,) bool
    labels : (n,) int
    threshold : float
        0.5 for an attack model's membership probability, as in Shokri et al.
    n_classes : int, optional
        List classes ``0 .. n_classes - 1`` (absent ones with counts 0 and -1 metrics);
        default the classes present in ``labels``.

    Returns
    -------
    PerClassMetrics
    """
    problems: list[str] = []
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(is_member)
    lab = np.asarray(labels)
    if s.ndim != 1 or not np.isfinite(s).all():
        problems.append(f"scores must be a 1-d array of finite numbers, got shape {s.shape}")
    if m.shape != s.shape or not (m.dtype == np.bool_ or np.isin(m, (0, 1)).all()):
        problems.append(f"is_member must be {s.shape} booleans, got {m.dtype} {m.shape}")
    if lab.shape != s.shape or (lab.size and lab.dtype.kind not in "iu"):
        problems.append(f"labels must be {s.shape} integers, got {lab.dtype} {lab.shape}")
    elif lab.size and lab.min() < 0:
        problems.append(f"labels must be >= 0, found {lab.min()}")
    if not is_real(threshold):
        problems.append(f"threshold must be a finite number, got {threshold!r}")
    if n_classes is not None and (not is_int(n_classes) or n_classes < 1):
        problems.append(f"n_classes must be a positive int, got {n_classes!r}")
    elif n_classes is not None and lab.size and lab.dtype.kind in "iu" and lab.max() >= n_classes:
        problems.append(f"labels must lie in [0, {n_classes}), found {lab.max()}")
    raise_if_problems("per_class_metrics", problems)
    m = m.astype(bool)
    lab = lab.astype(np.int64)
    pred = s >= threshold
    width = int(n_classes) if n_classes is not None else (int(lab.max()) + 1 if lab.size else 0)
    members = np.bincount(lab, weights=m, minlength=width).astype(np.int64)
    total = np.bincount(lab, minlength=width).astype(np.int64)
    predicted = np.bincount(lab, weights=pred, minlength=width).astype(np.int64)
    hits = np.bincount(lab, weights=pred & m, minlength=width).astype(np.int64)
    classes = np.arange(width) if n_classes is not None else np.flatnonzero(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / np.maximum(predicted, 1), -1.0)
        recall = np.where(members > 0, hits / np.maximum(members, 1), -1.0)
    n_pred, n_hit, n_mem = int(pred.sum()), int((pred & m).sum()), int(m.sum())
    return PerClassMetrics(
        threshold=float(threshold),
        classes=classes.astype(np.int64),
        n_members=members[classes],
        n_nonmembers=(total - members)[classes],
        n_predicted_members=predicted[classes],
        precision=precision[classes].astype(np.float64),
        recall=recall[classes].astype(np.float64),
        overall_precision=n_hit / n_pred if n_pred else -1.0,
        overall_recall=n_hit / n_mem if n_mem else -1.0,
    )
