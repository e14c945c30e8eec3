"""Hilprecht et al.'s Monte-Carlo score against a brute-force count."""

from __future__ import annotations

import torch

from ganleaks.attacks.montecarlo import MonteCarloAttack, monte_carlo_scores
from ganleaks.attacks.nearest_neighbor import SampleBank
from tests.attacks.helpers import make_generator


def test_counts_samples_in_the_median_ball_like_brute_force():
    g = torch.Generator().manual_seed(0)
    samples = torch.rand(500, 1, 4, 4, generator=g) * 2 - 1
    members = samples[:10] + 0.05 * torch.randn(10, 1, 4, 4, generator=g)  # near generated samples
    outsiders = torch.rand(10, 1, 4, 4, generator=g) * 2 - 1
    queries = torch.cat([members, outsiders])
    distances = torch.cdist(queries.flatten(1).double(), samples.flatten(1).double()) ** 2
    nearest = distances.min(1).values
    radius_squared = nearest.sort().values[(len(nearest) - 1) // 2]  # lower median

    result = monte_carlo_scores(queries, samples, chunk_size=64)
    epsilon_squared = torch.tensor(result.epsilon**2, dtype=torch.float64)
    torch.testing.assert_close(epsilon_squared, radius_squared, rtol=1e-5, atol=1e-6)
    expected = (distances <= radius_squared + 1e-6).double().mean(1)
    torch.testing.assert_close(result.score.double(), expected)
    assert result.score[:10].mean() > result.score[10:].mean()

    attack = MonteCarloAttack(samples, chunk_size=64)
    attack.fit_epsilon(queries)
    torch.testing.assert_close(attack.score(queries[3:7]), result.score[3:7])


def test_pairwise_rule_and_fixed_epsilon_on_a_bank():
    generator = make_generator(0)
    bank = SampleBank(generator, 300, seed=0, chunk_size=100)
    queries = bank.samples(torch.arange(5)) + 0.01
    fixed = monte_carlo_scores(queries, bank, epsilon=1e-9)
    assert (fixed.score == 0).all()
    pairwise = monte_carlo_scores(queries, bank, epsilon_rule="pairwise", quantile=0.5)
    assert 0.2 < float(pairwise.score.mean()) < 0.8  # half of all query-sample pairs lie inside
