"""GAN-Leaks attacks: distances, batched per-query optimisers, reconstruction, nearest neighbours,
Monte-Carlo and discriminator scores (the runner, calibration and audit live beside them)."""

from ganleaks.attacks.discriminator_score import discriminator_scores
from ganleaks.attacks.distances import (
    LPIPSDistance,
    LPIPSWeightsMissingError,
    ReconstructionDistance,
    latent_prior,
    mean_squared_error,
)
from ganleaks.attacks.lbfgs import batched_lbfgs
from ganleaks.attacks.montecarlo import MonteCarloAttack, monte_carlo_scores
from ganleaks.attacks.nearest_neighbor import Neighbors, SampleBank, nearest_neighbors
from ganleaks.attacks.optimizers import OptimResult, minimize
from ganleaks.attacks.powell import batched_powell
from ganleaks.attacks.reconstruction import LatentReconstructor, ReconstructionResult

__all__ = [
    "LPIPSDistance",
    "LPIPSWeightsMissingError",
    "LatentReconstructor",
    "MonteCarloAttack",
    "Neighbors",
    "OptimResult",
    "ReconstructionDistance",
    "ReconstructionResult",
    "SampleBank",
    "batched_lbfgs",
    "batched_powell",
    "discriminator_scores",
    "latent_prior",
    "mean_squared_error",
    "minimize",
    "monte_carlo_scores",
    "nearest_neighbors",
]
