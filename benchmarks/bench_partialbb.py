"""Partial black-box benchmark: our batched per-query Powell against ``scipy.optimize.minimize(method="Powell")``
one query at a time (the paper's way), forward passes only, on the same generator, queries,
distance (L2 + 0.001 x latent prior, optionally + 0.2 x LPIPS), starting latents and iteration
cap (``--ours-max-iter`` sets ours apart). Reports queries per second, generator evaluations
per query, and the distribution of the final losses.

Quick run::

    python -m benchmarks.bench_partialbb --threads 1 --batch-sizes 1,16 --scipy-queries 2 --rounds 2 --max-iter 2

Default run (about 7 minutes on a 2-core CPU) and on a CUDA device::

    python -m benchmarks.bench_partialbb --threads 1
    python -m benchmarks.bench_partialbb --device cuda
"""

from __future__ import annotations

from benchmarks.latent_search import run

if __name__ == "__main__":
    run(
        "bench_partialbb",
        "powell",
        __doc__.split("\n\n")[0],
        {"max_iter": 10, "batch_sizes": "1,16,64,256", "scipy_queries": 24, "rounds": 3, "batch1_queries": 6},
    )
