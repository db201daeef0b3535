"""Recipes: how to train one more model like the target, on given records, with a seed.

Reference-model attacks (LiRA, RMIA) and shadow-model attacks train many models that differ
from the target only in their training records and their randomness. A recipe captures
everything else, so that a model is a pure function of ``(recipe, indices, seed)``; its
:meth:`fingerprint` plus the indices and seed is the key under which the compute layer
caches a trained model.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from sklearn.base import clone

from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.models.architectures import build_model, resolve_arch_params
from miaudit.models.training import ProgressCallback, TrainingConfig, train_model

__all__ = [
    "Recipe",
    "SklearnRecipe",
    "TorchRecipe",
    "TrainedModel",
    "check_indices",
]

# Bump when a change in this package makes old cached models differ from new ones.
_RECIPE_FORMAT = 1


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """One model trained by a recipe, with the facts a report and a cache need.

    Attributes
    ----------
    model : torch.nn.Module or scikit-learn estimator
        The trained model (PyTorch models in eval mode).
    train_accuracy : float
        Accuracy on its own training records.
    test_accuracy : float or None
        Accuracy on ``eval_indices`` when the recipe was given them.
    seconds : float
        Wall-clock training time.
    seed : int
        The seed it was trained with.
    n_train : int
        Number of training records.
    privacy : dict or None
        For a DP-SGD model, what the accountant says it spent
        (:class:`~miaudit.models.dp.PrivacySpent`): ε, δ, noise multiplier, clipping norm,
        sampling rate, steps.
    """

    model: Any
    train_accuracy: float
    test_accuracy: float | None
    seconds: float
    seed: int
    n_train: int
    privacy: dict | None = None


#: TrainingConfig fields added after the cache format was fixed, with their defaults.
_LATER_DEFAULTS = {
    "mixup_alpha": 0.0,
    "dp_noise_multiplier": None,
    "dp_target_epsilon": None,
    "dp_delta": 1e-5,
    "dp_max_grad_norm": 1.0,
    "dp_poisson": True,
    "early_stopping_patience": 0,
    "precision": "float32",
}
#: Architecture parameters added later, per architecture, with the same rule.
_LATER_ARCH_DEFAULTS = {"lenet5": {"dropout": 0.0}}


@runtime_checkable
class Recipe(Protocol):
    """The role every recipe plays; implemented by :class:`TorchRecipe` and
    :class:`SklearnRecipe`.

    A recipe may also define ``trusted_types() -> frozenset[str]``: the types beyond skops'
    defaults that its scikit-learn models may hold, which the model cache then loads (see
    :meth:`SklearnRecipe.trusted_types`). Without it a cached model holding any such type
    is refused and retrained.
    """

    def train(
        self,
        dataset: Dataset,
        indices: np.ndarray,
        *,
        seed: int,
        eval_indices: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainedModel: ...

    def fingerprint(self) -> str: ...

    def validate(self, dataset: Dataset) -> None: ...


def trusted_types_of(recipe: Any) -> frozenset[str]:
    """The types beyond skops' defaults a cached model of ``recipe`` may hold: its
    ``trusted_types()`` when it defines one (see :class:`Recipe`), else none."""
    method = getattr(recipe, "trusted_types", None)
    if callable(method):
        return frozenset(method())
    if isinstance(method, set | frozenset | tuple | list):  # PythonRecipe(trusted_types=...)
        return frozenset(method)
    return frozenset()


def check_indices(indices: Any, n_records: int, name: str = "indices") -> np.ndarray:
    """Check that ``indices`` select distinct records of a data set; return them as int64.

    Duplicates are refused because training twice on a record changes what "member" means.

    Raises
    ------
    InvalidAuditInput
        Not a 1-d integer array, empty, out of ``[0, n_records)``, or with duplicates; all
        problems listed at once.
    """
    arr = np.asarray(indices)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InvalidAuditInput(f"{name} must be a 1-d integer array, got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    problems: list[str] = []
    if arr.size == 0:
        problems.append("no records selected")
    else:
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= n_records:
            bad = int(np.count_nonzero((arr < 0) | (arr >= n_records)))
            problems.append(
                f"{bad} indices outside [0, {n_records}) (smallest {low}, largest {high})"
            )
        if (dup := arr.size - np.unique(arr).size) > 0:
            problems.append(f"{dup} indices appear more than once")
    raise_if_problems(name, problems)
    return arr


def _check_seed(seed: Any) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InvalidAuditInput(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def checked_training_inputs(
    dataset: Dataset, indices: Any, seed: Any, eval_indices: Any = None
) -> tuple[int, np.ndarray, np.ndarray | None]:
    """What every recipe's ``train`` checks first: the seed, the training records and the
    evaluation records, as ``(seed, indices, eval_indices)``."""
    seed = _check_seed(seed)
    idx = check_indices(indices, dataset.n_records)
    eval_idx = None
    if eval_indices is not None:
        eval_idx = check_indices(eval_indices, dataset.n_records, "eval_indices")
    return seed, idx, eval_idx


def _sha256_json(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class TorchRecipe:
    """Train a registry architecture with :func:`~miaudit.models.training.train_model`.

    Attributes
    ----------
    architecture : str
        Name in :data:`~miaudit.models.architectures.ARCHITECTURES`.
    arch_params : dict
        Architecture parameters; stored resolved (defaults filled in, lists made tuples) so
        that equal recipes have equal fingerprints.
    training : TrainingConfig
        Optimiser, schedule, augmentation, device.
    """

    architecture: str
    arch_params: dict[str, Any] = field(default_factory=dict)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.training, TrainingConfig):
            raise InvalidAuditInput(
                f"TorchRecipe: training must be a TrainingConfig, got {type(self.training)}"
            )
        if not isinstance(self.arch_params, Mapping):
            raise InvalidAuditInput(
                f"TorchRecipe: arch_params must be a mapping, got {type(self.arch_params)}"
            )
        object.__setattr__(
            self, "arch_params", resolve_arch_params(self.architecture, self.arch_params)
        )

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def validate(self, dataset: Dataset) -> None:
        """Check, before any training, that the architecture can take ``dataset``.

        Raises
        ------
        InvalidAuditInput
            E.g. an image architecture on tabular records, or LeNet-5 on 64x64 images.
        """
        with torch.device("meta"):  # runs the checks; builds shapes only, allocates nothing
            model = build_model(
                self.architecture,
                input_shape=dataset.input_shape,
                n_classes=dataset.n_classes,
                **self.arch_params,
            )
        if self.training.private:  # DP-SGD: layers that mix records (BatchNorm) are refused
            from miaudit.models.dp import check_private_model

            check_private_model(model)

    def fingerprint(self) -> str:
        """sha256 hex digest of the recipe's settings in canonical JSON.

        ``training.device`` is left out: a model trained on a GPU is as good a sample of
        "a model like the target" as one trained on a CPU, so a cache filled on one may
        serve the other.
        """
        training = self.training.to_dict()
        training.pop("device")
        # Training defenses added later enter the fingerprint only when used, so that the
        # recipes (and cached models) of before keep their keys.
        for name, default in _LATER_DEFAULTS.items():
            if training.get(name) == default:
                training.pop(name)
        later = _LATER_ARCH_DEFAULTS.get(self.architecture, {})
        arch_params = {k: v for k, v in self.arch_params.items() if k not in later or v != later[k]}
        return _sha256_json(
            {
                "kind": "torch",
                "format": _RECIPE_FORMAT,
                "architecture": self.architecture,
                "arch_params": _jsonable(arch_params),
                "training": training,
            }
        )

    def train(
        self,
        dataset: Dataset,
        indices: np.ndarray,
        *,
        seed: int,
        eval_indices: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainedModel:
        """Build the architecture and train it on ``dataset`` records ``indices``.

        Parameters
        ----------
        dataset : Dataset
            Source of records; ``input_shape`` and ``n_classes`` size the model.
        indices : (n_train,) int array
            Distinct training records.
        seed : int
            One seed for everything: two independent streams are derived from it (with
            ``numpy.random.SeedSequence``), one for the initial weights and one for batch
            order, augmentation and dropout.
        eval_indices : (n_eval,) int array, optional
            Records for ``test_accuracy``.
        progress : callable, optional
            Passed to :func:`~miaudit.models.training.train_model`.
        """
        seed, idx, eval_idx = checked_training_inputs(dataset, indices, seed, eval_indices)
        self.validate(dataset)
        init_seed, train_seed = (
            int(s) for s in np.random.SeedSequence(seed).generate_state(2, dtype=np.uint32)
        )
        model = build_model(
            self.architecture,
            input_shape=dataset.input_shape,
            n_classes=dataset.n_classes,
            seed=init_seed,
            **self.arch_params,
        )
        result = train_model(
            model,
            dataset.x[idx],
            dataset.y[idx],
            self.training,
            seed=train_seed,
            eval_x=None if eval_idx is None else dataset.x[eval_idx],
            eval_y=None if eval_idx is None else dataset.y[eval_idx],
            progress=progress,
        )
        return TrainedModel(
            model=result.model,
            train_accuracy=result.train_accuracy,
            test_accuracy=result.test_accuracy,
            seconds=result.seconds,
            seed=seed,
            n_train=int(idx.size),
            privacy=result.privacy,
        )


#: scikit-learn's own types that hold a fitted estimator's state (trees, optimiser state,
#: neighbour indexes). skops does not trust them by default because they are not
#: estimators, but loading one restores arrays and calls no user code. A cached model of
#: a :class:`SklearnRecipe` may hold these and the recipe's own estimator classes, nothing
#: else: the list is decided here, never by anything stored next to the model.
FITTED_STATE_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    }
)


def _estimator_types(estimator: Any) -> set[str]:
    """Qualified class names of ``estimator`` and every estimator among its parameters."""
    found = set()
    stack = [estimator]
    while stack:
        obj = stack.pop()
        cls = type(obj)
        found.add(f"{cls.__module__}.{cls.__qualname__}")
        if hasattr(obj, "get_params"):
            stack += [v for v in obj.get_params(deep=False).values() if hasattr(v, "get_params")]
            steps = getattr(obj, "steps", None) or getattr(obj, "estimators", None) or []
            stack += [step[-1] for step in steps if hasattr(step[-1], "get_params")]
    return found


@dataclass(frozen=True, eq=False)
class SklearnRecipe:
    """Train fresh clones of a scikit-learn estimator.

    Records are flattened to ``(n, features)``. When the estimator has a ``random_state``
    parameter it is set to the seed, so ``(recipe, indices, seed)`` fixes the model.

    Attributes
    ----------
    estimator : scikit-learn estimator
        A template; never fitted or modified here.
    """

    estimator: Any
    #: Further types its cached models may hold, beyond the estimator's classes and
    #: scikit-learn's fitted state (e.g. a third-party estimator's internals).
    extra_trusted_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = [m for m in ("get_params", "fit", "predict") if not hasattr(self.estimator, m)]
        if missing:
            raise InvalidAuditInput(
                f"SklearnRecipe: estimator {type(self.estimator).__name__} lacks "
                f"{', '.join(missing)}; pass a scikit-learn estimator"
            )

    def validate(self, dataset: Dataset) -> None:
        """Nothing to check ahead of ``fit``: any records are flattened to features."""

    def trusted_types(self) -> frozenset[str]:
        """Types a model of this recipe may hold beyond skops' defaults: the template's
        estimator classes and :data:`FITTED_STATE_TYPES`. The model cache loads nothing
        else, whatever its metadata says."""
        return (
            FITTED_STATE_TYPES
            | _estimator_types(self.estimator)
            | frozenset(self.extra_trusted_types)
        )

    def fingerprint(self) -> str:
        """sha256 hex digest of the estimator's class and parameters.

        Parameters are taken with ``get_params(deep=True)`` and written with ``repr``, sorted
        by name. The top-level ``random_state`` is left out because :meth:`train` replaces it
        with the seed.
        """
        cls = type(self.estimator)
        params = self.estimator.get_params(deep=True)
        params.pop("random_state", None)
        return _sha256_json(
            {
                "kind": "sklearn",
                "format": _RECIPE_FORMAT,
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "params": [[name, repr(params[name])] for name in sorted(params)],
            }
        )

    def train(
        self,
        dataset: Dataset,
        indices: np.ndarray,
        *,
        seed: int,
        eval_indices: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainedModel:
        """Fit a clone of the estimator on ``dataset`` records ``indices``.

        ``progress`` is accepted so that every recipe has one signature; scikit-learn's
        ``fit`` reports no epochs, so it is never called.
        """
        start = time.perf_counter()
        seed, idx, eval_idx = checked_training_inputs(dataset, indices, seed, eval_indices)
        model = clone(self.estimator)
        if "random_state" in model.get_params(deep=False):
            model.set_params(random_state=seed)
        x_train = dataset.x[idx].reshape(idx.size, -1)
        y_train = dataset.y[idx]
        model.fit(x_train, y_train)
        train_acc = float(np.mean(model.predict(x_train) == y_train))
        test_acc = None
        if eval_idx is not None:
            x_eval = dataset.x[eval_idx].reshape(eval_idx.size, -1)
            test_acc = float(np.mean(model.predict(x_eval) == dataset.y[eval_idx]))
        return TrainedModel(
            model=model,
            train_accuracy=train_acc,
            test_accuracy=test_acc,
            seconds=time.perf_counter() - start,
            seed=seed,
            n_train=int(idx.size),
        )
