"""Training benchmark: a DCGAN training step of our Lightning module through ``pl.Trainer`` against
the same step in a plain PyTorch loop (same nets, initialisation, optimisers, DataLoader and
batch), reported as Lightning's overhead in percent of the plain step.

Two Lightning set-ups are timed: ``lightning_bare`` (no logger, no checkpoints, no progress bar,
no sample grids: the cost of the Trainer loop, ``toggle_optimizer``, ``manual_backward`` and
``log_dict`` alone) and ``lightning_train_py`` (the Trainer exactly as ``train.py`` builds it:
``build_trainer`` with the CSV logger and the ``last.ckpt`` callback, sample grids every
``sample_every_n_steps``). A step is the wall time from one batch's start to the next's, so data
loading and epoch boundaries count, on both sides; the first ``--warmup`` batches are skipped.
Runs are interleaved (plain, bare, train.py) ``--repeats`` times.

Quick run::

    python -m benchmarks.bench_training --threads 1 --steps 20 --repeats 1

Default run (about 2 minutes on a 2-core CPU) and on a CUDA device::

    python -m benchmarks.bench_training --threads 1
    python -m benchmarks.bench_training --device cuda
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from benchmarks.common import (
    build_module,
    compose_train_config,
    format_table,
    make_parser,
    plain_dcgan_step,
    setup,
    sync,
    write_report,
)

NAME = "bench_training"
VARIANTS = ("plain", "lightning_bare", "lightning_train_py")


class BatchStartTimes(pl.Callback):
    """Wall-clock time at the start of every training batch (device synchronised)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[float] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        sync(self.device)
        self.times.append(time.perf_counter())


def datamodule(cfg: Any) -> Any:
    from ganleaks.data.sources import load_digits
    from ganleaks.data.split import make_split
    from ganleaks.data.training_set import TrainingSet

    data = load_digits(int(cfg.data.source.resolution))
    split = make_split(data, cfg.data.train_size, cfg.data.nonmember_size, cfg.data.reference_size, cfg.seed)
    return TrainingSet(data, split, batch_size=cfg.data.batch_size, seed=cfg.seed)


def run_plain(cfg: Any, device: torch.device, batches: int) -> list[float]:
    """Batch start times of ``batches`` plain-PyTorch DCGAN iterations (plus one to close the last)."""
    torch.manual_seed(cfg.seed)
    module = build_module(cfg).to(device).train()
    generator, discriminator = module.generator, module.discriminator
    g_opt, d_opt = module.build_optimizer("generator"), module.build_optimizer("discriminator")
    loader = datamodule(cfg).train_dataloader()
    times: list[float] = []
    while len(times) <= batches:
        for real, _ids in loader:
            real = real.to(device, non_blocking=True)
            sync(device)
            times.append(time.perf_counter())
            if len(times) > batches:
                break
            plain_dcgan_step(generator, discriminator, g_opt, d_opt, real, generator.latent_dim)
    return times


def run_lightning(cfg: Any, device: torch.device, batches: int, as_train_py: bool) -> tuple[list[float], float]:
    """Batch start times through ``trainer.fit`` and the whole ``fit`` wall time."""
    from ganleaks.loggers import build_loggers
    from ganleaks.models.training import build_trainer

    torch.manual_seed(cfg.seed)
    module = build_module(cfg)
    timer = BatchStartTimes(device)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    # One D and one G optimiser step per batch; +1 batch closes the last timed interval.
    max_steps = 2 * (batches + 1)
    with tempfile.TemporaryDirectory() as run_dir:
        if as_train_py:
            cfg.trainer.max_steps = max_steps
            cfg.trainer.accelerator = accelerator
            trainer = build_trainer(cfg, Path(run_dir), build_loggers(cfg.get("logger"), Path(run_dir)))
            trainer.callbacks.append(timer)
        else:
            module.sample_every_n_steps = 0
            trainer = pl.Trainer(
                accelerator=accelerator,
                devices=1,
                max_steps=max_steps,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                callbacks=[timer],
                default_root_dir=run_dir,
            )
        start = time.perf_counter()
        trainer.fit(module, train_dataloaders=datamodule(cfg).train_dataloader())
        sync(device)
        fit_seconds = time.perf_counter() - start
    return timer.times, fit_seconds


def main() -> None:
    parser = make_parser(NAME, __doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches first")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the three variants")
    parser.add_argument("--train-size", type=int, default=None, help="members (default: the digits config, 256)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch (default: the digits config, 64)")
    args = parser.parse_args()
    device, machine = setup(args)
    overrides = [f"seed={args.seed}"]
    if args.train_size is not None:
        overrides.append(f"data.train_size={args.train_size}")
    if args.batch_size is not None:
        overrides.append(f"data.batch_size={args.batch_size}")
    import logging

    for noisy in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    batches = args.warmup + args.steps
    intervals: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    fit_seconds: dict[str, list[float]] = {v: [] for v in VARIANTS if v != "plain"}
    started = time.perf_counter()
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            cfg = compose_train_config(overrides)
            if variant == "plain":
                times = run_plain(cfg, device, batches)
            else:
                times, seconds = run_lightning(cfg, device, batches, as_train_py=variant == "lightning_train_py")
                fit_seconds[variant].append(seconds)
            steady = times[args.warmup : batches + 1]
            intervals[variant].append([b - a for a, b in zip(steady[:-1], steady[1:], strict=False)])
            print(
                f"repeat {repeat + 1}: {variant} {1000 * statistics.fmean(intervals[variant][-1]):.1f} ms/step "
                f"(after {time.perf_counter() - started:.0f} s)",
                flush=True,
            )

    cfg = compose_train_config(overrides)
    plain_mean = statistics.fmean([x for run in intervals["plain"] for x in run])
    rows = []
    for variant in VARIANTS:
        flat = [x for run in intervals[variant] for x in run]
        mean = statistics.fmean(flat)
        per_repeat = [
            100 * (statistics.fmean(mine) / statistics.fmean(plain) - 1)
            for mine, plain in zip(intervals[variant], intervals["plain"], strict=False)
        ]
        rows.append(
            {
                "variant": variant,
                "steps": len(flat),
                "mean_ms": 1000 * mean,
                "median_ms": 1000 * statistics.median(flat),
                "overhead_percent": 100 * (mean / plain_mean - 1),
                "overhead_percent_min": min(per_repeat),
                "overhead_percent_max": max(per_repeat),
                "median_overhead_percent": 100
                * (statistics.median(flat) / statistics.median([x for r in intervals["plain"] for x in r]) - 1),
                "fit_seconds": statistics.fmean(fit_seconds[variant]) if variant in fit_seconds else None,
            }
        )
    bare = next(row for row in rows if row["variant"] == "lightning_bare")
    as_train = next(row for row in rows if row["variant"] == "lightning_train_py")
    verdict = {
        "target_percent": 10.0,
        "bare_overhead_percent": bare["overhead_percent"],
        "train_py_overhead_percent": as_train["overhead_percent"],
        "met": bare["overhead_percent"] <= 10.0 and as_train["overhead_percent"] <= 10.0,
    }
    columns = [
        "variant",
        "steps",
        "mean_ms",
        "median_ms",
        "overhead_percent",
        "overhead_percent_min",
        "overhead_percent_max",
        "median_overhead_percent",
        "fit_seconds",
    ]
    title = (
        f"{NAME}: DCGAN step (D + G), batch {cfg.data.batch_size}, {cfg.data.train_size} members "
        f"({cfg.data.train_size // cfg.data.batch_size} batches/epoch), {device}"
    )
    tables = [format_table(rows, columns, title), "verdict: " + str(verdict)]
    payload = {
        "model": {
            "generator": dict(build_module(cfg).generator.kwargs),
            "discriminator": dict(build_module(cfg).discriminator.kwargs),
            "batch_size": cfg.data.batch_size,
            "train_size": cfg.data.train_size,
        },
        "rows": rows,
        "verdict": verdict,
        "intervals_ms": {v: [[1000 * x for x in run] for run in runs] for v, runs in intervals.items()},
    }
    write_report(NAME, args, machine, payload, tables)


if __name__ == "__main__":
    main()
