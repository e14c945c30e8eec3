"""Full black-box benchmark: our chunked nearest-neighbour search (``nearest_neighbors`` over a
``SampleBank`` that generates its samples chunk by chunk) against the paper's search
(``sklearn.neighbors.NearestNeighbors(n_neighbors=5)``, 10 queries per ``kneighbors`` call), one
scikit-learn call over all queries, and plain ``torch.cdist`` over the whole bank; beside a plain
``torch.mm`` of the same shapes (the machine's practical limit). Every method runs in a fresh
subprocess so that its peak resident memory (``ru_maxrss``; on CUDA also
``torch.cuda.max_memory_allocated``) is its own.

Data: random images ``(3, 64, 64)`` in ``[-1, 1]``. The k samples come from a stand-in generator,
``clamp(z W, -1, 1)`` with a fixed random ``W`` (64 -> 3 x 64 x 64), so that they are reproducible
from their latents like a real ``SampleBank``, at a cost far below the search (the search is
matmul-bound; the content of the images does not matter for its speed). The queries are samples of
the same stand-in plus uniform noise (near the samples, as real data is near a GAN's samples, so
that the nearest neighbours are spread over the bank rather than a few hubs). scikit-learn and
cdist get the same samples, materialised once (their generation is timed too). All methods return
the 5 nearest samples per query.

Quick run::

    python -m benchmarks.bench_fullbb --threads 1 --queries 2000 --k 4096

Default run (about 6 minutes on a 2-core CPU) and on a CUDA device::

    python -m benchmarks.bench_fullbb --threads 1
    python -m benchmarks.bench_fullbb --device cuda

At the paper's bank size only the chunked methods fit a typical machine: scikit-learn's one call
holds the whole 200,000-sample bank (9.2 GiB in float32) and ``torch.cdist`` the bank and the
20,000 x 200,000 distance matrix (14.9 GiB)::

    python -m benchmarks.bench_fullbb --device cuda --queries 20000 --k 200000 --methods torch_mm,ours
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import (
    current_rss_mb,
    format_table,
    make_parser,
    peak_rss_mb,
    run_worker,
    setup,
    sync,
    write_report,
)

NAME = "bench_fullbb"
DATA_SHAPE = (3, 64, 64)
LATENT_DIM = 64
TOP_M = 5  # the paper's n_neighbors
METHODS = ("torch_mm", "ours", "sklearn_per10", "sklearn_one_call", "torch_cdist")


class RandomImages(nn.Module):
    """Stand-in generator of random images: ``clamp(z W, -1, 1)``, ``W`` fixed by ``seed``.

    Shapes:
        ``forward(z: (B, latent_dim)) -> (B, *data_shape)`` in ``[-1, 1]``.
    """

    def __init__(self, latent_dim: int = LATENT_DIM, data_shape: tuple[int, ...] = DATA_SHAPE, seed: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.data_shape = tuple(data_shape)
        features = math.prod(data_shape)
        weight = torch.randn(latent_dim, features, generator=torch.Generator().manual_seed(seed)) / math.sqrt(
            latent_dim
        )
        self.register_buffer("weight", weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.weight).clamp_(-1, 1).view(z.shape[0], *self.data_shape)


def random_queries(n: int, seed: int, device: torch.device, noise: float = 0.5) -> torch.Tensor:
    """``n`` stand-in samples (fresh latents) plus uniform noise of amplitude ``noise``, in ``[-1, 1]``."""
    generator = torch.Generator().manual_seed(seed + 1)
    images = RandomImages(seed=seed)
    queries = torch.empty(n, *DATA_SHAPE)
    for start in range(0, n, 256):  # small blocks: building the queries must not set the peak memory
        rows = min(256, n - start)
        z = torch.randn(rows, LATENT_DIM, generator=generator)
        jitter = (torch.rand(rows, *DATA_SHAPE, generator=generator) * 2 - 1) * noise
        queries[start : start + rows] = (images(z) + jitter).clamp_(-1, 1)
    return queries.to(device)


def materialise(bank: Any, k: int, device: torch.device) -> torch.Tensor:
    """All k samples of the bank in one ``(k, features)`` tensor (what sklearn and cdist need)."""
    out = torch.empty(k, math.prod(DATA_SHAPE), device=device)
    for start, chunk in bank.chunks():
        out[start : start + len(chunk)] = chunk.flatten(1)
    return out


# --------------------------------------------------------------------------- one measurement
def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one method in this (fresh) process; ``spec`` holds method, n, k, chunk, threads, seed, device."""
    from sklearn.neighbors import NearestNeighbors  # loaded by every method alike, before the limits

    from benchmarks.common import limit_threads
    from ganleaks.attacks.nearest_neighbor import SampleBank, nearest_neighbors

    if spec["threads"] is not None:
        limit_threads(spec["threads"])
    device = torch.device(spec["device"])
    method, n, k, chunk = spec["method"], spec["n"], spec["k"], spec["chunk"]
    features = math.prod(DATA_SHAPE)
    queries = random_queries(n, spec["seed"], device)
    generator = RandomImages(seed=spec["seed"]).to(device)
    bank = SampleBank(generator, k, spec["seed"], chunk_size=chunk, cache_bytes=0, device=device)
    sync(device)
    rss_before = current_rss_mb()
    peak_before = peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed_queries = n
    top1: list[int] = []
    start = time.perf_counter()
    if method == "torch_mm":
        flat = queries.flatten(1)
        samples = torch.randn(chunk, features, device=device)
        out = torch.empty(n, chunk, device=device)
        for begin in range(0, k, chunk):
            width = min(chunk, k - begin)
            torch.mm(flat, samples[:width].T, out=out[:, :width])
        sync(device)
    elif method == "ours":
        neighbors = nearest_neighbors(queries, bank, top_m=TOP_M)
        sync(device)
        top1 = neighbors.indices[:100, 0].tolist()
    elif method in ("sklearn_per10", "sklearn_one_call"):
        samples = materialise(bank, k, device).cpu().numpy()
        flat = queries.flatten(1).cpu().numpy()
        index = NearestNeighbors(n_neighbors=TOP_M).fit(samples)
        if method == "sklearn_one_call":
            _, found = index.kneighbors(flat)
        else:
            # The paper's loop: 10 queries per call, on a subset, scaled to n per query below.
            timed_queries = min(n, spec["sklearn_queries"])
            found = np.concatenate([index.kneighbors(flat[i : i + 10])[1] for i in range(0, timed_queries, 10)])
        top1 = found[:100, 0].tolist()
    elif method == "torch_cdist":
        samples = materialise(bank, k, device)
        distances = torch.cdist(queries.flatten(1), samples)
        indices = distances.topk(TOP_M, dim=1, largest=False).indices
        sync(device)
        top1 = indices[:100, 0].tolist()
    else:
        raise ValueError(f"unknown method {method!r}")
    seconds = time.perf_counter() - start
    result = {
        "method": method,
        "n": n,
        "k": k,
        "chunk": chunk,
        "timed_queries": timed_queries,
        "seconds_measured": seconds,
        "seconds": seconds * n / timed_queries,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_method_mb": rss_before,
        "peak_rss_before_method_mb": peak_before,
        "top1_first100": top1,
        "threads": torch.get_num_threads(),
        "thread_pools": _thread_pools(),
    }
    if device.type == "cuda":
        result["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _thread_pools() -> list[str]:
    from threadpoolctl import threadpool_info

    return [f"{pool['internal_api']}: {pool['num_threads']}" for pool in threadpool_info()]


def flops(n: int, k: int) -> float:
    """Floating-point operations of the ``n x k`` distance matrix's product ``(n, D) @ (D, k)``."""
    return 2.0 * n * k * math.prod(DATA_SHAPE)


# --------------------------------------------------------------------------- driver
def main() -> None:
    parser = make_parser(NAME, __doc__.split("\n\n")[0])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, default=20_000, help="N queries of 3 x 64 x 64")
    parser.add_argument("--k", type=int, default=8192, help="generated samples searched")
    parser.add_argument("--chunk", type=int, default=2048, help="samples per chunk (ours, torch_mm)")
    parser.add_argument(
        "--sklearn-queries",
        type=int,
        default=500,
        help="queries timed for the paper's 10-per-call loop (scaled to --queries per query)",
    )
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats of every method")
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(measure(json.loads(args.worker))))
        return
    device, machine = setup(args)
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; choose from {METHODS}")

    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    started = time.perf_counter()
    for repeat in range(args.repeats):
        for method in methods:
            spec = {
                "method": method,
                "n": args.queries,
                "k": args.k,
                "chunk": args.chunk,
                "threads": args.threads,
                "seed": args.seed,
                "device": args.device,
                "sklearn_queries": args.sklearn_queries,
            }
            runs[method].append(run_worker(NAME, spec))
            print(
                f"repeat {repeat + 1}: {method} {runs[method][-1]['seconds']:.1f} s "
                f"(after {time.perf_counter() - started:.0f} s)",
                flush=True,
            )

    def best(method: str) -> dict[str, Any]:
        return min(runs[method], key=lambda run: run["seconds"])

    reference = best("ours")["top1_first100"] if "ours" in runs else None
    limit = flops(args.queries, args.k) / best("torch_mm")["seconds"] / 1e9 if "torch_mm" in runs else None
    paper = best("sklearn_per10")["seconds"] if "sklearn_per10" in runs else None
    rows = []
    for method in methods:
        run = best(method)
        gflops = flops(args.queries, args.k) / run["seconds"] / 1e9
        row = {
            "method": method,
            "seconds": run["seconds"],
            "timed_queries": run["timed_queries"],
            "gflop_per_s": gflops,
            "percent_of_mm": None if limit is None else 100 * gflops / limit,
            "speedup_vs_paper": None if paper is None else paper / run["seconds"],
            "peak_rss_mb": run["peak_rss_mb"],
            "rss_before_method_mb": run["rss_before_method_mb"],
            "method_added_mb": run["peak_rss_mb"] - run["rss_before_method_mb"],
            "all_seconds": [r["seconds"] for r in runs[method]],
        }
        if "cuda_peak_allocated_mb" in run:
            row["cuda_peak_allocated_mb"] = run["cuda_peak_allocated_mb"]
        if reference is not None and run["top1_first100"]:
            row["top1_agreement_with_ours"] = sum(
                a == b for a, b in zip(run["top1_first100"], reference, strict=False)
            ) / len(run["top1_first100"])
        rows.append(row)

    verdict: dict[str, Any] = {}
    if "ours" in runs:
        ours = next(row for row in rows if row["method"] == "ours")
        if paper is not None:
            verdict["speedup_vs_paper"] = ours["speedup_vs_paper"]
            verdict["paper_target_6x_met"] = ours["speedup_vs_paper"] >= 6
        if "sklearn_one_call" in runs:
            one_call = best("sklearn_one_call")["seconds"]
            verdict["speedup_vs_sklearn_one_call"] = one_call / ours["seconds"]
            verdict["never_slower_than_one_call"] = ours["seconds"] <= one_call
        if limit is not None:
            verdict["percent_of_mm"] = ours["percent_of_mm"]
            verdict["mm_target_75_percent_met"] = ours["percent_of_mm"] >= 75
    columns = [
        "method",
        "seconds",
        "timed_queries",
        "gflop_per_s",
        "percent_of_mm",
        "speedup_vs_paper",
        "peak_rss_mb",
        "rss_before_method_mb",
        "method_added_mb",
        "top1_agreement_with_ours",
    ]
    if device.type == "cuda":
        columns.append("cuda_peak_allocated_mb")
    title = (
        f"{NAME}: N={args.queries} queries x k={args.k} samples of {'x'.join(map(str, DATA_SHAPE))}, "
        f"top {TOP_M}, chunk {args.chunk}, {device}; sklearn_per10 timed on {args.sklearn_queries} queries "
        f"and scaled per query; best of {args.repeats}"
    )
    tables = [format_table(rows, columns, title), "verdict: " + json.dumps(verdict)]
    payload = {
        "data": {
            "queries": "stand-in samples of fresh latents + uniform noise, clamped to [-1, 1]",
            "samples": "clamp(z W, -1, 1), W random fixed",
            "queries_noise": 0.5,
            "shape": list(DATA_SHAPE),
            "top_m": TOP_M,
            "flops_per_search": flops(args.queries, args.k),
        },
        "rows": rows,
        "runs": runs,
        "torch_mm_gflop_per_s": limit,
        "verdict": verdict,
    }
    write_report(NAME, args, machine, payload, tables)


if __name__ == "__main__":
    main()
