"""DP-SGD on the discriminator: accounting, clipping, Poisson sampling, settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ganleaks.models.privacy import PrivacySettings
from ganleaks.models.training import build_victim, fit_victim


def _epsilon(run_dir: Path) -> dict:
    return json.loads((run_dir / "privacy.json").read_text())


def test_epsilon_is_finite_grows_with_steps_and_shrinks_with_noise(tiny, tmp_path: Path) -> None:
    data = tiny.datamodule(tiny.images(), "image")
    fit_victim(tiny.config("dpgan", max_steps=4), data, tmp_path / "short")
    fit_victim(tiny.config("dpgan", max_steps=12), data, tmp_path / "long")
    fit_victim(tiny.config("dpgan", "privacy.noise_multiplier=3.0", max_steps=12), data, tmp_path / "noisy")
    short, long, noisy = (_epsilon(tmp_path / name) for name in ("short", "long", "noisy"))
    assert all(math.isfinite(r["epsilon"]) and r["epsilon"] > 0 for r in (short, long, noisy))
    assert long["epsilon"] > short["epsilon"]
    assert noisy["epsilon"] < long["epsilon"]
    assert long["steps"] > short["steps"] and long["sample_rate"] == pytest.approx(8 / 32)
    assert {"epsilon", "delta", "noise_multiplier", "max_grad_norm", "steps", "sample_rate"} <= set(long)


def test_epsilon_is_logged_every_epoch_and_resumed_with_the_accountant(tiny, tmp_path: Path) -> None:
    data = tiny.datamodule(tiny.images(), "image")
    fit_victim(tiny.config("dpgan", max_steps=8), data, tmp_path)  # 4 batches = 1 epoch at q = 1/4
    first = _epsilon(tmp_path)
    fit_victim(tiny.config("dpgan", max_steps=16), data, tmp_path)
    resumed = _epsilon(tmp_path)
    fit_victim(tiny.config("dpgan", max_steps=16), data, tmp_path / "straight")
    straight = _epsilon(tmp_path / "straight")
    # The accountant continues from the checkpoint: 4 + 4 steps spend what 8 steps do.
    assert resumed["steps"] == straight["steps"] == 2 * first["steps"]
    assert resumed["epsilon"] == pytest.approx(straight["epsilon"])
    logged = [line for line in (tmp_path / "logs").glob("version_*/metrics.csv")]
    assert all("privacy/epsilon" in path.read_text().splitlines()[0] for path in logged)


def test_resuming_a_private_run_without_privacy_is_refused(tiny, tmp_path: Path) -> None:
    data = tiny.datamodule(tiny.images(), "image")
    fit_victim(tiny.config("dpgan", max_steps=4), data, tmp_path)
    with pytest.raises(ValueError, match="same privacy settings"):
        fit_victim(tiny.config("dpgan", "privacy=none", max_steps=8), data, tmp_path)


def _initial_discriminator(config, data) -> torch.nn.Module:
    """The discriminator ``fit_victim`` starts from: same seed, same construction order."""
    pl.seed_everything(int(config.seed), workers=True, verbose=False)
    return build_victim(config.model, data.data_shape, data.data_kind).discriminator


def test_per_sample_clipping_bounds_the_discriminator_update(tiny, tmp_path: Path) -> None:
    # Plain SGD with lr 1 and no noise: a DP step moves D by at most
    # max_grad_norm * batch size / expected batch size <= max_grad_norm / sample_rate.
    sgd = [
        "model.module.discriminator_optimizer._target_=torch.optim.SGD",
        "~model.module.discriminator_optimizer.betas",
        "model.module.discriminator_optimizer.lr=1.0",
    ]
    data = tiny.datamodule(tiny.images(), "image")
    moved = {}
    for name, overrides in (
        ("private", ["privacy.noise_multiplier=0.0", "privacy.max_grad_norm=1e-4"]),
        ("plain", ["privacy=none"]),
    ):
        config = tiny.config("dpgan", *sgd, *overrides, max_steps=8)
        start = _initial_discriminator(config, data)
        module = fit_victim(config, data, tmp_path / name)
        moved[name] = (
            torch.cat(
                [(p - q).flatten() for p, q in zip(module.discriminator.parameters(), start.parameters(), strict=False)]
            )
            .norm()
            .item()
        )
    steps = _epsilon(tmp_path / "private")["steps"]
    assert 0 < moved["private"] <= steps * 1e-4 / 0.25
    assert moved["plain"] > 100 * moved["private"]


def test_empty_poisson_batches_take_a_noise_only_step(tiny, tmp_path: Path) -> None:
    # 4 members at batch size 1: sample rate 1/4, so about a third of the Poisson batches are empty.
    data = tiny.datamodule(tiny.images(4), "image", batch_size=1)
    module = fit_victim(tiny.config("dpgan", max_steps=40), data, tmp_path)
    batches = module.trainer.fit_loop.epoch_loop.batch_progress.total.completed
    report = _epsilon(tmp_path)
    assert report["sample_rate"] == pytest.approx(0.25)
    assert report["steps"] == batches  # every sampling round is accounted, empty or not
    generator_steps = module.trainer.global_step - batches
    assert generator_steps < batches  # some batches were empty: no generator step on them
    assert math.isfinite(report["epsilon"])


def test_target_epsilon_calibrates_the_noise(tiny, tmp_path: Path) -> None:
    data = tiny.datamodule(tiny.images(), "image")
    fit_victim(tiny.config("dpgan", "privacy.target_epsilon=5.0", max_steps=16), data, tmp_path)
    report = _epsilon(tmp_path)
    assert report["target_epsilon"] == 5.0
    assert report["epsilon"] == pytest.approx(5.0, rel=0.05)
    assert report["noise_multiplier"] != 1.0


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="noise_multiplier or privacy.target_epsilon"):
        PrivacySettings.from_config({"noise_multiplier": None, "target_epsilon": None})
    with pytest.raises(ValueError, match="delta"):
        PrivacySettings.from_config({"delta": 0.0})
    assert PrivacySettings.from_config({"enabled": True, "suffix": "_dp", "max_grad_norm": 2.0}).max_grad_norm == 2.0
