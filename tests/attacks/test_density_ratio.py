"""The DOMIAS density-ratio score: against scipy's gaussian_kde (the `domias` package's estimator), and its signal."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from ganleaks.attacks.density_ratio import DensityRatioAttack, GaussianKDE


def test_log_density_matches_scipy_gaussian_kde():
    points = torch.randn(200, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = GaussianKDE(points).log_density(x, chunk_size=37).numpy()
    theirs = stats.gaussian_kde(points.numpy().T).logpdf(x.numpy().T)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def domias_kde_score(synthetic: np.ndarray, reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The `domias` package's score with ``density_estimator="kde"`` (``src/domias/evaluator.py``,
    ``evaluate_performance``), on ``(n, d)`` rows: ``density_gen = gaussian_kde(synthetic.T)``,
    ``density_data = gaussian_kde(reference.T)``, score ``density_gen(x.T) / (density_data(x.T) + 1e-30)``."""
    density_gen = stats.gaussian_kde(synthetic.T)
    density_data = stats.gaussian_kde(reference.T)
    return density_gen(queries.T) / (density_data(queries.T) + 1e-30)


def test_score_matches_domias_formula_on_the_same_representation():
    """The `domias` evaluator's p_G / p_R with scipy.stats.gaussian_kde, in our PCA coordinates: log-ratio to 1e-4."""
    g = torch.Generator().manual_seed(2)
    generated, reference, queries = (torch.rand(n, 1, 8, 8, generator=g) * 2 - 1 for n in (150, 160, 40))
    attack = DensityRatioAttack(generated, reference, dims=4)
    ours = attack.score(queries).numpy()
    project = attack.projection
    theirs = domias_kde_score(*(project(t).numpy() for t in (generated, reference, queries)))
    np.testing.assert_allclose(ours, np.log(theirs), rtol=1e-4)


def test_batch_invariance():
    g = torch.Generator().manual_seed(3)
    attack = DensityRatioAttack(torch.randn(100, 6, generator=g), torch.randn(100, 6, generator=g), dims=3)
    x = torch.randn(20, 6, generator=g)
    torch.testing.assert_close(attack.score(x)[5:9], attack.score(x[5:9]))


def _auc(copied: bool) -> float:
    g = torch.Generator().manual_seed(4)
    members, nonmembers, reference = (torch.randn(n, 10, generator=g) for n in (100, 100, 300))
    independent = torch.randn(200, 10, generator=g)
    generated = torch.cat([members[:50], independent[:150]]) if copied else independent
    scores = DensityRatioAttack(generated, reference, dims=None).score(torch.cat([members, nonmembers]))
    return float(roc_auc_score([1] * 100 + [0] * 100, scores.numpy()))


def test_memorised_members_are_found_and_independent_samples_are_not():
    assert _auc(copied=True) > 0.7
    assert abs(_auc(copied=False) - 0.5) < 0.12


def test_the_randomised_pca_of_large_records_spans_the_exact_components(monkeypatch):
    """Beyond EXACT_SVD_LIMIT the PCA is randomised: its top components are the exact SVD's (up to sign)."""
    from ganleaks.attacks.density_ratio import PCAProjection

    g = torch.Generator().manual_seed(6)
    scales = torch.logspace(1, -1, 40, dtype=torch.float64)  # distinct variances: a well-defined top 5
    records = torch.randn(300, 40, generator=g, dtype=torch.float64) * scales
    exact = PCAProjection(records, dims=5).components
    monkeypatch.setattr(PCAProjection, "EXACT_SVD_LIMIT", 10)
    randomised = PCAProjection(records, dims=5).components
    assert randomised is not None and exact is not None
    torch.testing.assert_close((randomised.T @ exact).abs(), torch.eye(5, dtype=torch.float64), atol=1e-3, rtol=0)
