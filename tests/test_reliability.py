"""Reliability and security: untrusted model files, interrupted runs, numerical faults, determinism.

Every test runs the real workflows (``ganleaks.workflows.train`` / ``attack``, or ``train.py`` /
``attack.py`` in a subprocess) at the tiny scale of ``tests/conftest.py``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ganleaks.orchestration.plan as preflight
import ganleaks.orchestration.run as audit
import ganleaks.orchestration.runner as runner
from ganleaks.data.sources import load_digits
from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.errors import AttackConfigError
from ganleaks.evaluation.metrics import membership_metrics
from ganleaks.models import load_discriminator, load_generator
from ganleaks.models.export import save_network
from ganleaks.models.modules.dcgan import DCGANModule
from ganleaks.models.training import CheckpointError
from ganleaks.settings.base import build_engine
from ganleaks.workflows import attack, train
from tests.conftest import TINY, attack_overrides, compose_app

REPO = Path(__file__).resolve().parents[1]
VICTIM = "train/digits/dcgan/n24/seed0"
REFERENCE = "train/digits/dcgan/reference_n48/seed0"
WALL_CLOCK_KEYS = {"wall_seconds"}


class WritesMarker:
    """Unpickling this object creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def metrics_without_wall_clock(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {key: value for key, value in metrics.items() if key not in WALL_CLOCK_KEYS}


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def assert_no_attack_outputs(out: Path) -> None:
    assert not (out / "scores.csv").exists() and not (out / "metrics.json").exists()
    assert not list(out.glob("batches/*/batch-*"))


def subprocess_env() -> dict[str, str]:
    """The test's environment, with the thread count of this process (same floating-point results)."""
    threads = str(torch.get_num_threads())
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONPATH": str(REPO)}


def run_attack_py(*args: str) -> subprocess.CompletedProcess:
    """``python attack.py ARGS`` from the repository, in the test's environment (output captured)."""
    return subprocess.run(
        [sys.executable, "attack.py", *args],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


# A real entry point, slowed down so that a kill lands mid-run: it sleeps before each unit of work.
SLOWED = """
import runpy, sys, time
import {module} as target
original = target.{cls}.{method}
def slowed(*args, **kwargs):
    time.sleep({delay})
    return original(*args, **kwargs)
setattr(target.{cls}, {method!r}, slowed)
sys.argv = [{script!r}, *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
"""


def start_slowed(script: str, args: list[str], module: str, cls: str, method: str, delay: float, log: Path):
    code = SLOWED.format(module=module, cls=cls, method=method, delay=delay, script=str(REPO / script))
    handle = open(log, "w")
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO, env=subprocess_env(), stdout=handle, stderr=subprocess.STDOUT
    )


def kill_when(process: subprocess.Popen, ready, log: Path, timeout: float = 300) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (it must still be running then)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the run to make progress"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL


# ======================================================================= 1. untrusted model files


def test_attack_refuses_a_pickled_generator_and_runs_nothing(trained_root, tmp_path):
    victim = copy_run(trained_root / VICTIM, tmp_path / "victim")
    marker = tmp_path / "pwned"
    torch.save({"state_dict": WritesMarker(marker)}, victim / "generator.safetensors")
    cfg, _ = compose_app("attack", trained_root, attack_overrides("whitebox", extra=[f"victim.run_dir={victim}"]))
    with pytest.raises(ValueError, match="not a readable safetensors file.*never pickles"):
        attack(cfg, tmp_path / "out")
    assert not marker.exists()
    assert_no_attack_outputs(tmp_path / "out")


def test_attack_refuses_a_pickled_discriminator_and_runs_nothing(trained_root, tmp_path):
    victim = copy_run(trained_root / VICTIM, tmp_path / "victim")
    marker = tmp_path / "pwned"
    (victim / "discriminator.safetensors").write_bytes(__import__("pickle").dumps(WritesMarker(marker)))
    cfg, _ = compose_app("attack", trained_root, attack_overrides("discriminator", extra=[f"victim.run_dir={victim}"]))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        attack(cfg, tmp_path / "out")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("target", "kwargs"),
    [
        ("os.system", {"command": "touch {marker}"}),
        ("subprocess.Popen", {"args": ["touch", "{marker}"]}),
        ("builtins.eval", {"source": "open('{marker}', 'w')"}),
    ],
)
def test_generator_json_naming_a_class_outside_the_allow_list(trained_root, tmp_path, target, kwargs):
    victim = copy_run(trained_root / VICTIM, tmp_path / "victim")
    marker = tmp_path / "pwned"
    spec = json.loads((victim / "generator.json").read_text())
    spec["class"] = target
    spec["kwargs"] = json.loads(json.dumps(kwargs).replace("{marker}", str(marker)))
    (victim / "generator.json").write_text(json.dumps(spec))
    cfg, _ = compose_app("attack", trained_root, attack_overrides("fullbb", extra=[f"victim.run_dir={victim}"]))
    with pytest.raises(ValueError, match=f"names class '{target}', which is not an allowed ganleaks network"):
        attack(cfg, tmp_path / "out")
    assert not marker.exists()
    assert_no_attack_outputs(tmp_path / "out")


def test_a_malicious_reference_is_refused_before_the_victim_is_scored(trained_root, tmp_path):
    reference = copy_run(trained_root / REFERENCE, tmp_path / "reference")
    marker = tmp_path / "pwned"
    torch.save({"weights": WritesMarker(marker)}, reference / "generator.safetensors")
    cfg, _ = compose_app(
        "attack",
        trained_root,
        attack_overrides("whitebox", "reference", [f"calibration.reference_run_dir={reference}"]),
    )
    with pytest.raises(ValueError, match="safetensors"):
        attack(cfg, tmp_path / "out")
    assert not marker.exists()
    assert_no_attack_outputs(tmp_path / "out")  # no victim batch either: every model loads before scoring


def test_a_malicious_lpips_backbone_is_refused_and_runs_nothing(trained_root, tmp_path, monkeypatch):
    """torchvision would unpickle the hub file with weights_only=False; the attack checks it first."""
    from ganleaks.distances.distance import lpips_backbone_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    marker = tmp_path / "pwned"
    backbone = lpips_backbone_file("alex")
    backbone.parent.mkdir(parents=True)
    torch.save({"features.0.weight": WritesMarker(marker)}, backbone)
    cfg, _ = compose_app("attack", trained_root, ["setting=whitebox", "distance=lpips_alex"])
    with pytest.raises(AttackConfigError, match="not a plain tensor checkpoint.*lpips-weights --force"):
        attack(cfg, tmp_path / "out")
    assert not marker.exists()
    assert_no_attack_outputs(tmp_path / "out")


def test_resuming_training_refuses_a_checkpoint_that_would_run_code(trained_root, tmp_path):
    run = copy_run(trained_root / VICTIM, tmp_path / "run")
    marker = tmp_path / "pwned"
    checkpoint = run / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    state["callbacks"] = WritesMarker(marker)  # a real checkpoint with one poisoned entry
    torch.save(state, checkpoint)
    exported = (run / "generator.safetensors").read_bytes()
    cfg, _ = compose_app("train", tmp_path, ["trainer.max_steps=40"])
    with pytest.raises(CheckpointError, match="GLOBAL posix.system.*could run code.*Delete it"):
        train(cfg, run)
    assert not marker.exists()
    assert (run / "generator.safetensors").read_bytes() == exported
    assert not (run / "checkpoints" / "last.ckpt.partial").exists()


# ======================================================================= 2. interrupted runs


@pytest.mark.slow
def test_killed_attack_resumes_without_redoing_batches_and_matches_an_uninterrupted_run(trained_root, tmp_path):
    overrides = [*TINY, f"paths.root={trained_root}", *attack_overrides("whitebox", extra=["attack.batch_size=4"])]
    out = tmp_path / "killed"
    args = [*overrides, f"hydra.run.dir={out}"]
    batches = out / "batches" / "victim"
    log = tmp_path / "killed.log"
    process = start_slowed("attack.py", args, "ganleaks.orchestration.runner", "AttackModule", "predict_step", 1.0, log)
    kill_when(process, lambda: any(batches.glob("batch-*.safetensors")), log)

    finished = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in batches.glob("batch-*.safetensors")}
    assert 1 <= len(finished) < 12
    assert not (out / "scores.csv").exists() and not (out / "metrics.json").exists()

    resumed = run_attack_py(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"scoring {48 - 4 * len(finished)} queries ({4 * len(finished)} already done)" in resumed.stdout
    for path, (content, mtime) in finished.items():
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime
    scored = [runner.load_file(str(path))["ids"] for path in batches.glob("batch-*.safetensors")]
    assert sorted(torch.cat(scored).tolist()) == sorted(int(i) for i in read_rows(out / "scores.csv"))  # each once

    cfg, _ = compose_app("attack", trained_root, attack_overrides("whitebox", extra=["attack.batch_size=4"]))
    attack(cfg, tmp_path / "uninterrupted")
    assert (out / "scores.csv").read_text() == (tmp_path / "uninterrupted" / "scores.csv").read_text()
    assert metrics_without_wall_clock(out) == metrics_without_wall_clock(tmp_path / "uninterrupted")


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    overrides = ["++checkpoint_every_n_steps=4", "trainer.max_steps=40"]
    cfg, run_dir = compose_app("train", tmp_path, overrides)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    log = tmp_path / "killed.log"
    process = start_slowed(
        "train.py",
        [*TINY, f"paths.root={tmp_path}", *overrides],
        "ganleaks.models.modules.dcgan",
        "DCGANModule",
        "train_batch",
        0.3,
        log,
    )
    kill_when(process, checkpoint.is_file, log)
    saved_step = torch.load(checkpoint, weights_only=True)["global_step"]
    assert 4 <= saved_step < 40
    assert not (run_dir / "generator.safetensors").exists()  # killed before the export

    first_steps = []
    original = DCGANModule.train_batch

    def recording(self, real):
        first_steps.append(self.global_step)
        return original(self, real)

    monkeypatch.setattr(DCGANModule, "train_batch", recording)
    module = train(cfg, run_dir)  # the same command again
    assert first_steps[0] == saved_step  # continued from the checkpoint, did not restart at step 0
    assert module.trainer.global_step == 40
    assert load_generator(run_dir).data_shape == (1, 16, 16)


def test_outputs_reach_their_names_only_through_os_replace(trained_root, tmp_path, monkeypatch):
    """scores.csv, metrics.json, the batch files and the resume key appear atomically (temp file + rename)."""
    replaced = []
    real_replace = os.replace

    def spy(source, target):
        replaced.append((Path(source), Path(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    out = tmp_path / "out"
    cfg, _ = compose_app("attack", trained_root, attack_overrides("discriminator", extra=["attack.batch_size=16"]))
    attack(cfg, out)
    targets = {target: source for source, target in replaced}
    expected = [
        out / "scores.csv",
        out / "metrics.json",
        out / "batches/victim" / preflight.RESUME_KEY_NAME,
        *sorted((out / "batches/victim").glob("batch-*.safetensors")),
    ]
    assert len(expected) == 3 + 3
    for path in expected:
        assert path in targets, f"{path.name} was not written through a temporary file"
        assert targets[path].parent == path.parent and targets[path] != path
    assert not [p for p in out.rglob(".*") if p.suffix == ".tmp" or p.name.startswith(".tmp-")]


def test_a_crash_mid_write_leaves_no_partial_batch_and_the_rerun_finishes(trained_root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    cfg, _ = compose_app("attack", trained_root, attack_overrides("discriminator", extra=["attack.batch_size=16"]))
    real_save = runner.save_file
    calls = []

    def crash_on_second_batch(tensors, path):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"half a safetensors header")
            raise OSError(28, "No space left on device")  # the write dies halfway
        return real_save(tensors, path)

    monkeypatch.setattr(runner, "save_file", crash_on_second_batch)
    with pytest.raises(OSError, match="No space left"):
        attack(cfg, out)
    batches = out / "batches" / "victim"
    assert len(list(batches.glob("batch-*.safetensors"))) == 1
    assert not list(batches.glob(".*.tmp"))  # the temporary file of the failed write was removed
    (batches / ".batch-000000016-00016-1.safetensors.k1ll.tmp").write_bytes(b"garbage")  # what a SIGKILL could leave
    monkeypatch.setattr(runner, "save_file", real_save)
    attack(cfg, out)
    assert len(read_rows(out / "scores.csv")) == 48


def test_resume_never_mixes_results_of_another_config_or_model(trained_root, tmp_path):
    victim = copy_run(trained_root / VICTIM, tmp_path / "victim")
    out = tmp_path / "out"
    base = attack_overrides("fullbb", extra=[f"victim.run_dir={victim}"])
    cfg, _ = compose_app("attack", trained_root, base)
    attack(cfg, out)
    scores = (out / "scores.csv").read_bytes()

    cfg, _ = compose_app("attack", trained_root, [*base, "setting.k=128"])
    with pytest.raises(AttackConfigError, match="another attack.*setting.k.*another hydra.run.dir"):
        attack(cfg, out)
    generator = load_generator(victim)
    with torch.no_grad():
        next(generator.parameters()).add_(0.01)  # the victim was retrained in place
    save_network(generator, victim, "generator", latent_dim=generator.latent_dim, data_kind="image")
    cfg, _ = compose_app("attack", trained_root, base)
    with pytest.raises(AttackConfigError, match="model_sha256.generator.safetensors"):
        attack(cfg, out)
    assert (out / "scores.csv").read_bytes() == scores


# ======================================================================= 3 + 5. divergence, determinism

# Reference losses in the run folder: a query corrupted in flight in one run (below) must not be served
# from the shared reference cache, which holds each id's loss on the intact data.
WHITEBOX_CALIBRATED = attack_overrides("whitebox", "reference", ["attack.batch_size=8", "calibration.cache_dir=null"])


@pytest.fixture(scope="module")
def calibrated_run(trained_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("calibrated") / "run"
    cfg, _ = compose_app("attack", trained_root, WHITEBOX_CALIBRATED)
    attack(cfg, out)
    return out


def test_same_seed_same_outputs_other_seed_other_scores(trained_root, calibrated_run, tmp_path):
    cfg, _ = compose_app("attack", trained_root, WHITEBOX_CALIBRATED)
    attack(cfg, tmp_path / "again")
    assert (tmp_path / "again" / "scores.csv").read_bytes() == (calibrated_run / "scores.csv").read_bytes()
    metrics = json.loads((calibrated_run / "metrics.json").read_text())
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert {key for key in metrics if metrics[key] != again[key]} <= WALL_CLOCK_KEYS
    assert metrics_without_wall_clock(calibrated_run) == metrics_without_wall_clock(tmp_path / "again")

    # Another attack seed on the same victim and reference: other latent searches, other scores.
    cfg, _ = compose_app(
        "attack",
        trained_root,
        [
            *WHITEBOX_CALIBRATED,
            "seed=1",
            f"victim.run_dir={trained_root / VICTIM}",
            f"calibration.reference_run_dir={trained_root / REFERENCE}",
        ],
    )
    attack(cfg, tmp_path / "seed1")
    first, other = read_rows(calibrated_run / "scores.csv"), read_rows(tmp_path / "seed1" / "scores.csv")
    assert first.keys() == other.keys()
    assert sum(first[i]["victim_loss"] != other[i]["victim_loss"] for i in first) > len(first) // 2


def test_training_is_deterministic(trained_root, tmp_path):
    cfg, _ = compose_app("train", tmp_path, [])
    train(cfg, tmp_path / "again")
    for name in ("generator.safetensors", "discriminator.safetensors", "manifest.json"):
        assert (tmp_path / "again" / name).read_bytes() == (trained_root / VICTIM / name).read_bytes(), name


def test_a_diverging_query_is_marked_and_changes_no_other_result(trained_root, calibrated_run, tmp_path, monkeypatch):
    clean = read_rows(calibrated_run / "scores.csv")
    bad_id = next(i for i, row in clean.items() if row["member"] == "1")
    real_score_queries = audit.score_queries

    def with_a_corrupt_query(engine, data, ids, *args, **kwargs):
        data = data.clone()
        data[ids == int(bad_id)] = float("nan")  # e.g. an overflow in preprocessing on the device
        return real_score_queries(engine, data, ids, *args, **kwargs)

    monkeypatch.setattr(audit, "score_queries", with_a_corrupt_query)
    cfg, _ = compose_app("attack", trained_root, WHITEBOX_CALIBRATED)
    metrics = attack(cfg, tmp_path / "out")

    rows = read_rows(tmp_path / "out" / "scores.csv")
    assert rows.keys() == clean.keys()
    failed = rows.pop(bad_id)
    assert failed["status"] == "diverged"
    assert failed["victim_loss"] == failed["reference_loss"] == failed["score"] == ""
    assert rows == {i: row for i, row in clean.items() if i != bad_id}  # every other query: the same result
    assert metrics["n_failed"] == 1 and metrics["n_members"] == 23 and metrics["n_nonmembers"] == 24
    expected = membership_metrics(
        torch.tensor([float(r["score"]) for r in rows.values()]),
        torch.tensor([int(r["member"]) for r in rows.values()]),
    )
    assert metrics["auc"] == pytest.approx(expected["auc"])
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n_failed"] == 1


@pytest.mark.parametrize("setting", ["fullbb", "partialbb", "discriminator", "montecarlo"])
def test_a_non_finite_query_is_diverged_by_every_engine_and_isolated(trained_root, setting):
    """NaN / inf queries next to good ones in one batch: marked diverged, the others bit-for-bit unchanged."""
    cfg, _ = compose_app("attack", trained_root, attack_overrides(setting))
    victim = trained_root / VICTIM
    engine = build_engine(
        cfg.setting,
        load_generator(victim),
        load_discriminator(victim),
        ReconstructionDistance(l2_weight=1.0, latent_weight=0.001),
        seed=0,
    )
    x, ids = load_digits(16).data[:12], torch.arange(12)
    engine.prepare(x)
    clean = engine.losses(x, ids)
    poisoned = x.clone()
    poisoned[3, 0, 5, 5] = float("nan")
    poisoned[7] = float("inf")
    result = engine.losses(poisoned, ids)
    assert result.status.tolist() == [int(i in (3, 7)) for i in range(12)]
    assert torch.isnan(result.loss[[3, 7]]).all()
    keep = [i for i in range(12) if i not in (3, 7)]
    assert not clean.status.any()
    torch.testing.assert_close(result.loss[keep], clean.loss[keep], rtol=0, atol=0)


def test_a_pickled_data_file_is_refused_and_runs_nothing(tmp_path):
    """Data files are read with ``allow_pickle=False``: an object array (a pickle inside .npy) is refused."""
    import numpy as np

    from ganleaks.data.sources import load_mimic

    marker = tmp_path / "pwned"
    payload = np.empty(2, dtype=object)
    payload[0] = WritesMarker(marker)
    np.save(tmp_path / "codes.npy", payload, allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_mimic(str(tmp_path / "codes.npy"))
    assert not marker.exists()


# ======================================================================= 7. broken models, broken files (issue 15)


def with_non_finite_weights(source: Path, target: Path, role: str) -> Path:
    """A copy of a run folder whose ``role`` network has every weight NaN (e.g. a diverged training run)."""
    run = copy_run(source, target)
    network = (load_generator if role == "generator" else load_discriminator)(run)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.fill_(float("nan"))
    spec = json.loads((run / f"{role}.json").read_text())
    save_network(network, run, role, latent_dim=spec["latent_dim"], data_kind=spec["data_kind"])
    return run


@pytest.mark.parametrize(
    ("setting", "role", "broken"),
    [
        ("montecarlo", "generator", "victim"),  # used to finish with AUC 0.5 and every row "ok"
        ("fullbb", "generator", "victim"),  # used to die in the nearest-neighbour search with an IndexError
        ("whitebox", "generator", "reference"),
        ("discriminator", "discriminator", "victim"),
    ],
)
def test_a_model_with_non_finite_outputs_is_refused_and_never_gets_an_auc(
    trained_root, tmp_path, setting, role, broken
):
    source = trained_root / (VICTIM if broken == "victim" else REFERENCE)
    run = with_non_finite_weights(source, tmp_path / broken, role)
    extra = [f"victim.run_dir={run}"] if broken == "victim" else [f"calibration.reference_run_dir={run}"]
    cfg, _ = compose_app(
        "attack", trained_root, attack_overrides(setting, "none" if broken == "victim" else "reference", extra)
    )
    with pytest.raises(AttackConfigError, match=f"{broken} {role} in {run}.*non-finite.*NaN or inf") as refusal:
        attack(cfg, tmp_path / "out")
    assert "Retrain" in str(refusal.value)
    assert_no_attack_outputs(tmp_path / "out")


def test_a_generator_non_finite_on_some_latents_only_is_refused_by_the_sample_bank(trained_root):
    """The fixed test latents can miss a generator that overflows on rare latents; the bank catches it."""
    from ganleaks.attacks.nearest_neighbor import NonFiniteOutputError, SampleBank

    generator = load_generator(trained_root / VICTIM)

    class OverflowsSometimes(torch.nn.Module):
        latent_dim, data_shape = generator.latent_dim, generator.data_shape

        def forward(self, z):
            x = generator(z)
            return torch.where((z[:, :1] > 2.5).view(-1, 1, 1, 1), torch.full_like(x, float("inf")), x)

    bank = SampleBank(OverflowsSometimes(), 512, seed=0, chunk_size=128)
    with pytest.raises(NonFiniteOutputError, match=r"non-finite \(NaN or inf\) samples"):
        list(bank.chunks())


def test_metrics_never_rank_non_finite_scores():
    scores = torch.tensor([float("inf"), 0.9, 0.8, 0.2, 0.1, -float("inf"), float("nan")])
    labels = torch.tensor([0, 1, 1, 0, 0, 1, 1])
    metrics = membership_metrics(scores, labels)
    assert metrics["n_failed"] == 3 and metrics["n_members"] == 2 and metrics["n_nonmembers"] == 2
    assert metrics["auc"] == 1.0  # computed over the four finite scores only


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_images_are_scaled_not_clipped(tmp_path, channels):
    """PIL's 8-bit conversion clips 16-bit values above 255: almost every pixel became white."""
    from PIL import Image

    from ganleaks.data.sources import load_image_folder

    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = rng.integers(0, 65536, (4, 16, 16)).astype(np.uint16)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i}.png")  # 16-bit grayscale PNG
    assert Image.open(folder / "0.png").mode.startswith("I")
    data = load_image_folder(str(folder), resolution=16, channels=channels).data
    expected = torch.from_numpy((pixels >> 8).astype(np.float32) / 127.5 - 1.0)[:, None]
    torch.testing.assert_close(data, expected.expand_as(data), atol=2 / 255, rtol=0)
    assert float((data == 1).float().mean()) < 0.05


def test_a_corrupt_batch_file_is_named_and_recomputed(trained_root, tmp_path, caplog):
    out = tmp_path / "out"
    cfg, _ = compose_app("attack", trained_root, attack_overrides("discriminator", extra=["attack.batch_size=16"]))
    attack(cfg, out)
    scores = (out / "scores.csv").read_bytes()
    batch = sorted((out / "batches" / "victim").glob("batch-*.safetensors"))[1]
    batch.write_bytes(batch.read_bytes()[:20])  # e.g. a disk that filled up under another tool
    caplog.set_level("WARNING", logger="ganleaks")
    attack(cfg, out)
    assert f"{batch}" in caplog.text and "recomput" in caplog.text
    assert (out / "scores.csv").read_bytes() == scores
    assert len(list((out / "batches" / "victim").glob("batch-*.safetensors"))) == 3


def test_an_unreadable_resume_key_says_what_to_delete(trained_root, tmp_path):
    out = tmp_path / "out"
    cfg, _ = compose_app("attack", trained_root, attack_overrides("discriminator", extra=["attack.batch_size=16"]))
    attack(cfg, out)
    (out / "batches" / "victim" / preflight.RESUME_KEY_NAME).write_text("{ truncated")
    with pytest.raises(AttackConfigError, match=r"cannot read .*attack_key.json.*delete .*batches/victim"):
        attack(cfg, out)


def test_the_run_record_is_written_with_the_results_and_the_report_reads_it(trained_root, tmp_path):
    """A later, refused run may rewrite .hydra/config.yaml; run.json (written with the results) is the record."""
    from ganleaks.report import load_run

    out = tmp_path / "out"
    cfg, _ = compose_app("attack", trained_root, attack_overrides("fullbb"))
    metrics = attack(cfg, out)
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["setting"]["k"] == 256 and record["config"]["setting"]["name"] == "fullbb"
    assert record["metrics"]["auc"] == metrics["auc"]
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text("setting: {name: fullbb, k: 100}\ndata: {name: other}\n")
    row = load_run(out)
    assert row["k"] == 256 and row["data"] == "digits" and row["train_size"] == 24


@pytest.mark.slow
def test_a_refused_run_leaves_the_record_of_a_finished_run_unchanged(trained_root, tmp_path):
    """Through attack.py: Hydra writes .hydra/ before the attack refuses; the finished run's record stays."""
    from ganleaks.report import load_run

    out = tmp_path / "out"
    args = [*TINY, f"paths.root={trained_root}", *attack_overrides("fullbb"), f"hydra.run.dir={out}"]
    first = run_attack_py(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    record = {path.name: path.read_bytes() for path in (out / ".hydra").iterdir()}
    refused = run_attack_py(*args, "setting.k=128")
    assert refused.returncode != 0
    assert "setting.k" in refused.stderr and "Traceback" not in refused.stderr  # one message, no traceback
    assert {path.name: path.read_bytes() for path in (out / ".hydra").iterdir()} == record
    assert load_run(out)["k"] == 256
