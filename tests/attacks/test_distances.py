"""Distances of paper eq. 8-10 and the LPIPS wrapper (offline, with installer-made fake weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganleaks.distances import distance as distances
from ganleaks.distances.distance import (
    LPIPSDistance,
    LPIPSWeightsMissingError,
    ReconstructionDistance,
    latent_prior,
    mean_squared_error,
)


def test_l2_term_is_the_per_element_mean_squared_error():
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros_like(x)
    expected = torch.stack([(x[i] ** 2).mean() for i in range(3)])
    torch.testing.assert_close(mean_squared_error(x, y), expected)
    assert mean_squared_error(torch.ones(5, 7), torch.zeros(5, 7)).tolist() == [1.0] * 5  # tabular rows
    with pytest.raises(ValueError):
        mean_squared_error(x, y[:, :1])


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 32, 32), (3, 64, 64), (1071,)])
def test_l2_term_does_not_grow_with_the_image_size(shape):
    """The same per-pixel error gives the same L2 term at every size (the paper's code takes the mean)."""
    x = torch.full((2, *shape), 0.5)
    distance = ReconstructionDistance(l2_weight=1.0, lpips_weight=0.0, latent_weight=0.0)
    torch.testing.assert_close(distance.loss(x, torch.zeros_like(x)), torch.full((2,), 0.25))


def test_latent_prior_is_zero_on_the_typical_shell():
    z = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    assert latent_prior(z).tolist() == [0.0, 16.0, 0.0]


def test_objective_adds_the_prior_and_the_loss_does_not(monkeypatch):
    monkeypatch.setattr(distances, "LPIPSDistance", lambda *a, **k: pytest.fail("built LPIPS with weight 0"))
    distance = ReconstructionDistance(l2_weight=2.0, lpips_weight=0.0, latent_weight=0.5)
    assert distance.lpips is None
    x, x_hat, z = torch.ones(2, 3), torch.zeros(2, 3), torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    objective, loss = distance(x, x_hat, z)
    assert loss.tolist() == [2.0, 2.0]  # 2 * mean((1 - 0)^2)
    assert objective.tolist() == [2.0 + 0.5 * 49.0, 2.0 + 0.5 * 4.0]
    objective, loss = distance(x, x_hat, None)  # full black-box: no latent term
    assert torch.equal(objective, loss)


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
    for a, b in zip(direct, distance(target, x_hat, z), strict=False):
        torch.testing.assert_close(a, b)
    index = torch.tensor([4, 0, 4])
    for a, b in zip(
        distance(x[index], x_hat[index], z[index]), distance(target.select(index), x_hat[index], z[index]), strict=False
    ):
        torch.testing.assert_close(a, b)
    lpips_only = direct[1] - mean_squared_error(x, x_hat)
    assert (lpips_only > 0).all()  # the LPIPS term contributes


CONF = Path(__file__).resolve().parents[2] / "conf" / "distance"


def test_distance_configs_instantiate(tmp_path, monkeypatch, lpips_alex_home, offline):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    names = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert {"paper", "l2", "lpips_alex"} <= set(names)
    configs = {name: OmegaConf.load(CONF / f"{name}.yaml") for name in names}
    assert all(c._target_ == "ganleaks.distances.distance.ReconstructionDistance" and c.name == n
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


def _real_images(size: int, channels: int) -> torch.Tensor:
    """Four real photographs shipped by scikit-image, resized to ``(4, channels, size, size)`` in [-1, 1]."""
    from skimage import data

    images = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    tensors = []
    for image in images:
        x = torch.as_tensor(image, dtype=torch.float32).permute(2, 0, 1)[None] / 127.5 - 1
        side = min(x.shape[-2:])
        x = x[..., :side, :side]
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
        tensors.append(x.mean(1, keepdim=True) if channels == 1 else x)
    return torch.cat(tensors)


@pytest.mark.parametrize("size, channels, latent_dim", [(32, 1, 64), (64, 3, 100)])
def test_every_weighted_term_of_the_paper_distance_counts(size, channels, latent_dim):
    """With ``distance=paper`` (real LPIPS-VGG) each term of eq. 8-10 is a non-trivial share of the objective.

    A typical query: a real photograph; its reconstruction: the same photograph blurred and with
    noise, as a generator's near miss; z: a draw from the prior. With the L2 term summed instead of
    averaged, the L2 share would be above 99.9% at both sizes and the other two terms inert.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    distance = instantiate(OmegaConf.load(CONF / "paper.yaml"))  # the real VGG backbone, installed by set-up
    x = _real_images(size, channels)
    g = torch.Generator().manual_seed(0)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    x_hat = (blurred + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    z = torch.randn(len(x), latent_dim, generator=g)
    with torch.no_grad():
        terms = distance.terms(x, x_hat, z)
        objective, loss = distance(x, x_hat, z)
    torch.testing.assert_close(sum(terms.values()), objective)
    torch.testing.assert_close(terms["l2"] + terms["lpips"], loss)
    shares = {name: float((value / objective).median()) for name, value in terms.items()}
    assert set(shares) == {"l2", "lpips", "prior"}
    # Measured: L2 / LPIPS / prior = 0.09 / 0.44 / 0.15 at 32x32 grey, 0.05 / 0.27 / 0.30 at 64x64 RGB;
    # with a summed L2 the LPIPS and prior shares fall below 0.005 at both sizes.
    assert all(0.01 <= share <= 0.9 for share in shares.values()), shares
