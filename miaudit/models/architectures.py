"""The few network architectures miaudit can rebuild by name.

Reference and shadow models must be "like the target", so a recipe names its architecture
and parameters in plain data (strings, numbers, tuples) that go into cache keys and model
files. This module turns that plain data back into a ``torch.nn.Module``. torchvision is not
needed: the four networks are short enough to write here.

Every model takes a float32 batch shaped ``(n, *input_shape)`` and returns logits shaped
``(n, n_classes)``; softmax is left to the signals so that losses and scaled logits can be
computed from the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.validation import is_int

__all__ = [
    "ARCHITECTURES",
    "ArchitectureSpec",
    "ParamSpec",
    "build_model",
    "list_architectures",
    "register_architecture",
    "resolve_arch_params",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


# --------------------------------------------------------------------------------------
# Parameter checking
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One architecture parameter: its default, what is allowed, and how to check a value.

    Attributes
    ----------
    default : object
        Value used when the caller does not pass the parameter.
    allowed : str
        Human description of the allowed values, quoted in error messages.
    check : callable
        ``check(value) -> (normalised_value, ok)``; when ``ok`` is False the error message
        quotes ``allowed`` and the value received. Normalising (lists to tuples, ints to
        floats) makes equal settings compare and hash equal, which matters because
        parameters feed cache keys.
    """

    default: Any
    allowed: str
    check: Callable[[Any], tuple[Any, bool]]


def _int_tuple(*, min_len: int, max_len: int) -> Callable[[Any], tuple[Any, bool]]:
    def check(value: Any) -> tuple[Any, bool]:
        if isinstance(value, (list, tuple)) and all(is_int(v) and v > 0 for v in value):
            if min_len <= len(value) <= max_len:
                return tuple(int(v) for v in value), True
        return value, False

    return check


def _choice(*options: str) -> Callable[[Any], tuple[Any, bool]]:
    def check(value: Any) -> tuple[Any, bool]:
        return value, value in options

    return check


def _fraction(value: Any) -> tuple[Any, bool]:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if 0.0 <= value < 1.0:
            return float(value), True
    return value, False


def _width(value: Any) -> tuple[Any, bool]:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 4
    return (float(value), True) if ok else (value, False)


def _wrn_depth(value: Any) -> tuple[Any, bool]:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 10
    return (value, ok and (value - 4) % 6 == 0)


def _positive_int(value: Any) -> tuple[Any, bool]:
    if is_int(value) and value > 0:
        return int(value), True
    return value, False


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------


def _mlp(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    hidden: tuple[int, ...],
    activation: str,
    dropout: float,
) -> nn.Module:
    n_in = 1
    for size in input_shape:
        n_in *= size
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(n_in, width), _ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = width
    layers.append(nn.Linear(n_in, n_classes))
    return nn.Sequential(*layers)


def _lenet5(
    input_shape: tuple[int, ...], n_classes: int, *, activation: str, dropout: float
) -> nn.Module:
    channels, height, _ = input_shape
    act = _ACTIVATIONS[activation]

    def drop() -> list[nn.Module]:
        # Dropout, a training defense (Shokri et al. 2017), after each hidden dense layer.
        return [nn.Dropout(dropout)] if dropout > 0 else []

    # LeCun et al. (1998) fed 32x32 images to an unpadded 5x5 convolution; padding 28x28
    # images (MNIST) by 2 gives the same 16x5x5 feature map before the dense layers.
    pad = 2 if height == 28 else 0
    return nn.Sequential(
        nn.Conv2d(channels, 6, kernel_size=5, padding=pad),
        act(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        act(),
        *drop(),
        nn.Linear(120, 84),
        act(),
        *drop(),
        nn.Linear(84, n_classes),
    )


def _small_cnn(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    widths: tuple[int, ...],
    dropout: float,
) -> nn.Module:
    layers: list[nn.Module] = []
    c_in = input_shape[0]
    for width in widths:
        layers += [
            nn.Conv2d(c_in, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        c_in = width
    # Global average pooling keeps the head independent of the image size.
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c_in, n_classes))
    return nn.Sequential(*layers)


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al., CVPR 2016, Fig. 2)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            # Projection shortcut ("option B") where the shape changes.
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class _ResNet18(nn.Module):
    """ResNet-18 adapted to 32x32 images: 3x3 stem, no max-pool, four stages of two blocks.

    The ImageNet stem (7x7 stride-2 convolution then max-pool) would shrink a 32x32 image to
    8x8 before the first block; the CIFAR variant keeps full resolution there instead.
    """

    def __init__(self, channels: int, n_classes: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        stages: list[nn.Module] = []
        c_in = width
        for i, stride in enumerate((1, 2, 2, 2)):
            c_out = width * 2**i
            stages += [_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def _resnet18(input_shape: tuple[int, ...], n_classes: int, *, width: int) -> nn.Module:
    return _ResNet18(input_shape[0], n_classes, width)


#: VGG-16's convolution widths, "M" for a 2x2 max-pool (Simonyan & Zisserman 2015, config D).
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _vgg16_bn(
    input_shape: tuple[int, ...], n_classes: int, *, width: float, dropout: float
) -> nn.Module:
    """VGG-16 with batch norm for 32x32 images, as in MindArmour's CIFAR-100 tutorial and
    the CIFAR VGGs of the literature: the 13 convolutions of config D (each followed by
    batch norm and ReLU), five max-pools down to 1x1, then a 512-wide classifier. ``width``
    scales every layer (0.25 gives a CPU-sized network with the same depth)."""
    layers: list[nn.Module] = []
    c_in = input_shape[0]
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        c_out = max(1, round(int(item) * width))
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
        layers.append(nn.ReLU())
        c_in = c_out
    hidden = max(1, round(512 * width))
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, hidden)]
    head.append(nn.ReLU())
    if dropout > 0:
        head.append(nn.Dropout(dropout))
    head.append(nn.Linear(hidden, n_classes))
    return nn.Sequential(nn.Sequential(*layers), nn.Sequential(*head))


class _WideBlock(nn.Module):
    """Pre-activation residual block of a wide ResNet (BN-ReLU-conv twice, Zagoruyko &
    Komodakis 2016, Fig. 1d), with dropout between the convolutions when asked."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        # The projection shortcut takes the activated input, as in the authors' code.
        shortcut = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.drop(torch.relu(self.bn2(out))))
        return out + shortcut


class _WideResNet(nn.Module):
    """WRN-d-k: a 3x3 stem of 16 channels, three groups of (d - 4) / 6 blocks of widths
    16k, 32k, 64k (strides 1, 2, 2), BN-ReLU, global average pool, linear."""

    def __init__(self, channels: int, n_classes: int, depth: int, k: int, dropout: float):
        super().__init__()
        per_group = (depth - 4) // 6
        self.stem = nn.Conv2d(channels, 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        c_in = 16
        for group, stride in enumerate((1, 2, 2)):
            c_out = 16 * k * 2**group
            for i in range(per_group):
                blocks.append(_WideBlock(c_in, c_out, stride if i == 0 else 1, dropout))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))


def _wide_resnet(
    input_shape: tuple[int, ...], n_classes: int, *, depth: int, k: int, dropout: float
) -> nn.Module:
    return _WideResNet(input_shape[0], n_classes, depth, k, dropout)


# --------------------------------------------------------------------------------------
# Input-shape rules
# --------------------------------------------------------------------------------------


def _any_shape(input_shape: tuple[int, ...], params: Mapping[str, Any]) -> str | None:
    return None


def _lenet_shape(input_shape: tuple[int, ...], params: Mapping[str, Any]) -> str | None:
    if len(input_shape) != 3:
        return f"needs image input (channels, height, width), got input_shape {input_shape}"
    c, h, w = input_shape
    if c not in (1, 3) or (h, w) not in ((28, 28), (32, 32)):
        return f"needs 1 or 3 channels of 28x28 or 32x32 pixels, got {c} channel(s) of {h}x{w}"
    return None


def _min_image_shape(minimum: Callable[[Mapping[str, Any]], int]) -> Callable[..., str | None]:
    def check(input_shape: tuple[int, ...], params: Mapping[str, Any]) -> str | None:
        if len(input_shape) != 3:
            return f"needs image input (channels, height, width), got input_shape {input_shape}"
        side = minimum(params)
        if min(input_shape[1:]) < side:
            return f"needs images of at least {side}x{side} pixels, got {input_shape[1:]}"
        return None

    return check


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchitectureSpec:
    """What ``build_model`` needs to know about one architecture.

    Attributes
    ----------
    name : str
        Registry key, as written in recipes, configuration files and model files.
    description : str
        One line for ``list_architectures`` and error messages.
    params : mapping of str to ParamSpec
        Every keyword the builder accepts; anything else is refused.
    check_shape : callable
        ``check_shape(input_shape, params) -> problem or None``.
    builder : callable
        ``builder(input_shape, n_classes, **params) -> nn.Module``.
    """

    name: str
    description: str
    params: Mapping[str, ParamSpec]
    check_shape: Callable[[tuple[int, ...], Mapping[str, Any]], str | None]
    builder: Callable[..., nn.Module]


_ACT = ParamSpec("relu", "'relu' or 'tanh'", _choice("relu", "tanh"))
_DROPOUT = ParamSpec(0.0, "a float in [0, 1)", _fraction)

_BUILT_IN: dict[str, ArchitectureSpec] = dict(
    {
        "mlp": ArchitectureSpec(
            name="mlp",
            description="fully connected network; flattens any input",
            params=MappingProxyType(
                {
                    "hidden": ParamSpec(
                        (128,),
                        "a tuple of 0 to 16 positive ints (hidden layer widths)",
                        _int_tuple(min_len=0, max_len=16),
                    ),
                    "activation": _ACT,
                    "dropout": _DROPOUT,
                }
            ),
            check_shape=_any_shape,
            builder=_mlp,
        ),
        "lenet5": ArchitectureSpec(
            name="lenet5",
            description="LeNet-5 (LeCun et al. 1998) for 1- or 3-channel 28x28 or 32x32 images",
            params=MappingProxyType({"activation": _ACT, "dropout": _DROPOUT}),
            check_shape=_lenet_shape,
            builder=_lenet5,
        ),
        "small_cnn": ArchitectureSpec(
            name="small_cnn",
            description="conv-BN-ReLU-maxpool blocks, global average pool, linear; fast on CPU",
            params=MappingProxyType(
                {
                    "widths": ParamSpec(
                        (32, 64, 128),
                        "a tuple of 1 to 6 positive ints (channels per block)",
                        _int_tuple(min_len=1, max_len=6),
                    ),
                    "dropout": _DROPOUT,
                }
            ),
            # Each block halves the image; it must stay at least one pixel wide.
            check_shape=_min_image_shape(lambda p: 2 ** len(p["widths"])),
            builder=_small_cnn,
        ),
        "resnet18": ArchitectureSpec(
            name="resnet18",
            description="CIFAR-style ResNet-18 (3x3 stem, no max-pool), made for 32x32 images",
            params=MappingProxyType(
                {
                    "width": ParamSpec(
                        64, "a positive int (channels of the first stage)", _positive_int
                    )
                }
            ),
            check_shape=_min_image_shape(lambda p: 8),
            builder=_resnet18,
        ),
        "vgg16_bn": ArchitectureSpec(
            name="vgg16_bn",
            description="VGG-16 with batch norm for 32x32 images (MindArmour's CIFAR-100 "
            "tutorial); width scales every layer",
            params=MappingProxyType(
                {
                    "width": ParamSpec(1.0, "a float in (0, 4]", _width),
                    "dropout": _DROPOUT,
                }
            ),
            check_shape=_min_image_shape(lambda p: 32),
            builder=_vgg16_bn,
        ),
        "wide_resnet": ArchitectureSpec(
            name="wide_resnet",
            description="Wide ResNet WRN-depth-k (Zagoruyko & Komodakis 2016), default "
            "WRN-28-2; depth = 6n + 4",
            params=MappingProxyType(
                {
                    "depth": ParamSpec(28, "an int 6n + 4 >= 10 (10, 16, 22, 28, ...)", _wrn_depth),
                    "k": ParamSpec(2, "a positive int (widening factor)", _positive_int),
                    "dropout": _DROPOUT,
                }
            ),
            check_shape=_min_image_shape(lambda p: 4),
            builder=_wide_resnet,
        ),
    }
)
#: The registry: miaudit's own architectures and those registered with
#: :func:`register_architecture`. Read-only here; it reflects later registrations.
_REGISTRY: dict[str, ArchitectureSpec] = dict(_BUILT_IN)
ARCHITECTURES: Mapping[str, ArchitectureSpec] = MappingProxyType(_REGISTRY)


def _plain(value: Any) -> tuple[Any, bool]:
    """A registered architecture's parameter: plain data (it enters cache keys and model
    files), lists made tuples so that equal settings compare equal."""
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        return tuple(v for v, _ in items), all(ok for _, ok in items)
    return value, value is None or isinstance(value, bool | int | float | str)


def register_architecture(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    params: Mapping[str, Any] | None = None,
    description: str = "",
    replace: bool = False,
) -> None:
    """Make your own network buildable by name, like miaudit's own.

    Registered, a network can be named by a :class:`~miaudit.models.TorchRecipe` (trained
    by miaudit's trainer) or by a :class:`~miaudit.models.PythonRecipe` whose training
    function returns it (``architecture=name``), and its models are cached as weights
    (``state_dict``, loaded with ``weights_only=True``) instead of being retrained.

    Parameters
    ----------
    name : str
        Registry key (letters, digits, ``_``, ``-``, ``.``); miaudit's own names cannot be
        replaced.
    builder : callable
        ``builder(input_shape, n_classes, **params) -> torch.nn.Module`` returning logits
        for a float32 batch ``(n, *input_shape)``. Weights are drawn from PyTorch's global
        generator, which :func:`build_model` seeds.
    params : mapping, optional
        Each parameter the builder takes, with its default (plain data: numbers, strings,
        booleans, tuples). Default: the builder's keyword parameters that have defaults.
    description : str
        One line for :func:`list_architectures`.
    replace : bool
        Allow replacing an earlier registration under ``name`` by another builder.
        Registering the same builder again (a module imported twice) is always allowed.

    Raises
    ------
    InvalidAuditInput
        A bad name, a built-in name, a name taken by another builder, or parameters that
        are not plain data.
    """
    import inspect
    import re

    problems = []
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        problems.append(f"name must be 1 to 64 letters, digits, '_', '-' or '.', got {name!r}")
    elif name in _BUILT_IN:
        problems.append(f"{name!r} is one of miaudit's own architectures; choose another name")
    if not callable(builder):
        problems.append(f"builder must be callable, got {type(builder).__name__}")
    if params is None and callable(builder):
        signature = inspect.signature(builder)
        params = {
            p.name: p.default
            for p in list(signature.parameters.values())[2:]
            if p.default is not inspect.Parameter.empty
        }
    specs = {}
    for pname, default in dict(params or {}).items():
        value, ok = _plain(default)
        if not ok:
            problems.append(f"parameter {pname!r}: default {default!r} is not plain data")
        specs[pname] = ParamSpec(value, "plain data (numbers, strings, tuples)", _plain)
    existing = _REGISTRY.get(name) if isinstance(name, str) else None
    if existing is not None and existing.builder is not builder and not replace:
        problems.append(f"{name!r} is already registered with another builder; pass replace=True")
    raise_if_problems("register_architecture", problems)
    _REGISTRY[name] = ArchitectureSpec(
        name=name,
        description=description or f"registered: {getattr(builder, '__qualname__', name)}",
        params=MappingProxyType(specs),
        check_shape=_any_shape,
        builder=builder,
    )


def list_architectures() -> dict[str, dict[str, Any]]:
    """Every architecture name with its description and parameters (default, allowed).

    Returns
    -------
    dict
        ``{name: {"description": str, "params": {param: {"default": ..., "allowed": str}}}}``,
        plain data suitable for the command line's help and for error messages.
    """
    return {
        name: {
            "description": spec.description,
            "params": {
                p: {"default": ps.default, "allowed": ps.allowed} for p, ps in spec.params.items()
            },
        }
        for name, spec in ARCHITECTURES.items()
    }


def _spec_for(name: Any) -> ArchitectureSpec:
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise InvalidAuditInput(
            f"architecture: unknown name {name!r}; allowed: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[name]


def _resolve(spec: ArchitectureSpec, params: Mapping[str, Any], problems: list[str]) -> dict:
    resolved: dict[str, Any] = {}
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        allowed = ", ".join(sorted(spec.params)) or "none"
        problems.append(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} (allowed: {allowed})"
        )
    for pname, pspec in spec.params.items():
        value = params.get(pname, pspec.default)
        normalised, ok = pspec.check(value)
        if not ok:
            problems.append(f"{pname} must be {pspec.allowed}, got {value!r}")
            # Keep checking the input shape against the default rather than a broken value.
            normalised = pspec.default
        resolved[pname] = normalised
    return resolved


def resolve_arch_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check ``params`` for architecture ``name`` and fill in the defaults.

    Recipes store the resolved form so that ``{}`` and the explicit defaults give the same
    fingerprint, and so that a model file records every setting it was built with.

    Parameters
    ----------
    name : str
        A key of :data:`ARCHITECTURES`.
    params : mapping, optional
        Keyword parameters for the architecture; lists are accepted where tuples are meant.

    Returns
    -------
    dict
        Every parameter of the architecture, normalised (tuples of ints, floats).

    Raises
    ------
    InvalidAuditInput
        Unknown name, unknown parameter or bad value; all problems listed at once.
    """
    spec = _spec_for(name)
    problems: list[str] = []
    resolved = _resolve(spec, dict(params or {}), problems)
    raise_if_problems(f"architecture {name!r}", problems)
    return resolved


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    seed: int | None = None,
    **params: Any,
) -> nn.Module:
    """Build a freshly initialised network that maps ``(n, *input_shape)`` to logits.

    Parameters
    ----------
    name : str
        ``"mlp"``, ``"lenet5"``, ``"small_cnn"`` or ``"resnet18"`` (see
        :func:`list_architectures` for each one's parameters).
    input_shape : tuple of int
        Shape of one record: ``(features,)`` for tabular data, ``(c, h, w)`` for images.
    n_classes : int
        Number of output logits, at least 2.
    seed : int, optional
        Seed for the initial weights. The weights are drawn inside
        ``torch.random.fork_rng`` so the caller's global random state is left untouched;
        the same seed gives bit-identical weights. ``None`` draws from the global state.
    **params
        Architecture parameters, checked against the registry.

    Returns
    -------
    torch.nn.Module
        In training mode, on the CPU (or on the default device of an enclosing
        ``torch.device`` context).

    Raises
    ------
    InvalidAuditInput
        Lists every problem at once: unknown name, unknown or bad parameter, an input shape
        the architecture cannot take (e.g. an image network on tabular data), bad n_classes.
    """
    spec = _spec_for(name)
    problems: list[str] = []
    resolved = _resolve(spec, params, problems)
    shape_ok = isinstance(input_shape, (tuple, list)) and all(
        is_int(s) and s > 0 for s in input_shape
    )
    if not shape_ok or len(input_shape) == 0:
        problems.append(
            f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}"
        )
    else:
        shape_problem = spec.check_shape(tuple(input_shape), resolved)
        if shape_problem:
            problems.append(shape_problem)
    if not is_int(n_classes) or n_classes < 2:
        problems.append(f"n_classes must be an int of at least 2, got {n_classes!r}")
    if seed is not None and (not is_int(seed) or seed < 0):
        problems.append(f"seed must be a non-negative int or None, got {seed!r}")
    raise_if_problems(f"architecture {name!r}", problems)

    shape = tuple(int(s) for s in input_shape)
    if seed is None:
        return spec.builder(shape, int(n_classes), **resolved)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        return spec.builder(shape, int(n_classes), **resolved)
