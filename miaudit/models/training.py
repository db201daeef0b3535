"""A small, fast, seeded training loop for the target, reference and shadow models.

The data sit on the device as one tensor; each epoch draws a permutation from a seeded
``torch.Generator`` and slices it into batches, augmenting whole batches at once. There is no
``DataLoader`` and no per-record Python code, which is what keeps CPU training of many
reference models affordable.

Randomness is passed in, never taken from or left in global state: the permutation and the
augmentation come from a generator seeded with ``seed``, and dropout (which can only use the
global generator) runs inside ``torch.random.fork_rng`` seeded with ``seed``, so the caller's
random state is the same before and after.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.models.augment import flip_and_shift
from miaudit.validation import MAX_COUNT, MAX_LR, is_int, is_real

__all__ = [
    "ProgressCallback",
    "TrainResult",
    "TrainingConfig",
    "accuracy",
    "predict_logits",
    "resolve_device",
    "train_model",
]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, float], None]

_OPTIMIZERS = ("sgd", "adam", "adamw")
_SCHEDULES = ("constant", "cosine", "step", "onecycle")
_DEVICES = ("auto", "cpu", "cuda")
#: Arithmetic of the forward and backward passes (``TrainingConfig.precision``).
PRECISIONS = ("float32", "bfloat16")
# Records per forward pass when train_model measures accuracy. On a CPU, chunks of 2,048
# CIFAR-sized images push the activations of the first convolution (~270 MB) out of the
# caches; 256 made the accuracy pass of small_cnn 1.3-1.7x faster (benchmarks/
# trainer_throughput.py). A GPU prefers big chunks.
_EVAL_BATCH = {"cpu": 256, "cuda": 2048}


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """How to train one model; plain data, so it can be hashed into a recipe fingerprint.

    The instance validates itself when created (see :meth:`validate`), so an invalid
    configuration never exists.

    Attributes
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int
        Records per optimisation step. A last batch of a single record is merged into the
        one before it, because BatchNorm cannot normalise one record.
    optimizer : {"sgd", "adam", "adamw"}
        ``"adamw"`` decouples weight decay from the gradient (Loshchilov & Hutter, ICLR 2019).
    lr : float
        Peak learning rate.
    momentum : float
        SGD momentum in [0, 1); ignored by Adam and AdamW.
    nesterov : bool
        Nesterov momentum; SGD only and needs ``momentum > 0``.
    weight_decay : float
        L2 penalty (decoupled for AdamW), applied to every parameter. Also the "L2" training
        defence.
    schedule : {"constant", "cosine", "step", "onecycle"}
        Learning rate over the run, updated every step: ``"cosine"`` anneals from ``lr`` to 0;
        ``"step"`` multiplies by ``step_gamma`` every ``step_size`` epochs; ``"onecycle"``
        rises linearly from ``lr / 25`` to ``lr`` over the first ``warmup_fraction`` of the
        steps, then falls linearly to 0 (the triangular schedule of Smith & Topin, 2019).
    step_size : int
        Epochs between decays for ``"step"``.
    step_gamma : float
        Decay factor in (0, 1] for ``"step"``.
    warmup_fraction : float
        Fraction of steps spent rising for ``"onecycle"``, in (0, 1).
    augment : bool
        Random horizontal flip and shift by up to ``crop_padding`` pixels, images only. For
        tabular data it is ignored with a warning: flipping a feature vector is meaningless,
        and refusing would make one recipe unusable on both kinds of data.
    crop_padding : int
        Largest shift in pixels for ``augment``.
    label_smoothing : float
        Cross-entropy label smoothing in [0, 1).
    mixup_alpha : float
        Mixup (Zhang et al., ICLR 2018) when > 0: each batch is blended with a shuffled copy
        of itself, ``lam ~ Beta(alpha, alpha)``, and so are the two labels' losses. A
        training defense.
    dp_noise_multiplier, dp_target_epsilon : float, optional
        DP-SGD through Opacus (:mod:`miaudit.models.dp`) when either is given (not both):
        the noise multiplier itself, or the ε to reach at ``dp_delta`` after ``epochs``.
    dp_delta : float
        δ of the accountant's (ε, δ).
    dp_max_grad_norm : float
        Per-sample gradient clipping norm.
    dp_poisson : bool
        Poisson sampling of the batches (what the accountant assumes).
    early_stopping_patience : int
        When > 0, stop once the loss on the held-out records (``eval_x``/``eval_y``, which
        must then be given) has not improved for this many epochs, and keep the weights of
        the best epoch. A training defense; the held-out records are never trained on.
    precision : {"float32", "bfloat16"}
        ``"bfloat16"`` runs the forward and backward passes under ``torch.autocast``
        (mixed precision: weights, optimiser state and the loss stay float32), which a GPU
        of the last years computes several times faster. It changes what is trained, so it
        enters the recipe's fingerprint (only when not the default, so that cached models
        keep their keys); a reference pool trained in bfloat16 mimics a target trained the
        same way. Not with DP-SGD.
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` picks CUDA when available. Not part of a recipe's fingerprint. On a GPU,
        images train in the channels-last memory layout (faster convolutions, the same
        arithmetic up to the order of operations), and every training set is moved to the
        device once, before the first epoch.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    step_size: int = 30
    step_gamma: float = 0.1
    warmup_fraction: float = 0.25
    augment: bool = False
    crop_padding: int = 4
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    dp_noise_multiplier: float | None = None
    dp_target_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 1.0
    dp_poisson: bool = True
    early_stopping_patience: int = 0
    precision: str = "float32"
    device: str = field(default="auto")

    @property
    def private(self) -> bool:
        """True when the recipe trains with DP-SGD."""
        return self.dp_noise_multiplier is not None or self.dp_target_epsilon is not None

    def __post_init__(self) -> None:
        self.validate()
        # Plain Python numbers, so that lr=1 and lr=1.0 (or numpy scalars) give the same
        # fingerprint and JSON.
        for name in (
            "epochs",
            "batch_size",
            "step_size",
            "crop_padding",
            "early_stopping_patience",
        ):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in (
            "lr",
            "momentum",
            "weight_decay",
            "step_gamma",
            "warmup_fraction",
            "label_smoothing",
            "mixup_alpha",
            "dp_delta",
            "dp_max_grad_norm",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("dp_noise_multiplier", "dp_target_epsilon"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))

    def validate(self) -> None:
        """Check every field and raise once, listing each bad one.

        Raises
        ------
        InvalidAuditInput
            Names each field at fault, what is allowed and what was given.
        """
        p: list[str] = []
        for name in ("epochs", "batch_size", "step_size"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                p.append(f"{name} must be a positive int, got {value!r}")
            elif value > MAX_COUNT:  # a typo (1e20) would otherwise run until killed
                p.append(f"{name} must be at most {MAX_COUNT:,}, got {value!r}")
        if self.optimizer not in _OPTIMIZERS:
            p.append(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if not is_real(self.lr) or not 0 < self.lr <= MAX_LR:
            p.append(f"lr must be a positive number at most {MAX_LR:g}, got {self.lr!r}")
        if not is_real(self.momentum) or not 0 <= self.momentum < 1:
            p.append(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not isinstance(self.nesterov, bool):
            p.append(f"nesterov must be True or False, got {self.nesterov!r}")
        elif self.nesterov and (
            self.optimizer != "sgd" or not is_real(self.momentum) or self.momentum <= 0
        ):
            p.append(
                "nesterov=True needs optimizer 'sgd' and momentum > 0, got optimizer "
                f"{self.optimizer!r} and momentum {self.momentum!r}"
            )
        if not is_real(self.weight_decay) or self.weight_decay < 0:
            p.append(f"weight_decay must be a non-negative number, got {self.weight_decay!r}")
        if self.schedule not in _SCHEDULES:
            p.append(f"schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        if not is_real(self.step_gamma) or not 0 < self.step_gamma <= 1:
            p.append(f"step_gamma must lie in (0, 1], got {self.step_gamma!r}")
        if not is_real(self.warmup_fraction) or not 0 < self.warmup_fraction < 1:
            p.append(f"warmup_fraction must lie in (0, 1), got {self.warmup_fraction!r}")
        if not isinstance(self.augment, bool):
            p.append(f"augment must be True or False, got {self.augment!r}")
        if not is_int(self.crop_padding) or self.crop_padding < 0:
            p.append(f"crop_padding must be a non-negative int, got {self.crop_padding!r}")
        if not is_real(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            p.append(f"label_smoothing must lie in [0, 1), got {self.label_smoothing!r}")
        if self.device not in _DEVICES:
            p.append(f"device must be one of {_DEVICES}, got {self.device!r}")
        if not is_real(self.mixup_alpha) or self.mixup_alpha < 0:
            p.append(f"mixup_alpha must be a non-negative number, got {self.mixup_alpha!r}")
        for name in ("dp_noise_multiplier", "dp_target_epsilon"):
            value = getattr(self, name)
            if value is not None and (not is_real(value) or value < 0):
                p.append(f"{name} must be a non-negative number, got {value!r}")
        if self.dp_noise_multiplier is not None and self.dp_target_epsilon is not None:
            p.append("give dp_noise_multiplier or dp_target_epsilon, not both")
        if self.dp_target_epsilon is not None and is_real(self.dp_target_epsilon):
            if self.dp_target_epsilon <= 0:
                p.append("dp_target_epsilon must be > 0")
        if not is_real(self.dp_delta) or not 0 < self.dp_delta < 1:
            p.append(f"dp_delta must lie in (0, 1), got {self.dp_delta!r}")
        if not is_real(self.dp_max_grad_norm) or self.dp_max_grad_norm <= 0:
            p.append(f"dp_max_grad_norm must be a positive number, got {self.dp_max_grad_norm!r}")
        if self.precision not in PRECISIONS:
            p.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        elif self.precision != "float32" and self.private:
            p.append(
                "precision 'bfloat16' cannot be combined with DP-SGD (Opacus trains in float32)"
            )
        patience = self.early_stopping_patience
        if not is_int(patience) or patience < 0:
            p.append(f"early_stopping_patience must be a non-negative int, got {patience!r}")
        elif patience and (
            self.dp_noise_multiplier is not None or self.dp_target_epsilon is not None
        ):
            p.append(
                "early stopping looks at held-out records each epoch; with DP-SGD that is "
                "extra privacy cost the accountant does not count"
            )
        if not isinstance(self.dp_poisson, bool):
            p.append(f"dp_poisson must be True or False, got {self.dp_poisson!r}")
        private = self.dp_noise_multiplier is not None or self.dp_target_epsilon is not None
        if private and is_real(self.mixup_alpha) and self.mixup_alpha > 0:
            p.append("mixup blends records, so DP-SGD's per-record guarantee would not hold")
        if private and not p:
            from miaudit.models.dp import require_opacus

            require_opacus()
        raise_if_problems("TrainingConfig", p)

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: value}`` for JSON, reports and fingerprints."""
        return asdict(self)

    def lr_factor(self, step: int, steps_per_epoch: int) -> float:
        """Multiplier of ``lr`` at optimisation step ``step`` (0-based) of the run."""
        total = self.epochs * steps_per_epoch
        t = step / total
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if self.schedule == "step":
            return self.step_gamma ** (step // steps_per_epoch // self.step_size)
        if self.schedule == "onecycle":
            start = 1.0 / 25.0
            if t < self.warmup_fraction:
                return start + (1.0 - start) * t / self.warmup_fraction
            return (1.0 - t) / (1.0 - self.warmup_fraction)
        return 1.0


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A trained model and how it fared.

    Attributes
    ----------
    model : torch.nn.Module
        The model passed to :func:`train_model`, trained in place, in eval mode, on the
        training device.
    train_accuracy : float
        Accuracy on the un-augmented training records, in eval mode.
    test_accuracy : float or None
        Accuracy on ``eval_x``/``eval_y`` when given.
    seconds : float
        Wall-clock time of the whole call.
    epoch_losses : list of float
        Mean training loss (augmented batches, train mode) of each epoch.
    """

    model: nn.Module
    train_accuracy: float
    test_accuracy: float | None
    seconds: float
    epoch_losses: list[float]
    privacy: dict | None = None
    best_epoch: int | None = None
    validation_losses: list[float] = field(default_factory=list)


def autocast_for(config: TrainingConfig, device: torch.device):
    """The ``torch.autocast`` context of ``config.precision`` on ``device`` (a no-op
    context for float32)."""
    return torch.autocast(
        device_type=device.type,
        dtype=torch.bfloat16,
        enabled=config.precision == "bfloat16",
    )


def channels_last_on(device: torch.device) -> bool:
    """Whether images train in the channels-last layout there: on a GPU, where cuDNN's
    convolutions are faster in it; on a CPU the layout gains little and is left alone."""
    return device.type == "cuda"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` (or a ``torch.device``) into a usable device.

    Raises
    ------
    InvalidAuditInput
        ``"cuda"`` asked for where PyTorch sees no GPU, or an unknown name.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidAuditInput(f"device: {device!r} is not a device ({exc})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidAuditInput(
            f"device: {device!r} asked for, but this PyTorch build sees no CUDA GPU; "
            "use 'auto' or 'cpu'"
        )
    return resolved


def _as_tensor(x: np.ndarray | torch.Tensor, dtype: torch.dtype, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype)
    if isinstance(x, np.ndarray):
        if dtype.is_floating_point and x.dtype.kind not in "fiu":
            raise InvalidAuditInput(f"{name} must hold numbers, got dtype {x.dtype}")
        if not dtype.is_floating_point and x.dtype.kind not in "iu":
            raise InvalidAuditInput(f"{name} must hold integer class labels, got {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    raise InvalidAuditInput(f"{name} must be a numpy array or torch tensor, got {type(x)}")


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def _set_modes(model: nn.Module, modes: list[bool]) -> None:
    for module, mode in zip(model.modules(), modes, strict=True):
        module.training = mode


def predict_logits(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 2048,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Logits of ``model`` on ``x``, computed in eval mode in large chunks.

    The mode of every submodule is restored afterwards, so a model that was training (or
    deliberately mixed, e.g. frozen BatchNorm) is left exactly as it was, and so is its
    device: only the input chunks move.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(n, *input_shape)`` float32 to ``(n, n_classes)`` logits.
    x : np.ndarray or torch.Tensor
        ``(n, *input_shape)`` records; cast to float32.
    batch_size : int
        Records per forward pass; only memory depends on it.
    device : str or torch.device, optional
        Where to compute; default the device of the model's parameters (CPU for a model
        without any). It must be where the model is.

    Returns
    -------
    np.ndarray
        ``(n, n_classes)`` float64 logits.
    """
    problems: list[str] = []
    if not is_int(batch_size) or batch_size < 1:
        problems.append(f"batch_size must be a positive int, got {batch_size!r}")
    raise_if_problems("predict_logits", problems)
    xt = _as_tensor(x, torch.float32, "x")
    if xt.ndim < 2:
        raise InvalidAuditInput(
            f"predict_logits: x must be (n, ...) records, got {tuple(xt.shape)}"
        )
    model_dev = _model_device(model)
    dev = resolve_device(device) if device is not None else (model_dev or torch.device("cpu"))
    if (
        model_dev is not None
        and model_dev != dev
        and not (model_dev.type == dev.type == "cuda" and dev.index is None)
    ):
        raise InvalidAuditInput(
            f"predict_logits: model is on {model_dev} but device={device!r}; move the model "
            "first (predict_logits never moves it)"
        )
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            # range(..) or [0]: an empty x still goes through the model once, so the
            # result has the right number of columns.
            starts = range(0, xt.shape[0], batch_size) or [0]
            chunks = [model(xt[i : i + batch_size].to(dev)).double().cpu() for i in starts]
    finally:
        _set_modes(model, modes)
    return torch.cat(chunks).numpy()


def accuracy(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 2048,
    device: str | torch.device | None = None,
) -> float:
    """Share of records whose largest logit is the true class (eval mode; mode restored).

    Parameters
    ----------
    model, x, batch_size, device
        As for :func:`predict_logits`.
    y : np.ndarray or torch.Tensor
        ``(n,)`` integer class labels.
    """
    yt = _as_tensor(y, torch.int64, "y").cpu()
    logits = predict_logits(model, x, batch_size=batch_size, device=device)
    if logits.shape[0] != yt.shape[0]:
        raise InvalidAuditInput(f"accuracy: x has {logits.shape[0]} records but y has {len(yt)}")
    if logits.shape[0] == 0:
        return float("nan")
    return float(np.mean(logits.argmax(axis=1) == yt.numpy()))


def _mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Mean cross-entropy of ``model`` on ``(x, y)`` in eval mode (held-out records)."""
    logits = torch.from_numpy(predict_logits(model, x, batch_size=batch_size))
    return float(F.cross_entropy(logits, y.cpu()))


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        # BatchNorm cannot normalise a single record in train mode: fold it into the
        # previous batch. Shuffling differs each epoch, so no record is favoured.
        bounds[-2] = (bounds[-2][0], n)
        bounds.pop()
    return bounds


def _make_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _check_pair(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, names: tuple[str, str]
) -> tuple[torch.Tensor, torch.Tensor]:
    xt = _as_tensor(x, torch.float32, names[0])
    yt = _as_tensor(y, torch.int64, names[1])
    problems = []
    if xt.ndim < 2:
        problems.append(f"{names[0]} must be (n, ...) records, got shape {tuple(xt.shape)}")
    if yt.ndim != 1:
        problems.append(f"{names[1]} must be 1-d, got shape {tuple(yt.shape)}")
    if xt.shape[0] != yt.shape[0]:
        problems.append(f"{names[0]} has {xt.shape[0]} records but {names[1]} has {yt.shape[0]}")
    if xt.shape[0] == 0:
        problems.append(f"{names[0]} is empty")
    if yt.numel() and int(yt.min()) < 0:
        problems.append(f"{names[1]} holds a negative label {int(yt.min())}")
    if xt.numel() and not bool(torch.isfinite(xt).all()):
        problems.append(f"{names[0]} contains NaN or infinite values")
    raise_if_problems("train_model", problems)
    return xt, yt


def train_model(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    config: TrainingConfig,
    *,
    seed: int,
    eval_x: np.ndarray | torch.Tensor | None = None,
    eval_y: np.ndarray | torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train ``model`` in place with cross-entropy on ``(x, y)``.

    Parameters
    ----------
    model : torch.nn.Module
        Freshly built (see :func:`~miaudit.models.architectures.build_model` with ``seed``)
        and mapping ``(n, *input_shape)`` to ``(n, n_classes)`` logits. It is moved to the
        training device and left there, in eval mode.
    x : np.ndarray or torch.Tensor
        ``(n, *input_shape)`` float32 training records; images as ``(n, c, h, w)``.
    y : np.ndarray or torch.Tensor
        ``(n,)`` integer labels in ``[0, n_classes)``.
    config : TrainingConfig
        Optimiser, schedule, augmentation and device.
    seed : int
        Seeds the batch order, the augmentation and dropout. The same model weights, data,
        config and seed give the same trained weights on the same device and PyTorch
        build (GPU kernels may add their own non-determinism).
    eval_x, eval_y : optional
        Held-out records for ``test_accuracy``; both or neither.
    progress : callable, optional
        ``progress(epoch, n_epochs, mean_loss)`` after each epoch (``epoch`` from 1); the
        library itself never prints.

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidAuditInput
        Inconsistent arrays, a label the model has no logit for, a model that rejects the
        input shape, an unavailable device, a bad seed.
    """
    start = time.perf_counter()
    problems: list[str] = []
    if not isinstance(config, TrainingConfig):
        problems.append(f"config must be a TrainingConfig, got {type(config).__name__}")
    if not is_int(seed) or seed < 0:
        problems.append(f"seed must be a non-negative int, got {seed!r}")
    if (eval_x is None) != (eval_y is None):
        problems.append("eval_x and eval_y must be given together")
    if isinstance(config, TrainingConfig) and config.early_stopping_patience and eval_x is None:
        problems.append(
            "early stopping needs held-out records (eval_x, eval_y) to watch the loss on"
        )
    if not isinstance(model, nn.Module):
        problems.append(f"model must be a torch.nn.Module, got {type(model).__name__}")
    raise_if_problems("train_model", problems)
    config.validate()
    device = resolve_device(config.device)

    xt, yt = _check_pair(x, y, ("x", "y"))
    ex = ey = None
    if eval_x is not None and eval_y is not None:
        ex, ey = _check_pair(eval_x, eval_y, ("eval_x", "eval_y"))
    model.to(device)
    xt, yt = xt.to(device), yt.to(device)  # the whole training set, once
    channels_last = xt.ndim == 4 and channels_last_on(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)

    # One probe forward pass turns shape and label errors into clear messages instead of a
    # failure deep inside the first epoch.
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            probe = model(xt[:2])
    except RuntimeError as exc:
        raise InvalidAuditInput(
            f"train_model: the model rejects records of shape {tuple(xt.shape[1:])}: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    finally:
        _set_modes(model, modes)
    if probe.ndim != 2:
        raise InvalidAuditInput(
            f"train_model: the model must return (n, n_classes) logits, got {tuple(probe.shape)}"
        )
    n_classes = probe.shape[1]
    for name, labels in (("y", yt), ("eval_y", ey)):
        if labels is not None and int(labels.max()) >= n_classes:
            raise InvalidAuditInput(
                f"train_model: {name} holds label {int(labels.max())} but the model has "
                f"{n_classes} outputs"
            )

    augment = config.augment
    if augment and xt.ndim != 4:
        warnings.warn(
            "TrainingConfig.augment is ignored: flips and shifts apply to images only "
            f"and these records have shape {tuple(xt.shape[1:])}",
            UserWarning,
            stacklevel=2,
        )
        augment = False
    if augment and config.crop_padding >= min(xt.shape[2:]):
        raise InvalidAuditInput(
            f"train_model: crop_padding={config.crop_padding} is too large for "
            f"{xt.shape[2]}x{xt.shape[3]} images (reflection needs it smaller than a side)"
        )

    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    optimizer = _make_optimizer(model, config)
    n = xt.shape[0]
    bounds = _batch_bounds(n, config.batch_size)
    epoch_losses: list[float] = []
    fork_devices: list[int] = []
    if device.type == "cuda":
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()]

    privacy = None
    mix_rng = np.random.default_rng(int(seed)) if config.mixup_alpha > 0 else None
    with torch.random.fork_rng(devices=fork_devices):
        # Dropout draws from the global generator; seed it here, inside the fork, so the
        # caller's global random state is untouched.
        torch.default_generator.manual_seed(int(seed))
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(int(seed))
        model.train()
        step = 0
        if config.private:
            from miaudit.models.dp import train_private

            def report(epoch: int, mean_loss: float) -> None:
                epoch_losses.append(mean_loss)
                if progress is not None:
                    progress(epoch + 1, config.epochs, mean_loss)

            def augment_batch(xb):
                return flip_and_shift(xb, config.crop_padding, generator, padding_mode="reflect")

            privacy = train_private(
                model,
                xt,
                yt,
                config,
                generator,
                augment_batch=augment_batch if augment else None,
                on_epoch=report,
            ).to_dict()
        best = (math.inf, -1, None)  # validation loss, epoch, weights
        validation_losses: list[float] = []
        for epoch in range(0 if config.private else config.epochs):
            order = torch.randperm(n, device=device, generator=generator)
            total = torch.zeros((), device=device)
            for lo, hi in bounds:
                factor = config.lr_factor(step, len(bounds))
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * factor
                idx = order[lo:hi]
                xb = xt[idx]
                if augment:
                    xb = flip_and_shift(xb, config.crop_padding, generator, padding_mode="reflect")
                yb = yt[idx]
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with autocast_for(config, device):
                    if mix_rng is not None:
                        lam = float(mix_rng.beta(config.mixup_alpha, config.mixup_alpha))
                        partner = torch.randperm(hi - lo, device=device, generator=generator)
                        out = model(lam * xb + (1.0 - lam) * xb[partner]).float()
                        loss = lam * F.cross_entropy(
                            out, yb, label_smoothing=config.label_smoothing
                        ) + (1.0 - lam) * F.cross_entropy(
                            out, yb[partner], label_smoothing=config.label_smoothing
                        )
                    else:
                        out = model(xb).float()
                        loss = F.cross_entropy(out, yb, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * (hi - lo)
                step += 1
            mean_loss = float(total) / n
            epoch_losses.append(mean_loss)
            logger.debug("epoch %d/%d: loss %.4f", epoch + 1, config.epochs, mean_loss)
            if progress is not None:
                progress(epoch + 1, config.epochs, mean_loss)
            if config.early_stopping_patience:
                held_out = _mean_loss(model, ex, ey, _EVAL_BATCH.get(device.type, 2048))
                validation_losses.append(held_out)
                model.train()
                if held_out < best[0]:
                    best = (held_out, epoch, copy.deepcopy(model.state_dict()))
                elif epoch - best[1] >= config.early_stopping_patience:
                    break
        if best[2] is not None:
            model.load_state_dict(best[2])

    if not all(math.isfinite(v) for v in epoch_losses):
        warnings.warn(
            f"training diverged: the loss became {epoch_losses[-1]} (lower lr, or a "
            "schedule with warm-up, may help)",
            RuntimeWarning,
            stacklevel=2,
        )
    model.eval()
    eval_batch = _EVAL_BATCH.get(device.type, 2048)
    train_acc = accuracy(model, xt, yt, batch_size=eval_batch)
    test_acc = None if ex is None else accuracy(model, ex, ey, batch_size=eval_batch)
    seconds = time.perf_counter() - start
    logger.info(
        "trained %d records for %d epochs in %.1f s: train accuracy %.4f",
        n,
        config.epochs,
        seconds,
        train_acc,
    )
    return TrainResult(
        model=model,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        seconds=seconds,
        epoch_losses=epoch_losses,
        privacy=privacy,
        best_epoch=None if best[2] is None else best[1] + 1,
        validation_losses=validation_losses,
    )
