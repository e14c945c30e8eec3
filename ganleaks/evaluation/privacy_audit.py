"""Lower bounds on the epsilon of a differential-privacy claim, from the guesses of a membership audit.

The setting of a one-run audit (Steinke, Nasr & Jagielski, "Privacy Auditing with One (1)
Training Run", NeurIPS 2023): ``m`` canaries, each included in the training set by an independent
fair coin. An attack scores every canary; the auditor makes ``r`` guesses (for example "in" for
the ``k_plus`` highest scores and "out" for the ``k_minus`` lowest, abstaining on the rest), and
``v`` of the ``r`` guesses are correct. Abstentions count in ``m`` but not in ``r``.

Each bound is the largest privacy parameter that a test at significance ``alpha`` rejects: if
the mechanism satisfied the claim, the bound exceeds its true parameter with probability at most
``alpha``.

* :func:`one_run_epsilon_lower_bound` tests an (epsilon, delta)-DP claim (Steinke et al., the
  approximate-DP form of their main theorem: the binomial tail plus its delta term).
* :func:`gdp_epsilon_lower_bound` tests a **Gaussian-DP** claim (Mahloujifar, Melis & Chaudhuri,
  "Auditing f-Differential Privacy in One Run", 2024): it rejects mu-GDP for every mu below
  :func:`gdp_mu_lower_bound`, and reports the epsilon of that mu at ``delta``. It is a statement
  about mechanisms whose privacy curve is Gaussian (DP-SGD and the Gaussian mechanism), not about
  every (epsilon, delta)-DP mechanism; it is larger than the one-run bound for that reason.
* :func:`clopper_pearson_epsilon_lower_bound` is the multi-run bound of Jagielski et al. 2020
  (one model per trial, false positive and false negative counts).

Choosing the guesses: :func:`guesses_from_scores` makes them from scores, and
:func:`best_bound_over_guesses` searches a grid of guess counts with a Bonferroni correction.
``docs/PRIVACY_AUDIT.md`` states the formulas and the reference values the tests reproduce.
Pure functions of numpy and scipy; nothing here imports torch or the rest of ganleaks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import optimize, special, stats

#: The tolerance of every root search (in epsilon or mu): far below the 0.01 the bounds are quoted to.
_XTOL = 1e-9


def _check_int(name: str, value: object, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_counts(m: object, r: object, v: object) -> tuple[int, int, int]:
    m_ = _check_int("m (the number of canaries)", m, 1)
    r_ = _check_int("r (the number of guesses)", r)
    v_ = _check_int("v (the number of correct guesses)", v)
    if r_ > m_:
        raise ValueError(f"r (the number of guesses) cannot exceed m (the number of canaries): r={r_} > m={m_}")
    if v_ > r_:
        raise ValueError(f"v (the correct guesses) cannot exceed r (the number of guesses): v={v_} > r={r_}")
    return m_, r_, v_


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float, np.floating)) and 0 < alpha < 1):
        raise ValueError(f"alpha (the significance, one minus the confidence) must be in (0, 1), got {alpha!r}")
    return float(alpha)


def _check_delta(delta: float, *, positive: bool = False) -> float:
    low_ok = (delta > 0) if positive else (delta >= 0)
    if not (isinstance(delta, (int, float, np.floating)) and low_ok and delta < 1):
        interval = "(0, 1)" if positive else "[0, 1)"
        raise ValueError(f"delta must be in {interval}, got {delta!r}")
    return float(delta)


def _largest_rejected(rejects_by: Callable[[float], float], start: float = 1.0) -> float:
    """The root of ``rejects_by`` (positive while the claim at that parameter is rejected) above 0.

    ``rejects_by(0) > 0`` is the caller's precondition. The upper end of the bracket doubles until
    the claim is no longer rejected; a claim still rejected at 2**40 is reported as infinity.
    """
    low, high = 0.0, start
    while rejects_by(high) > 0:
        low, high = high, 2 * high
        if high > 2.0**40:
            return math.inf
    return float(optimize.brentq(rejects_by, low, high, xtol=_XTOL))


# --------------------------------------------------------------------------- (epsilon, delta)-DP, one run


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """The p-value of ``v`` or more correct guesses out of ``r`` under an (epsilon, delta)-DP claim.

    Steinke, Nasr & Jagielski 2023 (arXiv 2305.08846), the approximate-DP form of their main
    theorem: with ``W ~ Binomial(r, e^eps / (1 + e^eps))``,

        p = P[W >= v] + 2 m delta max_{1 <= i <= v} P[v - i <= W < v] / i

    (capped at 1). The first term is the pure-DP tail (every guess of an eps-DP mechanism is
    correct with probability at most e^eps / (1 + e^eps), dominated by independent coins); the
    second is what the delta of the claim adds, and grows with the number ``m`` of canaries,
    abstentions included.
    """
    m, r, v = _check_counts(m, r, v)
    delta = _check_delta(delta)
    if v == 0:
        return 1.0
    q = float(special.expit(epsilon))
    tail = float(stats.binom.sf(v - 1, r, q))  # P[W >= v]
    if delta == 0:
        return tail
    steps = np.arange(1, v + 1)
    between = stats.binom.sf(v - 1 - steps, r, q) - tail  # P[v - i <= W < v]
    return min(1.0, tail + 2 * m * delta * float(np.max(between / steps)))


def one_run_epsilon_lower_bound(m: int, r: int, v: int, delta: float, alpha: float = 0.05) -> float:
    """The epsilon lower bound of a one-run audit, at confidence ``1 - alpha``, for (epsilon, delta)-DP.

    The largest epsilon whose (epsilon, delta)-DP claim the test of Steinke et al. 2023 rejects:
    ``sup {eps >= 0 : one_run_p_value(m, r, v, eps, delta) <= alpha}``, 0 when even eps = 0 is
    not rejected (in particular whenever ``v <= r / 2``: no better than coin flips). ``m`` is the
    number of canaries (each included by a fair coin), ``r`` the guesses made, ``v`` the correct
    ones. The guesses must be chosen without looking at which canaries were included; see
    :func:`best_bound_over_guesses` for choosing ``r``. With m = 1000, delta = 1e-5, alpha = 0.05:
    100/100 correct gives 3.47, 90/100 gives 1.63, 1000/1000 gives 5.78 (jax-privacy 2.0.0's
    ``epsilon_one_run`` at a fixed threshold gives the same).
    """
    m, r, v = _check_counts(m, r, v)
    delta, alpha = _check_delta(delta), _check_alpha(alpha)

    def rejects_by(epsilon: float) -> float:
        return alpha - one_run_p_value(m, r, v, epsilon, delta)

    if rejects_by(0.0) <= 0:
        return 0.0
    return _largest_rejected(rejects_by)


# --------------------------------------------------------------------------- Gaussian DP, one run (f-DP)


def _gdp_rejects_by(m: int, r: int, v: int, mu: float, alpha: float) -> float:
    """Positive when ``v`` of ``r`` correct guesses falsify a mu-GDP claim at significance ``alpha``.

    The recursion of Mahloujifar, Melis & Chaudhuri 2024 (arXiv 2410.22235) for guessing games with
    abstention (``audit_rh_with_cap``, as jax-privacy 2.0.0 names it; the same recursion). Start from the mass
    ``alpha v / m`` of outcomes with the observed correct guesses and ``alpha (r - v) / m`` of
    incorrect ones. Walking down the count of correct guesses ``i = v - 1, ..., 0``, the f-DP
    constraint forces the incorrect mass up to at least ``g(correct mass)``, where
    ``g(x) = Phi(Phi^-1(x) - mu)`` inverts the blow-up ``x -> Phi(Phi^-1(x) + mu)`` of mu-GDP
    (the most a set of probability x under one neighbour can have under the other); each increase
    of the incorrect mass moves ``i / (r - i)`` of it to the correct mass (capped at 1). Once a step
    changes nothing, no later step can. The claim is rejected when the total mass exceeds ``r / m``,
    more than any mechanism satisfying it could put on ``r`` guesses among ``m`` canaries.
    """
    correct = alpha * v / m
    incorrect = alpha * (r - v) / m
    for i in range(v - 1, -1, -1):
        forced = max(incorrect, float(special.ndtr(special.ndtri(correct) - mu)))
        if forced == incorrect:
            break
        correct = min(correct + (i / (r - i)) * (forced - incorrect), 1.0)
        incorrect = forced
    return correct + incorrect - r / m


def gdp_mu_lower_bound(m: int, r: int, v: int, alpha: float = 0.05) -> float:
    """The mu below which a mu-GDP claim is rejected at significance ``alpha`` (one run, f-DP test).

    ``sup {mu >= 0 : the recursion of Mahloujifar et al. rejects mu-GDP}``; 0 when mu = 0 (perfect
    privacy) is not rejected, as whenever ``v <= r / 2``.
    """
    m, r, v = _check_counts(m, r, v)
    alpha = _check_alpha(alpha)

    def rejects_by(mu: float) -> float:
        return _gdp_rejects_by(m, r, v, mu, alpha)

    if v == 0 or rejects_by(0.0) <= 0:
        return 0.0
    return _largest_rejected(rejects_by)


def gdp_delta(epsilon: float, mu: float) -> float:
    """The delta of mu-GDP at ``epsilon``: ``Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)``.

    Dong, Roth & Su 2019, "Gaussian Differential Privacy" (Corollary 2.13); computed in the log
    domain so that large epsilon stays exact.
    """
    if mu <= 0:
        return 0.0
    high = float(special.log_ndtr(-epsilon / mu + mu / 2))
    low = epsilon + float(special.log_ndtr(-epsilon / mu - mu / 2))
    if low >= high:
        return 0.0
    return math.exp(high) * -math.expm1(low - high)


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest epsilon with ``gdp_delta(epsilon, mu) <= delta``: the (epsilon, delta) of mu-GDP."""
    delta = _check_delta(delta, positive=True)
    if mu <= 0 or gdp_delta(0.0, mu) <= delta:
        return 0.0
    return _largest_rejected(lambda epsilon: gdp_delta(epsilon, mu) - delta)


def gdp_epsilon_lower_bound(m: int, r: int, v: int, delta: float, alpha: float = 0.05) -> float:
    """The epsilon lower bound of a one-run audit **of a Gaussian-DP claim** (Mahloujifar et al. 2024).

    ``gdp_epsilon(gdp_mu_lower_bound(m, r, v, alpha), delta)``: every mu-GDP claim with a smaller
    mu is rejected at significance ``alpha``, and this is the epsilon such a mechanism has at
    ``delta``. It tests "the mechanism is mu-GDP" (DP-SGD, the Gaussian mechanism), not an arbitrary
    (epsilon, delta)-DP claim: a mechanism that is (eps, delta)-DP without a Gaussian privacy
    curve can exceed this bound; for that claim use :func:`one_run_epsilon_lower_bound`. ``delta``
    must be in (0, 1): a mu-GDP mechanism with mu > 0 has no finite epsilon at delta = 0. With
    m = 1000, delta = 1e-5, alpha = 0.05: 100/100 correct gives 5.55, 90/100 gives 2.46
    (jax-privacy 2.0.0's ``epsilon_one_run_fdp`` at a fixed threshold gives the same).
    """
    delta = _check_delta(delta, positive=True)
    return gdp_epsilon(gdp_mu_lower_bound(m, r, v, alpha), delta)


# --------------------------------------------------------------------------- multi-run (Jagielski et al.)


def _clopper_pearson_upper(count: int, n: int, alpha: float) -> float:
    """The one-sided upper Clopper-Pearson bound at confidence ``1 - alpha`` on a binomial rate."""
    if count >= n:
        return 1.0
    return float(stats.beta.ppf(1 - alpha, count + 1, n - count))


def clopper_pearson_epsilon_lower_bound(
    fpr_count: int, n_out: int, fnr_count: int, n_in: int, delta: float, alpha: float = 0.05
) -> float:
    """The multi-run epsilon lower bound of Jagielski, Ullman & Oprea 2020, both directions.

    ``fpr_count`` false positives among ``n_out`` trials without the canary and ``fnr_count``
    false negatives among ``n_in`` trials with it (one trained model per trial). With one-sided
    Clopper-Pearson upper bounds FPR_up and FNR_up, each at ``alpha / 2`` so both hold together
    with probability ``1 - alpha``:

        eps >= max(log((1 - delta - FNR_up) / FPR_up), log((1 - delta - FPR_up) / FNR_up), 0)

    (the second is the same test with "in" and "out" swapped; a term whose numerator is not
    positive says nothing).
    """
    fp = _check_int("fpr_count (false positives)", fpr_count)
    n_out = _check_int("n_out (trials without the canary)", n_out, 1)
    fn = _check_int("fnr_count (false negatives)", fnr_count)
    n_in = _check_int("n_in (trials with the canary)", n_in, 1)
    if fp > n_out:
        raise ValueError(f"fpr_count cannot exceed n_out: {fp} > {n_out}")
    if fn > n_in:
        raise ValueError(f"fnr_count cannot exceed n_in: {fn} > {n_in}")
    delta, alpha = _check_delta(delta), _check_alpha(alpha)
    fpr_up = _clopper_pearson_upper(fp, n_out, alpha / 2)
    fnr_up = _clopper_pearson_upper(fn, n_in, alpha / 2)
    best = 0.0
    for tail, rate in ((fnr_up, fpr_up), (fpr_up, fnr_up)):
        if 1 - delta - tail > 0:
            best = max(best, math.log(1 - delta - tail) - math.log(rate))
    return best


# --------------------------------------------------------------------------- choosing the guesses

#: A guess: +1 "included", -1 "excluded", 0 abstain.
IN, OUT, ABSTAIN = 1, -1, 0


def guesses_from_scores(scores: Sequence[float] | np.ndarray, k_plus: int, k_minus: int) -> np.ndarray:
    """Guess "in" (+1) for the ``k_plus`` highest scores, "out" (-1) for the ``k_minus`` lowest, 0 elsewhere.

    Higher score = more likely included (the house convention). Ties are broken by position
    (stable sort), never by membership, so the guesses stay a function of the scores alone.
    """
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("scores contain NaN: every canary needs a score to be ranked")
    k_plus = _check_int("k_plus", k_plus)
    k_minus = _check_int("k_minus", k_minus)
    if k_plus + k_minus > values.size:
        raise ValueError(f"k_plus + k_minus = {k_plus + k_minus} exceeds the {values.size} canaries")
    order = np.argsort(values, kind="stable")
    guesses = np.zeros(values.size, dtype=np.int8)
    guesses[order[values.size - k_plus :]] = IN
    guesses[order[:k_minus]] = OUT
    return guesses


def count_guesses(guesses: np.ndarray, included: Sequence[bool] | np.ndarray) -> tuple[int, int]:
    """``(r, v)``: how many guesses were made (non-zero) and how many of them are right."""
    g = np.asarray(guesses)
    truth = np.asarray(included, dtype=bool)
    if g.shape != truth.shape:
        raise ValueError(f"guesses and included must have the same shape, got {g.shape} and {truth.shape}")
    made = g != ABSTAIN
    right = (g == IN) & truth | (g == OUT) & ~truth
    return int(made.sum()), int(right.sum())


class GuessSearch(NamedTuple):
    """The outcome of :func:`best_bound_over_guesses`."""

    epsilon: float  #: the bound at the chosen grid point, at significance alpha / len(grid)
    r: int  #: the guesses made there
    v: int  #: the correct ones
    k_plus: int
    k_minus: int
    alpha_per_test: float  #: alpha / len(grid), the significance every grid point was tested at


Bound = Callable[[int, int, int, float, float], float]


def best_bound_over_guesses(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    grid: Sequence[int | tuple[int, int]],
    delta: float,
    alpha: float = 0.05,
    bound: Bound = one_run_epsilon_lower_bound,
) -> GuessSearch:
    """The largest bound over a grid of guess counts, each tested at ``alpha / len(grid)``.

    ``grid`` lists ``(k_plus, k_minus)`` pairs (an int ``k`` means ``(k, 0)``: guess "in" for the
    top ``k``, abstain on the rest). ``bound`` is :func:`one_run_epsilon_lower_bound` (default) or
    :func:`gdp_epsilon_lower_bound`; ``m`` is ``len(scores)``.

    Why it stays valid: the grid is fixed before the audit is scored (it may depend on ``m``, never
    on which canaries were included). Each grid point's bound, at significance ``alpha / G`` for a
    grid of ``G`` points, exceeds the true epsilon with probability at most ``alpha / G``; by the
    union bound, the chance that *any* of them does is at most ``alpha``, so their maximum (the
    one returned) is a lower bound at confidence ``1 - alpha``. Picking the best ``r`` after
    seeing the correct guesses *without* the correction would test ``G`` hypotheses and report
    the luckiest at level alpha: invalid. The other valid rule is to fix ``(k_plus, k_minus)`` in
    advance and call the bound once at ``alpha``.
    """
    values = np.asarray(scores, dtype=float)
    alpha = _check_alpha(alpha)
    if len(grid) == 0:
        raise ValueError("grid must list at least one (k_plus, k_minus)")
    per_test = alpha / len(grid)
    best: GuessSearch | None = None
    for point in grid:
        k_plus, k_minus = (point, 0) if isinstance(point, (int, np.integer)) else point
        r, v = count_guesses(guesses_from_scores(values, k_plus, k_minus), included)
        epsilon = bound(values.size, r, v, delta, per_test)
        if best is None or epsilon > best.epsilon:
            best = GuessSearch(epsilon, r, v, int(k_plus), int(k_minus), per_test)
    assert best is not None
    return best


#: The verdicts of :func:`canary_audit`. A lower bound can show a claim false; it never shows one true.
FALSIFIED = "claim falsified"
FALSIFIED_AS_GDP = "claim falsified as a Gaussian-DP claim"
NOT_FALSIFIED = "not falsified"
NO_CLAIM = "no claim"


def guess_grid(m: int, counts: Sequence[int], guess: str = "both") -> list[tuple[int, int]]:
    """The ``(k_plus, k_minus)`` points of a grid of guess counts for ``m`` canaries.

    Each count ``k`` is capped at ``m``; ``guess="both"`` splits it into ``ceil(k/2)`` "in" guesses
    for the highest scores and ``floor(k/2)`` "out" guesses for the lowest, ``guess="in"`` makes
    ``k`` "in" guesses. Points that coincide after capping are kept once (the Bonferroni
    correction divides by the points really tested). Depends on ``m`` only, never on the coins.
    """
    m = _check_int("m (the number of canaries)", m, 1)
    if guess not in ("both", "in"):
        raise ValueError(f"audit.guess={guess!r}: choose both or in")
    points: list[tuple[int, int]] = []
    for count in counts:
        k = min(_check_int("a guess count of audit.grid", count, 1), m)
        point = ((k + 1) // 2, k // 2) if guess == "both" else (k, 0)
        if point not in points:
            points.append(point)
    if not points:
        raise ValueError("audit.grid must list at least one guess count")
    return points


def canary_audit(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    *,
    counts: Sequence[int],
    guess: str = "both",
    alpha: float = 0.05,
    delta: float = 1e-5,
    claimed_epsilon: float | None = None,
) -> dict:
    """The ``privacy_audit`` block of an attack on a run's canaries: both bounds, the claim, the verdict.

    Each bound is the largest over the grid :func:`guess_grid` makes of ``counts``, every point tested
    at ``alpha / G`` (:func:`best_bound_over_guesses`). A canary without a score (a failed query,
    NaN) ranks lowest. The verdict: :data:`FALSIFIED` when the one-run bound (valid against any
    (epsilon, delta) claim) exceeds ``claimed_epsilon``; :data:`FALSIFIED_AS_GDP` when only the
    Gaussian-DP bound does (it refutes the claim read as a Gaussian-DP one; DP-SGD's privacy curve
    is close to Gaussian); :data:`NOT_FALSIFIED` otherwise; :data:`NO_CLAIM` without a claim (a victim without DP).
    """
    values = np.asarray(scores, dtype=float)
    failed = int(np.isnan(values).sum())
    values = np.where(np.isnan(values), -np.inf, values)
    truth = np.asarray(included, dtype=bool)
    grid = guess_grid(values.size, counts, guess)
    bounds = {
        name: best_bound_over_guesses(values, truth, grid, delta, alpha, bound)
        for name, bound in (("one_run", one_run_epsilon_lower_bound), ("gdp", gdp_epsilon_lower_bound))
    }
    one_run, gdp = bounds["one_run"].epsilon, bounds["gdp"].epsilon
    if claimed_epsilon is None:
        verdict = NO_CLAIM
    elif one_run > claimed_epsilon:
        verdict = FALSIFIED
    elif gdp > claimed_epsilon:
        verdict = FALSIFIED_AS_GDP
    else:
        verdict = NOT_FALSIFIED
    block = {
        "m": int(values.size),
        "n_included": int(truth.sum()),
        "n_failed": failed,
        "guesses": bounds["one_run"].r,
        "correct": bounds["one_run"].v,
        "epsilon_lower_bound_one_run": one_run,
        "epsilon_lower_bound_gdp": gdp,
        "claimed_epsilon": "none" if claimed_epsilon is None else float(claimed_epsilon),
        "delta": float(delta),
        "alpha": float(alpha),
        "verdict": verdict,
        "guess_rule": guess,
        "grid": [list(point) for point in grid],
        "guess_selection": (
            f"each bound is the largest over {len(grid)} (k_in, k_out) guess counts fixed before scoring "
            f"(audit.grid capped at m), each tested at alpha / {len(grid)} = {alpha / len(grid):.4g} "
            "(Bonferroni): valid at confidence 1 - alpha"
        ),
        "bounds": {name: found._asdict() for name, found in bounds.items()},
    }
    block["sentence"] = audit_sentence(block)
    return block


def audit_sentence(block: dict) -> str:
    """One sentence for the console and the summary page: the two bounds, the claim, the verdict."""
    bounds = (
        f"audited epsilon lower bound {block['epsilon_lower_bound_one_run']:.2f} (one-run) / "
        f"{block['epsilon_lower_bound_gdp']:.2f} (Gaussian-DP claim)"
    )
    claimed = block.get("claimed_epsilon")
    if not isinstance(claimed, (int, float)):
        return f"{bounds}; the victim claims no epsilon (no DP privacy.json): no claim to falsify"
    return f"{bounds} against the claimed {claimed:.2f}: {block['verdict']}"
