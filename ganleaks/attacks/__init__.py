"""The mechanisms the settings are built from: sample banks and the nearest-neighbour search, latent
reconstruction, the Monte-Carlo density estimate and the discriminator score."""

from ganleaks.attacks.discriminator_score import discriminator_scores
from ganleaks.attacks.montecarlo import MonteCarloAttack, monte_carlo_scores
from ganleaks.attacks.nearest_neighbor import Neighbors, SampleBank, make_sample_bank, nearest_neighbors
from ganleaks.attacks.reconstruction import LatentReconstructor, ReconstructionResult

__all__ = [
    "LatentReconstructor",
    "MonteCarloAttack",
    "Neighbors",
    "ReconstructionResult",
    "SampleBank",
    "discriminator_scores",
    "make_sample_bank",
    "monte_carlo_scores",
    "nearest_neighbors",
]
