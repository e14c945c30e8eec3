"""The report's figures over a sweep of attack runs (matplotlib, files only).

* ``auc_vs_train_size.png``: AUC and TPR@1%FPR against the training-set size (paper figure 5);
* ``epsilon_vs_auc.png``: DP victims, AUC and sample quality against epsilon;
* ``auc_vs_k.png``: full black-box / Monte-Carlo AUC against the number of generated samples k.

Each ``plot_*`` returns the path it wrote, or None when the runs do not vary along its x axis.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ganleaks.evaluation.runs import SETTING_ORDER
from ganleaks.evaluation.sweep_curves import curve_bands, curve_points, line_order, line_style, varies, victim_label

log = logging.getLogger("ganleaks.report")  # the name the report has always logged under

SWEEP_K_SETTINGS = ("fullbb", "montecarlo")


def _plot_line(ax, points: list[tuple[float, float]], band: dict | None, style: str, **kwargs) -> None:
    """One curve, with its 95% interval as a shaded band where the runs recorded intervals."""
    xs, ys = zip(*points, strict=False)
    ax.plot(xs, ys, style, **kwargs)
    if band:
        # NaN where a point has no interval: fill_between leaves a gap there.
        low = [band.get(x, (math.nan, math.nan))[0] for x in xs]
        high = [band.get(x, (math.nan, math.nan))[1] for x in xs]
        ax.fill_between(
            xs, low, high, color=kwargs.get("color"), alpha=0.15, linewidth=0, label="shaded: 95% bootstrap interval"
        )


def _setting_colours(settings: Iterable[str]) -> dict[str, Any]:
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    ordered = sorted(set(settings), key=lambda s: (SETTING_ORDER.index(s) if s in SETTING_ORDER else 99, s))
    return {setting: palette(i % 10) for i, setting in enumerate(ordered)}


def _auc_axes(ax, xlabel: str, title: str) -> None:
    """Style a log-x ROC-AUC panel with the chance line at 0.5."""
    ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ROC AUC")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, which="both")


def _figure(n_rows: int, n_cols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.4 * n_rows), squeeze=False)
    return plt, fig, axes


def _save(plt, fig, path: Path) -> Path:
    handles, labels = [], []
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=False):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        last = [i for i, label in enumerate(labels) if label.startswith("shaded:")]  # the band's key after the lines
        order = [i for i in range(len(labels)) if i not in last] + last
        handles, labels = [handles[i] for i in order], [labels[i] for i in order]
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_train_size(rows: list[dict], path: Path) -> Path | None:
    """AUC and TPR@1%FPR against the training-set size, one panel per victim."""
    sizes = defaultdict(set)
    for row in rows:
        sizes[victim_label(row)].add(row.get("train_size"))
    rows = [row for row in rows if len(sizes[victim_label(row)] - {None}) > 1]  # victims swept over size
    if not rows:
        return None
    cells = defaultdict(set)
    for row in rows:
        cells[(victim_label(row), row["setting"], row["calibration"], row["train_size"])].add(
            (row.get("distance"), row.get("k"))
        )
    mixed = sorted({key[1] for key, variants in cells.items() if len(variants) > 1})
    if mixed:
        log.warning(
            "the training-set-size figure averages %s runs that differ in distance or k; report each "
            "study's folder separately to keep them apart",
            ", ".join(map(str, mixed)),
        )

    def line(row):
        return (row["setting"], row["calibration"])

    auc = curve_points(rows, "train_size", "auc", victim_label, line)
    tpr = curve_points(rows, "train_size", "tpr_at_fpr_0.01", victim_label, line)
    bands = {
        "auc": curve_bands(rows, "train_size", "auc", victim_label, line),
        "tpr": curve_bands(rows, "train_size", "tpr_at_fpr_0.01", victim_label, line),
    }
    panels = sorted(auc)
    colours = _setting_colours(row["setting"] for row in rows)
    plt, fig, axes = _figure(2, len(panels))
    for col, panel in enumerate(panels):
        for r, (curves, band, ylabel) in enumerate(
            ((auc, bands["auc"], "ROC AUC"), (tpr, bands["tpr"], "TPR @ 1% FPR"))
        ):
            ax = axes[r][col]
            for (setting, calibration), points in sorted(curves.get(panel, {}).items(), key=line_order):
                _plot_line(
                    ax,
                    points,
                    band.get(panel, {}).get((setting, calibration)),
                    line_style(calibration),
                    marker="o",
                    markersize=3,
                    color=colours[setting],
                    label=f"{setting} ({'calibrated' if line_style(calibration) == '-' else 'uncalibrated'})",
                )
            if not curves.get(panel):
                ax.text(
                    0.5,
                    0.5,
                    "not estimable in these runs\n(needs >= 100 non-members)",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize="small",
                )
            ax.set_xscale("log")
            ax.axhline(0.5 if r == 0 else 0.01, color="grey", linewidth=0.6, linestyle=":")
            ax.set_xlabel("training-set size")
            ax.set_ylabel(ylabel)
            ax.set_title(panel, fontsize="medium")
            ax.grid(alpha=0.3, which="both")
    return _save(plt, fig, path)


def plot_epsilon(rows: list[dict], path: Path) -> Path | None:
    """DP victims: AUC against epsilon (log axis) and the sample quality against epsilon.

    Runs of the same data / model / training-set size without DP, where present, are drawn as
    horizontal "no DP" lines (thin, in the colour of their setting).
    """
    dp_rows = [row for row in rows if row.get("epsilon") is not None and math.isfinite(float(row["epsilon"]))]
    if not dp_rows:
        return None

    def panel(row):
        return f"{row['data']}/{row['model']} n={row['train_size']}"

    panels = sorted({panel(row) for row in dp_rows})
    baseline_rows = [row for row in rows if row.get("epsilon") is None and panel(row) in panels]
    auc = curve_points(dp_rows, "epsilon", "auc", panel, lambda row: (row["setting"], row["calibration"]))
    auc_bands = curve_bands(dp_rows, "epsilon", "auc", panel, lambda row: (row["setting"], row["calibration"]))
    quality = curve_points(dp_rows, "epsilon", "fid_classifier", panel, lambda row: "quality")
    baseline_auc = curve_points(
        baseline_rows, "train_size", "auc", panel, lambda row: (row["setting"], row["calibration"])
    )
    baseline_quality = curve_points(baseline_rows, "train_size", "fid_classifier", panel, lambda row: "quality")
    colours = _setting_colours(row["setting"] for row in dp_rows + baseline_rows)
    plt, fig, axes = _figure(len(panels), 2)
    for r, name in enumerate(panels):
        ax = axes[r][0]
        for (setting, calibration), points in sorted(auc.get(name, {}).items(), key=line_order):
            _plot_line(
                ax,
                points,
                auc_bands.get(name, {}).get((setting, calibration)),
                line_style(calibration),
                marker="o",
                markersize=3,
                color=colours[setting],
                label=f"{setting} ({'calibrated' if line_style(calibration) == '-' else 'uncalibrated'})",
            )
        for (setting, calibration), points in sorted(baseline_auc.get(name, {}).items(), key=line_order):
            ax.axhline(
                points[0][1], linestyle=line_style(calibration), linewidth=0.8, alpha=0.5, color=colours[setting]
            )
        if name in baseline_auc:
            ax.text(0.99, 0.99, "thin lines: no DP", ha="right", va="top", transform=ax.transAxes, fontsize="x-small")
        _auc_axes(ax, "epsilon (DP budget)", name)
        ax = axes[r][1]
        points = quality.get(name, {}).get("quality")
        if points:
            xs, ys = zip(*points, strict=False)
            ax.plot(xs, ys, "-", marker="s", markersize=3, color="black")
            ax.set_xscale("log")
            baseline = baseline_quality.get(name, {}).get("quality")
            if baseline:
                ax.axhline(baseline[0][1], color="black", linewidth=0.8, alpha=0.5, linestyle="--")
                ax.text(0.99, 0.99, "dashed: no DP", ha="right", va="top", transform=ax.transAxes, fontsize="x-small")
        else:
            ax.text(
                0.5,
                0.5,
                "no quality.json\n(python -m ganleaks.evaluation.quality)",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize="small",
            )
        ax.set_xlabel("epsilon (DP budget)")
        ax.set_ylabel("Fréchet distance (lower = better samples)")
        ax.set_title(f"{name}: sample quality", fontsize="medium")
        ax.grid(alpha=0.3, which="both")
    return _save(plt, fig, path)


def plot_k(rows: list[dict], path: Path) -> Path | None:
    """Full black-box / Monte-Carlo AUC against k, one panel per victim."""
    k_rows = [row for row in rows if row.get("setting") in SWEEP_K_SETTINGS and row.get("k") is not None]
    if not varies(k_rows, "k", ("data", "model", "setting", "train_size")):
        return None

    def line(row):
        return (row["setting"], row["calibration"], row["train_size"])

    curves = curve_points(k_rows, "k", "auc", victim_label, line)
    bands = curve_bands(k_rows, "k", "auc", victim_label, line)
    colours = _setting_colours(row["setting"] for row in k_rows)
    panels = sorted(curves)
    plt, fig, axes = _figure(1, len(panels))
    for col, panel in enumerate(panels):
        ax = axes[0][col]
        sizes = sorted({key[2] for key in curves[panel]}, key=lambda s: (s is None, s))
        markers = dict(zip(sizes, "osD^v<>p*h", strict=False))
        for (setting, calibration, size), points in sorted(curves[panel].items(), key=line_order):
            _plot_line(
                ax,
                points,
                bands.get(panel, {}).get((setting, calibration, size)),
                line_style(calibration),
                marker=markers.get(size, "o"),
                markersize=3,
                color=colours[setting],
                label=f"{setting} n={size} ({'calibrated' if line_style(calibration) == '-' else 'uncalibrated'})",
            )
        _auc_axes(ax, "k (generated samples)", panel)
    return _save(plt, fig, path)
