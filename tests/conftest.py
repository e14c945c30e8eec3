"""Shared helpers: compose the real Hydra configs at a tiny scale and train tiny runs once."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

CONF = Path(__file__).resolve().parents[1] / "conf"

# 16x16 digits, a few dozen samples per part, a few optimiser steps.
TINY = [
    "data.source.resolution=16",
    "data.train_size=24",
    "data.nonmember_size=24",
    "data.reference_size=48",
    "data.batch_size=8",
    "trainer.max_steps=20",
    "trainer.accelerator=cpu",
    "++trainer.enable_progress_bar=false",
]
FAST_ATTACK = {
    "fullbb": ["setting.k=256"],
    "montecarlo": ["setting.k=256"],
    "whitebox": ["setting.nn_k=128", "setting.max_iter=5"],
    "partialbb": ["setting.nn_k=128", "setting.max_iter=1"],
    "discriminator": [],
}


def compose_app(app: str, root: Path | str, overrides: list[str] = ()) -> tuple[DictConfig, Path]:
    """The config ``app`` ("train" or "attack") would run with, and its run folder.

    The ``hydra`` node is dropped, as in a real run where the app sees the config without it.
    """
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name=app, overrides=TINY + [f"paths.root={root}", *overrides], return_hydra_config=True)
    run_dir = Path(cfg.hydra.run.dir)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, run_dir


# The white-box reconstruction on the reference model that calibration runs by default.
FAST_REFERENCE = ["calibration.reference_setting.nn_k=128", "calibration.reference_setting.max_iter=5"]


def attack_overrides(setting: str, calibration: str = "none", extra: list[str] = ()) -> list[str]:
    fast_reference = FAST_REFERENCE if calibration == "reference" else []
    return [
        f"setting={setting}",
        f"calibration={calibration}",
        "distance=l2",
        *FAST_ATTACK[setting],
        *fast_reference,
        *extra,
    ]


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory) -> Path:
    """A tiny DCGAN victim plus the DCGAN (white-box) and WGAN-GP (black-box) reference models."""
    from ganleaks.workflows import train

    root = tmp_path_factory.mktemp("runs")
    for overrides in ([], ["data.part=reference"], ["data.part=reference", "model=wgangp"]):
        cfg, run_dir = compose_app("train", root, overrides)
        train(cfg, run_dir)
    return root


def prose_numbers_outside_block(document: str, heading: str, block: str, structural: set[str]) -> list[str]:
    """The numbers the prose of one part of a results document states (from ``heading`` to the next
    top-level ``# `` heading, commands and paths in backticks left out) that neither the part's generated
    ``block`` nor ``structural`` (the grid, the design) gives."""
    import re

    number = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")
    part = document[document.index(heading) :]
    following = part.find("\n# ", len(heading))
    part = part if following < 0 else part[:following]
    start, end = part.index(f"<!-- report:{block} -->"), part.index(f"<!-- /report:{block} -->")
    generated, prose = part[start:end], part[:start] + part[end:]
    prose = re.sub(r"`[^`]*`", "", prose)

    def tokens(text: str) -> set[str]:
        return {token.lstrip("+-").replace(",", "") for token in number.findall(text)}

    return sorted(tokens(prose) - tokens(generated) - structural)
