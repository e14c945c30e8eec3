"""Full black-box reconstruction: the nearest of k generated samples (paper eq. 5).

The k x N distance search is a chunked matrix product, ``||x||^2 - 2 x.y + ||y||^2`` per chunk
of samples with a running top-m per query: memory is O(N x chunk), never O(N x k), and there are
no per-query Python loops.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from ganleaks.distances.distance import ReconstructionDistance

log = logging.getLogger(__name__)


class NonFiniteOutputError(ValueError):
    """A model produced NaN or inf where the attack needs finite outputs."""


def non_finite_rows(values: Tensor) -> int:
    """How many rows (samples) of ``values (n, ...)`` hold a NaN or inf."""
    return int((~torch.isfinite(values.reshape(len(values), -1).float())).any(dim=1).sum())


def check_samples(samples: Tensor, start: int) -> None:
    """Refuse a chunk of generated samples ``(c, *shape)`` (bank indices from ``start``) holding NaN or inf."""
    n_bad = non_finite_rows(samples)
    if n_bad:
        raise NonFiniteOutputError(
            f"the generator produced non-finite (NaN or inf) samples: {n_bad} of the samples {start}.."
            f"{start + len(samples) - 1} of its sample bank. Its weights or numerics are broken for some latents; "
            "a nearest-neighbour search or a Monte-Carlo count over them would be meaningless. Retrain or re-export "
            "the generator"
        )


#: Latents are drawn in blocks of this many samples, one seeded RNG per block, so that sample i's
#: latent depends on (seed, i) only, whatever the chunk size used to scan the bank.
LATENT_BLOCK = 1024


class SampleBank:
    """k samples ``G(z_i)`` of a generator, produced chunk by chunk, reproducible from (seed, i).

    Args:
        generator: module with ``latent_dim``, ``data_shape``, ``forward(z) -> samples`` in ``[-1, 1]``.
        k: number of samples.
        seed: the latent of sample i is a function of ``(seed, i)`` only.
        chunk_size: samples generated (and compared) at once.
        cache_bytes: keep generated chunks in memory up to this many bytes (0: regenerate on
            every pass), so that several passes (search, Monte-Carlo, re-rank) generate once.
        device: where samples are generated (default: the generator's device at each use).
    """

    def __init__(
        self,
        generator: nn.Module,
        k: int,
        seed: int,
        chunk_size: int = 1024,
        cache_bytes: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        if k < 1 or chunk_size < 1:
            raise ValueError(f"k and chunk_size must be >= 1, got k={k}, chunk_size={chunk_size}")
        self.generator = generator.requires_grad_(False).eval()
        self.k = int(k)
        self.seed = int(seed)
        self.chunk_size = int(chunk_size)
        self.cache_bytes = int(cache_bytes)
        self._device = None if device is None else torch.device(device)
        self._cache: dict[int, Tensor] = {}
        self._cached_bytes = 0

    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)  # type: ignore[arg-type]

    @property
    def device(self) -> torch.device:
        """The given device, else wherever the generator is now (Lightning may have moved it)."""
        if self._device is not None:
            return self._device
        for tensor in list(self.generator.parameters()) + list(self.generator.buffers()):
            return tensor.device
        return torch.device("cpu")

    def __len__(self) -> int:
        return self.k

    def latents(self, indices: Tensor) -> Tensor:
        """Latents ``(n, d)`` (on ``self.device``) of samples ``indices (n,)`` (any order, repeats allowed)."""
        indices = indices.detach().cpu().long()
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= self.k):
            raise IndexError(f"sample indices must lie in [0, {self.k})")
        blocks = indices // LATENT_BLOCK
        out = torch.empty(len(indices), self.latent_dim)
        for block in blocks.unique().tolist():
            rows = (blocks == block).nonzero().squeeze(1)
            out[rows] = self._block(block)[indices[rows] - block * LATENT_BLOCK]
        return out.to(self.device)

    def _block(self, block: int) -> Tensor:
        digest = hashlib.blake2b(f"ganleaks-bank:{self.seed}:{block}".encode(), digest_size=8).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
        return torch.randn(LATENT_BLOCK, self.latent_dim, generator=generator)

    @torch.no_grad()
    def samples(self, indices: Tensor) -> Tensor:
        """Regenerate samples ``indices (n,)`` -> ``(n, *data_shape)``."""
        return self.generator(self.latents(indices))

    @torch.no_grad()
    def chunks(self) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(start, samples (c, *data_shape))`` over the bank in order."""
        for start in range(0, self.k, self.chunk_size):
            cached = self._cache.get(start)
            if cached is not None and cached.device != self.device:
                self._cached_bytes -= cached.numel() * cached.element_size()
                del self._cache[start]  # the generator has moved since: regenerate there
                cached = None
            if cached is None:
                indices = torch.arange(start, min(start + self.chunk_size, self.k))
                cached = self.generator(self.latents(indices))
                check_samples(cached, start)  # a NaN sample would poison every search and count over the bank
                size = cached.numel() * cached.element_size()
                if self._cached_bytes + size <= self.cache_bytes:
                    self._cache[start] = cached
                    self._cached_bytes += size
            yield start, cached


def make_sample_bank(
    generator: nn.Module, k: int | None, seed: int, chunk_size: int = 1024, cache_bytes: int = 0
) -> SampleBank:
    """The k samples a setting searches: the generator's own bank where it offers one (a stored sample
    set, ``sample_bank(k, seed, chunk_size)``), else ``k`` samples generated from seeded latents."""
    own_bank = getattr(generator, "sample_bank", None)
    if callable(own_bank):
        return own_bank(k, seed=seed, chunk_size=chunk_size)
    if k is None:
        raise ValueError("setting.k must be set (the number of samples to generate) when attacking a generator")
    return SampleBank(generator, int(k), seed=seed, chunk_size=chunk_size, cache_bytes=cache_bytes)


def iterate_chunks(bank: SampleBank | Tensor, chunk_size: int = 4096) -> Iterable[tuple[int, Tensor]]:
    """Chunks of a :class:`SampleBank`, or of a tensor of samples ``(k, *shape)``."""
    if isinstance(bank, SampleBank):
        return bank.chunks()
    return ((start, bank[start : start + chunk_size]) for start in range(0, len(bank), chunk_size))


@dataclass
class Neighbors:
    """Nearest generated samples of each query; unpacks as ``indices, squared_l2, z``.

    Attributes:
        indices: ``(N, m)`` int64 sample indices, best first.
        squared_l2: ``(N, m)`` exact ``||x - G(z)||^2`` (recomputed from the samples).
        z: ``(N, m, d)`` latents of the neighbours (``None`` when the bank is a plain tensor).
        ranking_loss: ``(N, m)`` the distance that ranked them: ``squared_l2``, or the
            :class:`ReconstructionDistance` loss when re-ranked.
    """

    indices: Tensor
    squared_l2: Tensor
    z: Tensor | None
    ranking_loss: Tensor

    def __iter__(self) -> Iterator[Tensor | None]:
        return iter((self.indices, self.squared_l2, self.z))


@torch.no_grad()
def _top_m_search(queries: Tensor, bank: SampleBank | Tensor, top_m: int, chunk_size: int) -> Tensor:
    """Indices ``(N, m)`` of the m smallest squared L2 distances, by chunked matrix products."""
    flat = queries.flatten(1)
    # (N, 1); a block of rows at a time, so that no (N, features) temporary doubles the queries' memory.
    query_norms = torch.cat([block.pow(2).sum(1) for block in flat.split(chunk_size)]).unsqueeze(1)
    best_distance = flat.new_full((len(flat), top_m), float("inf"))
    best_index = torch.full((len(flat), top_m), -1, dtype=torch.long, device=flat.device)
    for start, chunk in iterate_chunks(bank, chunk_size):
        samples = chunk.to(device=flat.device, dtype=flat.dtype).flatten(1)
        if samples.shape[1] != flat.shape[1]:
            raise ValueError(f"samples have {samples.shape[1]} features per row, queries {flat.shape[1]}")
        sample_norms = samples.pow(2).sum(1)
        # ||x||^2 + ||y||^2 - 2 x.y in one fused call; (N, c) per chunk.
        distance = torch.addmm(sample_norms.unsqueeze(0), flat, samples.T, beta=1, alpha=-2).add_(query_norms)
        m = min(top_m, distance.shape[1])
        chunk_distance, chunk_index = distance.topk(m, dim=1, largest=False)
        merged_distance = torch.cat([best_distance, chunk_distance], dim=1)
        merged_index = torch.cat([best_index, chunk_index + start], dim=1)
        best_distance, order = merged_distance.topk(top_m, dim=1, largest=False)
        best_index = merged_index.gather(1, order)
    return best_index


@torch.no_grad()
def nearest_neighbors(
    queries: Tensor,
    bank: SampleBank | Tensor,
    top_m: int = 1,
    distance: ReconstructionDistance | None = None,
    chunk_size: int = 4096,
) -> Neighbors:
    """The ``top_m`` nearest samples of every query (paper eq. 5).

    The search ranks by squared L2 via chunked matrix products (float32 expansions can misorder
    near-ties; the returned ``squared_l2`` is recomputed exactly from the m winners). With
    ``distance``, the m candidates are re-ranked by ``distance.loss`` (e.g. L2 + LPIPS; the latent
    prior is never used: full black-box does not control z).

    Args:
        queries: ``(N, *shape)`` in ``[-1, 1]``.
        bank: a :class:`SampleBank`, or a tensor ``(k, *shape)`` of samples.
        top_m: neighbours per query (<= k).
        distance: optional re-ranking distance.
        chunk_size: samples per matrix product when ``bank`` is a tensor (a bank uses its own).

    Returns:
        :class:`Neighbors` (unpacks as ``indices (N, m), squared_l2 (N, m), z (N, m, d)``).
    """
    if not 1 <= top_m <= len(bank):
        raise ValueError(f"top_m must lie in [1, {len(bank)}], got {top_m}")
    indices = _top_m_search(queries, bank, top_m, chunk_size)
    # Exact distances (and the optional re-rank) for the m winners, a few queries at a time.
    rows_per_step = max(1, chunk_size // top_m)
    parts = [
        _rescore(queries[i : i + rows_per_step], indices[i : i + rows_per_step], bank, distance)
        for i in range(0, len(queries), rows_per_step)
    ]
    z_parts = [part[3] for part in parts]
    return Neighbors(
        indices=torch.cat([part[0] for part in parts]),
        squared_l2=torch.cat([part[1] for part in parts]),
        z=None if z_parts[0] is None else torch.cat(cast(list[Tensor], z_parts)),  # all or none have latents
        ranking_loss=torch.cat([part[2] for part in parts]),
    )


def _rescore(
    queries: Tensor, indices: Tensor, bank: SampleBank | Tensor, distance: ReconstructionDistance | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    n, m = indices.shape
    flat_index = indices.reshape(-1)
    if isinstance(bank, SampleBank):
        z = bank.latents(flat_index)
        winners = bank.generator(z)
        z = z.reshape(n, m, -1).to(queries.device)
    else:
        z = None
        winners = bank[flat_index.to(bank.device)]
    winners = winners.to(device=queries.device, dtype=queries.dtype)
    # squared_l2 of each query against its m winners, broadcasting the query instead of repeating it
    # m times: two passes over the (n, m, features) differences instead of four.
    difference = winners.reshape(n, m, -1) - queries.reshape(n, 1, -1)
    exact = difference.mul_(difference).sum(dim=2)
    del difference
    if distance is None:
        ranking = exact
    else:
        ranking = distance.loss(queries.repeat_interleave(m, dim=0), winners).reshape(n, m)
    order = ranking.argsort(dim=1, stable=True)  # fixes float32 misordering / applies the re-rank
    if z is not None:
        z = z.gather(1, order.unsqueeze(-1).expand(-1, -1, z.shape[-1]))
    return indices.gather(1, order), exact.gather(1, order), ranking.gather(1, order), z
