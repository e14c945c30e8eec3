"""Monte-Carlo membership score of Hilprecht et al. (PETS 2019), the full black-box baseline.

``score(x) = |{i : ||x - G(z_i)||^2 <= eps^2}| / k``: the fraction of the k generated samples in
an epsilon-ball around the query (higher = member), in pixel-space L2 (Hilprecht et al. also
studied PCA / HOG distances; the plain L2 matches our full black-box attack).

Epsilon (the "median heuristic"), by ``epsilon_rule``:

* ``"nearest"`` (default): ``eps^2`` is the median, over the queries of the call, of each query's
  squared L2 distance to its nearest generated sample, so about half of the queries have at
  least one sample in their ball;
* ``"pairwise"``: ``eps^2`` is the ``quantile`` of all query-sample squared distances between the
  queries and the bank's first chunk.

Both streams over the bank in chunks (two passes for ``"nearest"``); memory O(N x chunk).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ganleaks.attacks.nearest_neighbor import SampleBank, iterate_chunks

EPSILON_RULES = ("nearest", "pairwise")


@dataclass
class MonteCarloResult:
    """Attributes: ``score (N,)`` fraction of samples in the ball, ``epsilon`` (the L2 radius, not
    squared), ``nearest_squared_l2 (N,)`` each query's squared distance to its nearest sample."""

    score: Tensor
    epsilon: float
    nearest_squared_l2: Tensor


def _quantile(values: Tensor, quantile: float) -> float:
    """The ``quantile`` of ``values`` (lower order statistic; works on any size, unlike torch.quantile)."""
    values = values.flatten()
    k = int(quantile * (len(values) - 1)) + 1
    return float(values.kthvalue(k).values)


def _chunk_distances(flat: Tensor, norms: Tensor, chunk: Tensor) -> Tensor:
    samples = chunk.to(device=flat.device, dtype=flat.dtype).flatten(1)
    return torch.addmm(samples.pow(2).sum(1).unsqueeze(0), flat, samples.T, beta=1, alpha=-2).add_(norms).clamp_min_(0)


@torch.no_grad()
def monte_carlo_scores(
    queries: Tensor,
    bank: SampleBank | Tensor,
    epsilon: float | None = None,
    epsilon_rule: str = "nearest",
    quantile: float = 0.5,
    chunk_size: int = 4096,
) -> MonteCarloResult:
    """Monte-Carlo scores of ``queries (N, *shape)`` in ``[-1, 1]`` against a bank of k samples.

    Args:
        queries: the query set (members and non-members together, so that epsilon does not
            depend on the labels).
        bank: a :class:`SampleBank` or a tensor ``(k, *shape)`` of samples.
        epsilon: the ball radius (L2); ``None``: chosen by ``epsilon_rule``.
        epsilon_rule: ``"nearest"`` or ``"pairwise"`` (see the module docstring).
        quantile: the quantile used by the rule (0.5: the median).
        chunk_size: samples per matrix product when ``bank`` is a tensor.
    """
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    if epsilon_rule not in EPSILON_RULES:
        raise ValueError(f"epsilon_rule must be one of {EPSILON_RULES}, got {epsilon_rule!r}")
    flat = queries.flatten(1)
    norms = flat.pow(2).sum(1, keepdim=True)
    nearest = flat.new_full((len(flat),), float("inf"))
    counts = torch.zeros(len(flat), dtype=torch.long, device=flat.device)
    radius_squared = None if epsilon is None else float(epsilon) ** 2

    for _, chunk in iterate_chunks(bank, chunk_size):
        distances = _chunk_distances(flat, norms, chunk)
        nearest = torch.minimum(nearest, distances.amin(dim=1))
        if radius_squared is None and epsilon_rule == "pairwise":
            radius_squared = _quantile(distances, quantile)
        if radius_squared is not None:
            counts += (distances <= radius_squared).sum(dim=1)
    if radius_squared is None:  # "nearest": the radius needs the finished first pass
        radius_squared = _quantile(nearest, quantile)
        for _, chunk in iterate_chunks(bank, chunk_size):
            counts += (_chunk_distances(flat, norms, chunk) <= radius_squared).sum(dim=1)
    return MonteCarloResult(
        score=counts.to(flat.dtype) / len(bank), epsilon=radius_squared**0.5, nearest_squared_l2=nearest
    )


class MonteCarloAttack:
    """Stateful form for batched attacks: fix epsilon once on all queries, then score batches.

    Args:
        bank: the k generated samples (a :class:`SampleBank` or a tensor).
        epsilon_rule, quantile: see :func:`monte_carlo_scores`.
        epsilon: a fixed radius (skips :meth:`fit_epsilon`).
        chunk_size: samples per matrix product when ``bank`` is a tensor.
    """

    def __init__(
        self,
        bank: SampleBank | Tensor,
        epsilon_rule: str = "nearest",
        quantile: float = 0.5,
        epsilon: float | None = None,
        chunk_size: int = 4096,
    ) -> None:
        if epsilon_rule not in EPSILON_RULES:
            raise ValueError(f"epsilon_rule must be one of {EPSILON_RULES}, got {epsilon_rule!r}")
        self.bank = bank
        self.epsilon_rule = epsilon_rule
        self.quantile = float(quantile)
        self.epsilon = epsilon
        self.chunk_size = int(chunk_size)

    @torch.no_grad()
    def fit_epsilon(self, queries: Tensor) -> float:
        """Choose epsilon from the whole query set ``(N, *shape)`` (members and non-members alike)."""
        flat = queries.flatten(1)
        norms = flat.pow(2).sum(1, keepdim=True)
        if self.epsilon_rule == "pairwise":
            _, chunk = next(iter(iterate_chunks(self.bank, self.chunk_size)))
            radius_squared = _quantile(_chunk_distances(flat, norms, chunk), self.quantile)
        else:
            nearest = flat.new_full((len(flat),), float("inf"))
            for _, chunk in iterate_chunks(self.bank, self.chunk_size):
                nearest = torch.minimum(nearest, _chunk_distances(flat, norms, chunk).amin(dim=1))
            radius_squared = _quantile(nearest, self.quantile)
        self.epsilon = radius_squared**0.5
        return self.epsilon

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        """Fraction of the bank within epsilon of each query ``x (B, *shape)`` -> ``(B,)``."""
        if self.epsilon is None:
            raise RuntimeError("call fit_epsilon(queries) first (or pass epsilon=)")
        return monte_carlo_scores(x, self.bank, epsilon=self.epsilon, chunk_size=self.chunk_size).score
