"""Batched per-query Powell: gradient-free, optimum, batch invariance, failures, budget, vs scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from ganleaks.optimizers.powell import batched_powell
from ganleaks.status import STATUS_DIVERGED
from tests.attacks.helpers import make_generator, quadratic_problems, reconstruction_objective


def test_never_takes_a_gradient():
    f, _ = quadratic_problems(batch=3, dim=5)
    calls = []

    def guarded(z, index):
        if torch.is_grad_enabled() or z.requires_grad:
            raise AssertionError("Powell asked for a gradient")
        calls.append(len(z))
        return f.indexed(z, index)

    result = batched_powell(guarded, torch.zeros(3, 5, requires_grad=True), max_iter=3)
    assert calls and not result.z.requires_grad and not result.objective.requires_grad


def test_finds_the_minimum_of_rotated_quadratics():
    f, centre = quadratic_problems(batch=4, dim=6)
    result = batched_powell(f, torch.zeros(4, 6), max_iter=30, ftol=1e-10)
    assert (result.objective - 1.0).max() < 1e-4  # started around 1 + O(10)
    torch.testing.assert_close(result.z, centre, atol=2e-2, rtol=0)


def test_reconstructs_generated_targets():
    generator = make_generator(0)
    g = torch.Generator().manual_seed(1)
    targets = generator(torch.randn(8, 8, generator=g)).detach()
    objective = reconstruction_objective(generator, targets, latent_weight=0.0)
    start = objective(torch.zeros(8, 8), torch.arange(8))
    result = batched_powell(objective, torch.zeros(8, 8), max_iter=30)
    assert (result.objective < 1e-2 * start).sum() >= 6
    assert result.objective.median() < 1e-2 * start.median()


def test_a_query_alone_and_in_a_batch_of_16_reaches_the_same_loss():
    generator = make_generator(0)
    g = torch.Generator().manual_seed(2)
    targets = (generator(torch.randn(16, 8, generator=g)) + 0.2 * torch.randn(16, 1, 16, 16, generator=g)).detach()
    z0 = torch.randn(16, 8, generator=g)
    batch = batched_powell(reconstruction_objective(generator, targets), z0, max_iter=5)
    for i in (0, 7, 15):
        alone = batched_powell(reconstruction_objective(generator, targets[i : i + 1]), z0[i : i + 1], max_iter=5)
        assert (alone.objective[0] - batch.objective[i]).abs() <= 1e-4 * batch.objective[i]


def test_nan_query_is_marked_failed_and_others_are_unchanged():
    f, _ = quadratic_problems(batch=4, dim=3)

    def poisoned(z, index):
        values = f.indexed(z, index)
        return torch.where(index == 1, torch.full_like(values, float("nan")), values)

    z0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    clean = batched_powell(f, z0, max_iter=5)
    result = batched_powell(poisoned, z0, max_iter=5)
    assert result.failed.tolist() == [False, True, False, False]
    assert result.status[1] == STATUS_DIVERGED and torch.isnan(result.objective[1])
    keep = torch.tensor([0, 2, 3])
    torch.testing.assert_close(result.objective[keep], clean.objective[keep])
    torch.testing.assert_close(result.z[keep], clean.z[keep])


def test_non_finite_regions_are_avoided():
    def walled(z):  # +inf beyond |z_j| > 2; the minimum (at 1.5) is inside
        value = ((z - 1.5) ** 2).sum(1)
        return torch.where(z.abs().amax(1) > 2, torch.full_like(value, float("inf")), value)

    result = batched_powell(walled, torch.zeros(2, 3), max_iter=20)
    assert not result.failed.any() and result.objective.max() < 1e-4


def test_evaluation_budget_and_one_call_per_round():
    f, _ = quadratic_problems(batch=5, dim=4)
    calls = []

    def counted(z, index):
        calls.append(index.clone())
        return f.indexed(z, index)

    result = batched_powell(counted, torch.zeros(5, 4), max_iter=100, max_evals=40, refinements=1)
    assert result.n_evals.max() <= 40 + 3
    assert sum(len(c) for c in calls) == int(result.n_evals.sum())
    # Several trial points of one query share a call (stacked along the batch dimension).
    assert any(len(c) > len(c.unique()) for c in calls)
    # Rounds serve every running query at once: far fewer calls than evaluations.
    assert len(calls) < 0.5 * int(result.n_evals.sum())


@pytest.mark.slow
def test_at_least_as_good_as_scipy_powell_with_fewer_evaluations():
    generator = make_generator(3, latent_dim=12)
    g = torch.Generator().manual_seed(4)
    n = 10
    targets = torch.cat([
        generator(torch.randn(n // 2, 12, generator=g)) + 0.05 * torch.randn(n // 2, 1, 16, 16, generator=g),
        make_generator(5, latent_dim=12)(torch.randn(n // 2, 12, generator=g)),  # not on this manifold
    ]).detach().clamp(-1, 1)  # fmt: skip
    objective = reconstruction_objective(generator, targets)
    z0 = torch.randn(n, 12, generator=g)
    scipy_losses, scipy_evals = [], []
    for i in range(n):

        def fun(v, i=i):
            with torch.no_grad():
                return float(objective(torch.as_tensor(v, dtype=torch.float32)[None], torch.tensor([i])))

        found = scipy.optimize.minimize(fun, z0[i].double().numpy(), method="Powell", options={"maxiter": 10})
        scipy_losses.append(found.fun)
        scipy_evals.append(found.nfev)
    ours = batched_powell(objective, z0, max_iter=10)
    assert np.median(ours.objective.numpy()) <= np.median(scipy_losses) * 1.01
    assert ours.n_evals.float().mean() < 0.5 * np.mean(scipy_evals)
