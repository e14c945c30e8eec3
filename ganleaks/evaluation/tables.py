"""The report's table: one row per attack run as CSV (raw values) and as Markdown (formatted).

Markdown cells show each metric with its 95% interval where the run recorded one
(``0.912 [0.871, 0.947]``) and ``n/a`` where it was not estimable (see
:mod:`ganleaks.evaluation.metrics`); the CSV keeps the raw numbers, each interval as
``<key>_ci_low, <key>_ci_high``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from ganleaks.evaluation.estimates import INTERVAL_KEYS, format_estimate

# (column, header in the Markdown table, format); "ci": the estimate with its interval when the run
# recorded one ("0.912 [0.871, 0.947]"), "n/a" when not estimable (see ganleaks.evaluation.metrics).
COLUMNS: list[tuple[str, str, str]] = [
    ("data", "data", "s"),
    ("model", "model", "s"),
    ("privacy", "privacy", "s"),
    ("epsilon", "epsilon", ".3g"),
    ("noise_multiplier", "sigma", ".3g"),
    ("train_size", "train size", "d"),
    ("setting", "setting", "s"),
    ("calibration", "calibration", "s"),
    ("distance", "distance", "s"),
    ("k", "k", "d"),
    ("seed", "seed", "d"),
    ("auc", "AUC [95% CI]", "ci"),
    ("average_precision", "AP [95% CI]", "ci"),
    ("tpr_at_fpr_0.001", "TPR@0.1% [95% CI]", "ci"),
    ("tpr_at_fpr_0.01", "TPR@1% [95% CI]", "ci"),
    ("tpr_at_fpr_0.1", "TPR@10% [95% CI]", "ci"),
    ("accuracy", "best-threshold accuracy (optimistic)", "ci"),
    ("n", "n", "d"),
    ("n_failed", "failed", "d"),
    ("wall_seconds", "wall s", ".1f"),
    ("fid_classifier", "quality (FD)", ".3f"),
    ("run_dir", "run", "s"),
]


def _format(value: Any, spec: str, row: dict | None = None, key: str = "") -> str:
    if spec == "ci":
        assert row is not None, "a 'ci' column needs its row"
        return format_estimate(row, key).split(" (")[0]  # "n/a" without its reason: metrics.json has it
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if spec == "s":
        return str(value)
    try:
        return format(int(value) if spec == "d" else float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def raw_columns() -> list[str]:
    """Keys of the raw table (CSV, W&B): the columns, each interval as ``<key>_ci_low, <key>_ci_high``."""
    keys = []
    for key, _, _ in COLUMNS:
        keys.append(key)
        if key in INTERVAL_KEYS:
            keys += [f"{key}_ci_low", f"{key}_ci_high"]
    return keys


def raw_value(row: dict, key: str) -> Any:
    for end, index in (("_ci_low", 0), ("_ci_high", 1)):
        if key.endswith(end):
            interval = row.get(key.removesuffix(end) + "_ci")
            return None if interval is None else interval[index]
    return row.get(key)


def to_csv(rows: list[dict]) -> str:
    """The table as CSV (raw values, one header row of column keys; intervals as ``_ci_low``/``_ci_high``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = raw_columns()
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if raw_value(row, key) is None else raw_value(row, key) for key in columns])
    return buffer.getvalue()


def to_markdown(rows: list[dict], relative_to: Path | None = None) -> str:
    """The table as GitHub Markdown; columns empty in every row are left out (metrics never: null is "n/a")."""
    columns = [c for c in COLUMNS if c[2] == "ci" or any(row.get(c[0]) is not None for row in rows)]
    lines = [
        "| " + " | ".join(header for _, header, _ in columns) + " |",
        "|" + "|".join("---:" if spec != "s" else "---" for _, _, spec in columns) + "|",
    ]
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row.get(key)
            if key == "run_dir" and relative_to is not None:
                value = os.path.relpath(str(value), relative_to)
            cells.append(_format(value, spec, row, key).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
