"""Issue 23, part 1: a run's identity is everything that changes a score.

Changing any one score-affecting input starts a new run: a new folder when the change is visible in
the config (a declared range, a generator keyword argument, a setting key, the distance, the seed,
the calibration set, the query files), or, when only a file's *contents* changed at the same path,
a refusal that names the change (the resume key holds the contents) -- never the old scores.
Also: ``~`` in ``paths.root`` and in the user's file paths is the home folder, not a folder named ``~``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganleaks.config_resolvers import register_resolvers
from ganleaks.errors import AttackConfigError
from tests.conftest import TINY, compose_app
from tests.test_user_victims import _images, _lookup_weights, _save_folder  # the same user files

register_resolvers()  # conf/victim's ${ganleaks_fingerprint:...}, for configs composed here

REPO = Path(__file__).resolve().parents[1]
N = 32
FAST = ["distance=l2", "setting=fullbb", "setting.k=256"]


@pytest.fixture
def user_files(tmp_path) -> dict[str, Path]:
    """PNG members / non-members, a memorising lookup generator, a sample set and a calibration set."""
    root = tmp_path / "user"
    rng = np.random.default_rng(0)
    members, nonmembers = _images(rng, N), _images(rng, N)
    return {
        "root": root,
        "members": _save_folder(root / "train", members),
        "nonmembers": _save_folder(root / "holdout", nonmembers),
        "weights": _lookup_weights(root / "G.safetensors", members),
        "samples": _save_folder(root / "synthetic", np.concatenate([members[: N // 2], _images(rng, N)])),
        "calibration": _save_folder(root / "refsynth", _images(rng, 2 * N)),
    }


def _generator(files) -> list[str]:
    return [
        "victim=generator",
        "victim.generator._target_=tests.userpkg.nets.LookupGenerator",
        f"+victim.generator.rows={N}",
        f"victim.weights={files['weights']}",
        f"victim.latent_dim={N}",
        f"queries.members={files['members']}",
        f"queries.nonmembers={files['nonmembers']}",
    ]


def _samples(files, calibrated: bool = True) -> list[str]:
    calibration = ["calibration=samples", f"calibration.path={files['calibration']}"] if calibrated else []
    return [
        "victim=samples",
        f"victim.path={files['samples']}",
        f"queries.members={files['members']}",
        f"queries.nonmembers={files['nonmembers']}",
        *calibration,
    ]


def _attack(root: Path, overrides: list[str]) -> tuple[dict, Path]:
    from ganleaks.workflows import attack

    cfg, out_dir = compose_app("attack", root, [*FAST, *overrides])
    return attack(cfg, out_dir), out_dir


def _identity(out_dir: Path) -> dict:
    return json.loads((out_dir / "run.json").read_text())["identity"]


def test_each_declared_change_gets_its_own_folder(user_files, tmp_path):
    """Every score-affecting key the config shows names its own folder: a sweep never collides."""
    generator, samples = _generator(user_files), _samples(user_files)
    base = {
        "generator": compose_app("attack", tmp_path, [*FAST, *generator])[1],
        "samples": compose_app("attack", tmp_path, [*FAST, *samples])[1],
    }
    changes = {
        "generator": [
            "victim.output_range=[0,1]",
            "victim.latent_range=[-2,2]",
            "victim.latent_distribution=uniform",
            "+victim.generator.sharpness=10.0",
            f"victim.weights={user_files['root'] / 'other.safetensors'}",
            "setting.k=128",
            "setting=montecarlo",
            "distance=paper",
            "seed=1",
            "attack.num_queries=8",
            f"queries.members={user_files['samples']}",
            "queries.resolution=8",
        ],
        "samples": [
            f"calibration.path={user_files['members']}",
            "calibration.value_range=[0,1]",
            f"victim.path={user_files['calibration']}",
            "victim.value_range=[0,1]",
            "setting.k=128",
            "queries.channels=3",
        ],
    }
    victims = {"generator": generator, "samples": samples}
    for kind, overrides in changes.items():
        seen = {base[kind]}
        for change in overrides:
            out_dir = compose_app("attack", tmp_path, [*FAST, *victims[kind], change])[1]
            assert out_dir not in seen, f"{kind}: {change} would resume or overwrite another run in {out_dir}"
            seen.add(out_dir)
    uncalibrated = compose_app("attack", tmp_path, [*FAST, *_samples(user_files, calibrated=False)])[1]
    assert uncalibrated != base["samples"]
    # and the same inputs, the same folder (a rerun resumes)
    assert compose_app("attack", tmp_path, [*FAST, *generator])[1] == base["generator"]
    same_range = compose_app("attack", tmp_path, [*FAST, *generator, "victim.output_range=[-1.0,1.0]"])[1]
    assert same_range == base["generator"]  # [-1.0, 1.0] is the default [-1, 1]


def test_a_sweep_writes_one_folder_per_value_with_its_identity(user_files, tmp_path):
    generator = _generator(user_files)
    first, first_dir = _attack(tmp_path, generator)
    second, second_dir = _attack(tmp_path, [*generator, "setting.k=128"])
    assert first_dir != second_dir and first_dir.parent == second_dir.parent
    one, two = _identity(first_dir), _identity(second_dir)
    assert one["fingerprint"] != two["fingerprint"]
    assert one["victim"]["setting"]["k"] == 256 and two["victim"]["setting"]["k"] == 128
    assert one["victim"]["model_sha256"]["generator"] == two["victim"]["model_sha256"]["generator"]
    assert one["victim"]["model_sha256"]["declared"]["generator"]["rows"] == N
    assert len(one["victim"]["queries_sha256"]) == 64 and one["victim"]["dataset_fingerprint"]
    # a rerun with the same inputs resumes, with the same identity and scores
    again, again_dir = _attack(tmp_path, generator)
    assert again_dir == first_dir and _identity(again_dir) == one and again["auc"] == first["auc"]


def _rewrite(path: Path, images: np.ndarray) -> None:
    shutil.rmtree(path)
    _save_folder(path, images)


@pytest.mark.parametrize("what", ["weights", "samples", "members", "calibration"])
def test_contents_changed_at_the_same_path_are_refused_by_name(user_files, tmp_path, what):
    """The folder cannot see a file's contents; the resume key does: the old scores are never served."""
    overrides = _generator(user_files) if what == "weights" else _samples(user_files)
    _, out_dir = _attack(tmp_path, overrides)
    before = (out_dir / "scores.csv").read_bytes()
    rng = np.random.default_rng(7)
    if what == "weights":
        _lookup_weights(user_files["weights"], _images(rng, N))
        expected = r"contents of the generator's weights \(victim.weights\)"
    elif what == "members":
        _rewrite(user_files["members"], _images(rng, N))
        expected = "the query records' contents"
    else:
        _rewrite(user_files[what], _images(rng, 2 * N))
        expected = r"the samples' contents"
    with pytest.raises(AttackConfigError, match=f"another attack: .*{expected}.*changed.*rm -r") as error:
        _attack(tmp_path, overrides)
    role = "reference" if what == "calibration" else "victim"
    assert f"batches/{role}" in str(error.value)
    assert (out_dir / "scores.csv").read_bytes() == before  # the old run's record is untouched
    # the command the message gives recomputes on the new contents (new query records: every model's)
    shutil.rmtree(out_dir / "batches" / ("" if what == "members" else role))
    _, again = _attack(tmp_path, overrides)
    assert again == out_dir and (out_dir / "scores.csv").read_bytes() != before


def test_built_in_folder_layout_is_kept(tmp_path):
    """A default run on a training run's victim writes <victim>/<setting>/<calibration>-<distance>, as docs
    and studies say: group choices are in the name already, and keys that change no score add nothing."""
    _, out_dir = compose_app("attack", tmp_path, ["setting=fullbb", "distance=l2", "setting.bank_cache_mb=8"])
    assert out_dir == tmp_path / "attack/digits/dcgan/n24/seed0/fullbb/none-l2"
    _, calibrated = compose_app("attack", tmp_path, ["setting=whitebox", "calibration=reference", "distance=l2"])
    assert calibrated == tmp_path / "attack/digits/dcgan/n24/seed0/whitebox/reference-l2"


def test_a_built_in_victims_folder_names_the_keys_set_on_the_command_line(tmp_path):
    """setting.k=100 and setting.k=1000 are two folders, named readably; a path is named by a digest."""
    base = ["setting=fullbb", "distance=l2"]
    folders = {k: compose_app("attack", tmp_path, [*base, f"setting.k={k}"])[1] for k in (100, 1000)}
    assert folders[100].name == "none-l2-setting.k=100" and folders[1000].name == "none-l2-setting.k=1000"
    _, both = compose_app("attack", tmp_path, [*base, "attack.num_queries=8", "setting.k=100"])
    assert both.name == "none-l2-attack.num_queries=8,setting.k=100"  # sorted, Hydra's override_dirname style
    _, other_run = compose_app("attack", tmp_path, [*base, f"victim.run_dir={tmp_path / 'elsewhere/seed3'}"])
    assert re.fullmatch(r"none-l2-victim\.run_dir=[0-9a-f]{8}", other_run.name)
    cache = f"calibration.cache_dir={tmp_path}"
    _, shared_cache = compose_app("attack", tmp_path, [*base, "calibration=reference", cache])
    assert shared_cache.name == "reference-l2"  # where shared losses are kept changes no score


def test_a_multirun_over_a_setting_key_writes_one_folder_per_value(trained_root, tmp_path):
    """`attack.py -m setting.k=64,128` on a built-in victim: two folders, each with its own complete run
    (the second job is neither refused nor served the first one's scores)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "attack.py"), "-m", *TINY, f"paths.models={trained_root}",
         f"paths.root={tmp_path}", "setting=fullbb", "distance=l2", "calibration=none", "setting.k=64,128"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    base = tmp_path / "attack/digits/dcgan/n24/seed0/fullbb"
    assert sorted(p.name for p in base.iterdir()) == ["none-l2-setting.k=128", "none-l2-setting.k=64"]
    for k in (64, 128):
        record = json.loads((base / f"none-l2-setting.k={k}" / "run.json").read_text())
        assert record["identity"]["victim"]["setting"]["k"] == k
        assert (base / f"none-l2-setting.k={k}" / "scores.csv").is_file()


def test_tilde_in_a_config_composed_in_code_is_the_home_folder(tmp_path, monkeypatch):
    """paths.root='~/audits' composed in code (a notebook's hydra.compose, tests) is expanded as on the
    command line: the attack, train and shared-cache folders are in the home folder, not under ./~."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg, out_dir = compose_app("attack", "'~/audits'", ["setting=fullbb", "calibration=reference"])
    home = tmp_path / "home" / "audits"
    assert out_dir == home / "attack/digits/dcgan/n24/seed0/fullbb/reference-l2"
    assert Path(cfg.paths.train) == home / "train" and Path(cfg.calibration.cache_dir) == home / "cache/reference"
    assert Path(cfg.victim.run_dir) == home / "train/digits/dcgan/n24/seed0"


def test_tilde_on_the_command_line_is_the_home_folder():
    """paths.root='~/audits' (quoted for Hydra) is the folder audits in the home folder, not ./~/audits."""
    from ganleaks.config_resolvers import expand_folder_overrides

    home = str(Path.home())
    assert expand_folder_overrides(["paths.root='~/audits'", "seed=1", "hydra.run.dir=$HOME/run"]) == [
        f"paths.root='{home}/audits'",
        "seed=1",
        f"hydra.run.dir='{home}/run'",
    ]
    kept = ["paths.root=outputs", "paths.root=${oc.env:HOME}/x", "paths.models='~/a','~/b'"]
    assert expand_folder_overrides(kept) == kept  # a plain path, an interpolation, a sweep


def test_tilde_in_the_users_paths(user_files, tmp_path, monkeypatch):
    """~/ in victim.path and queries.* is the home folder; attack.py puts paths.root='~/...' there too."""
    home = user_files["root"]
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    overrides = [
        "victim=samples",
        "victim.path='~/synthetic'",  # quoted: Hydra's override grammar reads a bare ~ as an error
        "queries.members='~/train'",
        "queries.nonmembers='~/holdout'",
    ]
    from ganleaks.workflows import attack

    cfg, out_dir = compose_app("attack", tmp_path, [*FAST, *overrides])
    metrics = attack(cfg, out_dir)
    assert metrics["auc"] > 0.6 and (out_dir / "scores.csv").is_file()
    done = subprocess.run(  # as a user types it: Hydra creates the run folder
        [sys.executable, str(REPO / "attack.py"), "paths.root='~/audits'", *FAST, *overrides],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (written,) = (home / "audits/attack/user").glob("samples-*/fullbb/*/scores.csv")
    assert written.read_bytes() == (out_dir / "scores.csv").read_bytes()
    assert not (tmp_path / "~").exists()
