"""The batched per-query optimisers by name (``setting.optimizer=lbfgs`` / ``powell``)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ganleaks.optimizers.base import Objective, OptimResult
from ganleaks.optimizers.lbfgs import batched_lbfgs
from ganleaks.optimizers.powell import batched_powell

#: The optimisers a setting may name.
OPTIMIZERS: dict[str, Callable[..., OptimResult]] = {"lbfgs": batched_lbfgs, "powell": batched_powell}


def optimizer_by_name(name: str) -> Callable[..., OptimResult]:
    """The optimiser called ``name``; an unknown name is refused with the choices."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {name!r}")
    return OPTIMIZERS[name]


def minimize(f: Objective, z0: Tensor, method: str = "lbfgs", **kwargs) -> OptimResult:
    """Minimise ``f`` per query from ``z0`` with the optimiser called ``method``."""
    return optimizer_by_name(method)(f, z0, **kwargs)
