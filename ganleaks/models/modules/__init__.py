"""Lightning modules of the victim families (manual optimisation, one optimiser per network)."""

from ganleaks.models.modules.base import GANModule
from ganleaks.models.modules.dcgan import DCGANModule
from ganleaks.models.modules.pggan import PGGANModule, growth_schedule
from ganleaks.models.modules.vaegan import VAEGANModule
from ganleaks.models.modules.wgangp import WGANGPModule

__all__ = ["GANModule", "DCGANModule", "PGGANModule", "VAEGANModule", "WGANGPModule", "growth_schedule"]
