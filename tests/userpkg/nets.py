"""Small networks as a user would write them: no ganleaks import, no ``latent_dim`` / ``data_shape`` attributes."""

from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    """``z (B, latent_size) -> (B, channels, size, size)``, in [-1, 1] (tanh) or [0, 1] (sigmoid)."""

    def __init__(self, latent_size: int = 8, channels: int = 1, size: int = 16, hidden: int = 32, output: str = "tanh"):
        super().__init__()
        self.shape = (channels, size, size)
        self.body = nn.Sequential(
            nn.Linear(latent_size, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels * size * size),
            nn.Tanh() if output == "tanh" else nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).view(len(z), *self.shape)


class ConvGenerator(nn.Module):
    """DCGAN-style: ``z (B, latent_size, 1, 1) -> (B, channels, 16, 16)`` in [-1, 1]."""

    def __init__(self, latent_size: int = 8, channels: int = 1, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(latent_size, width, 4, 1, 0),  # 4x4
            nn.ReLU(),
            nn.ConvTranspose2d(width, width, 4, 2, 1),  # 8x8
            nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),  # 16x16
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class Discriminator(nn.Module):
    """``x (B, channels, size, size) -> (B, 1)`` logits of "real"."""

    def __init__(self, channels: int = 1, size: int = 16, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class LookupGenerator(nn.Module):
    """A generator that memorised a table of records: ``G(z) = softmax(sharpness * z) @ table``.

    For a latent whose largest coordinate stands out, the output is (almost exactly) one row of the
    table, so a generator whose table holds its members reproduces them: a certain memoriser.
    ``z (B, rows)`` -> ``(B, *shape)`` in [-1, 1] (the table's own range).
    """

    def __init__(self, rows: int = 32, channels: int = 1, size: int = 16, sharpness: float = 50.0):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(rows, channels, size, size))
        self.sharpness = sharpness

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.sharpness * z.flatten(1), dim=1)
        return torch.einsum("br,r...->b...", weights, self.table)
