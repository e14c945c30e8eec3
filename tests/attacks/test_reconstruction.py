"""LatentReconstructor: white-box / partial black-box reconstruction, seeding, invariance, freezing."""

from __future__ import annotations

import pytest
import torch

from ganleaks.attacks.reconstruction import LatentReconstructor, random_latents
from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.status import STATUS_DIVERGED, STATUS_OK
from tests.attacks.helpers import make_generator


def _targets(generator, n=6, noise=0.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator.latent_dim, generator=g)
    with torch.no_grad():
        x = generator(z) + noise * torch.randn(n, *generator.data_shape, generator=g)
    return x.clamp(-1, 1), z


@pytest.mark.parametrize("optimizer, max_iter", [("lbfgs", 100), ("powell", 20)])
def test_reconstructs_samples_of_the_generator(optimizer, max_iter):
    generator = make_generator(0)
    x, _ = _targets(generator)
    distance = ReconstructionDistance(l2_weight=1.0, latent_weight=0.0)
    reconstructor = LatentReconstructor(generator, distance, optimizer=optimizer, init="zero", max_iter=max_iter)
    result = reconstructor.reconstruct(x, torch.arange(6), seed=0)
    start = distance.loss(x, generator(torch.zeros(6, 8)).detach())
    assert result.status.tolist() == [STATUS_OK] * 6
    assert result.z.shape == (6, 8) and result.x_hat.shape == x.shape and result.loss.shape == (6,)
    assert (result.loss < 0.05 * start).sum() >= 5
    torch.testing.assert_close(result.loss, distance.loss(x, result.x_hat))
    assert (result.n_evals > 0).all()


def test_generator_is_frozen_and_kept_in_eval_mode():
    generator = make_generator(0).train()
    reconstructor = LatentReconstructor(generator, ReconstructionDistance(), optimizer="lbfgs")
    assert not any(p.requires_grad for p in generator.parameters())
    reconstructor.train()
    assert not generator.training  # batch norm in train mode would couple the queries
    x, _ = _targets(generator, n=2)
    reconstructor.reconstruct(x, torch.arange(2), seed=0)
    assert all(p.grad is None for p in generator.parameters())


def test_random_inits_depend_on_seed_and_id_only():
    a = random_latents(torch.tensor([5, 9, 2]), 4, seed=7)
    b = random_latents(torch.tensor([2, 5]), 4, seed=7)
    torch.testing.assert_close(a[[2, 0]], b)
    assert not torch.allclose(random_latents(torch.tensor([5]), 4, seed=8), a[:1])
    assert not torch.allclose(random_latents(torch.tensor([5]), 4, seed=7, restart=1), a[:1])


@pytest.mark.parametrize("optimizer", ["lbfgs", "powell"])
def test_scores_do_not_depend_on_batch_mates_or_order(optimizer):
    generator = make_generator(0)
    x, _ = _targets(generator, n=16, noise=0.2)
    ids = torch.arange(100, 116)
    reconstructor = LatentReconstructor(generator, ReconstructionDistance(latent_weight=1e-3), optimizer=optimizer,
                                        init="random", max_iter=20 if optimizer == "lbfgs" else 3)  # fmt: skip
    full = reconstructor.reconstruct(x, ids, seed=3)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    shuffled = reconstructor.reconstruct(x[order], ids[order], seed=3)
    alone = reconstructor.reconstruct(x[4:5], ids[4:5], seed=3)
    assert ((shuffled.loss - full.loss[order]).abs() <= 1e-4 * full.loss[order]).all()
    assert (alone.loss[0] - full.loss[4]).abs() <= 1e-4 * full.loss[4]
    other_seed = reconstructor.reconstruct(x[4:5], ids[4:5], seed=4)
    assert not torch.allclose(other_seed.z, alone.z)


def test_nn_init_starts_from_the_given_latents():
    generator = make_generator(0)
    x, z_true = _targets(generator, n=3)
    reconstructor = LatentReconstructor(generator, ReconstructionDistance(), optimizer="powell", init="nn", max_iter=1)
    with pytest.raises(ValueError, match="init_z"):
        reconstructor.reconstruct(x, torch.arange(3), seed=0)
    result = reconstructor.reconstruct(x, torch.arange(3), seed=0, init_z=z_true)
    assert result.loss.max() < 1e-6  # already at the optimum: Powell cannot make it worse


def test_restarts_keep_each_querys_best():
    generator = make_generator(0)
    x, _ = _targets(generator, n=6, noise=0.3)
    distance = ReconstructionDistance(latent_weight=1e-3)
    one = LatentReconstructor(generator, distance, optimizer="lbfgs", init="random", max_iter=5)
    three = LatentReconstructor(generator, distance, optimizer="lbfgs", init="random", max_iter=5, restarts=3)
    single, best = one.reconstruct(x, torch.arange(6), seed=0), three.reconstruct(x, torch.arange(6), seed=0)
    assert (best.objective <= single.objective * (1 + 1e-5)).all()
    assert (best.objective < single.objective * (1 - 1e-4)).sum() >= 2
    assert (best.n_evals > single.n_evals).all()


def test_a_nan_query_is_diverged_and_the_others_are_unaffected():
    generator = make_generator(0)
    x, _ = _targets(generator, n=4, noise=0.1)
    poisoned = x.clone()
    poisoned[2, 0, 3, 3] = float("nan")
    reconstructor = LatentReconstructor(generator, ReconstructionDistance(latent_weight=1e-3), optimizer="lbfgs",
                                        init="zero", max_iter=20)  # fmt: skip
    clean = reconstructor.reconstruct(x, torch.arange(4), 0)
    result = reconstructor.reconstruct(poisoned, torch.arange(4), 0)
    assert result.status.tolist() == [STATUS_OK, STATUS_OK, STATUS_DIVERGED, STATUS_OK]
    assert torch.isnan(result.loss[2]) and torch.isnan(result.objective[2])
    keep = torch.tensor([0, 1, 3])
    assert ((result.loss[keep] - clean.loss[keep]).abs() <= 1e-4 * clean.loss[keep]).all()


def test_rejects_mismatched_queries():
    generator = make_generator(0)
    reconstructor = LatentReconstructor(generator, ReconstructionDistance())
    with pytest.raises(ValueError, match="shape"):
        reconstructor.reconstruct(torch.zeros(2, 1, 8, 8), torch.arange(2), seed=0)
    with pytest.raises(ValueError, match="optimizer"):
        LatentReconstructor(generator, ReconstructionDistance(), optimizer="adam")
