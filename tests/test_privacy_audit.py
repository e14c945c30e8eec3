"""The epsilon lower bounds of ganleaks.evaluation.privacy_audit, against jax-privacy 2.0.0's values.

Reference values (m = 1000 canaries, alpha = 0.05, delta = 1e-5), computed with jax-privacy 2.0.0
(``CanaryScoreAuditor.epsilon_one_run`` / ``epsilon_one_run_fdp`` at a fixed threshold):
100 guesses all correct 3.47 / 5.55, 100 guesses 90 correct 1.63 / 2.46, 1000 guesses all correct
5.78 (one-run). Each test here can fail: the reference values to 0.02, the monotonicity, the
coin-flip zero, the Monte-Carlo level (and its power), the Bonferroni identities, the messages.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ganleaks.evaluation.privacy_audit import (
    GuessSearch,
    best_bound_over_guesses,
    clopper_pearson_epsilon_lower_bound,
    count_guesses,
    gdp_delta,
    gdp_epsilon,
    gdp_epsilon_lower_bound,
    gdp_mu_lower_bound,
    guesses_from_scores,
    one_run_epsilon_lower_bound,
    one_run_p_value,
)

M, ALPHA, DELTA = 1000, 0.05, 1e-5
TOLERANCE = 0.02


@pytest.mark.parametrize(
    ("r", "v", "expected"),
    [(100, 100, 3.47), (100, 90, 1.63), (1000, 1000, 5.78)],
    ids=["100-of-100", "90-of-100", "1000-of-1000"],
)
def test_one_run_bound_matches_jax_privacy(r: int, v: int, expected: float) -> None:
    assert abs(one_run_epsilon_lower_bound(M, r, v, DELTA, ALPHA) - expected) <= TOLERANCE


@pytest.mark.parametrize(("r", "v", "expected"), [(100, 100, 5.55), (100, 90, 2.46)], ids=["100-of-100", "90-of-100"])
def test_gdp_bound_matches_jax_privacy(r: int, v: int, expected: float) -> None:
    assert abs(gdp_epsilon_lower_bound(M, r, v, DELTA, ALPHA) - expected) <= TOLERANCE


def test_delta_term_lowers_the_one_run_bound() -> None:
    """The delta of the claim enters: at delta = 0 the bound is the binomial tail's, larger."""
    pure = one_run_epsilon_lower_bound(M, 100, 100, 0.0, ALPHA)
    # All 100 correct: P[W >= 100] = q^100 = alpha, so q = alpha^(1/100) and eps = logit(q).
    q = ALPHA ** (1 / 100)
    assert pure == pytest.approx(math.log(q / (1 - q)), abs=1e-6)
    assert pure > one_run_epsilon_lower_bound(M, 100, 100, DELTA, ALPHA) + 0.01
    # ...and the delta term grows with the canaries, abstentions included.
    assert one_run_epsilon_lower_bound(10_000, 100, 100, DELTA, ALPHA) < one_run_epsilon_lower_bound(
        M, 100, 100, DELTA, ALPHA
    )


def test_one_run_p_value_without_delta_is_the_binomial_tail() -> None:
    q = math.exp(1) / (1 + math.exp(1))
    assert one_run_p_value(M, 200, 160, 1.0, 0.0) == pytest.approx(stats.binom.sf(159, 200, q))
    assert one_run_p_value(M, 200, 160, 1.0, DELTA) > one_run_p_value(M, 200, 160, 1.0, 0.0)


def test_gdp_bound_exceeds_the_one_run_bound() -> None:
    """Testing the narrower Gaussian-DP claim rejects more: the GDP bound is the larger one."""
    for r, v in [(100, 100), (100, 90), (1000, 1000), (500, 400)]:
        assert gdp_epsilon_lower_bound(M, r, v, DELTA, ALPHA) > one_run_epsilon_lower_bound(M, r, v, DELTA, ALPHA)


@pytest.mark.parametrize("bound", [one_run_epsilon_lower_bound, gdp_epsilon_lower_bound])
def test_more_correct_guesses_give_a_larger_bound(bound) -> None:
    values = [bound(M, 100, v, DELTA, ALPHA) for v in range(50, 101)]
    assert all(np.diff(values) >= 0)
    positive = [value for value in values if value > 0]
    assert len(positive) >= 30
    assert all(np.diff(positive) > 0)


@pytest.mark.parametrize("bound", [one_run_epsilon_lower_bound, gdp_epsilon_lower_bound])
@pytest.mark.parametrize(("r", "v"), [(100, 50), (100, 10), (1000, 500), (7, 3), (10, 0), (0, 0)])
def test_no_better_than_coin_flips_gives_zero(bound, r: int, v: int) -> None:
    assert bound(M, r, v, DELTA, ALPHA) == 0.0
    if bound is gdp_epsilon_lower_bound:
        assert gdp_mu_lower_bound(M, r, v, ALPHA) == 0.0


def test_one_run_bound_holds_for_honest_randomized_response() -> None:
    """Guesses from an eps-DP randomized response: the bound exceeds eps in at most ~alpha of audits.

    Each of r = 500 guesses is right with probability e^eps / (1 + e^eps), eps = 1 (the worst an
    eps-DP mechanism allows). At delta = 0 (the tightest form) the test has level alpha, so about
    5% of 200 seeded audits may exceed eps; at most 10% may. The mean bound shows the test has
    power (a bound that always said 0 would pass the first check and fail this one).
    """
    epsilon, r, audits = 1.0, 500, 200
    rng = np.random.default_rng(20231211)
    correct = rng.binomial(r, math.exp(epsilon) / (1 + math.exp(epsilon)), size=audits)
    bounds = np.array([one_run_epsilon_lower_bound(r, r, int(v), 0.0, ALPHA) for v in correct])
    assert np.mean(bounds > epsilon) <= 0.1
    assert np.mean(bounds) > 0.6


def test_gdp_conversion() -> None:
    """delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2), and gdp_epsilon inverts it."""
    mu, epsilon = 1.0, 2.0
    direct = stats.norm.cdf(-epsilon / mu + mu / 2) - math.exp(epsilon) * stats.norm.cdf(-epsilon / mu - mu / 2)
    assert gdp_delta(epsilon, mu) == pytest.approx(direct, rel=1e-9)
    for mu in (0.5, 1.0, 2.5):
        assert gdp_delta(gdp_epsilon(mu, DELTA), mu) == pytest.approx(DELTA, rel=1e-6)
    assert gdp_epsilon(0.0, DELTA) == 0.0
    # The bound is the conversion of the mu bound.
    mu_bound = gdp_mu_lower_bound(M, 100, 90, ALPHA)
    assert gdp_epsilon_lower_bound(M, 100, 90, DELTA, ALPHA) == pytest.approx(gdp_epsilon(mu_bound, DELTA))


def test_clopper_pearson_bound() -> None:
    # No errors in 1000 + 1000 trials: FPR_up = FNR_up = 1 - (alpha/2)^(1/1000).
    up = 1 - (ALPHA / 2) ** (1 / 1000)
    expected = math.log((1 - DELTA - up) / up)
    assert clopper_pearson_epsilon_lower_bound(0, 1000, 0, 1000, DELTA, ALPHA) == pytest.approx(expected, rel=1e-9)
    # Both directions: swapping the roles of the false positives and the false negatives changes nothing.
    forward = clopper_pearson_epsilon_lower_bound(10, 1000, 500, 1000, DELTA, ALPHA)
    assert forward > 2
    assert clopper_pearson_epsilon_lower_bound(500, 1000, 10, 1000, DELTA, ALPHA) == pytest.approx(forward)
    # Coin flipping says nothing.
    assert clopper_pearson_epsilon_lower_bound(500, 1000, 500, 1000, DELTA, ALPHA) == 0.0


def test_guesses_from_scores_and_their_count() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.8, 0.2, 0.4])
    guesses = guesses_from_scores(scores, k_plus=2, k_minus=1)
    assert guesses.tolist() == [1, -1, 0, 1, 0, 0]
    included = np.array([True, False, True, False, False, True])
    assert count_guesses(guesses, included) == (3, 2)
    assert guesses_from_scores(scores, 0, 0).tolist() == [0] * 6


def test_bonferroni_search_is_the_corrected_bound_at_its_chosen_r() -> None:
    rng = np.random.default_rng(7)
    included = rng.random(M) < 0.5
    scores = included * 1.5 + rng.normal(size=M)
    grid = [10, 50, 100, 200, (100, 100), (250, 250)]
    found = best_bound_over_guesses(scores, included, grid, DELTA, ALPHA)
    assert isinstance(found, GuessSearch)
    assert found.alpha_per_test == pytest.approx(ALPHA / len(grid))
    corrected = []
    for point in grid:
        k_plus, k_minus = (point, 0) if isinstance(point, int) else point
        r, v = count_guesses(guesses_from_scores(scores, k_plus, k_minus), included)
        at_corrected = one_run_epsilon_lower_bound(M, r, v, DELTA, ALPHA / len(grid))
        assert at_corrected <= one_run_epsilon_lower_bound(M, r, v, DELTA, ALPHA)  # the correction only costs
        corrected.append(at_corrected)
    assert found.epsilon == max(corrected)
    assert found.epsilon > 0
    # Never above the corrected bound at its own r, and below the uncorrected one there.
    assert found.epsilon == one_run_epsilon_lower_bound(M, found.r, found.v, DELTA, ALPHA / len(grid))
    assert found.epsilon < one_run_epsilon_lower_bound(M, found.r, found.v, DELTA, ALPHA)
    # A grid of one is the fixed-r bound at alpha.
    single = best_bound_over_guesses(scores, included, [(found.k_plus, found.k_minus)], DELTA, ALPHA)
    assert single.epsilon == one_run_epsilon_lower_bound(M, found.r, found.v, DELTA, ALPHA)
    # The GDP test can be searched the same way.
    gdp = best_bound_over_guesses(scores, included, grid, DELTA, ALPHA, bound=gdp_epsilon_lower_bound)
    assert gdp.epsilon == gdp_epsilon_lower_bound(M, gdp.r, gdp.v, DELTA, ALPHA / len(grid))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: one_run_epsilon_lower_bound(M, 100, 101, DELTA), r"v \(the correct guesses\) cannot exceed r"),
        (lambda: one_run_epsilon_lower_bound(M, M + 1, 10, DELTA), r"r \(the number of guesses\) cannot exceed m"),
        (lambda: one_run_epsilon_lower_bound(M, 100, 90, 1.0), r"delta must be in \[0, 1\)"),
        (lambda: one_run_epsilon_lower_bound(M, 100, 90, -1e-5), r"delta must be in \[0, 1\)"),
        (lambda: one_run_epsilon_lower_bound(M, 100, 90, DELTA, 0.0), r"alpha .* must be in \(0, 1\)"),
        (lambda: one_run_epsilon_lower_bound(M, 100, 90, DELTA, 1.0), r"alpha .* must be in \(0, 1\)"),
        (lambda: one_run_epsilon_lower_bound(M, 100, -1, DELTA), r"v \(the number of correct guesses\) must be >= 0"),
        (lambda: one_run_epsilon_lower_bound(M, 100.0, 90, DELTA), r"r \(the number of guesses\) must be an integer"),
        (lambda: gdp_epsilon_lower_bound(M, 100, 101, DELTA), r"v \(the correct guesses\) cannot exceed r"),
        (lambda: gdp_epsilon_lower_bound(M, 100, 90, 0.0), r"delta must be in \(0, 1\)"),
        (lambda: gdp_epsilon_lower_bound(M, 100, 90, DELTA, 1.5), r"alpha .* must be in \(0, 1\)"),
        (lambda: clopper_pearson_epsilon_lower_bound(5, 4, 0, 10, DELTA), "fpr_count cannot exceed n_out"),
        (lambda: clopper_pearson_epsilon_lower_bound(0, 10, 0, 10, 1.0), r"delta must be in \[0, 1\)"),
        (lambda: guesses_from_scores([0.1, 0.2], 2, 1), "exceeds the 2 canaries"),
        (lambda: best_bound_over_guesses([0.1, 0.2], [True, False], [], DELTA), "grid must list"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
