"""Every victim trains a few steps through ``fit_victim``, exports, reloads identically, resumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from ganleaks.models import load_discriminator, load_generator
from ganleaks.models.modules import DCGANModule
from ganleaks.models.privacy import UnsupportedPrivacyError
from ganleaks.models.training import fit_victim


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted((run_dir / "logs").glob("version_*/metrics.csv")):
        with open(path) as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _assert_exports_match(module, run_dir: Path) -> None:
    generator = load_generator(run_dir)
    module.generator.eval()
    module.discriminator.eval()
    z = torch.randn(6, generator.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module.generator(z)
        torch.testing.assert_close(generator(z), expected, rtol=0, atol=0)
        torch.testing.assert_close(
            load_discriminator(run_dir)(expected), module.discriminator(expected), rtol=0, atol=0
        )
    assert generator.data_shape == module.data_shape
    assert expected.abs().max() <= 1.0


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ("dcgan", "image"),
        ("wgangp", "image"),
        ("pggan", "image"),
        ("vaegan", "image"),
        ("dpgan", "image"),
        ("dcgan", "tabular"),
        ("wgangp", "tabular"),
        ("dpgan", "tabular"),
    ],
)
def test_victim_trains_exports_and_reloads_identically(model: str, kind: str, tiny, tmp_path: Path) -> None:
    data = tiny.datamodule(tiny.images() if kind == "image" else tiny.codes(), kind)
    module = fit_victim(tiny.config(model, max_steps=6), data, tmp_path)
    assert module.trainer.global_step >= 6
    initial = type(module.generator)(**module.generator.kwargs)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(module.generator.state_dict().values(), initial.state_dict().values(), strict=False)
    ), "the generator never trained"
    _assert_exports_match(module, tmp_path)
    for role in ("generator", "discriminator"):
        spec = json.loads((tmp_path / f"{role}.json").read_text())
        assert spec["data_kind"] == kind and spec["data_shape"] == list(data.data_shape)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "samples" / "final.png").is_file()
    assert (tmp_path / "privacy.json").is_file() == (model == "dpgan")
    losses = [row for row in _metrics(tmp_path) if row.get("loss/generator")]
    assert losses and all(torch.isfinite(torch.tensor(float(row["loss/generator"]))) for row in losses)


def test_tabular_nets_are_picked_from_the_data_kind(tiny, tmp_path: Path) -> None:
    module = fit_victim(tiny.config("wgangp", max_steps=3), tiny.datamodule(tiny.codes(), "tabular"), tmp_path)
    assert type(module.generator).__name__ == "MLPGenerator"
    assert type(module.discriminator).__name__ == "MLPDiscriminator"
    with pytest.raises(ValueError, match="no networks for tabular"):
        fit_victim(tiny.config("pggan"), tiny.datamodule(tiny.codes(), "tabular"), tmp_path / "pggan")


def test_wgangp_takes_n_critic_critic_steps_per_generator_step(tiny, tmp_path: Path) -> None:
    module = fit_victim(
        tiny.config("wgangp", "model.module.n_critic=3", max_steps=12),
        tiny.datamodule(tiny.images(), "image"),
        tmp_path,
    )
    assert int(module.critic_steps) == 9  # 3 cycles of (3 critic + 1 generator) steps

    def adam_steps(network: torch.nn.Module) -> int:
        optimizer = next(
            opt for opt in module.trainer.optimizers if opt.param_groups[0]["params"][0] is next(network.parameters())
        )
        return int(optimizer.state[next(network.parameters())]["step"])

    assert adam_steps(module.discriminator) == 9
    assert adam_steps(module.generator) == 3


def test_pggan_grows_and_fades_in_during_training(tiny, tmp_path: Path) -> None:
    # 16 members, batch 8, 16 images per phase: stage 0 for 2 batches, then fade 8x8, stabilise,
    # fade 16x16, stabilise: 10 batches, 2 optimiser steps each.
    data = tiny.datamodule(tiny.images(16), "image")
    module = fit_victim(tiny.config("pggan", max_steps=20), data, tmp_path)
    rows = [row for row in _metrics(tmp_path) if row.get("growth/stage")]
    stages = [float(row["growth/stage"]) for row in rows]
    alphas = [float(row["growth/alpha"]) for row in rows]
    assert stages == sorted(stages) and stages[0] == 0 and stages[-1] == 2
    assert any(0 < alpha < 1 for alpha in alphas), alphas
    assert [float(row["growth/resolution"]) for row in rows][-1] == 16
    generator = load_generator(tmp_path)
    assert int(generator.stage) == 2 and float(generator.alpha) == 1.0
    _assert_exports_match(module, tmp_path)


def test_rerunning_resumes_from_last_checkpoint(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny.datamodule(tiny.images(), "image")
    first = fit_victim(tiny.config("dcgan", max_steps=4), data, tmp_path)
    assert first.trainer.global_step == 4
    trained_weights = {k: v.clone() for k, v in first.generator.state_dict().items()}

    batches = []
    starting_weights = {}
    original = DCGANModule.train_batch

    def counting_train_batch(self, real):
        if not batches:
            starting_weights.update({k: v.clone() for k, v in self.generator.state_dict().items()})
        batches.append(self.global_step)
        original(self, real)

    monkeypatch.setattr(DCGANModule, "train_batch", counting_train_batch)
    second = fit_victim(tiny.config("dcgan", max_steps=10), data, tmp_path)
    assert second.trainer.global_step == 10
    assert batches == [4, 6, 8]  # continued at step 4, did not restart at 0
    for key, value in trained_weights.items():
        torch.testing.assert_close(starting_weights[key], value)
    _assert_exports_match(second, tmp_path)

    exported = (tmp_path / "generator.safetensors").read_bytes()
    batches.clear()
    fit_victim(tiny.config("dcgan", max_steps=10), data, tmp_path)  # already finished: nothing to do
    assert batches == []
    assert (tmp_path / "generator.safetensors").read_bytes() == exported


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("wgangp", "gradient penalty"),
        ("pggan", "gradient penalty"),
        ("vaegan", "encoder and decoder"),
        ("dcgan", "BatchNorm"),
    ],
)
def test_unsupported_private_victims_are_refused_before_training(model: str, reason: str, tiny, tmp_path: Path) -> None:
    config = tiny.config(model, "privacy=dp")
    with pytest.raises(UnsupportedPrivacyError, match=reason) as refusal:
        fit_victim(config, tiny.datamodule(tiny.images(), "image"), tmp_path)
    assert "model=dpgan" in str(refusal.value)
    assert not (tmp_path / "checkpoints").exists()
    assert not (tmp_path / "generator.safetensors").exists()


def test_sample_grids_are_written_periodically(tiny, tmp_path: Path) -> None:
    fit_victim(
        tiny.config("dcgan", "model.module.sample_every_n_steps=4", max_steps=8),
        tiny.datamodule(tiny.images(), "image"),
        tmp_path,
    )
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "final.png",
        "step_0000004.png",
        "step_0000008.png",
    ]


def test_a_crafted_checkpoint_is_not_unpickled_on_resume(tiny, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": {}, "payload": tiny.WritesMarker(marker)}, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(Exception, match="(?i)weights.only|unpickl"):
        fit_victim(tiny.config("dcgan"), tiny.datamodule(tiny.images(), "image"), tmp_path)
    assert not marker.exists()


def test_loggers_from_the_logger_group_write_under_the_run_folder(tiny, tmp_path: Path) -> None:
    fit_victim(tiny.config("dcgan", "logger=[csv,tensorboard]"), tiny.datamodule(tiny.images(), "image"), tmp_path)
    assert list((tmp_path / "tensorboard").glob("version_*/events.out.tfevents.*"))
    hparams = (next((tmp_path / "logs").glob("version_*")) / "hparams.yaml").read_text()
    assert "dcgan" in hparams and "max_steps" in hparams  # the composed config is logged
