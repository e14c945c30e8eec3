"""Attack engines: one per setting, each scoring a batch of queries against one generative model.

An engine maps queries ``x (B, *shape)`` with ids ``(B,)`` to a per-query loss (lower = more
likely a member), the latent code of the reconstruction where there is one, and a status. Every
engine is per-query: a query's result never depends on which other queries share its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganleaks.attacks.discriminator_score import discriminator_scores
from ganleaks.attacks.distances import ReconstructionDistance
from ganleaks.attacks.montecarlo import MonteCarloAttack
from ganleaks.attacks.nearest_neighbor import SampleBank, nearest_neighbors
from ganleaks.attacks.reconstruction import LatentReconstructor

SETTING_KINDS = ("fullbb", "reconstruction", "discriminator", "montecarlo")
STATUS_OK, STATUS_DIVERGED = 0, 1
STATUS_NAMES = {STATUS_OK: "ok", STATUS_DIVERGED: "diverged"}


@dataclass
class BatchResult:
    """Per-query outputs of one batch (all on the CPU).

    Attributes:
        loss: ``(B,)`` the L2 + LPIPS part of the distance (or -D(x), or -log density); NaN if failed.
        objective: ``(B,)`` what the search minimised (loss + latent prior), or the loss.
        z: ``(B, d)`` latent of the reconstruction, or ``None`` (discriminator setting).
        status: ``(B,)`` int8, ``STATUS_OK`` or ``STATUS_DIVERGED``.
    """

    loss: Tensor
    objective: Tensor
    z: Tensor | None
    status: Tensor


def _status_from(values: Tensor, diverged: Tensor | None = None) -> tuple[Tensor, Tensor]:
    bad = ~torch.isfinite(values)
    if diverged is not None:
        bad = bad | diverged
    return torch.where(bad, torch.full_like(values, math.nan), values), bad.to(torch.int8)


def _non_finite(x: Tensor) -> Tensor:
    """``(B,)`` True for queries holding NaN or inf: they cannot be scored and are marked diverged."""
    return ~torch.isfinite(x.flatten(1)).all(dim=1)


def _searchable(x: Tensor, bad: Tensor) -> Tensor:
    """``x`` with non-finite queries zeroed, so that a nearest-neighbour search over the batch stays valid."""
    return torch.where(bad.view(-1, *[1] * (x.ndim - 1)), torch.zeros_like(x), x)


class AttackEngine(nn.Module):
    """Base class: holds the attacked network(s) as submodules so Lightning moves them to the device."""

    needs_generator = True
    needs_discriminator = False

    def prepare(self, queries: Tensor) -> None:
        """Called once with every query before scoring (only the Monte-Carlo baseline needs it)."""

    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:  # pragma: no cover - abstract
        """Per-query losses of a batch (lower = more likely a member); the membership score is -loss."""
        raise NotImplementedError


class FullBlackBoxEngine(AttackEngine):
    """Paper eq. 5: R(x) = the nearest of k generated samples (L2 search, optional re-rank)."""

    def __init__(
        self,
        generator: nn.Module,
        distance: ReconstructionDistance,
        k: int,
        seed: int,
        chunk_size: int = 2048,
        rerank_top: int = 1,
        cache_bytes: int = 0,
    ) -> None:
        super().__init__()
        if int(k) < 1 or int(chunk_size) < 1:
            raise ValueError(
                f"setting.k and setting.chunk_size must be >= 1 (generated samples to search, and "
                f"per chunk), got k={k}, chunk_size={chunk_size}"
            )
        self.generator = generator
        self.distance = distance
        self.bank = SampleBank(
            generator, int(k), seed=int(seed), chunk_size=int(chunk_size), cache_bytes=int(cache_bytes)
        )
        self.rerank_top = max(1, int(rerank_top))

    @torch.no_grad()
    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        bad = _non_finite(x)
        found = nearest_neighbors(
            _searchable(x, bad),
            self.bank,
            top_m=self.rerank_top,
            distance=self.distance if self.rerank_top > 1 else None,
        )
        assert found.z is not None, "the bank stores its latents"
        z = found.z[:, 0]
        x_hat = self.generator(z)
        _, loss = self.distance(x, x_hat, None)
        loss, status = _status_from(loss.float(), bad)
        return BatchResult(loss.cpu(), loss.cpu(), z.cpu(), status.cpu())


class ReconstructionEngine(AttackEngine):
    """Paper eq. 6-7: R(x) = G(z*), z* by batched per-query L-BFGS (white-box) or Powell (partial)."""

    def __init__(
        self,
        generator: nn.Module,
        distance: ReconstructionDistance,
        optimizer: str,
        init: str,
        seed: int,
        max_iter: int = 100,
        restarts: int = 1,
        nn_k: int = 2048,
        chunk_size: int = 2048,
        cache_bytes: int = 0,
        optimizer_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if init not in ("zero", "random", "nn"):
            raise ValueError(f"setting.init must be zero, random or nn, got {init!r}")
        for key, value, least in (
            ("nn_k", nn_k, 1),
            ("chunk_size", chunk_size, 1),
            ("restarts", restarts, 1),
            ("max_iter", max_iter, 0),
        ):
            if int(value) < least:
                raise ValueError(
                    f"setting.{key} must be >= {least}, got {value}; set setting.{key}={max(least, 1)} or more"
                )
        self.generator = generator
        self.distance = distance
        self.seed = int(seed)
        self.init = init
        self.reconstructor = LatentReconstructor(
            generator,
            distance,
            optimizer=optimizer,
            init=init,
            restarts=int(restarts),
            max_iter=int(max_iter),
            optimizer_kwargs=optimizer_kwargs,
        )
        self.bank = (
            SampleBank(generator, int(nn_k), seed=int(seed), chunk_size=int(chunk_size), cache_bytes=int(cache_bytes))
            if init == "nn"
            else None
        )

    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        init_z = None
        bad = _non_finite(x)
        if self.bank is not None:
            with torch.no_grad():
                found = nearest_neighbors(_searchable(x, bad), self.bank, top_m=1)
                assert found.z is not None, "the bank stores its latents"
                init_z = found.z[:, 0]
        result = self.reconstructor.reconstruct(x, ids, seed=self.seed, init_z=init_z)
        diverged = torch.tensor([s != "ok" for s in result.status], dtype=torch.bool, device=result.loss.device)
        diverged = diverged | bad.to(diverged.device)
        loss, status = _status_from(result.loss.detach().float(), diverged)
        objective = torch.where(status.bool(), torch.full_like(loss, math.nan), result.objective.detach().float())
        return BatchResult(loss.cpu(), objective.cpu(), result.z.detach().cpu(), status.cpu())


class DiscriminatorEngine(AttackEngine):
    """LOGAN white-box (paper 4.1): loss = -D(x), so score = D(x)."""

    needs_generator = False
    needs_discriminator = True

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    @torch.no_grad()
    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        loss, status = _status_from(-discriminator_scores(self.discriminator, x).float(), _non_finite(x))
        return BatchResult(loss.cpu(), loss.cpu(), None, status.cpu())


class MonteCarloEngine(AttackEngine):
    """Hilprecht et al.'s baseline: loss = -(fraction of k samples within epsilon of x)."""

    def __init__(
        self,
        generator: nn.Module,
        k: int,
        seed: int,
        chunk_size: int = 2048,
        cache_bytes: int = 0,
        epsilon_rule: str = "nearest",
        quantile: float = 0.5,
    ) -> None:
        super().__init__()
        if int(k) < 1:
            raise ValueError(f"setting.k must be >= 1 (generated samples to count), got {k}")
        self.generator = generator
        bank = SampleBank(generator, int(k), seed=int(seed), chunk_size=int(chunk_size), cache_bytes=int(cache_bytes))
        self.attack = MonteCarloAttack(bank, epsilon_rule=epsilon_rule, quantile=float(quantile))

    @torch.no_grad()
    def prepare(self, queries: Tensor) -> None:
        self.attack.fit_epsilon(queries[~_non_finite(queries)])  # one broken query must not move epsilon

    @torch.no_grad()
    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        bad = _non_finite(x)
        loss, status = _status_from(-self.attack.score(_searchable(x, bad)).float(), bad)
        return BatchResult(loss.cpu(), loss.cpu(), None, status.cpu())


def build_engine(
    setting,
    generator: nn.Module | None,
    discriminator: nn.Module | None,
    distance: ReconstructionDistance | None,
    seed: int,
) -> AttackEngine:
    """The engine for ``setting`` (a ``conf/setting/*.yaml`` node) over one model."""
    kind = setting.kind
    # The attack loaded what the setting needs (checked before): these asserts only tell the type checker.
    cache_bytes = int(setting.get("bank_cache_mb", 0)) * 2**20
    if kind == "fullbb":
        assert generator is not None and distance is not None
        return FullBlackBoxEngine(
            generator, distance, setting.k, seed, setting.chunk_size, setting.get("rerank_top", 1), cache_bytes
        )
    if kind == "reconstruction":
        kwargs = setting.get("optimizer_kwargs")
        assert generator is not None and distance is not None
        return ReconstructionEngine(
            generator,
            distance,
            setting.optimizer,
            setting.init,
            seed,
            setting.max_iter,
            setting.get("restarts", 1),
            setting.get("nn_k", 2048),
            setting.get("chunk_size", 2048),
            cache_bytes,
            None if kwargs is None else dict(kwargs),
        )
    if kind == "discriminator":
        assert discriminator is not None
        return DiscriminatorEngine(discriminator)
    if kind == "montecarlo":
        assert generator is not None
        return MonteCarloEngine(
            generator,
            setting.k,
            seed,
            setting.chunk_size,
            cache_bytes,
            setting.get("epsilon_rule", "nearest"),
            setting.get("quantile", 0.5),
        )
    raise ValueError(f"unknown setting kind {kind!r}; choose one of {SETTING_KINDS}")
