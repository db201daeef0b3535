"""Train several small networks as one batched ensemble (``torch.func`` vmap over stacked
weights): MLPs, and LeNet-5 and the small CNN where it pays (:func:`ensemble_pays`).

The small CNN's BatchNorm layers keep running statistics; they are stacked like the
weights (one row per member) and each member's row is updated in place under vmap, as
its own forward pass in training mode would update it, so every member ends with its
sequential twin's weights *and* statistics (tests check both). With
``TrainingConfig.precision="bfloat16"`` the members' forward and backward passes run under
autocast, as :func:`~miaudit.models.train_model` runs them.

A reference pool trains dozens of copies of one network that differ only in their
training records and seed. For a small MLP each optimisation step is a few small matrix
products, so running the copies side by side (weights stacked along a new leading axis,
one ``vmap``-ed forward and backward, one optimiser step for all) gives the BLAS larger
products that use several cores better.

Measured on the 2-core development machine (torch 2.13 CPU build; Location-sized MLP
446-128-30 tanh, 1,252 records per model, batch 256, 20 epochs, SGD with momentum and
cosine schedule; wall seconds for the whole group, steady state after one warm-up round,
other jobs sharing the machine, load average about 0.5)::

    models  threads   recipe.train one by one   train_ensemble   speed-up
       8       1              1.31 s                1.16 s          1.12x
      16       1              2.64 s                2.33 s          1.13x
       8       2              0.95 s                0.70 s          1.36x
      16       2              1.91 s                1.33 s          1.44x

A bare vmap loop against a bare sequential loop (no validation, probe or accuracy pass)
gave 1.0x with one thread and 1.33x with two: each step of one small model is
compute-bound, so batching wins little on one core; what it wins is per-model overhead
and, with several cores, matrix products big enough to keep them all busy. The pool
therefore uses the ensemble for eligible recipes by default (``ensemble="auto"``).

Each member is trained as :meth:`~miaudit.models.TorchRecipe.train` would train it: the
same initial weights (``build_model`` seeded from the member's seed), the same batch order
(a ``torch.Generator`` seeded the same way draws each epoch's permutation), the same
optimiser, schedule and loss. Only the order of floating-point operations differs, so the
weights agree with sequential training to rounding (tests check this), and an ensemble
member is cached under the same key as its sequential twin, just as a model trained on a
GPU is (see :meth:`~miaudit.models.TorchRecipe.fingerprint`).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.models.architectures import build_model
from miaudit.models.recipes import TorchRecipe, TrainedModel, check_indices
from miaudit.models.training import (
    _EVAL_BATCH,
    _batch_bounds,
    _make_optimizer,
    accuracy,
    autocast_for,
    resolve_device,
)

__all__ = [
    "ENSEMBLE_ARCHITECTURES",
    "ensemble_ineligibility",
    "ensemble_pays",
    "train_ensemble",
]

#: Architectures a batched ensemble can train. The small CNN's BatchNorm statistics are
#: stacked like its weights (one row per member, updated in place under vmap); ResNets are
#: left out (too large for vmap to pay, and their members rarely fit side by side).
ENSEMBLE_ARCHITECTURES = ("mlp", "lenet5", "small_cnn")


def ensemble_ineligibility(recipe: object, dataset: Dataset) -> str | None:
    """Why ``recipe`` cannot be trained as a batched ensemble on ``dataset``; None if it can.

    Eligible: a :class:`~miaudit.models.TorchRecipe` for an architecture of
    :data:`ENSEMBLE_ARCHITECTURES` without dropout (vmap draws dropout masks from one
    global stream, which would break "same seed, same model"), and no image augmentation
    (its random draws are per model).
    """
    if not isinstance(recipe, TorchRecipe):
        return f"the recipe is a {type(recipe).__name__}, not a TorchRecipe"
    if recipe.architecture not in ENSEMBLE_ARCHITECTURES:
        return f"architecture {recipe.architecture!r} is not one of {ENSEMBLE_ARCHITECTURES}"
    if recipe.arch_params.get("dropout", 0.0) > 0:
        return f"the {recipe.architecture} uses dropout"
    if recipe.training.augment and dataset.is_image:
        return "training augments images"
    if recipe.training.private:
        return "training is DP-SGD (Opacus trains one model at a time)"
    if recipe.training.mixup_alpha > 0:
        return "training uses mixup"
    if recipe.training.early_stopping_patience:
        return "training stops early (each model at its own epoch)"
    return None


def ensemble_pays(recipe: TorchRecipe) -> bool:
    """The measured rule of ``ensemble="auto"``: whether batching an eligible recipe is
    faster than training its models one after another.

    MLPs: yes on a CPU (the table above) and on a GPU. LeNet-5 and the small CNN: only on
    a GPU; on the 2-core CPU, vmapped convolutions were slower than one model at a time
    (LeNet-5 92 against 165 models per hour, see ``benchmarks/fleet.py``), so ``auto``
    trains them one by one there and ``on`` forces the ensemble. The GPU half of the rule
    is the expectation (many small convolutions batched into few large kernels) and has not
    been measured by this project yet.
    """
    if recipe.architecture == "mlp":
        return True
    return resolve_device(recipe.training.device).type == "cuda"


def train_ensemble(
    recipe: TorchRecipe,
    dataset: Dataset,
    index_sets: Sequence[np.ndarray],
    seeds: Sequence[int],
    *,
    eval_index_sets: Sequence[np.ndarray | None] | None = None,
) -> list[TrainedModel]:
    """Train one model per ``(indices, seed)`` pair, all at once.

    Parameters
    ----------
    recipe : TorchRecipe
        Must be eligible (:func:`ensemble_ineligibility`).
    dataset : Dataset
        Source of the records.
    index_sets : sequence of (n_train,) int arrays
        Training records of each member; every member needs the same ``n_train``
        (batches are stacked).
    seeds : sequence of int
        Each member's seed, as passed to ``recipe.train``.
    eval_index_sets : sequence of int arrays or None, optional
        Held-out records for each member's ``test_accuracy``.

    Returns
    -------
    list of TrainedModel
        In the order of ``seeds``; ``seconds`` is the group's wall time divided by the
        number of members (what one model cost).

    Raises
    ------
    InvalidAuditInput
        Ineligible recipe, members of different sizes, bad indices or seeds.
    """
    start = time.perf_counter()
    problems: list[str] = []
    if (reason := ensemble_ineligibility(recipe, dataset)) is not None:
        problems.append(f"not an ensemble recipe: {reason}")
    if len(index_sets) != len(seeds) or not seeds:
        problems.append(f"{len(index_sets)} index sets for {len(seeds)} seeds")
    if any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0 for s in seeds):
        problems.append("seeds must be non-negative ints")
    raise_if_problems("train_ensemble", problems)
    idx = [
        check_indices(ix, dataset.n_records, f"index_sets[{k}]") for k, ix in enumerate(index_sets)
    ]
    if len(sizes := sorted({ix.size for ix in idx})) != 1:
        raise InvalidAuditInput(
            f"train_ensemble: members need equal training-set sizes, got sizes {sizes}"
        )
    evals = list(eval_index_sets) if eval_index_sets is not None else [None] * len(idx)
    config = recipe.training
    device = resolve_device(config.device)
    n_members, n = len(idx), int(idx[0].size)

    models, generators = [], []
    for seed in seeds:
        # The same two streams TorchRecipe.train derives from a seed.
        init_seed, train_seed = (
            int(s) for s in np.random.SeedSequence(int(seed)).generate_state(2, dtype=np.uint32)
        )
        models.append(
            build_model(
                recipe.architecture,
                input_shape=dataset.input_shape,
                n_classes=dataset.n_classes,
                seed=init_seed,
                **recipe.arch_params,
            ).to(device)
        )
        generators.append(torch.Generator(device=device).manual_seed(train_seed))

    # ``buffers``: BatchNorm's running statistics, stacked (new tensors) one row per member;
    # vmap updates each member's row in place, as its own forward pass in training mode would.
    stacked, buffers = stack_module_state(models)
    names = list(stacked)
    holder = nn.ParameterList([nn.Parameter(stacked[name].detach().clone()) for name in names])
    optimizer = _make_optimizer(holder, config)
    skeleton = copy.deepcopy(models[0]).to("meta")
    skeleton.train()

    def member_loss(
        params: dict, member_buffers: dict, xb: torch.Tensor, yb: torch.Tensor
    ) -> torch.Tensor:
        with autocast_for(config, device):
            logits = functional_call(skeleton, (params, member_buffers), (xb,)).float()
        return F.cross_entropy(logits, yb, label_smoothing=config.label_smoothing)

    batched_loss = vmap(member_loss)
    # Every member's training set, on the device once (mixed precision comes from
    # autocast_for; channels-last does not apply to the stacked 5-d batches of vmap).
    xs = torch.from_numpy(np.stack([dataset.x[ix] for ix in idx])).to(device)  # (M, n, ...)
    ys = torch.from_numpy(np.stack([dataset.y[ix] for ix in idx])).to(device)  # (M, n)
    rows = torch.arange(n_members, device=device)[:, None]
    bounds = _batch_bounds(n, config.batch_size)
    last_losses = torch.zeros(n_members, device=device)
    step = 0
    for _ in range(config.epochs):
        order = torch.stack(
            [torch.randperm(n, device=device, generator=g) for g in generators]
        )  # each member's permutation, drawn exactly as train_model draws it
        last_losses = torch.zeros(n_members, device=device)
        for lo, hi in bounds:
            factor = config.lr_factor(step, len(bounds))
            for group in optimizer.param_groups:
                group["lr"] = config.lr * factor
            batch = order[:, lo:hi]
            losses = batched_loss(
                dict(zip(names, holder, strict=True)), buffers, xs[rows, batch], ys[rows, batch]
            )
            optimizer.zero_grad(set_to_none=True)
            # Summing keeps each member's gradient equal to that of its own mean loss.
            losses.sum().backward()
            optimizer.step()
            last_losses += losses.detach() * (hi - lo)
            step += 1
    final = (last_losses / n).tolist()
    if not all(math.isfinite(v) for v in final):
        warnings.warn(
            f"training diverged for {sum(not math.isfinite(v) for v in final)} of "
            f"{n_members} ensemble members (lower lr, or a schedule with warm-up, may help)",
            RuntimeWarning,
            stacklevel=2,
        )

    eval_batch = _EVAL_BATCH.get(device.type, 2048)
    results = []
    with torch.no_grad():
        for k, model in enumerate(models):
            for name, param in model.named_parameters():
                param.copy_(holder[names.index(name)][k])
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name][k])
    for k, model in enumerate(models):
        model.eval()
        train_acc = accuracy(model, xs[k], ys[k], batch_size=eval_batch)
        test_acc = None
        if evals[k] is not None:
            ev = check_indices(evals[k], dataset.n_records, f"eval_index_sets[{k}]")
            test_acc = accuracy(model, dataset.x[ev], dataset.y[ev], batch_size=eval_batch)
        results.append((model, train_acc, test_acc))
    per_model = (time.perf_counter() - start) / n_members
    return [
        TrainedModel(
            model=model,
            train_accuracy=train_acc,
            test_accuracy=test_acc,
            seconds=per_model,
            seed=int(seeds[k]),
            n_train=n,
        )
        for k, (model, train_acc, test_acc) in enumerate(results)
    ]
