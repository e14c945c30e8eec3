"""The reconstruction distance L(x, G(z)) of paper eq. 8-10 (MSE, LPIPS, latent prior) and the installer
of LPIPS's ImageNet backbones (:mod:`.lpips_weights`)."""

from ganleaks.distances.distance import (
    LPIPSDistance,
    LPIPSWeightsMissingError,
    ReconstructionDistance,
    latent_prior,
    mean_squared_error,
)

__all__ = ["LPIPSDistance", "LPIPSWeightsMissingError", "ReconstructionDistance", "latent_prior", "mean_squared_error"]
