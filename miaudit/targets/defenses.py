"""Output defenses: what a model owner can do to a model's answers before releasing them.

Shokri et al. (IEEE S&P 2017, Sec. VI) list restricting the output to the top-k classes,
rounding the probabilities and raising their entropy (a softmax temperature); added noise
and releasing labels only complete the usual set (IBM ART ships the same post-processors).
Each is a target wrapper: it wraps any target, answers through it, and declares the access
level its answers leave an attacker (probabilities, or labels only), so attacks that need
more are refused before any work and attacks that need less still run. Wrappers compose
(``TopK(Rounded(target, 2), 3)``), and ``defenses`` lists every layer's parameters for the
report, innermost first.

None of them changes the predicted class except :class:`NoisyOutput` (noise can flip a
close call) and :class:`Rounded` (rounding can tie the top classes; the first wins): the
model's accuracy is (nearly) the same, which is exactly why confidence masking is tempting,
and why label-only attacks are run against it (Choquette-Choo et al., ICML 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import InvalidAuditInput
from miaudit.targets.adapters import (
    AccessLevel,
    CallableTarget,
    LabelOnlyTarget,
    Target,
    _softmax,
    check_probabilities,
    require_access,
)
from miaudit.validation import is_int, is_real

__all__ = [
    "NoisyOutput",
    "Rounded",
    "Temperature",
    "TopK",
    "defenses_of",
    "output_defense",
    "same_defenses",
]


class _ProbabilityDefense:
    """Shared plumbing: probabilities in, probabilities out, labels from the result."""

    access = AccessLevel.PROBABILITIES
    name = "defense"

    def __init__(self, inner: Target) -> None:
        if not isinstance(inner, Target):
            raise InvalidAuditInput(
                f"{type(self).__name__} wraps a target adapter, got {type(inner).__name__}"
            )
        require_access(inner, AccessLevel.PROBABILITIES, type(self).__name__)
        self.inner = inner
        self.n_classes = inner.n_classes
        self.queries_by_index = inner.queries_by_index

    @property
    def description(self) -> str:
        return f"{self.inner.description} + {self.name}"

    @property
    def params(self) -> dict:
        raise NotImplementedError

    @property
    def defenses(self) -> list[dict]:
        return [*defenses_of(self.inner), {"defense": self.name, **self.params}]

    def _transform(self, proba: np.ndarray, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = self._transform(self.inner.predict_proba(x), x)
        return check_probabilities(out, len(x), self.n_classes, self.description)

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        require_access(self, AccessLevel.LOGITS, "predict_logits")
        raise AssertionError("unreachable: an output defense never releases logits")


class TopK(_ProbabilityDefense):
    """Only the ``k`` most likely classes, their probabilities renormalised to sum to 1."""

    name = "top_k"

    def __init__(self, inner: Target, k: int) -> None:
        super().__init__(inner)
        if not is_int(k) or not 1 <= k <= inner.n_classes:
            raise InvalidAuditInput(f"TopK: k must be an int in [1, {inner.n_classes}], got {k!r}")
        self.k = int(k)

    @property
    def params(self) -> dict:
        return {"k": self.k}

    def _transform(self, proba: np.ndarray, x: np.ndarray) -> np.ndarray:
        keep = np.argsort(-proba, axis=1, kind="stable")[:, : self.k]
        out = np.zeros_like(proba)
        np.put_along_axis(out, keep, np.take_along_axis(proba, keep, axis=1), axis=1)
        return out / out.sum(axis=1, keepdims=True)


class Rounded(_ProbabilityDefense):
    """Probabilities rounded to ``decimals`` places (then renormalised, so rows sum to 1;
    a row whose every entry rounds to 0 keeps its top class at 1)."""

    name = "rounding"

    def __init__(self, inner: Target, decimals: int) -> None:
        super().__init__(inner)
        if not is_int(decimals) or not 0 <= decimals <= 8:
            raise InvalidAuditInput(f"Rounded: decimals must be an int in [0, 8], got {decimals!r}")
        self.decimals = int(decimals)

    @property
    def params(self) -> dict:
        return {"decimals": self.decimals}

    def _transform(self, proba: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = np.round(proba, self.decimals)
        empty = out.sum(axis=1) == 0
        out[empty, proba[empty].argmax(axis=1)] = 1.0
        return out / out.sum(axis=1, keepdims=True)


class Temperature(_ProbabilityDefense):
    """``softmax(log p / T)``: ``T > 1`` flattens the output (higher entropy), keeping the
    predicted class."""

    name = "temperature"

    def __init__(self, inner: Target, temperature: float) -> None:
        super().__init__(inner)
        if not is_real(temperature) or temperature <= 0:
            raise InvalidAuditInput(
                f"Temperature: temperature must be a number > 0, got {temperature!r}"
            )
        self.temperature = float(temperature)

    @property
    def params(self) -> dict:
        return {"temperature": self.temperature}

    def _transform(self, proba: np.ndarray, x: np.ndarray) -> np.ndarray:
        log_p = np.log(np.maximum(proba, 1e-300))
        return _softmax(log_p / self.temperature)


class NoisyOutput(_ProbabilityDefense):
    """Gaussian noise of standard deviation ``scale`` added to the probabilities, clipped
    at 0 and renormalised. Seeded per query batch, so an answer can differ between two
    queries of the same record, as from a real noisy API."""

    name = "noise"

    def __init__(self, inner: Target, scale: float, seed: int = 0) -> None:
        super().__init__(inner)
        if not is_real(scale) or scale <= 0:
            raise InvalidAuditInput(f"NoisyOutput: scale must be a number > 0, got {scale!r}")
        self.scale = float(scale)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def params(self) -> dict:
        return {"scale": self.scale, "seed": self.seed}

    def _transform(self, proba: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = np.maximum(proba + self._rng.normal(0.0, self.scale, proba.shape), 0.0)
        empty = out.sum(axis=1) == 0
        out[empty, proba[empty].argmax(axis=1)] = 1.0
        return out / out.sum(axis=1, keepdims=True)


def defenses_of(target: Target) -> list[dict]:
    """The output defenses wrapped around ``target``, innermost first."""
    if isinstance(target, _ProbabilityDefense):
        return target.defenses
    if isinstance(target, LabelOnlyTarget):
        return [*defenses_of(target.inner), {"defense": "label_only"}]
    return []


def output_defense(target: Target, name: str, **params) -> Target:
    """Wrap ``target`` in the defense ``name`` (``top_k``, ``rounding``, ``temperature``,
    ``noise``, ``label_only``) with its parameters: the YAML spelling."""
    makers = {
        "top_k": lambda: TopK(target, params.pop("k", 1)),
        "rounding": lambda: Rounded(target, params.pop("decimals", 2)),
        "temperature": lambda: Temperature(target, params.pop("temperature", 2.0)),
        "noise": lambda: NoisyOutput(target, params.pop("scale", 0.05), params.pop("seed", 0)),
        "label_only": lambda: LabelOnlyTarget(target),
    }
    if name not in makers:
        raise InvalidAuditInput(f"unknown output defense {name!r}; known: {', '.join(makers)}")
    wrapped = makers[name]()
    if params:
        raise InvalidAuditInput(f"output defense {name!r}: unknown parameter(s) {sorted(params)}")
    return wrapped


def check_output_defenses(defenses, n_classes: int, field: str = "target.defenses") -> None:
    """Build ``defenses`` (``(name, params)`` pairs, innermost first) around a stand-in
    model of ``n_classes`` classes, so that a setting the data set cannot take (``top_k``
    with more classes than it has) is refused before any model trains."""
    stand_in: Target = CallableTarget(
        lambda x: np.full((len(x), n_classes), 1.0 / n_classes),
        n_classes=n_classes,
        output="probabilities",
    )
    for name, params in defenses:
        try:
            stand_in = output_defense(stand_in, name, **dict(params))
        except InvalidAuditInput as error:
            raise InvalidAuditInput(f"{field}: {error}") from None


@dataclass(frozen=True)
class DefenseChain:
    """Wraps a model in a chain of output defenses (``defenses_of``'s description, innermost
    first). A plain, picklable value, so that a worker process can wrap the reference
    models it queries exactly as the audit does; ``defenses`` is also what the answer
    cache's key records."""

    defenses: tuple
    n_classes: int

    def __call__(self, model) -> Target:
        from miaudit.targets.adapters import as_target

        wrapped = as_target(model, n_classes=self.n_classes)
        for layer in self.defenses:
            params = {k: v for k, v in layer.items() if k != "defense"}
            wrapped = output_defense(wrapped, layer["defense"], **params)
        return wrapped


def same_defenses(target: Target) -> DefenseChain | None:
    """What wraps a model in ``target``'s output defenses (same order and parameters), or
    None when ``target`` has none: reference models then answer the attacker as the
    defended target does."""
    chain = defenses_of(target)
    if not chain:
        return None
    return DefenseChain(tuple(chain), int(target.n_classes))
