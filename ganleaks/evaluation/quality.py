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

The distance is in :mod:`ganleaks.evaluation.frechet`, the extractor in
:mod:`ganleaks.evaluation.feature_extractor`, finding the training runs in :mod:`ganleaks.evaluation.runs`;
this module measures a run, writes its ``quality.json`` and is the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganleaks.evaluation.feature_extractor import FeatureExtractor, FeatureNet, fit_feature_extractor
from ganleaks.evaluation.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_interval,
    frechet_distance_of_features,
)
from ganleaks.evaluation.runs import find_training_runs, read_run_config

__all__ = [  # what this module has always offered, wherever it now lives
    "QUALITY_NAME",
    "FeatureExtractor",
    "FeatureNet",
    "evaluate_runs",
    "feature_statistics",
    "find_training_runs",
    "fit_feature_extractor",
    "frechet_distance",
    "frechet_distance_of_features",
    "generate",
    "generator_quality",
    "generator_quality_with_interval",
    "main",
    "sample_quality",
]

log = logging.getLogger("ganleaks.evaluation.quality")

QUALITY_NAME = "quality.json"


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
    return generator_quality_with_interval(generator, real, extractor, seed, resamples=0)[0]


def generator_quality_with_interval(
    generator: nn.Module, real: torch.Tensor, extractor: FeatureExtractor, seed: int = 0, resamples: int = 200
) -> tuple[float, tuple[float, float] | None]:
    """:func:`generator_quality` and its 95% bootstrap interval (``resamples`` draws; None for 0)."""
    fake = generate(generator, len(real), seed)
    if tuple(fake.shape[1:]) != tuple(real.shape[1:]):
        raise ValueError(
            f"the generator makes samples of shape {tuple(fake.shape[1:])}, but the real data has "
            f"shape {tuple(real.shape[1:])}; evaluate it with the data config it was trained on"
        )
    real_features, fake_features = extractor.features(real), extractor.features(fake)
    value = frechet_distance_of_features(real_features, fake_features)
    if not resamples:
        return value, None
    return value, frechet_distance_interval(real_features, fake_features, resamples=resamples, seed=seed)


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
    resamples: int = 200,
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
        resamples: bootstrap resamples of the distance's 95% interval (0: no interval).

    Returns:
        The dict written to ``quality.json``: ``fid_classifier`` (the Fréchet distance, whatever
        the extractor), ``fid_classifier_ci`` (its 95% bootstrap interval), ``n``,
        ``feature_extractor`` and how it was measured.
    """
    from ganleaks.data import load_manifest
    from ganleaks.data.loading import load_sample_set
    from ganleaks.io import atomic_write_text
    from ganleaks.models import load_generator

    run_dir = Path(run_dir)
    if not (run_dir / "generator.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no exported generator (generator.json); finish training it first")
    if cfg_data is None:
        cfg_data = read_run_config(run_dir).data
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
    value, interval = generator_quality_with_interval(generator, real, extractor, seed, resamples=resamples)
    result = {
        "fid_classifier": value,
        # 95% percentile bootstrap over the real set and the generated draw (frechet_distance_interval)
        "fid_classifier_ci": None if interval is None else list(interval),
        "ci_resamples": int(resamples),
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
            ) and previous.get("fid_classifier_ci"):  # one measured before intervals is measured again
                log.info("%s: quality.json is up to date", run)
                results[str(run)] = previous
                continue
        cfg_data = read_run_config(run).data
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
