"""Accessible discriminator (paper 4.1; LOGAN white-box, Hayes et al.): score = D(x)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganleaks.attacks.discriminator_score import discriminator_scores
from ganleaks.settings.base import AttackEngine, BatchResult, non_finite_queries, status_and_values


class DiscriminatorEngine(AttackEngine):
    """LOGAN white-box (paper 4.1): loss = -D(x), so score = D(x)."""

    needs_generator = False
    needs_discriminator = True

    label = "accessible discriminator"
    description = (
        "Accessible discriminator: the attacker had the trained discriminator and scores each "
        "record by how real the discriminator finds it (LOGAN, Hayes et al.)."
    )
    knowledge = 4
    config_parameters = ()

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    @torch.no_grad()
    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        loss, status = status_and_values(-discriminator_scores(self.discriminator, x).float(), non_finite_queries(x))
        return BatchResult(loss.cpu(), loss.cpu(), None, status.cpu())
