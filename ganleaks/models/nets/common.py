"""Building blocks shared by the network families (plain PyTorch, no Lightning)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

NORMS = ("batch", "group", "layer", "none")


def constructor_kwargs(local_vars: dict[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable arguments a network was built with, from its ``__init__``'s ``locals()``.

    Exported next to the weights (``generator.json``) so the network can be rebuilt without pickle.
    """
    kwargs = {}
    for name, value in local_vars.items():
        if name in ("self", "__class__"):
            continue
        kwargs[name] = list(value) if isinstance(value, tuple) else value
    return kwargs


def image_shape(data_shape: Sequence[int], family: str, min_resolution: int) -> tuple[int, int, int]:
    """Validate a ``(C, H, W)`` image shape for a convolutional family; return it as a tuple.

    Raises:
        ValueError: not 3-D, not square, or not a power of two of at least ``min_resolution``.
    """
    shape = tuple(int(s) for s in data_shape)
    if len(shape) != 3:
        raise ValueError(
            f"{family} nets need image data of shape (C, H, W), got {shape}; "
            "for tabular rows (D,) use a model with MLP nets (model=wgangp or model=dcgan)"
        )
    channels, height, width = shape
    if height != width or height < min_resolution or height & (height - 1):
        raise ValueError(
            f"{family} nets need square power-of-two images of side >= {min_resolution}, "
            f"got {height}x{width}; set the data resolution to e.g. 32 or 64"
        )
    if channels < 1:
        raise ValueError(f"{family} nets need at least one image channel, got {shape}")
    return shape


def norm_2d(kind: str, channels: int) -> nn.Module:
    """A normalisation layer for ``channels`` feature maps.

    ``batch``: BatchNorm (DCGAN); ``group``: GroupNorm with 8-channel groups where possible
    (Opacus-compatible, per-sample); ``layer``: GroupNorm with one group, i.e. LayerNorm over
    (C, H, W) (WGAN-GP's critic); ``none``: identity.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)):
            if layer.weight is not None:
                nn.init.normal_(layer.weight, 1.0, 0.02)
                nn.init.zeros_(layer.bias)
