"""Scale-out: attacks and training on 2 CPU processes with Lightning DDP (gloo), Hydra launchers for sweeps.

The DDP and multirun tests run the real command lines (``python attack.py ... trainer=ddp``), because
Lightning's ``ddp`` strategy relaunches the script for the other ranks.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

from ganleaks.models import load_generator
from ganleaks.models.privacy import UnsupportedPrivacyError
from ganleaks.orchestration.runner import read_batches, write_batch
from ganleaks.settings.base import BatchResult
from ganleaks.workflows import attack, train
from tests.conftest import CONF, TINY, attack_overrides, compose_app

REPO = Path(__file__).resolve().parents[1]
DDP = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def run_cli(script: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [sys.executable, script, *overrides], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def scores_by_id(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert len({row["id"] for row in rows}) == len(rows), "scores.csv has an id twice"
    return {row["id"]: row for row in rows}


def batch_ids_by_process(batch_dir: Path) -> dict[str, set[int]]:
    """Ids scored by each process (the pid ends every batch file name)."""
    ids: dict[str, set[int]] = {}
    for path in batch_dir.glob("batch-*.safetensors"):
        ids.setdefault(path.stem.rsplit("-", 1)[1], set()).update(load_file(str(path))["ids"].tolist())
    return ids


def assert_same_value(a: str, b: str) -> None:
    if a == "" or b == "":
        assert a == b
    else:
        # Ranks batch other queries together, and a batched conv's float32 rounding can depend on its
        # batch-mates (and on the thread count): equal to 1e-5 relative, inside the SPEC's 1e-4.
        assert float(b) == pytest.approx(float(a), rel=1e-5, abs=1e-9)


# --- attacks on 2 processes ------------------------------------------------------------------------


def test_ddp_attack_on_two_processes_gives_the_single_process_scores(trained_root, tmp_path):
    """fullbb + reference calibration: two predict loops (victim, then reference) in one process group.

    The DDP run resumes from one finished query, so 47 queries remain: the shards are uneven.
    """
    # Reference losses in the run folder (not the shared cache), so that the DDP run computes them too.
    overrides = attack_overrides("fullbb", "reference", ["attack.batch_size=5", "calibration.cache_dir=null"])
    cfg, _ = compose_app("attack", trained_root, overrides)
    single_dir, ddp_dir = tmp_path / "one", tmp_path / "two"
    attack(cfg, single_dir)
    single = scores_by_id(single_dir / "scores.csv")

    finished = read_batches(single_dir / "batches" / "victim")
    first = {key: value[:1] for key, value in finished.items()}
    write_batch(
        ddp_dir / "batches" / "victim",
        first["ids"],
        BatchResult(first["loss"], first["objective"], first.get("z"), first["status"]),
    )
    for key_file in (single_dir / "batches" / "victim").glob("*.json"):  # what the batches were computed for
        shutil.copy(key_file, ddp_dir / "batches" / "victim")

    result = run_cli("attack.py", *TINY, f"paths.root={trained_root}", *overrides, *DDP, f"hydra.run.dir={ddp_dir}")
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stdout + result.stderr
    # Only rank 0 reports and writes the outputs.
    assert len(re.findall(r"^AUC ", result.stdout, flags=re.M)) == 1, result.stdout[-2000:]

    ddp = scores_by_id(ddp_dir / "scores.csv")
    assert ddp.keys() == single.keys() and len(ddp) == 48
    for sample_id, row in single.items():
        assert ddp[sample_id]["member"] == row["member"] and ddp[sample_id]["status"] == row["status"]
        for column in ("victim_loss", "reference_loss", "score"):
            assert_same_value(row[column], ddp[sample_id][column])
    single_metrics = json.loads((single_dir / "metrics.json").read_text())
    ddp_metrics = json.loads((ddp_dir / "metrics.json").read_text())
    assert ddp_metrics["auc"] == pytest.approx(single_metrics["auc"], abs=1e-12)
    assert {"roc.png", "reconstructions.png"} <= {p.name for p in ddp_dir.iterdir()}

    # Each role was sharded over both ranks: two processes, disjoint shards, every remaining query once.
    seeded = int(first["ids"][0])
    for role in ("victim", "reference"):
        by_process = batch_ids_by_process(ddp_dir / "batches" / role)
        by_process.pop(str(os.getpid()), None)  # the one query this test wrote
        assert len(by_process) == 2, by_process.keys()
        shards = list(by_process.values())
        assert all(shards) and not shards[0] & shards[1]
        expected = {int(i) for i in single} - ({seeded} if role == "victim" else set())
        assert shards[0] | shards[1] == expected


def test_merge_keeps_one_row_per_id_when_shards_repeat_queries(tmp_path):
    """A sampler that pads shards (or a batch re-run by another process) leaves an id in two files."""

    def result(ids: torch.Tensor) -> BatchResult:
        loss = ids.float() / 10
        return BatchResult(loss, loss, torch.stack([loss, -loss], 1), torch.zeros(len(ids), dtype=torch.int8))

    write_batch(tmp_path, torch.tensor([0, 2, 4]), result(torch.tensor([0, 2, 4])))
    write_batch(tmp_path, torch.tensor([1, 3, 0, 2]), result(torch.tensor([1, 3, 0, 2])))  # 0, 2 repeated as padding
    assert len(list(tmp_path.glob("batch-*.safetensors"))) == 2
    rows = read_batches(tmp_path)
    assert rows["ids"].tolist() == [0, 1, 2, 3, 4]
    torch.testing.assert_close(rows["loss"], torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4]))
    torch.testing.assert_close(rows["z"][:, 1], -rows["loss"])


# --- training on 2 processes ------------------------------------------------------------------------


def test_ddp_training_of_a_tiny_victim_on_two_processes_exports_a_generator(tmp_path):
    run = tmp_path / "ddp_victim"
    result = run_cli("train.py", *TINY, f"paths.root={tmp_path}", *DDP, "trainer.max_steps=4", f"hydra.run.dir={run}")
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stdout + result.stderr
    generator = load_generator(run)
    with torch.no_grad():
        images = generator(torch.randn(4, generator.latent_dim, generator=torch.Generator().manual_seed(0)))
    assert images.shape == (4, 1, 16, 16) and torch.isfinite(images).all() and images.abs().max() <= 1
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 4
    assert json.loads((run / "trained_on.json").read_text())["part"] == "members"
    assert (run / "discriminator.json").is_file() and (run / "samples" / "final.png").is_file()


@pytest.mark.parametrize("devices", [2, 1])
def test_dp_training_under_ddp_is_refused_before_training(tmp_path, devices):
    """Opacus' accounting here is for one process; even one DDP process breaks the Poisson loader."""
    cfg, run = compose_app(
        "train",
        tmp_path,
        ["model=dpgan", "privacy=dp", "trainer=ddp", f"trainer.devices={devices}", "trainer.accelerator=cpu"],
    )
    with pytest.raises(UnsupportedPrivacyError, match="one device") as refusal:
        train(cfg, run)
    message = str(refusal.value)
    assert "trainer.devices=1" in message and "epsilon" in message
    for name in ("manifest.json", "checkpoints", "generator.json", "privacy.json"):  # refused before writing
        assert not (run / name).exists(), name


# --- sweeps: Hydra launchers ------------------------------------------------------------------------


def compose_with_hydra(app: str, root: Path, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name=app, overrides=[*TINY, f"paths.root={root}", *overrides], return_hydra_config=True)


@pytest.mark.parametrize("app", ["train", "attack"])
def test_submitit_slurm_launcher_composes_for_both_apps(app, tmp_path):
    plain = compose_with_hydra(app, tmp_path, ["hydra/launcher=submitit_slurm"]).hydra.launcher
    assert plain._target_ == SLURM_LAUNCHER
    assert (plain.nodes, plain.tasks_per_node, plain.gpus_per_node) == (1, 1, None)
    assert plain.submitit_folder == f"{tmp_path}/{app}/.submitit/%j"  # beside the sweep's run folders

    preset = compose_with_hydra(
        app,
        tmp_path,
        ["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu-a100", "trainer=ddp", "trainer.devices=4"],
    ).hydra.launcher
    launcher = OmegaConf.to_container(preset, resolve=True)
    assert launcher["_target_"] == SLURM_LAUNCHER
    # One SLURM task per device, as Lightning's DDP under SLURM expects.
    assert launcher["gpus_per_node"] == launcher["tasks_per_node"] == 4 and launcher["nodes"] == 1
    assert launcher["partition"] == "gpu-a100" and launcher["timeout_min"] == 1440
    assert launcher["mem_gb"] == 32 and launcher["cpus_per_task"] == 4 and launcher["max_num_timeout"] == 3

    two_nodes = compose_with_hydra(
        app, tmp_path, ["hydra/launcher=slurm_gpu", "trainer=ddp", "trainer.devices=8", "++trainer.num_nodes=2"]
    ).hydra.launcher
    assert (two_nodes.nodes, two_nodes.tasks_per_node, two_nodes.gpus_per_node) == (2, 8, 8)


def test_slurm_preset_submits_the_sbatch_script_lightning_ddp_needs(tmp_path, monkeypatch):
    """The real SlurmLauncher through submitit, with stand-ins for ``sbatch`` / ``srun`` (no cluster)."""
    import submitit

    bin_dir, script = tmp_path / "bin", tmp_path / "submitted.sh"
    bin_dir.mkdir()
    for name, body in (("sbatch", f'cp "$1" "{script}"\necho "Submitted batch job 4242"\n'), ("srun", "exit 1\n")):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(submitit.Job, "results", lambda job: [None])  # nothing runs: do not wait for it

    cfg = compose_with_hydra(
        "attack",
        tmp_path / "runs",
        ["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu", "trainer=ddp", "trainer.devices=4"],
    )
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    assert launcher.launch([["setting=fullbb"], ["setting=whitebox"]], initial_job_idx=0) == [None, None]
    sbatch = script.read_text()
    for line in (
        "#SBATCH --array=0-1%",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --nodes=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1440",
        "#SBATCH --mem=32GB",
        "#SBATCH --cpus-per-task=4",
        f"{tmp_path}/runs/attack/.submitit/",
    ):
        assert line in sbatch, line
    assert re.search(r"^srun .* -m submitit\.core\._submit ", sbatch, flags=re.M)


def test_joblib_multirun_runs_two_attack_jobs_into_the_single_run_folders(trained_root, tmp_path):
    victim = trained_root / "train/digits/dcgan/n24/seed0"
    common = [f"victim.run_dir={victim}", "distance=l2", "calibration=none", "++setting.k=256"]
    result = run_cli(
        "attack.py",
        "-m",
        *TINY,
        f"paths.root={tmp_path}",
        *common,
        "setting=fullbb,discriminator",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    )
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    assert len(re.findall(r"^AUC ", result.stdout, flags=re.M)) == 2
    for setting in ("fullbb", "discriminator"):
        cfg, single_run_dir = compose_app("attack", tmp_path, [*common, f"setting={setting}"])
        assert single_run_dir.parent == tmp_path / f"attack/digits/dcgan/n24/seed0/{setting}"
        assert re.fullmatch(r"none-l2-setting\.k=256,victim\.run_dir=[0-9a-f]{8}", single_run_dir.name)
        assert {"scores.csv", "metrics.json", "roc.png"} <= {p.name for p in single_run_dir.iterdir()}
        assert len(scores_by_id(single_run_dir / "scores.csv")) == 48
        # The job ran exactly the config a single `python attack.py ...` run composes.
        job_cfg = OmegaConf.load(single_run_dir / ".hydra" / "config.yaml")
        assert OmegaConf.to_container(job_cfg) == OmegaConf.to_container(cfg)
        assert "hydra_joblib_launcher" in (single_run_dir / ".hydra" / "hydra.yaml").read_text()
