"""WGAN-GP victim (Gulrajani et al., 2017): Wasserstein loss with gradient penalty, ``n_critic``
critic steps (one per batch) per generator step."""

from __future__ import annotations

import math
from typing import Any

import torch

from ganleaks.models.losses import critic_wasserstein_loss, generator_wasserstein_loss, gradient_penalty
from ganleaks.models.modules.base import GANModule


class WGANGPModule(GANModule):
    critic_steps: torch.Tensor  # a buffer (registered in __init__)
    """WGAN-GP training.

    Args:
        n_critic: critic steps per generator step (each on its own batch).
        gp_weight: gradient penalty weight lambda.
        **kwargs: as :class:`GANModule`.
    """

    dp_refusal = (
        "its gradient penalty differentiates the critic's input gradient (double backpropagation), "
        "which Opacus' per-sample gradients cannot do"
    )

    def __init__(self, *, n_critic: int = 5, gp_weight: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        # Counts critic steps across epochs and resumes (a buffer, so it is checkpointed).
        self.register_buffer("critic_steps", torch.tensor(0, dtype=torch.long))

    def discriminator_steps(self, optimizer_steps: int) -> int:
        return math.ceil(optimizer_steps * self.n_critic / (self.n_critic + 1))

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Critic objective and its parts to log; ``real`` and ``fake`` have equal shapes."""
        real_scores = self.discriminator(real)
        wasserstein = critic_wasserstein_loss(real_scores, self.discriminator(fake))
        penalty = gradient_penalty(self.discriminator, real, fake)
        parts = {
            "loss/critic": wasserstein + self.gp_weight * penalty,
            "loss/gradient_penalty": penalty,
            "wasserstein_distance": -wasserstein,
        }
        return parts["loss/critic"], parts

    def train_batch(self, real: torch.Tensor) -> None:
        batch_size = real.shape[0]
        with self.optimizing("discriminator") as step:
            fake = self.generate(self.sample_latent(batch_size)).detach()
            c_loss, logs = self.critic_loss(real, fake)
            step(c_loss)
        self.critic_steps += 1
        if int(self.critic_steps) % self.n_critic == 0:
            with self.optimizing("generator") as step:
                g_loss = generator_wasserstein_loss(self.discriminator(self.generate(self.sample_latent(batch_size))))
                step(g_loss)
            logs["loss/generator"] = g_loss
        self.log_dict({key: value.detach() for key, value in logs.items()}, prog_bar=True, batch_size=batch_size)
