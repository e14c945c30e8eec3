"""Partial black-box and white-box (paper 5.3-5.4, eq. 6-7): R(x) = G(z*) by a per-query latent search.

One engine, :class:`ReconstructionEngine`; the two settings are its subclasses
:class:`PartialBlackBoxEngine` and :class:`WhiteBoxEngine`, which differ in what they declare
(the attacker's knowledge, how reports show them) and, in their YAML files, in the optimiser.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ganleaks.attacks.nearest_neighbor import make_sample_bank, nearest_neighbors
from ganleaks.attacks.reconstruction import LatentReconstructor
from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.optimizers.base import OptimResult
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


class ReconstructionEngine(AttackEngine):
    """Paper eq. 6-7: R(x) = G(z*), z* by a batched per-query optimiser (L-BFGS white-box, Powell partial).

    Args:
        optimizer: ``optimizer(objective, z0, max_iter=...) -> OptimResult``, the setting's ``_partial_``
            node of :func:`~ganleaks.optimizers.lbfgs.batched_lbfgs` or
            :func:`~ganleaks.optimizers.powell.batched_powell`
            (its further keys are the optimiser's arguments), or its name (``setting.optimizer=powell``).
        init: ``zero``, ``random`` or ``nn`` (the latent of the nearest of ``nn_k`` generated samples).
        max_iter: optimiser iterations (L-BFGS steps / Powell sweeps).
    """

    reconstructs = True
    config_parameters = (
        Parameter("optimizer", "any", help="the batched per-query optimiser: a _partial_ node or its name"),
        Parameter("init", "choice", choices=("zero", "random", "nn"), help="where each search starts"),
        Parameter("max_iter", "int", low=0, help="optimiser iterations (L-BFGS steps / Powell sweeps)"),
        Parameter("restarts", "int", low=1, help="with init=random: independent starts, the best kept"),
        Parameter("nn_k", "int", low=1, help="generated samples searched for init=nn"),
        CHUNK_SIZE,
        BANK_CACHE_MB,
    )

    def __init__(
        self,
        generator: nn.Module,
        distance: ReconstructionDistance,
        seed: int,
        *,
        optimizer: str | Callable[..., OptimResult],
        init: str,
        max_iter: int,
        restarts: int,
        nn_k: int,
        chunk_size: int,
        bank_cache_mb: int,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.distance = distance
        self.seed = int(seed)
        self.reconstructor = LatentReconstructor(
            generator, distance, optimizer=optimizer, init=init, restarts=int(restarts), max_iter=int(max_iter)
        )
        self.bank = (
            make_sample_bank(
                generator, int(nn_k), seed=int(seed), chunk_size=int(chunk_size), cache_bytes=int(bank_cache_mb) * 2**20
            )
            if init == "nn"
            else None
        )

    def counts_used(self) -> dict[str, int]:
        return {} if self.bank is None else {"nn_k": int(self.bank.k)}

    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        init_z = None
        bad = non_finite_queries(x)
        if self.bank is not None:
            with torch.no_grad():
                found = nearest_neighbors(searchable(x, bad), self.bank, top_m=1)
                assert found.z is not None, "the bank stores its latents"
                init_z = found.z[:, 0]
        result = self.reconstructor.reconstruct(x, ids, seed=self.seed, init_z=init_z)
        diverged = result.status.bool() | bad.to(result.status.device)
        loss, status = status_and_values(result.loss.detach().float(), diverged)
        objective = torch.where(status.bool(), torch.full_like(loss, math.nan), result.objective.detach().float())
        return BatchResult(loss.cpu(), objective.cpu(), result.z.detach().cpu(), status.cpu())


class PartialBlackBoxEngine(ReconstructionEngine):
    """Partial black-box (paper 5.3): z* by a gradient-free search (Powell) over the generator's outputs."""

    label = "partial black-box"
    description = (
        "Partial black-box: the attacker could choose latent codes and see the generated outputs, "
        "without weights or gradients; each record is reconstructed by a gradient-free search (Powell)."
    )
    knowledge = 2


class WhiteBoxEngine(ReconstructionEngine):
    """White-box (paper 5.4): z* by gradient-based search (L-BFGS) through the generator."""

    label = "white-box"
    description = (
        "White-box: the attacker had the generator's weights; each record is reconstructed by "
        "gradient-based search (L-BFGS) through the generator."
    )
    knowledge = 3
