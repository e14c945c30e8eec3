"""train.py -> attack.py end to end, at a tiny scale, for every setting with and without calibration."""

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganleaks.data import load_manifest
from ganleaks.victims.training_run import ReferenceOverlapError
from ganleaks.workflows import attack
from tests.conftest import attack_overrides, compose_app

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = {
    "auc",
    "average_precision",
    "tpr_at_fpr_0.001",
    "tpr_at_fpr_0.01",
    "tpr_at_fpr_0.1",
    "accuracy",
    "n_members",
    "n_nonmembers",
}


def read_scores(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_training_run_folder_holds_the_artifacts(trained_root):
    run = trained_root / "train/digits/dcgan/n24/seed0"
    for name in (
        "manifest.json",
        "trained_on.json",
        "generator.safetensors",
        "generator.json",
        "discriminator.safetensors",
        "discriminator.json",
        "checkpoints/last.ckpt",
    ):
        assert (run / name).is_file(), name
    assert list((run / "samples").glob("*.png"))
    trained_on = json.loads((run / "trained_on.json").read_text())
    assert trained_on["part"] == "members" and len(trained_on["ids"]) == 24
    reference = json.loads((trained_root / "train/digits/wgangp/reference_n48/seed0/trained_on.json").read_text())
    assert reference["part"] == "reference" and not set(reference["ids"]) & set(trained_on["ids"])


@pytest.mark.parametrize("calibration", ["none", "reference"])
@pytest.mark.parametrize("setting", ["fullbb", "partialbb", "whitebox", "discriminator", "montecarlo"])
def test_every_setting_writes_the_contract(trained_root, setting, calibration):
    cfg, out = compose_app("attack", trained_root, attack_overrides(setting, calibration))
    metrics = attack(cfg, out)
    assert METRIC_KEYS <= set(metrics) and 0.0 <= metrics["auc"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["auc"] == pytest.approx(metrics["auc"])
    rows = read_scores(out / "scores.csv")
    assert list(rows[0]) == ["id", "member", "victim_loss", "reference_loss", "score", "status"]
    manifest = load_manifest(trained_root / "train/digits/dcgan/n24/seed0")
    members, nonmembers = set(manifest.parts["members"]), set(manifest.parts["nonmembers"])
    assert len(rows) == 48 and len({r["id"] for r in rows}) == 48
    for row in rows:
        sample_id = int(row["id"])
        assert (sample_id in members) == (row["member"] == "1")
        assert sample_id in members or sample_id in nonmembers
        victim = float(row["victim_loss"])
        if calibration == "none":
            assert row["reference_loss"] == "" and float(row["score"]) == pytest.approx(-victim)
        else:
            assert float(row["score"]) == pytest.approx(-(victim - float(row["reference_loss"])), rel=1e-6, abs=1e-6)
    assert (out / "roc.png").is_file()
    assert (out / "reconstructions.png").is_file() == (setting not in ("discriminator", "montecarlo"))


def test_scores_do_not_depend_on_batch_composition(trained_root, tmp_path):
    """No quantity of the search is shared between queries: on batch-size-invariant kernels (this CPU's)
    the white-box losses agree at batch sizes 48 and 7. Where kernels round differently, the tolerance is
    that of docs/ATTACKS.md ("Batch size, rounding and the white-box loss"), not this test's."""
    scores = {}
    for batch_size in (48, 7):
        cfg, _ = compose_app(
            "attack", trained_root, attack_overrides("whitebox", extra=[f"attack.batch_size={batch_size}"])
        )
        attack(cfg, tmp_path / str(batch_size))
        scores[batch_size] = {
            r["id"]: float(r["victim_loss"]) for r in read_scores(tmp_path / str(batch_size) / "scores.csv")
        }
    assert scores[48].keys() == scores[7].keys()
    for sample_id, value in scores[48].items():
        assert scores[7][sample_id] == pytest.approx(value, rel=1e-4, abs=1e-5)


def test_same_seed_same_scores_and_resume_skips_finished_batches(trained_root, tmp_path):
    cfg, _ = compose_app("attack", trained_root, attack_overrides("whitebox", extra=["attack.batch_size=8"]))
    attack(cfg, tmp_path / "a")
    attack(cfg, tmp_path / "b")
    assert (tmp_path / "a/scores.csv").read_text() == (tmp_path / "b/scores.csv").read_text()
    # Simulate an interruption: outputs and half of the batches gone; the rest must be reused.
    batches = sorted((tmp_path / "b/batches/victim").glob("batch-*.safetensors"))
    kept = {path: path.stat().st_mtime_ns for path in batches[: len(batches) // 2]}
    for path in batches[len(batches) // 2 :]:
        path.unlink()
    (tmp_path / "b/scores.csv").unlink()
    attack(cfg, tmp_path / "b")
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())
    assert (tmp_path / "a/scores.csv").read_text() == (tmp_path / "b/scores.csv").read_text()


def test_reference_trained_on_queries_is_refused(trained_root, tmp_path):
    victim = trained_root / "train/digits/dcgan/n24/seed0"
    cfg, _ = compose_app(
        "attack", trained_root, attack_overrides("fullbb", "reference", [f"calibration.reference_run_dir={victim}"])
    )
    with pytest.raises(ReferenceOverlapError, match="disjoint"):
        attack(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "scores.csv").exists()


def test_missing_victim_says_to_train_first(tmp_path):
    cfg, _ = compose_app("attack", tmp_path, attack_overrides("fullbb"))
    with pytest.raises(FileNotFoundError, match="python train.py"):
        attack(cfg, tmp_path / "out")


def test_command_line_quickstart(tmp_path):
    """The README's two commands, at a tiny scale, through Hydra's real entry points."""
    tiny = [o for o in __import__("tests.conftest", fromlist=["TINY"]).TINY] + [f"paths.root={tmp_path}"]
    train = subprocess.run([sys.executable, "train.py", *tiny], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    run = tmp_path / "train/digits/dcgan/n24/seed0"
    assert (run / ".hydra/config.yaml").is_file() and (run / "generator.safetensors").is_file()
    result = subprocess.run(
        [sys.executable, "attack.py", *tiny, *attack_overrides("whitebox")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AUC" in result.stdout
    # Our progress and results, not dependencies' advertising or deprecation notices (issue 16, point 10).
    for name, run_output in (("train.py", train), ("attack.py", result)):
        shown = run_output.stdout + run_output.stderr
        assert "litlogger" not in shown.lower(), f"{name} shows Lightning's LitLogger tip"
        assert "LeafSpec" not in shown, f"{name} shows the LeafSpec deprecation warning"
    assert "training dcgan on 24 members" in train.stdout + train.stderr
    assert "AUC" in result.stdout and "best-threshold accuracy" in result.stdout
    # the folder names the setting keys given on the command line (conf/victim/run.yaml's variant)
    out = tmp_path / "attack/digits/dcgan/n24/seed0/whitebox/none-l2-setting.max_iter=5,setting.nn_k=128"
    assert {"scores.csv", "metrics.json", "roc.png", "reconstructions.png"} <= {p.name for p in out.iterdir()}
    assert (out / ".hydra/config.yaml").is_file()


@pytest.mark.parametrize("logger", ["csv", "wandb"])
def test_attack_results_reach_the_configured_logger(trained_root, tmp_path, monkeypatch, logger):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg, _ = compose_app("attack", trained_root, attack_overrides("fullbb", extra=[f"logger={logger}"]))
    metrics = attack(cfg, tmp_path)
    if logger == "csv":
        rows = read_scores(next((tmp_path / "logs").glob("version_*/metrics.csv")))
        assert float(rows[-1]["attack/auc"]) == pytest.approx(metrics["auc"])
    else:
        runs = list((tmp_path / "wandb").glob("offline-run-*"))
        assert len(runs) == 1
        keys = (b"attack/auc", b"attack/scores", b"attack/plots", b"fullbb")
        # W&B's writer (the wandb-core service) appends the records to the offline file
        # asynchronously, even after `finish()` returns: on a loaded machine the file may still hold
        # only its header for a moment. Wait for the records (a bounded wait, not a retry of the attack).
        deadline = time.monotonic() + 60
        while True:
            records = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))  # protobuf records, keys verbatim
            if all(key in records for key in keys) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for key in keys:
            assert key in records


def test_black_box_calibration_reconstructs_on_the_reference_with_the_white_box_optimiser(trained_root, tmp_path):
    """Paper 5.6: L(x, R(x|G_r)) by L-BFGS on G_r by default; at most the nearest-neighbour loss on G_r."""
    bank = ["setting.k=128", "calibration.reference_setting.nn_k=128", "calibration.reference_setting.max_iter=20"]
    losses, facts = {}, {}
    for mode in ("whitebox", "setting"):
        cfg, _ = compose_app(
            "attack",
            trained_root,
            attack_overrides("fullbb", "reference", [*bank, f"calibration.reference_attack={mode}"]),
        )
        facts[mode] = attack(cfg, tmp_path / mode)
        losses[mode] = {r["id"]: float(r["reference_loss"]) for r in read_scores(tmp_path / mode / "scores.csv")}
    assert facts["whitebox"]["reference_attack"] == "whitebox" and facts["whitebox"]["reference_setting"] == "whitebox"
    assert facts["setting"]["reference_attack"] == "setting" and facts["setting"]["reference_setting"] == "fullbb"
    recorded = json.loads((tmp_path / "whitebox/metrics.json").read_text())
    assert recorded["reference_attack"] == "whitebox"
    # L-BFGS starts at the nearest of the same 128 samples and only lowers loss + 0.001 * prior; the
    # prior of a draw from N(0, I_64) is about 128, so a query's loss can rise by ~0.13 at most.
    gaps = torch.tensor([losses["whitebox"][i] - losses["setting"][i] for i in losses["setting"]])
    assert (gaps <= 0.5).all(), gaps
    assert gaps.median() < 0, gaps  # the typical query is reconstructed better than its nearest sample


def test_reference_losses_are_computed_once_and_reused(trained_root, tmp_path):
    """A second attack on another setting reuses the cached white-box reference losses (same G_r, queries)."""
    extra = [f"calibration.cache_dir={tmp_path / 'cache'}", "calibration.reference_setting.max_iter=3"]
    cfg, _ = compose_app("attack", trained_root, attack_overrides("fullbb", "reference", extra))
    first = attack(cfg, tmp_path / "fullbb")
    caches = list((tmp_path / "cache").iterdir())
    assert len(caches) == 1 and Path(first["reference_batches"]) == caches[0]
    files = {p: p.stat().st_mtime_ns for p in caches[0].glob("batch-*.safetensors")}
    cfg, _ = compose_app("attack", trained_root, attack_overrides("partialbb", "reference", extra))
    second = attack(cfg, tmp_path / "partialbb")
    assert Path(second["reference_batches"]) == caches[0]
    assert {p: p.stat().st_mtime_ns for p in caches[0].glob("batch-*.safetensors")} == files  # nothing recomputed
    assert {r["id"]: r["reference_loss"] for r in read_scores(tmp_path / "fullbb/scores.csv")} == {
        r["id"]: r["reference_loss"] for r in read_scores(tmp_path / "partialbb/scores.csv")
    }
    # A change of anything the losses depend on (here the optimiser's budget) is a new cache entry.
    cfg, _ = compose_app(
        "attack",
        trained_root,
        attack_overrides("fullbb", "reference", [*extra, "calibration.reference_setting.max_iter=4"]),
    )
    third = attack(cfg, tmp_path / "fullbb-4")
    assert Path(third["reference_batches"]) != caches[0] and len(list((tmp_path / "cache").iterdir())) == 2


def test_pggan_discriminator_attack_scores_do_not_depend_on_batch_size(tmp_path):
    """PGGAN's critic has a minibatch-stddev feature; attacked through D, a query's score must still
    be its own (a batch of one used to get a degenerate statistic)."""
    from ganleaks.workflows import train

    pggan = [
        "model=pggan",
        "model.nets.image.generator.fmap_base=32",
        "model.nets.image.generator.fmap_max=16",
        "model.nets.image.discriminator.fmap_base=32",
        "model.nets.image.discriminator.fmap_max=16",
        "model.module.images_per_phase=16",
    ]  # 20 steps x 8 images: grown to 16x16
    cfg, run_dir = compose_app("train", tmp_path, pggan)
    train(cfg, run_dir)
    scores = {}
    for batch_size in (48, 1):
        cfg, _ = compose_app(
            "attack", tmp_path, pggan + attack_overrides("discriminator", extra=[f"attack.batch_size={batch_size}"])
        )
        metrics = attack(cfg, tmp_path / f"attack{batch_size}")
        assert metrics["n_members"] == metrics["n_nonmembers"] == 24
        scores[batch_size] = {
            r["id"]: float(r["score"]) for r in read_scores(tmp_path / f"attack{batch_size}/scores.csv")
        }
    assert scores[1].keys() == scores[48].keys() and len(scores[1]) == 48
    assert len(set(scores[48].values())) > 1
    for sample_id, value in scores[48].items():
        assert scores[1][sample_id] == pytest.approx(value, rel=1e-6, abs=1e-6)
