"""VAEGAN victim (Larsen et al., 2016): encoder, decoder (= the exported generator) and
discriminator, each with its own optimiser.

Losses per batch: discriminator ``L_GAN`` on reals vs reconstructions and prior samples;
encoder ``kl_weight * KL + L_feature``; decoder ``reconstruction_weight * L_feature`` plus the
non-saturating GAN loss on reconstructions and prior samples. ``L_feature`` compares the
discriminator's last hidden features of ``x`` and its reconstruction (the learned similarity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ganleaks.models.losses import (
    discriminator_bce_loss,
    feature_reconstruction_loss,
    generator_nonsaturating_loss,
    kl_divergence_standard_normal,
)
from ganleaks.models.modules.base import GANModule

if TYPE_CHECKING:
    from ganleaks.models.nets.dcgan import DCGANDiscriminator


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class VAEGANModule(GANModule):
    """VAEGAN training.

    Args:
        encoder: a :class:`~ganleaks.models.nets.vaegan.VAEGANEncoder`.
        encoder_optimizer: its partial optimiser.
        kl_weight: weight of the KL term in the encoder loss.
        reconstruction_weight: gamma, weight of the feature reconstruction in the decoder loss.
        **kwargs: as :class:`GANModule` (``generator`` is the decoder; the discriminator must
            have ``features``).
    """

    discriminator: DCGANDiscriminator  # the one discriminator with ``features``
    network_names = ("discriminator", "encoder", "generator")
    dp_refusal = (
        "its encoder and decoder train on the real images directly (reconstruction loss), so DP-SGD "
        "on the discriminator alone would not make the released generator private"
    )

    def __init__(
        self,
        *,
        encoder: nn.Module,
        encoder_optimizer: Callable[..., torch.optim.Optimizer],
        kl_weight: float = 0.01,
        reconstruction_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not hasattr(self.discriminator, "features"):
            raise ValueError("VAEGAN needs a discriminator with a features(x) method (DCGANDiscriminator)")
        self.encoder = encoder
        self.optimizer_factories["encoder"] = encoder_optimizer
        self.kl_weight = float(kl_weight)
        self.reconstruction_weight = float(reconstruction_weight)

    def _feature_loss(self, real: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        # One forward pass over both, so a BatchNorm discriminator normalises them alike.
        real_features, fake_features = self.discriminator.features(torch.cat([real, reconstruction])).chunk(2)
        return feature_reconstruction_loss(real_features, fake_features).mean()

    def train_batch(self, real: torch.Tensor) -> None:
        batch_size = real.shape[0]
        with self.optimizing("discriminator") as step:
            reconstruction = self.generator(reparameterize(*self.encoder(real))).detach()
            prior = self.generator(self.sample_latent(batch_size)).detach()
            d_loss = discriminator_bce_loss(
                self.discriminator(real), self.discriminator(torch.cat([reconstruction, prior]))
            )
            step(d_loss)
        with self.optimizing("encoder") as step:
            mu, logvar = self.encoder(real)
            kl = kl_divergence_standard_normal(mu, logvar).mean()
            feature_loss = self._feature_loss(real, self.generator(reparameterize(mu, logvar)))
            step(self.kl_weight * kl + feature_loss)
        with self.optimizing("generator") as step:
            reconstruction = self.generator(reparameterize(*self.encoder(real)))
            prior = self.generator(self.sample_latent(batch_size))
            gan_loss = generator_nonsaturating_loss(self.discriminator(reconstruction)) + generator_nonsaturating_loss(
                self.discriminator(prior)
            )
            g_loss = self.reconstruction_weight * self._feature_loss(real, reconstruction) + gan_loss
            step(g_loss)
        self.log_dict(
            {
                "loss/discriminator": d_loss.detach(),
                "loss/kl": kl.detach(),
                "loss/feature_reconstruction": feature_loss.detach(),
                "loss/generator": g_loss.detach(),
            },
            prog_bar=True,
            batch_size=batch_size,
        )
