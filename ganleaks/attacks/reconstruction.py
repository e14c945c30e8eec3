"""Latent reconstruction R(x | G) = G(z*), z* = argmin_z L(x, G(z)) (paper eq. 6-7).

Partial black-box uses Powell (forward passes only), white-box L-BFGS through the generator.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.optimizers.base import OptimResult
from ganleaks.optimizers.registry import optimizer_by_name
from ganleaks.status import status_from

log = logging.getLogger(__name__)

INITS = ("zero", "random", "nn")


def query_seed(seed: int, sample_id: int, restart: int = 0) -> int:
    """A 63-bit seed derived from (seed, sample id, restart); the same on every machine."""
    digest = hashlib.blake2b(f"ganleaks:{seed}:{sample_id}:{restart}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def random_latents(ids: Tensor, dim: int, seed: int, restart: int = 0) -> Tensor:
    """``(B, dim)`` N(0, I) latents on the CPU; row i depends only on ``(seed, ids[i], restart)``."""
    rows = []
    for sample_id in ids.tolist():
        generator = torch.Generator().manual_seed(query_seed(seed, sample_id, restart))
        rows.append(torch.randn(dim, generator=generator))
    return torch.stack(rows) if rows else torch.zeros(0, dim)


@dataclass
class ReconstructionResult:
    """Per-query reconstructions (the best over restarts).

    Attributes:
        z: ``(B, d)`` latent codes.
        x_hat: ``(B, *shape)`` reconstructions ``G(z)`` in ``[-1, 1]``.
        loss: ``(B,)`` ``l1 * MSE + l2 * LPIPS`` at ``z`` (the query's loss; NaN if diverged).
        objective: ``(B,)`` loss plus the latent prior term (what was minimised; NaN if diverged).
        status: ``(B,)`` int8, ``STATUS_OK`` or ``STATUS_DIVERGED`` (:mod:`ganleaks.status`).
        n_evals: ``(B,)`` objective evaluations, all restarts together.
        n_iter: ``(B,)`` optimiser iterations, all restarts together.
    """

    z: Tensor
    x_hat: Tensor
    loss: Tensor
    objective: Tensor
    status: Tensor
    n_evals: Tensor
    n_iter: Tensor


class LatentReconstructor(nn.Module):
    """Find each query's closest point on a generator's manifold, one latent tensor per batch.

    The generator is frozen (``requires_grad=False``, eval mode, also after ``.train()``) so
    that batch-norm statistics and dropout cannot couple the queries of a batch.

    Args:
        generator: module with ``latent_dim``, ``data_shape``, ``forward(z (B, d)) -> (B, *shape)``.
        distance: the :class:`ReconstructionDistance` to minimise.
        optimizer: ``"lbfgs"`` (white-box) or ``"powell"`` (partial black-box, gradient-free), or
            the batched optimiser itself, ``optimizer(objective, z0, **kwargs) -> OptimResult`` (a
            setting's ``_partial_`` node of :func:`~ganleaks.optimizers.lbfgs.batched_lbfgs` /
            :func:`~ganleaks.optimizers.powell.batched_powell`).
        init: ``"zero"``, ``"random"`` (per-query N(0, I) seeded by (seed, id)) or ``"nn"``
            (the latent of the query's full black-box nearest neighbour, passed as ``init_z``).
        restarts: runs per query; restart 0 uses ``init``, later ones random latents seeded by
            (seed, id, restart); each query keeps the run with the lowest objective.
        max_iter: optimiser iterations (L-BFGS steps / Powell sweeps); ``None``: the optimiser's default.
        optimizer_kwargs: further arguments of :func:`~ganleaks.optimizers.lbfgs.batched_lbfgs` /
            :func:`~ganleaks.optimizers.powell.batched_powell` (e.g. ``max_evals``, ``history_size``).
    """

    def __init__(
        self,
        generator: nn.Module,
        distance: ReconstructionDistance,
        optimizer: str | Callable[..., OptimResult] = "lbfgs",
        init: str = "zero",
        restarts: int = 1,
        max_iter: int | None = None,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(optimizer, str):
            optimizer = optimizer_by_name(optimizer)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {restarts}")
        for attribute in ("latent_dim", "data_shape"):
            if not hasattr(generator, attribute):
                raise TypeError(f"the generator must have a `{attribute}` attribute")
        self.generator = generator.requires_grad_(False).eval()
        self.distance = distance.eval()
        self.optimizer = optimizer
        self.init = init
        self.restarts = int(restarts)
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        if max_iter is not None:
            self.optimizer_kwargs["max_iter"] = int(max_iter)

    def train(self, mode: bool = True) -> LatentReconstructor:
        super().train(mode)
        self.generator.eval()
        self.distance.eval()
        return self

    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)  # type: ignore[arg-type]

    def initial_latents(self, ids: Tensor, seed: int, restart: int = 0, init_z: Tensor | None = None) -> Tensor:
        """Starting latents ``(B, d)`` of one restart (on the CPU unless ``init_z`` is given)."""
        dim = self.latent_dim
        if restart == 0 and self.init == "zero":
            return torch.zeros(len(ids), dim)
        if restart == 0 and self.init == "nn":
            if init_z is None:
                raise ValueError(
                    "init='nn' needs init_z: the latents of the queries' full black-box nearest neighbours"
                )
            if init_z.shape != (len(ids), dim):
                raise ValueError(f"init_z must have shape ({len(ids)}, {dim}), got {tuple(init_z.shape)}")
            return init_z.detach().clone()
        return random_latents(ids.cpu(), dim, seed, restart)

    def reconstruct(self, x: Tensor, ids: Tensor, seed: int, init_z: Tensor | None = None) -> ReconstructionResult:
        """Reconstruct the queries ``x (B, *shape)`` in ``[-1, 1]`` with sample ids ``ids (B,)``.

        Random starting points depend on ``(seed, id, restart)`` only, so a query's result does not
        depend on its batch-mates or its position in the batch.
        """
        data_shape = tuple(self.generator.data_shape)  # type: ignore[arg-type]
        if tuple(x.shape[1:]) != data_shape:
            raise ValueError(f"queries have shape {tuple(x.shape[1:])}, the generator makes {data_shape}")
        if ids.shape != (len(x),):
            raise ValueError(f"ids must have shape ({len(x)},), got {tuple(ids.shape)}")
        device = x.device
        target = self.distance.prepare(x)

        def objective(z: Tensor, index: Tensor) -> Tensor:
            value, _ = self.distance(target.select(index), self.generator(z), z)
            return value

        best_z: Tensor | None = None
        best_value: Tensor | None = None
        n_evals = torch.zeros(len(x), dtype=torch.long, device=device)
        n_iter = torch.zeros(len(x), dtype=torch.long, device=device)
        for restart in range(self.restarts):
            z0 = self.initial_latents(ids, seed, restart, init_z).to(device=device, dtype=x.dtype)
            result = self.optimizer(objective, z0, **self.optimizer_kwargs)
            value = torch.where(result.failed, torch.full_like(result.objective, float("nan")), result.objective)
            n_evals += result.n_evals
            n_iter += result.n_iter
            if best_z is None or best_value is None:
                best_z, best_value = result.z, value
            else:
                better = torch.nan_to_num(value, nan=float("inf")) < torch.nan_to_num(best_value, nan=float("inf"))
                best_z = torch.where(better[:, None], result.z, best_z)
                best_value = torch.where(better, value, best_value)

        assert best_z is not None and best_value is not None, "restarts >= 1 is checked in __init__"
        diverged = torch.isnan(best_value)
        with torch.no_grad():
            x_hat = self.generator(best_z)
            objective_value, loss = self.distance(target, x_hat, best_z)
        nan = torch.full_like(loss, float("nan"))
        if bool(diverged.any()):
            log.warning("%d of %d queries diverged (non-finite objective)", int(diverged.sum()), len(x))
        return ReconstructionResult(
            z=best_z,
            x_hat=x_hat,
            loss=torch.where(diverged, nan, loss),
            objective=torch.where(diverged, nan, objective_value),
            status=status_from(diverged),
            n_evals=n_evals,
            n_iter=n_iter,
        )

    def forward(self, x: Tensor, ids: Tensor, seed: int, init_z: Tensor | None = None) -> ReconstructionResult:
        return self.reconstruct(x, ids, seed, init_z)
