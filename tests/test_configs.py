"""Every config composes, and train/attack run folders line up."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
REQUIRED = {
    "celeba": ["data.root=/data/celeba"],
    "image_folder": ["data.root=/data/images"],
    "mimic": ["data.path=/data/codes.npy"],
    "checkins": ["data.path=/data/checkins.csv"],
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_cfg(config_name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)


def group_overrides(config_name: str):
    groups = ["data", "model", "privacy", "trainer", "logger"]
    if config_name == "attack":
        groups += ["setting", "calibration", "distance"]
    for group in groups:
        for option in options(group):
            yield [f"{group}={option}"] + (REQUIRED.get(option, []) if group == "data" else [])


@pytest.mark.parametrize("config_name", ["train", "attack"])
def test_every_group_option_composes_and_resolves(config_name):
    seen = 0
    for overrides in group_overrides(config_name):
        cfg = compose_cfg(config_name, overrides)
        OmegaConf.resolve(cfg)  # every interpolation resolves
        assert cfg.hydra.run.dir.startswith("outputs/")
        seen += 1
    assert seen >= 7


def test_attack_finds_the_run_that_train_wrote():
    overrides = ["data.train_size=64", "seed=3", "model=dcgan"]
    train = compose_cfg("train", overrides)
    attack = compose_cfg("attack", overrides + ["setting=whitebox"])
    assert attack.victim.run_dir == train.hydra.run.dir == "outputs/train/digits/dcgan/n64/seed3"
    # Multirun jobs land in the same folders as single runs.
    assert f"{train.hydra.sweep.dir}/{train.hydra.sweep.subdir}" == train.hydra.run.dir


def test_reference_run_dir_matches_reference_training():
    reference_train = compose_cfg("train", ["data.part=reference", "model=wgangp"])
    for setting in ("fullbb", "partialbb", "montecarlo"):
        attack = compose_cfg("attack", [f"setting={setting}", "calibration=reference"])
        assert attack.calibration.reference_run_dir == reference_train.hydra.run.dir
    whitebox = compose_cfg("attack", ["setting=whitebox", "calibration=reference", "model=dcgan"])
    assert whitebox.calibration.reference_run_dir == "outputs/train/digits/dcgan/reference_n1024/seed0"


def test_run_dir_is_overridable():
    cfg = compose_cfg("train", ["hydra.run.dir=/tmp/somewhere"])
    assert cfg.hydra.run.dir == "/tmp/somewhere"
