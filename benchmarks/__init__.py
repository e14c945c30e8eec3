"""Speed and memory benchmarks, run by hand (``python -m benchmarks.bench_<name>``), never by pytest."""
