"""White-box benchmark: our batched per-query L-BFGS against ``scipy.optimize.minimize(method="L-BFGS-B")``
one query at a time (the paper's way: objective and gradient from torch at batch 1), on the same
generator, queries, distance (L2 + 0.001 x latent prior, optionally + 0.2 x LPIPS), starting
latents and iteration cap. Reports queries per second, generator evaluations per query, and the
distribution of the final losses.

Quick run::

    python -m benchmarks.bench_whitebox --threads 1 --batch-sizes 1,16 --scipy-queries 4 --rounds 2 --max-iter 20

Default run (about 4 minutes on a 2-core CPU) and on a CUDA device::

    python -m benchmarks.bench_whitebox --threads 1
    python -m benchmarks.bench_whitebox --device cuda
"""

from __future__ import annotations

from benchmarks.latent_search import run

if __name__ == "__main__":
    run(
        "bench_whitebox",
        "lbfgs",
        __doc__.split("\n\n")[0],
        {"max_iter": 100, "batch_sizes": "1,16,64,256", "scipy_queries": 256, "rounds": 8},
    )
