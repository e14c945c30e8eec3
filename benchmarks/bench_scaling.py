"""Scaling of the full black-box search: time against the number of queries N and against the
number of samples k, and peak memory against k, for our chunked search (one fresh subprocess per
point, the data and methods of :mod:`benchmarks.bench_fullbb`); the memory of scikit-learn (one
call over all queries) and plain ``torch.cdist`` against k beside it, and a straight-line fit of
our time against k, extrapolated to ``--extrapolate-k`` (the paper-scale bank).

Quick run::

    python -m benchmarks.bench_scaling --threads 1 --n-values 250,500,1000 --n-fixed-k 1024 \\
        --k-values 1024,2048,4096 --k-fixed-n 2000 --baseline-k-values 1024,2048

Default run (about 6 minutes on a 2-core CPU) and on a CUDA device::

    python -m benchmarks.bench_scaling --threads 1
    python -m benchmarks.bench_scaling --device cuda --k-values 8192,32768,131072,200000
"""

from __future__ import annotations

import json
import time
from typing import Any

from benchmarks.bench_fullbb import DATA_SHAPE, flops
from benchmarks.common import format_table, make_parser, run_worker, setup, write_report

NAME = "bench_scaling"


def ints(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value]


def main() -> None:
    parser = make_parser(NAME, __doc__.split("\n\n")[0])
    parser.add_argument("--n-values", default="1250,2500,5000,10000,20000", help="N for time against N")
    parser.add_argument("--n-fixed-k", type=int, default=2048, help="k while N varies")
    parser.add_argument("--k-values", default="1024,4096,16384", help="k for time and memory against k (ours)")
    parser.add_argument("--k-fixed-n", type=int, default=20_000, help="N while k varies")
    parser.add_argument(
        "--baseline-k-values", default="1024,4096", help="k for the memory of sklearn (one call) and torch.cdist"
    )
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--extrapolate-k", type=int, default=200_000)
    parser.add_argument("--memory-budget-mb", type=float, default=4096.0)
    args = parser.parse_args()
    device, machine = setup(args)

    def point(method: str, n: int, k: int) -> dict[str, Any]:
        spec = {
            "method": method,
            "n": n,
            "k": k,
            "chunk": args.chunk,
            "threads": args.threads,
            "seed": args.seed,
            "device": args.device,
            "sklearn_queries": n,
        }
        run = run_worker("bench_fullbb", spec)
        row = {
            "method": method,
            "n": n,
            "k": k,
            "seconds": run["seconds"],
            "gflop_per_s": flops(n, k) / run["seconds"] / 1e9,
            "peak_rss_mb": run["peak_rss_mb"],
            "rss_before_method_mb": run["rss_before_method_mb"],
            "method_added_mb": run["peak_rss_mb"] - run["rss_before_method_mb"],
        }
        if "cuda_peak_allocated_mb" in run:
            row["cuda_peak_allocated_mb"] = run["cuda_peak_allocated_mb"]
        print(
            f"{method} N={n} k={k}: {row['seconds']:.1f} s, peak {row['peak_rss_mb']:.0f} MiB "
            f"(after {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        return row

    started = time.perf_counter()
    against_n = [point("ours", n, args.n_fixed_k) for n in ints(args.n_values)]
    against_k = [point("ours", args.k_fixed_n, k) for k in ints(args.k_values)]
    baselines = [
        point(method, args.k_fixed_n, k)
        for k in ints(args.baseline_k_values)
        for method in ("sklearn_one_call", "torch_cdist")
    ]

    # Least-squares line through (k, seconds) and (k, peak memory) of ours at fixed N.
    def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=False)) / var if var else 0.0
        return slope, mean_y - slope * mean_x

    ks = [float(row["k"]) for row in against_k]
    time_slope, time_intercept = fit(ks, [row["seconds"] for row in against_k])
    memory_key = "cuda_peak_allocated_mb" if device.type == "cuda" else "peak_rss_mb"
    memory_slope, memory_intercept = fit(ks, [row[memory_key] for row in against_k])
    target_k = args.extrapolate_k
    extrapolation = {
        "n": args.k_fixed_n,
        "k": target_k,
        "memory_metric": memory_key,
        "seconds_per_1000_samples": 1000 * time_slope,
        "predicted_seconds": time_intercept + time_slope * target_k,
        "memory_mb_per_1000_samples": 1000 * memory_slope,
        "predicted_peak_mb": memory_intercept + memory_slope * target_k,
        "measured_peak_mb_max": max(row[memory_key] for row in against_k),
    }
    extrapolation["within_budget"] = extrapolation["predicted_peak_mb"] <= args.memory_budget_mb
    extrapolation["budget_mb"] = args.memory_budget_mb

    columns = ["method", "n", "k", "seconds", "gflop_per_s", "peak_rss_mb", "rss_before_method_mb", "method_added_mb"]
    if device.type == "cuda":
        columns.append("cuda_peak_allocated_mb")
    shape = "x".join(map(str, DATA_SHAPE))
    tables = [
        format_table(against_n, columns, f"{NAME}: ours, time against N (k={args.n_fixed_k}, {shape}, {device})"),
        format_table(against_k, columns, f"ours, time and peak memory against k (N={args.k_fixed_n})"),
        format_table(baselines, columns, f"baselines, peak memory against k (N={args.k_fixed_n})"),
        "extrapolation (straight line through ours against k): " + json.dumps(extrapolation),
    ]
    payload = {
        "against_n": against_n,
        "against_k": against_k,
        "baselines_against_k": baselines,
        "extrapolation": extrapolation,
    }
    write_report(NAME, args, machine, payload, tables)


if __name__ == "__main__":
    main()
