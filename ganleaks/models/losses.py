"""GAN, WGAN-GP and VAE losses as pure functions of tensors.

Scores and logits are ``(B,)`` discriminator outputs (higher = more "real"); losses are scalars
averaged over the batch unless stated otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def discriminator_bce_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """DCGAN discriminator loss ``-log D(x) - log(1 - D(G(z)))`` on logits, each ``(B,)``."""
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``-log D(G(z))`` on logits ``(B,)`` (Goodfellow et al.)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def critic_wasserstein_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss ``E[C(G(z))] - E[C(x)]`` (the negated Wasserstein estimate)."""
    return fake_scores.mean() - real_scores.mean()


def generator_wasserstein_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss ``-E[C(G(z))]``."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x C(x_hat)||_2 - 1)^2]`` on random interpolates (Gulrajani et al.).

    Args:
        critic: maps ``(B, *shape) -> (B,)``.
        real, fake: ``(B, *shape)`` batches of equal size (``fake`` is detached here).
        generator: optional RNG for the interpolation weights.

    Returns:
        scalar penalty, differentiable w.r.t. the critic's parameters (double backpropagation).
    """
    weight_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    epsilon = torch.rand(weight_shape, device=real.device, dtype=real.dtype, generator=generator)
    interpolates = torch.lerp(real.detach(), fake.detach(), epsilon).requires_grad_(True)
    scores = critic(interpolates)
    (gradients,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    return (gradients.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def drift_penalty(real_scores: torch.Tensor) -> torch.Tensor:
    """PGGAN's drift term ``E[C(x)^2]`` that keeps critic scores near zero (weight eps_drift)."""
    return real_scores.pow(2).mean()


def kl_divergence_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per sample, summed over latent dims: ``(B, d) -> (B,)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def feature_reconstruction_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """VAEGAN's feature-wise reconstruction error per sample: mean squared difference of
    discriminator features (a Gaussian log-likelihood up to constants), ``(B, ...) -> (B,)``."""
    return (real_features - fake_features).pow(2).flatten(1).mean(dim=1)
