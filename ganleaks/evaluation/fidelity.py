"""The fidelity choices of the CPU studies, measured: each against the paper's (or its authors' code's) choice,
on the same victims and queries.

* **distance**: the studies' ``distance=l2`` (L2 + latent prior) against ``distance=paper`` (L2 + 0.2 LPIPS-VGG
  + prior), for the white-box attack, uncalibrated and calibrated;
* **white-box budget and start**: L-BFGS for 30, 100, 300 and 1,000 iterations from the nearest of 2,048
  samples (``init=nn``, the studies' default: 100) and from ``z = 0`` (the authors' code starts from zero with
  a budget of 1,000 evaluations): the AUC and the mean reconstruction loss of members and non-members, so the
  loss against the budget; and calibrated, 1,000 iterations from zero on the victim and the reference;
* **calibration of the black-box settings**: the reference losses from the white-box optimiser on the reference
  model (the studies' default, as the paper's text says) against the attack's own engine on it
  (``calibration.reference_attack=setting``).

Every comparison is a paired AUC difference on the same queries (the variant minus the studies' default) with its
95% bootstrap interval.

    python -m ganleaks.evaluation.fidelity results/cpu_fidelity results/cpu_size \\
        --out results/cpu_fidelity/report --doc docs/RESULTS.md
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ganleaks.evaluation.claims import paired_difference, read_scores, verdict
from ganleaks.evaluation.estimates import format_estimate
from ganleaks.evaluation.runs import gather

BLOCK = "fidelity"
DEFAULT_INIT, DEFAULT_ITER = "nn", 100


def _config(run_dir: str | Path, key: str, default=None):
    for name in (".hydra/config.yaml", "config.yaml"):
        path = Path(run_dir) / name
        if path.is_file():
            value = OmegaConf.select(OmegaConf.load(path), key, default=default)
            return default if value is None else value
    return default


def describe(row: dict) -> dict:
    """The row with the choices this module compares: ``init``, ``max_iter`` (white-box; the calibration's
    reconstruction of the reference too), ``reference_attack`` (calibrated runs)."""
    run = row["run_dir"]
    calibrated = row.get("calibration") not in (None, "none")
    return {
        **row,
        "calibrated": calibrated,
        "init": _config(run, "setting.init") if row["setting"] == "whitebox" else None,
        "max_iter": _config(run, "setting.max_iter") if row["setting"] == "whitebox" else None,
        "reference_attack": _config(run, "calibration.reference_attack", "whitebox") if calibrated else None,
        "reference_init": _config(run, "calibration.reference_setting.init") if calibrated else None,
        "reference_max_iter": _config(run, "calibration.reference_setting.max_iter") if calibrated else None,
    }


def _mean_losses(run_dir: str | Path) -> tuple[float, float]:
    """Mean victim loss of the members and of the non-members (``scores.csv``)."""
    members: list[float] = []
    others: list[float] = []
    with (Path(run_dir) / "scores.csv").open() as handle:
        for line in csv.DictReader(handle):
            try:
                value = float(line["victim_loss"])
            except (KeyError, TypeError, ValueError):
                continue
            (members if line["member"] == "1" else others).append(value)
    return float(np.mean(members)), float(np.mean(others))


def _is_default(row: dict) -> bool:
    """A run of the studies' defaults: its folder is ``<calibration>-l2`` with no swept key in its name (a
    rerun of the defaults under a swept name, ``none-l2-setting.init=nn,setting.max_iter=100``, is a variant
    whose difference from the default shows the reruns agree)."""
    calibration = "none" if not row["calibrated"] else str(row.get("calibration"))
    return Path(row["run_dir"]).name == f"{calibration}-l2"


def _victim(row: dict) -> tuple:
    return (row["model"], int(row["train_size"]), int(row.get("seed") or 0))


def _wall(row: dict) -> str:
    """The attack run's own time (``wall_seconds`` of its ``metrics.json``, without the job's start-up)."""
    value = row.get("wall_seconds")
    return "n/a" if value is None else f"{float(value):.0f}"


def _auc(row: dict) -> str:
    return format_estimate(row, "auc", 3, with_interval=True)


def _paired(variant: dict, default: dict) -> str:
    result = paired_difference(read_scores(variant["run_dir"]), read_scores(default["run_dir"]))
    if result is None:
        return "n/a"
    difference, (low, high), _n = result
    return f"{difference:+.3f} [{low:+.3f}, {high:+.3f}] ({verdict(difference, (low, high))})"


class Fidelity:
    def __init__(self, rows: Sequence[dict]) -> None:
        self.rows = [describe(row) for row in rows if row.get("victim_kind", "run") == "run"]
        self.defaults: dict[tuple, dict] = {}
        for row in self.rows:
            if _is_default(row):
                self.defaults.setdefault((_victim(row), row["setting"], row["calibrated"]), row)
        self.victims = sorted({_victim(row) for row in self.rows if not _is_default(row)})

    def default(self, row: dict) -> dict | None:
        return self.defaults.get((_victim(row), row["setting"], row["calibrated"]))

    def variants(self, test) -> list[dict]:
        found = [row for row in self.rows if _victim(row) in self.victims and not _is_default(row) and test(row)]
        return sorted(
            found, key=lambda r: (_victim(r), r["setting"], r["calibrated"], str(r["init"]), r["max_iter"] or 0)
        )


def distance_table(study: Fidelity) -> list[str]:
    lines = [
        "| victim | n | attack | AUC, distance=l2 (default) | AUC, distance=paper | paper minus l2 [95% CI] | "
        "wall s: l2 / paper |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in study.variants(lambda r: r["distance"] == "paper" and r["setting"] == "whitebox"):
        base = study.default(row)
        if base is None:
            continue
        attack = "white-box, calibrated" if row["calibrated"] else "white-box"
        lines.append(
            f"| {row['model']} | {row['train_size']} | {attack} | {_auc(base)} | {_auc(row)} | {_paired(row, base)} | "
            f"{_wall(base)} / {_wall(row)} |"
        )
    return lines


def budget_table(study: Fidelity) -> list[str]:
    lines = [
        "| victim | n | start | iterations | calibrated | AUC [95% CI] | minus the default (nn, 100) [95% CI] | "
        "mean loss, members | mean loss, non-members | wall s |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    budget = study.variants(lambda r: r["distance"] == "l2" and r["setting"] == "whitebox" and r["init"] is not None)
    for row in budget:
        base = study.default(row)
        members, others = _mean_losses(row["run_dir"])
        versus = "n/a" if base is None else _paired(row, base)
        if base is not None and (row["init"], int(row["max_iter"])) == (DEFAULT_INIT, DEFAULT_ITER):
            versus += " (the default, rerun)"
        lines.append(
            f"| {row['model']} | {row['train_size']} | {row['init']} | {int(row['max_iter']):,} | "
            f"{'yes (the reference reconstructed alike)' if row['calibrated'] else 'no'} | "
            f"{_auc(row)} | {versus} | {members:.5f} | {others:.5f} | {_wall(row)} |"
        )
    return lines


def reference_attack_table(study: Fidelity) -> list[str]:
    lines = [
        "| victim | n | setting | AUC, reference by white-box (default) | AUC, reference by the setting's own attack | "
        "own minus white-box [95% CI] |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in study.variants(lambda r: r["calibrated"] and r["reference_attack"] == "setting"):
        base = study.default(row)
        if base is None:
            continue
        lines.append(
            f"| {row['model']} | {row['train_size']} | {row['setting']} | "
            f"{_auc(base)} | {_auc(row)} | {_paired(row, base)} |"
        )
    return lines


def markdown(study: Fidelity) -> str:
    lines = [
        "**Distance** (white-box attack)",
        "",
        *distance_table(study),
        "",
        "**White-box budget and start** (L-BFGS iterations; the loss is the L2 + prior objective's reconstruction "
        "error, uncalibrated)",
        "",
        *budget_table(study),
        "",
        "**Calibration of the black-box settings** (how the reference model's losses are found)",
        "",
        *reference_attack_table(study),
    ]
    return "\n".join(lines).rstrip() + "\n"


def figure(study: Fidelity, path: str | os.PathLike) -> Path:
    """Mean member / non-member loss and AUC against the white-box budget, one line per victim and start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganleaks.evaluation.plots import save_figure

    fig, (loss_ax, auc_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    budget = study.variants(
        lambda r: r["distance"] == "l2" and r["setting"] == "whitebox" and r["init"] is not None and not r["calibrated"]
    )
    groups: dict[tuple, list[dict]] = {}
    for row in budget:
        groups.setdefault((row["model"], row["train_size"], row["init"]), []).append(row)
    for (_model, _size, init), rows in groups.items():  # the studies' own run is the default's point
        default = study.default(rows[0])
        if init == DEFAULT_INIT and default is not None and all(int(r["max_iter"]) != DEFAULT_ITER for r in rows):
            rows.append({**default, "max_iter": DEFAULT_ITER})
    for i, ((model, size, init), rows) in enumerate(sorted(groups.items())):
        rows = sorted(rows, key=lambda r: int(r["max_iter"]))
        iterations = [int(r["max_iter"]) for r in rows]
        losses = [_mean_losses(r["run_dir"]) for r in rows]
        style = "-" if init == "nn" else "--"
        colour = f"C{i // 2}"
        loss_ax.plot(
            iterations, [m for m, _ in losses], style + "o", color=colour, label=f"{model} n={size} {init}: members"
        )
        loss_ax.plot(iterations, [o for _, o in losses], style + "x", color=colour, alpha=0.5)
        auc_ax.plot(
            iterations, [float(r["auc"]) for r in rows], style + "o", color=colour, label=f"{model} n={size} {init}"
        )
    for ax in (loss_ax, auc_ax):
        ax.set_xscale("log")
        ax.set_xlabel("L-BFGS iterations")
        ax.legend(fontsize=6)
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("mean reconstruction loss (o members, x non-members)")
    auc_ax.set_ylabel("AUC (uncalibrated)")
    auc_ax.axhline(0.5, color="grey", linewidth=1, linestyle=":")
    fig.tight_layout()
    return save_figure(fig, path)


def build(paths: Sequence[str | os.PathLike]) -> tuple[Fidelity, str]:
    study = Fidelity(gather(paths))
    if not study.victims:
        raise ValueError(f"no run under {', '.join(map(str, paths))} departs from the studies' defaults")
    return study, markdown(study)


def main(argv: Sequence[str] | None = None) -> int:
    from ganleaks.evaluation.study_cli import run_study_command

    return run_study_command(
        argv,
        prog="python -m ganleaks.evaluation.fidelity",
        description=__doc__,
        block=BLOCK,
        build=build,
        figure=figure,
        markdown_name="fidelity.md",
        figure_name="whitebox_budget.png",
        paths_help="folders of the fidelity runs and of the default runs they are compared with",
    )


if __name__ == "__main__":
    raise SystemExit(main())
