"""calibration=references: several reference models, each query's losses on them fitted by a Gaussian
(offline LiRA), the reference models trained on random draws of the reference part (data.reference_draw)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ganleaks.errors import AttackConfigError
from ganleaks.orchestration.references import fit_references
from ganleaks.orchestration.run import run_attack
from ganleaks.workflows import train
from tests.conftest import FAST_REFERENCE, attack_overrides, compose_app

# ----------------------------------------------------------------------------------- the fit


def test_one_reference_is_the_papers_calibration():
    victim = torch.tensor([0.3, 0.9, 0.5, 0.1])
    reference = torch.tensor([[0.4, 0.8, 0.9, 0.05]])
    fit = fit_references(victim, reference)
    assert torch.allclose(fit.score, reference[0] - victim)  # -(L_v - L_r), eq. 11
    assert fit.shared_variance and torch.all(fit.sigma == 1)


def test_shared_variance_is_the_pooled_within_query_spread_and_the_centre_a_median():
    rng = np.random.default_rng(0)
    losses = rng.gamma(2.0, 0.5, size=(4, 50))
    victim = rng.gamma(2.0, 0.5, size=50)
    fit = fit_references(torch.tensor(victim), torch.tensor(losses), per_query_variance_from=64)
    sigma = np.sqrt(np.var(losses, axis=0, ddof=1).mean())
    centre = np.median(losses, axis=0)  # the mean of the two middle values at R = 4
    np.testing.assert_allclose(fit.mean.numpy(), centre, rtol=1e-5)
    np.testing.assert_allclose(fit.sigma.numpy(), sigma, rtol=1e-5)
    np.testing.assert_allclose(fit.score.numpy(), (centre - victim) / sigma, rtol=1e-4, atol=1e-6)
    # a shared sigma scales every score alike: the order is the centred difference's
    assert (np.argsort(fit.score.numpy()) == np.argsort(centre - victim)).all()


def test_per_query_variance_from_the_threshold_on():
    rng = np.random.default_rng(1)
    losses = rng.normal(1.0, rng.uniform(0.1, 1.0, size=30), size=(8, 30))
    victim = rng.normal(1.0, 0.5, size=30)
    fit = fit_references(torch.tensor(victim), torch.tensor(losses), per_query_variance_from=8)
    assert not fit.shared_variance
    expected = (np.median(losses, axis=0) - victim) / np.std(losses, axis=0)  # the authors' np.std, ddof 0
    np.testing.assert_allclose(fit.score.numpy(), expected, rtol=1e-4)
    # a query whose references agree closely is scored more sharply than one where they scatter
    assert len(set(np.round(fit.sigma.numpy(), 6))) == 30


def test_log_transform_fits_the_log_loss_and_refuses_non_positive_losses():
    victim = torch.tensor([0.5, 2.0])
    references = torch.tensor([[1.0, 1.0], [2.0, 4.0]])
    fit = fit_references(victim, references, transform="log")
    centre = torch.log(references).mean(dim=0)
    assert torch.allclose(fit.mean, centre.float())
    with pytest.raises(AttackConfigError, match="transform=none"):
        fit_references(torch.tensor([-0.5, 2.0]), references, transform="log")


def test_a_query_failed_on_any_reference_scores_nan():
    victim = torch.tensor([0.5, 0.6, 0.7])
    references = torch.tensor([[1.0, float("nan"), 0.9], [1.1, 0.8, 0.95], [1.2, 0.7, 1.0]])
    fit = fit_references(victim, references)
    assert torch.isnan(fit.score[1]) and not torch.isnan(fit.score[[0, 2]]).any()


# ----------------------------------------------------------------------------------- training the draws


@pytest.fixture(scope="module")
def references_root(tmp_path_factory) -> Path:
    """A tiny DCGAN victim, its paper reference (the whole reference part) and three drawn references."""
    root = tmp_path_factory.mktemp("references")
    for overrides in (
        [],
        ["data.part=reference"],
        *(["data.part=reference", f"data.reference_draw={d}"] for d in range(3)),
    ):
        cfg, run_dir = compose_app("train", root, overrides)
        train(cfg, run_dir)
    return root


def _trained_ids(run_dir: Path) -> set[int]:
    return set(json.loads((run_dir / "trained_on.json").read_text())["ids"])


def test_each_draw_trains_on_its_own_random_half_of_the_reference_part(references_root):
    models = references_root / "train" / "digits" / "dcgan"
    whole = _trained_ids(models / "reference_n48" / "seed0")
    draws = [_trained_ids(models / f"reference_n48-f0.5-draw{d}" / "seed0") for d in range(3)]
    members = _trained_ids(models / "n24" / "seed0")
    assert len(whole) == 48
    for ids in draws:
        assert len(ids) == 24 and ids <= whole and not ids & members
    assert len({frozenset(ids) for ids in draws}) == 3  # three different halves
    weights = {
        (models / f"reference_n48-f0.5-draw{d}" / "seed0" / "generator.safetensors").read_bytes() for d in range(3)
    }
    assert len(weights) == 3  # and three different trainings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.reference_draw=0"], "data.part=reference"),
        (["data.part=reference", "data.reference_draw=-1"], "integer >= 0"),
        (["data.part=reference", "data.reference_draw=0", "data.reference_fraction=1.5"], r"in \(0, 1\]"),
    ],
)
def test_bad_draws_are_refused_before_training(tmp_path, overrides, message):
    cfg, run_dir = compose_app("train", tmp_path, overrides)
    with pytest.raises(ValueError, match=message):
        train(cfg, run_dir)
    assert not run_dir.exists()


# ----------------------------------------------------------------------------------- the attack


def _attack(root: Path, calibration: str, extra: list[str]) -> tuple[dict, Path]:
    cfg, run_dir = compose_app("attack", root, attack_overrides("whitebox", calibration, extra))
    return run_attack(cfg, run_dir), run_dir


def _scores(run_dir: Path) -> dict[str, float]:
    with open(run_dir / "scores.csv") as handle:
        return {row["id"]: float(row["score"]) for row in csv.DictReader(handle)}


def test_three_references_give_the_fitted_score_and_every_output(references_root):
    metrics, run_dir = _attack(references_root, "references", ["calibration.num_references=3", *FAST_REFERENCE])
    models = references_root / "train" / "digits" / "dcgan"
    assert metrics["reference_run_dirs"] == [str(models / f"reference_n48-f0.5-draw{d}" / "seed0") for d in range(3)]
    assert metrics["references"]["num_references"] == 3 and metrics["references"]["variance"] == "shared"
    with open(run_dir / "reference_losses.csv") as handle:
        rows = list(csv.DictReader(handle))
    losses = np.array([[float(row[f"reference-{d}"]) for d in range(3)] for row in rows])
    with open(run_dir / "scores.csv") as handle:
        scored = {row["id"]: row for row in csv.DictReader(handle)}
    victim = np.array([float(scored[row["id"]]["victim_loss"]) for row in rows])
    sigma = np.sqrt(np.var(losses, axis=1, ddof=1).mean())
    expected = (np.median(losses, axis=1) - victim) / sigma
    np.testing.assert_allclose([float(scored[row["id"]]["score"]) for row in rows], expected, rtol=1e-3, atol=1e-5)
    assert 0 <= metrics["auc"] <= 1 and metrics["n_failed"] == 0
    assert "against its losses on 3 reference models" in (run_dir / "summary.html").read_text()
    record = json.loads((run_dir / "run.json").read_text())
    assert {"reference-0", "reference-1", "reference-2"} <= set(record["identity"])


def test_one_reference_reproduces_the_papers_calibration(references_root):
    paper, paper_dir = _attack(references_root, "reference", [])
    models = references_root / "train" / "digits" / "dcgan"
    one, one_dir = _attack(
        references_root,
        "references",
        [
            "calibration.num_references=1",
            f"calibration.run_dirs=[{models / 'reference_n48' / 'seed0'}]",
            *FAST_REFERENCE,
        ],
    )
    assert _scores(one_dir) == pytest.approx(_scores(paper_dir), abs=1e-6)
    assert one["auc"] == pytest.approx(paper["auc"])
    assert one["reference_batches"][0] == paper["reference_batches"]  # the shared cache served both


def test_the_same_model_twice_is_refused(references_root, tmp_path):
    models = references_root / "train" / "digits" / "dcgan"
    draw = models / "reference_n48-f0.5-draw0" / "seed0"
    copy = tmp_path / "copy"
    shutil.copytree(draw, copy)
    with pytest.raises(AttackConfigError, match="same weights"):
        _attack(
            references_root,
            "references",
            ["calibration.num_references=2", f"calibration.run_dirs=[{draw},{copy}]", *FAST_REFERENCE],
        )
    with pytest.raises(AttackConfigError, match="twice"):
        _attack(
            references_root,
            "references",
            ["calibration.num_references=2", f"calibration.run_dirs=[{draw},{draw}]", *FAST_REFERENCE],
        )


@pytest.mark.parametrize(
    ("extra", "error", "message"),
    [
        (["calibration.num_references=0"], AttackConfigError, "integer >= 1"),
        (["calibration.num_references=2", "calibration.run_dirs=[a]"], AttackConfigError, "num_references=1"),
        (["calibration.transform=sqrt"], AttackConfigError, "none .* or log"),
        (["calibration.per_query_variance_from=1"], AttackConfigError, ">= 2"),
        (["calibration.num_references=4"], FileNotFoundError, "reference_draw"),
        (["calibration.num_references=1", "calibration.generator_weights=[a]"], AttackConfigError, "victim=generator"),
        (["calibration.num_references=1", "calibration.discriminator_weights=[a]"], AttackConfigError, "both lists"),
    ],
)
def test_bad_references_config_is_refused_before_scoring(references_root, extra, error, message):
    cfg, run_dir = compose_app("attack", references_root, attack_overrides("whitebox", "references", extra))
    with pytest.raises(error, match=message):
        run_attack(cfg, run_dir)
    assert not (run_dir / "scores.csv").exists()


def test_log_transform_is_refused_for_a_loss_that_is_not_a_distance(references_root):
    cfg, run_dir = compose_app(
        "attack",
        references_root,
        attack_overrides("discriminator", "references", ["calibration.num_references=2", "calibration.transform=log"]),
    )
    with pytest.raises(AttackConfigError, match="transform=none"):
        run_attack(cfg, run_dir)
    assert not run_dir.exists()


def test_a_reference_that_trained_on_a_query_is_refused(references_root):
    victim = references_root / "train" / "digits" / "dcgan" / "n24" / "seed0"
    from ganleaks.victims.training_run import ReferenceOverlapError

    with pytest.raises(ReferenceOverlapError):
        _attack(references_root, "references", ["calibration.num_references=1", f"calibration.run_dirs=[{victim}]"])


def test_the_config_names_the_draw_folders():
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        train_cfg = compose(
            "train", ["data.part=reference", "data.reference_draw=3", "model=wgangp"], return_hydra_config=True
        )
    assert OmegaConf.select(train_cfg, "hydra.run.dir").endswith("digits/wgangp/reference_n1024-f0.5-draw3/seed0")


# ----------------------------------------------------------------------------------- the user's sample sets


@pytest.fixture(scope="module")
def user_arrays(tmp_path_factory) -> dict[str, Path]:
    """Members and non-members (uint8 arrays), a released sample set that copies the members, and three
    reference sample sets of other records of the same distribution."""
    root = tmp_path_factory.mktemp("user_references")
    rng = np.random.default_rng(0)

    def images(n: int) -> np.ndarray:
        return rng.integers(0, 256, size=(n, 1, 16, 16), dtype=np.uint8)

    members, nonmembers = images(16), images(16)
    files = {}
    for name, array in (
        ("members", members),
        ("nonmembers", nonmembers),
        ("synthetic", np.concatenate([members, images(48)])),
        *((f"ref{d}", images(64)) for d in range(3)),
        ("leaky", np.concatenate([nonmembers[:1], images(63)])),
    ):
        files[name] = root / f"{name}.npy"
        np.save(files[name], array)
    return files


def _user_attack(root: Path, files: dict[str, Path], sets: list[str], extra: list[str] = ()) -> tuple[dict, Path]:
    listed = ",".join(str(files[name]) for name in sets)
    overrides = [
        "victim=samples",
        f"victim.path={files['synthetic']}",
        f"queries.members={files['members']}",
        f"queries.nonmembers={files['nonmembers']}",
        f"calibration.num_references={len(sets)}",
        f"calibration.sample_sets=[{listed}]",
        *extra,
    ]
    cfg, run_dir = compose_app("attack", root, attack_overrides("fullbb", "references", overrides))
    return run_attack(cfg, run_dir), run_dir


def test_reference_sample_sets_serve_a_users_victim(user_arrays, tmp_path):
    metrics, run_dir = _user_attack(tmp_path, user_arrays, ["ref0", "ref1", "ref2"])
    assert metrics["reference_attack"] == "setting"  # nothing to reconstruct on a sample set
    assert metrics["references"]["num_references"] == 3
    assert metrics["reference_run_dirs"] == [str(user_arrays[f"ref{d}"]) for d in range(3)]
    assert metrics["auc"] > 0.95  # the released set copies every member: distance 0 on the victim
    assert (run_dir / "reference_losses.csv").is_file()


def test_a_reference_sample_set_holding_a_query_is_refused(user_arrays, tmp_path):
    with pytest.raises(ValueError, match=r"calibration.sample_sets\[1\]=.*shares 1 of its 64 records"):
        _user_attack(tmp_path, user_arrays, ["ref0", "leaky"])
    assert not list(tmp_path.rglob("scores.csv"))


def test_run_dirs_and_sample_sets_together_are_refused(user_arrays, tmp_path):
    with pytest.raises(AttackConfigError, match="not both"):
        _user_attack(tmp_path, user_arrays, ["ref0", "ref1"], ["calibration.run_dirs=[a,b]"])


def test_references_of_two_architectures_are_refused(references_root, tmp_path):
    cfg, odd = compose_app(
        "train",
        tmp_path,
        ["data.part=reference", "data.reference_draw=5", "model.nets.image.generator.base_channels=8"],
    )
    train(cfg, odd)
    draw = references_root / "train" / "digits" / "dcgan" / "reference_n48-f0.5-draw0" / "seed0"
    with pytest.raises(AttackConfigError, match="other networks"):
        _attack(
            references_root,
            "references",
            ["calibration.num_references=2", f"calibration.run_dirs=[{draw},{odd}]", *FAST_REFERENCE],
        )


# ----------------------------------------------------------------------------------- the user's generators


def _lookup(path: Path, images: np.ndarray) -> Path:
    from safetensors.torch import save_file

    from tests.userpkg.nets import LookupGenerator

    generator = LookupGenerator(len(images))
    generator.table.data = torch.from_numpy(images.astype(np.float32) / 127.5 - 1)
    save_file(generator.state_dict(), str(path))
    return path


def test_reference_generators_serve_a_users_generator(user_arrays, tmp_path):
    """A lookup generator on the members against two lookup generators on other records of the distribution."""
    rng = np.random.default_rng(1)
    members = np.load(user_arrays["members"])
    victim = _lookup(tmp_path / "victim.safetensors", members)
    references = [_lookup(tmp_path / f"ref{d}.safetensors", rng.integers(0, 256, size=members.shape, dtype=np.uint8))
                  for d in range(2)]  # fmt: skip
    common = [
        "victim=generator",
        "victim.generator._target_=tests.userpkg.nets.LookupGenerator",
        f"+victim.generator.rows={len(members)}",
        f"victim.weights={victim}",
        f"victim.latent_dim={len(members)}",
        f"queries.members={user_arrays['members']}",
        f"queries.nonmembers={user_arrays['nonmembers']}",
        "calibration.num_references=2",
        *FAST_REFERENCE,
    ]
    listed = f"calibration.generator_weights=[{references[0]},{references[1]}]"
    cfg, run_dir = compose_app("attack", tmp_path, attack_overrides("whitebox", "references", [*common, listed]))
    metrics = run_attack(cfg, run_dir)
    assert metrics["reference_attack"] == "whitebox" and metrics["references"]["num_references"] == 2
    assert metrics["reference_run_dirs"] == [str(path) for path in references]
    assert metrics["auc"] > 0.9  # the victim reproduces its members; the references reproduce neither class
    missing = f"calibration.generator_weights=[{references[0]},{tmp_path / 'nowhere.safetensors'}]"
    cfg, run_dir = compose_app("attack", tmp_path / "b", attack_overrides("whitebox", "references", [*common, missing]))
    with pytest.raises(FileNotFoundError, match=r"generator_weights\[1\]"):
        run_attack(cfg, run_dir)
