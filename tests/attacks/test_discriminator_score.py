"""LOGAN score D(x): batched, gradient-free, batch-invariant."""

from __future__ import annotations

import pytest
import torch

from ganleaks.attacks.discriminator_score import discriminator_scores
from ganleaks.models.training import build_victim
from tests.attacks.helpers import TinyDiscriminator
from tests.models.conftest import IMAGE_SHAPE, compose_victim_config


def test_scores_are_per_query_and_gradient_free():
    torch.manual_seed(0)
    discriminator = TinyDiscriminator().train()
    x = torch.rand(10, 1, 16, 16) * 2 - 1
    scores = discriminator_scores(discriminator, x)
    assert scores.shape == (10,) and not scores.requires_grad and not discriminator.training
    torch.testing.assert_close(discriminator_scores(discriminator, x, batch_size=3), scores)
    torch.testing.assert_close(discriminator_scores(discriminator, x[4:5])[0], scores[4])


def test_column_outputs_are_flattened():
    class Column(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1).mean(1, keepdim=True)

    assert discriminator_scores(Column(), torch.ones(4, 1, 2, 2)).tolist() == [1.0] * 4


@pytest.mark.parametrize("model", ["dcgan", "wgangp", "pggan", "vaegan", "dpgan"])
def test_every_victim_discriminator_scores_a_query_the_same_in_any_batch(model):
    """SPEC invariant 1 for the discriminator setting: BatchNorm (DCGAN, VAEGAN) uses its running
    statistics, LayerNorm/GroupNorm (WGAN-GP, DP-GAN) is per sample, and PGGAN's minibatch-stddev
    uses a fixed group in eval mode."""
    config = compose_victim_config(model)
    torch.manual_seed(0)
    discriminator = build_victim(config.model, IMAGE_SHAPE, "image").discriminator
    with torch.no_grad():  # move BatchNorm running statistics off their defaults
        for _ in range(3):
            discriminator.train()(torch.rand(16, *IMAGE_SHAPE) * 2 - 1)
    x = torch.rand(8, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    batched = discriminator_scores(discriminator, x)
    assert batched.std() > 0
    torch.testing.assert_close(discriminator_scores(discriminator, x, batch_size=1), batched, rtol=1e-6, atol=1e-6)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        discriminator_scores(discriminator, x[order], batch_size=3), batched[order], rtol=1e-6, atol=1e-6
    )
