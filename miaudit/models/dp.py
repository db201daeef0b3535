"""DP-SGD training through Opacus (Abadi et al., CCS 2016; Yousefpour et al., 2021).

miaudit writes no DP-SGD of its own: :func:`train_private` hands the model, the optimiser
and a data loader over the training tensors to ``opacus.PrivacyEngine.make_private``
(per-sample gradients, clipping to ``dp_max_grad_norm``, Gaussian noise, Poisson sampling
when ``dp_poisson``), runs the recipe's epochs and schedule over Opacus' loader, and asks
the engine's accountant (RDP) for the ε spent at ``dp_delta``. With ``dp_target_epsilon``
the noise multiplier comes from Opacus' ``get_noise_multiplier`` for the run's sampling
rate and epochs. Opacus is an optional dependency (``pip install miaudit[dp]``); a recipe
that asks for DP without it fails with that instruction, before anything is trained.

The accountant's ε is an upper bound on the privacy loss the training can cause; the
audits of :mod:`miaudit.dp_audit` give empirical lower bounds to put next to it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from miaudit.errors import InvalidAuditInput

__all__ = ["PrivacySpent", "check_private_model", "require_opacus", "train_private"]


@dataclass(frozen=True)
class PrivacySpent:
    """What one DP-SGD run spent, by the accountant (an upper bound on its ε)."""

    epsilon: float
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    accountant: str = "rdp"

    def to_dict(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "accountant": self.accountant,
        }


def require_opacus() -> Any:
    """The ``opacus`` module, or a clear error saying how to install it."""
    try:
        import opacus
    except ImportError:
        raise InvalidAuditInput(
            "DP-SGD training needs Opacus: pip install 'miaudit[dp]' (or pip install opacus)"
        ) from None
    return opacus


def check_private_model(model: nn.Module) -> None:
    """Refuse layers Opacus cannot train privately (BatchNorm mixes records of a batch)."""
    require_opacus()
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        listed = "; ".join(str(e) for e in errors[:5])
        raise InvalidAuditInput(
            f"DP-SGD cannot train this network ({listed}); use an architecture without "
            "BatchNorm (mlp, lenet5)"
        )


class _Shuffled(torch.utils.data.Sampler):
    """Batches of one fresh permutation per epoch, as the non-private loop draws them."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        from miaudit.models.training import _batch_bounds

        self.n, self.generator = n, generator
        self.bounds = _batch_bounds(n, batch_size)

    def __iter__(self):
        order = torch.randperm(self.n, device=self.generator.device, generator=self.generator)
        for lo, hi in self.bounds:
            yield order[lo:hi].tolist()

    def __len__(self) -> int:
        return len(self.bounds)


def train_private(
    model: nn.Module,
    xt: torch.Tensor,
    yt: torch.Tensor,
    config: Any,
    generator: torch.Generator,
    *,
    augment_batch=None,
    on_epoch=None,
) -> PrivacySpent:
    """Train ``model`` in place with DP-SGD over ``(xt, yt)``; return the privacy spent.

    ``config`` is the recipe's :class:`~miaudit.models.TrainingConfig` (its optimiser,
    learning rate and schedule, epochs, batch size and ``dp_*`` fields); ``generator``
    seeds the batch sampling and the noise; ``augment_batch(xb)`` augments a batch;
    ``on_epoch(epoch, mean_loss)`` reports progress.
    """
    from opacus import PrivacyEngine
    from opacus.accountants.utils import get_noise_multiplier

    from miaudit.models.training import _make_optimizer

    check_private_model(model)
    n = xt.shape[0]
    sampler = _Shuffled(n, config.batch_size, generator)
    # Opacus' Poisson loader samples each record with rate 1 / (batches per epoch) and
    # takes that many steps per epoch; the noise is calibrated to exactly that run.
    steps_per_epoch = len(sampler)
    sample_rate = 1.0 / steps_per_epoch
    if config.dp_target_epsilon is not None:
        sigma = float(
            get_noise_multiplier(
                target_epsilon=config.dp_target_epsilon,
                target_delta=config.dp_delta,
                sample_rate=sample_rate,
                steps=config.epochs * steps_per_epoch,
                accountant="rdp",
            )
        )
    else:
        sigma = float(config.dp_noise_multiplier)
    optimizer = _make_optimizer(model, config)
    dataset = torch.utils.data.TensorDataset(xt, yt)
    # Without Poisson sampling the batches are exactly those of the non-private loop (the
    # same permutations from the same generator), so a run without noise or clipping is
    # plain SGD; with it, Opacus draws each batch itself.
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler)
    noise = torch.Generator(device=xt.device)
    noise.manual_seed((generator.initial_seed() + 1) % 2**63)  # leaves generator untouched
    with warnings.catch_warnings():
        # Opacus says, rightly, that its fast RNG is not cryptographically secure; an
        # audit measures privacy, it does not release a model.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
    dp_model, dp_optimizer, dp_loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=sigma,
        max_grad_norm=config.dp_max_grad_norm,
        poisson_sampling=config.dp_poisson,
        noise_generator=noise,
    )
    step = 0
    dp_model.train()
    try:
        with warnings.catch_warnings():
            # Records need no gradient; Opacus' hooks note it on every first layer.
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            for epoch in range(config.epochs):
                total, seen = 0.0, 0
                for xb, yb in dp_loader:
                    factor = config.lr_factor(
                        min(step, config.epochs * steps_per_epoch - 1), steps_per_epoch
                    )
                    for group in dp_optimizer.param_groups:
                        group["lr"] = config.lr * factor
                    if augment_batch is not None and len(xb):
                        xb = augment_batch(xb)
                    dp_optimizer.zero_grad(set_to_none=True)
                    if len(xb):
                        loss = F.cross_entropy(
                            dp_model(xb), yb, label_smoothing=config.label_smoothing
                        )
                        loss.backward()
                        total += float(loss.detach()) * len(xb)
                        seen += len(xb)
                    dp_optimizer.step()
                    step += 1
                if on_epoch is not None:
                    on_epoch(epoch, total / max(1, seen))
    finally:
        dp_model._close()  # the hooks go; the trained weights stay in ``model``
    epsilon = float(engine.get_epsilon(config.dp_delta)) if sigma > 0 else math.inf
    return PrivacySpent(
        epsilon=epsilon,
        delta=float(config.dp_delta),
        noise_multiplier=sigma,
        max_grad_norm=float(config.dp_max_grad_norm),
        sample_rate=sample_rate,
        steps=step,
    )
