"""An attack given ``victim.run_dir=PATH`` takes the data settings that training run recorded.

A user who trained on their own data (``python train.py data=image_folder data.root=D``) attacks the
run with ``python attack.py victim.run_dir=<that run>`` alone; a data override on the attack's
command line stands, and is refused when it does not fit the victim.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from PIL import Image

from ganleaks.data import load_manifest
from ganleaks.errors import AttackConfigError
from ganleaks.workflows import attack, train, with_victim_data
from tests.conftest import CONF, compose_app

REPO = Path(__file__).resolve().parents[1]
VICTIM = "train/image_folder/dcgan/n24/seed0"
# A fast attack that names nothing about the data (as a user would type it).
ATTACK = [
    "setting=fullbb",
    "setting.k=64",
    "distance=l2",
    "trainer.accelerator=cpu",
    "++trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def image_victim(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny DCGAN trained on a folder of 120 RGB 16x16 images: ``(study root, image folder)``."""
    root = tmp_path_factory.mktemp("image_victim")
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(120):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    cfg, run_dir = compose_app("train", root, ["data=image_folder", f"data.root={folder}", "trainer.max_steps=4"])
    train(cfg, run_dir)
    assert run_dir == root / VICTIM
    return root, folder


def compose_attack(overrides: list[str]):
    """The attack config for these command-line ``overrides`` alone (without the tests' data overrides)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name="attack", overrides=overrides)


def test_training_records_its_data_settings(image_victim):
    root, folder = image_victim
    recorded = json.loads((root / VICTIM / "trained_on.json").read_text())
    assert recorded["model"] == "dcgan"
    assert recorded["data"]["name"] == "image_folder" and recorded["data"]["root"] == str(folder)
    assert recorded["data"]["source"]["resolution"] == 16 and recorded["data"]["source"]["root"] == str(folder)


def test_attack_py_takes_the_data_settings_of_the_named_victim(image_victim, tmp_path):
    """Through attack.py: no data=... on the command line, the victim's image folder is attacked."""
    root, folder = image_victim
    out = tmp_path / "out"
    threads = str(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    result = subprocess.run(
        [sys.executable, "attack.py", f"victim.run_dir={root / VICTIM}", *ATTACK, f"hydra.run.dir={out}"],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        f"data settings from the victim's record {root / VICTIM / 'trained_on.json'}" in result.stdout + result.stderr
    )
    record = json.loads((out / "run.json").read_text())
    assert record["facts"]["data"] == "image_folder" and record["facts"]["victim_run_dir"] == str(root / VICTIM)
    assert record["config"]["data"]["root"] == str(folder)
    with open(out / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    manifest = load_manifest(root / VICTIM)
    members = set(manifest.parts["members"])
    assert len(rows) == 48 and {int(row["id"]) in members for row in rows} == {True, False}
    assert all((int(row["id"]) in members) == (row["member"] == "1") for row in rows)


@pytest.mark.parametrize(
    ("data_overrides", "match"),
    [
        (["data.source.resolution=32"], r"shape \(3, 16, 16\), but digits is loaded now with shape \(1, 32, 32\)"),
        (["data=image_folder", "data.root=IMAGES"], r"shape \(3, 16, 16\), but image_folder .*shape \(3, 32, 32\)"),
    ],
)
def test_a_data_override_that_disagrees_with_the_named_victim_is_refused(
    image_victim, tmp_path, caplog, data_overrides, match
):
    root, folder = image_victim
    data_overrides = [override.replace("IMAGES", str(folder)) for override in data_overrides]
    overrides = [f"victim.run_dir={root / VICTIM}", *ATTACK, *data_overrides]
    with caplog.at_level(logging.INFO, logger="ganleaks.victims.training_run"):
        with pytest.raises(AttackConfigError, match=match):
            attack(compose_attack(overrides), tmp_path / "out", overrides)
    assert "data settings from the command line" in caplog.text
    assert not (tmp_path / "out" / "scores.csv").exists() and not (tmp_path / "out" / "metrics.json").exists()


def test_a_victim_from_before_the_record_gives_its_hydra_config(image_victim, tmp_path, caplog):
    """A training run whose trained_on.json holds no data settings: they come from its .hydra/config.yaml."""
    root, folder = image_victim
    victim = shutil.copytree(root / VICTIM, tmp_path / "old_victim")
    trained_on = json.loads((victim / "trained_on.json").read_text())
    del trained_on["data"], trained_on["model"]
    (victim / "trained_on.json").write_text(json.dumps(trained_on))
    cfg, _ = compose_app("train", root, ["data=image_folder", f"data.root={folder}"])
    (victim / ".hydra").mkdir()
    # As Hydra saves it: unresolved (data.source.root is ${data.root}).
    (victim / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    assert "root: ${data.root}" in (victim / ".hydra" / "config.yaml").read_text()
    overrides = [f"victim.run_dir={victim}", *ATTACK]
    with caplog.at_level(logging.INFO, logger="ganleaks.victims.training_run"):
        metrics = attack(compose_attack(overrides), tmp_path / "out", overrides)
    assert f"data settings from the victim's record {victim / '.hydra' / 'config.yaml'}" in caplog.text
    assert metrics["data"] == "image_folder" and metrics["n_members"] == 24
    assert metrics["model"] == "dcgan"  # the attack's model= (the record holds none)


def test_only_a_named_victim_gives_its_data_settings(image_victim):
    """The default victim.run_dir is derived from data.* itself: nothing to take from it."""
    root, _ = image_victim
    cfg = compose_attack([f"paths.root={root}", *ATTACK])
    assert with_victim_data(cfg, [f"paths.root={root}", *ATTACK]) is cfg
    named = compose_attack([f"victim.run_dir={root / VICTIM}", *ATTACK])
    adopted = with_victim_data(named, [f"victim.run_dir={root / VICTIM}", *ATTACK])
    assert named.data.name == "digits" and adopted.data.name == "image_folder"  # the composed config is kept
    with open_dict(named):
        named.victim.run_dir = str(root / "train/does/not/exist")
    assert with_victim_data(named, [f"victim.run_dir={named.victim.run_dir}"]) is named  # refused later, clearly
