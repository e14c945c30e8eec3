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


# Raw-table columns (CSV, W&B) not in the Markdown table (docs/RESULTS.md embeds that), after the column named.
RAW_ONLY: dict[str, tuple[str, ...]] = {"model": ("victim_kind",)}  # "run" (trained here) or a user's artefact


def raw_columns() -> list[str]:
    """Keys of the raw table (CSV, W&B): the columns, each interval as ``<key>_ci_low, <key>_ci_high``."""
    keys = []
    for key, _, _ in COLUMNS:
        keys.append(key)
        keys += RAW_ONLY.get(key, ())
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


# The pivot tables: one row per victim (and k where the runs vary it), one column per setting and
# calibration, each cell one metric with its interval. What docs/RESULTS.md shows; runs.md has the rest.
PIVOT_METRICS = {"auc": "AUC", "tpr_at_fpr_0.01": "TPR@1%FPR"}
_PIVOT_LABELS = [
    ("model", "model", "s"),
    ("epsilon", "epsilon", ".3g"),
    ("noise_multiplier", "sigma", ".3g"),
    ("train_size", "train size", "d"),
    ("k", "k", "d"),
    ("fid_classifier", "quality (FD)", ".3f"),
]


def to_pivot_markdown(rows: list[dict], metric: str) -> str:
    """``metric`` (a key of ``PIVOT_METRICS``) as a victim x (setting, calibration) Markdown table.

    A row per data / model / privacy / training-set size / seed (and k where runs of one setting
    differ in k); a column per setting, uncalibrated then calibrated ("cal."). A cell holds the
    estimate with its 95% interval (``0.71 [0.63, 0.80]``), ``n/a`` where not estimable, and is
    empty where the run does not exist. Several seeds give several rows.
    """
    vary_k = any(
        len({row.get("k") for row in rows if row["setting"] == setting} - {None}) > 1
        for setting in {row["setting"] for row in rows}
    )
    from ganleaks.evaluation.runs import settings_of

    ranks = {name: info.rank for name, info in settings_of(rows).items()}
    columns = sorted(
        {(row["setting"], row["calibration"] not in (None, "none")) for row in rows},
        key=lambda c: (ranks.get(c[0], ()), str(c[0]), c[1]),
    )
    labels = [c for c in _PIVOT_LABELS if (c[0] != "k" or vary_k) and any(row.get(c[0]) is not None for row in rows)]
    if len({row.get("seed") for row in rows}) > 1:
        labels.append(("seed", "seed", "d"))
    if len({row.get("data") for row in rows}) > 1:
        labels.insert(0, ("data", "data", "s"))
    table: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row.get(k) for k, _, _ in labels if k not in ("fid_classifier", "epsilon"))
        entry = table.setdefault(key, {"row": row, "cells": {}})
        entry["cells"][(row["setting"], row["calibration"] not in (None, "none"))] = row
    headers = [header for _, header, _ in labels] + [f"{s}{' cal.' if cal else ''}" for s, cal in columns]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if spec == "s" else "---:" for _, _, spec in labels) + "|---:" * len(columns) + "|",
    ]

    def order(key):
        return tuple((value is None, value if value is not None else 0) for value in key)

    for key in sorted(table, key=order):
        entry = table[key]
        cells = [_format(entry["row"].get(k), spec) for k, _, spec in labels]
        for column in columns:
            run = entry["cells"].get(column)
            cells.append("" if run is None else _format(run.get(metric), "ci", run, metric))
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def to_settings_markdown(rows: list[dict]) -> str:
    """The key to the tables' setting columns: each setting of ``rows`` with the label, the threat
    model and the needs its class declares (:func:`ganleaks.evaluation.runs.settings_of`), in report order."""
    from ganleaks.evaluation.runs import settings_of

    lines = [
        "| setting | label | what the attacker had | needs from the victim | k applies |",
        "|---|---|---|---|---|",
    ]
    for name, info in settings_of(rows).items():
        cells = [
            name,
            info.label,
            info.description,
            ", ".join(info.needs),
            "yes" if info.uses_k else "no" if info.known else "?",
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
