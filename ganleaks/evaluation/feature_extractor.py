"""A small feature extractor trained here, seeded and CPU-sized: the feature space of the sample quality.

A classifier (CNN for images, MLP for rows) when the data has labels, its penultimate layer as the
features; an autoencoder otherwise, its bottleneck as the features. See
:mod:`ganleaks.evaluation.quality` for what it is trained on and why.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

log = logging.getLogger("ganleaks.evaluation.quality")  # the name the quality pass has always logged under


class FeatureNet(nn.Module):
    """Encoder to ``feature_dim`` features: strided convolutions for images, an MLP for rows.

    Shapes:
        ``forward(x: (B, *data_shape)) -> (B, feature_dim)``.
    """

    def __init__(self, data_shape: Sequence[int], feature_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        shape = tuple(int(s) for s in data_shape)
        if len(shape) == 3:
            channels, size = shape[0], min(shape[1:])
            layers: list[nn.Module] = []
            while size > 4 and len(layers) < 8:  # halve down to about 4x4, at most 4 convolutions
                layers += [nn.Conv2d(channels, width, 3, 2, 1), nn.ReLU()]
                channels, width, size = width, min(width * 2, 128), (size + 1) // 2
            layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(channels * 4, feature_dim), nn.ReLU()]
        elif len(shape) == 1:
            layers = [nn.Linear(shape[0], 256), nn.ReLU(), nn.Linear(256, feature_dim), nn.ReLU()]
        else:
            raise ValueError(f"data_shape must be (C, H, W) or (D,), got {shape}")
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class FeatureExtractor:
    """A trained encoder and what it is, for ``quality.json``."""

    encoder: FeatureNet
    kind: str  # "classifier" | "autoencoder"
    description: str
    train_metric: float  # classifier: accuracy on its last batches; autoencoder: reconstruction MSE

    @torch.no_grad()
    def features(self, data: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Features ``(N, F)`` of ``data (N, *data_shape)`` in ``[-1, 1]``."""
        self.encoder.eval()
        return torch.cat([self.encoder(data[i : i + batch_size].float()) for i in range(0, len(data), batch_size)])


def fit_feature_extractor(
    data: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    steps: int = 600,
    batch_size: int = 128,
    feature_dim: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> FeatureExtractor:
    """Train a classifier (with ``labels``) or an autoencoder (without) on ``data``; seeded, CPU-sized.

    Args:
        data: ``(N, C, H, W)`` images or ``(N, D)`` rows in ``[-1, 1]``.
        labels: ``int64 (N,)`` class labels, or ``None`` for the autoencoder fallback.
        steps: optimiser steps (600 x 128 samples takes seconds on one CPU core at 32x32).
        seed: seeds the initialisation and the batches; the same inputs give the same extractor.
    """
    if len(data) < 2:
        raise ValueError(f"the feature extractor needs at least 2 training samples, got {len(data)}")
    shape = tuple(data.shape[1:])
    supervised = labels is not None and len(torch.unique(labels)) > 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = FeatureNet(shape, feature_dim)
        if supervised:
            assert labels is not None  # supervised implies labels
            head: nn.Module = nn.Linear(feature_dim, int(labels.max()) + 1)
        else:
            head = nn.Sequential(nn.Linear(feature_dim, math.prod(shape)), nn.Tanh())
    model = nn.Sequential(encoder, head)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    model.train()
    recent: list[float] = []
    for _ in range(int(steps)):
        index = torch.randint(len(data), (min(batch_size, len(data)),), generator=rng)
        x = data[index].float()
        out = model(x)
        if supervised:
            assert labels is not None  # supervised implies labels
            target = labels[index]
            loss = nn.functional.cross_entropy(out, target)
            recent.append(float((out.argmax(1) == target).float().mean()))
        else:
            loss = nn.functional.mse_loss(out, x.reshape(len(x), -1))
            recent.append(loss.item())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        recent = recent[-20:]
    kind = "classifier" if supervised else "autoencoder"
    net = "cnn" if len(shape) == 3 else "mlp"
    layer = "penultimate layer" if supervised else "bottleneck"
    description = f"{kind}-{net}: {layer}, {feature_dim} features, {steps} steps, seed {seed}"
    metric = float(np.mean(recent)) if recent else float("nan")
    log.info(
        "feature extractor %s trained on %d samples (%s %.3f)",
        description,
        len(data),
        "accuracy" if supervised else "mse",
        metric,
    )
    return FeatureExtractor(encoder.eval(), kind, description, metric)
