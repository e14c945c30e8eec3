"""The two workflows behind ``train.py`` and ``attack.py``, callable without Hydra's runtime."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from ganleaks.config_resolvers import register_resolvers
from ganleaks.data import MembershipSplit, SampleSet, TrainingSet, make_split
from ganleaks.data.canaries import (
    CANARIES_NAME,
    Canaries,
    check_canaries_disjoint,
    make_canaries,
    read_canaries_record,
    save_canaries,
)
from ganleaks.data.loading import load_sample_set, prepare_split, write_trained_on
from ganleaks.data.training_set import draw_seed, draw_subset
from ganleaks.errors import another_run_folder
from ganleaks.parameters import check_int, check_seed
from ganleaks.third_party_output import silence_third_party_noise

log = logging.getLogger(__name__)
register_resolvers()  # ${ganleaks_digest:...} of conf/victim/, for configs composed in code (tests, notebooks)


PART_SIZE_KEYS = {"members": "train_size", "nonmembers": "nonmember_size", "reference": "reference_size"}


def check_train_config(cfg: DictConfig) -> None:
    """The numbers training reads (``seed``, ``data.batch_size``, ...), before any data is read or file written."""
    check_seed(cfg.seed)
    check_int("data.batch_size", cfg.data.batch_size, 1)
    check_int("data.num_workers", cfg.data.get("num_workers", 0), 0)
    check_int("checkpoint_every_n_steps", cfg.get("checkpoint_every_n_steps", 0), 0)


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


def _check_reference_draw(data_cfg: DictConfig) -> int | None:
    """``data.reference_draw`` (one of several reference models, calibration=references) and its
    ``data.reference_fraction``, checked before any data is read; the draw, or None."""
    draw = data_cfg.get("reference_draw")
    if draw is None:
        return None
    if isinstance(draw, bool) or not isinstance(draw, int) or draw < 0:
        raise ValueError(f"data.reference_draw={draw!r}: an integer >= 0 (which reference model), or null")
    if data_cfg.part != "reference":
        raise ValueError(
            f"data.reference_draw={draw} picks one of several reference models, trained on the reference part: "
            f"train it with data.part=reference (not {data_cfg.part}), or drop data.reference_draw"
        )
    fraction = data_cfg.get("reference_fraction", 0.5)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(
            f"data.reference_fraction={fraction!r}: the fraction of the reference part each reference model trains "
            "on, in (0, 1] (0.5: LiRA's random halves)"
        )
    return int(draw)


def train(cfg: DictConfig, run_dir: str | Path):
    """Train the model ``cfg`` describes on ``cfg.data.part`` and export it into ``run_dir``.

    Re-running with the same config and ``run_dir`` resumes from the last checkpoint.
    """
    from ganleaks.models.training import fit_victim, prepare_victim

    _check_split_config(cfg.data)
    check_train_config(cfg)
    draw = _check_reference_draw(cfg.data)
    run_dir = Path(run_dir)
    silence_third_party_noise()
    # One of several reference models: its own initialisation and shuffle (the split stays the seed's).
    pl.seed_everything(cfg.seed if draw is None else draw_seed(cfg.seed, draw), workers=True)
    sample_set = load_sample_set(cfg.data)
    # The victim, its Trainer and loggers, built and checked once: user errors before anything is written.
    victim = prepare_victim(cfg, sample_set.shape, sample_set.kind, run_dir)
    # The canaries (canaries=ood|indist) too: a config that cannot draw them leaves no run folder.
    canaries = draw_canaries(cfg, sample_set, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    split = prepare_split(cfg.data, sample_set, cfg.seed, run_dir)
    data = cast(dict, OmegaConf.to_container(cfg.data, resolve=True))  # recorded for attacks of this run
    subset = None
    if draw is not None:  # a random subset of the reference part, drawn by (seed, draw)
        subset = draw_subset(split.ids(cfg.data.part), cfg.data.reference_fraction, cfg.seed, draw)
    write_trained_on(
        run_dir, cfg.data.part, split, data, cfg.model.name, ids=None if subset is None else subset.tolist()
    )
    if canaries is not None:
        record_canaries(canaries, split, sample_set.name, run_dir)
    training_set = TrainingSet(
        sample_set,
        split,
        part=cfg.data.part,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed if draw is None else draw_seed(cfg.seed, draw),
        extra=None if canaries is None else canaries.included_records(),
        subset=subset,
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


def canaries_config(cfg: DictConfig) -> DictConfig | None:
    """The ``canaries`` node when the config asks for canaries (``canaries=ood`` / ``indist``), else None."""
    node = cfg.get("canaries")
    if node is None or node.get("kind", "none") in (None, "none"):
        return None
    return node


def draw_canaries(cfg: DictConfig, sample_set: SampleSet, run_dir: Path) -> Canaries | None:
    """The canaries ``cfg.canaries`` asks for (None: ``canaries=none``), drawn before anything is written.

    A resumed run must ask for the canaries it recorded in ``run_dir/canaries.json``.
    """
    node = canaries_config(cfg)
    recorded = read_canaries_record(run_dir)
    if node is None:
        if recorded is not None:
            raise ValueError(
                f"{run_dir / CANARIES_NAME} records canaries, but this run asks for none (canaries=none): resume "
                f"with the canaries override that started it (canaries={recorded.get('kind')}), or use "
                f"{another_run_folder()}"
            )
        return None
    if cfg.data.part != "members":
        raise ValueError(
            f"canaries={node.kind} audits a victim: train it with data.part=members (not {cfg.data.part}); "
            "a calibration reference model is trained without canaries (canaries=none)"
        )
    data = cfg.data
    split = make_split(sample_set, data.train_size, data.nonmember_size, data.reference_size, cfg.seed)
    canaries = make_canaries(
        node.kind, node.m, node.seed, sample_set, split, source=node.get("source"), root=node.get("root")
    )
    if recorded is not None and recorded != canaries.to_json(sample_set.name):
        raise ValueError(
            f"{run_dir / CANARIES_NAME} holds other canaries than the ones asked for now (kind, m, seed or source "
            f"changed); use {another_run_folder()} or delete that folder to start over"
        )
    return canaries


def record_canaries(canaries: Canaries, split: MembershipSplit, dataset: str, run_dir: Path) -> None:
    """Check the canaries against the run's split (disjoint from every part) and write ``canaries.json``."""
    check_canaries_disjoint(split, canaries)
    save_canaries(canaries, dataset, run_dir)
    log.info(
        "%d %s canaries from %s (seed %d): %d included by their coins -> %s",
        canaries.m,
        canaries.kind,
        canaries.source,
        canaries.seed,
        int(canaries.included.sum()),
        run_dir / CANARIES_NAME,
    )


def _overridden_keys(overrides: Sequence[str]) -> set[str]:
    """The keys (or config groups) that command-line ``overrides`` set, as Hydra parses them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {override.key_or_group for override in parsed if not override.is_delete()}


def with_victim_data(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``cfg`` as the victim's kind adapts it to what the command line set (:meth:`Victim.adapt_config`).

    A training run named with ``victim.run_dir=PATH``, say, brings the data settings it was trained with.

    Args:
        cfg: the composed attack config (not modified).
        overrides: the command line's overrides (``HydraConfig.get().overrides.task``).
    """
    from ganleaks.victims.base import victim_class

    return victim_class(cfg.victim).adapt_config(cfg, _overridden_keys(overrides))


def attack(cfg: DictConfig, out_dir: str | Path, overrides: Sequence[str] | None = None, objects=None) -> dict:
    """Run the attack ``cfg`` describes against the victim ``cfg.victim`` builds; outputs go to ``out_dir``.

    ``overrides``: the command line's overrides, which the victim's kind may adapt the config to
    (see :func:`with_victim_data`). None (a config composed in code): ``cfg`` as it is.
    ``objects``: Python objects per role that the victims' classes take by name
    (``{"victim": {"generator": G}}``, from ``ganleaks.audit``).
    """
    from ganleaks.orchestration.plan import check_attack_keys
    from ganleaks.orchestration.run import run_attack

    if overrides is not None:
        cfg = with_victim_data(cfg, overrides)
    check_attack_keys(cfg)  # the attack's own numbers, before seeding (the rest: plan_attack, where owned)
    silence_third_party_noise()
    pl.seed_everything(cfg.seed, workers=True)
    return run_attack(cfg, Path(out_dir), objects)
