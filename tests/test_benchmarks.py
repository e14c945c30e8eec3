"""The hand-run benchmarks still run, at toy sizes, and what they compare is comparable.

No timing is asserted here (speed targets live in ``docs/BENCHMARKS.md``, measured by hand). What
is asserted is what makes a benchmark's ratio meaningful: both sides solve the same queries, our
batched optimisers give a query the same result alone as in a batch, every nearest-neighbour
method finds the same neighbours, and the JSON carries the command and the machine.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, out: Path, *args: str, timeout: float = 300) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", f"benchmarks.{name}", "--threads", "1", "--out", str(out), *args]
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == name
    assert report["command"].startswith(f"python -m benchmarks.{name}")
    assert report["hardware"]["torch_threads"] == 1
    assert report["tables"], "a benchmark prints and records its tables"
    return report


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("bench_whitebox", ["--max-iter", "4"]),
        ("bench_partialbb", ["--max-iter", "1"]),
    ],
)
def test_latent_search_benchmark_compares_like_with_like(tmp_path, name, extra):
    report = run_benchmark(
        name,
        tmp_path / f"{name}.json",
        "--generator",
        "random",
        "--batch-sizes",
        "1,4",
        "--scipy-queries",
        "2",
        "--batch1-queries",
        "2",
        "--rounds",
        "1",
        *extra,
    )
    speed = {row["method"]: row for row in report["speed"]}
    assert set(speed) == {"scipy", "ours_b1", "ours_b4"}
    assert speed["scipy"]["queries_timed"] == 2 and speed["ours_b1"]["queries_timed"] == 2
    assert speed["ours_b4"]["queries_timed"] == 4
    for row in speed.values():
        assert row["queries_per_s"] > 0 and row["generator_rows_per_query"] > 0
    assert speed["scipy"]["speedup_vs_scipy"] == pytest.approx(1.0)
    # Batch 4 solved scipy's two queries too, from the same starting points.
    comparison = report["comparison"]
    assert comparison["ours_batch"] == 4 and comparison["queries"] == 2
    assert len(report["scipy_per_query"]) == 2 and len(report["ours_per_query"]["objective"]) == 4
    # A query reaches the same point alone (batch 1) as in a batch of 4 (the SPEC's batch invariance).
    assert comparison["batch1_vs_batch_max_relative_objective_difference"] < 1e-4
    assert all(math.isfinite(value) for value in report["ours_per_query"]["objective"])
    assert isinstance(report["verdict"]["met"], bool)


def test_fullbb_benchmark_methods_find_the_same_neighbours(tmp_path):
    report = run_benchmark(
        "bench_fullbb",
        tmp_path / "fullbb.json",
        "--queries",
        "120",
        "--k",
        "300",
        "--chunk",
        "128",
        "--sklearn-queries",
        "20",
    )
    rows = {row["method"]: row for row in report["rows"]}
    assert set(rows) == {"torch_mm", "ours", "sklearn_per10", "sklearn_one_call", "torch_cdist"}
    for method in ("ours", "sklearn_per10", "sklearn_one_call", "torch_cdist"):
        assert rows[method]["top1_agreement_with_ours"] == 1.0, method
    assert rows["sklearn_per10"]["timed_queries"] == 20 and rows["ours"]["timed_queries"] == 120
    assert rows["ours"]["percent_of_mm"] > 0 and rows["ours"]["peak_rss_mb"] > 0
    assert set(report["verdict"]) >= {"speedup_vs_paper", "never_slower_than_one_call", "percent_of_mm"}


def test_scaling_benchmark_fits_time_and_memory_against_k(tmp_path):
    # No N sweep (``--n-values ""``), as for a single full-size point: the tables must still print.
    report = run_benchmark(
        "bench_scaling",
        tmp_path / "scaling.json",
        "--n-values",
        "",
        "--k-values",
        "128,256",
        "--k-fixed-n",
        "100",
        "--baseline-k-values",
        "128",
        "--chunk",
        "64",
        "--extrapolate-k",
        "1000",
    )
    assert report["against_n"] == []
    assert "--n-values ''" in report["command"], "the recorded command must re-run as given"
    assert [row["k"] for row in report["against_k"]] == [128, 256]
    assert {row["method"] for row in report["baselines_against_k"]} == {"sklearn_one_call", "torch_cdist"}
    extrapolation = report["extrapolation"]
    assert extrapolation["k"] == 1000 and extrapolation["n"] == 100
    assert extrapolation["measured_peak_mb_max"] == max(row["peak_rss_mb"] for row in report["against_k"])


def test_training_benchmark_times_the_same_step_three_ways(tmp_path):
    report = run_benchmark(
        "bench_training",
        tmp_path / "training.json",
        "--steps",
        "4",
        "--warmup",
        "2",
        "--repeats",
        "1",
        "--train-size",
        "32",
        "--batch-size",
        "16",
    )
    rows = {row["variant"]: row for row in report["rows"]}
    assert set(rows) == {"plain", "lightning_bare", "lightning_train_py"}
    assert all(row["steps"] == 4 for row in rows.values())
    assert rows["plain"]["overhead_percent"] == 0
    assert all(math.isfinite(row["overhead_percent"]) for row in rows.values())
    assert report["model"]["batch_size"] == 16 and report["model"]["train_size"] == 32


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_benchmark_without_a_device_says_so(tmp_path):
    out = tmp_path / "never.json"
    command = [sys.executable, "-m", "benchmarks.bench_fullbb", "--device", "cuda", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode != 0
    assert "no CUDA device is visible" in completed.stderr
    assert not out.exists()


def test_rounding_table_in_attacks_doc_is_the_recorded_one():
    """docs/ATTACKS.md's table of how rounding moves white-box losses is generated from the committed
    benchmarks/results/batch_sensitivity_*.json (benchmarks.batch_sensitivity.markdown_table)."""
    from benchmarks.batch_sensitivity import markdown_table

    table = markdown_table()
    assert table.count("\n") >= 5
    assert table in (ROOT / "docs" / "ATTACKS.md").read_text(encoding="utf-8")


def test_batch_sensitivity_runs_and_records_the_losses(trained_root, tmp_path):
    """The rounding benchmark at toy size: both generators from the same start, every loss recorded."""
    victim = trained_root / "train/digits/dcgan/n24/seed0"
    out = tmp_path / "sensitivity.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "benchmarks.batch_sensitivity", "--victim", str(victim), "--budgets", "3",
               "--queries", "4", "--nn-k", "64", "--out", str(out)]  # fmt: skip
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = json.loads(out.read_text())
    entry = record["budgets"]["3"]
    assert len(entry["loss"]) == len(entry["loss_perturbed"]) == 8 and record["rel"] == 1e-6
    assert all(n <= 3 for n in entry["n_iter"]) and record["command"].startswith("python -m benchmarks")
