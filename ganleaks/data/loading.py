"""Build a data source and its membership split from a composed ``data`` config."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import (
    MANIFEST_NAME,
    MembershipSplit,
    load_manifest,
    make_split,
    save_manifest,
)
from ganleaks.errors import another_run_folder
from ganleaks.io import atomic_write_text

log = logging.getLogger(__name__)

TRAINED_ON_NAME = "trained_on.json"


def load_sample_set(data_cfg: DictConfig) -> SampleSet:
    """Instantiate ``data.source`` and check that it returned a ``SampleSet``.

    Raises:
        ValueError: a mandatory data setting (``???`` in the yaml, e.g. ``data.root``) is not set.
    """
    missing = [str(key) for key in data_cfg if OmegaConf.is_missing(data_cfg, key)]
    if missing:
        raise ValueError(
            f"data={data_cfg.get('name', '?')} needs {' and '.join(f'data.{key}' for key in missing)}, "
            f"which is not set: pass it on the command line, e.g. `data.{missing[0]}=/path/to/your/data`"
        )
    try:
        sample_set = hydra.utils.instantiate(data_cfg.source)
    except InstantiationException as error:
        if isinstance(error.__cause__, Exception):  # the source's own error says what is wrong and what to do
            raise error.__cause__ from None
        raise
    if not isinstance(sample_set, SampleSet):
        raise TypeError(f"data.source must return a SampleSet, got {type(sample_set).__name__}")
    return sample_set


def prepare_split(data_cfg: DictConfig, sample_set: SampleSet, seed: int, run_dir: str | Path) -> MembershipSplit:
    """Make the split for this run, or reuse the one already in ``run_dir`` (a resumed run).

    A manifest already in ``run_dir`` must match both the data (fingerprint) and the sizes asked
    for now; otherwise the run folder belongs to another experiment and nothing is overwritten.
    """
    run_dir = Path(run_dir)
    split = make_split(sample_set, data_cfg.train_size, data_cfg.nonmember_size, data_cfg.reference_size, seed)
    existing = run_dir / MANIFEST_NAME
    if existing.exists():
        previous = load_manifest(existing, sample_set)
        if previous.parts != split.parts:
            raise ValueError(
                f"{existing} holds a different split than the one asked for now (sizes or seed changed); "
                f"use {another_run_folder()} or delete that folder to start over"
            )
        log.info("reusing the split in %s", existing)
        return previous
    save_manifest(split, run_dir)
    return split


def write_trained_on(
    run_dir: str | Path,
    part: str,
    split: MembershipSplit,
    data: dict | None = None,
    model: str | None = None,
    ids: list[int] | None = None,
) -> None:
    """Record what a model trained on: the split part and its ids (so attacks can refuse overlapping
    references), the resolved ``data`` config (so an attack of this run loads the same data without
    being told) and the model's name. ``ids``: the subset of the part it trained on (one of several
    reference models, ``data.reference_draw``); None: the whole part."""
    record: dict = {"part": part, "dataset": split.dataset, "ids": split.parts[part] if ids is None else ids}
    if data is not None:
        record["data"] = data
    if model is not None:
        record["model"] = model
    atomic_write_text(Path(run_dir) / TRAINED_ON_NAME, json.dumps(record))


def read_trained_on(run_dir: str | Path) -> dict:
    path = Path(run_dir) / TRAINED_ON_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {run_dir} is not a complete ganleaks training run")
    return json.loads(path.read_text())


# Where a training run records the config it ran with, newest first: trained_on.json's ``data`` (written
# by train), then the composed config Hydra saved (``config.yaml`` in the committed results' layout).
RECORDED_CONFIGS = ("config.yaml", ".hydra/config.yaml")


def recorded_data_config(run_dir: str | Path) -> tuple[dict, Path] | None:
    """The ``data`` config a training run in ``run_dir`` was trained with (resolved), and the file it is from.

    None when the run recorded none that can be read (a run from before trained_on.json held it, and
    without a Hydra config); an unreadable record is skipped with a warning.
    """
    run_dir = Path(run_dir)
    path = run_dir / TRAINED_ON_NAME
    try:
        data = json.loads(path.read_text()).get("data") if path.is_file() else None
    except (OSError, json.JSONDecodeError, AttributeError) as error:
        log.warning("cannot read %s (%s); ignoring it", path, error)
        data = None
    if isinstance(data, dict):
        return data, path
    for name in RECORDED_CONFIGS:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            config = OmegaConf.load(path)
            data = OmegaConf.to_container(config.data, resolve=True) if isinstance(config, DictConfig) else None
        except Exception as error:  # unreadable YAML, no data node, an unresolvable interpolation: try the next
            log.warning("cannot read the data config in %s (%s); ignoring it", path, error)
            continue
        if isinstance(data, dict):
            return data, path
    return None
