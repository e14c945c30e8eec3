"""Rows of a sweep of attack runs turned into the points and bands its figures draw (no matplotlib)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from ganleaks.evaluation.runs import setting_info


def victim_label(row: dict) -> str:
    """The panel a run belongs to: ``data/model``, with the noise multiplier for DP victims."""
    label = f"{row['data']}/{row['model']}"
    if row.get("noise_multiplier") is not None:
        label += f" (DP, sigma={row['noise_multiplier']:g})"
    return label


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def curve_points(rows: list[dict], x_key: str, y_key: str, panel_key, line_key) -> dict:
    """``{panel: {line: [(x, mean y over duplicates), ...]}}`` for rows with x and y."""
    points: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        if row.get(x_key) is None or row.get(y_key) is None:
            continue
        points[panel_key(row)][line_key(row)][float(row[x_key])].append(float(row[y_key]))
    return {
        panel: {line: sorted((x, _mean(ys)) for x, ys in xs.items()) for line, xs in lines.items()}
        for panel, lines in points.items()
    }


def curve_bands(rows: list[dict], x_key: str, y_key: str, panel_key, line_key) -> dict:
    """``{panel: {line: {x: (low, high)}}}``: the 95% intervals of ``y_key`` where runs recorded one
    (the mean of the bounds over duplicate runs); runs from before intervals have none."""
    bounds: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        interval = row.get(f"{y_key}_ci")
        if row.get(x_key) is None or row.get(y_key) is None or interval is None:
            continue
        bounds[panel_key(row)][line_key(row)][float(row[x_key])].append(interval)
    return {
        panel: {
            line: {x: (_mean([b[0] for b in bs]), _mean([b[1] for b in bs])) for x, bs in xs.items()}
            for line, xs in lines.items()
        }
        for panel, lines in bounds.items()
    }


def line_order(item) -> tuple:
    """Legend order: settings as in the paper (their declared knowledge), uncalibrated before
    calibrated, then the rest."""
    setting, calibration, *rest = item[0]
    return (
        setting_info({"setting": setting}).rank,
        str(setting),
        line_style(calibration) == "-",
        str(calibration),
        *((r is None, 0 if r is None else r) for r in rest),
    )


def line_style(calibration: str | None) -> str:
    """Calibrated runs are drawn solid, uncalibrated ones dashed."""
    return "-" if calibration not in (None, "none") else "--"


def varies(rows: list[dict], key: str, group_keys: Sequence[str]) -> bool:
    """Whether ``key`` takes more than one value within some group of rows (a figure has an x axis)."""
    values = defaultdict(set)
    for row in rows:
        if row.get(key) is not None:
            values[tuple(row.get(g) for g in group_keys)].add(row[key])
    return any(len(v) > 1 for v in values.values())
