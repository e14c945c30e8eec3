"""Distances of paper eq. 8-10 and the LPIPS wrapper (offline, with installer-made fake weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganleaks.attacks import distances
from ganleaks.attacks.distances import (
    LPIPSDistance,
    LPIPSWeightsMissingError,
    ReconstructionDistance,
    latent_prior,
    squared_l2,
)


def test_squared_l2_sums_over_all_but_the_batch():
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros_like(x)
    expected = torch.stack([(x[i] ** 2).sum() for i in range(3)])
    torch.testing.assert_close(squared_l2(x, y), expected)
    assert squared_l2(torch.ones(5, 7), torch.zeros(5, 7)).tolist() == [7.0] * 5  # tabular rows
    with pytest.raises(ValueError):
        squared_l2(x, y[:, :1])


def test_latent_prior_is_zero_on_the_typical_shell():
    z = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    assert latent_prior(z).tolist() == [0.0, 16.0, 0.0]


def test_objective_adds_the_prior_and_score_does_not(monkeypatch):
    monkeypatch.setattr(distances, "LPIPSDistance", lambda *a, **k: pytest.fail("built LPIPS with weight 0"))
    distance = ReconstructionDistance(l2_weight=2.0, lpips_weight=0.0, latent_weight=0.5)
    assert distance.lpips is None
    x, x_hat, z = torch.ones(2, 3), torch.zeros(2, 3), torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    objective, score = distance(x, x_hat, z)
    assert score.tolist() == [6.0, 6.0]
    assert objective.tolist() == [6.0 + 0.5 * 49.0, 6.0 + 0.5 * 4.0]
    objective, score = distance(x, x_hat, None)  # full black-box: no latent term
    assert torch.equal(objective, score)


def test_missing_backbone_names_the_installer_before_any_download(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for net in ("vgg", "alex"):
        with pytest.raises(LPIPSWeightsMissingError) as error:
            ReconstructionDistance(lpips_weight=0.2, lpips_net=net)
        assert "ganleaks-install-lpips-weights" in str(error.value)
        assert "distance=l2" in str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    ReconstructionDistance(lpips_weight=0.0)  # l2 needs no weights


@pytest.fixture
def lpips_alex(lpips_alex_home, monkeypatch, offline) -> LPIPSDistance:
    monkeypatch.setenv("TORCH_HOME", str(lpips_alex_home))
    return LPIPSDistance("alex")


def test_lpips_handles_small_grayscale_images_and_is_frozen(lpips_alex):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(4, 1, 16, 16, generator=g)).clamp(-1, 1)
    far = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    same = lpips_alex(x, x)
    assert same.shape == (4,) and same.abs().max() < 1e-6
    assert (lpips_alex(x, far) > lpips_alex(x, y)).all()
    assert not any(p.requires_grad for p in lpips_alex.parameters())
    lpips_alex.train()
    assert not lpips_alex.model.training  # dropout in the LPIPS head stays off
    y = y.clone().requires_grad_(True)
    lpips_alex(x, y).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_lpips_rgb_and_shape_errors(lpips_alex):
    x = torch.zeros(2, 3, 20, 24)
    assert lpips_alex(x, x).shape == (2,)
    with pytest.raises(ValueError):
        lpips_alex(torch.zeros(2, 2, 16, 16), torch.zeros(2, 2, 16, 16))


def test_prepared_targets_match_direct_lpips(lpips_alex_home, monkeypatch, offline):
    monkeypatch.setenv("TORCH_HOME", str(lpips_alex_home))
    distance = ReconstructionDistance(l2_weight=1.0, lpips_weight=0.2, latent_weight=0.001, lpips_net="alex")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 1, 16, 16, generator=g) * 2 - 1
    x_hat = torch.rand(5, 1, 16, 16, generator=g) * 2 - 1
    z = torch.randn(5, 4, generator=g)
    direct = distance(x, x_hat, z)
    target = distance.prepare(x)
    for a, b in zip(direct, distance(target, x_hat, z)):
        torch.testing.assert_close(a, b)
    index = torch.tensor([4, 0, 4])
    for a, b in zip(distance(x[index], x_hat[index], z[index]), distance(target.select(index), x_hat[index], z[index])):
        torch.testing.assert_close(a, b)
    lpips_only = (direct[1] - distance.score(x, x_hat) * 0) - squared_l2(x, x_hat)
    assert (lpips_only > 0).all()  # the LPIPS term contributes


CONF = Path(__file__).resolve().parents[2] / "conf" / "distance"


def test_distance_configs_instantiate(tmp_path, monkeypatch, lpips_alex_home, offline):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    names = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert {"paper", "l2", "lpips_alex"} <= set(names)
    configs = {name: OmegaConf.load(CONF / f"{name}.yaml") for name in names}
    assert all(c._target_ == "ganleaks.attacks.distances.ReconstructionDistance" and c.name == n
               for n, c in configs.items())  # fmt: skip
    paper = configs["paper"]
    assert (paper.l2_weight, paper.lpips_weight, paper.latent_weight, paper.lpips_net) == (1.0, 0.2, 0.001, "vgg")

    l2 = instantiate(configs["l2"])
    assert l2.lpips is None and l2.latent_weight == 0.001 and l2.name == "l2"
    monkeypatch.setenv("TORCH_HOME", str(lpips_alex_home))
    assert instantiate(configs["lpips_alex"]).lpips.net == "alex"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no VGG anywhere
    with pytest.raises(Exception, match="ganleaks-install-lpips-weights") as error:  # hydra wraps it
        instantiate(configs["paper"])
    cause = error.value if isinstance(error.value, LPIPSWeightsMissingError) else error.value.__cause__
    assert isinstance(cause, LPIPSWeightsMissingError)
