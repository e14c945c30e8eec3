"""The pure loss functions against values computed by hand."""

from __future__ import annotations

import math

import torch

from ganleaks.models.losses import (
    critic_wasserstein_loss,
    discriminator_bce_loss,
    drift_penalty,
    feature_reconstruction_loss,
    generator_nonsaturating_loss,
    gradient_penalty,
    kl_divergence_standard_normal,
)


def test_bce_losses_at_chance_and_at_confidence() -> None:
    zeros = torch.zeros(4)
    assert math.isclose(discriminator_bce_loss(zeros, zeros).item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(generator_nonsaturating_loss(zeros).item(), math.log(2), rel_tol=1e-6)
    confident = torch.full((4,), 20.0)
    assert discriminator_bce_loss(confident, -confident).item() < 1e-6
    assert generator_nonsaturating_loss(-confident).item() > 19


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared() -> None:
    weight = torch.tensor([3.0, 4.0], requires_grad=True)  # ||w|| = 5 everywhere

    def critic(x: torch.Tensor) -> torch.Tensor:
        return x @ weight

    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    penalty = gradient_penalty(critic, real, fake)
    assert math.isclose(penalty.item(), 16.0, rel_tol=1e-5)
    (grad,) = torch.autograd.grad(penalty, weight)  # double backprop reaches the critic's weights
    torch.testing.assert_close(grad, 2 * (5 - 1) * weight.detach() / 5)


def test_wasserstein_and_drift() -> None:
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert critic_wasserstein_loss(real, fake).item() == -3.0
    assert drift_penalty(real).item() == 5.0


def test_kl_is_zero_only_at_the_prior_and_feature_loss_per_sample() -> None:
    zeros = torch.zeros(3, 5)
    torch.testing.assert_close(kl_divergence_standard_normal(zeros, zeros), torch.zeros(3))
    assert (kl_divergence_standard_normal(torch.ones(3, 5), zeros) == 2.5).all()
    real = torch.zeros(2, 4, 2, 2)
    fake = torch.cat([torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)])
    torch.testing.assert_close(feature_reconstruction_loss(real, fake), torch.tensor([0.0, 1.0]))
