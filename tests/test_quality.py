"""Sample quality: the Fréchet distance, the feature extractor and quality.json."""

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from omegaconf import OmegaConf
from torch import nn

from ganleaks.data import make_split, save_manifest
from ganleaks.data.sources import load_digits
from ganleaks.evaluation.quality import (
    evaluate_runs,
    feature_statistics,
    fit_feature_extractor,
    frechet_distance,
    frechet_distance_of_features,
    generator_quality,
    main,
    sample_quality,
)

DIGITS_16 = {
    "name": "digits",
    "source": {"_target_": "ganleaks.data.sources.load_digits", "resolution": 16, "name": "digits"},
}


def test_frechet_distance_closed_form_diagonal():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(5 + 4 + 1)


def test_frechet_distance_matches_sqrtm_for_full_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * covmean)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(frechet_distance(mu2, sigma2, mu1, sigma1))


def test_identical_features_give_zero_and_shifts_add_their_square():
    features = np.random.default_rng(1).normal(size=(50, 8))  # fewer samples than a full-rank need: still fine
    assert frechet_distance_of_features(features, features) == pytest.approx(0.0, abs=1e-8)
    shifted = features + np.array([3.0] + [0.0] * 7)
    assert frechet_distance_of_features(features, shifted) == pytest.approx(9.0, rel=1e-8)
    mu, sigma = feature_statistics(torch.from_numpy(features))
    assert mu.shape == (8,) and sigma.shape == (8, 8)
    with pytest.raises(ValueError, match="shapes do not match"):
        frechet_distance(mu, sigma, mu[:3], sigma[:3, :3])


@pytest.fixture(scope="module")
def digits():
    sample_set = load_digits(resolution=16)
    return sample_set, make_split(sample_set, 64, 128, 512, seed=0)


class Memoriser(nn.Module):
    """Outputs training images: each z picks one of them."""

    def __init__(self, images):
        super().__init__()
        self.register_buffer("images", images)
        self.latent_dim, self.data_shape = 8, tuple(images.shape[1:])

    def forward(self, z):
        index = (z[:, 0].abs() * 1e4).long() % len(self.images)
        return self.images[index]


class Noise(Memoriser):
    def forward(self, z):
        return torch.rand((len(z), *self.data_shape), generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_real_images_rank_better_than_noise(digits):
    sample_set, split = digits
    reference = sample_set.select(split.ids("reference"))
    extractor = fit_feature_extractor(reference.data, reference.labels, steps=150, seed=0)
    assert extractor.kind == "classifier" and extractor.train_metric > 0.5  # it learned the digit classes
    real = sample_set.select(split.ids("nonmembers")).data
    members = sample_set.select(split.ids("members")).data
    memoriser = generator_quality(Memoriser(members), real, extractor, seed=0)
    noise = generator_quality(Noise(members), real, extractor, seed=0)
    assert memoriser < noise / 3
    again = fit_feature_extractor(reference.data, reference.labels, steps=150, seed=0)  # seeded: same extractor
    assert generator_quality(Memoriser(members), real, again, seed=0) == pytest.approx(memoriser, rel=1e-6)


def test_unlabelled_sources_fall_back_to_an_autoencoder():
    rows = torch.rand(64, 12) * 2 - 1
    extractor = fit_feature_extractor(rows, None, steps=20, feature_dim=6, seed=0)
    assert extractor.kind == "autoencoder" and "bottleneck" in extractor.description
    assert extractor.features(rows).shape == (64, 6)
    images = torch.rand(16, 3, 8, 8) * 2 - 1
    assert fit_feature_extractor(images, None, steps=5, seed=0).features(images).shape == (16, 64)


def make_run(tmp_path, sample_set, split):
    from ganleaks.models.export import save_network
    from ganleaks.models.nets import DCGANGenerator

    run = tmp_path / "train" / "digits" / "dcgan" / "n64" / "seed0"
    torch.manual_seed(0)
    save_network(
        DCGANGenerator(latent_dim=8, data_shape=(1, 16, 16), base_channels=8),
        run,
        "generator",
        latent_dim=8,
        data_kind="image",
    )
    save_manifest(split, run)
    (run / "trained_on.json").write_text(json.dumps({"part": "members", "ids": split.parts["members"]}))
    (run / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create({"data": DIGITS_16, "seed": 0}), run / ".hydra" / "config.yaml")
    return run


def test_sample_quality_writes_quality_json(tmp_path, digits, capsys):
    run = make_run(tmp_path, *digits)
    result = sample_quality(run, n=1000, seed=0, steps=30, sample_set=digits[0])
    written = json.loads((run / "quality.json").read_text())
    assert written == result
    assert result["n"] == 128  # capped at the non-members
    assert result["fid_classifier"] > 0 and result["feature_extractor"].startswith("classifier-cnn")
    assert result["real"] == "nonmembers" and result["extractor_trained_on"].startswith("reference")
    low, high = result["fid_classifier_ci"]
    assert low < result["fid_classifier"] < high  # the bootstrap interval brackets the estimate
    # A quality.json from before intervals is measured again (not "up to date").
    written.pop("fid_classifier_ci")
    (run / "quality.json").write_text(json.dumps(written))
    assert evaluate_runs([tmp_path], n=1000, seed=0, steps=30)[str(run)]["fid_classifier_ci"] == [low, high]
    # The CLI finds the run, skips it while quality.json is up to date, and recomputes with --force.
    assert evaluate_runs([tmp_path], n=1000, seed=0, steps=30)[str(run)] == result
    main([str(tmp_path), "--steps", "30", "--n", "50"])
    assert json.loads((run / "quality.json").read_text())["n"] == 50
    assert "n=50" in capsys.readouterr().out


def test_quality_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no exported generator"):
        sample_quality(tmp_path)
    with pytest.raises(FileNotFoundError, match="no training runs"):
        evaluate_runs([tmp_path])


def test_the_frechet_interval_narrows_with_more_samples():
    from ganleaks.evaluation.frechet import frechet_distance_interval

    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 800):
        a, b = rng.normal(size=(n, 4)), rng.normal(loc=1.0, size=(n, 4))  # true distance 4
        low, high = frechet_distance_interval(a, b, resamples=200, seed=0)
        assert low < 4.0 + 2.0 and high > 4.0 - 2.0
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # 16 times the samples: about a quarter of the width
    assert frechet_distance_interval(a, b, resamples=50, seed=1) == frechet_distance_interval(
        a, b, resamples=50, seed=1
    )
    with pytest.raises(ValueError, match="level"):
        frechet_distance_interval(a, b, level=1.5)


def test_a_published_run_is_measured_from_its_config_yaml(tmp_path, digits):
    """ganleaks.evaluation.publish keeps the resolved config as config.yaml, without .hydra/: such a folder
    (results/<study>/train/...) is measured as the run itself."""
    run = make_run(tmp_path, *digits)
    expected = sample_quality(run, n=1000, seed=0, steps=30, sample_set=digits[0])
    (run / ".hydra" / "config.yaml").rename(run / "config.yaml")
    (run / ".hydra").rmdir()
    (run / "quality.json").unlink()
    again = evaluate_runs([tmp_path], n=1000, seed=0, steps=30)[str(run)]
    assert again["fid_classifier"] == pytest.approx(expected["fid_classifier"], rel=1e-9)
    (run / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="no .hydra/config.yaml, no published config.yaml"):
        evaluate_runs([tmp_path], n=1000, seed=0, steps=30, force=True)
