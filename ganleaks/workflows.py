"""The two workflows behind ``train.py`` and ``attack.py``, callable without Hydra's runtime."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from ganleaks.config_checks import check_attack_config, check_train_config
from ganleaks.config_resolvers import register_resolvers
from ganleaks.data import TrainingSet
from ganleaks.data.loading import load_sample_set, prepare_split, recorded_data_config, write_trained_on
from ganleaks.third_party_output import silence_third_party_noise

log = logging.getLogger(__name__)
register_resolvers()  # ${ganleaks_digest:...} of conf/victim/, for configs composed in code (tests, notebooks)


PART_SIZE_KEYS = {"members": "train_size", "nonmembers": "nonmember_size", "reference": "reference_size"}


def _check_split_config(data_cfg: DictConfig) -> None:
    """``data.part`` and the split sizes, checked before any data is read or file written."""
    if data_cfg.part not in PART_SIZE_KEYS:
        raise ValueError(
            f"data.part={data_cfg.part!r} is not a split part: use data.part=members to train a victim "
            "or data.part=reference to train a calibration reference model"
        )
    for part, key in PART_SIZE_KEYS.items():
        size = data_cfg.get(key)
        if not isinstance(size, int) or isinstance(size, bool) or size < (1 if part == data_cfg.part else 0):
            least = "at least 1: it is the part this run trains on" if part == data_cfg.part else "0 or more"
            raise ValueError(f"data.{key}={size!r} is invalid: set data.{key} to an integer {least}")


def train(cfg: DictConfig, run_dir: str | Path):
    """Train the model ``cfg`` describes on ``cfg.data.part`` and export it into ``run_dir``.

    Re-running with the same config and ``run_dir`` resumes from the last checkpoint.
    """
    from ganleaks.models.training import fit_victim, prepare_victim

    _check_split_config(cfg.data)
    check_train_config(cfg)
    run_dir = Path(run_dir)
    silence_third_party_noise()
    pl.seed_everything(cfg.seed, workers=True)
    sample_set = load_sample_set(cfg.data)
    # The victim, its Trainer and loggers, built and checked once: user errors before anything is written.
    victim = prepare_victim(cfg, sample_set.shape, sample_set.kind, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    split = prepare_split(cfg.data, sample_set, cfg.seed, run_dir)
    data = cast(dict, OmegaConf.to_container(cfg.data, resolve=True))  # recorded for attacks of this run
    write_trained_on(run_dir, cfg.data.part, split, data, cfg.model.name)
    training_set = TrainingSet(
        sample_set,
        split,
        part=cfg.data.part,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
    )
    log.info(
        "training %s on %d %s of %s (%s) -> %s",
        cfg.model.name,
        training_set.num_train_samples,
        cfg.data.part,
        sample_set.name,
        "x".join(map(str, sample_set.shape)),
        run_dir,
    )
    module = fit_victim(cfg, training_set, run_dir, victim)
    log.info("done: %s", run_dir)
    return module


def _overridden_keys(overrides: Sequence[str]) -> set[str]:
    """The keys (or config groups) that command-line ``overrides`` set, as Hydra parses them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {override.key_or_group for override in parsed if not override.is_delete()}


def with_victim_data(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``cfg`` with the ``data`` settings the victim was trained with, when the user named the victim.

    An attack given ``victim.run_dir=PATH`` on the command line attacks that training run, which
    records its data settings (``trained_on.json``; older runs: their Hydra ``config.yaml``): they
    replace the composed ``data`` (the default data) unless the command line also sets ``data=...``
    or a ``data.*`` key, which then stands (and is refused later if it does not fit the victim). A
    victim folder found from the overrides (the default ``victim.run_dir``) is named by those same
    data settings, so nothing is taken from it.

    Args:
        cfg: the composed attack config (not modified).
        overrides: the command line's overrides (``HydraConfig.get().overrides.task``).
    """
    keys = _overridden_keys(overrides)
    if "victim.run_dir" not in keys:
        return cfg
    victim_dir = Path(cfg.victim.run_dir)
    given = sorted(key for key in keys if key == "data" or key.startswith("data."))
    if given:
        log.info("data settings from the command line (%s), not from the victim's record", ", ".join(given))
        return cfg
    recorded = recorded_data_config(victim_dir)
    if recorded is None:
        log.info("data settings: %s records none; using data=%s", victim_dir, cfg.data.get("name"))
        return cfg
    data, source = recorded
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.data = data
    log.info("data settings from the victim's record %s (data=%s)", source, data.get("name"))
    return cfg


def attack(cfg: DictConfig, out_dir: str | Path, overrides: Sequence[str] | None = None, artefacts=None) -> dict:
    """Run the attack ``cfg`` describes against ``cfg.victim.run_dir``; outputs go to ``out_dir``.

    ``overrides``: the command line's overrides; when they name ``victim.run_dir``, the victim's own
    data settings are used (see :func:`with_victim_data`). None (a config composed in code): ``cfg``
    as it is. ``artefacts``: a user's victim and queries given as Python objects
    (:class:`~ganleaks.victims.user_victims.UserArtefacts`, from ``ganleaks.audit``).
    """
    from ganleaks.orchestration.run import run_attack

    if overrides is not None:
        cfg = with_victim_data(cfg, overrides)
    check_attack_config(cfg)  # numbers and choices by key name, before seeding or reading anything
    silence_third_party_noise()
    pl.seed_everything(cfg.seed, workers=True)
    return run_attack(cfg, Path(out_dir), artefacts)
