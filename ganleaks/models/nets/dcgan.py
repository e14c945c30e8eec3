"""DCGAN networks (Radford et al., 2016), also used by WGAN-GP, VAEGAN and DP-GAN.

The generator doubles the resolution from 4x4 with strided transposed convolutions (BatchNorm,
ReLU, tanh output); the discriminator mirrors it with strided convolutions and LeakyReLU. The
discriminator's normalisation is configurable because the families differ only there: BatchNorm
for DCGAN, LayerNorm (or none) for the WGAN-GP critic (the gradient penalty is per sample),
GroupNorm for DP-GAN (Opacus needs per-sample gradients, which BatchNorm mixes across the batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ganleaks.models.nets.common import constructor_kwargs, dcgan_init_, image_shape, norm_2d


def _widths(resolution: int, base_channels: int, max_channels: int) -> list[int]:
    """Feature-map widths from 4x4 up to ``resolution / 2``: widest at 4x4, halving per doubling."""
    doublings = int(math.log2(resolution)) - 2
    return [min(max_channels, base_channels * 2 ** (doublings - 1 - i)) for i in range(doublings)]


class DCGANGenerator(nn.Module):
    """Transposed-convolution generator.

    Args:
        latent_dim: size of ``z``.
        data_shape: ``(C, H, W)`` with ``H == W`` a power of two >= 8.
        base_channels: width at the last hidden resolution (``H / 2``); widths double towards 4x4.
        max_channels: cap on any width.

    Shapes:
        ``forward(z: (B, latent_dim)) -> (B, C, H, W)`` in ``[-1, 1]``.
    """

    def __init__(
        self, *, latent_dim: int, data_shape: Sequence[int], base_channels: int = 64, max_channels: int = 512
    ) -> None:
        super().__init__()
        self.kwargs = constructor_kwargs(locals())
        self.latent_dim = int(latent_dim)
        self.data_shape = image_shape(data_shape, "DCGAN", 8)
        channels, resolution, _ = self.data_shape
        widths = _widths(resolution, base_channels, max_channels)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.latent_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=False):
            layers += [
                nn.ConvTranspose2d(width_in, width_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width_out),
                nn.ReLU(),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Strided-convolution discriminator (critic) returning one unbounded score per sample.

    Args:
        data_shape: ``(C, H, W)`` with ``H == W`` a power of two >= 8.
        base_channels: width after the first convolution; widths double towards 4x4.
        max_channels: cap on any width.
        norm: ``batch`` (DCGAN), ``layer`` or ``none`` (WGAN-GP critic), ``group`` (DP-GAN).

    Shapes:
        ``forward(x: (B, C, H, W)) -> (B,)`` logits, higher = more "real";
        ``features(x) -> (B, F, 4, 4)``, the last hidden layer (VAEGAN's reconstruction space).
    """

    def __init__(
        self, *, data_shape: Sequence[int], base_channels: int = 64, max_channels: int = 512, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.kwargs = constructor_kwargs(locals())
        self.data_shape = image_shape(data_shape, "DCGAN", 8)
        channels, resolution, _ = self.data_shape
        widths = _widths(resolution, base_channels, max_channels)[::-1]
        # No normalisation on the first layer (Radford et al.); never inplace, for Opacus' hooks.
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=False):
            layers += [
                nn.Conv2d(width_in, width_out, 4, 2, 1, bias=norm == "none"),
                norm_2d(norm, width_out),
                nn.LeakyReLU(0.2),
            ]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], 1, 4, 1, 0)
        dcgan_init_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).view(x.shape[0])
