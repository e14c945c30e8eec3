"""Shared machinery of the optimiser benchmarks (:mod:`.bench_whitebox`, :mod:`.bench_partialbb`):
our batched per-query latent search against the paper's way, ``scipy.optimize.minimize`` one
query at a time, on the same generator, queries, distance, starting points and iteration cap.

The methods are interleaved in rounds so that both sides see the same load on a shared machine:
every round runs scipy on its next few queries, then ours at each batch size (batch 1 on the
same few queries as scipy, batch b > 1 on the first b queries), and the ratio is taken between
the totals of all rounds (and per round, to show the spread).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import scipy
import scipy.optimize
import scipy.stats
import torch
from torch import Tensor, nn

from benchmarks.common import format_table, load_queries, quantiles, setup, sync, victim_generator, write_report
from ganleaks.attacks.reconstruction import LatentReconstructor
from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.optimizers.lbfgs import value_and_grad

#: An "equal" median: ours may exceed scipy's median by at most this relative amount (float32 noise).
EQUAL_RELATIVE = 1e-3


class CallCounter:
    """Counts the generator's forward calls and the rows (latents) they evaluate."""

    def __init__(self, generator: nn.Module) -> None:
        self.calls = 0
        self.rows = 0
        generator.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        self.calls += 1
        self.rows += int(output.shape[0])

    def reset(self) -> tuple[int, int]:
        counts = (self.calls, self.rows)
        self.calls = self.rows = 0
        return counts


def add_arguments(
    parser: argparse.ArgumentParser,
    *,
    max_iter: int,
    batch_sizes: str,
    scipy_queries: int,
    rounds: int,
    batch1_queries: int = 16,
) -> None:
    parser.add_argument("--batch-sizes", default=batch_sizes, help="comma-separated batch sizes of ours")
    parser.add_argument(
        "--scipy-queries",
        type=int,
        default=scipy_queries,
        help="queries solved by scipy (and by ours at batch 1), split over the rounds",
    )
    parser.add_argument(
        "--batch1-queries",
        type=int,
        default=batch1_queries,
        help="of scipy's queries, how many ours also solves one at a time (batch 1), split over the rounds",
    )
    parser.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds of all methods")
    parser.add_argument("--max-iter", type=int, default=max_iter, help="iteration cap of scipy and ours")
    parser.add_argument(
        "--ours-max-iter",
        type=int,
        default=None,
        help="iteration cap of ours if it differs from scipy's (default: --max-iter)",
    )
    parser.add_argument(
        "--init",
        choices=("random", "zero"),
        default="random",
        help="starting latents (random: per-query N(0, I) seeded by (seed, id), as the attack)",
    )
    parser.add_argument(
        "--generator",
        choices=("trained", "random"),
        default="trained",
        help="the default DCGAN briefly trained on the digits, or at its random init",
    )
    parser.add_argument("--train-batches", type=int, default=600, help="training batches of --generator trained")
    parser.add_argument(
        "--history-size",
        type=int,
        default=10,
        help="L-BFGS only: curvature pairs kept, ours (history_size) and scipy (maxcor) alike",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile (torch.profiler) one bare objective call and one reconstruction at the "
        "largest batch size, and print the top operators",
    )
    parser.add_argument(
        "--lpips",
        choices=("none", "alex", "vgg"),
        default="none",
        help="add 0.2 x LPIPS (paper: vgg) to the L2 + 0.001 x latent prior distance",
    )


def _scipy_solve(
    method: str,
    generator: nn.Module,
    distance: ReconstructionDistance,
    x: Tensor,
    z0: Tensor,
    max_iter: int,
    history_size: int = 10,
) -> dict[str, Any]:
    """The paper's way for one query ``x (1, *shape)``: scipy drives, torch evaluates (float32) at batch 1."""
    device = x.device
    target = distance.prepare(x)

    if method == "lbfgs":

        def fun(z_np: np.ndarray) -> tuple[float, np.ndarray]:
            z = torch.from_numpy(z_np).to(device=device, dtype=torch.float32).view(1, -1).requires_grad_(True)
            with torch.enable_grad():
                objective, _ = distance(target, generator(z), z)
                (grad,) = torch.autograd.grad(objective.sum(), z)
            return float(objective.detach()), grad.double().cpu().numpy().ravel()

        result = scipy.optimize.minimize(
            fun,
            z0.double().cpu().numpy(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "maxcor": history_size},
        )
    else:

        @torch.no_grad()
        def fun(z_np: np.ndarray) -> float:
            z = torch.from_numpy(z_np).to(device=device, dtype=torch.float32).view(1, -1)
            objective, _ = distance(target, generator(z), z)
            return float(objective)

        result = scipy.optimize.minimize(fun, z0.double().cpu().numpy(), method="Powell", options={"maxiter": max_iter})
    with torch.no_grad():
        z = torch.from_numpy(result.x).to(device=device, dtype=torch.float32).view(1, -1)
        objective, score = distance(target, generator(z), z)
    return {"objective": float(objective), "score": float(score), "nfev": int(result.nfev), "nit": int(result.nit)}


def run(name: str, method: str, description: str, defaults: dict[str, Any]) -> None:
    """Parse the arguments, run the interleaved rounds, print the tables and write the JSON."""
    from benchmarks.common import make_parser

    parser = make_parser(name, description)
    add_arguments(parser, **defaults)
    args = parser.parse_args()
    device, machine = setup(args)
    batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    ours_max_iter = args.ours_max_iter or args.max_iter
    n_queries = max(max(batch_sizes), args.scipy_queries)
    per_round = math.ceil(args.scipy_queries / args.rounds)
    batch1_per_round = math.ceil(min(args.batch1_queries, args.scipy_queries) / args.rounds)

    generator, generator_info = victim_generator(args.generator, device, args.train_batches, args.seed)
    counter = CallCounter(generator)
    lpips_weight = 0.0 if args.lpips == "none" else 0.2
    distance = ReconstructionDistance(1.0, lpips_weight, 0.001, lpips_net="vgg" if args.lpips == "none" else args.lpips)
    distance = distance.to(device)
    optimizer = "lbfgs" if method == "lbfgs" else "powell"
    optimizer_kwargs = {"history_size": args.history_size} if method == "lbfgs" else {}
    reconstructor = LatentReconstructor(
        generator,
        distance,
        optimizer=optimizer,
        init=args.init,
        max_iter=ours_max_iter,
        optimizer_kwargs=optimizer_kwargs,
    )
    x = load_queries(n_queries).to(device)
    ids = torch.arange(n_queries)
    z0 = reconstructor.initial_latents(ids, args.seed)
    if args.init == "random":
        z0 = z0.to(device)

    def ours(rows: Tensor) -> tuple[Any, float, tuple[int, int]]:
        counter.reset()
        sync(device)
        start = time.perf_counter()
        result = reconstructor.reconstruct(x[rows], ids[rows], args.seed)
        sync(device)
        return result, time.perf_counter() - start, counter.reset()

    target = distance.prepare(x)

    def objective(z: Tensor, index: Tensor) -> Tensor:  # the reconstructor's objective
        value, _ = distance(target.select(index), generator(z), z)
        return value

    def probe(b: int) -> tuple[float, int]:
        """Seconds and rows of bare objective calls at batch b (value + gradient for L-BFGS), no optimiser."""
        z, index = z0[:b].to(device), torch.arange(b, device=device)
        calls = max(4, 1024 // b)
        sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            if method == "lbfgs":
                value_and_grad(objective, z, index)
            else:
                with torch.no_grad():
                    objective(z, index)
        sync(device)
        return time.perf_counter() - start, calls * b

    # Warm-up (allocator, oneDNN kernels): one tiny batch of each kind, not timed.
    for b in batch_sizes:
        probe(b)
    ours(torch.arange(min(2, n_queries)))
    _scipy_solve(method, generator, distance, x[:1], z0[0], 2, args.history_size)

    methods = ["scipy"] + [f"ours_b{b}" for b in batch_sizes]
    totals = {m: {"queries": 0, "seconds": 0.0, "generator_rows": 0, "generator_calls": 0} for m in methods}
    per_round_qps: dict[str, list[float]] = {m: [] for m in methods}
    scipy_records: list[dict[str, Any]] = []
    ours_results: dict[int, Any] = {}
    batch1_objective: dict[int, float] = {}
    probe_totals: dict[int, list] = {}
    run_started = time.perf_counter()
    for round_index in range(args.rounds):
        rows = torch.arange(round_index * per_round, min((round_index + 1) * per_round, args.scipy_queries))
        if len(rows) == 0:
            break
        counter.reset()
        sync(device)
        start = time.perf_counter()
        for i in rows.tolist():
            record = _scipy_solve(method, generator, distance, x[i : i + 1], z0[i], args.max_iter, args.history_size)
            scipy_records.append({"query": i, **record})
        sync(device)
        seconds = time.perf_counter() - start
        calls, generator_rows = counter.reset()
        totals["scipy"]["queries"] += len(rows)
        totals["scipy"]["seconds"] += seconds
        totals["scipy"]["generator_rows"] += generator_rows - len(rows)  # minus the final scoring pass
        totals["scipy"]["generator_calls"] += calls - len(rows)
        per_round_qps["scipy"].append(len(rows) / seconds)
        for b in batch_sizes:
            key = f"ours_b{b}"
            if b == 1:
                seconds = calls = generator_rows = 0
                for i in rows[:batch1_per_round].tolist():
                    result, s, (c, r) = ours(torch.tensor([i]))
                    seconds, calls, generator_rows = seconds + s, calls + c, generator_rows + r
                    batch1_objective[i] = float(result.objective[0])
                done = len(rows[:batch1_per_round])
            else:
                result, seconds, (calls, generator_rows) = ours(torch.arange(b))
                ours_results.setdefault(b, result)
                done = b
            totals[key]["queries"] += done
            totals[key]["seconds"] += seconds
            totals[key]["generator_rows"] += generator_rows - done  # minus the final scoring pass
            totals[key]["generator_calls"] += calls - 1 if b > 1 else calls - done
            per_round_qps[key].append(done / seconds)
        for b in sorted({1, *batch_sizes}):
            seconds, probe_rows = probe(b)
            probe_totals.setdefault(b, [0.0, 0])
            probe_totals[b][0] += seconds
            probe_totals[b][1] += probe_rows
        print(f"round {round_index + 1}/{args.rounds} done after {time.perf_counter() - run_started:.0f} s", flush=True)

    # ------------------------------------------------------------------ speed table
    scipy_qps = totals["scipy"]["queries"] / totals["scipy"]["seconds"]
    speed_rows = []
    for m in methods:
        t = totals[m]
        qps = t["queries"] / t["seconds"]
        ratios = [ours / base for ours, base in zip(per_round_qps[m], per_round_qps["scipy"], strict=False)]
        speed_rows.append(
            {
                "method": m,
                "queries_timed": t["queries"],
                "seconds": t["seconds"],
                "queries_per_s": qps,
                "speedup_vs_scipy": qps / scipy_qps,
                "speedup_round_min": min(ratios),
                "speedup_round_max": max(ratios),
                "generator_rows_per_query": t["generator_rows"] / t["queries"],
                "generator_calls_per_query": t["generator_calls"] / t["queries"],
            }
        )

    # Objective throughput alone: what batching the generator can give, before any optimiser.
    scipy_seconds_per_eval = totals["scipy"]["seconds"] / totals["scipy"]["generator_rows"]
    scipy_evals_per_query = totals["scipy"]["generator_rows"] / totals["scipy"]["queries"]
    throughput_rows = []
    for b, (seconds, probe_rows) in sorted(probe_totals.items()):
        per_row = seconds / probe_rows
        key = f"ours_b{b}"
        ours_evals = (totals[key]["generator_rows"] / totals[key]["queries"]) if key in totals else None
        throughput_rows.append(
            {
                "batch": b,
                "ms_per_call": 1000 * per_row * b,
                "rows_per_s": 1 / per_row,
                "vs_batch1": (probe_totals[1][0] / probe_totals[1][1]) / per_row,
                "scipy_ms_per_eval": 1000 * scipy_seconds_per_eval,
                # the speedup ours would reach with an optimiser that costs nothing beside the objective
                "speedup_ceiling": None
                if ours_evals is None
                else scipy_seconds_per_eval * scipy_evals_per_query / (per_row * ours_evals),
            }
        )
    for row in speed_rows:
        if row["method"] != "scipy":
            b = int(row["method"].removeprefix("ours_b"))
            bare = probe_totals[b][0] / probe_totals[b][1]
            row["objective_share_percent"] = 100 * bare * row["generator_rows_per_query"] * row["queries_per_s"]

    # ------------------------------------------------------------------ loss table (same queries)
    scipy_records.sort(key=lambda r: r["query"])
    solved = torch.tensor([r["query"] for r in scipy_records])
    scipy_objective = torch.tensor([r["objective"] for r in scipy_records], dtype=torch.float64)
    scipy_score = torch.tensor([r["score"] for r in scipy_records], dtype=torch.float64)
    biggest = max(b for b in batch_sizes if b > 1) if any(b > 1 for b in batch_sizes) else None
    loss_rows = [
        {
            "method": "scipy",
            "queries": len(solved),
            **_loss_columns(scipy_objective, scipy_score),
            "iterations_per_query": float(np.mean([r["nit"] for r in scipy_records])),
        }
    ]
    comparison: dict[str, Any] = {}
    ours_per_query: dict[str, Any] = {}
    if biggest is not None:
        result = ours_results[biggest]
        ours_objective = result.objective.double().cpu()
        ours_score = result.loss.double().cpu()
        paired = solved < biggest  # scipy's queries that the biggest batch also solved
        same = solved[paired]
        paired_ours, paired_scipy = ours_objective[same], scipy_objective[paired]
        loss_rows.append(
            {
                "method": f"ours_b{biggest} (scipy's queries)",
                "queries": len(same),
                **_loss_columns(paired_ours, ours_score[same]),
                "iterations_per_query": float(result.n_iter[same].double().mean()),
                "ours_le_scipy_fraction": float((paired_ours <= paired_scipy * (1 + EQUAL_RELATIVE)).double().mean()),
            }
        )
        loss_rows.append(
            {
                "method": f"ours_b{biggest} (all)",
                "queries": len(ours_objective),
                **_loss_columns(ours_objective, ours_score),
                "iterations_per_query": float(result.n_iter.double().mean()),
            }
        )
        ratio = paired_ours / paired_scipy
        wilcoxon = scipy.stats.wilcoxon(paired_ours.numpy(), paired_scipy.numpy()) if len(same) >= 6 else None
        comparison = {
            "ours_batch": biggest,
            "queries": len(same),
            "scipy_median_objective": quantiles(paired_scipy)["median"],
            "ours_median_objective": quantiles(paired_ours)["median"],
            "scipy_mean_objective": float(paired_scipy.mean()),
            "ours_mean_objective": float(paired_ours.mean()),
            "scipy_median_score": quantiles(scipy_score[paired])["median"],
            "ours_median_score": quantiles(ours_score[same])["median"],
            "paired_ratio_ours_over_scipy": quantiles(ratio),
            "ours_lower_fraction": float((paired_ours < paired_scipy).double().mean()),
            "wilcoxon_p_value": None if wilcoxon is None else float(wilcoxon.pvalue),
        }
        ours_per_query = {
            "objective": ours_objective.tolist(),
            "score": ours_score.tolist(),
            "n_evals": result.n_evals.tolist(),
            "n_iter": result.n_iter.tolist(),
        }
        if batch1_objective:
            diffs = [
                abs(batch1_objective[i] - float(ours_objective[i])) / max(1e-12, abs(float(ours_objective[i])))
                for i in batch1_objective
                if i < biggest
            ]
            comparison["batch1_vs_batch_max_relative_objective_difference"] = max(diffs) if diffs else None

    best = max((row for row in speed_rows if row["method"] != "scipy"), key=lambda row: row["queries_per_s"])
    equal_or_lower = bool(comparison) and (
        comparison["ours_median_objective"] <= comparison["scipy_median_objective"] * (1 + EQUAL_RELATIVE)
    )
    # Not significantly worse: a paired two-sided Wilcoxon test does not reject equality at 5%, or ours is lower.
    p_value = comparison.get("wilcoxon_p_value")
    not_worse = bool(comparison) and (equal_or_lower or (p_value is not None and p_value >= 0.05))
    verdict = {
        "target_speedup": 20.0,
        "best_method": best["method"],
        "speedup": best["speedup_vs_scipy"],
        "median_objective_equal_or_lower": equal_or_lower,
        "not_significantly_worse": not_worse,
        "met": bool(best["speedup_vs_scipy"] >= 20.0 and equal_or_lower),
    }

    speed_columns = [
        "method",
        "queries_timed",
        "seconds",
        "queries_per_s",
        "speedup_vs_scipy",
        "speedup_round_min",
        "speedup_round_max",
        "generator_rows_per_query",
        "generator_calls_per_query",
        "objective_share_percent",
    ]
    throughput_columns = ["batch", "ms_per_call", "rows_per_s", "vs_batch1", "scipy_ms_per_eval", "speedup_ceiling"]
    loss_columns = [
        "method",
        "queries",
        "objective_median",
        "objective_q1",
        "objective_q3",
        "score_median",
        "score_q1",
        "score_q3",
        "iterations_per_query",
        "ours_le_scipy_fraction",
    ]
    label = "L-BFGS(-B)" if method == "lbfgs" else "Powell"
    tables = [
        format_table(
            speed_rows,
            speed_columns,
            f"{name}: {label}, scipy per query vs ours batched "
            f"(max_iter scipy {args.max_iter}, ours {ours_max_iter}; {device})",
        ),
        format_table(
            throughput_rows,
            throughput_columns,
            "objective alone (" + ("value + gradient" if method == "lbfgs" else "forward only") + ", no "
            "optimiser): the ceiling batching puts on the speedup = scipy's seconds per query / (ours' "
            "evaluations per query x seconds per row)",
        ),
        format_table(loss_rows, loss_columns, "final losses (objective = L2 + prior [+ LPIPS]; score = without prior)"),
        f"verdict: best {best['method']} = {best['speedup_vs_scipy']:.1f}x scipy (target >= 20x: "
        f"{'met' if best['speedup_vs_scipy'] >= 20 else 'missed'}); median objective ours "
        f"{comparison.get('ours_median_objective', float('nan')):.4f} vs scipy "
        f"{comparison.get('scipy_median_objective', float('nan')):.4f}: "
        f"{'equal or lower' if equal_or_lower else 'tied (no significant difference)' if not_worse else 'HIGHER'} "
        f"(paired Wilcoxon p = {p_value if p_value is None else format(p_value, '.2g')}, ours lower on "
        f"{comparison.get('ours_lower_fraction', float('nan')):.0%} of queries) -> "
        f"{'MET' if verdict['met'] else 'MISSED'}",
    ]
    profiles: dict[str, str] = {}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        largest = max(batch_sizes)
        for label, work in (
            (f"bare objective call, batch {largest}", lambda: probe(largest)),
            (f"one reconstruction of {largest} queries", lambda: ours(torch.arange(largest))),
        ):
            with profile(activities=activities) as profiler:
                work()
            table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
            profiles[label] = table
            tables.append(f"profile: {label}\n{table}")

    payload = {
        "generator": generator_info,
        "profiles": profiles,
        "distance": distance.extra_repr(),
        "method": method,
        "scipy_version": scipy.__version__,
        "speed": speed_rows,
        "objective_throughput": throughput_rows,
        "losses": loss_rows,
        "comparison": comparison,
        "verdict": verdict,
        "scipy_per_query": scipy_records,
        "ours_per_query": ours_per_query,
        "per_round_queries_per_s": per_round_qps,
    }
    write_report(name, args, machine, payload, tables)


def _loss_columns(objective: Tensor, score: Tensor) -> dict[str, float]:
    o, s = quantiles(objective), quantiles(score)
    return {
        "objective_median": o["median"],
        "objective_q1": o["q1"],
        "objective_q3": o["q3"],
        "score_median": s["median"],
        "score_q1": s["q1"],
        "score_q3": s["q3"],
    }
