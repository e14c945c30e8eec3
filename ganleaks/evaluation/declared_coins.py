"""The one-run privacy audit of a user's generator or sample set, whose canaries' coins the user declares.

A training run made here records its canaries' coins (``canaries.json``); a model the user brings
has no such record. The user gives the canaries as the query sets (members = the canaries trained
on, non-members = those left out) and declares (``audit.randomized=true``) that each canary's
membership was an independent fair coin, the assumption every bound of
:mod:`ganleaks.evaluation.privacy_audit` rests on. Nothing here can verify the declaration; one
consequence can be tested from the data: with fair coins the number of members among ``m``
canaries is Binomial(m, 1/2). Counts that a two-sided binomial test finds implausible contradict
the declaration, and the block says so in place of a verdict (the bounds are still reported).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from ganleaks.evaluation.privacy_audit import canary_audit

#: Where the coins of a user's canaries come from, as the ``privacy_audit`` block records it.
DECLARED = "declared by the user (audit.randomized=true), not recorded here"
#: The verdict when the member count contradicts the declared fair coins: the bounds are not valid.
COINS_CONTRADICTED = "no verdict: the declared fair coins are contradicted by the member count"


def coin_balance_p_value(n_included: int, m: int) -> float:
    """The two-sided binomial test's p-value of ``n_included`` members among ``m`` fair coins.

    >>> round(coin_balance_p_value(32, 64), 3)
    1.0
    >>> coin_balance_p_value(60, 64) < 1e-3
    True
    """
    if m <= 0:
        return 1.0
    return float(stats.binomtest(int(n_included), int(m), 0.5).pvalue)


def declared_coins_audit(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    *,
    counts: Sequence[int],
    guess: str = "both",
    alpha: float = 0.05,
    delta: float = 1e-5,
    claimed_epsilon: float | None = None,
    coin_check_p: float = 1e-3,
) -> dict:
    """The ``privacy_audit`` block of a user's canaries: :func:`canary_audit`'s block (the same bounds,
    grid, claim and verdict), plus where the coins come from and the member-count check.

    Args:
        scores: ``(m,)`` membership scores of the canaries (higher = member; NaN = failed, ranked lowest).
        included: ``(m,)`` the declared coins (True = in ``queries.members``).
        counts, guess, alpha, delta, claimed_epsilon: as :func:`canary_audit` (the claim: the user's
            ``victim.privacy.epsilon`` at ``victim.privacy.delta``; None: no claim).
        coin_check_p: a two-sided binomial p-value of the member count below this contradicts the
            declaration: the verdict becomes :data:`COINS_CONTRADICTED` (the bounds are kept, and the
            verdict fair coins would give is ``verdict_if_fair``).
    """
    block = canary_audit(
        scores, included, counts=counts, guess=guess, alpha=alpha, delta=delta, claimed_epsilon=claimed_epsilon
    )
    m, n_included = block["m"], block["n_included"]
    p_value = coin_balance_p_value(n_included, m)
    contradicted = p_value < coin_check_p
    block["coins"] = DECLARED
    block["coin_check"] = {
        "test": "two-sided binomial test: members ~ Binomial(m, 1/2) under fair coins",
        "n_included": n_included,
        "m": m,
        "p_value": p_value,
        "threshold": float(coin_check_p),
        "contradicted": contradicted,
    }
    if contradicted:
        block["verdict_if_fair"] = block["verdict"]
        block["verdict"] = COINS_CONTRADICTED
    block["sentence"] = declared_sentence(block)
    return block


def declared_sentence(block: dict) -> str:
    """One sentence for the console and the summary page, saying that the coins are the user's declaration."""
    bounds = (
        f"audited epsilon lower bound {block['epsilon_lower_bound_one_run']:.2f} (one-run) / "
        f"{block['epsilon_lower_bound_gdp']:.2f} (Gaussian-DP claim)"
    )
    check = block["coin_check"]
    if check["contradicted"]:
        return (
            f"{bounds}, NOT VALID: {check['n_included']} of {check['m']} canaries are members, which fair coins "
            f"give with two-sided binomial p = {check['p_value']:.2g} < {check['threshold']:g}: the data contradict "
            "the declaration audit.randomized=true, so the bounds may measure how the members differ, not leakage "
            "(no verdict)"
        )
    coins = "membership coins declared by the user, not recorded here"
    claimed = block.get("claimed_epsilon")
    if not isinstance(claimed, (int, float)):
        return f"{bounds}; no epsilon declared (victim.privacy.epsilon): no claim to falsify ({coins})"
    return f"{bounds} against the declared {claimed:.2f}: {block['verdict']} ({coins})"
