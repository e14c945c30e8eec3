"""LOGAN white-box score (Hayes et al., PETS 2019): a member is what the discriminator calls real."""

from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.no_grad()
def discriminator_scores(discriminator: nn.Module, x: Tensor, batch_size: int | None = None) -> Tensor:
    """``D(x)`` per query, higher = more "real" = more likely a member.

    The discriminator is put in eval mode (batch-norm running statistics, no dropout, PGGAN's
    minibatch-stddev over a fixed group), so a query's score does not depend on its batch-mates.

    Args:
        discriminator: ``forward(x (B, *shape)) -> (B,)`` (``(B, 1)`` is accepted).
        x: ``(N, *shape)`` queries in ``[-1, 1]``.
        batch_size: queries per forward pass (default: all at once).

    Returns:
        ``(N,)`` scores (float32), on ``x``'s device.
    """
    discriminator.eval()
    step = batch_size or max(len(x), 1)
    scores = []
    for start in range(0, len(x), step):
        batch = x[start : start + step]
        out = discriminator(batch)
        if out.numel() != len(batch):
            raise ValueError(f"the discriminator must return one value per query, got shape {tuple(out.shape)}")
        scores.append(out.reshape(len(batch)).float())
    return torch.cat(scores) if scores else x.new_zeros(0)
