"""VAEGAN encoder (Larsen et al., 2016).

VAEGAN's decoder is a :class:`~ganleaks.models.nets.dcgan.DCGANGenerator` (it is the exported
generator, sampled with ``z ~ N(0, I)``) and its discriminator a
:class:`~ganleaks.models.nets.dcgan.DCGANDiscriminator`, whose ``features`` give the space of the
feature-wise reconstruction loss; only the encoder is specific to the family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ganleaks.models.nets.common import constructor_kwargs, dcgan_init_, image_shape, norm_2d


class VAEGANEncoder(nn.Module):
    """Convolutional encoder ``x -> (mu, logvar)`` of the approximate posterior ``q(z | x)``.

    Args:
        latent_dim: size of ``z``.
        data_shape: ``(C, H, W)`` with ``H == W`` a power of two >= 8.
        base_channels: width after the first convolution; widths double towards 4x4.
        max_channels: cap on any width.
        norm: normalisation of the hidden convolutions (see ``norm_2d``).

    Shapes:
        ``forward(x: (B, C, H, W)) -> (mu, logvar)``, each ``(B, latent_dim)``.
    """

    def __init__(
        self,
        *,
        latent_dim: int,
        data_shape: Sequence[int],
        base_channels: int = 64,
        max_channels: int = 512,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.kwargs = constructor_kwargs(locals())
        self.latent_dim = int(latent_dim)
        self.data_shape = image_shape(data_shape, "VAEGAN", 8)
        channels, resolution, _ = self.data_shape
        layers: list[nn.Module] = []
        width_in, width = channels, base_channels
        for _ in range(int(math.log2(resolution)) - 2):
            width = min(max_channels, width)
            layers += [
                nn.Conv2d(width_in, width, 4, 2, 1, bias=norm == "none"),
                norm_2d(norm, width),
                nn.LeakyReLU(0.2),
            ]
            width_in, width = width, width * 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(width_in * 16, 2 * self.latent_dim)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mu, logvar
