"""Plain ``nn.Module`` generators, discriminators and encoders (no Lightning import).

``NETWORK_CLASSES`` is the allow-list that ``ganleaks.models.load_generator`` and
``load_discriminator`` rebuild exported networks from: a class path written in a
``generator.json`` that is not a key here is refused.

Every network keeps ``kwargs`` (its JSON-serialisable constructor arguments); generators expose
``latent_dim`` and ``data_shape`` and map ``(B, latent_dim) -> (B, *data_shape)`` in ``[-1, 1]``;
discriminators map ``(B, *data_shape) -> (B,)``, higher = more "real".
"""

from ganleaks.models.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganleaks.models.nets.mlp import MLPDiscriminator, MLPGenerator
from ganleaks.models.nets.pggan import PGGANDiscriminator, PGGANGenerator
from ganleaks.models.nets.vaegan import VAEGANEncoder

NETWORK_CLASSES = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for cls in (
        DCGANGenerator,
        DCGANDiscriminator,
        MLPGenerator,
        MLPDiscriminator,
        PGGANGenerator,
        PGGANDiscriminator,
        VAEGANEncoder,
    )
}

__all__ = [
    "NETWORK_CLASSES",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "PGGANDiscriminator",
    "PGGANGenerator",
    "VAEGANEncoder",
]
