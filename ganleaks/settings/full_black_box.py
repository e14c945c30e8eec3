"""Full black-box (paper 5.2, eq. 5): the attacker sees k generated samples only."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganleaks.attacks.nearest_neighbor import make_sample_bank, nearest_neighbors
from ganleaks.distances.distance import ReconstructionDistance
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


class FullBlackBoxEngine(AttackEngine):
    """Paper eq. 5: R(x) = the nearest of k generated samples (L2 search, optional re-rank).

    The distance is used without its latent prior (paper 5.5: lambda_3 = 0, the sampling already
    satisfies z ~ P_z): the loss and the re-rank are computed without z.
    """

    reconstructs = True
    needs_latent_space = False

    label = "full black-box"
    description = (
        "Full black-box: the attacker saw only a set of generated samples, no model; each record is "
        "matched to its nearest generated sample (paper eq. 5)."
    )
    knowledge = 1
    uses_k = True
    config_parameters = (
        Parameter("k", "int", low=1, help="generated samples the attacker sees"),
        CHUNK_SIZE,
        Parameter("rerank_top", "int", low=1, help=">1: re-rank the top m L2 neighbours by the full distance"),
        BANK_CACHE_MB,
    )

    def __init__(
        self,
        generator: nn.Module,
        distance: ReconstructionDistance,
        seed: int,
        *,
        k: int,
        chunk_size: int,
        rerank_top: int,
        bank_cache_mb: int,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.distance = distance
        self.bank = make_sample_bank(
            generator, int(k), seed=int(seed), chunk_size=int(chunk_size), cache_bytes=int(bank_cache_mb) * 2**20
        )
        self.rerank_top = int(rerank_top)

    def counts_used(self) -> dict[str, int]:
        return {"k": int(self.bank.k)}  # a stored sample set caps k at its size

    @torch.no_grad()
    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        bad = non_finite_queries(x)
        found = nearest_neighbors(
            searchable(x, bad),
            self.bank,
            top_m=self.rerank_top,
            distance=self.distance if self.rerank_top > 1 else None,
        )
        assert found.z is not None, "the bank stores its latents"
        z = found.z[:, 0]
        x_hat = self.generator(z)
        _, loss = self.distance(x, x_hat, None)
        loss, status = status_and_values(loss.float(), bad)
        return BatchResult(loss.cpu(), loss.cpu(), z.cpu(), status.cpu())
