"""DCGAN victim (Radford et al., 2016): non-saturating BCE loss, one D and one G step per batch.

With a GroupNorm discriminator and ``privacy=dp`` this is DP-GAN (``model=dpgan``).
"""

from __future__ import annotations

import torch

from ganleaks.models.losses import discriminator_bce_loss, generator_nonsaturating_loss
from ganleaks.models.modules.base import GANModule


class DCGANModule(GANModule):
    """DCGAN training; arguments as :class:`GANModule`."""

    def train_batch(self, real: torch.Tensor) -> None:
        batch_size = real.shape[0]
        with self.optimizing("discriminator") as step:
            # Under DP each private sample is a (real, fake) pair: the fake batch matches the real one.
            fake = self.generate(self.sample_latent(batch_size)).detach()
            d_loss = discriminator_bce_loss(self.discriminator(real), self.discriminator(fake))
            step(d_loss)
        with self.optimizing("generator") as step:
            g_loss = generator_nonsaturating_loss(self.discriminator(self.generate(self.sample_latent(batch_size))))
            step(g_loss)
        self.log_dict(
            {"loss/discriminator": d_loss.detach(), "loss/generator": g_loss.detach()},
            prog_bar=True,
            batch_size=batch_size,
        )
