"""Sample quality without downloads: a Fréchet distance in the features of a small net trained here.

The FID of Heusel et al. needs Inception weights; this module trains its own feature extractor,
seeded and in well under a minute on a CPU, on data of the victim's own source:

* **Labelled sources** (digits, MNIST, Fashion-MNIST): a small CNN classifier (an MLP for tabular
  rows) trained on the split's **reference** part; the features are its penultimate layer.
* **Unlabelled sources** (CelebA, image folders, MIMIC, check-ins): a small autoencoder trained on
  the same reference part; the features are its bottleneck.

The reference part is disjoint from the members and the non-members, and for one split seed it is
the same for every ``train_size`` (nested splits), so every victim of a study is measured in the
same feature space. The **real** set is ``n`` **non-members** (held-out images of the same
source, again identical across ``train_size``), not the members: their number changes with
``train_size`` and a generator that merely memorised them would look perfect. The generated set
is ``n`` samples ``G(z)``, ``z ~ N(0, I)`` drawn with ``seed``.

The number is comparable between models measured with the same data, split seed, ``n`` and
extractor seed (the Fréchet distance of a finite sample is biased upward, more so for small ``n``);
it is not comparable with Inception FIDs from papers.

    python -m ganleaks.evaluation.quality outputs/cpu_dp/train   # every victim under the folder
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

log = logging.getLogger("ganleaks.evaluation.quality")

QUALITY_NAME = "quality.json"


# --------------------------------------------------------------------------------------------
# Fréchet distance


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(F,)`` and covariance ``(F, F)`` (unbiased, float64) of ``features (N, F)``."""
    features = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must have shape (N >= 2, F), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``, with the trace of the matrix
    square root computed as ``sum sqrt(eig(S1^(1/2) S2 S1^(1/2)))``: that product is symmetric PSD,
    so the result is real and stable for the singular covariances that few samples give (where
    ``scipy.linalg.sqrtm(S1 @ S2)`` can return complex noise).

    Args:
        mu1, mu2: means ``(F,)``.
        sigma1, sigma2: covariances ``(F, F)``.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shapes do not match: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    root1 = _psd_sqrt(sigma1)
    cross = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = float(np.sqrt(np.clip(cross, 0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical inputs


def frechet_distance_of_features(features1, features2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N1, F)`` and ``(N2, F)``."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# --------------------------------------------------------------------------------------------
# Feature extractor


class FeatureNet(nn.Module):
    """Encoder to ``feature_dim`` features: strided convolutions for images, an MLP for rows.

    Shapes:
        ``forward(x: (B, *data_shape)) -> (B, feature_dim)``.
    """

    def __init__(self, data_shape: Sequence[int], feature_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        shape = tuple(int(s) for s in data_shape)
        if len(shape) == 3:
            channels, size = shape[0], min(shape[1:])
            layers: list[nn.Module] = []
            while size > 4 and len(layers) < 8:  # halve down to about 4x4, at most 4 convolutions
                layers += [nn.Conv2d(channels, width, 3, 2, 1), nn.ReLU()]
                channels, width, size = width, min(width * 2, 128), (size + 1) // 2
            layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(channels * 4, feature_dim), nn.ReLU()]
        elif len(shape) == 1:
            layers = [nn.Linear(shape[0], 256), nn.ReLU(), nn.Linear(256, feature_dim), nn.ReLU()]
        else:
            raise ValueError(f"data_shape must be (C, H, W) or (D,), got {shape}")
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class FeatureExtractor:
    """A trained encoder and what it is, for ``quality.json``."""

    encoder: FeatureNet
    kind: str  # "classifier" | "autoencoder"
    description: str
    train_metric: float  # classifier: accuracy on its last batches; autoencoder: reconstruction MSE

    @torch.no_grad()
    def features(self, data: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Features ``(N, F)`` of ``data (N, *data_shape)`` in ``[-1, 1]``."""
        self.encoder.eval()
        return torch.cat([self.encoder(data[i : i + batch_size].float()) for i in range(0, len(data), batch_size)])


def fit_feature_extractor(
    data: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    steps: int = 600,
    batch_size: int = 128,
    feature_dim: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> FeatureExtractor:
    """Train a classifier (with ``labels``) or an autoencoder (without) on ``data``; seeded, CPU-sized.

    Args:
        data: ``(N, C, H, W)`` images or ``(N, D)`` rows in ``[-1, 1]``.
        labels: ``int64 (N,)`` class labels, or ``None`` for the autoencoder fallback.
        steps: optimiser steps (600 x 128 samples takes seconds on one CPU core at 32x32).
        seed: seeds the initialisation and the batches; the same inputs give the same extractor.
    """
    if len(data) < 2:
        raise ValueError(f"the feature extractor needs at least 2 training samples, got {len(data)}")
    shape = tuple(data.shape[1:])
    supervised = labels is not None and len(torch.unique(labels)) > 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = FeatureNet(shape, feature_dim)
        if supervised:
            assert labels is not None  # supervised implies labels
            head: nn.Module = nn.Linear(feature_dim, int(labels.max()) + 1)
        else:
            head = nn.Sequential(nn.Linear(feature_dim, math.prod(shape)), nn.Tanh())
    model = nn.Sequential(encoder, head)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    model.train()
    recent: list[float] = []
    for _ in range(int(steps)):
        index = torch.randint(len(data), (min(batch_size, len(data)),), generator=rng)
        x = data[index].float()
        out = model(x)
        if supervised:
            assert labels is not None  # supervised implies labels
            target = labels[index]
            loss = nn.functional.cross_entropy(out, target)
            recent.append(float((out.argmax(1) == target).float().mean()))
        else:
            loss = nn.functional.mse_loss(out, x.reshape(len(x), -1))
            recent.append(loss.item())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        recent = recent[-20:]
    kind = "classifier" if supervised else "autoencoder"
    net = "cnn" if len(shape) == 3 else "mlp"
    layer = "penultimate layer" if supervised else "bottleneck"
    description = f"{kind}-{net}: {layer}, {feature_dim} features, {steps} steps, seed {seed}"
    metric = float(np.mean(recent)) if recent else float("nan")
    log.info(
        "feature extractor %s trained on %d samples (%s %.3f)",
        description,
        len(data),
        "accuracy" if supervised else "mse",
        metric,
    )
    return FeatureExtractor(encoder.eval(), kind, description, metric)


# --------------------------------------------------------------------------------------------
# Generated samples and the quality of a generator


@torch.no_grad()
def generate(generator: nn.Module, n: int, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """``n`` samples ``G(z)``, ``z ~ N(0, I)`` drawn from a generator seeded with ``seed`` (CPU)."""
    rng = torch.Generator().manual_seed(int(seed))
    z = torch.randn(int(n), int(generator.latent_dim), generator=rng)  # type: ignore[arg-type]
    parameter = next(generator.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = generator.training
    generator.eval()
    try:
        return torch.cat(
            [generator(z[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(z), batch_size)]
        )
    finally:
        generator.train(was_training)


def generator_quality(generator: nn.Module, real: torch.Tensor, extractor: FeatureExtractor, seed: int = 0) -> float:
    """Fréchet distance between ``len(real)`` generated samples and ``real`` in ``extractor``'s features."""
    fake = generate(generator, len(real), seed)
    if tuple(fake.shape[1:]) != tuple(real.shape[1:]):
        raise ValueError(
            f"the generator makes samples of shape {tuple(fake.shape[1:])}, but the real data has "
            f"shape {tuple(real.shape[1:])}; evaluate it with the data config it was trained on"
        )
    return frechet_distance_of_features(extractor.features(real), extractor.features(fake))


def _read_run_config(run_dir: Path) -> DictConfig:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {run_dir} is not a ganleaks training run (pass cfg_data)")
    config = OmegaConf.load(path)
    assert isinstance(config, DictConfig), f"{path} is a list, not a run's config"
    return config


def sample_quality(
    run_dir: str | Path,
    cfg_data: DictConfig | None = None,
    n: int = 1000,
    seed: int = 0,
    *,
    steps: int = 600,
    real_part: str = "nonmembers",
    train_part: str = "reference",
    sample_set=None,
    extractor_cache: dict | None = None,
) -> dict:
    """Measure the sample quality of the generator in ``run_dir`` and write ``run_dir/quality.json``.

    Args:
        run_dir: a training run folder (``generator.json``, ``manifest.json``, ``.hydra/config.yaml``).
        cfg_data: the data config; default: the one the run was trained with.
        n: real and generated samples compared (capped at the size of ``real_part``).
        seed: seeds the extractor, the choice of real samples and the latents.
        steps: feature-extractor training steps.
        real_part: split part used as the real set (``nonmembers``: held-out; ``members``: the
            victim's training data).
        train_part: split part the feature extractor trains on (``reference`` by default).
        sample_set: the loaded data source (saves re-reading it when evaluating many runs).
        extractor_cache: a dict reused across calls so runs on the same split share one extractor.

    Returns:
        The dict written to ``quality.json``: ``fid_classifier`` (the Fréchet distance, whatever
        the extractor), ``n``, ``feature_extractor`` and how it was measured.
    """
    from ganleaks.data import atomic_write_text, load_manifest
    from ganleaks.data.loading import load_sample_set
    from ganleaks.models import load_generator

    run_dir = Path(run_dir)
    if not (run_dir / "generator.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no exported generator (generator.json); finish training it first")
    if cfg_data is None:
        cfg_data = _read_run_config(run_dir).data
    if sample_set is None:
        sample_set = load_sample_set(cfg_data)
    split = load_manifest(run_dir, sample_set)
    train_ids, real_ids = split.ids(train_part), split.ids(real_part)
    if len(train_ids) < 2 or len(real_ids) < 2:
        raise ValueError(
            f"{run_dir}: the split has {len(train_ids)} {train_part} and {len(real_ids)} {real_part} "
            f"samples; sample quality needs at least 2 of each (raise data.reference_size / "
            "data.nonmember_size)"
        )
    key = (split.fingerprint, tuple(train_ids.tolist()), int(seed), int(steps))
    extractor = None if extractor_cache is None else extractor_cache.get(key)
    if extractor is None:
        train = sample_set.select(train_ids)
        extractor = fit_feature_extractor(train.data, train.labels, steps=steps, seed=seed)
        if extractor_cache is not None:
            extractor_cache[key] = extractor
    pick = real_ids[torch.randperm(len(real_ids), generator=torch.Generator().manual_seed(int(seed)))[: int(n)]]
    real = sample_set.data[sample_set.positions(pick)]
    generator = load_generator(run_dir)
    result = {
        "fid_classifier": generator_quality(generator, real, extractor, seed),
        "n": len(real),
        "feature_extractor": extractor.description,
        "extractor_trained_on": f"{train_part} ({len(train_ids)} samples)",
        "extractor_train_metric": extractor.train_metric,
        "real": real_part,
        "seed": int(seed),
        "steps": int(steps),
        "n_requested": int(n),
    }
    atomic_write_text(run_dir / QUALITY_NAME, json.dumps(result, indent=1))
    log.info("%s: Fréchet distance %.4f (%s, n=%d)", run_dir, result["fid_classifier"], extractor.kind, len(real))
    return result


def find_training_runs(paths: Sequence[str | Path], include_reference: bool = False) -> list[Path]:
    """Training run folders (with an exported generator) under ``paths``, victims only by default."""
    runs: set[Path] = set()
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        candidates = [root / "generator.json"] if (root / "generator.json").is_file() else []
        for marker in candidates or sorted(root.rglob("generator.json")):
            run = marker.parent
            trained_on = run / "trained_on.json"
            part = json.loads(trained_on.read_text()).get("part") if trained_on.is_file() else "members"
            if part == "members" or include_reference:
                runs.add(run)
    return sorted(runs)


def evaluate_runs(
    paths: Sequence[str | Path],
    n: int = 1000,
    seed: int = 0,
    steps: int = 600,
    real_part: str = "nonmembers",
    include_reference: bool = False,
    force: bool = False,
) -> dict:
    """``sample_quality`` for every training run under ``paths``; returns ``{run_dir: result}``.

    A run whose ``quality.json`` was measured with the same ``n``, ``seed``, ``steps`` and real part
    is skipped unless ``force``. Runs on the same data and split share one feature extractor.
    """
    from ganleaks.data.loading import load_sample_set

    runs = find_training_runs(paths, include_reference)
    if not runs:
        raise FileNotFoundError(f"no training runs (generator.json) under {', '.join(map(str, paths))}")
    sample_sets: dict[str, object] = {}
    extractors: dict = {}
    results = {}
    for run in runs:
        existing = run / QUALITY_NAME
        if existing.is_file() and not force:
            previous = json.loads(existing.read_text())
            if (previous.get("n_requested"), previous.get("seed"), previous.get("steps"), previous.get("real")) == (
                n,
                seed,
                steps,
                real_part,
            ):
                log.info("%s: quality.json is up to date", run)
                results[str(run)] = previous
                continue
        cfg_data = _read_run_config(run).data
        source_key = OmegaConf.to_yaml(cfg_data.source)
        if source_key not in sample_sets:
            sample_sets[source_key] = load_sample_set(cfg_data)
        results[str(run)] = sample_quality(
            run,
            cfg_data,
            n,
            seed,
            steps=steps,
            real_part=real_part,
            sample_set=sample_sets[source_key],
            extractor_cache=extractors,
        )
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ganleaks.evaluation.quality",
        description="Write quality.json (a Fréchet distance in the features of a small classifier trained on the "
        "split's reference part) into every training run under the given folders.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training run folders or folders above them")
    parser.add_argument("--n", type=int, default=1000, help="real and generated samples compared (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600, help="feature-extractor training steps")
    parser.add_argument(
        "--real",
        default="nonmembers",
        choices=["nonmembers", "members"],
        help="the real set: held-out non-members (default) or the victim's members",
    )
    parser.add_argument("--include-reference", action="store_true", help="also measure calibration reference models")
    parser.add_argument("--force", action="store_true", help="recompute runs whose quality.json is up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        results = evaluate_runs(
            args.run_dirs, args.n, args.seed, args.steps, args.real, args.include_reference, args.force
        )
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    for run, result in results.items():
        print(f"{result['fid_classifier']:10.4f}  n={result['n']:<5d} {run}")


if __name__ == "__main__":
    main()
