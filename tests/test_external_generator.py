"""A user's own generator / discriminator: built by _target_, loaded without running code, checked at load."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ganleaks.attacks.nearest_neighbor import SampleBank, nearest_neighbors
from ganleaks.io import UnsafeFileError
from ganleaks.victims.external_networks import (
    ExternalGenerator,
    ExternalModelError,
    load_external_discriminator,
    load_external_generator,
)
from ganleaks.victims.output_checks import check_generator_outputs
from tests.userpkg.nets import ConvGenerator, Discriminator, Generator

GENERATOR = {"_target_": "tests.userpkg.nets.Generator", "latent_size": 8}
SHAPE = (1, 16, 16)


def _saved(tmp_path: Path, network: torch.nn.Module, name: str) -> Path:
    state = {key: value.contiguous() for key, value in network.state_dict().items()}
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def _user_generator(seed: int = 0, **kwargs) -> Generator:
    torch.manual_seed(seed)
    network = Generator(**{"latent_size": 8, **kwargs})
    with torch.no_grad():  # non-trivial batch-norm statistics, so that eval mode matters
        network.body[1].running_mean.uniform_(-0.5, 0.5)
        network.body[1].running_var.uniform_(0.5, 2.0)
    return network.eval()


@pytest.mark.parametrize("file_name", ["G.safetensors", "G.pt"])
def test_a_saved_user_generator_loads_and_matches_the_users_network(tmp_path, file_name):
    network = _user_generator()
    path = _saved(tmp_path, network, file_name)
    generator = load_external_generator(GENERATOR, path, latent_dim=8, data_shape=SHAPE)
    assert isinstance(generator, ExternalGenerator)
    assert (generator.latent_dim, generator.data_shape) == (8, SHAPE)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(generator(z), network(z), atol=1e-6)
    assert not any(p.requires_grad for p in generator.parameters())
    z.requires_grad_(True)  # white-box: gradients reach the latent through the frozen network
    generator(z).pow(2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    generator.train()
    assert not generator.network.training, "batch-norm must stay in eval mode so queries never share statistics"


def test_the_wrapped_generator_plugs_into_the_sample_bank_and_the_output_check(tmp_path):
    generator = load_external_generator(GENERATOR, _saved(tmp_path, _user_generator(), "G.safetensors"), 8)
    check_generator_outputs(generator, tmp_path, "victim generator")
    bank = SampleBank(generator, k=32, seed=0, chunk_size=8)
    target = bank.samples(torch.tensor([5, 17]))
    found = nearest_neighbors(target, bank)
    assert found.indices[:, 0].tolist() == [5, 17]
    assert found.z is not None and torch.allclose(generator(found.z[:, 0]), target)


def test_a_checkpoint_entry_is_named_by_weights_key(tmp_path):
    network = _user_generator()
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}, "epoch": 3}, path)
    with pytest.raises(ExternalModelError, match=r"victim.weights_key=ENTRY"):
        load_external_generator(GENERATOR, path, 8)
    generator = load_external_generator(GENERATOR, path, 8, weights_key="state_dict")  # DataParallel prefix dropped
    z = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.allclose(generator(z), network(z), atol=1e-6)


class _WritesMarker:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "G.pt"
    torch.save({**_user_generator().state_dict(), "payload": _WritesMarker(marker)}, path)
    with pytest.raises(ExternalModelError, match="Nothing was executed") as error:
        load_external_generator(GENERATOR, path, 8)
    assert isinstance(error.value.__cause__, UnsafeFileError)
    assert not marker.exists()


def test_a_zero_one_output_range_is_converted_to_minus_one_one(tmp_path, caplog):
    network = _user_generator(output="sigmoid")
    path = _saved(tmp_path, network, "G.safetensors")
    node = {**GENERATOR, "output": "sigmoid"}
    generator = load_external_generator(node, path, 8, output_range=[0, 1])
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        raw, out = network(z), generator(z)
    assert torch.allclose(out, 2 * raw - 1, atol=1e-6)
    assert out.min() < -0.1 and out.max() <= 1
    with caplog.at_level(logging.WARNING, logger="ganleaks.victims.external_networks"):
        load_external_generator(node, path, 8)  # declared [-1, 1]: never negative, so the user is told
    assert "victim.output_range=[0,1]" in caplog.text


def test_an_output_range_the_generator_exceeds_is_refused_naming_the_key(tmp_path):
    path = _saved(tmp_path, _user_generator(), "G.safetensors")  # tanh: negative outputs
    with pytest.raises(ExternalModelError, match=r"outside victim.output_range=\[0,1\]"):
        load_external_generator(GENERATOR, path, 8, output_range=[0, 1])


def test_a_wrong_latent_size_is_refused_naming_the_key_and_the_size_the_network_takes(tmp_path):
    path = _saved(tmp_path, _user_generator(), "G.safetensors")
    with pytest.raises(ExternalModelError, match=r"victim.latent_dim=5.*takes 8 inputs.*Set victim.latent_dim"):
        load_external_generator(GENERATOR, path, 5)


def test_a_generator_of_another_shape_than_the_queries_is_refused_naming_the_keys(tmp_path):
    path = _saved(tmp_path, _user_generator(), "G.safetensors")
    with pytest.raises(ExternalModelError, match=r"shape \(1, 16, 16\).*\(3, 16, 16\).*queries.channels=1"):
        load_external_generator(GENERATOR, path, 8, data_shape=(3, 16, 16))


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = _saved(tmp_path, _user_generator(hidden=16), "G.safetensors")
    with pytest.raises(ExternalModelError, match="does not fit"):
        load_external_generator(GENERATOR, path, 8)


def test_a_missing_or_unimportable_target_says_what_to_set(tmp_path):
    path = _saved(tmp_path, _user_generator(), "G.safetensors")
    with pytest.raises(ExternalModelError, match=r"victim.generator._target_=mypkg.nets.Generator"):
        load_external_generator({"latent_size": 8}, path, 8)
    with pytest.raises(ExternalModelError, match="importable"):
        load_external_generator({"_target_": "no_such_package.nets.Generator"}, path, 8)
    with pytest.raises(FileNotFoundError, match="victim.weights"):
        load_external_generator(GENERATOR, tmp_path / "missing.safetensors", 8)


def test_a_dcgan_style_generator_gets_spatial_latents(tmp_path):
    torch.manual_seed(0)
    network = ConvGenerator(latent_size=8).eval()
    path = _saved(tmp_path, network, "G.safetensors")
    generator = load_external_generator({"_target_": "tests.userpkg.nets.ConvGenerator"}, path, 8, data_shape=SHAPE)
    assert generator.spatial_latent
    z = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(generator(z), network(z[:, :, None, None]), atol=1e-6)


def test_a_uniform_latent_is_drawn_through_the_normal_cdf(tmp_path):
    path = _saved(tmp_path, _user_generator(), "G.safetensors")
    generator = load_external_generator(GENERATOR, path, 8, latent_distribution="uniform", latent_range=[-1, 1])
    u = generator.native_latent(torch.randn(20000, 8, generator=torch.Generator().manual_seed(3)))
    assert -1 < float(u.min()) and float(u.max()) < 1
    for q in (-0.5, 0.0, 0.5):  # P(U <= q) = (q + 1) / 2 for U ~ U(-1, 1)
        assert abs(float((u <= q).float().mean()) - (q + 1) / 2) < 0.01


def test_a_user_discriminator_loads_with_its_input_range(tmp_path):
    torch.manual_seed(0)
    network = Discriminator().eval()
    path = _saved(tmp_path, network, "D.pt")
    node = {"_target_": "tests.userpkg.nets.Discriminator"}
    discriminator = load_external_discriminator(node, path, SHAPE, input_range=[0, 1])
    x = torch.rand(6, *SHAPE) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(discriminator(x), network((x + 1) / 2).reshape(6), atol=1e-6)
    with pytest.raises(ExternalModelError, match="queries' shape"):
        load_external_discriminator(node, path, (3, 16, 16))
