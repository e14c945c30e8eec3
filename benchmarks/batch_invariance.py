"""How much a white-box loss moves with the queries that share its batch, against the L-BFGS budget.

Every white-box query runs its own L-BFGS (``ganleaks/optimizers/lbfgs.py``): nothing is shared
between the queries of a batch. What still differs between batch sizes is the rounding of the
generator's forward pass (a convolution over 1 or 16 rows may be computed in another order), and
L-BFGS amplifies a difference of 1e-7 while it is still descending. This script attacks the same
queries of one victim with ``attack.batch_size`` = 1, 8 and 16 at several iteration budgets
(``setting.max_iter``) through ``attack.py`` itself, and reports, per budget: the largest relative
difference of a query's loss between batch sizes, its median, the AUC at each batch size, and the
wall time.

Run from the repository root, on a trained victim (e.g. the quickstart's, ``python train.py``)::

    python -m benchmarks.batch_invariance --victim outputs/train/digits/dcgan/n32/seed0 \\
        --max-iter 100,300,1000 --batch-sizes 1,8,16 --num-queries 8 --threads 1

It writes ``benchmarks/results/batch_invariance.json`` (``--out``): the command, the hardware, and
every query's loss at every budget and batch size.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import hardware

REPO = Path(__file__).resolve().parents[1]


def attack(victim: str, out: Path, batch_size: int, max_iter: int, num_queries: int, extra: list[str], threads: int):
    """One ``attack.py setting=whitebox`` run: the losses by id, the AUC and the wall time."""
    command = [
        sys.executable, str(REPO / "attack.py"), "setting=whitebox", "calibration=none", f"victim.run_dir={victim}",
        f"attack.num_queries={num_queries}", f"attack.batch_size={batch_size}", f"setting.max_iter={max_iter}",
        "attack.save_reconstructions=0", f"hydra.run.dir={out}", "logger=[]", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"attack failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    with open(out / "scores.csv") as handle:
        losses = {row["id"]: float(row["victim_loss"]) for row in csv.DictReader(handle)}
    auc = json.loads((out / "metrics.json").read_text())["auc"]
    return losses, auc, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--victim", required=True, help="a training run folder (victim.run_dir)")
    parser.add_argument("--max-iter", default="100,300,1000", help="L-BFGS iteration budgets (setting.max_iter)")
    parser.add_argument("--batch-sizes", default="1,8,16")
    parser.add_argument("--num-queries", type=int, default=8, help="members (and as many non-members) attacked")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extra", nargs="*", default=[], help="further attack.py overrides, e.g. distance=paper")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/batch_invariance.json"))
    args = parser.parse_args()
    budgets = [int(value) for value in args.max_iter.split(",")]
    sizes = [int(value) for value in args.batch_sizes.split(",")]
    record = {"command": " ".join(sys.argv), "hardware": hardware(torch.device("cpu")), "budgets": {}}
    with tempfile.TemporaryDirectory(prefix="ganleaks-batch-invariance-") as scratch:
        for budget in budgets:
            runs = {}
            for size in sizes:
                losses, auc, wall = attack(
                    args.victim, Path(scratch) / f"it{budget}-b{size}", size, budget, args.num_queries, args.extra,
                    args.threads,
                )  # fmt: skip
                runs[size] = {"losses": losses, "auc": auc, "wall_s": round(wall, 1)}
            ids = sorted(runs[sizes[0]]["losses"])
            spread = []
            for sample_id in ids:
                values = [runs[size]["losses"][sample_id] for size in sizes]
                spread.append((max(values) - min(values)) / min(values))
            spread.sort()
            summary = {
                "max_relative_difference": spread[-1],
                "median_relative_difference": spread[len(spread) // 2],
                "auc": {size: runs[size]["auc"] for size in sizes},
                "wall_s": {size: runs[size]["wall_s"] for size in sizes},
                "mean_loss": sum(runs[sizes[0]]["losses"].values()) / len(ids),
            }
            record["budgets"][budget] = {"summary": summary, "runs": runs}
            print(
                f"max_iter={budget:5d}: loss moves with the batch by max {summary['max_relative_difference']:.2e}, "
                f"median {summary['median_relative_difference']:.2e} (relative); mean loss {summary['mean_loss']:.5f}; "
                f"AUC {summary['auc']}; wall {summary['wall_s']} s",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
