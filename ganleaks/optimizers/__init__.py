"""Batched per-query optimisers: a query's latent is its own problem inside one batched tensor.

:mod:`.base` (the objective forms, the result), :mod:`.lbfgs` (white-box, gradients through G),
:mod:`.powell` (partial black-box, forward passes only), :mod:`.registry` (by name).
"""

from ganleaks.optimizers.base import OptimResult
from ganleaks.optimizers.lbfgs import batched_lbfgs
from ganleaks.optimizers.powell import batched_powell
from ganleaks.optimizers.registry import minimize, optimizer_by_name

__all__ = ["OptimResult", "batched_lbfgs", "batched_powell", "minimize", "optimizer_by_name"]
