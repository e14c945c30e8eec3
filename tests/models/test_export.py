"""Export and safe loading: safetensors + an allow-list of classes, never a pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganleaks.models import load_discriminator, load_generator
from ganleaks.models.export import save_network
from ganleaks.models.nets import DCGANDiscriminator, DCGANGenerator, PGGANDiscriminator, PGGANGenerator


def _export_dcgan(run_dir: Path) -> DCGANGenerator:
    torch.manual_seed(0)
    generator = DCGANGenerator(latent_dim=8, data_shape=(1, 16, 16), base_channels=4)
    generator.train()(torch.randn(16, 8))  # move BatchNorm running stats off their defaults
    save_network(generator, run_dir, "generator", latent_dim=8, data_kind="image")
    save_network(
        DCGANDiscriminator(data_shape=(1, 16, 16), base_channels=4),
        run_dir,
        "discriminator",
        latent_dim=8,
        data_kind="image",
    )
    return generator.eval()


def test_roundtrip_gives_identical_outputs_in_eval_mode(tmp_path: Path) -> None:
    generator = _export_dcgan(tmp_path)
    loaded = load_generator(tmp_path)
    assert not loaded.training and loaded.latent_dim == 8 and loaded.data_shape == (1, 16, 16)
    z = torch.randn(5, 8)
    torch.testing.assert_close(loaded(z), generator(z), rtol=0, atol=0)
    assert load_discriminator(tmp_path)(loaded(z)).shape == (5,)
    spec = json.loads((tmp_path / "generator.json").read_text())
    assert spec["class"] == "ganleaks.models.nets.dcgan.DCGANGenerator"
    assert spec["data_shape"] == [1, 16, 16] and spec["data_kind"] == "image" and spec["latent_dim"] == 8


def test_latents_still_get_gradients_through_a_loaded_generator(tmp_path: Path) -> None:
    _export_dcgan(tmp_path)
    generator = load_generator(tmp_path)
    z = torch.zeros(2, 8, requires_grad=True)
    generator(z).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in generator.parameters())


def test_pggan_growth_state_travels_with_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generator = PGGANGenerator(latent_dim=8, data_shape=(1, 16, 16), fmap_base=32, fmap_max=16)
    generator.set_growth(1, 0.25)  # training stopped mid fade-in at 8x8
    save_network(generator, tmp_path, "generator", latent_dim=8, data_kind="image")
    loaded = load_generator(tmp_path)
    assert int(loaded.stage) == 1 and float(loaded.alpha) == 0.25
    z = torch.randn(3, 8)
    assert loaded(z).shape == (3, 1, 16, 16)
    torch.testing.assert_close(loaded(z), generator(z))


def test_pggan_discriminator_exports_no_scoring_state_and_scores_the_same_loaded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    discriminator = PGGANDiscriminator(data_shape=(1, 16, 16), fmap_base=32, fmap_max=16)
    save_network(discriminator, tmp_path, "discriminator", latent_dim=8, data_kind="image")
    # Exactly the weights and growth buffers an export held before the fixed scoring group existed,
    # so older exports load (strictly) and rebuild the same group.
    stored = set(load_file(str(tmp_path / "discriminator.safetensors")))
    assert stored == {name for name, _ in discriminator.named_parameters()} | {"stage", "alpha"}
    loaded = load_discriminator(tmp_path)
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    torch.testing.assert_close(loaded(x), discriminator.eval()(x), rtol=0, atol=0)


def test_missing_run_folder_and_missing_export_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python train.py") as missing_dir:
        load_generator(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(missing_dir.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="generator.json"):
        load_generator(tmp_path / "empty")


def test_a_pickled_weights_file_is_refused_without_being_unpickled(tmp_path: Path, tiny) -> None:
    _export_dcgan(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "generator.safetensors", "wb") as handle:
        pickle.dump(tiny.WritesMarker(marker), handle)
    # Same payload through torch.save, as a malicious checkpoint would be.
    torch.save({"state_dict": tiny.WritesMarker(marker)}, tmp_path / "discriminator.safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        load_generator(tmp_path)
    with pytest.raises(ValueError, match="safetensors"):
        load_discriminator(tmp_path)
    assert not marker.exists()


def test_classes_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    _export_dcgan(tmp_path)
    spec_path = tmp_path / "generator.json"
    for evil in ("os.system", "builtins.eval", "torch.nn.Linear", "ganleaks.models.export.load_network"):
        spec = json.loads(spec_path.read_text())
        spec["class"] = evil
        spec_path.write_text(json.dumps(spec))
        with pytest.raises(ValueError, match="not an allowed"):
            load_generator(tmp_path)


def test_malformed_spec_and_mismatched_weights_are_reported(tmp_path: Path) -> None:
    _export_dcgan(tmp_path)
    spec_path = tmp_path / "generator.json"
    good = json.loads(spec_path.read_text())
    spec_path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_generator(tmp_path)
    spec_path.write_text(json.dumps({**good, "kwargs": {**good["kwargs"], "base_channels": 8}}))
    with pytest.raises(ValueError, match="does not match"):
        load_generator(tmp_path)
    spec_path.write_text(json.dumps({k: v for k, v in good.items() if k != "kwargs"}))
    with pytest.raises(ValueError, match="lacks"):
        load_generator(tmp_path)
