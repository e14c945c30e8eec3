"""The model / privacy / trainer / logger config groups compose and build."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from ganleaks.models.training import build_victim

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
MODELS = sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))


def test_the_zoo_is_complete() -> None:
    assert MODELS == ["dcgan", "dpgan", "pggan", "vaegan", "wgangp"]
    for group, options in {
        "privacy": ["dp", "none"],
        "trainer": ["cpu", "ddp", "default", "gpu"],
        "logger": ["csv", "tensorboard", "wandb"],
    }.items():
        assert sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml")) == options


@pytest.mark.parametrize("model", MODELS)
def test_every_model_composes_names_itself_and_builds_at_default_size(model: str, tiny) -> None:
    config = tiny.config(model)
    assert config.model.name == model
    assert config.model.latent_dim == 8
    module = build_victim(config.model, (3, 64, 64), "image")  # CelebA size
    assert module.generator.data_shape == (3, 64, 64)
    assert module.generator.latent_dim == 8
    assert "_partial_" in config.model.module.generator_optimizer


def test_dpgan_selects_dp_and_a_group_norm_discriminator(tiny) -> None:
    config = tiny.config("dpgan")
    assert config.privacy.enabled is True
    assert config.model.nets.image.discriminator.norm == "group"
    assert config.model.nets.image.generator._target_.endswith("DCGANGenerator")
    assert tiny.config("dpgan", "privacy=none").privacy.enabled is False  # the command line wins


def test_trainer_options_are_plain_trainer_kwargs(tiny) -> None:
    import inspect

    import pytorch_lightning as pl

    accepted = set(inspect.signature(pl.Trainer).parameters)
    for path in (CONF_DIR / "trainer").glob("*.yaml"):
        keys = set(yaml.safe_load(path.read_text())) - {"defaults"}
        assert keys <= accepted, (path.name, keys - accepted)
    ddp = tiny.config("dcgan", "trainer=ddp")
    assert ddp.trainer.strategy.startswith("ddp") and ddp.trainer.max_steps == 4


def test_project_train_config_composes_every_victim() -> None:
    """The lead's conf/train.yaml with each model; model=dpgan needs `privacy` listed before
    `model` in its defaults list (Hydra applies a config's `override` only to groups already seen)."""
    if not (CONF_DIR / "train.yaml").is_file():
        pytest.skip("conf/train.yaml is not there yet")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for model in MODELS:
            config = compose("train", overrides=[f"model={model}"])
            assert config.model.name == model
            assert config.privacy.enabled is (model == "dpgan")
