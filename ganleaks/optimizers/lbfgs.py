"""Batched per-query L-BFGS (white-box latent reconstruction, paper section 5.4).

Each query of the batch runs its own L-BFGS: its own ``(m, d)`` history, its own line search,
its own step sizes and stopping test. The algorithm mirrors ``torch.optim.LBFGS`` (two-loop
recursion, ``min(1, 1/|g|_1)`` first step, the same tolerances, and the strong-Wolfe line search
with cubic interpolation of ``torch.optim.lbfgs._strong_wolfe``), vectorised across queries: in
each round of a line search ONE objective call evaluates every query still searching at its own
trial step. Queries that converge or fail are frozen and no longer evaluated.

Unlike ``torch.optim.LBFGS`` over the mean loss (one problem, one step size for all queries), no
quantity is shared between queries, so a query reaches the same point alone or in any batch.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import Tensor

from ganleaks.optimizers.base import Objective, OptimResult, as_indexed, check_start, finite_or_inf

log = logging.getLogger(__name__)

LINE_SEARCHES = ("strong_wolfe", "armijo")


def value_and_grad(f, z: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row objective values ``(n,)`` and gradients ``(n, d)`` of an indexed objective.

    ``grad(sum_i f_i)`` is each row's own gradient because rows are independent.
    """
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        values = f(z, index)
        if values.shape != (len(z),):
            raise ValueError(f"objective must return shape ({len(z)},), got {tuple(values.shape)}")
        if values.requires_grad:
            (grad,) = torch.autograd.grad(values.sum(), z)
        else:  # the objective does not depend on z
            grad = torch.zeros_like(z)
    return values.detach(), grad.detach()


def _cubic_minimizer(x1: Tensor, f1: Tensor, g1: Tensor, x2: Tensor, f2: Tensor, g2: Tensor,
                     lower: Tensor, upper: Tensor) -> Tensor:  # fmt: skip
    """Minimiser of the cubic through two points with slopes, clamped to [lower, upper] (per row).

    Vectorised ``torch.optim.lbfgs._cubic_interpolate``; falls back to the midpoint of the bounds
    where the cubic has no minimiser or the inputs are not finite.
    """
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    d2 = d2_square.clamp_min(0).sqrt()
    forward = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    backward = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    position = torch.where(x1 <= x2, forward, backward)
    position = torch.minimum(torch.maximum(position, lower), upper)
    usable = (d2_square >= 0) & torch.isfinite(position)
    return torch.where(usable, position, (lower + upper) / 2)


def _pick(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(mask.view(-1, *([1] * (new.ndim - 1))), new, old)


class _Point(NamedTuple):
    """Points on each row's search line: step ``t``, value ``f``, gradient ``g``, slope ``gtd``."""

    t: Tensor
    f: Tensor
    g: Tensor
    gtd: Tensor

    def where(self, mask: Tensor, other: _Point) -> _Point:
        """``self`` on the rows of ``mask``, ``other`` elsewhere."""
        return _Point(*(_pick(mask, mine, theirs) for mine, theirs in zip(self, other, strict=False)))


def strong_wolfe(f, z: Tensor, index: Tensor, direction: Tensor, f0: Tensor, g0: Tensor, gtd0: Tensor,
                 t: Tensor, limit: Tensor, c1: float = 1e-4, c2: float = 0.9,
                 tolerance_change: float = 1e-9) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Strong-Wolfe line search along ``direction`` for n queries at once, each with its own step.

    A per-row state machine (0 bracketing, 1 zoom, 2 done) following torch's ``_strong_wolfe``;
    each loop round evaluates, in one call, the rows that still need a trial point.

    Args:
        f: indexed objective.
        z, direction, g0: ``(n, d)`` start points, search directions, gradients at ``z``.
        index: ``(n,)`` query index of each row (passed through to ``f``).
        f0, gtd0: ``(n,)`` values at ``z`` and directional derivatives ``g0 . direction`` (< 0).
        t: ``(n,)`` initial steps.
        limit: ``(n,)`` int64 maximum evaluations per row (>= 1).

    Returns:
        ``(t, f, g, n_evals)``: accepted steps ``(n,)`` (0 where no decrease was found), values
        ``(n,)`` and gradients ``(n, d)`` there, evaluations spent ``(n,)``.
    """
    n, device = len(index), z.device
    f0, gtd0, t = f0.double(), gtd0.double(), t.double()
    direction_norm = direction.abs().amax(1).double()
    start = _Point(torch.zeros_like(f0), f0, g0, gtd0)
    prev = low = high = cur = start  # previous trial, bracket ends (low = lower value), current trial
    phase = torch.zeros(n, dtype=torch.long, device=device)
    insufficient = torch.zeros(n, dtype=torch.bool, device=device)
    n_evals = torch.zeros(n, dtype=torch.long, device=device)
    need = torch.ones(n, dtype=torch.bool, device=device)
    done = torch.full_like(phase, 2)

    while bool(need.any()):
        rows = need.nonzero().squeeze(1)
        values, grads = value_and_grad(f, z[rows] + t[rows, None].to(z.dtype) * direction[rows], index[rows])
        values = finite_or_inf(values).double()
        finite = torch.isfinite(values)
        grads = torch.where(finite[:, None], grads, torch.zeros_like(grads))
        slopes = torch.where(finite, (grads * direction[rows]).sum(1).double(), torch.full_like(values, float("nan")))
        cur = _Point(t, cur.f.index_put((rows,), values), cur.g.index_put((rows,), grads),
                     cur.gtd.index_put((rows,), slopes))  # fmt: skip
        n_evals = n_evals + need.long()
        sufficient = cur.f <= f0 + c1 * t * gtd0
        curvature = cur.gtd.abs() <= -c2 * gtd0

        # Bracketing rows: stop at a strong-Wolfe point, bracket [prev, cur], or extrapolate.
        bracketing = need & (phase == 0)
        overshoot = ~sufficient | ((n_evals > 2) & (cur.f >= prev.f))
        to_zoom = bracketing & (overshoot | (~curvature & (cur.gtd >= 0)))
        accept = bracketing & ~overshoot & curvature
        extrapolate = bracketing & ~to_zoom & ~accept
        prev_is_low = prev.f <= cur.f
        new_low, new_high = prev.where(prev_is_low, cur), cur.where(prev_is_low, prev)
        low = new_low.where(to_zoom, cur.where(accept, low))
        high = new_high.where(to_zoom, high)

        # Zooming rows: shrink the bracket around the new point.
        zooming = need & (phase == 1)
        raise_high = zooming & (~sufficient | (cur.f >= low.f))
        improve = zooming & ~raise_high
        flip = improve & ~curvature & (cur.gtd * (high.t - low.t) >= 0)
        high = low.where(flip, cur.where(raise_high, high))
        swap = raise_high & (high.f < low.f)  # torch re-sorts the bracket by value
        low, high = high.where(swap, low), low.where(swap, high)
        low = cur.where(improve, low)

        phase = torch.where(to_zoom, torch.ones_like(phase), phase)
        phase = torch.where(accept | (improve & curvature), done, phase)

        # Next trial, bracketing rows: cubic extrapolation in [t + 0.01 (t - t_prev), 10 t].
        exhausted = n_evals >= limit
        next_t = _cubic_minimizer(prev.t, prev.f, prev.gtd, t, cur.f, cur.gtd, t + 0.01 * (t - prev.t), t * 10)
        prev = cur.where(extrapolate, prev)
        stop_extrapolating = extrapolate & exhausted  # sufficient decrease holds at t: keep it
        low = cur.where(stop_extrapolating, low)
        phase = torch.where(stop_extrapolating, done, phase)
        extrapolate = extrapolate & ~exhausted

        # Next trial, zooming rows: safeguarded cubic interpolation inside the bracket.
        zoom = phase == 1
        b_min, b_max = torch.minimum(low.t, high.t), torch.maximum(low.t, high.t)
        zoom_stop = zoom & (exhausted | ((b_max - b_min) * direction_norm < tolerance_change))
        phase = torch.where(zoom_stop, done, phase)
        zoom = zoom & ~zoom_stop
        inner = _cubic_minimizer(low.t, low.f, low.gtd, high.t, high.f, high.gtd, b_min, b_max)
        eps = 0.1 * (b_max - b_min)
        near_edge = torch.minimum(b_max - inner, inner - b_min) < eps
        move = near_edge & (insufficient | (inner >= b_max) | (inner <= b_min))
        pulled = torch.where((inner - b_max).abs() < (inner - b_min).abs(), b_max - eps, b_min + eps)
        insufficient = torch.where(zoom, near_edge & ~move, insufficient)
        t = torch.where(zoom, torch.where(move, pulled, inner), torch.where(extrapolate, next_t, t))
        need = extrapolate | zoom

    found = low.t > 0
    return torch.where(found, low.t, torch.zeros_like(low.t)), low.f, low.g, n_evals


def _armijo(f, z: Tensor, index: Tensor, direction: Tensor, f0: Tensor, g0: Tensor, gtd0: Tensor,
            t: Tensor, limit: Tensor, c1: float = 1e-4, **_) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Backtracking (quadratic interpolation, factor in [0.1, 0.5]) until sufficient decrease."""
    n = len(index)
    t = t.double()
    f0d, gtd0d = f0.double(), gtd0.double()
    best_t, best_f, best_g = torch.zeros_like(t), f0d.clone(), g0.clone()
    n_evals = torch.zeros(n, dtype=torch.long, device=z.device)
    need = torch.ones(n, dtype=torch.bool, device=z.device)
    while bool(need.any()):
        rows = need.nonzero().squeeze(1)
        values, grads = value_and_grad(f, z[rows] + t[rows, None].to(z.dtype) * direction[rows], index[rows])
        values = finite_or_inf(values).double()
        n_evals = n_evals + need.long()
        trial_f = torch.full_like(t, float("inf")).index_put((rows,), values)
        trial_g = torch.zeros_like(g0).index_put((rows,), grads)
        ok = need & (trial_f <= f0d + c1 * t * gtd0d)
        best_t, best_f = torch.where(ok, t, best_t), torch.where(ok, trial_f, best_f)
        best_g = _pick(ok, trial_g, best_g)
        quadratic = -gtd0d * t * t / (2 * (trial_f - f0d - gtd0d * t))
        quadratic = torch.where(torch.isfinite(quadratic), quadratic, 0.1 * t)
        t = torch.where(need & ~ok, torch.minimum(torch.maximum(quadratic, 0.1 * t), 0.5 * t), t)
        need = need & ~ok & (n_evals < limit)
    return best_t, best_f, best_g, n_evals


def _push(history: Tensor, newest: Tensor) -> Tensor:
    return torch.cat([history[:, 1:], newest[:, None]], dim=1)


def _two_loop(grad: Tensor, s: Tensor, y: Tensor, rho: Tensor, valid: Tensor, h_diag: Tensor) -> Tensor:
    """L-BFGS direction ``-H g`` per row; history ``(n, m, d)`` is ordered oldest -> newest."""
    q = -grad
    m = s.shape[1]
    alphas = []
    for i in range(m - 1, -1, -1):
        alpha = torch.where(valid[:, i], rho[:, i] * (s[:, i] * q).sum(1), torch.zeros_like(rho[:, i]))
        q = q - alpha[:, None] * y[:, i]
        alphas.append(alpha)
    r = q * h_diag[:, None]
    for i in range(m):
        beta = rho[:, i] * (y[:, i] * r).sum(1)
        coefficient = torch.where(valid[:, i], alphas[m - 1 - i] - beta, torch.zeros_like(beta))
        r = r + coefficient[:, None] * s[:, i]
    return r


def batched_lbfgs(
    f: Objective,
    z0: Tensor,
    max_iter: int = 100,
    history_size: int = 10,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    line_search: str = "strong_wolfe",
    max_ls: int = 25,
    max_evals: int | None = None,
    c1: float = 1e-4,
    c2: float = 0.9,
) -> OptimResult:
    """Minimise ``f`` independently for every row of ``z0`` with L-BFGS.

    Args:
        f: per-query objective, indexed ``f(z, index) -> (n,)`` or plain ``f(z) -> (B,)`` (see
            :mod:`ganleaks.optimizers.base`); differentiable in ``z``.
        z0: ``(B, d)`` starting points.
        max_iter: L-BFGS iterations per query.
        history_size: curvature pairs kept per query.
        tolerance_grad: stop a query when ``max |g| <= tolerance_grad``.
        tolerance_change: stop a query when its step or its objective change falls below this.
        line_search: ``"strong_wolfe"`` (cubic interpolation, as torch) or ``"armijo"``.
        max_ls: objective evaluations per line search.
        max_evals: optional budget of objective evaluations per query (a line search is cut to it).
        c1, c2: Wolfe constants.

    Returns:
        :class:`OptimResult`; a query whose start value or gradient is not finite is ``failed``
        and left at ``z0``; a query whose gradient later turns non-finite is ``failed`` and kept at
        its last finite point. Non-finite trial points only shorten the step.
    """
    if line_search not in LINE_SEARCHES:
        raise ValueError(f"line_search must be one of {LINE_SEARCHES}, got {line_search!r}")
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "batched_lbfgs needs autograd, but torch.inference_mode is on (Lightning predicts under it): "
            "build the Trainer with inference_mode=False"
        )
    search = strong_wolfe if line_search == "strong_wolfe" else _armijo
    z = check_start(z0)
    batch, dim = z.shape
    objective = as_indexed(f, batch)
    device = z.device
    everyone = torch.arange(batch, device=device)

    value, grad = value_and_grad(objective, z, everyone)
    n_evals = torch.ones(batch, dtype=torch.long, device=device)
    failed = ~torch.isfinite(value) | ~torch.isfinite(grad).all(1)
    value = torch.where(failed, torch.full_like(value, float("nan")), value)
    grad = torch.where(failed[:, None], torch.zeros_like(grad), grad)
    converged = ~failed & (grad.abs().amax(1) <= tolerance_grad)
    n_iter = torch.zeros(batch, dtype=torch.long, device=device)

    hist_s = z.new_zeros(batch, history_size, dim)
    hist_y = z.new_zeros(batch, history_size, dim)
    rho = z.new_zeros(batch, history_size)
    valid = torch.zeros(batch, history_size, dtype=torch.bool, device=device)
    h_diag = z.new_ones(batch)

    for _ in range(max_iter):
        running = ~(converged | failed)
        if max_evals is not None:
            running &= n_evals < max_evals
        rows = running.nonzero().squeeze(1)
        if len(rows) == 0:
            break
        g = grad[rows]
        row_valid = valid[rows]
        direction = _two_loop(g, hist_s[rows], hist_y[rows], rho[rows], row_valid, h_diag[rows])
        gtd = (g * direction).sum(1)
        # A non-descent direction (numerical trouble) restarts the query from steepest descent.
        restart = ~(gtd < 0)
        if bool(restart.any()):
            direction = torch.where(restart[:, None], -g, direction)
            gtd = (g * direction).sum(1)
            valid[rows[restart]] = False
            h_diag[rows[restart]] = 1.0
            row_valid = valid[rows]
        stalled = gtd > -tolerance_change
        converged[rows[stalled]] = True
        keep = ~stalled
        rows, g, direction, gtd, row_valid = rows[keep], g[keep], direction[keep], gtd[keep], row_valid[keep]
        if len(rows) == 0:
            continue

        first = ~row_valid.any(1)
        t0 = torch.where(first, (1.0 / g.abs().sum(1)).clamp(max=1.0), torch.ones_like(gtd))
        limit = torch.full_like(rows, max_ls)
        if max_evals is not None:
            limit = torch.minimum(limit, (max_evals - n_evals[rows]).clamp_min(1))
        f_old = value[rows]
        t, f_new, g_new, spent = search(objective, z[rows], rows, direction, f_old, g, gtd, t0, limit,
                                        c1=c1, c2=c2, tolerance_change=tolerance_change)  # fmt: skip
        n_evals[rows] += spent
        t = t.to(z.dtype)
        f_new = f_new.to(z.dtype)
        step = t[:, None] * direction
        bad_grad = ~torch.isfinite(g_new).all(1)
        moved = (t > 0) & ~bad_grad
        failed[rows[bad_grad]] = True

        y = g_new - g
        ys = (y * step).sum(1)
        update = moved & (ys > 1e-10)
        # Oldest pair out, newest in, only for queries whose curvature pair is usable.
        hist_s[rows] = _pick(update, _push(hist_s[rows], step), hist_s[rows])
        hist_y[rows] = _pick(update, _push(hist_y[rows], y), hist_y[rows])
        rho[rows] = _pick(update, _push(rho[rows], 1.0 / ys), rho[rows])
        valid[rows] = _pick(update, _push(valid[rows], update), valid[rows])
        h_diag[rows] = torch.where(update, ys / (y * y).sum(1), h_diag[rows])

        z[rows] = torch.where(moved[:, None], z[rows] + step, z[rows])
        value[rows] = torch.where(moved, f_new, f_old)
        grad[rows] = torch.where(moved[:, None], g_new, g)
        n_iter[rows] += 1
        done = (
            (g_new.abs().amax(1) <= tolerance_grad)
            | (step.abs().amax(1) <= tolerance_change)
            | ((f_new - f_old).abs() < tolerance_change)
        )
        converged[rows] |= done & ~bad_grad

    return OptimResult(z=z, objective=value, n_iter=n_iter, n_evals=n_evals, converged=converged, failed=failed)
