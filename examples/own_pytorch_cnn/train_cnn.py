"""The model owner's own training code: a small CNN class and a plain PyTorch loop.

Nothing here knows about miaudit. miaudit calls ``train(x, y, seed=..., **params)`` to
train reference models exactly as the target was trained.
"""

import numpy as np
import torch
from torch import nn


class DigitCNN(nn.Module):
    """8x8 digits (given as 64 features) through two convolutions."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(2 * width * 16, 10)

    def forward(self, x):
        x = x.reshape(-1, 1, 8, 8)
        return self.head(self.features(x).flatten(1))


def train(x, y, *, seed, epochs=30, lr=2e-3, batch_size=32, width=16):
    """Adam, shuffled mini-batches, a fixed number of epochs; returns the network."""
    torch.manual_seed(seed)
    order = np.random.default_rng(seed)
    model = DigitCNN(width)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    xs = torch.as_tensor(x, dtype=torch.float32)
    ys = torch.as_tensor(y, dtype=torch.long)
    for _ in range(epochs):
        perm = torch.as_tensor(order.permutation(len(xs)))
        for start in range(0, len(xs), batch_size):
            batch = perm[start : start + batch_size]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(xs[batch]), ys[batch])
            loss.backward()
            optimiser.step()
    return model.eval()
