"""Batched data augmentation for image tensors.

Per-image Python transforms are what make a CPU training loop slow; here a whole batch is
flipped with one mask and shifted with a loop over the few possible offsets, never over the
images (the approach of Keller Jordan's cifar10-airbench).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from miaudit.errors import raise_if_problems

__all__ = ["flip_and_shift"]

_PADDING_MODES = ("reflect", "zeros")


def flip_and_shift(
    x: torch.Tensor,
    pad: int,
    generator: torch.Generator,
    *,
    padding_mode: str = "reflect",
    flip_probability: float = 0.5,
) -> torch.Tensor:
    """Randomly flip each image left-right, then crop it back after padding (a random shift).

    Parameters
    ----------
    x : torch.Tensor
        ``(n, c, h, w)`` floating-point batch; left unchanged.
    pad : int
        Maximum shift in pixels along each axis; ``0`` only flips. With ``"reflect"`` it must
        be smaller than the image height and width.
    generator : torch.Generator
        Source of every random draw, on the same device as ``x``; the same generator state
        gives the same output, whatever the global random state.
    padding_mode : {"reflect", "zeros"}
        How the border revealed by a shift is filled. Reflection avoids black borders that a
        network could use to tell augmented images apart.
    flip_probability : float
        Chance that an image is flipped, in [0, 1].

    Returns
    -------
    torch.Tensor
        New ``(n, c, h, w)`` tensor of the same dtype and device.

    Notes
    -----
    A crop at offset ``(dy, dx)`` of the padded image is a row crop at ``dy`` followed by a
    column crop at ``dx``, so the loop runs ``2 * (2 * pad + 1)`` masked copies instead of
    ``(2 * pad + 1) ** 2``; the result is the same.
    """
    problems: list[str] = []
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        problems.append(
            "x must be a floating-point (n, c, h, w) tensor, got "
            f"{getattr(x, 'dtype', type(x))} of shape {tuple(getattr(x, 'shape', ()))}"
        )
    if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
        problems.append(f"pad must be a non-negative int, got {pad!r}")
    elif padding_mode == "reflect" and not problems and pad >= min(x.shape[2:]):
        problems.append(f"pad={pad} is too large to reflect a {x.shape[2]}x{x.shape[3]} image")
    if padding_mode not in _PADDING_MODES:
        problems.append(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    if not 0.0 <= flip_probability <= 1.0:
        problems.append(f"flip_probability must lie in [0, 1], got {flip_probability!r}")
    raise_if_problems("flip_and_shift", problems)

    n, c, h, w = x.shape
    flip = torch.rand(n, device=x.device, generator=generator) < flip_probability
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    if pad == 0:
        return x
    mode = "reflect" if padding_mode == "reflect" else "constant"
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode)
    shifts = torch.randint(0, 2 * pad + 1, (2, n), device=x.device, generator=generator)
    rows = padded.new_empty(n, c, h, w + 2 * pad)
    for dy in range(2 * pad + 1):  # loop over offsets, never over images
        sel = shifts[0] == dy
        rows[sel] = padded[sel, :, dy : dy + h, :]
    out = x.new_empty(n, c, h, w)
    for dx in range(2 * pad + 1):
        sel = shifts[1] == dx
        out[sel] = rows[sel, :, :, dx : dx + w]
    return out
