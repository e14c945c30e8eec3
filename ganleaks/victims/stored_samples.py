"""A generated sample set in place of a generator, for the full black-box and Monte-Carlo attacks.

Those attacks only ever see k generated samples. The engines draw them from a
:class:`~ganleaks.attacks.nearest_neighbor.SampleBank` (``G(z_i)`` for seeded latents) and
reconstruct a query as ``G(z)`` of its nearest sample's latent. A sample set the user brings fits
the same code with two small pieces instead of a parallel code path:

* :class:`StoredSampleGenerator`, an ``nn.Module`` "generator" whose latent is a sample's index
  (``latent_dim = 1``): ``G(z)`` returns the stored samples ``z`` names. A stored set has no
  latent space, so a latent that is not a whole index (an optimiser's step) or that needs a
  gradient is refused with a message saying which settings apply.
* :class:`FixedSampleBank`, a ``SampleBank`` whose i-th latent is the index of its i-th sample:
  the set itself, or a seeded subset of ``k`` samples. ``nearest_neighbors``,
  ``monte_carlo_scores`` and the engines take it wherever they take a bank, and the "latent"
  they store beside each score is the index of the nearest sample in the user's set.

:meth:`StoredSampleGenerator.sample_bank` offers that bank; :func:`~ganleaks.attacks.nearest_neighbor.make_sample_bank`
takes a generator's own bank where it offers one, so the settings need no branch for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ganleaks.attacks.nearest_neighbor import SampleBank

log = logging.getLogger(__name__)

#: float32 holds every integer up to 2**24 exactly: the largest set an index latent can address.
MAX_STORED_SAMPLES = 2**24
NO_LATENT_SPACE = (
    "a generated sample set has no latent space to search: only setting=fullbb and setting=montecarlo "
    "(and calibration with a reference sample set) can attack it; for whitebox, partialbb or "
    "discriminator, bring the generator itself (victim=generator)"
)


class StoredSampleGenerator(nn.Module):
    """A fixed tensor of samples behind the generator interface: ``forward(z (B, 1)) -> samples[z]``.

    Args:
        samples: ``(n, *data_shape)`` in ``[-1, 1]``; kept as a buffer, so it moves with the module.

    Attributes:
        latent_dim: 1 (the latent is a sample index).
        data_shape: the shape of one sample.
    """

    has_latent_space = False
    samples: Tensor

    def __init__(self, samples: Tensor) -> None:
        super().__init__()
        if samples.ndim < 2 or len(samples) == 0:
            raise ValueError(f"samples must be a non-empty (n, *data_shape) tensor, got shape {tuple(samples.shape)}")
        if len(samples) > MAX_STORED_SAMPLES:
            raise ValueError(f"at most {MAX_STORED_SAMPLES} stored samples are supported, got {len(samples)}")
        if not torch.isfinite(samples).all():
            raise ValueError("the generated sample set holds NaN or inf values; drop those samples")
        if samples.min() < -1 - 1e-6 or samples.max() > 1 + 1e-6:
            raise ValueError("stored samples must be in [-1, 1]; load them with ganleaks.data.user_sets.load_records")
        self.register_buffer("samples", samples.detach().float().contiguous())
        self.latent_dim = 1
        self.data_shape = tuple(int(s) for s in samples.shape[1:])

    def __len__(self) -> int:
        return len(self.samples)

    def sample_bank(self, k: int | None, seed: int, chunk_size: int = 1024) -> FixedSampleBank:
        """The bank a full black-box or Monte-Carlo attack searches: the set itself, or ``k`` of it."""
        return FixedSampleBank(self, k, seed=seed, chunk_size=chunk_size)

    def forward(self, z: Tensor) -> Tensor:
        if z.requires_grad:
            raise ValueError(NO_LATENT_SPACE)
        index = z.reshape(len(z), -1)
        if index.shape[1] != 1 or not torch.equal(index, index.round()):
            raise ValueError(NO_LATENT_SPACE)
        index = index[:, 0].long()
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(self.samples)):
            raise IndexError(f"sample indices must lie in [0, {len(self.samples)})")
        return self.samples[index.to(self.samples.device)]


class FixedSampleBank(SampleBank):
    """The samples of a :class:`StoredSampleGenerator`, or a seeded subset of ``k`` of them.

    Args:
        generator: the stored samples.
        k: samples in the bank; ``None`` or at least the set's size: all of them (more is logged
            and capped); fewer: a subset drawn with ``seed`` (the same for every query and run).
        seed: chooses the subset.
        chunk_size: samples compared at once.
    """

    def __init__(self, generator: StoredSampleGenerator, k: int | None = None, seed: int = 0, chunk_size: int = 1024):
        if not isinstance(generator, StoredSampleGenerator):
            raise TypeError(f"FixedSampleBank needs a StoredSampleGenerator, got {type(generator).__name__}")
        n = len(generator)
        if k is not None and int(k) > n:
            log.warning("setting.k=%d but the generated sample set holds %d samples; using all %d", int(k), n, n)
        take = n if k is None else min(int(k), n)
        super().__init__(generator, take, seed=seed, chunk_size=chunk_size)
        self.stored = generator
        if take < n:
            chosen = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[:take]
            self.sample_index = chosen.sort().values  # set order: the bank's order does not depend on k's draw
        else:
            self.sample_index = torch.arange(n)

    def latents(self, indices: Tensor) -> Tensor:
        """``(n, 1)`` the stored-set index of bank samples ``indices (n,)``."""
        indices = indices.detach().cpu().long()
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= self.k):
            raise IndexError(f"sample indices must lie in [0, {self.k})")
        return self.sample_index[indices].to(torch.float32).unsqueeze(1).to(self.device)

    @torch.no_grad()
    def chunks(self) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(start, samples (c, *data_shape))`` over the bank in order (no generation, no cache)."""
        samples = self.stored.samples
        for start in range(0, self.k, self.chunk_size):
            rows = self.sample_index[start : start + self.chunk_size].to(samples.device)
            yield start, samples[rows]
