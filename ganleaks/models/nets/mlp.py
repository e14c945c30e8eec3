"""MLP generator and critic for tabular rows (MIMIC-like binary codes, location check-ins).

Rows are ``(D,)`` vectors in ``[-1, 1]`` (binary codes are ``{-1, 1}``), so the generator ends
in tanh for both binary and continuous data; the critic has no normalisation (per-sample, so it
serves WGAN-GP's gradient penalty and Opacus' per-sample gradients alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ganleaks.models.nets.common import constructor_kwargs


def _row_shape(data_shape: Sequence[int]) -> tuple[int]:
    shape = tuple(int(s) for s in data_shape)
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(
            f"MLP nets need tabular rows of shape (D,), got {shape}; "
            "image data uses the convolutional nets of the same model"
        )
    return shape


class MLPGenerator(nn.Module):
    """Fully connected generator ``z -> row``.

    Args:
        latent_dim: size of ``z``.
        data_shape: ``(D,)``.
        hidden_dims: widths of the hidden layers.
        batch_norm: BatchNorm after each hidden layer (medGAN-style; stabilises binary codes).

    Shapes:
        ``forward(z: (B, latent_dim)) -> (B, D)`` in ``[-1, 1]``.
    """

    def __init__(
        self,
        *,
        latent_dim: int,
        data_shape: Sequence[int],
        hidden_dims: Sequence[int] = (256, 256),
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.kwargs = constructor_kwargs(locals())
        self.latent_dim = int(latent_dim)
        self.data_shape = _row_shape(data_shape)
        layers: list[nn.Module] = []
        width = self.latent_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden) if batch_norm else nn.Identity(), nn.ReLU()]
            width = hidden
        layers += [nn.Linear(width, self.data_shape[0]), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """Fully connected critic ``row -> score``.

    Args:
        data_shape: ``(D,)``.
        hidden_dims: widths of the hidden layers (LeakyReLU, no normalisation).

    Shapes:
        ``forward(x: (B, D)) -> (B,)``, higher = more "real".
    """

    def __init__(self, *, data_shape: Sequence[int], hidden_dims: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.kwargs = constructor_kwargs(locals())
        self.data_shape = _row_shape(data_shape)
        layers: list[nn.Module] = []
        width = self.data_shape[0]
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(x.shape[0])
