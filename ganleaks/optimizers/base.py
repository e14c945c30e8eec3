"""Shared pieces of the batched per-query optimisers (:mod:`.lbfgs`, :mod:`.powell`; :mod:`.registry`).

A batch of B queries is optimised as ONE latent tensor ``(B, d)``, but every query is its own
problem: its own optimiser state, step sizes and stopping test. An objective returns one value
per row and rows never interact, so a query's result does not depend on its batch-mates.

Objectives come in two forms:

* **indexed** ``f(z, index) -> (n,)``: ``z`` is ``(n, d)`` and ``index`` ``(n,)`` int64 says which
  query of the batch each row belongs to. Rows may be any subset of the queries, in any order,
  with repeats (several trial points of one query stacked along the batch dimension). This is
  what :class:`~ganleaks.attacks.reconstruction.LatentReconstructor` builds: only the queries
  still running are evaluated.
* **plain** ``f(z) -> (B,)`` on the full batch: wrapped by :func:`as_indexed`, which fills the
  rows of absent queries with zeros and discards their values (convenient for tests and toy
  problems; wasteful for a generator).

A callable is treated as indexed when it takes two positional parameters or one named ``index``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ganleaks.status import status_from


class IndexedObjective(Protocol):
    def __call__(self, z: Tensor, index: Tensor) -> Tensor: ...


Objective = Callable[..., Tensor]


@dataclass
class OptimResult:
    """Result of a batched optimisation; every field is per query.

    Attributes:
        z: ``(B, d)`` final latent codes (the starting point for failed queries).
        objective: ``(B,)`` objective at ``z`` (NaN where the start was not finite).
        n_iter: ``(B,)`` int64 outer iterations (L-BFGS steps / Powell sweeps).
        n_evals: ``(B,)`` int64 objective evaluations spent on the query.
        converged: ``(B,)`` bool, a stopping tolerance was met (not just the iteration budget).
        failed: ``(B,)`` bool, the objective or its gradient was not finite where it had to be.
    """

    z: Tensor
    objective: Tensor
    n_iter: Tensor
    n_evals: Tensor
    converged: Tensor
    failed: Tensor

    @property
    def status(self) -> Tensor:
        """``(B,)`` int8, ``STATUS_OK`` or ``STATUS_DIVERGED`` (:mod:`ganleaks.status`) per query."""
        return status_from(self.failed)


def _is_indexed(f: Objective) -> bool:
    target = f.forward if isinstance(f, torch.nn.Module) else f
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: assume plain
        return False
    if any(p.name == "index" for p in parameters):
        return True
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) >= 2


def occurrence_rank(index: Tensor) -> Tensor:
    """For each entry, how many earlier entries have the same value: ``[3, 1, 3, 3] -> [0, 0, 1, 2]``."""
    sorted_index, order = torch.sort(index, stable=True)
    first = torch.searchsorted(sorted_index, sorted_index, right=False)
    rank = torch.empty_like(index)
    rank[order] = torch.arange(len(index), device=index.device) - first
    return rank


def as_indexed(f: Objective, batch_size: int) -> IndexedObjective:
    """Return ``f`` as an indexed objective (see the module docstring)."""
    if _is_indexed(f):
        return f

    def indexed(z: Tensor, index: Tensor) -> Tensor:
        rank = occurrence_rank(index)
        out = z.new_zeros(len(index))
        for r in range(int(rank.max()) + 1 if len(index) else 0):
            rows = (rank == r).nonzero().squeeze(1)
            full = z.new_zeros(batch_size, z.shape[1]).index_put((index[rows],), z[rows])
            values = f(full)
            if values.shape != (batch_size,):
                raise ValueError(f"objective must return shape ({batch_size},), got {tuple(values.shape)}")
            out = out.index_put((rows,), values[index[rows]])
        return out

    return indexed


def check_start(z0: Tensor) -> Tensor:
    if z0.ndim != 2:
        raise ValueError(f"latent codes must be (B, d), got shape {tuple(z0.shape)}")
    if not z0.is_floating_point():
        raise ValueError("latent codes must be floating point")
    return z0.detach().clone()


def finite_or_inf(values: Tensor) -> Tensor:
    """Objective values with NaN / -inf / +inf mapped to +inf (a trial point never wins)."""
    return torch.where(torch.isfinite(values), values, torch.full_like(values, float("inf")))
