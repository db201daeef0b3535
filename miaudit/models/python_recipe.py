"""A recipe from the user's own training code: ``train(x, y, *, seed, **params) -> model``.

Reference models stand in for the target only if they are trained like it, and for a model
miaudit did not build, only its owner's code trains it like that: their network class,
their loop, their schedule, XGBoost or LightGBM with their settings. :class:`PythonRecipe`
calls that code as a recipe. The function receives the training records as the data set
holds them (``x`` of the data set's shape and dtype, ``y`` int64 labels) and a seed, and
returns anything miaudit can query:

* a ``torch.nn.Module`` mapping a float32 batch to logits (white-box access);
* a fitted scikit-learn-compatible classifier with ``predict_proba`` (scikit-learn,
  XGBoost, LightGBM, CatBoost);
* any callable ``f(x) -> (n, n_classes)`` logits or probabilities (``output`` says which;
  ``auto`` detects probabilities from rows that sum to one).

Seeds: around each call Python's ``random``, NumPy's global generator and PyTorch's are
seeded with ``seed`` (and restored afterwards), so code that draws from the global
generators is reproducible without change; code that keeps generators of its own should
seed them from ``seed``. Whether two trainings with one seed give the same answers is
measured by the audit and reported (:func:`miaudit.references.check_determinism`), never
assumed.

The fingerprint, and so the cache key of every model the recipe trains, covers the
function's name, the sha256 of every code file it imports from its own folder, ``params``
and what the recipe says about the model's form: change the code and its models are
trained again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput, UserCodeError
from miaudit.models.architectures import build_model, resolve_arch_params
from miaudit.models.recipes import (
    _RECIPE_FORMAT,
    TrainedModel,
    _jsonable,
    _sha256_json,
    checked_training_inputs,
)
from miaudit.models.training import ProgressCallback, predict_logits
from miaudit.models.user_code import check_call, function_code, qualified_name

__all__ = ["AnsweringFunction", "PythonRecipe", "UserCodeError"]

#: What a callable returned by the training function may answer with.
OUTPUTS = ("auto", "logits", "probabilities")


@dataclass(frozen=True, eq=False)
class AnsweringFunction:
    """A callable returned by a training function, with what it answers: ``logits`` or
    ``probabilities`` for a batch of records in the data set's shape."""

    fn: Callable[[np.ndarray], Any]
    output: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(x), dtype=np.float64)


def _looks_like_probabilities(answers: np.ndarray) -> bool:
    return bool(
        answers.ndim == 2
        and np.isfinite(answers).all()
        and (answers >= 0).all()
        and np.allclose(answers.sum(axis=1), 1.0, atol=1e-4)
    )


@contextmanager
def seeded(seed: int):
    """Python's, NumPy's and PyTorch's global generators seeded with ``seed`` inside, and
    restored to their states of before on the way out (the audit's own draws do not shift)."""
    # NumPy's legacy global generator is the one user code draws from (np.random.rand).
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()  # noqa: NPY002
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])  # noqa: NPY002
        torch.random.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def predicted_labels(model: Any, x: np.ndarray) -> np.ndarray:
    """Labels a trained model predicts for ``x``, whatever its form (see the module
    docstring); used for the accuracies a recipe reports."""
    if isinstance(model, nn.Module):
        return predict_logits(model, x).argmax(axis=1)
    if isinstance(model, AnsweringFunction):
        return model(x).argmax(axis=1)
    flat = np.asarray(x).reshape(len(x), -1)
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(flat))
        classes = np.asarray(getattr(model, "classes_", np.arange(proba.shape[1])))
        return classes[proba.argmax(axis=1)]
    return np.asarray(model.predict(flat))


@dataclass(frozen=True, eq=False)
class PythonRecipe:
    """Train models with the user's own function.

    Parameters
    ----------
    train_fn : callable
        ``train_fn(x, y, *, seed, **params)`` returning a model (see the module docstring).
        It must accept ``seed``; ``params`` must be arguments it takes. Both are checked
        here, before anything trains.
    params : mapping
        Keyword arguments for ``train_fn`` (plain data: they enter the fingerprint).
    output : {"auto", "logits", "probabilities"}
        What a plain callable returned by ``train_fn`` answers with. Ignored for networks
        (logits) and classifiers (``predict_proba``).
    architecture : str, optional
        The name under which the network ``train_fn`` returns is registered
        (:func:`~miaudit.models.register_architecture`), with ``arch_params``: its models
        are then cached as weights and reloaded instead of retrained. Without it, a
        network's answers are cached but the network itself is not (a class the registry
        does not know cannot be rebuilt from weights without running code).
    arch_params : mapping
        Parameters of ``architecture``.
    trusted_types : collection of str
        Types beyond skops' defaults that a scikit-learn model of this recipe may hold in
        the model cache (e.g. ``"catboost.core.CatBoostClassifier"``). XGBoost and
        LightGBM models are cached in their own formats and need none.
    code_version : str, optional
        Stands for the code in the fingerprint when its files cannot be found (a function
        typed into a console), or to pin it by hand.
    code : mapping, optional
        ``{file: sha256}`` of the code, when the caller computed it (an audit file names a
        file relative to its folder); default: the function's file and the files it
        imports from that folder.
    name : str, optional
        How reports name the function; default ``module:qualname``.

    Examples
    --------
    >>> def train(x, y, *, seed, epochs=10):
    ...     model = MyNet(); my_loop(model, x, y, epochs=epochs); return model
    >>> recipe = PythonRecipe(train, params={"epochs": 12})   # doctest: +SKIP
    """

    train_fn: Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    output: str = "auto"
    architecture: str | None = None
    arch_params: Mapping[str, Any] = field(default_factory=dict)
    trusted_types: Collection[str] = ()
    code_version: str | None = None
    code: Mapping[str, str] | None = None
    name: str | None = None

    #: Training runs in this process: a function imported from a file under a private
    #: module name cannot be sent to a worker process.
    in_process_only = True

    def __post_init__(self) -> None:
        if not callable(self.train_fn):
            raise InvalidAuditInput(
                f"PythonRecipe: train_fn must be callable, got {type(self.train_fn).__name__}"
            )
        if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
            raise InvalidAuditInput("PythonRecipe: params must map argument names to values")
        if self.output not in OUTPUTS:
            raise InvalidAuditInput(
                f"PythonRecipe: output must be one of {OUTPUTS}, got {self.output!r}"
            )
        if isinstance(self.trusted_types, str) or not all(
            isinstance(t, str) for t in self.trusted_types
        ):
            raise InvalidAuditInput("PythonRecipe: trusted_types must be a collection of names")
        label = self.name or getattr(self.train_fn, "__qualname__", "train")
        check_call(
            self.train_fn,
            self.params,
            field=f"recipe {label}",
            positional=2,
            required=("seed",),
        )
        arch_params: dict[str, Any] = {}
        if self.architecture is not None:
            arch_params = resolve_arch_params(self.architecture, self.arch_params)
        object.__setattr__(self, "arch_params", arch_params)
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "trusted_types", frozenset(self.trusted_types))
        if self.code is not None:
            name, code = None, self.code
        elif self.code_version is not None:  # the version stands for the code
            name, code = qualified_name(self.train_fn), {}
        else:
            name, code = function_code(self.train_fn)
        object.__setattr__(self, "code", dict(code))
        object.__setattr__(self, "name", self.name or name or label)

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    # -------------------------------------------------------------- recipe protocol

    def validate(self, dataset: Dataset) -> None:
        """A registered ``architecture`` must take the data set's records (the function
        itself can only be checked by running it)."""
        if self.architecture is not None:
            with torch.device("meta"):
                build_model(
                    self.architecture,
                    input_shape=dataset.input_shape,
                    n_classes=dataset.n_classes,
                    **self.arch_params,
                )

    def fingerprint(self) -> str:
        """sha256 of the function's name, its code files' digests, ``params``, the model
        form (``architecture``, ``output``) and ``code_version``."""
        params = {k: _plain_or_repr(v) for k, v in sorted(self.params.items())}
        return _sha256_json(
            {
                "kind": "python",
                "format": _RECIPE_FORMAT,
                "function": self.name,
                "code": dict(sorted(self.code.items())),
                "code_version": self.code_version,
                "params": params,
                "architecture": self.architecture,
                "arch_params": _jsonable(self.arch_params),
                "output": self.output,
            }
        )

    def describe(self) -> dict:
        """JSON-ready account for the report: which code trained the models."""
        return {
            "kind": "python",
            "function": self.name,
            "code_files": [{"file": f, "sha256": d} for f, d in sorted(self.code.items())],
            "code_version": self.code_version,
            "params": {k: _plain_or_repr(v) for k, v in sorted(self.params.items())},
            "architecture": self.architecture,
            "fingerprint": self.fingerprint(),
        }

    def with_params(self, **changes: Any) -> PythonRecipe:
        """The same recipe with some ``params`` changed (checked against the function)."""
        from dataclasses import replace

        return replace(self, params={**self.params, **changes}, code=self.code)

    def train(
        self,
        dataset: Dataset,
        indices: np.ndarray,
        *,
        seed: int,
        eval_indices: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainedModel:
        """Call the function on records ``indices`` with ``seed``; measure accuracies.

        Raises
        ------
        UserCodeError
            The function raised (its exception is the cause) or returned something that is
            not a model.
        """
        seed, idx, eval_idx = checked_training_inputs(dataset, indices, seed, eval_indices)
        x, y = dataset.x[idx], dataset.y[idx]
        start = time.perf_counter()
        with seeded(seed):
            try:
                model = self.train_fn(x, y, seed=seed, **self.params)
            except Exception as exc:
                raise UserCodeError(
                    f"the training function {self.name} raised {type(exc).__name__} while "
                    f"training a model on {idx.size} records with seed {seed}: {exc}"
                ) from exc
        seconds = time.perf_counter() - start
        model = self._answerable(model, x[: min(len(x), 256)], dataset.n_classes)
        train_acc = float(np.mean(predicted_labels(model, x) == y))
        test_acc = None
        if eval_idx is not None:
            test_acc = float(
                np.mean(predicted_labels(model, dataset.x[eval_idx]) == dataset.y[eval_idx])
            )
        return TrainedModel(
            model=model,
            train_accuracy=train_acc,
            test_accuracy=test_acc,
            seconds=seconds,
            seed=seed,
            n_train=int(idx.size),
        )

    def _answerable(self, model: Any, probe: np.ndarray, n_classes: int) -> Any:
        """What the function returned, in a form the audit can query (see the module
        docstring); a network in eval mode, a plain callable with its output kind."""
        if isinstance(model, nn.Module):
            return model.eval()
        if hasattr(model, "predict_proba") or hasattr(model, "predict"):
            return model
        if callable(model):
            output = self.output
            if output == "auto":
                answers = np.asarray(model(probe), dtype=np.float64)
                output = "probabilities" if _looks_like_probabilities(answers) else "logits"
            return AnsweringFunction(model, output)
        raise UserCodeError(
            f"the training function {self.name} returned a {type(model).__name__}; return a "
            "torch.nn.Module, a fitted classifier with predict_proba, or a callable giving "
            f"logits or probabilities for {n_classes} classes"
        )


def _plain_or_repr(value: Any) -> Any:
    """``value`` if it is plain JSON data, else its ``repr`` (for the fingerprint)."""
    import json

    try:
        json.dumps(value, sort_keys=True)
        return value
    except TypeError:
        return repr(value)
