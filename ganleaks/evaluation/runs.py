"""Reading finished run folders: attack runs into report rows, training runs for the quality pass.

An attack run is a folder holding ``metrics.json``; the facts of its ``run.json`` (written with the
results) say what was attacked and how, and the victim's folder adds its sample quality
(``quality.json``). Runs from before those facts were recorded are read as before: facts from
``metrics.json`` and the config (``run.json``'s, else ``.hydra/config.yaml``), the privacy budget from
the victim's ``privacy.json``. A training run (for the
quality pass) is a folder holding an exported ``generator.json``. Reads files only, no matplotlib;
how a setting is shown and ordered comes from its engine class (:func:`setting_info`), imported
(with torch) the first time a row's setting is described.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from ganleaks.evaluation.estimates import INTERVAL_KEYS

if TYPE_CHECKING:
    from ganleaks.settings.registry import SettingInfo

log = logging.getLogger("ganleaks.report")  # the name the report has always logged under


class NoRunsFoundError(FileNotFoundError):
    """No ``metrics.json`` under the folders given to the report."""


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


def _load_record(run_dir: Path, metrics: dict) -> tuple[DictConfig | None, dict]:
    """The config a run's results were computed with, and the facts it recorded (empty for older runs).

    Both come from ``run.json`` (written with the results) when it matches ``metrics.json``; else,
    for runs written before run.json existed, the config is ``.hydra/config.yaml`` (written when a
    command starts) and there are no facts.
    """
    record = _read_json(run_dir / "run.json")
    if record is not None and isinstance(record.get("config"), dict):
        if "metrics" not in record or json.dumps(record["metrics"], sort_keys=True) == json.dumps(
            metrics, sort_keys=True
        ):
            facts = record.get("facts")
            return OmegaConf.create(record["config"]), facts if isinstance(facts, dict) else {}
        log.warning(
            "%s/run.json and metrics.json disagree (a write was interrupted?); reading .hydra/config.yaml", run_dir
        )
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        log.warning("%s has no .hydra/config.yaml: data, model and sizes are left empty", run_dir)
        return None, {}
    config = OmegaConf.load(path)
    assert isinstance(config, DictConfig), f"{path} is a list, not a run's config"
    return config, {}


def resolve_victim_dir(victim_run_dir: str | None, attack_dir: Path) -> Path | None:
    """The victim's run folder of an attack, also when the attack recorded a relative path.

    A relative path is relative to where the attack was launched: tried from the current folder,
    then from each folder above the attack run (the usual layout is ``<root>/attack/...`` beside
    ``<root>/train/...``, launched from the folder holding ``<root>``). A study published under
    another root (``outputs/cpu_size/train/...`` committed as ``results/cpu_size/train/...``) is
    found by then dropping the recorded path's leading folders, down to its ``train`` folder.
    """
    if not victim_run_dir:
        return None
    path = Path(victim_run_dir).expanduser()
    if path.is_absolute():
        return path if path.is_dir() else None
    bases = [Path.cwd(), *attack_dir.parents]
    last_train = max((i for i, part in enumerate(path.parts) if part == "train"), default=0)
    for start in range(last_train + 1):
        suffix = Path(*path.parts[start:])
        for base in bases:
            if (base / suffix).is_dir():
                return (base / suffix).resolve()
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


def _calibration_label(name: Any, metrics: dict) -> Any:
    """The calibration as the tables show it: ``references`` with its R and transform (``references R=4``,
    ``references R=8 log``), so that a sweep over R is told apart; the others as recorded."""
    fit = metrics.get("references")
    if name != "references" or not isinstance(fit, dict) or fit.get("num_references") is None:
        return name
    transform = fit.get("transform")
    return f"references R={fit['num_references']}" + ("" if transform in (None, "none") else f" {transform}")


def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """One table row: the run's metrics, what it attacked and how (its recorded facts) and the victim's quality."""
    run_dir = Path(run_dir)
    metrics = _read_json(run_dir / "metrics.json")
    if metrics is None:
        raise ValueError(f"{run_dir / 'metrics.json'} is missing, not valid JSON or not a JSON object")
    cfg, facts = _load_record(run_dir, metrics)

    def fact(key: str, derived: Any) -> Any:
        """The recorded fact (absent: not applicable, e.g. k of a setting without k); older runs: ``derived``."""
        return facts.get(key) if facts else derived

    privacy_enabled = bool(_select(cfg, "privacy.enabled", False))
    row: dict[str, Any] = {
        "data": fact("data", _select(cfg, "data.name")),
        "model": fact("model", _select(cfg, "model.name")),
        "privacy": fact(
            "privacy", metrics.get("privacy") or _select(cfg, "privacy.name", "dp" if privacy_enabled else "none")
        ),
        "noise_multiplier": fact(
            "noise_multiplier", _select(cfg, "privacy.noise_multiplier") if privacy_enabled else None
        ),
        "train_size": fact("train_size", _select(cfg, "data.train_size")),
        "setting": fact("setting", metrics.get("setting", _select(cfg, "setting.name"))),
        "setting_target": _select(cfg, "setting._target_"),  # its engine class, to describe it
        "calibration": _calibration_label(
            fact("calibration", metrics.get("calibration", _select(cfg, "calibration.name"))), metrics
        ),
        "distance": fact("distance", metrics.get("distance", _select(cfg, "distance.name"))),
        "k": fact("k", _select(cfg, "setting.k")),
        "seed": fact("seed", metrics.get("seed", _select(cfg, "seed"))),
        "n": (metrics.get("n_members") or 0) + (metrics.get("n_nonmembers") or 0),
        "run_dir": str(run_dir),
        "victim_run_dir": fact("victim_run_dir", metrics.get("victim_run_dir", _select(cfg, "victim.run_dir"))),
        "uses_wandb": _uses_wandb(cfg, run_dir),
        "wandb_project": _select(cfg, "logger.project") or _select(cfg, "logger.wandb.project"),
        "epsilon": fact("epsilon", metrics.get("epsilon")),
        "delta": fact("delta", metrics.get("delta")),
        # a training run made here ("run") or a user's artefact ("samples", "generator", ...)
        "victim_kind": facts.get("victim_kind") or metrics.get("victim_kind") or "run",
    }
    for key in (*INTERVAL_KEYS, "accuracy", "n_failed", "wall_seconds"):
        row[key] = metrics.get(key)
    for key in INTERVAL_KEYS:  # absent in runs from before intervals: no interval, no band
        row[f"{key}_ci"] = _interval(metrics.get(f"{key}_ci"))
    row["not_estimable"] = metrics.get("not_estimable") or {}
    audit = metrics.get("privacy_audit")
    row["privacy_audit"] = audit if isinstance(audit, dict) else None  # audit=canaries: the epsilon bounds
    victim_dir = resolve_victim_dir(row["victim_run_dir"], run_dir)
    if victim_dir is not None:
        if row["epsilon"] is None:
            privacy = _read_json(victim_dir / "privacy.json")
            row["epsilon"] = None if privacy is None else privacy.get("epsilon")
            if privacy is not None and row["noise_multiplier"] is None:
                row["noise_multiplier"] = privacy.get("noise_multiplier")
        quality = _read_json(victim_dir / "quality.json")
        row["fid_classifier"] = None if quality is None else quality.get("fid_classifier")
        row["fid_classifier_ci"] = None if quality is None else _interval(quality.get("fid_classifier_ci"))
    else:
        row["fid_classifier"] = row["fid_classifier_ci"] = None
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


def setting_info(row: dict) -> SettingInfo:
    """How the setting of ``row`` is shown and ordered, from its engine class's declarations.

    The class is the one the run's config recorded (``setting_target``), else the registry's
    ``conf/setting/<name>.yaml`` (runs recorded before the engines moved); an unknown setting is
    described by its name (:func:`ganleaks.settings.registry.describe_setting`).
    """
    from ganleaks.settings.registry import describe_setting

    setting, target = row.get("setting"), row.get("setting_target")
    return describe_setting(None if setting is None else str(setting), target if isinstance(target, str) else None)


def settings_of(rows: Iterable[dict]) -> dict[str, SettingInfo]:
    """``{setting name: its SettingInfo}`` over ``rows`` (the first row of a name describes it), in report order."""
    infos: dict[str, SettingInfo] = {}
    for row in rows:
        if row.get("setting") is not None and str(row["setting"]) not in infos:
            infos[str(row["setting"])] = setting_info(row)
    return dict(sorted(infos.items(), key=lambda item: item[1].rank))


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
        setting_info(row).rank,
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


# Training runs (the quality pass)


def read_run_config(run_dir: Path) -> DictConfig:
    """The config a training run was trained with: ``.hydra/config.yaml``, or the ``config.yaml`` a published run
    keeps (``ganleaks.evaluation.publish``: the same config, resolved)."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file() and (run_dir / "config.yaml").is_file():
        path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {run_dir} is not a ganleaks training run (no .hydra/config.yaml, no published "
            "config.yaml; pass cfg_data)"
        )
    config = OmegaConf.load(path)
    assert isinstance(config, DictConfig), f"{path} is a list, not a run's config"
    return config


def find_training_runs(paths: Sequence[str | Path], include_reference: bool = False) -> list[Path]:
    """Training run folders (with an exported generator) under ``paths``, victims only by default."""
    runs: set[Path] = set()
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        candidates = [root / "generator.json"] if (root / "generator.json").is_file() else []
        for marker in candidates or sorted(root.rglob("generator.json")):
            run = marker.parent
            trained_on = run / "trained_on.json"
            part = json.loads(trained_on.read_text()).get("part") if trained_on.is_file() else "members"
            if part == "members" or include_reference:
                runs.add(run)
    return sorted(runs)
