"""The Fréchet distance between Gaussians fitted to two feature sets (the "F" of FID), in numpy."""

from __future__ import annotations

import numpy as np
import torch


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(F,)`` and covariance ``(F, F)`` (unbiased, float64) of ``features (N, F)``."""
    features = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must have shape (N >= 2, F), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``, with the trace of the matrix
    square root computed as ``sum sqrt(eig(S1^(1/2) S2 S1^(1/2)))``: that product is symmetric PSD,
    so the result is real and stable for the singular covariances that few samples give (where
    ``scipy.linalg.sqrtm(S1 @ S2)`` can return complex noise).

    Args:
        mu1, mu2: means ``(F,)``.
        sigma1, sigma2: covariances ``(F, F)``.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shapes do not match: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    root1 = _psd_sqrt(sigma1)
    cross = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = float(np.sqrt(np.clip(cross, 0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical inputs


def frechet_distance_of_features(features1, features2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N1, F)`` and ``(N2, F)``."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def frechet_distance_interval(
    features1, features2, *, resamples: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`frechet_distance_of_features`.

    Both feature sets are resampled with replacement (``resamples`` times, seeded), so the interval
    shows how much the distance moves with the finite real set and the finite draw of generated
    samples. It is an interval of the finite-sample statistic, which is biased upward (more so for
    small sets), not of the distance between the two distributions.
    """
    a = np.asarray(features1.detach().cpu() if isinstance(features1, torch.Tensor) else features1, np.float64)
    b = np.asarray(features2.detach().cpu() if isinstance(features2, torch.Tensor) else features2, np.float64)
    if not 0 < level < 1 or resamples < 2:
        raise ValueError(f"need 0 < level < 1 and resamples >= 2, got {level} and {resamples}")
    rng = np.random.default_rng(seed)
    values = [
        frechet_distance_of_features(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
        for _ in range(int(resamples))
    ]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
