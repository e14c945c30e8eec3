"""Gather attack runs into one table and the paper's figures.

    python -m ganleaks.report outputs/cpu_size/attack [more folders...] [--out DIR]
    ganleaks-report outputs/cpu_size/attack

Every folder under the given ones that holds a ``metrics.json`` is an attack run; its
``run.json`` (written with the results; ``.hydra/config.yaml`` for older runs) says what was attacked.
Writes into ``--out`` (default: ``report/`` inside the first folder given):

* ``runs.csv`` and ``runs.md``: one row per attack run (sorted), with the victim's sample quality
  (``quality.json`` in the victim's run folder, from ``python -m ganleaks.evaluation.quality``);
* ``auc_vs_train_size.png``: AUC and TPR@1%FPR against the training-set size (log axis), one panel
  per victim, one colour per setting, calibrated solid and uncalibrated dashed (paper figure 5);
* ``epsilon_vs_auc.png``: DP victims, AUC against epsilon beside the sample quality;
* ``auc_vs_k.png``: full black-box / Monte-Carlo AUC against the number of generated samples k.

Metrics are shown with their 95% bootstrap interval where the run recorded one (the table as
``0.912 [0.871, 0.947]``, the figures as a shaded band); a metric that was not estimable (a TPR
at an FPR the non-members cannot resolve) is ``n/a``. Runs written before intervals existed load
and render without them. A figure is written only when the runs vary along its x axis. When the runs were logged to
Weights & Biases, the table and the figures are also logged there as one ``report`` run (offline
unless ``WANDB_MODE`` says otherwise); a W&B failure is logged and never stops the report.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganleaks.evaluation.estimates import INTERVAL_KEYS, format_estimate

log = logging.getLogger("ganleaks.report")

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
SETTING_ORDER = ["fullbb", "partialbb", "whitebox", "discriminator", "montecarlo"]
SWEEP_K_SETTINGS = ("fullbb", "montecarlo")


class NoRunsFoundError(FileNotFoundError):
    """No ``metrics.json`` under the folders given to the report."""


@dataclass
class Report:
    """What ``build_report`` found and wrote."""

    rows: list[dict[str, Any]]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    markdown: str = ""


# --------------------------------------------------------------------------------------------
# Gathering runs


def find_attack_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every folder holding a ``metrics.json`` at or below ``paths`` (sorted, without duplicates)."""
    runs: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; pass attack run folders or the folders above them")
        if path.is_file():
            if path.name != "metrics.json":
                raise NoRunsFoundError(f"{path} is a file; pass attack run folders (holding metrics.json)")
            runs.add(path.parent.resolve())
            continue
        runs.update(metrics.parent.resolve() for metrics in path.rglob("metrics.json"))
    return sorted(runs)


def _select(cfg: DictConfig | None, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    try:
        value = OmegaConf.select(cfg, key, default=default, throw_on_resolution_failure=False)
    except Exception:  # an interpolation to a resolver that only exists inside a Hydra app
        return default
    return default if value is None else value


def _load_config(run_dir: Path) -> DictConfig | None:
    """The config a run's results were computed with: its ``run.json`` (written with the results), else,
    for runs written before run.json existed, ``.hydra/config.yaml`` (written when a command starts)."""
    record = _read_json(run_dir / "run.json")
    if record is not None and isinstance(record.get("config"), dict):
        metrics = _read_json(run_dir / "metrics.json")
        if "metrics" not in record or json.dumps(record["metrics"], sort_keys=True) == json.dumps(
            metrics, sort_keys=True
        ):
            return OmegaConf.create(record["config"])
        log.warning(
            "%s/run.json and metrics.json disagree (a write was interrupted?); reading .hydra/config.yaml", run_dir
        )
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        log.warning("%s has no .hydra/config.yaml: data, model and sizes are left empty", run_dir)
        return None
    config = OmegaConf.load(path)
    assert isinstance(config, DictConfig), f"{path} is a list, not a run's config"
    return config


def resolve_victim_dir(victim_run_dir: str | None, attack_dir: Path) -> Path | None:
    """The victim's run folder of an attack, also when the attack recorded a relative path.

    A relative path is relative to where the attack was launched: tried from the current folder,
    then from each folder above the attack run (the usual layout is ``<root>/attack/...`` beside
    ``<root>/train/...``, launched from the folder holding ``<root>``).
    """
    if not victim_run_dir:
        return None
    path = Path(victim_run_dir).expanduser()
    if path.is_absolute():
        return path if path.is_dir() else None
    for base in [Path.cwd(), *attack_dir.parents]:
        if (base / path).is_dir():
            return (base / path).resolve()
    return None


def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None (with a warning) when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError) as error:
        log.warning("cannot read %s (%s); ignoring it", path, error)
        return None
    if value is not None and not isinstance(value, dict):
        log.warning("cannot read %s (a JSON %s, not an object); ignoring it", path, type(value).__name__)
        return None
    return value


def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """One table row: the run's metrics, what it attacked (from its config) and the victim's quality."""
    run_dir = Path(run_dir)
    metrics = _read_json(run_dir / "metrics.json")
    if metrics is None:
        raise ValueError(f"{run_dir / 'metrics.json'} is missing, not valid JSON or not a JSON object")
    cfg = _load_config(run_dir)
    privacy_enabled = bool(_select(cfg, "privacy.enabled", False))
    row: dict[str, Any] = {
        "data": _select(cfg, "data.name"),
        "model": _select(cfg, "model.name"),
        "privacy": _select(cfg, "privacy.name", "dp" if privacy_enabled else "none"),
        "noise_multiplier": _select(cfg, "privacy.noise_multiplier") if privacy_enabled else None,
        "train_size": _select(cfg, "data.train_size"),
        "setting": metrics.get("setting", _select(cfg, "setting.name")),
        "calibration": metrics.get("calibration", _select(cfg, "calibration.name")),
        "distance": metrics.get("distance", _select(cfg, "distance.name")),
        "k": _select(cfg, "setting.k"),
        "seed": metrics.get("seed", _select(cfg, "seed")),
        "n": (metrics.get("n_members") or 0) + (metrics.get("n_nonmembers") or 0),
        "run_dir": str(run_dir),
        "victim_run_dir": metrics.get("victim_run_dir", _select(cfg, "victim.run_dir")),
        "uses_wandb": _uses_wandb(cfg, run_dir),
        "wandb_project": _select(cfg, "logger.project") or _select(cfg, "logger.wandb.project"),
    }
    for key in (
        "auc",
        "average_precision",
        "tpr_at_fpr_0.001",
        "tpr_at_fpr_0.01",
        "tpr_at_fpr_0.1",
        "accuracy",
        "n_failed",
        "wall_seconds",
        "epsilon",
    ):
        row[key] = metrics.get(key)
    for key in INTERVAL_KEYS:  # absent in runs from before intervals: no interval, no band
        row[f"{key}_ci"] = _interval(metrics.get(f"{key}_ci"))
    row["not_estimable"] = metrics.get("not_estimable") or {}
    victim_dir = resolve_victim_dir(row["victim_run_dir"], run_dir)
    if victim_dir is not None:
        if row["epsilon"] is None:
            privacy = _read_json(victim_dir / "privacy.json")
            row["epsilon"] = None if privacy is None else privacy.get("epsilon")
            if privacy is not None and row["noise_multiplier"] is None:
                row["noise_multiplier"] = privacy.get("noise_multiplier")
        quality = _read_json(victim_dir / "quality.json")
        row["fid_classifier"] = None if quality is None else quality.get("fid_classifier")
    else:
        row["fid_classifier"] = None
    if row["epsilon"] is not None and row["privacy"] == "none":
        row["privacy"] = "dp"
    return row


def _interval(value: Any) -> list[float] | None:
    """``[low, high]`` as floats, or None for a missing, null or malformed interval."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(low) or math.isnan(high) else [low, high]


def _uses_wandb(cfg: DictConfig | None, run_dir: Path) -> bool:
    if (run_dir / "wandb").is_dir():
        return True
    logger = _select(cfg, "logger")
    if logger is None:
        return False
    text = OmegaConf.to_yaml(logger) if isinstance(logger, DictConfig) else str(logger)
    return "wandb" in text.lower() and "_target_" in text


def _sort_key(row: dict) -> tuple:
    def text(value):
        return "" if value is None else str(value)

    def number(value):
        return math.inf if value is None else float(value)

    setting = row.get("setting")
    return (
        text(row["data"]),
        text(row["model"]),
        number(row.get("noise_multiplier")),
        number(row["train_size"]),
        SETTING_ORDER.index(setting) if setting in SETTING_ORDER else len(SETTING_ORDER),
        text(setting),
        text(row["calibration"]),
        text(row["distance"]),
        number(row["k"]),
        number(row["seed"]),
        row["run_dir"],
    )


def gather(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Rows of every attack run under ``paths``; raises ``NoRunsFoundError`` when there are none."""
    runs = find_attack_runs(paths)
    if not runs:
        raise NoRunsFoundError(
            f"no attack runs (metrics.json) under {', '.join(map(str, paths))}; run attacks first "
            "(python attack.py ...) or pass the folder they wrote (e.g. outputs/attack)"
        )
    rows = []
    for run in runs:
        try:
            rows.append(load_run(run))
        except ValueError as error:
            log.warning("skipping %s: %s", run, error)
    if not rows:
        raise NoRunsFoundError(
            f"none of the {len(runs)} metrics.json files under {', '.join(map(str, paths))} could be read"
        )
    return sorted(rows, key=_sort_key)


# --------------------------------------------------------------------------------------------
# Tables


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


def _raw_columns() -> list[str]:
    """Keys of the raw table (CSV, W&B): the columns, each interval as ``<key>_ci_low, <key>_ci_high``."""
    keys = []
    for key, _, _ in COLUMNS:
        keys.append(key)
        if key in INTERVAL_KEYS:
            keys += [f"{key}_ci_low", f"{key}_ci_high"]
    return keys


def _raw_value(row: dict, key: str) -> Any:
    for end, index in (("_ci_low", 0), ("_ci_high", 1)):
        if key.endswith(end):
            interval = row.get(key.removesuffix(end) + "_ci")
            return None if interval is None else interval[index]
    return row.get(key)


def to_csv(rows: list[dict]) -> str:
    """The table as CSV (raw values, one header row of column keys; intervals as ``_ci_low``/``_ci_high``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = _raw_columns()
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if _raw_value(row, key) is None else _raw_value(row, key) for key in columns])
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


# --------------------------------------------------------------------------------------------
# Figures


def _victim_label(row: dict) -> str:
    label = f"{row['data']}/{row['model']}"
    if row.get("noise_multiplier") is not None:
        label += f" (DP, sigma={row['noise_multiplier']:g})"
    return label


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def _curves(rows: list[dict], x_key: str, y_key: str, panel_key, line_key) -> dict:
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


def _bands(rows: list[dict], x_key: str, y_key: str, panel_key, line_key) -> dict:
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


def _line_order(item) -> tuple:
    """Legend order: settings as in the paper, uncalibrated before calibrated, then the rest."""
    setting, calibration, *rest = item[0]
    return (
        SETTING_ORDER.index(setting) if setting in SETTING_ORDER else 99,
        str(setting),
        _style(calibration) == "-",
        str(calibration),
        *((r is None, 0 if r is None else r) for r in rest),
    )


def _style(calibration: str | None) -> str:
    return "-" if calibration not in (None, "none") else "--"


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


def _varies(rows: list[dict], key: str, group_keys: Sequence[str]) -> bool:
    values = defaultdict(set)
    for row in rows:
        if row.get(key) is not None:
            values[tuple(row.get(g) for g in group_keys)].add(row[key])
    return any(len(v) > 1 for v in values.values())


def plot_train_size(rows: list[dict], path: Path) -> Path | None:
    """AUC and TPR@1%FPR against the training-set size, one panel per victim."""
    sizes = defaultdict(set)
    for row in rows:
        sizes[_victim_label(row)].add(row.get("train_size"))
    rows = [row for row in rows if len(sizes[_victim_label(row)] - {None}) > 1]  # victims swept over size
    if not rows:
        return None
    cells = defaultdict(set)
    for row in rows:
        cells[(_victim_label(row), row["setting"], row["calibration"], row["train_size"])].add(
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

    auc = _curves(rows, "train_size", "auc", _victim_label, line)
    tpr = _curves(rows, "train_size", "tpr_at_fpr_0.01", _victim_label, line)
    bands = {
        "auc": _bands(rows, "train_size", "auc", _victim_label, line),
        "tpr": _bands(rows, "train_size", "tpr_at_fpr_0.01", _victim_label, line),
    }
    panels = sorted(auc)
    colours = _setting_colours(row["setting"] for row in rows)
    plt, fig, axes = _figure(2, len(panels))
    for col, panel in enumerate(panels):
        for r, (curves, band, ylabel) in enumerate(
            ((auc, bands["auc"], "ROC AUC"), (tpr, bands["tpr"], "TPR @ 1% FPR"))
        ):
            ax = axes[r][col]
            for (setting, calibration), points in sorted(curves.get(panel, {}).items(), key=_line_order):
                _plot_line(
                    ax,
                    points,
                    band.get(panel, {}).get((setting, calibration)),
                    _style(calibration),
                    marker="o",
                    markersize=3,
                    color=colours[setting],
                    label=f"{setting} ({'calibrated' if _style(calibration) == '-' else 'uncalibrated'})",
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
    auc = _curves(dp_rows, "epsilon", "auc", panel, lambda row: (row["setting"], row["calibration"]))
    auc_bands = _bands(dp_rows, "epsilon", "auc", panel, lambda row: (row["setting"], row["calibration"]))
    quality = _curves(dp_rows, "epsilon", "fid_classifier", panel, lambda row: "quality")
    baseline_auc = _curves(baseline_rows, "train_size", "auc", panel, lambda row: (row["setting"], row["calibration"]))
    baseline_quality = _curves(baseline_rows, "train_size", "fid_classifier", panel, lambda row: "quality")
    colours = _setting_colours(row["setting"] for row in dp_rows + baseline_rows)
    plt, fig, axes = _figure(len(panels), 2)
    for r, name in enumerate(panels):
        ax = axes[r][0]
        for (setting, calibration), points in sorted(auc.get(name, {}).items(), key=_line_order):
            _plot_line(
                ax,
                points,
                auc_bands.get(name, {}).get((setting, calibration)),
                _style(calibration),
                marker="o",
                markersize=3,
                color=colours[setting],
                label=f"{setting} ({'calibrated' if _style(calibration) == '-' else 'uncalibrated'})",
            )
        for (setting, calibration), points in sorted(baseline_auc.get(name, {}).items(), key=_line_order):
            ax.axhline(points[0][1], linestyle=_style(calibration), linewidth=0.8, alpha=0.5, color=colours[setting])
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
    if not _varies(k_rows, "k", ("data", "model", "setting", "train_size")):
        return None

    def line(row):
        return (row["setting"], row["calibration"], row["train_size"])

    curves = _curves(k_rows, "k", "auc", _victim_label, line)
    bands = _bands(k_rows, "k", "auc", _victim_label, line)
    colours = _setting_colours(row["setting"] for row in k_rows)
    panels = sorted(curves)
    plt, fig, axes = _figure(1, len(panels))
    for col, panel in enumerate(panels):
        ax = axes[0][col]
        sizes = sorted({key[2] for key in curves[panel]}, key=lambda s: (s is None, s))
        markers = dict(zip(sizes, "osD^v<>p*h", strict=False))
        for (setting, calibration, size), points in sorted(curves[panel].items(), key=_line_order):
            _plot_line(
                ax,
                points,
                bands.get(panel, {}).get((setting, calibration, size)),
                _style(calibration),
                marker=markers.get(size, "o"),
                markersize=3,
                color=colours[setting],
                label=f"{setting} n={size} ({'calibrated' if _style(calibration) == '-' else 'uncalibrated'})",
            )
        _auc_axes(ax, "k (generated samples)", panel)
    return _save(plt, fig, path)


# --------------------------------------------------------------------------------------------
# W&B


def log_to_wandb(report: Report, project: str | None = None) -> bool:
    """Log the table and figures as one W&B run (``job_type="report"``); never raises.

    Mode: ``WANDB_MODE`` from the environment, ``offline`` when unset. Returns whether it logged.
    """
    try:
        import wandb
    except Exception as error:  # not installed, or broken
        log.warning("wandb is not available (%s); the report stays in %s", error, report.out_dir)
        return False
    project = project or next((r["wandb_project"] for r in report.rows if r.get("wandb_project")), None) or "ganleaks"
    run = None
    try:
        run = wandb.init(
            project=str(project),
            job_type="report",
            name="ganleaks-report",
            mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]  # wandb checks the value
            dir=str(report.out_dir),
        )
        columns = _raw_columns()
        table = wandb.Table(
            columns=columns,  # type: ignore[arg-type]  # wandb types it list[str | int]; list is invariant
            data=[[_raw_value(row, key) for key in columns] for row in report.rows],
            allow_mixed_types=True,
        )  # missing values (None) beside numbers
        payload: dict[str, Any] = {"attack_runs": table}
        for name, path in report.files.items():
            if path.suffix == ".png":
                payload[name] = wandb.Image(str(path))
        run.log(payload)
        log.info("logged the report to W&B project %s (%s)", project, os.environ.get("WANDB_MODE", "offline"))
        return True
    except Exception as error:  # offline, no credentials, network: the files on disk are the report
        log.warning("could not log the report to W&B (%s); the report stays in %s", error, report.out_dir)
        return False
    finally:
        if run is not None:
            try:
                run.finish()
            except Exception as error:
                log.warning("wandb finish failed: %s", error)


# --------------------------------------------------------------------------------------------
# Entry points


def build_report(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None, wandb: str = "auto"
) -> Report:
    """Gather the attack runs under ``paths``, write the table and figures into ``out_dir``.

    Args:
        paths: attack run folders or folders above them.
        out_dir: where to write; default ``<paths[0]>/report``.
        wandb: ``"auto"`` (log to W&B when the runs did), ``"on"`` or ``"off"``.

    Raises:
        NoRunsFoundError: nothing to report.
    """
    if not paths:
        raise NoRunsFoundError("pass at least one folder holding attack runs")
    rows = gather(paths)
    out = Path(out_dir) if out_dir is not None else Path(paths[0]) / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(rows=rows, out_dir=out)
    (out / "runs.csv").write_text(to_csv(rows))
    report.markdown = to_markdown(rows, relative_to=Path(paths[0]).resolve())
    (out / "runs.md").write_text(report.markdown)
    report.files.update({"table_csv": out / "runs.csv", "table_markdown": out / "runs.md"})
    for name, plot in (("auc_vs_train_size", plot_train_size), ("epsilon_vs_auc", plot_epsilon), ("auc_vs_k", plot_k)):
        written = plot(rows, out / f"{name}.png")
        if written is not None:
            report.files[name] = written
    log.info("report of %d attack runs -> %s (%s)", len(rows), out, ", ".join(p.name for p in report.files.values()))
    if wandb == "on" or (wandb == "auto" and any(row["uses_wandb"] for row in rows)):
        log_to_wandb(report)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ganleaks-report",
        description="Gather attack runs (folders holding metrics.json) into runs.csv / runs.md and figures.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="attack run folders or folders above them")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR/report of the first one)")
    parser.add_argument(
        "--wandb",
        choices=["auto", "on", "off"],
        default="auto",
        help="log the report to W&B: auto = when the runs were logged there (default)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = build_report(args.run_dirs, args.out, args.wandb)
    except FileNotFoundError as error:
        parser.exit(2, f"error: {error}\n")
    print(report.markdown, end="")
    print(f"\n{len(report.rows)} attack runs -> {report.out_dir}")


if __name__ == "__main__":
    main()
