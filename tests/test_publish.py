"""python -m ganleaks.evaluation.publish: a study's small files into a folder for git, nothing large."""

from __future__ import annotations

import json

import pytest

from ganleaks.evaluation.publish import main, publish


def make_study(root):
    model = root / "train" / "toy" / "dcgan" / "n64" / "seed0"
    for name in ("generator.safetensors", "generator.json", "manifest.json", "trained_on.json", "privacy.json"):
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_text("{}")
    (model / "checkpoints").mkdir()
    (model / "checkpoints" / "last.ckpt").write_bytes(b"x" * 100)
    (model / "samples").mkdir()
    (model / "samples" / "step_0000500.png").write_bytes(b"png500")
    (model / "samples" / "final.png").write_bytes(b"pngfinal")
    (model / ".hydra").mkdir()
    (model / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (model / ".hydra" / "overrides.yaml").write_text("- model=dcgan\n- data.train_size=64\n")
    (model / "train.log").write_text(
        "[2026-11-29 18:35:10,941][ganleaks.workflows][INFO] - training\n"
        "[2026-11-29 18:38:16,396][ganleaks.workflows][INFO] - done\n"
    )
    attack = root / "attack" / "toy" / "dcgan" / "n64" / "seed0" / "fullbb" / "none-l2"
    (attack / ".hydra").mkdir(parents=True)
    for name in ("metrics.json", "scores.csv", "run.json", "attack.log", "roc.png", "reconstructions.png"):
        (attack / name).write_text("x")
    (attack / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (attack / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    (attack / "batches" / "victim").mkdir(parents=True)
    (attack / "batches" / "victim" / "batch_0.pt").write_bytes(b"t")
    (attack / "batches" / "victim" / "metrics.json").write_text("{}")  # not a run of its own
    return model, attack


def test_publish_copies_small_files_only(tmp_path):
    model, attack = make_study(tmp_path / "outputs")
    counts = publish(tmp_path / "outputs", tmp_path / "results", commit="abc", command="python train.py -m ...")
    assert (counts["attacks"], counts["models"]) == (1, 1)
    out = tmp_path / "results"
    published = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    a = "attack/toy/dcgan/n64/seed0/fullbb/none-l2/"
    m = "train/toy/dcgan/n64/seed0/"
    assert published == sorted(
        [a + n for n in ("metrics.json", "scores.csv", "run.json", "attack.log", ".hydra/config.yaml")]
        + [m + n for n in ("generator.safetensors", "generator.json", "manifest.json", "trained_on.json")]
        + [m + n for n in ("privacy.json", "config.yaml", "final.png", "train.log", "run.json")]
    )
    assert (out / m / "final.png").read_bytes() == b"pngfinal"
    facts = json.loads((out / m / "run.json").read_text())
    assert facts["commit"] == "abc" and facts["job_overrides"] == ["model=dcgan", "data.train_size=64"]
    assert facts["train_wall_s"] == 186


def test_publish_only_attacks_leaves_published_models_alone(tmp_path, capsys):
    make_study(tmp_path / "outputs")
    facts = tmp_path / "results" / "train" / "toy" / "dcgan" / "n64" / "seed0" / "run.json"
    facts.parent.mkdir(parents=True)
    facts.write_text('{"commit": "stage 1"}')
    main([str(tmp_path / "outputs"), str(tmp_path / "results"), "--only", "attacks"])
    assert "1 attack runs, 0 models" in capsys.readouterr().out
    assert facts.read_text() == '{"commit": "stage 1"}'
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing"), str(tmp_path / "results")])
    assert exit_info.value.code == 2 and "not a folder" in capsys.readouterr().err
