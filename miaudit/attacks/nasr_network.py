"""The attack network of Nasr, Shokri and Houmansadr (IEEE S&P 2019), as ML Privacy Meter v1
built it, in PyTorch.

Every input gets its own sub-network, and an encoder maps the concatenation to one
membership logit:

- a layer's output, the loss, the one-hot label: a dense component (v1: ``d -> 100 -> 64``
  for outputs and the loss, ``C -> 128 -> 64`` for the label);
- a weight's gradient, seen as a matrix with one row per unit of the layer (``(out, in)``
  for a linear layer; a convolution's filters flattened): a convolution whose kernel spans a
  whole row (one unit's incoming weights), then dense layers (v1: 100 channels, then
  ``2024 -> 512 -> 256``); a 1-d gradient (batch-norm scale) goes through a dense component;
- the encoder: ``256 -> 128 -> 64 -> 1``.

``width="v1"`` builds exactly those sizes. Their first dense layer after a gradient
convolution has ``100 x units x 2024`` weights (26 million for a 128-unit layer), which is
slow on a CPU, so the default ``width="compact"`` uses 16 channels and ``256 -> 128 -> 64``
there, and keeps every other size. Every input is standardised entry by entry with the
training records' mean and standard deviation (gradients of members are orders of magnitude
smaller than those of non-members, and raw they would swamp the optimiser). The network is
trained with binary cross-entropy on balanced batches (v1 used the squared error of a
sigmoid; both are proper scoring rules).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from miaudit.errors import InvalidAuditInput

__all__ = ["OPTIMIZERS", "WIDTHS", "AttackNetwork", "train_attack_network"]

#: Optimiser names with ML Privacy Meter v1's meaning (``momentum``: SGD with momentum 0.9).
OPTIMIZERS = ("sgd", "adam", "adadelta", "adagrad", "momentum", "rmsprop")

#: Gradient-component sizes: convolution channels and the dense layers after it.
WIDTHS = {"v1": (100, (2024, 512, 256)), "compact": (16, (256, 128, 64))}


def _dense(sizes: tuple[int, ...], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        if dropout and i:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class _GradientComponent(nn.Module):
    """Convolution over rows of a weight-shaped gradient, then dense layers."""

    def __init__(self, rows: int, cols: int, channels: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols
        self.conv = nn.Conv2d(1, channels, kernel_size=(1, cols))
        self.dense = _dense((channels * rows, *hidden), dropout=0.2)
        self.out_features = hidden[-1]

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        x = F.dropout(g.reshape(-1, 1, self.rows, self.cols), 0.2, self.training)
        x = F.relu(self.conv(x)).flatten(1)
        return self.dense(F.dropout(x, 0.2, self.training))


class AttackNetwork(nn.Module):
    """One component per input (dict key), an encoder on their concatenation.

    ``shapes`` maps each input's name to its per-record shape; names starting with
    ``"grad:"`` of two or more dimensions get a gradient component.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], n_classes: int, width: str) -> None:
        super().__init__()
        if width not in WIDTHS:
            raise InvalidAuditInput(f"width must be one of {tuple(WIDTHS)}, got {width!r}")
        channels, hidden = WIDTHS[width]
        self.names = list(shapes)
        components = {}
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            if name.startswith("grad:") and len(shape) >= 2:
                rows = int(shape[0])
                components[name] = _GradientComponent(rows, size // rows, channels, hidden)
            elif name == "label":
                components[name] = _dense((n_classes, 128, 64))
            else:
                components[name] = _dense((size, 100, 64))
        self.components = nn.ModuleDict({_key(n): c for n, c in components.items()})
        total = sum(_out(c) for c in components.values())
        self.encoder = nn.Sequential(_dense((total, 256, 128, 64)), nn.Linear(64, 1))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.components[_key(n)](inputs[n].flatten(1)) for n in self.names]
        return self.encoder(torch.cat(parts, dim=1)).squeeze(1)


def _key(name: str) -> str:
    return name.replace(".", "__").replace(":", "_")


def _out(component: nn.Module) -> int:
    if isinstance(component, _GradientComponent):
        return component.out_features
    return [m for m in component if isinstance(m, nn.Linear)][-1].out_features


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise InvalidAuditInput(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


class _Standardiser:
    """Entry-wise mean and standard deviation of each input over the training records."""

    def __init__(self, inputs: dict[str, np.ndarray]) -> None:
        self.stats = {}
        for name, arr in inputs.items():
            a = arr.astype(np.float64)
            std = a.std(axis=0)
            self.stats[name] = (
                a.mean(axis=0).astype(np.float32),
                np.where(std > 1e-12, std, 1.0).astype(np.float32),
            )

    def __call__(self, inputs: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            name: torch.from_numpy((inputs[name][rows] - mean) / std)
            for name, (mean, std) in self.stats.items()
        }


def train_attack_network(
    inputs: dict[str, np.ndarray],
    is_member: np.ndarray,
    *,
    n_classes: int,
    width: str = "compact",
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    epochs: int = 20,
    batch_size: int = 64,
    seed: int = 0,
    on_epoch=None,
):
    """Train an :class:`AttackNetwork` on records of known membership.

    Returns a function mapping an input dict (same keys, any number of records) to float64
    membership logits. ``on_epoch(epoch, predict, loss)``, when given, is called after
    every epoch with that function (ML Privacy Meter v1 reports test accuracy per epoch).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    shapes = {name: tuple(arr.shape[1:]) for name, arr in inputs.items()}
    net = AttackNetwork(shapes, n_classes, width)
    standardise = _Standardiser(inputs)
    opt = _optimizer(optimizer, net.parameters(), learning_rate)
    members = np.flatnonzero(is_member)
    others = np.flatnonzero(~is_member)
    per_side = max(1, batch_size // 2)
    steps = max(1, max(members.size, others.size) // per_side)

    def predict(new_inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(new_inputs.values())))
        out = np.empty(n)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            for start in range(0, n, 1024):
                rows = np.arange(start, min(n, start + 1024))
                out[rows] = net(standardise(new_inputs, rows)).double().numpy()
        net.train(was_training)
        return out

    net.train()
    for epoch in range(epochs):
        m_order = rng.permutation(np.resize(rng.permutation(members), steps * per_side))
        o_order = rng.permutation(np.resize(rng.permutation(others), steps * per_side))
        for s in range(steps):
            rows = np.concatenate(
                [
                    m_order[s * per_side : (s + 1) * per_side],
                    o_order[s * per_side : (s + 1) * per_side],
                ]
            )
            target = torch.from_numpy(np.asarray(is_member[rows], dtype=np.float32))
            loss = F.binary_cross_entropy_with_logits(net(standardise(inputs, rows)), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch, predict, float(loss.detach()))
    net.eval()
    return predict
