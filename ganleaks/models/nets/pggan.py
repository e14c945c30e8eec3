"""Progressive GAN networks (Karras et al., 2018).

Both networks hold every layer up to the target resolution from the start and carry the growth
state as buffers: ``stage`` (0 = 4x4, ``s`` = ``4 * 2**s``) and ``alpha`` (fade-in of the newest
stage, 1 = fully grown). The buffers travel with the weights, so an exported network rebuilt
from its kwargs plus ``generator.safetensors`` is at the stage where training stopped. The
generator's ``forward`` always returns the full target resolution (the current stage's output
is upsampled when training stopped before full growth); training uses ``synthesize`` at the
stage resolution. Layers use the equalised learning rate, the generator pixel norm, the
discriminator a minibatch standard-deviation feature.

The minibatch-stddev feature makes ``D(x)`` a function of the whole batch. As with batch norm,
training mode uses the batch (the statistic the critic learns from), and eval mode, where ``D``
scores queries (the discriminator attack), uses a fixed group: each query is judged inside a
group of itself plus ``SCORING_GROUP_SIZE - 1`` fixed reference images (Karras et al. share the
statistic within groups of 4), so its score depends on no other query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ganleaks.models.nets.common import constructor_kwargs, image_shape

SCORING_GROUP_SIZE = 4  # Karras et al.'s minibatch-stddev group: a query plus 3 fixed images
SCORING_REFERENCE_SEED = 0


class EqualizedConv2d(nn.Module):
    """Conv2d whose weights are ``N(0, 1)`` and rescaled at run time by He's constant."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, gain: float = math.sqrt(2)
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """Linear layer with the equalised learning rate."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit average square (dim 1)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, eps: float = 1e-8, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Append a group's average feature standard deviation as one extra constant channel.

    Args:
        x: ``(B, C, h, w)`` activations.
        reference: ``None``: the group is the whole batch (training). ``(R, C, h, w)``
            activations: each sample's group is itself plus ``reference``, so its channel
            depends on no other sample of ``x`` (scoring).

    Returns:
        ``(B, C + 1, h, w)``.
    """
    if reference is None:
        std = torch.sqrt(x.var(dim=0, unbiased=False) + eps).mean().expand(x.shape[0])
    else:
        group = torch.cat([x.unsqueeze(1), reference.unsqueeze(0).expand(x.shape[0], *reference.shape)], dim=1)
        std = torch.sqrt(group.var(dim=1, unbiased=False) + eps).flatten(1).mean(dim=1)
    return torch.cat([x, std.view(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[2:])], dim=1)


def scoring_reference_images(
    data_shape: Sequence[int], num: int = SCORING_GROUP_SIZE - 1, seed: int = SCORING_REFERENCE_SEED
) -> torch.Tensor:
    """The default fixed group of a :class:`PGGANDiscriminator` in eval mode: ``(num, C, H, W)``
    uniform noise in ``[-1, 1]`` from ``seed``.

    A function of the shape and seed only (a local generator; the global RNG is untouched), so
    a discriminator exported before the fixed group existed rebuilds the same group on loading.
    The discriminator alone holds no in-distribution images; a caller with the generator can
    set generated samples instead (:meth:`PGGANDiscriminator.set_scoring_reference`).
    """
    generator = torch.Generator().manual_seed(int(seed))
    return torch.rand(int(num), *data_shape, generator=generator) * 2 - 1


class _ConvAct(nn.Module):
    """Equalised conv, LeakyReLU(0.2), optional pixel norm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, pixelnorm: bool) -> None:
        super().__init__()
        self.conv = EqualizedConv2d(in_channels, out_channels, kernel_size, padding)
        self.pixelnorm = pixelnorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv(x), 0.2)
        return pixel_norm(x) if self.pixelnorm else x


class _GrowthState(nn.Module):
    """Stage / fade-in buffers shared by both networks."""

    stage: torch.Tensor  # buffers (registered in _init_growth)
    alpha: torch.Tensor

    def _init_growth(self, resolution: int, stage: int, alpha: float) -> None:
        self.max_stage = int(math.log2(resolution)) - 2
        if not 0 <= stage <= self.max_stage:
            raise ValueError(f"stage must be in [0, {self.max_stage}] for resolution {resolution}, got {stage}")
        self.register_buffer("stage", torch.tensor(int(stage)))
        self.register_buffer("alpha", torch.tensor(float(alpha)))

    def set_growth(self, stage: int, alpha: float) -> None:
        """Move to ``stage`` with fade-in ``alpha`` in ``[0, 1]``."""
        if not 0 <= stage <= self.max_stage or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"need 0 <= stage <= {self.max_stage} and 0 <= alpha <= 1, got {stage}, {alpha}")
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)

    @property
    def stage_resolution(self) -> int:
        return 4 * 2 ** int(self.stage)


def _widths(max_stage: int, fmap_base: int, fmap_max: int) -> list[int]:
    return [min(fmap_max, fmap_base // 2**stage) for stage in range(max_stage + 1)]


class PGGANGenerator(_GrowthState):
    """Progressively grown generator.

    Args:
        latent_dim: size of ``z``.
        data_shape: ``(C, H, W)``, ``H == W`` a power of two >= 4 (the final resolution).
        fmap_base, fmap_max: width at stage ``s`` is ``min(fmap_max, fmap_base // 2**s)``.
        stage, alpha: initial growth state (training starts at stage 0; the buffers hold the
            current state).

    Shapes:
        ``forward(z: (B, latent_dim)) -> (B, C, H, W)`` in ``[-1, 1]`` at the full resolution;
        ``synthesize(z) -> (B, C, r, r)`` at the stage resolution ``r``.
    """

    def __init__(
        self,
        *,
        latent_dim: int,
        data_shape: Sequence[int],
        fmap_base: int = 1024,
        fmap_max: int = 256,
        stage: int = 0,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        self.kwargs = constructor_kwargs(locals())
        self.latent_dim = int(latent_dim)
        self.data_shape = image_shape(data_shape, "PGGAN", 4)
        channels, resolution, _ = self.data_shape
        self._init_growth(resolution, stage, alpha)
        widths = _widths(self.max_stage, fmap_base, fmap_max)
        self.input = EqualizedLinear(self.latent_dim, widths[0] * 16, gain=math.sqrt(2) / 4)
        self.input_conv = _ConvAct(widths[0], widths[0], 3, 1, pixelnorm=True)
        self.blocks = nn.ModuleList(
            [nn.Identity()]
            + [
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    _ConvAct(widths[s - 1], widths[s], 3, 1, pixelnorm=True),
                    _ConvAct(widths[s], widths[s], 3, 1, pixelnorm=True),
                )
                for s in range(1, self.max_stage + 1)
            ]
        )
        self.to_rgb = nn.ModuleList([EqualizedConv2d(w, channels, 1, gain=1.0) for w in widths])

    def synthesize(self, z: torch.Tensor) -> torch.Tensor:
        stage, alpha = int(self.stage), float(self.alpha)
        h = F.leaky_relu(self.input(pixel_norm(z)).view(z.shape[0], -1, 4, 4), 0.2)
        h = self.input_conv(pixel_norm(h))
        for s in range(1, stage):
            h = self.blocks[s](h)
        if stage == 0:
            return torch.tanh(self.to_rgb[0](h))
        out = self.to_rgb[stage](self.blocks[stage](h))
        if alpha < 1.0:
            previous = F.interpolate(self.to_rgb[stage - 1](h), scale_factor=2, mode="nearest")
            out = torch.lerp(previous, out, alpha)
        return torch.tanh(out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        images = self.synthesize(z)
        if images.shape[-1] != self.data_shape[-1]:
            images = F.interpolate(images, size=self.data_shape[1:], mode="nearest")
        return images


class PGGANDiscriminator(_GrowthState):
    scoring_reference: torch.Tensor  # a non-persistent buffer (registered in __init__)

    """Progressively grown critic.

    Args:
        data_shape: ``(C, H, W)`` as for the generator.
        fmap_base, fmap_max, stage, alpha: as for the generator.

    Shapes:
        ``forward(x: (B, C, h, w)) -> (B,)`` for any ``h = w >=`` the stage resolution (larger
        inputs are average-pooled down to it); higher = more "real". In training mode the
        minibatch-stddev statistic is taken over ``x``; in eval mode each query is scored inside
        a group of itself plus the fixed ``scoring_reference`` images, so ``D(x)[i]`` depends
        on ``x[i]`` alone (batch size and order do not matter).
    """

    def __init__(
        self,
        *,
        data_shape: Sequence[int],
        fmap_base: int = 1024,
        fmap_max: int = 256,
        stage: int = 0,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        self.kwargs = constructor_kwargs(locals())
        self.data_shape = image_shape(data_shape, "PGGAN", 4)
        channels, resolution, _ = self.data_shape
        self._init_growth(resolution, stage, alpha)
        widths = _widths(self.max_stage, fmap_base, fmap_max)
        self.from_rgb = nn.ModuleList([EqualizedConv2d(channels, w, 1) for w in widths])
        self.blocks = nn.ModuleList(
            [nn.Identity()]
            + [
                nn.Sequential(
                    _ConvAct(widths[s], widths[s], 3, 1, pixelnorm=False),
                    _ConvAct(widths[s], widths[s - 1], 3, 1, pixelnorm=False),
                    nn.AvgPool2d(2),
                )
                for s in range(1, self.max_stage + 1)
            ]
        )
        self.final_conv = _ConvAct(widths[0] + 1, widths[0], 3, 1, pixelnorm=False)
        self.final_dense = _ConvAct(widths[0], widths[0], 4, 0, pixelnorm=False)
        self.output = EqualizedLinear(widths[0], 1, gain=1.0)
        # Not persistent: no new weights in exports, and older exports load and score the same.
        self.register_buffer("scoring_reference", scoring_reference_images(self.data_shape), persistent=False)

    def set_scoring_reference(self, images: torch.Tensor) -> None:
        """Score eval-mode queries inside a group of each query plus ``images`` ``(R, C, H, W)``
        in ``[-1, 1]`` (e.g. seeded generated samples) instead of the default noise group."""
        if images.ndim != 4 or images.shape[0] < 1 or tuple(images.shape[1:]) != tuple(self.data_shape):
            raise ValueError(
                f"the scoring reference must be (R >= 1, {', '.join(map(str, self.data_shape))}) "
                f"images, got shape {tuple(images.shape)}"
            )
        if not torch.isfinite(images).all():
            raise ValueError("the scoring reference holds NaN or inf; pass finite images in [-1, 1]")
        self.scoring_reference = images.detach().to(self.scoring_reference)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._features(x)
        reference = None if self.training else self._features(self.scoring_reference.to(x.dtype))
        h = self.final_dense(self.final_conv(minibatch_stddev(h, reference=reference)))
        return self.output(h.flatten(1)).view(x.shape[0])

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w) -> (B, widths[0], 4, 4)``: every layer before the minibatch statistic
        (all per sample)."""
        stage, alpha = int(self.stage), float(self.alpha)
        resolution = self.stage_resolution
        if x.shape[-1] != resolution:
            x = F.adaptive_avg_pool2d(x, resolution)
        h = F.leaky_relu(self.from_rgb[stage](x), 0.2)
        if stage > 0:
            h = self.blocks[stage](h)
            if alpha < 1.0:
                previous = F.leaky_relu(self.from_rgb[stage - 1](F.avg_pool2d(x, 2)), 0.2)
                h = torch.lerp(previous, h, alpha)
        for s in range(stage - 1, 0, -1):
            h = self.blocks[s](h)
        return h
