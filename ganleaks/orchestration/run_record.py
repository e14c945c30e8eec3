"""``run.json``: the record of a finished attack, written with its results.

Hydra writes ``.hydra/config.yaml`` when a command *starts*, so a later command into the same
folder that is refused (another ``setting.k``, say) would leave a finished run's results described
by the refused run's settings. ``run.json`` is written only together with ``scores.csv`` and
``metrics.json``: it holds the config the results were computed with (resolved), the metrics, and
a copy of the ``.hydra/*.yaml`` files of that invocation, which :func:`restore_hydra_files` puts
back when a later command into the folder fails.

Its ``model.nets`` are the victim's own (:func:`_with_victim_nets`): the networks the attack rebuilt
from the victim's exported ``generator.json`` / ``discriminator.json``, not the model group's defaults.

It also holds the run's ``facts`` (:func:`attack_facts`): what was attacked (victim folder, data,
model, training-set size, privacy budget) and how (setting, k, distance, calibration, seed), which
the report reads instead of re-deriving them from a config; and its ``identity``
(``orchestration/plan.py`` ``run_identity``): per model, the resume key its scores were computed
under (the setting's keys, seed, number of queries, distance, the query records' fingerprint and
which were queried, the model's content identity: weights' or samples' sha256 and every declared
field), and ``fingerprint``, one sha256 over all of them: every score traceable to its exact inputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganleaks.io import atomic_write_text

log = logging.getLogger(__name__)

RUN_RECORD_NAME = "run.json"
HYDRA_SUBDIR = ".hydra"
RECORD_VERSION = 3  # 2: with "facts"; 3: with "identity"
# The facts of an attack, in this order; k only where the setting has one (the k used: k_requested is
# setting.k where that differs, e.g. a sample set of fewer samples), nn_k (used) only where a setting
# searched a bank for its initial latents, epsilon / delta / noise_multiplier only for a victim trained with DP.
FACT_KEYS = (
    "setting",
    "k",
    "k_requested",
    "nn_k",
    "nn_k_requested",
    "calibration",
    "distance",
    "victim_run_dir",
    "reference_run_dir",
    "data",
    "model",
    "train_size",
    "privacy",
    "noise_multiplier",
    "epsilon",
    "delta",
    "seed",
)


def attack_facts(
    cfg: DictConfig, victim_facts: dict, reference_dir: Path | str | None, used: dict | None = None
) -> dict:
    """What an attack ran on and with (``FACT_KEYS``): the setting's and the config's facts, and what
    the victim says about itself (:meth:`~ganleaks.victims.base.Victim.facts`: where it is, its data,
    model, training-set size and privacy statement). ``used``: the counts the victim's engine really
    used (``AttackEngine.counts_used``, e.g. ``{"k": 128}``); recorded as ``k`` / ``nn_k``, with the
    setting's value as ``k_requested`` / ``nn_k_requested`` where it differs.
    """
    used = used or {}
    counts: dict = {}
    for key in ("k", "nn_k"):
        requested = cfg.setting.get(key)
        counts[key] = used.get(key, requested if key == "k" else None)
        if counts[key] is not None and requested is not None and int(requested) != int(counts[key]):
            counts[f"{key}_requested"] = int(requested)
    facts = {
        "setting": cfg.setting.name,
        **counts,
        "calibration": cfg.calibration.name,
        "distance": cfg.distance.name,
        "victim_run_dir": victim_facts.get("victim_run_dir"),
        "reference_run_dir": None if reference_dir is None else str(reference_dir),
        **{key: victim_facts.get(key) for key in ("data", "model", "train_size", "privacy")},
        **{key: victim_facts.get(key) for key in ("noise_multiplier", "epsilon", "delta")},
        "seed": int(cfg.seed),
    }
    facts = {key: facts.get(key) for key in FACT_KEYS}  # the record's order
    extra = {key: value for key, value in victim_facts.items() if key not in facts}  # e.g. victim_kind, identity
    optional = ("k", "k_requested", "nn_k", "nn_k_requested", "noise_multiplier", "epsilon", "delta")
    return {**{key: value for key, value in facts.items() if value is not None or key not in optional}, **extra}


def _config_container(cfg: DictConfig) -> dict:
    try:
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except Exception:
        container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)  # a DictConfig converts to a dict
    return container


NET_ROLES = ("generator", "discriminator")  # the exported networks whose <role>.json a training run holds


def _with_victim_nets(config: dict, cfg: DictConfig) -> dict:
    """``config`` whose ``model.nets`` name the networks the victim was trained with.

    An attack on a training run rebuilds its networks from the run's exported ``generator.json`` /
    ``discriminator.json`` (class and keyword arguments), never from the composed ``model.nets``,
    which are the model group's defaults and may differ from the victim's (a width-16 DCGAN victim
    attacked under a config whose default width is 64). The record says what was attacked: each
    exported network's class and arguments replace that net's entry (the data shape, which the
    config does not hold, left out). Victims without exported networks (a user's samples) are left as
    composed.
    """
    run_dir = OmegaConf.select(cfg, "victim.run_dir", default=None, throw_on_resolution_failure=False)
    model = config.get("model")
    nets = model.get("nets") if isinstance(model, dict) else None
    if not run_dir or not isinstance(nets, dict):
        return config
    for role in NET_ROLES:
        try:
            spec = json.loads((Path(str(run_dir)) / f"{role}.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("kwargs"), dict) or "class" not in spec:
            continue
        kind = str(spec.get("data_kind") or "image")
        arguments = {key: value for key, value in spec["kwargs"].items() if key != "data_shape"}
        if not isinstance(nets.get(kind), dict):
            nets[kind] = {}
        nets[kind][role] = {"_target_": spec["class"], **arguments}
    return config


def write_run_record(out_dir: Path, cfg: DictConfig, metrics: dict, hydra_subdir: str = HYDRA_SUBDIR) -> Path:
    """Write ``<out_dir>/run.json`` (atomically) for the results just written beside it.

    ``metrics`` holds the run's :func:`attack_facts` (the attack adds them to its metrics).
    """
    hydra_dir = out_dir / hydra_subdir
    hydra_files = (
        {path.name: path.read_text() for path in sorted(hydra_dir.glob("*.yaml"))} if hydra_dir.is_dir() else {}
    )
    record = {
        "version": RECORD_VERSION,
        "config": _with_victim_nets(_config_container(cfg), cfg),
        "metrics": metrics,
        "facts": {key: metrics[key] for key in FACT_KEYS if key in metrics},
        "identity": metrics.get("identity"),
        "hydra_subdir": hydra_subdir,
        "hydra_files": hydra_files,
    }
    path = out_dir / RUN_RECORD_NAME
    atomic_write_text(path, json.dumps(record, indent=1, default=str))
    return path


def read_run_record(out_dir: Path) -> dict | None:
    """The record of the finished run in ``out_dir``, or None (none yet, or unreadable: with a warning)."""
    path = Path(out_dir) / RUN_RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log.warning("cannot read %s (%s); ignoring it", path, error)
        return None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        log.warning("%s is not a ganleaks run record; ignoring it", path)
        return None
    return record


def restore_hydra_files(out_dir: str | Path) -> bool:
    """Put back the ``.hydra/*.yaml`` of the finished run in ``out_dir`` that a failed command overwrote.

    Returns whether anything was restored (False when the folder holds no finished run).
    """
    out_dir = Path(out_dir)
    record = read_run_record(out_dir)
    files = {} if record is None else record.get("hydra_files") or {}
    if record is None or not files:
        return False
    hydra_dir = out_dir / str(record.get("hydra_subdir") or HYDRA_SUBDIR)
    for name, text in files.items():
        path = hydra_dir / Path(name).name
        if not path.is_file() or path.read_text() != text:
            atomic_write_text(path, text)
    log.info("kept the record of the finished run in %s (%s/ restored)", out_dir, hydra_dir.name)
    return True
