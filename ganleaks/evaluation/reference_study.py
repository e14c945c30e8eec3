"""The study of the newer attacks: the paper's calibration against several reference models and DOMIAS.

For each victim and setting in the runs given: AUC and TPR at 1% FPR with their intervals, uncalibrated,
with the paper's calibration (one reference model on the whole reference part), with ``R`` reference models
(``calibration=references``, each on a random half), and the density ratio (``setting=domias``); a figure of
TPR at 1% FPR against R; and what it cost (the reference models' training time, the attacks' wall time).

    python -m ganleaks.evaluation.reference_study results/cpu_refs results/cpu_size results/cpu_dp \\
        --out results/cpu_refs/report --doc docs/RESULTS.md

Only victims attacked with ``calibration=references`` are reported (the other folders give the same victims'
uncalibrated and paper-calibrated runs). ``--doc`` rewrites the ``references-study`` block of that document
(``--check``: fail instead when it is stale).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ganleaks.evaluation.claims import N_RESAMPLES, SEED, paired_difference, read_scores, verdict
from ganleaks.evaluation.estimates import format_estimate
from ganleaks.evaluation.metrics import false_positives_allowed
from ganleaks.evaluation.runs import gather

BLOCK = "references-study"
TPR = "tpr_at_fpr_0.01"
_R = re.compile(r"^references R=(\d+)$")


def column(row: dict) -> str | None:
    """Which column of the study a run is: ``none``, ``paper``, ``R=<n>``, ``domias``; None: not one."""
    calibration = str(row.get("calibration"))
    if row.get("setting") == "domias":
        return "domias" if calibration == "none" else None
    if calibration == "none":
        return "none"
    if calibration == "reference":
        return "paper"
    match = _R.match(calibration)
    return f"R={match.group(1)}" if match else None


def victim_key(row: dict) -> tuple:
    return (row.get("data"), row.get("model"), row.get("privacy"), row.get("train_size"), row.get("seed"))


def study_cells(rows: Sequence[dict]) -> dict[tuple, dict[str, dict[str, dict]]]:
    """``{victim: {setting: {column: row}}}`` for the victims attacked with several reference models, and only
    their settings that were (the others have no R column); the density ratio is its own setting, ``domias``.

    Two runs for one cell (a folder given twice) are refused: which one a table showed would be chance.
    """
    multi = {
        (victim_key(row), row.get("setting"))
        for row in rows
        if str(row.get("calibration", "")).startswith("references")
    }
    victims = {victim for victim, _ in multi}
    cells: dict[tuple, dict[str, dict[str, dict]]] = {}
    for row in rows:
        victim, name = victim_key(row), column(row)
        if name is None or victim not in victims:
            continue
        if name != "domias" and (victim, row.get("setting")) not in multi:
            continue
        slot = cells.setdefault(victim, {}).setdefault(str(row["setting"]), {})
        if name in slot:
            raise ValueError(
                f"two runs for {victim} {row['setting']} {name}: {slot[name]['run_dir']} and {row['run_dir']}"
            )
        slot[name] = row
    return cells


def columns_of(cells: dict) -> list[str]:
    """The columns present, in the study's order: none, paper, R=1, R=2, ..., domias."""
    names = {name for settings in cells.values() for slot in settings.values() for name in slot}
    counts = sorted(int(name[2:]) for name in names if name.startswith("R="))
    return (
        [n for n in ("none", "paper") if n in names]
        + [f"R={r}" for r in counts]
        + (["domias"] if "domias" in names else [])
    )


def _victim_name(victim: tuple) -> str:
    data, model, privacy, size, seed = victim
    dp = "" if privacy in (None, "none") else f" ({privacy})"
    return f"{model}{dp} n={size} seed={seed}"


HEADERS = {"none": "uncalibrated", "paper": "paper (1 ref., whole part)", "domias": "DOMIAS"}


def _lines(cells: dict) -> list[tuple[tuple, str, dict]]:
    """Each table line: (victim, setting, its runs by column), victims and settings sorted, domias last."""
    lines = []
    for victim in sorted(cells, key=lambda v: tuple(str(x) for x in v)):
        for setting in sorted(cells[victim], key=lambda s: (s == "domias", s)):
            lines.append((victim, setting, cells[victim][setting]))
    return lines


def _table(cells: dict, names: list[str], cell) -> list[str]:
    rows = ["| victim | setting | n queries | " + " | ".join(HEADERS.get(n, n) for n in names) + " |"]
    rows.append("|---|---|---:|" + "---:|" * len(names))
    for victim, setting, slot in _lines(cells):
        n = max(int(row.get("n") or 0) for row in slot.values())
        values = [cell(slot[name]) if name in slot else "" for name in names]
        rows.append(f"| {_victim_name(victim)} | {setting} | {n} | " + " | ".join(values) + " |")
    return rows


def markdown(cells: dict, costs: dict | None = None, paired: list[str] | None = None) -> str:
    """The AUC and TPR-at-1%-FPR tables (each value with its 95% interval), the attacks' wall times, and the
    reference models' training time."""
    names = columns_of(cells)
    lines = []
    for key, title in (("auc", "AUC [95% CI]"), (TPR, "TPR at 1% FPR [95% CI]")):
        lines += [f"**{title}**", "", *_table(cells, names, lambda row, key=key: format_estimate(row, key)), ""]
    if paired:
        lines += [
            "**The most reference models against the paper's calibration, on the same queries** (paired "
            "differences, 95% bootstrap intervals; holds: above 0, reversed: below 0)",
            "",
            *paired,
            "",
        ]
    lines += ["**Attack wall time (s)**", ""]
    lines += _table(cells, names, lambda row: "" if row.get("wall_seconds") is None else f"{row['wall_seconds']:.0f}")
    lines.append("")
    for what, value in (costs or {}).items():
        lines.append(f"* {what}: {value}")
    return "\n".join(lines).rstrip() + "\n"


def paired_tpr_difference(a: dict, b: dict, target: float = 0.01) -> tuple[float, tuple[float, float]] | None:
    """TPR(a) - TPR(b) at FPR ``target`` over the queries both runs scored, with its 95% paired bootstrap
    interval (members and non-members resampled together for both runs); the operating point is the
    metrics' (``metrics.operating_point``: called a member when the score is above the (k+1)-th highest
    non-member's, k the false positives the target allows). None when too few non-members allow one."""
    common = sorted(set(a) & set(b))
    labels = np.array([a[i][0] for i in common])
    sa, sb = np.array([a[i][1] for i in common]), np.array([b[i][1] for i in common])
    m, nm = labels == 1, labels == 0
    n_nm = int(nm.sum())
    if not m.any() or n_nm * target < 1:
        return None
    allowed = false_positives_allowed(target, n_nm)

    def tpr(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
        threshold = -np.sort(-nonmembers, axis=-1)[..., allowed]
        return (members > threshold[..., None]).mean(axis=-1)

    rng = np.random.default_rng(SEED)
    im = rng.integers(0, int(m.sum()), size=(N_RESAMPLES, int(m.sum())))
    inm = rng.integers(0, n_nm, size=(N_RESAMPLES, n_nm))
    diffs = tpr(sa[m][im], sa[nm][inm]) - tpr(sb[m][im], sb[nm][inm])
    point = float(tpr(sa[m], sa[nm]) - tpr(sb[m], sb[nm]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return point, (float(low), float(high))


def comparisons(cells: dict, against: str = "paper") -> list[str]:
    """The largest R against ``against`` (the paper's calibration) on the same queries, per victim and setting:
    the paired differences of AUC and of TPR at 1% FPR with their 95% intervals, and what they resolve."""
    lines = []
    resolved = {"AUC": 0, "TPR at 1% FPR": 0}
    for victim, setting, slot in _lines(cells):
        counts = sorted(int(name[2:]) for name in slot if name.startswith("R="))
        if not counts or against not in slot:
            continue
        best = f"R={counts[-1]}"
        a, b = read_scores(slot[best]["run_dir"]), read_scores(slot[against]["run_dir"])
        parts = []
        auc = paired_difference(a, b)
        if auc is not None:
            point, (low, high), _ = auc
            parts.append(f"AUC {point:+.3f} [{low:+.3f}, {high:+.3f}] ({verdict(point, (low, high))})")
            resolved["AUC"] += verdict(point, (low, high)) != "not resolved"
        tpr = paired_tpr_difference(a, b)
        if tpr is not None:
            point, (low, high) = tpr
            parts.append(f"TPR at 1% FPR {point:+.3f} [{low:+.3f}, {high:+.3f}] ({verdict(point, (low, high))})")
            resolved["TPR at 1% FPR"] += verdict(point, (low, high)) != "not resolved"
        if parts:
            lines.append(
                f"* {_victim_name(victim)}, {setting}: {best} minus {HEADERS.get(against, against)}: "
                + "; ".join(parts)
            )
    if lines:
        lines.append(
            f"* {len(lines)} victim-setting pairs compared; resolved: {resolved['AUC']} AUC differences, "
            f"{resolved['TPR at 1% FPR']} TPR differences. At the 95% level about {0.05 * len(lines):.1f} of "
            f"{len(lines)} differences per metric would be resolved by chance alone (no correction for the "
            "number of comparisons)"
        )
    return lines


def reference_costs(cells: dict) -> dict[str, str]:
    """Training time of the reference models the runs used (their ``run.json``), per architecture."""
    trained: dict[str, dict[str, float]] = {}
    for settings in cells.values():
        for slot in settings.values():
            for row in slot.values():
                for folder in _reference_dirs(Path(row["run_dir"])):
                    record = _read(folder / "run.json")
                    if record and record.get("train_wall_s") is not None:
                        model = folder.parents[1].name if len(folder.parents) > 1 else "?"
                        trained.setdefault(model, {})[str(folder)] = float(record["train_wall_s"])
    costs = {}
    for model in sorted(trained):
        values = sorted(trained[model].values())
        costs[f"training the {model} reference models (their run.json)"] = (
            f"{len(values)} models, {values[0]:.0f}-{values[-1]:.0f} s each, {sum(values) / 60:.1f} min in all"
        )
    return costs


def _reference_dirs(run_dir: Path) -> list[Path]:
    metrics = _read(run_dir / "metrics.json") or {}
    return [Path(folder) for folder in metrics.get("reference_run_dirs") or []]


def _read(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def figure(cells: dict, path: str | os.PathLike) -> Path:
    """TPR at 1% FPR against R (log2 axis) with 95% intervals, one line per victim and setting; the
    paper's calibration as a dashed line of the same colour, chance (TPR = FPR = 0.01) dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganleaks.evaluation.plots import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    index = 0
    plotted: set[int] = set()
    for victim in sorted(cells, key=lambda v: tuple(str(x) for x in v)):
        for setting in sorted(cells[victim]):
            slot = cells[victim][setting]
            counts = sorted(int(name[2:]) for name in slot if name.startswith("R="))
            if not counts:
                continue
            colour = colours[index % len(colours)]
            index += 1
            ys, lows, highs = [], [], []
            for r in counts:
                row = slot[f"R={r}"]
                value = row.get(TPR)
                interval = row.get(f"{TPR}_ci") or [math.nan, math.nan]
                ys.append(math.nan if value is None else value)
                if value is not None:
                    plotted.add(r)
                lows.append(ys[-1] - interval[0])
                highs.append(interval[1] - ys[-1])
            ax.errorbar(counts, ys, yerr=[lows, highs], marker="o", capsize=3, color=colour,
                        label=f"{_victim_name(victim)}, {setting}")  # fmt: skip
            paper = slot.get("paper", {}).get(TPR)
            if paper is not None:
                ax.axhline(paper, color=colour, linestyle="--", linewidth=1)
    ax.axhline(0.01, color="grey", linestyle=":", linewidth=1, label="chance (TPR = FPR)")
    if plotted:
        ax.set_xscale("log", base=2)
        ax.set_xlim(min(plotted) / 1.5, max(plotted) * 1.5)
        ax.set_xticks(sorted(plotted), [str(r) for r in sorted(plotted)])
    else:
        ax.text(0.5, 0.5, "TPR at 1% FPR not estimable (too few non-members)", ha="center", transform=ax.transAxes)
    ax.set_xlabel("reference models R")
    ax.set_ylabel("TPR at 1% FPR")
    ax.set_title("offline LiRA with R reference models (dashed: the paper's calibration)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def build(paths: Sequence[str | os.PathLike]) -> tuple[dict, str]:
    """The study's cells and its markdown (tables and costs) from the attack runs under ``paths``."""
    cells = study_cells(gather(paths))
    if not cells:
        raise ValueError(f"no victim under {', '.join(map(str, paths))} was attacked with calibration=references")
    return cells, markdown(cells, reference_costs(cells), comparisons(cells))


def main(argv: Sequence[str] | None = None) -> int:
    from ganleaks.evaluation.study_cli import run_study_command

    return run_study_command(
        argv,
        prog="python -m ganleaks.evaluation.reference_study",
        description=__doc__,
        block=BLOCK,
        build=build,
        figure=figure,
        markdown_name="references_study.md",
        figure_name="tpr_vs_r.png",
        paths_help="folders of attack runs (the references runs and their victims')",
    )


if __name__ == "__main__":
    raise SystemExit(main())
