"""Issue 26: ``setting=domias``, the density-ratio baseline, on every victim kind.

The reference records p_R is fitted on are real records disjoint from the queries: a training
run's split ``reference`` part, or the user's ``queries.reference``. The formula itself is checked
against the `domias` package's in ``tests/attacks/test_density_ratio.py``; here the engine's loss
is checked against that same formula on the same inputs, and the plumbing end to end.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ganleaks.errors import AttackConfigError
from ganleaks.settings import DensityRatioEngine, build_engine
from ganleaks.victims.stored_samples import StoredSampleGenerator
from tests.attacks.test_density_ratio import domias_kde_score
from tests.conftest import compose_app

N = 32  # members and non-members each (user victims)
DOMIAS = ["setting=domias", "setting.k=256", "calibration=none", "distance=l2"]


def _attack(root: Path, overrides: list[str]) -> tuple[dict, Path]:
    from ganleaks.config_resolvers import register_resolvers
    from ganleaks.workflows import attack

    register_resolvers()
    cfg, out_dir = compose_app("attack", root, overrides)
    return attack(cfg, out_dir), out_dir


def _rows(out_dir: Path) -> list[dict]:
    with open(out_dir / "scores.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _folder(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def victim_root(tmp_path_factory) -> Path:
    """One tiny DCGAN victim trained here (16x16 digits, 24 members, a reference part of 48)."""
    from ganleaks.workflows import train

    root = tmp_path_factory.mktemp("runs")
    cfg, run_dir = compose_app("train", root, [])
    train(cfg, run_dir)
    return root


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> dict[str, Path]:
    """Members, non-members and reference records as PNG folders; a sample set holding every member."""
    root = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(0)
    members, nonmembers, reference, others = (
        rng.integers(0, 256, size=(n, 16, 16), dtype=np.uint8) for n in (N, N, 64, 64)
    )
    lookup = torch.from_numpy(members.astype(np.float32) / 127.5 - 1).unsqueeze(1)
    save_file({"table": lookup}, str(root / "G.safetensors"))  # tests.userpkg.nets.LookupGenerator: a memoriser
    return {
        "members": _folder(root / "train", members),
        "nonmembers": _folder(root / "holdout", nonmembers),
        "reference": _folder(root / "reference", reference),
        "samples": _folder(root / "synthetic", np.concatenate([members, others])),
        "leaky_reference": _folder(root / "leaky_reference", np.concatenate([reference[:10], nonmembers[:1]])),
        "generator": root / "G.safetensors",
    }


def _queries(files: dict[str, Path], reference: str | None = "reference") -> list[str]:
    given = [f"queries.members={files['members']}", f"queries.nonmembers={files['nonmembers']}"]
    return given + ([f"queries.reference={files[reference]}"] if reference else [])


# ---------------------------------------------------------------------------------- a training run


def test_a_training_run_is_scored_against_its_split_reference_part(victim_root):
    from ganleaks.attacks.density_ratio import DensityRatioAttack
    from ganleaks.attacks.nearest_neighbor import make_sample_bank
    from ganleaks.data.loading import load_sample_set
    from ganleaks.data.split import load_manifest
    from ganleaks.models.export import load_generator

    metrics, out_dir = _attack(victim_root, DOMIAS)
    for name in ("scores.csv", "metrics.json", "roc.png", "summary.html", "run.json", "most_exposed.csv"):
        assert (out_dir / name).is_file(), name
    assert (metrics["setting"], metrics["k"], metrics["n_members"], metrics["n_nonmembers"]) == ("domias", 256, 24, 24)
    assert 0.0 <= metrics["auc"] <= 1.0
    assert json.loads((out_dir / "run.json").read_text())["config"]["setting"]["dims"] == 10

    # The same score from the split's reference part and the generator's k seeded samples, by hand.
    cfg, _ = compose_app("attack", victim_root, DOMIAS)
    run_dir = Path(cfg.victim.run_dir)
    sample_set = load_sample_set(cfg.data)
    manifest = load_manifest(run_dir, sample_set)
    reference = sample_set.data[sample_set.positions(manifest.ids("reference"))]
    bank = make_sample_bank(load_generator(run_dir), 256, seed=int(cfg.seed), chunk_size=int(cfg.setting.chunk_size))
    with torch.no_grad():
        expected = DensityRatioAttack(bank, reference, dims=10)
    rows = _rows(out_dir)
    ids = torch.tensor([int(row["id"]) for row in rows])
    assert not set(ids.tolist()) & set(manifest.parts["reference"])  # no query is a reference record
    by_hand = expected.score(sample_set.data[sample_set.positions(ids)]).float()
    written = torch.tensor([float(row["score"]) for row in rows])
    torch.testing.assert_close(written, by_hand, rtol=1e-5, atol=1e-4)
    assert all(row["reference_loss"] == "" for row in rows)


@pytest.mark.parametrize("calibration", ["reference", "samples"])
def test_calibration_with_a_reference_model_is_refused(victim_root, calibration):
    with pytest.raises(AttackConfigError, match=rf"calibration={calibration} does not apply to setting=domias: .*"):
        _attack(victim_root, [*DOMIAS, f"calibration={calibration}"])


def test_a_training_run_refuses_reference_records_given_beside_it(victim_root, user_files):
    with pytest.raises(AttackConfigError, match="queries.reference given, but victim=run .* reference part"):
        _attack(victim_root, [*DOMIAS, f"queries.reference={user_files['reference']}"])


# ---------------------------------------------------------------------------------- the user's victims


def test_a_sample_set_holding_the_members_is_caught(user_files, tmp_path):
    overrides = [*DOMIAS, "victim=samples", f"victim.path={user_files['samples']}", *_queries(user_files)]
    metrics, out_dir = _attack(tmp_path, overrides)
    assert metrics["auc"] > 0.9, metrics["auc"]  # each member sits on a kernel of p_G
    assert metrics["k"] == N + 64 and metrics["k_requested"] == 256  # the set's size caps k
    assert (out_dir / "summary.html").is_file() and (out_dir / "metrics.json").is_file()
    assert _rows(out_dir)[0]["id"].startswith(("train/", "holdout/"))


def test_a_generator_victim_is_attacked(user_files, tmp_path):
    generator = [
        "victim=generator",
        "victim.generator._target_=tests.userpkg.nets.LookupGenerator",
        f"+victim.generator.rows={N}",
        f"victim.weights={user_files['generator']}",
        f"victim.latent_dim={N}",
    ]
    metrics, out_dir = _attack(tmp_path, [*DOMIAS, *generator, *_queries(user_files)])
    assert metrics["auc"] > 0.9, metrics["auc"]  # a memoriser of the members
    assert (out_dir / "scores.csv").is_file() and metrics["victim_kind"] == "generator"


def test_a_user_victim_without_reference_records_is_refused_naming_the_key(user_files, tmp_path):
    overrides = [*DOMIAS, "victim=samples", f"victim.path={user_files['samples']}", *_queries(user_files, None)]
    with pytest.raises(AttackConfigError, match=r"queries.reference is not set, and this run needs it: add queries"):
        _attack(tmp_path, overrides)


def test_reference_records_that_hold_a_query_are_refused(user_files, tmp_path):
    overrides = [
        *DOMIAS,
        "victim=samples",
        f"victim.path={user_files['samples']}",
        *_queries(user_files, "leaky_reference"),
    ]
    with pytest.raises(AttackConfigError, match=r"shares 1 of its 11 records with the query records .*holdout/0000"):
        _attack(tmp_path, overrides)
    assert not list(tmp_path.rglob("scores.csv"))


def test_changed_reference_records_are_not_mixed_into_a_resumed_attack(user_files, tmp_path):
    reference = tmp_path / "reference"
    _folder(reference, np.random.default_rng(1).integers(0, 256, size=(40, 16, 16), dtype=np.uint8))
    files = {**user_files, "mine": reference}
    overrides = [*DOMIAS, "victim=samples", f"victim.path={user_files['samples']}", *_queries(files, "mine")]
    _, out_dir = _attack(tmp_path, overrides)
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8) + 7).save(reference / "0000.png")  # same path, new contents
    with pytest.raises(AttackConfigError, match=r"the reference records \(queries.reference.*changed since"):
        _attack(tmp_path, [*overrides, f"hydra.run.dir={out_dir}"])


def test_ganleaks_audit_takes_the_reference_records_as_a_key(user_files, tmp_path):
    import ganleaks

    result = ganleaks.audit(
        "domias",
        samples=str(user_files["samples"]),
        members=str(user_files["members"]),
        nonmembers=str(user_files["nonmembers"]),
        out_dir=tmp_path / "audit",
        **{"queries.reference": str(user_files["reference"]), "setting.k": 256},
    )
    assert result.metrics["setting"] == "domias" and result.metrics["auc"] > 0.9


# ---------------------------------------------------------------------------------- the engine


def test_the_engine_loss_is_minus_the_log_of_the_domias_formula_and_per_query():
    """The engine on a stored sample set, against ``domias``' kde score on the same PCA coordinates."""
    from omegaconf import OmegaConf

    g = torch.Generator().manual_seed(5)
    samples, reference, queries = (torch.rand(n, 1, 8, 8, generator=g) * 2 - 1 for n in (300, 120, 30))
    node = OmegaConf.create({"_target_": "ganleaks.settings.density_ratio.DensityRatioEngine", "name": "domias"})
    node.update(k=200, chunk_size=64, dims=4)
    engine = build_engine(node, StoredSampleGenerator(samples), None, None, 0, reference)
    assert isinstance(engine, DensityRatioEngine) and engine.counts_used() == {"k": 200}
    loss = engine.losses(queries, torch.arange(30)).loss
    project = engine.attack.projection
    bank = StoredSampleGenerator(samples).sample_bank(200, seed=0, chunk_size=64)
    used = samples[bank.sample_index]
    theirs = domias_kde_score(*(project(t).numpy() for t in (used, reference, queries)))
    np.testing.assert_allclose(-loss.double().numpy(), np.log(theirs), rtol=1e-4)
    torch.testing.assert_close(engine.losses(queries[7:11], torch.arange(7, 11)).loss, loss[7:11])
    broken = queries.clone()
    broken[3, 0, 0, 0] = float("nan")
    result = engine.losses(broken, torch.arange(30))
    assert torch.isnan(result.loss[3]) and result.status[3] != 0 and result.status.count_nonzero() == 1
    torch.testing.assert_close(result.loss[4:], loss[4:])


def test_the_setting_declares_what_it_needs():
    assert DensityRatioEngine.needs() == ("generated samples", "reference records")
    assert DensityRatioEngine.uses_k and DensityRatioEngine.baseline and DensityRatioEngine.knowledge == 1
