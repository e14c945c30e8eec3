"""Monte-Carlo baseline (Hilprecht et al.): the fraction of k generated samples near the query."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganleaks.attacks.montecarlo import MonteCarloAttack
from ganleaks.attacks.nearest_neighbor import make_sample_bank
from ganleaks.parameters import Parameter
from ganleaks.settings.base import (
    BANK_CACHE_MB,
    CHUNK_SIZE,
    AttackEngine,
    BatchResult,
    non_finite_queries,
    searchable,
    status_and_values,
)


class MonteCarloEngine(AttackEngine):
    """Hilprecht et al.'s baseline: loss = -(fraction of k samples within epsilon of x)."""

    needs_latent_space = False

    label = "Monte-Carlo"
    description = (
        "Monte-Carlo baseline (Hilprecht et al.): the attacker saw only a set of generated samples "
        "and counts the samples close to each record."
    )
    knowledge = 1
    baseline = True
    uses_k = True
    config_parameters = (
        Parameter("k", "int", low=1, help="generated samples the attacker sees"),
        CHUNK_SIZE,
        BANK_CACHE_MB,
        Parameter("epsilon_rule", "choice", choices=("nearest", "pairwise"), help="how epsilon is set"),
        Parameter("quantile", "float", low=0.0, high=1.0, help="the quantile of distances epsilon is set to"),
    )

    def __init__(
        self,
        generator: nn.Module,
        seed: int,
        *,
        k: int,
        chunk_size: int,
        bank_cache_mb: int,
        epsilon_rule: str,
        quantile: float,
    ) -> None:
        super().__init__()
        self.generator = generator
        bank = make_sample_bank(
            generator, int(k), seed=int(seed), chunk_size=int(chunk_size), cache_bytes=int(bank_cache_mb) * 2**20
        )
        self.attack = MonteCarloAttack(bank, epsilon_rule=epsilon_rule, quantile=float(quantile))

    def counts_used(self) -> dict[str, int]:
        return {"k": len(self.attack.bank)}  # a stored sample set caps k at its size

    @torch.no_grad()
    def prepare(self, queries: Tensor) -> None:
        self.attack.fit_epsilon(queries[~non_finite_queries(queries)])  # one broken query must not move epsilon

    @torch.no_grad()
    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        bad = non_finite_queries(x)
        loss, status = status_and_values(-self.attack.score(searchable(x, bad)).float(), bad)
        return BatchResult(loss.cpu(), loss.cpu(), None, status.cpu())
