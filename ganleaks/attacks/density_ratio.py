"""Density-ratio membership score (DOMIAS, van Breugel et al., AISTATS 2023): log p_G(x) - log p_R(x).

p_G is a Gaussian kernel density fitted on generated samples, p_R one fitted on reference records
(data from the queries' distribution, disjoint from them). Flattened images are too
high-dimensional for a kernel density, so both are fitted in a PCA of the reference records
(fitted on the reference only: no query leaks into it) to ``dims`` components; tabular rows may
keep their own columns (``dims=None``). The bandwidth is Scott's rule with the data's covariance,
as ``scipy.stats.gaussian_kde`` sets it. Log-densities are a chunked logsumexp in torch.
See docs/DENSITY_RATIO.md.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ganleaks.attacks.nearest_neighbor import SampleBank, iterate_chunks


class PCAProjection:
    """A PCA fitted on ``records (N, *shape)``: ``(x - mean) @ components`` to ``dims`` components.

    An exact SVD while the records' matrix is small (``min(N, D) <= EXACT_SVD_LIMIT``); beyond it
    a randomised SVD (``torch.svd_lowrank``, dims + 10 directions, 4 power iterations, seeded), whose
    cost grows as N * D * dims rather than N * D * min(N, D): 10,000 CelebA records of 64x64x3
    would take minutes and gigabytes exactly. The projection only defines the representation both
    densities live in; the approximation moves every record's coordinates alike.

    Args:
        records: the records it is fitted on (the reference records only).
        dims: components kept; None keeps the records' own features (no projection).
    """

    EXACT_SVD_LIMIT = 2048

    def __init__(self, records: Tensor, dims: int | None) -> None:
        flat = records.reshape(len(records), -1).double()
        self.mean = flat.mean(dim=0)
        if dims is None:
            self.components = None
            return
        if not 1 <= dims <= min(flat.shape):
            raise ValueError(
                f"a PCA to {dims} components needs at least {dims} records and features; "
                f"there are {flat.shape[0]} records of {flat.shape[1]} features: lower setting.dims"
            )
        centred = flat - self.mean
        if min(flat.shape) <= self.EXACT_SVD_LIMIT:
            _, _, vh = torch.linalg.svd(centred, full_matrices=False)
            self.components = vh[:dims].T  # (D, dims)
        else:
            with torch.random.fork_rng(devices=[]):  # seeded, and the caller's random stream untouched
                torch.manual_seed(0)
                _, _, v = torch.svd_lowrank(centred, q=min(dims + 10, min(flat.shape)), niter=4)
            self.components = v[:, :dims]

    def __call__(self, x: Tensor) -> Tensor:
        """``(B, dims)`` float64 coordinates of ``x (B, *shape)``."""
        centred = x.reshape(len(x), -1).double().to(self.mean.device) - self.mean
        return centred if self.components is None else centred @ self.components


class GaussianKDE:
    """A Gaussian kernel density with a full bandwidth matrix, Scott's rule (``scipy.stats.gaussian_kde``'s default).

    The kernel covariance is the points' covariance (unbiased) times ``n ** (-2 / (d + 4))``.

    Args:
        points: ``(n, d)`` float64, n > d (a covariance of fewer points is singular).
    """

    def __init__(self, points: Tensor) -> None:
        n, d = points.shape
        if n <= d:
            raise ValueError(
                f"a kernel density in {d} dimensions needs more than {d} points, got {n}: lower setting.dims"
            )
        self.points = points.double()
        factor = n ** (-1.0 / (d + 4))  # Scott's rule
        covariance = torch.cov(self.points.T).reshape(d, d) * factor**2
        self.cholesky = torch.linalg.cholesky(covariance)
        log_det = 2.0 * torch.log(torch.diagonal(self.cholesky)).sum()
        self.log_norm = -0.5 * (d * math.log(2 * math.pi) + float(log_det)) - math.log(n)
        # Whitened points: the Mahalanobis distance becomes a Euclidean one.
        self.white = torch.linalg.solve_triangular(self.cholesky, self.points.T, upper=False).T

    def log_density(self, x: Tensor, chunk_size: int = 4096) -> Tensor:
        """``(B,)`` log p(x) of ``x (B, d)``: logsumexp over the kernels, ``chunk_size`` kernels at a time."""
        white = torch.linalg.solve_triangular(self.cholesky, x.double().T, upper=False).T
        parts = []
        for start in range(0, len(self.white), chunk_size):
            squared = torch.cdist(white, self.white[start : start + chunk_size]).pow(2)
            parts.append(torch.logsumexp(-0.5 * squared, dim=1))
        return torch.logsumexp(torch.stack(parts, dim=1), dim=1) + self.log_norm


class DensityRatioAttack:
    """DOMIAS score ``log p_G(x) - log p_R(x)`` (higher = member), both densities in one PCA of the reference.

    Both densities are fitted once, here; scoring only evaluates them.

    Args:
        generated: ``(k, *shape)`` generated samples, or a :class:`SampleBank` (projected a chunk at a
            time, so the k samples are never held in memory at once).
        reference: ``(R, *shape)`` reference records, disjoint from every query.
        dims: PCA components (fitted on ``reference``); None: the records' own features.
    """

    def __init__(self, generated: Tensor | SampleBank, reference: Tensor, dims: int | None) -> None:
        self.projection = PCAProjection(reference, dims)
        coordinates = [self.projection(chunk) for _, chunk in iterate_chunks(generated)]
        self.generated = GaussianKDE(torch.cat(coordinates))
        self.reference = GaussianKDE(self.projection(reference))

    def score(self, x: Tensor) -> Tensor:
        """``(B,)`` float64 log density ratio of queries ``x (B, *shape)``; a query's score depends on it alone."""
        z = self.projection(x)
        return self.generated.log_density(z) - self.reference.log_density(z)
