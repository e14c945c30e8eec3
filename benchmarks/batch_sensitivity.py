"""How far a white-box loss (and the AUC) moves when the generator's forward rounds differently, by budget.

Each white-box query runs its own L-BFGS, so only rounding couples it to its batch: a convolution
over 1 or 16 rows may be summed in another order on another CPU or GPU, which changes the
generator's output by a few float32 ulps. While L-BFGS is still descending it can amplify such a
difference into a different path. ``batch_invariance.py`` measures the batch sizes themselves, on
the machine it runs on (where the kernels may well be batch-size invariant); this script emulates
the rounding of another machine directly: it reconstructs the same queries with the generator
``G`` and with ``G * (1 + rel)`` (``--rel``, default 1e-6, about 8 float32 ulps), from the same
nearest-neighbour start, at several L-BFGS budgets, and reports per budget the largest and the
median relative difference of the final losses, how many queries stopped on their own tolerance
before the budget, the mean loss and the time. The perturbation itself moves a converged loss by
about ``2 * rel`` relative; anything much larger is the optimiser's amplification.

Run from the repository root on a trained victim (the quickstart's: ``python train.py``)::

    python -m benchmarks.batch_sensitivity --victim outputs/train/digits/dcgan/n32/seed0 \\
        --budgets 100,300,1000,3000 --queries 16 --threads 1

Writes ``benchmarks/results/batch_sensitivity.json`` (``--out``): command, hardware, and every
query's losses and iteration counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from benchmarks.common import hardware
from ganleaks.attacks.reconstruction import LatentReconstructor
from ganleaks.data.loading import load_sample_set, recorded_data_config
from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.evaluation.metrics import membership_metrics
from ganleaks.models.export import load_generator

REPO = Path(__file__).resolve().parents[1]


class Scaled(nn.Module):
    """``G * (1 + rel)``: a generator whose outputs round differently by ``rel`` relative."""

    def __init__(self, generator: nn.Module, rel: float) -> None:
        super().__init__()
        self.generator, self.factor = generator, 1.0 + rel
        self.latent_dim, self.data_shape = generator.latent_dim, generator.data_shape

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z) * self.factor


def nearest_latents(generator: nn.Module, x: Tensor, nn_k: int, seed: int) -> Tensor:
    """The latent of each query's nearest of ``nn_k`` generated samples (the attack's ``init=nn``)."""
    bank_z = torch.randn(nn_k, int(generator.latent_dim), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        bank = generator(bank_z).flatten(1)
    return bank_z[torch.cdist(x.flatten(1), bank).argmin(1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--victim", required=True, help="a training run folder (train.py's, or a published one)")
    parser.add_argument("--budgets", default="100,300,1000,3000", help="L-BFGS iterations (setting.max_iter)")
    parser.add_argument("--queries", type=int, default=16, help="members, and as many non-members")
    parser.add_argument("--rel", type=float, default=1e-6, help="relative change of the generator's output")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="the search's precision")
    parser.add_argument("--nn-k", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/batch_sensitivity.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    run = Path(args.victim)
    manifest = json.loads((run / "manifest.json").read_text())
    generator = load_generator(run).eval().requires_grad_(False)
    recorded = recorded_data_config(run)
    if recorded is None:
        raise SystemExit(f"{run} records no data config (trained_on.json or config.yaml)")
    sample_set = load_sample_set(OmegaConf.create(recorded[0]))
    members = manifest["parts"]["members"][: args.queries]
    nonmembers = manifest["parts"]["nonmembers"][: args.queries]
    ids = torch.tensor(members + nonmembers)
    position = {int(i): n for n, i in enumerate(sample_set.ids)}
    x = sample_set.data[torch.tensor([position[int(i)] for i in ids])]
    labels = torch.cat([torch.ones(len(members)), torch.zeros(len(nonmembers))]).long()
    distance = ReconstructionDistance(l2_weight=1.0, latent_weight=0.001)  # distance=l2, the attack's default
    z0 = nearest_latents(generator, x, args.nn_k, args.seed)
    dtype = getattr(torch, args.dtype)
    generator, x, z0 = generator.to(dtype), x.to(dtype), z0.to(dtype)

    record = {"command": " ".join(["python -m benchmarks.batch_sensitivity", *sys.argv[1:]]),
              "hardware": hardware(torch.device("cpu")), "rel": args.rel, "dtype": args.dtype, "ids": ids.tolist(),
              "members": len(members), "budgets": {}}  # fmt: skip
    for budget in (int(b) for b in args.budgets.split(",")):
        results, walls = {}, {}
        for name, net in (("G", generator), ("G_perturbed", Scaled(generator, args.rel))):
            attack = LatentReconstructor(net, distance, "lbfgs", init="nn", max_iter=budget)
            start = time.perf_counter()
            results[name] = attack.reconstruct(x, ids, args.seed, init_z=z0)
            walls[name] = time.perf_counter() - start
        a, b = results["G"].loss, results["G_perturbed"].loss
        relative = ((a - b).abs() / torch.minimum(a, b)).sort().values
        stopped = int((results["G"].n_iter < budget).sum())
        auc = {name: membership_metrics(-result.loss.double(), labels, n_resamples=200)["auc"]
               for name, result in results.items()}  # fmt: skip
        summary = {
            "max_relative_difference": float(relative[-1]),
            "median_relative_difference": float(relative[len(relative) // 2]),
            "stopped_before_budget": stopped,
            "mean_loss_members": float(a[: len(members)].mean()),
            "mean_loss_nonmembers": float(a[len(members) :].mean()),
            "auc": auc["G"],
            "auc_perturbed": auc["G_perturbed"],
            "wall_s": round(walls["G"], 1),
        }
        record["budgets"][budget] = {
            "summary": summary,
            "loss": a.tolist(),
            "loss_perturbed": b.tolist(),
            "n_iter": results["G"].n_iter.tolist(),
        }
        print(
            f"max_iter={budget:5d}: a {args.rel:g} change of G's output moves the loss by max "
            f"{summary['max_relative_difference']:.1e}, median {summary['median_relative_difference']:.1e} "
            f"(relative); {stopped}/{len(ids)} stopped before the budget; mean loss members "
            f"{summary['mean_loss_members']:.5f} non-members {summary['mean_loss_nonmembers']:.5f}; "
            f"AUC {auc['G']:.4f} -> {auc['G_perturbed']:.4f}; "
            f"{summary['wall_s']} s",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()


# The recorded runs docs/ATTACKS.md quotes ("Batch size, rounding and the white-box loss"), with what each is.
RECORDED = {
    "batch_sensitivity_quickstart.json": (
        "quickstart victim (digits 16x16, 32 members, DCGAN width 64), 32 + 32 queries"
    ),
    "batch_sensitivity_quickstart_float64.json": "the same victim in float64, 8 + 8 queries",
    "batch_sensitivity_fashion_dcgan_n256.json": (
        "cpu_size DCGAN n = 256 (Fashion-MNIST 32x32, width 16), 256 + 256 queries"
    ),
}


def markdown_table(folder: Path = REPO / "benchmarks/results") -> str:
    """The table of docs/ATTACKS.md, from the recorded JSON files (``tests/test_benchmarks.py`` checks the doc)."""
    lines = [
        "| victim, queries | max_iter | stopped before the budget | loss moved: median | max "
        "| mean loss members / non-members | AUC: G | G changed | wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, what in RECORDED.items():
        record = json.loads((folder / name).read_text())
        for budget, entry in record["budgets"].items():
            s, n = entry["summary"], len(entry["loss"])
            auc = f"{s['auc']:.4f} | {s['auc_perturbed']:.4f}" if "auc" in s else "n/a | n/a"
            lines.append(
                f"| {what} (change {record['rel']:g}) | {budget} | {s['stopped_before_budget']}/{n} | "
                f"{s['median_relative_difference']:.1e} | {s['max_relative_difference']:.1e} | "
                f"{s['mean_loss_members']:.5f} / {s['mean_loss_nonmembers']:.5f} | {auc} | {s['wall_s']} s |"
            )
    return "\n".join(lines)
