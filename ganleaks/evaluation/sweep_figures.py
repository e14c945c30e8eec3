"""The report's figures over a sweep of attack runs (matplotlib, files only).

* ``auc_vs_train_size.png``: AUC and TPR@1%FPR against the training-set size (paper figure 5);
* ``epsilon_vs_auc.png``: DP victims, AUC and sample quality against epsilon;
* ``auc_vs_k.png``: AUC against the number of generated samples k, for the settings where k
  applies (full black-box, Monte-Carlo: their classes declare ``uses_k``).

Panels name a setting by the label its class declares ("full black-box"), and settings are
ordered by their declared attacker knowledge (:func:`ganleaks.evaluation.runs.settings_of`).

Each ``plot_*`` returns the path it wrote, or None when the runs do not vary along its x axis.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from ganleaks.evaluation.runs import settings_of
from ganleaks.evaluation.sweep_curves import curve_bands, curve_points, line_order, line_style, varies, victim_label

log = logging.getLogger("ganleaks.report")  # the name the report has always logged under


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


CALIBRATION_COLOURS = {False: "tab:blue", True: "tab:red"}  # uncalibrated, calibrated


def _calibration_label(calibration: str | None) -> str:
    return "calibrated" if line_style(calibration) == "-" else "uncalibrated"


def _ordered_settings(rows: Iterable[dict]) -> list[str]:
    return list(settings_of(rows))


def _labels(rows: Iterable[dict]) -> dict[str, str]:
    """``{setting name: the label its class declares}`` (panel titles)."""
    return {name: info.label for name, info in settings_of(rows).items()}


def _log_x(ax, values: Iterable[float], label: str) -> None:
    """A log x axis ticked and labelled at the values the runs took (no crowded minor labels)."""
    ticks = sorted({float(v) for v in values})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:,.0f}" if t >= 100 and t == int(t) else f"{t:.3g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(label)


def _auc_axes(ax, title: str) -> None:
    """Style a ROC-AUC panel: the chance line at 0.5, the full [0, 1]-ish range for comparability."""
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":", label="chance (AUC 0.5)")
    ax.set_ylabel("ROC AUC")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)


def _figure(n_rows: int, n_cols: int, width: float = 3.4, height: float = 2.8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False)
    return plt, fig, axes


def _save(plt, fig, path: Path) -> Path:
    handles, labels = [], []
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=False):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        last = [i for i, label in enumerate(labels) if label.startswith(("shaded:", "chance"))]  # keys after lines
        order = [i for i in range(len(labels)) if i not in last] + last
        handles, labels = [handles[i] for i in order], [labels[i] for i in order]
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _not_estimable(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize="small")


def plot_train_size(rows: list[dict], path: Path) -> Path | None:
    """AUC and TPR@1%FPR against the training-set size (paper figure 5).

    One column per setting; for each victim a row of AUC panels and a row of TPR@1%FPR panels.
    Each panel holds the uncalibrated (dashed) and the calibrated (solid) attack with its 95%
    interval as a band, so a panel answers one question at a glance.
    """
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

    def panel_of(row):
        return (victim_label(row), row["setting"])

    def line(row):
        return (row["setting"], row["calibration"])

    metrics = (("auc", "ROC AUC"), ("tpr_at_fpr_0.01", "TPR @ 1% FPR"))
    points = {key: curve_points(rows, "train_size", key, panel_of, line) for key, _ in metrics}
    bands = {key: curve_bands(rows, "train_size", key, panel_of, line) for key, _ in metrics}
    victims = sorted({victim_label(row) for row in rows})
    settings = _ordered_settings(rows)
    labels = _labels(rows)
    all_sizes = [row["train_size"] for row in rows if row.get("train_size") is not None]
    plt, fig, axes = _figure(len(victims) * len(metrics), len(settings))
    for v, victim in enumerate(victims):
        for m, (key, ylabel) in enumerate(metrics):
            for col, setting in enumerate(settings):
                ax = axes[v * len(metrics) + m][col]
                curves = points[key].get((victim, setting), {})
                for (_, calibration), pts in sorted(curves.items(), key=line_order):
                    calibrated = line_style(calibration) == "-"
                    _plot_line(
                        ax,
                        pts,
                        bands[key].get((victim, setting), {}).get((setting, calibration)),
                        line_style(calibration),
                        marker="o",
                        markersize=3,
                        color=CALIBRATION_COLOURS[calibrated],
                        label=_calibration_label(calibration),
                    )
                if key == "auc":
                    _auc_axes(ax, f"{victim}\n{labels[setting]}")
                    ax.set_ylim(0.3, 1.02)
                else:
                    ax.axhline(0.01, color="grey", linewidth=0.8, linestyle=":", label="chance (TPR = FPR)")
                    ax.set_ylabel(ylabel)
                    ax.set_title(f"{victim}\n{labels[setting]}", fontsize="medium")
                    ax.set_ylim(-0.02, 1.02)
                    ax.grid(alpha=0.3)
                    if not curves:
                        _not_estimable(ax, "not estimable\n(needs >= 100 non-members)")
                _log_x(ax, all_sizes, "training-set size")
    return _save(plt, fig, path)


def plot_epsilon(rows: list[dict], path: Path) -> Path | None:
    """DP victims: AUC against epsilon (log axis), one panel per setting, and the sample quality.

    Runs of the same data / model / training-set size without DP, where present, are drawn as
    thin horizontal "no DP" lines in the style of their calibration.
    """
    dp_rows = [row for row in rows if row.get("epsilon") is not None and math.isfinite(float(row["epsilon"]))]
    if not dp_rows:
        return None

    def panel(row):
        return f"{row['data']}/{row['model']} n={row['train_size']}"

    def cell(row):
        return (panel(row), row["setting"])

    def line(row):
        return (row["setting"], row["calibration"])

    panels = sorted({panel(row) for row in dp_rows})
    baseline_rows = [row for row in rows if row.get("epsilon") is None and panel(row) in panels]
    auc = curve_points(dp_rows, "epsilon", "auc", cell, line)
    auc_bands = curve_bands(dp_rows, "epsilon", "auc", cell, line)
    quality = curve_points(dp_rows, "epsilon", "fid_classifier", panel, lambda row: "quality")
    baseline_auc = curve_points(baseline_rows, "train_size", "auc", cell, line)
    baseline_quality = curve_points(baseline_rows, "train_size", "fid_classifier", panel, lambda row: "quality")
    settings = _ordered_settings(dp_rows)
    labels = _labels(dp_rows)
    epsilons = [float(row["epsilon"]) for row in dp_rows]
    n_cols = min(3, len(settings) + 1)  # the settings and the quality panel, wrapped three to a row
    rows_per_panel = math.ceil((len(settings) + 1) / n_cols)
    plt, fig, axes = _figure(len(panels) * rows_per_panel, n_cols)

    def cell_axes(r: int, index: int):
        return axes[r * rows_per_panel + index // n_cols][index % n_cols]

    for r, name in enumerate(panels):
        for col, setting in enumerate(settings):
            ax = cell_axes(r, col)
            for (_, calibration), points in sorted(auc.get((name, setting), {}).items(), key=line_order):
                calibrated = line_style(calibration) == "-"
                _plot_line(
                    ax,
                    points,
                    auc_bands.get((name, setting), {}).get((setting, calibration)),
                    line_style(calibration),
                    marker="o",
                    markersize=3,
                    color=CALIBRATION_COLOURS[calibrated],
                    label=_calibration_label(calibration),
                )
            for (_, calibration), points in sorted(baseline_auc.get((name, setting), {}).items(), key=line_order):
                calibrated = line_style(calibration) == "-"
                ax.axhline(
                    points[0][1],
                    linestyle=line_style(calibration),
                    linewidth=0.9,
                    alpha=0.45,
                    color=CALIBRATION_COLOURS[calibrated],
                    label=f"no DP ({_calibration_label(calibration)})",
                )
            _auc_axes(ax, f"{name}\n{labels[setting]}")
            ax.set_ylim(0.3, 1.02)
            _log_x(ax, epsilons, "epsilon (DP budget)")
        ax = cell_axes(r, len(settings))
        points = quality.get(name, {}).get("quality")
        if points:
            xs, ys = zip(*points, strict=False)
            ax.plot(xs, ys, "-", marker="s", markersize=3, color="black", label="sample quality (DP)")
            baseline = baseline_quality.get(name, {}).get("quality")
            if baseline:
                ax.axhline(
                    baseline[0][1],
                    color="black",
                    linewidth=0.9,
                    alpha=0.45,
                    linestyle="--",
                    label="sample quality (no DP)",
                )
            _log_x(ax, epsilons, "epsilon (DP budget)")
        else:
            _not_estimable(ax, "no quality.json\n(python -m ganleaks.evaluation.quality)")
        ax.set_xlabel("epsilon (DP budget)")
        ax.set_ylabel("Fréchet distance\n(lower = better samples)")
        ax.set_title(f"{name}\nsample quality", fontsize="medium")
        ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def plot_k(rows: list[dict], path: Path) -> Path | None:
    """AUC against k, for the settings where k applies (``uses_k``): one panel per victim and setting,
    one line per training-set size (colour) and calibration (dashed: uncalibrated, solid: calibrated)."""
    uses_k = {name for name, info in settings_of(rows).items() if info.uses_k}
    k_rows = [row for row in rows if row.get("setting") in uses_k and row.get("k") is not None]
    if not varies(k_rows, "k", ("data", "model", "setting", "train_size")):
        return None

    def cell(row):
        return (victim_label(row), row["setting"])

    def line(row):
        return (row["setting"], row["calibration"], row["train_size"])

    curves = curve_points(k_rows, "k", "auc", cell, line)
    bands = curve_bands(k_rows, "k", "auc", cell, line)
    victims = sorted({victim_label(row) for row in k_rows})
    settings = _ordered_settings(k_rows)
    labels = _labels(k_rows)
    sizes = sorted({row["train_size"] for row in k_rows}, key=lambda s: (s is None, s))
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    colours = {size: palette(i % 10) for i, size in enumerate(sizes)}
    ks = [float(row["k"]) for row in k_rows]
    plt, fig, axes = _figure(len(victims), len(settings))
    for r, victim in enumerate(victims):
        for col, setting in enumerate(settings):
            ax = axes[r][col]
            for (_, calibration, size), points in sorted(curves.get((victim, setting), {}).items(), key=line_order):
                _plot_line(
                    ax,
                    points,
                    bands.get((victim, setting), {}).get((setting, calibration, size)),
                    line_style(calibration),
                    marker="o",
                    markersize=3,
                    color=colours[size],
                    label=f"n={size} ({_calibration_label(calibration)})",
                )
            _auc_axes(ax, f"{victim}\n{labels[setting]}")
            _log_x(ax, ks, "k (generated samples)")
    return _save(plt, fig, path)
