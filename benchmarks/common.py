"""What every benchmark shares: arguments, the hardware record, the victim generator, the
queries, timing, peak memory, and the table + JSON output.

The victim is the default DCGAN of ``conf/model/dcgan.yaml`` on the default 32x32 digits
(``conf/data/digits.yaml``), built by the same code as ``train.py`` (``build_victim``), either
at its random initialisation or briefly trained by a plain PyTorch loop (cached under
``benchmarks/results/cache/``, keyed by the number of batches and the seed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CACHE = RESULTS / "cache"
CONF = ROOT / "conf"


# --------------------------------------------------------------------------- arguments, setup
def make_parser(name: str, description: str) -> argparse.ArgumentParser:
    """A parser with the flags every benchmark takes (``--device``, ``--out``, ``--threads``, ``--seed``)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{name}",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="where the JSON goes")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads for every method (default: torch's default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def limit_threads(threads: int) -> None:
    """Use ``threads`` threads in torch AND in every BLAS / OpenMP pool loaded so far (numpy's and
    scipy's OpenBLAS, scikit-learn's OpenMP): scipy's L-BFGS-B calls BLAS on tiny vectors, and with
    a second thread on a busy machine each of its calls costs milliseconds instead of microseconds.
    Call it after the imports that load those libraries."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def setup(args: argparse.Namespace) -> tuple[torch.device, dict[str, Any]]:
    """Apply ``--threads`` and ``--seed``; return the device (refusing ``cuda`` where there is none)
    and the hardware record taken now (see :func:`hardware`)."""
    if args.threads is not None:
        limit_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch on this machine")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    return device, hardware(device)


def command_line(name: str) -> str:
    return " ".join([f"python -m benchmarks.{name}", shlex.join(sys.argv[1:])]).rstrip()


def hardware(device: torch.device) -> dict[str, Any]:
    """The machine as the docs report it: CPU model, cores, threads, torch, load at the start."""
    model = platform.processor() or "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    from threadpoolctl import threadpool_info

    info: dict[str, Any] = {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "other_thread_pools": [
            f"{pool['internal_api']} {Path(pool['filepath']).name}: {pool['num_threads']}" for pool in threadpool_info()
        ],
        "python": platform.python_version(),
        "device": str(device),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


# --------------------------------------------------------------------------- victim and queries
# The workload every figure in docs/BENCHMARKS.md was measured on: the defaults of that time (32x32
# digits, 256 members in batches of 64, DCGAN widths 16), pinned so the recorded commands still run
# the same work now that the quickstart defaults are a smaller, memorising victim.
BENCHMARK_WORKLOAD = (
    "data.source.resolution=32",
    "data.train_size=256",
    "data.batch_size=64",
    "model.nets.image.generator.base_channels=16",
    "model.nets.image.discriminator.base_channels=16",
)


def compose_train_config(overrides: Sequence[str] = ()) -> Any:
    """The composed ``train.yaml`` config (without its ``hydra`` node) on the benchmark workload."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name="train", overrides=[*BENCHMARK_WORKLOAD, *overrides], return_hydra_config=True)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def build_module(cfg: Any, data_shape: tuple[int, ...] = (1, 32, 32)) -> Any:
    """The Lightning victim module (DCGAN by default) with its nets, exactly as ``train.py`` builds it."""
    from ganleaks.models.training import build_victim

    return build_victim(cfg.model, data_shape, "image")


def load_queries(n: int, offset: int = 0, resolution: int = 32) -> torch.Tensor:
    """``n`` real digits ``(n, 1, resolution, resolution)`` in ``[-1, 1]`` (ids ``offset .. offset + n - 1``)."""
    from ganleaks.data.sources import load_digits

    data = load_digits(resolution).data
    if offset + n > len(data):
        raise SystemExit(f"only {len(data)} digits are available, asked for {offset + n}")
    return data[offset : offset + n].clone()


def plain_dcgan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    g_opt: torch.optim.Optimizer,
    d_opt: torch.optim.Optimizer,
    real: torch.Tensor,
    latent_dim: int,
) -> None:
    """One DCGAN iteration (D step, then G step) written as a careful plain-PyTorch user would.

    The same computation as :meth:`ganleaks.models.modules.dcgan.DCGANModule.train_batch`: the
    network not being stepped is frozen (Lightning's ``toggle_optimizer``), so no gradients are
    computed for it; the fake batch of the D step is built without a graph through G.
    """
    from ganleaks.models.losses import discriminator_bce_loss, generator_nonsaturating_loss

    batch = real.shape[0]
    generator.requires_grad_(False)
    d_opt.zero_grad()
    fake = generator(torch.randn(batch, latent_dim, device=real.device)).detach()
    d_loss = discriminator_bce_loss(discriminator(real), discriminator(fake))
    d_loss.backward()
    d_opt.step()
    generator.requires_grad_(True)

    discriminator.requires_grad_(False)
    g_opt.zero_grad()
    g_loss = generator_nonsaturating_loss(discriminator(generator(torch.randn(batch, latent_dim, device=real.device))))
    g_loss.backward()
    g_opt.step()
    discriminator.requires_grad_(True)


def victim_generator(
    kind: str, device: torch.device, train_batches: int = 600, seed: int = 0
) -> tuple[nn.Module, dict]:
    """The default DCGAN generator (32x32 digits), frozen in eval mode, and a description of it.

    Args:
        kind: ``"random"`` (DCGAN initialisation) or ``"trained"`` (``train_batches`` batches of the
            default digits members by :func:`plain_dcgan_step`, cached).
    """
    from safetensors.torch import load_file, save_file

    cfg = compose_train_config([f"seed={seed}"])
    torch.manual_seed(seed)
    module = build_module(cfg)
    generator = module.generator
    description = {
        "class": type(generator).__name__,
        "kwargs": dict(generator.kwargs),
        "init": kind,
        "parameters": sum(p.numel() for p in generator.parameters()),
    }
    if kind == "trained":
        cache = CACHE / f"dcgan_digits32_batches{train_batches}_seed{seed}.safetensors"
        if cache.is_file():
            generator.load_state_dict(load_file(str(cache)))
        else:
            from ganleaks.data.sources import load_digits
            from ganleaks.data.split import make_split
            from ganleaks.data.training_set import TrainingSet

            data = load_digits(32)
            split = make_split(data, cfg.data.train_size, cfg.data.nonmember_size, cfg.data.reference_size, seed)
            loader = TrainingSet(data, split, batch_size=cfg.data.batch_size, seed=seed).train_dataloader()
            module.to(device).train()
            g_opt, d_opt = module.build_optimizer("generator"), module.build_optimizer("discriminator")
            done = 0
            started = time.perf_counter()
            while done < train_batches:
                for real, _ids in loader:
                    plain_dcgan_step(
                        generator, module.discriminator, g_opt, d_opt, real.to(device), generator.latent_dim
                    )
                    done += 1
                    if done == train_batches:
                        break
            print(
                f"trained the victim generator for {train_batches} batches in "
                f"{time.perf_counter() - started:.0f} s; cached at {cache}",
                file=sys.stderr,
            )
            CACHE.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}, str(cache))
        description["trained_batches"] = train_batches
        description["trained_on"] = f"default digits members (train_size={cfg.data.train_size}, seed={seed})"
    return generator.to(device).eval().requires_grad_(False), description


# --------------------------------------------------------------------------- timing and memory
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(device: torch.device, into: list[float]) -> Iterator[None]:
    """Append the wall-clock seconds of the block (device synchronised on both ends) to ``into``."""
    sync(device)
    start = time.perf_counter()
    yield
    sync(device)
    into.append(time.perf_counter() - start)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux ``/proc/self/statm``; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_worker(module: str, spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> --worker '<spec json>'`` in a fresh process; return its JSON.

    A fresh process per measurement makes ``ru_maxrss`` the peak of that measurement alone.
    """
    env = dict(os.environ)
    if spec.get("threads") is not None:  # every pool of the fresh process, from its start
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[variable] = str(spec["threads"])
    completed = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
        env=env,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {module} {spec} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def quantiles(values: torch.Tensor | Sequence[float]) -> dict[str, float]:
    """Median and quartiles (and the extremes) of a set of losses, NaNs dropped."""
    tensor = torch.as_tensor(values, dtype=torch.float64).flatten()
    tensor = tensor[~torch.isnan(tensor)]
    q = torch.quantile(tensor, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)).tolist()
    return {"min": q[0], "q1": q[1], "median": q[2], "q3": q[3], "max": q[4], "n": len(tensor)}


# --------------------------------------------------------------------------- output
def format_table(rows: list[dict[str, Any]], columns: Sequence[str], title: str = "") -> str:
    """A plain fixed-width table of ``rows`` (dicts) restricted to ``columns``."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value != value:
                return "nan"
            if value == 0 or 1e-3 <= abs(value) < 1e6:
                return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
            return f"{value:.3e}"
        return str(value)

    body = [[cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in body)]) for i, column in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(column.rjust(width) for column, width in zip(columns, widths, strict=False)))
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(value.rjust(width) for value, width in zip(line, widths, strict=False)) for line in body]
    return "\n".join(lines)


def write_report(
    name: str, args: argparse.Namespace, machine: dict[str, Any], payload: dict[str, Any], tables: list[str]
) -> None:
    """Print the tables and write ``{command, hardware, arguments, **payload, tables}`` to ``args.out``."""
    report = {
        "benchmark": name,
        "command": command_line(name),
        "hardware": dict(machine),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **payload,
        "tables": tables,
    }
    report["hardware"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    for table in tables:
        print(table, end="\n\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
