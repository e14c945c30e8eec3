"""LOGAN score D(x): batched, gradient-free, batch-invariant."""

from __future__ import annotations

import torch

from ganleaks.attacks.discriminator_score import discriminator_scores

from tests.attacks.helpers import TinyDiscriminator


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
