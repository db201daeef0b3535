"""White-box features of a PyTorch model: per-record gradients, layer outputs, loss, label.

Nasr, Shokri and Houmansadr ("Comprehensive privacy analysis of deep learning", IEEE S&P
2019) feed an attack network with what a white-box attacker can compute for one record: the
gradient of its loss with respect to chosen layers' weights, the outputs of chosen layers,
the loss and the one-hot label. This module computes them for many records at once:

- **Per-record gradients** come from ``torch.func``: ``vmap(grad(loss))`` over a batch,
  differentiating only the chosen layers' weights (the rest enter as constants), so the
  cost is one batched backward pass per batch, never a Python loop over records.
- **Layer outputs** come from forward hooks on the same pass that computes the loss.
- **Memory is bounded.** Features are written batch by batch into float32 arrays, and a
  weight whose gradient has more than ``max_gradient_size`` entries is average-pooled to fit
  (its shape kept, so the convolutional sub-network of the attack still sees rows and
  columns). The cost of a layer is its weight's entry count times 4 bytes per record: a
  ResNet-18's last layer (512 x 10 weights) takes 20 kB per record, 1.2 GB for 60,000
  records; a 3x3 convolution with 512 in and out channels would take 9.4 MB per record
  unpooled, which the default budget of 65,536 entries (256 kB) pools 36-fold.

Layers are named as ``model.named_modules()`` names them (``"features.3"``) or by 1-based
index, as ML Privacy Meter v1 did: for outputs, among the model's leaf modules (``-1`` is
the last); for gradients, among the leaf modules that hold a weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from miaudit.errors import InvalidAuditInput
from miaudit.validation import is_int

__all__ = [
    "DEFAULT_MAX_GRADIENT_SIZE",
    "WhiteBoxFeatures",
    "gradient_layers",
    "gradient_norms",
    "output_layers",
    "per_record_gradients",
    "resolve_layers",
    "whitebox_features",
]

#: Entries of one layer's per-record gradient kept before pooling (256 kB in float32).
DEFAULT_MAX_GRADIENT_SIZE = 65_536
#: Floats a batch of per-record gradients may take (512 MB), which sizes the batches.
_BATCH_BUDGET = 1 << 27


def output_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf modules, in order: what a 1-based output-layer index counts."""
    return [(n, m) for n, m in module.named_modules() if n and not any(m.children())]


def gradient_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf modules that hold a ``weight``: what a 1-based gradient-layer index counts."""
    return [
        (n, m)
        for n, m in output_layers(module)
        if isinstance(getattr(m, "weight", None), nn.Parameter)
    ]


def resolve_layers(
    module: nn.Module, spec: Sequence[int | str], *, kind: str, field: str
) -> list[str]:
    """Module names for ``spec`` (names, or 1-based / negative indices into the ``kind``
    list: ``"output"`` or ``"gradient"``); an error lists what exists."""
    candidates = output_layers(module) if kind == "output" else gradient_layers(module)
    names = [n for n, _ in candidates]
    out, problems = [], []
    for entry in spec:
        if isinstance(entry, str):
            if entry in names:
                out.append(entry)
            else:
                problems.append(f"no {kind} layer named {entry!r}")
        elif is_int(entry) and entry != 0 and -len(names) <= entry <= len(names):
            out.append(names[entry - 1 if entry > 0 else entry])
        else:
            problems.append(
                f"{entry!r} is not a layer name or an index in 1..{len(names)} "
                f"(or -1..-{len(names)})"
            )
    if problems:
        shown = ", ".join(f"{i + 1}: {n}" for i, n in enumerate(names[:30]))
        more = f" and {len(names) - 30} more" if len(names) > 30 else ""
        raise InvalidAuditInput(
            f"{field}: {'; '.join(problems)}; the model's {kind} layers are {shown}{more}"
        )
    if len(set(out)) != len(out):
        raise InvalidAuditInput(f"{field}: a layer is named twice ({out})")
    return out


def _pooled_shape(shape: tuple[int, ...], limit: int) -> tuple[int, ...]:
    """The largest shape, shrinking the biggest axes first, with at most ``limit`` entries."""
    dims = list(shape)
    while math.prod(dims) > limit:
        i = int(np.argmax(dims))
        dims[i] = max(1, math.ceil(dims[i] / 2))
    return tuple(dims)


def _pool(g: torch.Tensor, target: tuple[int, ...]) -> torch.Tensor:
    """Average-pool a batch of weight-shaped gradients ``(b, *shape)`` to ``(b, *target)``."""
    if tuple(g.shape[1:]) == target:
        return g
    flat = g.reshape(g.shape[0], 1, g.shape[1], -1)  # rows x (everything else)
    rows = target[0]
    cols = math.prod(target[1:]) if len(target) > 1 else 1
    pooled = F.adaptive_avg_pool2d(flat, (rows, cols))
    return pooled.reshape(g.shape[0], *target)


@dataclass(frozen=True)
class WhiteBoxFeatures:
    """Per-record white-box features, each a float32 array whose first axis is the record.

    ``outputs[name]`` is ``(n, d)``; ``gradients[name]`` is ``(n, *shape)`` with the layer's
    weight shape (``(out, in)`` for a linear layer, pooled where it exceeded the budget);
    ``loss`` is ``(n,)``; ``labels`` ``(n,)`` int64.
    """

    outputs: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]
    loss: np.ndarray
    labels: np.ndarray

    @property
    def nbytes(self) -> int:
        arrays = [*self.outputs.values(), *self.gradients.values(), self.loss]
        return int(sum(a.nbytes for a in arrays))


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _batch_size(per_record_floats: int, requested: int | None) -> int:
    if requested is not None:
        return int(requested)
    return int(max(1, min(1024, _BATCH_BUDGET // max(1, per_record_floats))))


def whitebox_features(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    output_layer_names: Sequence[str] = (),
    gradient_layer_names: Sequence[str] = (),
    max_gradient_size: int = DEFAULT_MAX_GRADIENT_SIZE,
    batch_size: int | None = None,
) -> WhiteBoxFeatures:
    """Outputs of chosen layers, per-record loss gradients of chosen layers' weights, and
    the loss, for every record of ``x`` (batched; ``module`` is used in eval mode).

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch of records to logits.
    x : (n, ...) float32 array
    y : (n,) int array
        True classes; the loss is the cross-entropy of the true class.
    output_layer_names, gradient_layer_names : sequence of str
        Module names (:func:`resolve_layers` turns indices into names).
    max_gradient_size : int
        Entries kept per layer and record; larger gradients are average-pooled.
    batch_size : int, optional
        Records per batch; default sized so a batch's gradients take at most 512 MB.
    """
    if not is_int(max_gradient_size) or max_gradient_size < 1:
        raise InvalidAuditInput(
            f"max_gradient_size must be a positive int, got {max_gradient_size!r}"
        )
    was_training = module.training
    module.eval()
    device = _device_of(module)
    modules = dict(module.named_modules())
    weights = {name: modules[name].weight for name in gradient_layer_names}
    shapes = {name: _pooled_shape(tuple(w.shape), max_gradient_size) for name, w in weights.items()}
    per_record = sum(w.numel() for w in weights.values()) or 1
    size = _batch_size(per_record, batch_size)
    n = len(x)
    outputs: dict[str, np.ndarray] = {}
    gradients = {name: np.empty((n, *shape), np.float32) for name, shape in shapes.items()}
    loss_out = np.empty(n, np.float32)

    captured: dict[str, torch.Tensor] = {}
    hooks = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out)
        )
        for name in output_layer_names
    ]
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}
    weight_keys = {name: f"{name}.weight" for name in gradient_layer_names}

    def record_loss(chosen: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor):
        merged = {**params, **chosen}
        logits = functional_call(module, (merged, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_sample = vmap(grad(record_loss), in_dims=(None, 0, 0))
    try:
        for start in range(0, n, size):
            stop = min(n, start + size)
            xb = torch.as_tensor(x[start:stop], dtype=torch.float32, device=device)
            yb = torch.as_tensor(y[start:stop], dtype=torch.int64, device=device)
            captured.clear()
            with torch.no_grad():
                logits = module(xb)
                loss_out[start:stop] = (
                    F.cross_entropy(logits, yb, reduction="none").float().cpu().numpy()
                )
            for name in output_layer_names:
                flat = captured[name].reshape(stop - start, -1).float().cpu().numpy()
                if name not in outputs:
                    outputs[name] = np.empty((n, flat.shape[1]), np.float32)
                outputs[name][start:stop] = flat
            if weight_keys:
                chosen = {weight_keys[name]: params[weight_keys[name]] for name in weight_keys}
                grads = per_sample(chosen, xb, yb)
                for name, key in weight_keys.items():
                    pooled = _pool(grads[key].float(), shapes[name])
                    gradients[name][start:stop] = pooled.cpu().numpy()
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was_training)
    return WhiteBoxFeatures(outputs, gradients, loss_out, np.asarray(y, dtype=np.int64))


def per_record_gradients(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    layers: Sequence[int | str] = (-1,),
    *,
    max_gradient_size: int = DEFAULT_MAX_GRADIENT_SIZE,
    batch_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-record gradients of the cross-entropy loss with respect to chosen layers' weights.

    ``layers`` are names or 1-based indices among the leaf modules that hold a weight
    (``-1``: the last). Returns ``{name: (n, *weight shape)}`` float32 arrays.
    """
    names = resolve_layers(module, layers, kind="gradient", field="layers")
    feats = whitebox_features(
        module,
        x,
        y,
        gradient_layer_names=names,
        max_gradient_size=max_gradient_size,
        batch_size=batch_size,
    )
    return feats.gradients


def gradient_norms(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    layers: Sequence[int | str] | None = None,
    *,
    batch_size: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Per-record L2 norm of the loss gradient of each chosen layer's weight (all layers
    that hold a weight by default): a cheap white-box signal (members, fitted closely, have
    smaller gradients). Returns ``(n, len(layers))`` float64 norms and the layer names.

    Unlike :func:`per_record_gradients` only the norms are kept, so memory grows with the
    batch, not with the records: the batch is sized so that its gradients fit in 512 MB.
    """
    all_names = [n for n, _ in gradient_layers(module)]
    names = (
        all_names
        if layers is None
        else resolve_layers(module, layers, kind="gradient", field="layers")
    )
    modules = dict(module.named_modules())
    per_record = sum(modules[name].weight.numel() for name in names) or 1
    size = _batch_size(per_record, batch_size)
    norms = np.empty((len(x), len(names)))
    for start in range(0, len(x), size):
        stop = min(len(x), start + size)
        feats = whitebox_features(
            module,
            x[start:stop],
            y[start:stop],
            gradient_layer_names=names,
            max_gradient_size=max(m.weight.numel() for m in (modules[n] for n in names)),
            batch_size=size,
        )
        for j, name in enumerate(names):
            g = feats.gradients[name].reshape(stop - start, -1).astype(np.float64)
            norms[start:stop, j] = np.linalg.norm(g, axis=1)
    return norms, names
