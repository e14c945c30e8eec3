"""PGGAN victim (Karras et al., 2018): progressive growing from 4x4 with fade-in, WGAN-GP loss
plus the drift term; equalised learning rate, pixel norm and minibatch stddev live in the nets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ganleaks.models.losses import drift_penalty
from ganleaks.models.modules.wgangp import WGANGPModule

if TYPE_CHECKING:
    from ganleaks.models.nets.pggan import PGGANDiscriminator, PGGANGenerator


def growth_schedule(images_shown: int, images_per_phase: int, max_stage: int) -> tuple[int, float]:
    """Stage and fade-in after ``images_shown`` real images.

    Stage 0 (4x4) trains for one phase; every later stage first fades in over one phase (alpha
    rising linearly from 0 to 1), then stabilises for one phase at alpha 1. After the last
    stage's fade-in the model stays at ``(max_stage, 1.0)``.

    Returns:
        ``(stage, alpha)``.
    """
    if images_per_phase < 1:
        raise ValueError(f"images_per_phase must be >= 1, got {images_per_phase}")
    phase, progress = divmod(images_shown, images_per_phase)
    if phase == 0:
        return 0, 1.0
    stage = 1 + (phase - 1) // 2
    if stage > max_stage:
        return max_stage, 1.0
    fading = (phase - 1) % 2 == 0
    return stage, progress / images_per_phase if fading else 1.0


def fade_real(real: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
    """Real images as the critic sees them at ``stage``: average-pooled to the stage resolution
    and, while fading in, blended with their upsampled half-resolution version (weight ``1 - alpha``)."""
    resolution = 4 * 2**stage
    real = F.adaptive_avg_pool2d(real, resolution)
    if stage > 0 and alpha < 1.0:
        coarse = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
        real = torch.lerp(coarse, real, alpha)
    return real


class PGGANModule(WGANGPModule):
    """PGGAN training.

    Args:
        images_per_phase: real images per fade-in or stabilisation phase (PGGAN: 800k).
        drift_weight: weight eps_drift of ``E[D(x)^2]``.
        **kwargs: as :class:`WGANGPModule` (PGGAN uses ``n_critic=1``).
    """

    generator: PGGANGenerator
    discriminator: PGGANDiscriminator
    images_shown: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, *, images_per_phase: int = 10_000, drift_weight: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.images_per_phase = int(images_per_phase)
        self.drift_weight = float(drift_weight)
        self.register_buffer("images_shown", torch.tensor(0, dtype=torch.long))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesize(z)

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, parts = super().critic_loss(real, fake)
        drift = drift_penalty(self.discriminator(real))
        parts["loss/drift"] = drift
        parts["loss/critic"] = loss + self.drift_weight * drift
        return parts["loss/critic"], parts

    def train_batch(self, real: torch.Tensor) -> None:
        stage, alpha = growth_schedule(int(self.images_shown), self.images_per_phase, self.generator.max_stage)
        self.generator.set_growth(stage, alpha)
        self.discriminator.set_growth(stage, alpha)
        super().train_batch(fade_real(real, stage, alpha))
        self.images_shown += real.shape[0]
        self.log_dict(
            {"growth/stage": float(stage), "growth/alpha": alpha, "growth/resolution": float(4 * 2**stage)},
            batch_size=real.shape[0],
        )
