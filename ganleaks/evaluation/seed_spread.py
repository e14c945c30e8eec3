"""The README's quickstart table: every quickstart command's result at each training seed, with the spread.

One machine's one seed is not what a reader will see: a fresh clone on another machine trains
another victim (seeded training is not bit-identical across CPUs), and another seed gives another
split and another initialisation. The table therefore gives, per command, the AUC with its 95%
interval at every seed and the range of the AUCs across seeds, generated from the committed runs
(``results/quickstart``: the published small files of the commands in the README)::

    python -m ganleaks.evaluation.seed_spread results/quickstart --doc README.md          # rewrite the block
    python -m ganleaks.evaluation.seed_spread results/quickstart --doc README.md --check  # exit 1 when stale

``tests/test_readme_quickstart.py`` regenerates it and fails when README.md differs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ganleaks.evaluation.markdown_blocks import StaleMarkdownBlockError, check_markdown_block, sync_markdown_block
from ganleaks.report import build_report

BLOCK = "quickstart"


def _command(row: dict) -> str:
    """The README command that made an attack run (the null control is told apart by its victim)."""
    if "reference_n" in str(row.get("victim_run_dir") or ""):
        return f"null control: {row['setting']} on the reference model"
    calibrated = "" if row["calibration"] == "none" else f" calibration={row['calibration']}"
    return f"`python attack.py setting={row['setting']}{calibrated}`"


def _train_rows(root: Path) -> dict[str, dict[int, float]]:
    """``{command: {seed: training seconds}}`` from each published model's ``run.json``."""
    rows: dict[str, dict[int, float]] = {}
    for path in sorted(root.glob("train/*/*/*/seed*/run.json")):
        record = json.loads(path.read_text())
        part, seed = path.parents[1].name, int(path.parent.name.removeprefix("seed"))
        command = "`python train.py data.part=reference`" if part.startswith("reference") else "`python train.py`"
        rows.setdefault(command, {})[seed] = float(record["train_wall_s"])
    return rows


def _interval(row: dict) -> str:
    low, high = row.get("auc_ci") or (None, None)
    return f"{row['auc']:.3f} [{low:.3f}, {high:.3f}]" if low is not None else f"{row['auc']:.3f}"


def quickstart_table(root: str | Path) -> str:
    """The Markdown table of the quickstart runs under ``root`` (``train/`` and ``attack/`` as published)."""
    root = Path(root)
    with tempfile.TemporaryDirectory() as scratch:
        rows = build_report([root / "attack"], scratch, wandb="off").rows
    seeds = sorted({int(row["seed"]) for row in rows})
    by_command: dict[str, dict[int, dict]] = {}
    for row in rows:
        by_command.setdefault(_command(row), {})[int(row["seed"])] = row
    header = [
        "command",
        *(f"seed {seed}: AUC [95% interval]" for seed in seeds),
        "AUC across seeds",
        "wall (median over seeds)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for command, walls in _train_rows(root).items():
        cells = [f"{walls[seed]:.0f} s" if seed in walls else "-" for seed in seeds]
        lines.append(f"| {command} | " + " | ".join(cells) + f" | | {statistics.median(walls.values()):.0f} s |")
    order = sorted(by_command, key=lambda c: (c.startswith("null"), "calibration=" in c, c))
    for command in order:
        runs = by_command[command]
        cells = [_interval(runs[seed]) if seed in runs else "-" for seed in seeds]
        aucs = [runs[seed]["auc"] for seed in runs]
        spread = f"{min(aucs):.3f}-{max(aucs):.3f}" if len(aucs) > 1 else f"{aucs[0]:.3f}"
        wall = statistics.median(float(runs[seed]["wall_seconds"]) for seed in runs)
        lines.append(f"| {command} | " + " | ".join(cells) + f" | {spread} | {wall:.0f} s |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="the published quickstart runs, e.g. results/quickstart")
    parser.add_argument("--doc", required=True, help="the document holding the block, e.g. README.md")
    parser.add_argument("--block", default=BLOCK)
    parser.add_argument("--check", action="store_true", help="leave the document as it is; exit 1 when stale")
    args = parser.parse_args(argv)
    table = quickstart_table(args.root)
    if args.check:
        try:
            check_markdown_block(args.doc, args.block, table)
        except StaleMarkdownBlockError as error:
            print(error, file=sys.stderr)
            return 1
        return 0
    print("updated" if sync_markdown_block(args.doc, args.block, table) else "unchanged", args.doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
