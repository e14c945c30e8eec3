"""Batched per-query Powell conjugate-direction search (partial black-box, paper section 5.3).

Gradient-free: the objective is only ever called under ``torch.no_grad()``. Every query keeps its
own direction set ``(d, d)``, its own probe step per direction and its own stopping test, exactly
as ``scipy.optimize.minimize(method="Powell")`` does for one query, but all queries walk their
direction sets in lockstep so that one objective call serves every query's current line search.

Where scipy runs Brent's method to ``xtol`` on every line (~9 evaluations per line), a line here
costs 2 or 3 evaluations in 2 calls:

1. **probe** (one call): on its first visit of a direction a query probes ``x - h u`` and
   ``x + h u`` (two rows of that query stacked along the batch dimension); on later visits, when
   it remembers a positive curvature ``a`` along that direction from the previous sweep, it
   probes ``x + h u`` only and takes the Newton step of ``a t^2 + b t``, ``b`` from the probe;
2. **refine** (``refinements`` calls, default 1): the model's minimiser (the parabola's vertex,
   clamped to the bracket, or at most ``max_extrapolation`` brackets beyond it when the minimum
   is not bracketed) is evaluated; the best evaluated point is taken, and the curvature of the
   parabola through the evaluated points is remembered for the next sweep;
3. the query's signed probe step for that direction becomes ``t_best`` (its size clamped to
   ``[h / 4, max_extrapolation * h]`` and ``[min_step, max_step]``), so later sweeps probe at the
   scale and in the direction of the last move: parabolic fits are exact on quadratics and stay
   accurate as the query converges.

On CPU benchmarks (random DCGAN-like generators; L2 + latent prior with d = 32..64, or L2 +
0.2 LPIPS-alex + prior with d = 24), 10 sweeps per query reach per-query losses lower than
``scipy.optimize.minimize(method="Powell", maxiter=10)`` for most queries, with 5-7x fewer
evaluations, before any gain from batching.

Powell's direction update follows scipy: after a sweep the net displacement ``x - x_start`` is
tried; the extrapolated point ``2 x - x_start`` is the ``+`` probe of a line along it whose ``-``
probe is ``x_start`` (already known), and when scipy's test accepts the new direction, one refine
step is taken along it and it replaces the direction of largest decrease. A sweep costs at most
``d * (2 + refinements) + 2`` evaluations per query (the first), later ones about
``d * (1 + refinements) + 2``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from ganleaks.optimizers.base import Objective, OptimResult, as_indexed, check_start, finite_or_inf

log = logging.getLogger(__name__)


def _evaluate(f, points: Tensor, index: Tensor) -> Tensor:
    """Evaluate ``points (n, k, d)`` of queries ``index (n,)`` in one call -> ``(n, k)`` (+inf if not finite)."""
    n, k, d = points.shape
    values = f(points.reshape(n * k, d), index.repeat_interleave(k))
    if values.shape != (n * k,):
        raise ValueError(f"objective must return shape ({n * k},), got {tuple(values.shape)}")
    return finite_or_inf(values.reshape(n, k))


def _parabola_step(ts: Tensor, fs: Tensor, max_extrapolation: float) -> Tensor:
    """Next trial step per row from evaluated points ``ts, fs (n, k)`` (k >= 3) on each line.

    Uses the best point and its two neighbours in t: the vertex of their parabola, clamped to the
    bracket when the best point is inside, else to ``max_extrapolation`` spacings beyond the edge.
    """
    n, k = ts.shape
    order = ts.argsort(dim=1)
    ts, fs = ts.gather(1, order), fs.gather(1, order)
    best = fs.argmin(dim=1)
    centre = best.clamp(1, k - 2)
    rows = torch.arange(n, device=ts.device)
    t0, t1, t2 = ts[rows, centre - 1], ts[rows, centre], ts[rows, centre + 1]
    f0, f1, f2 = fs[rows, centre - 1], fs[rows, centre], fs[rows, centre + 1]
    # Vertex of the parabola through three points (Numerical Recipes' parabolic step).
    p = (t1 - t0) * (f1 - f2)
    q = (t1 - t2) * (f1 - f0)
    numerator = (t1 - t0) * p - (t1 - t2) * q
    denominator = 2 * (p - q)
    vertex = t1 - numerator / denominator
    convex = (denominator * (t2 - t0)) < 0  # the parabola opens upwards
    inside = (best > 0) & (best < k - 1)
    left_limit = ts[:, 0] - max_extrapolation * (ts[:, 1] - ts[:, 0])
    right_limit = ts[:, -1] + max_extrapolation * (ts[:, -1] - ts[:, -2])
    lower = torch.where(inside, t0, torch.where(best == 0, left_limit, ts[:, -2]))
    upper = torch.where(inside, t2, torch.where(best == 0, ts[:, 1], right_limit))
    # Concave or degenerate fits: go to the far limit on the downhill side (or bisect a bracket).
    fallback = torch.where(
        inside,
        torch.where(t2 - t1 > t1 - t0, (t1 + t2) / 2, (t0 + t1) / 2),
        torch.where(best == 0, left_limit, right_limit),
    )
    usable = convex & torch.isfinite(vertex)
    step = torch.where(usable, torch.minimum(torch.maximum(vertex, lower), upper), fallback)
    # All points infinite: no information, try a short step.
    hopeless = ~torch.isfinite(fs).any(dim=1)
    return torch.where(hopeless, ts[:, 0] / 4, step)


def _curvature(t1: Tensor, f1: Tensor, t2: Tensor, f2: Tensor, t3: Tensor, f3: Tensor) -> Tensor:
    """Leading coefficient ``a`` of the parabola ``a t^2 + b t + c`` through three points (per row)."""
    return ((f3 - f1) / (t3 - t1) - (f2 - f1) / (t2 - t1)) / (t3 - t2)


def line_minimize(f, z: Tensor, index: Tensor, direction: Tensor, f0: Tensor, h: Tensor,
                  curvature: Tensor | None = None, refinements: int = 1,
                  max_extrapolation: float = 4.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Approximate line minimisation of n queries at once.

    Rows with a remembered positive ``curvature`` (the ``a`` of ``f(t) ~ a t^2 + b t + c`` along
    this direction, from the previous sweep) probe one point, ``t = h``, and take the Newton step
    of the model with that curvature; the others probe ``t = -h`` and ``t = h`` and take the
    vertex of the parabola. Each refinement evaluates the model's minimiser (one call), the
    first one included; the best evaluated point is returned.

    Args:
        f: indexed objective (called under no_grad by the caller).
        z, direction: ``(n, d)`` points and directions.
        index: ``(n,)`` query of each row.
        f0: ``(n,)`` values at ``z``.
        h: ``(n,)`` signed probe steps (non-zero).
        curvature: ``(n,)`` remembered curvature, NaN where unknown; ``None``: all unknown.
        refinements: model-minimiser evaluations after the probe (>= 1).

    Returns:
        ``(t_best (n,), f_best (n,), evaluations per row (n,), curvature estimate (n,), NaN where
        unusable)``.
    """
    n = len(index)
    everyone = torch.arange(n, device=z.device)
    if curvature is None:
        curvature = torch.full_like(f0, float("nan"))
    one_sided = torch.isfinite(curvature) & (curvature > 0)
    two_sided = (~one_sided).nonzero().squeeze(1)
    probe_rows = torch.cat([everyone, two_sided])
    probe_t = torch.cat([h, -h[two_sided]])
    values = f(z[probe_rows] + probe_t[:, None] * direction[probe_rows], index[probe_rows])
    values = finite_or_inf(values)
    f_plus = values[:n]
    f_minus = torch.full_like(f0, float("inf")).index_put((two_sided,), values[n:])

    # Model minimiser: Newton step with the remembered curvature, or the three-point parabola.
    zero = torch.zeros_like(h)
    slope = (f_plus - f0) / h - curvature * h
    newton = (-slope / (2 * curvature)).clamp(-max_extrapolation * h.abs(), max_extrapolation * h.abs())
    newton = torch.where(torch.isfinite(newton), newton, h / 4)
    ts = torch.stack([-h, zero, h], dim=1)
    fs = torch.stack([f_minus, f0, f_plus], dim=1)
    vertex = _parabola_step(ts, fs, max_extrapolation)
    t_new = torch.where(one_sided, newton, vertex)
    for refinement in range(refinements):
        if refinement:
            t_new = _parabola_step(ts, fs, max_extrapolation)
        f_new = _evaluate(f, (z + t_new[:, None] * direction)[:, None], index)
        ts = torch.cat([ts, t_new[:, None]], dim=1)
        fs = torch.cat([fs, f_new], dim=1)
        if refinement == 0:
            t_first, f_first = t_new, f_new.squeeze(1)

    # Curvature for the next sweep: symmetric probes, or (0, h, first model step).
    estimate = torch.where(
        one_sided,
        _curvature(zero, f0, h, f_plus, t_first, f_first),
        (f_plus + f_minus - 2 * f0) / (2 * h * h),
    )
    spacing = torch.minimum(torch.minimum(t_first.abs(), (t_first - h).abs()), h.abs())
    conditioned = ~one_sided | (spacing > 0.1 * h.abs())
    estimate = torch.where(conditioned, estimate, curvature)
    estimate = torch.where(torch.isfinite(estimate) & (estimate > 0), estimate, torch.full_like(estimate, float("nan")))

    best = fs.argmin(dim=1, keepdim=True)
    spent = 1 + (~one_sided).long() + refinements
    return ts.gather(1, best).squeeze(1), fs.gather(1, best).squeeze(1), spent, estimate


@torch.no_grad()
def batched_powell(
    f: Objective,
    z0: Tensor,
    max_iter: int = 10,
    max_evals: int | None = None,
    initial_step: float = 0.5,
    refinements: int = 1,
    max_extrapolation: float = 4.0,
    ftol: float = 1e-4,
    min_step: float = 1e-3,
    max_step: float = 8.0,
    remember_curvature: bool = True,
) -> OptimResult:
    """Minimise ``f`` independently for every row of ``z0`` with Powell's method, forward passes only.

    Args:
        f: per-query objective, indexed ``f(z, index) -> (n,)`` or plain ``f(z) -> (B,)`` (see
            :mod:`ganleaks.optimizers.base`); always called under ``torch.no_grad()``.
        z0: ``(B, d)`` starting points.
        max_iter: sweeps over the direction set (scipy's ``maxiter``).
        max_evals: optional evaluations per query; checked before each line, so a query may
            overshoot it by at most ``1 + refinements``.
        initial_step: first probe step ``h`` on every direction (latent units).
        refinements: model-minimiser evaluations per line (one call each).
        max_extrapolation: how many brackets a refinement may step beyond an unbracketed minimum.
        ftol: a query converges when a sweep improves it by less than
            ``ftol * (|f_start| + |f_end|) / 2`` (scipy's test).
        min_step, max_step: bounds of the probe step.
        remember_curvature: probe one side with the curvature of the previous sweep (False: always
            probe both sides).

    Returns:
        :class:`OptimResult`; queries whose start value is not finite are ``failed``.
    """
    z = check_start(z0)
    batch, dim = z.shape
    objective = as_indexed(f, batch)
    device = z.device
    everyone = torch.arange(batch, device=device)

    value = objective(z, everyone)
    if value.shape != (batch,):
        raise ValueError(f"objective must return shape ({batch},), got {tuple(value.shape)}")
    failed = ~torch.isfinite(value)
    value = torch.where(failed, torch.full_like(value, float("nan")), value)
    n_evals = torch.ones(batch, dtype=torch.long, device=device)
    n_iter = torch.zeros(batch, dtype=torch.long, device=device)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    directions = torch.eye(dim, dtype=z.dtype, device=device).repeat(batch, 1, 1)  # (B, d, d), rows
    steps = torch.full((batch, dim), float(initial_step), dtype=z.dtype, device=device)  # signed
    curvatures = torch.full((batch, dim), float("nan"), dtype=z.dtype, device=device)

    def budget_left() -> Tensor:
        ok = ~(converged | failed)
        return ok if max_evals is None else ok & (n_evals < max_evals)

    for _ in range(max_iter):
        running = budget_left()
        if not bool(running.any()):
            break
        start_z, start_value = z.clone(), value.clone()
        biggest_drop = torch.zeros_like(value)
        biggest_index = torch.zeros(batch, dtype=torch.long, device=device)
        for i in range(dim):
            rows = budget_left().nonzero().squeeze(1)
            if len(rows) == 0:
                break
            h = steps[rows, i]
            memory = curvatures[rows, i] if remember_curvature else None
            t, f_line, spent, curvature = line_minimize(objective, z[rows], rows, directions[rows, i], value[rows],
                                                        h, memory, refinements, max_extrapolation)  # fmt: skip
            n_evals[rows] += spent
            drop = value[rows] - f_line
            z[rows] += t[:, None] * directions[rows, i]
            value[rows] = f_line
            size = torch.minimum(torch.maximum(t.abs(), h.abs() / 4), h.abs() * max_extrapolation)
            sign = torch.where(t != 0, t.sign(), h.sign())
            steps[rows, i] = sign * size.clamp(min_step, max_step)
            curvatures[rows, i] = curvature
            bigger = drop > biggest_drop[rows]
            biggest_drop[rows] = torch.where(bigger, drop, biggest_drop[rows])
            biggest_index[rows] = torch.where(bigger, torch.full_like(rows, i), biggest_index[rows])
        n_iter[running] += 1

        stalled = 2.0 * (start_value - value) <= ftol * (start_value.abs() + value.abs()) + 1e-20
        converged |= running & stalled

        # Powell's update: try the sweep's net displacement as a new direction.
        rows = (budget_left() & running).nonzero().squeeze(1)
        displacement = z[rows] - start_z[rows]
        length = displacement.norm(dim=1)
        rows, displacement, length = rows[length > 0], displacement[length > 0], length[length > 0]
        if len(rows) == 0:
            continue
        unit = displacement / length[:, None]
        # + probe at the extrapolated point 2 x - x_start; the start point plays the - probe.
        f_start, f_sweep = start_value[rows], value[rows]
        f_extra = _evaluate(objective, (z[rows] + displacement)[:, None], rows).squeeze(1)
        n_evals[rows] += 1
        drop = biggest_drop[rows]
        test = 2.0 * (f_start + f_extra - 2.0 * f_sweep) * (f_start - f_sweep - drop) ** 2
        test = test - drop * (f_start - f_extra) ** 2  # scipy's acceptance test for the new direction
        adopt = (f_start > f_extra) & (test < 0)
        ts = torch.stack([-length, torch.zeros_like(length), length], dim=1)
        fs = torch.stack([f_start, f_sweep, f_extra], dim=1)
        t_new = _parabola_step(ts, fs, max_extrapolation)
        sub = adopt.nonzero().squeeze(1)
        f_new = torch.full_like(f_sweep, float("inf"))
        if len(sub):
            trial = z[rows[sub]] + t_new[sub, None] * unit[sub]
            f_new[sub] = _evaluate(objective, trial[:, None], rows[sub]).squeeze(1)
            n_evals[rows[sub]] += 1
        # Keep the best of the sweep end, the extrapolated point and the refined point.
        candidates_t = torch.stack([torch.zeros_like(length), length, t_new], dim=1)
        candidates_f = torch.stack([f_sweep, f_extra, f_new], dim=1)
        best = candidates_f.argmin(dim=1, keepdim=True)
        t_best = candidates_t.gather(1, best).squeeze(1)
        z[rows] += t_best[:, None] * unit
        value[rows] = candidates_f.gather(1, best).squeeze(1)
        # Replace the direction of largest decrease by the last one, and put the new one last.
        a_rows, big = rows[sub], biggest_index[rows[sub]]
        directions[a_rows, big] = directions[a_rows, -1]
        steps[a_rows, big] = steps[a_rows, -1]
        curvatures[a_rows, big] = curvatures[a_rows, -1]
        directions[a_rows, -1] = unit[sub]
        steps[a_rows, -1] = torch.maximum(t_best[sub].abs(), length[sub] / 4).clamp(min_step, max_step)
        curvatures[a_rows, -1] = float("nan")

    return OptimResult(z=z, objective=value, n_iter=n_iter, n_evals=n_evals, converged=converged, failed=failed)
