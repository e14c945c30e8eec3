"""Batched per-query L-BFGS: optimum, batch invariance, failure isolation, budgets."""

from __future__ import annotations

import pytest
import torch

from ganleaks.optimizers.lbfgs import batched_lbfgs
from ganleaks.status import STATUS_DIVERGED, STATUS_OK
from tests.attacks.helpers import make_generator, quadratic_problems, reconstruction_objective


@pytest.mark.parametrize("line_search", ["strong_wolfe", "armijo"])
def test_finds_the_minimum_of_ill_conditioned_quadratics(line_search):
    f, centre = quadratic_problems(batch=6, dim=10)
    result = batched_lbfgs(f, torch.zeros(6, 10), max_iter=200, line_search=line_search)
    torch.testing.assert_close(result.z, centre, atol=1e-3, rtol=0)
    assert (result.objective - 1.0).abs().max() < 1e-5
    assert result.converged.all() and not result.failed.any()
    assert result.status.tolist() == [STATUS_OK] * 6


def test_rosenbrock_matches_torch_lbfgs_quality():
    def rosenbrock(z):
        return (100 * (z[:, 1:] - z[:, :-1] ** 2) ** 2 + (1 - z[:, :-1]) ** 2).sum(1)

    z0 = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    result = batched_lbfgs(rosenbrock, z0, max_iter=300)
    for i in range(4):
        z = z0[i : i + 1].clone().requires_grad_(True)
        reference = torch.optim.LBFGS([z], max_iter=300, line_search_fn="strong_wolfe")

        def closure(reference=reference, z=z):  # bound now: called only inside this iteration
            reference.zero_grad()
            loss = rosenbrock(z).sum()
            loss.backward()
            return loss

        reference.step(closure)
        assert result.objective[i] <= max(float(rosenbrock(z.detach())), 1e-8) * 10
    assert result.objective.max() < 1e-6


def test_reconstructs_generated_targets():
    generator = make_generator(0).requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    z_true = torch.randn(8, 8, generator=g)
    targets = generator(z_true).detach()
    objective = reconstruction_objective(generator, targets, latent_weight=0.0)
    start = objective(torch.zeros(8, 8), torch.arange(8))
    result = batched_lbfgs(objective, torch.zeros(8, 8), max_iter=200)
    assert (result.objective < 1e-3 * start).sum() >= 7  # a non-convex search may miss once
    assert result.objective.median() < 1e-4


def test_a_query_alone_and_in_a_batch_of_16_reaches_the_same_loss():
    generator = make_generator(0).requires_grad_(False)
    g = torch.Generator().manual_seed(2)
    targets = (generator(torch.randn(16, 8, generator=g)) + 0.2 * torch.randn(16, 1, 16, 16, generator=g)).detach()
    z0 = torch.randn(16, 8, generator=g)
    objective = reconstruction_objective(generator, targets)
    batch = batched_lbfgs(objective, z0, max_iter=40)
    for i in (0, 5, 11):
        alone_objective = reconstruction_objective(generator, targets[i : i + 1])
        alone = batched_lbfgs(alone_objective, z0[i : i + 1], max_iter=40)
        # Batched convolutions round differently from single ones, hence a tolerance, not equality.
        torch.testing.assert_close(alone.objective[0], batch.objective[i], rtol=1e-4, atol=1e-6)
        assert (alone.objective[0] - batch.objective[i]).abs() <= 1e-4 * batch.objective[i]


def test_nan_query_is_marked_failed_and_others_are_unchanged():
    f, _ = quadratic_problems(batch=5, dim=4)

    def poisoned(z, index):
        values = f.indexed(z, index)
        return torch.where(index == 2, torch.full_like(values, float("nan")), values)

    z0 = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    clean = batched_lbfgs(f, z0, max_iter=50)
    result = batched_lbfgs(poisoned, z0, max_iter=50)
    assert result.failed.tolist() == [False, False, True, False, False]
    assert result.status[2] == STATUS_DIVERGED and torch.isnan(result.objective[2])
    torch.testing.assert_close(result.z[2], z0[2])
    keep = torch.tensor([0, 1, 3, 4])
    torch.testing.assert_close(result.objective[keep], clean.objective[keep])
    torch.testing.assert_close(result.z[keep], clean.z[keep])


def test_non_finite_trial_points_only_shorten_the_step():
    # +inf outside the ball of radius 1.5: the unconstrained minimum (at 1) is inside.
    def walled(z):
        value = ((z - 1.0) ** 2).sum(1)
        return torch.where(z.norm(dim=1) > 1.5 * z.shape[1] ** 0.5, torch.full_like(value, float("inf")), value)

    result = batched_lbfgs(walled, torch.full((3, 4), -1.0) + torch.arange(3.0)[:, None] * 0.1, max_iter=100)
    assert not result.failed.any()
    assert result.objective.max() < 1e-8


def test_evaluation_budget_and_frozen_converged_queries():
    f, _ = quadratic_problems(batch=4, dim=6)
    calls = []

    def counted(z, index):
        calls.append(index.clone())
        return f.indexed(z, index)

    result = batched_lbfgs(counted, torch.zeros(4, 6), max_iter=100, max_evals=12)
    assert result.n_evals.max() <= 12
    assert int(sum(len(c) for c in calls)) == int(result.n_evals.sum())
    # A query that starts at its optimum converges at once and is never evaluated again.
    _, centre = quadratic_problems(batch=4, dim=6)
    z0 = torch.zeros(4, 6)
    z0[1] = centre[1]
    calls.clear()
    result = batched_lbfgs(counted, z0, max_iter=100)
    assert result.n_evals[1] == 1 and result.n_iter[1] == 0
    assert all(1 not in c.tolist() for c in calls[1:])


def test_refuses_inference_mode():
    f, _ = quadratic_problems(batch=2, dim=3)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        batched_lbfgs(f, torch.zeros(2, 3))
