"""User mistakes: each is refused early (before any training or scoring work and before any output
file is written) with a message that says what is wrong and what to do.

Attack mistakes run against the tiny trained runs of ``trained_root``; training mistakes run
``ganleaks.workflows.train`` into an empty folder. Every test also checks that nothing was
half-written: no ``scores.csv`` / ``metrics.json`` / batch files for attacks, no manifest,
checkpoint or export for training.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import open_dict
from PIL import Image

from ganleaks.data import MembershipSplit, SplitError, make_split, save_manifest
from ganleaks.data.queries import select_queries
from ganleaks.data.sources import load_digits
from ganleaks.distances.distance import LPIPSWeightsMissingError
from ganleaks.errors import AttackConfigError
from ganleaks.models.privacy import UnsupportedPrivacyError
from ganleaks.models.training import CheckpointError
from ganleaks.victims.training_run import ReferenceOverlapError
from ganleaks.workflows import attack, train
from tests.conftest import CONF, TINY, attack_overrides, compose_app

REPO = Path(__file__).resolve().parents[1]
VICTIM = "train/digits/dcgan/n24/seed0"
REFERENCE = "train/digits/dcgan/reference_n48/seed0"
BLACKBOX_REFERENCE = "train/digits/wgangp/reference_n48/seed0"
TRAIN_OUTPUTS = (
    "manifest.json",
    "trained_on.json",
    "checkpoints",
    "generator.safetensors",
    "generator.json",
    "discriminator.safetensors",
    "logs",
)


def assert_no_attack_outputs(out: Path) -> None:
    for name in ("scores.csv", "metrics.json", "roc.png"):
        assert not (out / name).exists(), f"{name} was written before the error"
    assert not list(out.glob("batches/*/batch-*")), "queries were scored before the error"


def assert_no_train_outputs(run_dir: Path) -> None:
    for name in TRAIN_OUTPUTS:
        assert not (run_dir / name).exists(), f"{name} was written before the error"


def refused_attack(root: Path, out: Path, overrides: list[str], error: type[BaseException], match: str):
    """Compose the attack, run it, and check it is refused with ``error`` matching ``match``, writing nothing."""
    cfg, _ = compose_app("attack", root, overrides)
    with pytest.raises(error, match=match) as refusal:
        attack(cfg, out)
    assert_no_attack_outputs(out)
    return refusal.value


def refused_training(root: Path, overrides: list[str], error: type[BaseException], match: str, compose_fn=compose_app):
    cfg, run_dir = compose_fn("train", root, ["hydra.run.dir=" + str(root / "run"), *overrides])
    with pytest.raises(error, match=match) as refusal:
        train(cfg, run_dir)
    assert_no_train_outputs(run_dir)
    return refusal.value


def compose_tabular(app: str, root: Path, overrides: list[str], tiny_nets: bool = True):
    """As ``compose_app`` for a tabular source (no ``data.source.resolution``), tiny MLP nets."""
    tiny = [o for o in TINY if not o.startswith("data.source.resolution")]
    nets = ["model.nets.tabular.generator.hidden_dims=[16]", "model.nets.tabular.discriminator.hidden_dims=[16]"]
    nets = nets if tiny_nets else []
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            config_name=app, overrides=tiny + nets + [f"paths.root={root}", *overrides], return_hydra_config=True
        )
    run_dir = Path(cfg.hydra.run.dir)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, run_dir


def write_codes(path: Path, rows: int = 120, dim: int = 12) -> Path:
    codes = (np.random.default_rng(0).random((rows, dim)) < 0.3).astype(np.float64)
    np.save(path, codes)
    return path


@pytest.fixture(scope="module")
def tabular_root(tmp_path_factory) -> Path:
    """A tiny MIMIC-like victim (binary codes, MLP nets) trained on 24 members."""
    root = tmp_path_factory.mktemp("tabular")
    codes = write_codes(root / "codes.npy")
    cfg, run_dir = compose_tabular("train", root, ["data=mimic", f"data.path={codes}"])
    train(cfg, run_dir)
    return root


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# ----------------------------------------------------------------------------------- victim run


def test_interrupted_victim_run_without_export_says_to_finish_training(trained_root, tmp_path):
    victim = copy_run(trained_root / VICTIM, tmp_path / "victim")
    for name in ("generator.json", "generator.safetensors"):
        (victim / name).unlink()  # training was killed before it exported
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("fullbb", extra=[f"victim.run_dir={victim}"]),
        FileNotFoundError,
        r"no exported generator.*Re-run the same train\.py command",
    )


def test_victim_trained_at_another_resolution(trained_root, tmp_path):
    error = refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("fullbb", extra=["data.source.resolution=32", f"victim.run_dir={trained_root / VICTIM}"]),
        AttackConfigError,
        r"shape \(1, 16, 16\).*shape \(1, 32, 32\)",
    )
    assert "data.source.resolution" in str(error)


def test_victim_of_another_latent_size(trained_root, tmp_path):
    error = refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("whitebox", extra=["model.latent_dim=32"]),
        AttackConfigError,
        "latent_dim 64.*model.latent_dim=32",
    )
    assert "victim.run_dir" in str(error)


def test_tabular_victim_attacked_with_image_data(tabular_root, trained_root, tmp_path):
    victim = tabular_root / "train/mimic/dcgan/n24/seed0"
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("fullbb", extra=[f"victim.run_dir={victim}"]),
        AttackConfigError,
        r"tabular data of shape \(12,\).*attack with the data config",
    )


def test_attacking_a_reference_model_as_if_it_were_a_victim(trained_root, tmp_path):
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("fullbb", extra=[f"victim.run_dir={trained_root / REFERENCE}"]),
        AttackConfigError,
        "'reference' part, not a victim.*data.part=members",
    )


@pytest.mark.parametrize("setting", ["partialbb", "whitebox"])
def test_generator_setting_on_a_release_without_generator(trained_root, tmp_path, setting):
    victim = copy_run(trained_root / VICTIM, tmp_path / "discriminator_only")
    for name in ("generator.json", "generator.safetensors"):
        (victim / name).unlink()
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides(setting, extra=[f"victim.run_dir={victim}"]),
        FileNotFoundError,
        "no exported generator.*needs a model part the publisher did not release",
    )


# ----------------------------------------------------------------------------------- split / data


def test_manifest_that_does_not_match_the_data(trained_root, tmp_path):
    victim = copy_run(trained_root / VICTIM, tmp_path / "victim")
    manifest = json.loads((victim / "manifest.json").read_text())
    manifest["fingerprint"] = "0" * 64  # the data files changed since the split was made
    (victim / "manifest.json").write_text(json.dumps(manifest))
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("fullbb", extra=[f"victim.run_dir={victim}"]),
        SplitError,
        "changed since the split was made.*retrain the victim",
    )


def test_reference_trained_on_another_seeds_split_overlaps_the_queries(trained_root, tmp_path):
    """A reference trained on the reference part of a *different* split still saw queried samples."""
    reference = copy_run(trained_root / BLACKBOX_REFERENCE, tmp_path / "reference")
    other = make_split(load_digits(16), 24, 24, 1024, seed=1)
    save_manifest(other, reference)
    (reference / "trained_on.json").write_text(json.dumps({"part": "reference", "ids": other.parts["reference"]}))
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("fullbb", "reference", [f"calibration.reference_run_dir={reference}"]),
        ReferenceOverlapError,
        "trained on .* of the queried samples.*data.part=reference",
    )


def test_calibration_without_a_trained_reference(trained_root, tmp_path):
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("fullbb", "reference", [f"calibration.reference_run_dir={tmp_path / 'nothing'}"]),
        FileNotFoundError,
        "no trained reference model.*data.part=reference.*calibration=none",
    )


@pytest.mark.parametrize("setting", ["whitebox", "discriminator"])
def test_reference_without_the_needed_network_fails_before_the_victim_is_scored(trained_root, tmp_path, setting):
    reference = copy_run(trained_root / REFERENCE, tmp_path / "reference")
    role = "discriminator" if setting == "discriminator" else "generator"
    for suffix in (".json", ".safetensors"):
        (reference / f"{role}{suffix}").unlink()
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides(setting, "reference", [f"calibration.reference_run_dir={reference}"]),
        FileNotFoundError,
        f"no exported {role}",
    )


def test_victim_split_without_nonmembers():
    split = MembershipSplit("digits", 10, "f", 0, {"members": [1, 2], "nonmembers": [], "reference": [3]})
    with pytest.raises(AttackConfigError, match="no non-members.*data.nonmember_size > 0"):
        select_queries(split, None, 0)


@pytest.mark.parametrize("num_queries", [25, 0, -3])
def test_num_queries_outside_the_split(trained_root, tmp_path, num_queries):
    refused_attack(
        trained_root,
        tmp_path / "out",
        attack_overrides("fullbb", extra=[f"attack.num_queries={num_queries}"]),
        AttackConfigError,
        r"24 members and 24 non-members; choose 1\.\.24",
    )


# ----------------------------------------------------------------------------------- attack settings


@pytest.mark.parametrize(
    ("setting", "override", "match"),
    [
        ("fullbb", "setting.k=0", "setting.k=0 is out of range: set setting.k to an integer >= 1"),
        ("whitebox", "setting.init=best", "setting.init='best' is not valid: choose one of zero, random, nn"),
        ("whitebox", "setting.nn_k=0", "setting.nn_k=0 is out of range: set setting.nn_k to an integer >= 1"),
        ("partialbb", "setting.restarts=0", "setting.restarts=0 .*>= 1"),
        ("whitebox", "attack.batch_size=0", "attack.batch_size=0 is out of range: set attack.batch_size to .* >= 1"),
    ],
)
def test_bad_setting_values(trained_root, tmp_path, setting, override, match):
    refused_attack(trained_root, tmp_path / "out", attack_overrides(setting, extra=[override]), ValueError, match)


def test_lpips_distance_on_tabular_data(tabular_root, tmp_path):
    cfg, _ = compose_tabular(
        "attack",
        tabular_root,
        ["data=mimic", f"data.path={tabular_root / 'codes.npy'}", "setting=fullbb", "setting.k=64", "distance=paper"],
    )
    with pytest.raises(AttackConfigError, match="LPIPS does not apply.*use distance=l2"):
        attack(cfg, tmp_path / "out")
    assert_no_attack_outputs(tmp_path / "out")


def test_missing_lpips_weights(trained_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    cfg, _ = compose_app("attack", trained_root, ["setting=whitebox", "distance=lpips_alex"])
    with pytest.raises(LPIPSWeightsMissingError, match="ganleaks-install-lpips-weights.*distance=l2"):
        attack(cfg, tmp_path / "out")
    assert_no_attack_outputs(tmp_path / "out")


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ("model=stylegan", MissingConfigException, r"Could not find 'model/stylegan'(.|\n)*dcgan"),
        ("attack.batchsize=8", ConfigCompositionException, r"Could not override 'attack.batchsize'(.|\n)*\+attack"),
    ],
)
def test_unknown_option_or_key(tmp_path, override, error, match):
    with pytest.raises(error, match=match):
        compose_app("attack", tmp_path, [override])


@pytest.mark.slow
def test_unknown_setting_on_the_command_line(tmp_path):
    """Through the real entry point: Hydra's message names the bad option and lists the valid ones."""
    result = subprocess.run(
        [sys.executable, "attack.py", "setting=greybox", f"paths.root={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "Could not find 'setting/greybox'" in result.stderr
    for option in ("fullbb", "partialbb", "whitebox", "discriminator"):
        assert option in result.stderr
    assert not list(tmp_path.rglob("scores.csv"))


# ----------------------------------------------------------------------------------- training


def test_sizes_larger_than_the_data(tmp_path):
    refused_training(
        tmp_path,
        ["data.train_size=5000"],
        SplitError,
        "5000 samples.*= 5072; lower data.train_size, data.nonmember_size or data.reference_size",
    )


def test_negative_size(tmp_path):
    refused_training(tmp_path, ["data.nonmember_size=-1"], ValueError, "data.nonmember_size=-1.*0 or more")


def test_unknown_split_part(tmp_path):
    refused_training(
        tmp_path,
        ["data.part=holdout"],
        ValueError,
        "data.part='holdout' is not a split part.*data.part=members.*data.part=reference",
    )


def test_training_on_an_empty_part(tmp_path):
    refused_training(
        tmp_path, ["data.part=reference", "data.reference_size=0"], ValueError, "data.reference_size=0.*at least 1"
    )


def test_privacy_that_cannot_be_applied(tmp_path):
    refused_training(
        tmp_path, ["model=wgangp", "privacy=dp"], UnsupportedPrivacyError, "gradient penalty.*Use model=dpgan"
    )


def test_model_without_networks_for_the_data_kind(tmp_path):
    codes = write_codes(tmp_path / "codes.npy")
    refused_training(
        tmp_path,
        ["model=pggan", "data=mimic", f"data.path={codes}"],
        ValueError,
        "no networks for tabular data.*model=wgangp",
        compose_fn=lambda *args: compose_tabular(*args, tiny_nets=False),
    )


def test_corrupt_image_file(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    refused_training(
        tmp_path,
        ["data=image_folder", f"data.root={folder}"],
        ValueError,
        r"corrupt or unreadable image file .*3\.png.*remove or replace it",
    )


def test_nan_in_tabular_data(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("a,b,c\n1,0,1\n0,,1\n1,1,0\n")
    refused_training(
        tmp_path,
        ["data=mimic", f"data.path={path}"],
        ValueError,
        "NaN in 1 rows.*fill or drop them",
        compose_fn=compose_tabular,
    )


def test_celeba_folder_without_images(tmp_path):
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    refused_training(
        tmp_path,
        ["data=celeba", f"data.root={tmp_path / 'celeba'}"],
        FileNotFoundError,
        "no .jpg files.*unzip img_align_celeba.zip",
    )


def test_celeba_without_identity_file(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    Image.new("RGB", (178, 218)).save(folder / "000001.jpg")
    refused_training(
        tmp_path,
        ["data=celeba", f"data.root={tmp_path / 'celeba'}"],
        FileNotFoundError,
        r"identity_CelebA.txt.*Anno/identity_CelebA.txt.*data.source.allow_image_level_split=true",
    )


def test_data_root_not_set(tmp_path):
    refused_training(tmp_path, ["data=celeba"], ValueError, r"needs data.root.*`data.root=/path")


def test_changed_sizes_for_an_existing_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    save_manifest(make_split(load_digits(16), 24, 24, 48, seed=0), tmp_path / "run")
    before = (tmp_path / "run" / "manifest.json").read_bytes()
    cfg, _ = compose_app("train", tmp_path, ["data.nonmember_size=30"])
    with pytest.raises(ValueError, match="different split.*another hydra.run.dir"):
        train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "manifest.json").read_bytes() == before
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resuming_with_another_model_config(trained_root, tmp_path):
    run = copy_run(trained_root / VICTIM, tmp_path / "run")
    before = {name: (run / name).read_bytes() for name in ("checkpoints/last.ckpt", "generator.safetensors")}
    cfg, _ = compose_app("train", tmp_path, ["model.latent_dim=32", "trainer.max_steps=40"])
    with pytest.raises(CheckpointError, match=r"different model config.*\(64, 64\) != \(64, 32\).*hydra.run.dir"):
        train(cfg, run)
    assert {name: (run / name).read_bytes() for name in before} == before
    assert not (run / "logs" / "version_1").exists()


# ------------------------------------------------------------------------------ values checked where read (issue 15)


@pytest.mark.parametrize(
    ("setting", "override", "match"),
    [
        ("montecarlo", "setting.quantile=2", r"setting.quantile=2 .*\[0, 1\]"),  # used to fail inside kthvalue
        ("montecarlo", "setting.epsilon_rule=median", "setting.epsilon_rule='median'.*nearest, pairwise"),
        ("fullbb", "setting.k=many", "setting.k='many'.*integer.*>= 1"),
        ("fullbb", "setting.rerank_top=0", r"setting.rerank_top=0 .*>= 1"),
        ("fullbb", "setting.bank_cache_mb=-1", r"setting.bank_cache_mb=-1 .*>= 0"),
        ("whitebox", "setting.max_iter=-1", r"setting.max_iter=-1 .*>= 0"),
        ("whitebox", "distance.latent_weight=-1", r"distance.latent_weight=-1 .*>= 0"),
        ("fullbb", "seed=-1", r"seed=-1 .*0 \.\. 4294967295"),
        ("fullbb", "attack.num_queries=some", "attack.num_queries='some'.*integer"),
        ("fullbb", "attack.save_reconstructions=-1", r"attack.save_reconstructions=-1 .*>= 0"),
    ],
)
def test_out_of_range_settings_name_the_key_and_range(trained_root, tmp_path, setting, override, match):
    refused_attack(trained_root, tmp_path / "out", attack_overrides(setting, extra=[override]), ValueError, match)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("data.batch_size=0", r"data.batch_size=0 .*>= 1"),  # used to be the DataLoader's "batch_size should be ..."
        ("data.batch_size=big", "data.batch_size='big'.*integer"),
        ("seed=-1", r"seed=-1 .*0 \.\. 4294967295"),  # used to be "-1 is not in bounds, numpy accepts ..."
        ("data.num_workers=-1", r"data.num_workers=-1 .*>= 0"),
    ],
)
def test_training_values_checked_where_read(tmp_path, override, match):
    refused_training(tmp_path, [override], ValueError, match)


def test_a_malformed_metrics_file_is_skipped_like_invalid_json(tmp_path, caplog):
    from ganleaks.report import gather

    for name, text in (("good", None), ("list", "[0.5, 0.6]"), ("invalid", "{ not json")):
        run = tmp_path / name
        run.mkdir()
        metrics = {"auc": 0.7, "n_members": 2, "n_nonmembers": 2, "setting": "fullbb"}
        (run / "metrics.json").write_text(json.dumps(metrics) if text is None else text)
    caplog.set_level("WARNING", logger="ganleaks.report")
    rows = gather([tmp_path])
    assert [Path(row["run_dir"]).name for row in rows] == ["good"]
    assert "list" in caplog.text and "invalid" in caplog.text


# ------------------------------------------------------------------------------ the command line (issue 15)

DOCUMENTED = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``python train.py ...`` / ``python attack.py ...`` line in the README and docs, as arguments."""
    import re
    import shlex

    commands = []
    for path in DOCUMENTED:
        for line in path.read_text().splitlines():
            for match in re.finditer(r"python (?:train|attack)\.py([^`#|\n&]*)", line):
                text = match.group(1).replace("...", "").rstrip("\\ ")
                try:
                    args = shlex.split(text.replace("$HOME", "/home/user"))
                except ValueError:
                    continue
                args = [a for a in args if not re.fullmatch(r"\[.*\]|<.*>", a)]  # placeholders: [overrides]
                commands.append((f"{path.name}: {match.group(0).strip()}", args))
    return commands


def test_every_documented_command_line_parses():
    """``data.root=~/data/celeba`` (README) failed in Hydra's override parser (LexerNoViableAltException)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    commands = documented_commands()
    assert len(commands) > 20
    for where, args in commands:
        overrides = [a for a in get_args_parser().parse_known_args(args)[0].overrides]
        parser.parse_overrides(overrides)  # raises OverrideParseException on a form Hydra rejects
        assert where


def run_app(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, **(env or {})},
    )


@pytest.mark.slow
def test_an_override_hydra_cannot_parse_points_at_the_quoting_rule(tmp_path):
    result = run_app("train.py", "data=celeba", "data.root=~/data/celeba", f"paths.root={tmp_path}")
    assert result.returncode != 0
    assert "data.root=~/data/celeba" in result.stderr and "quote" in result.stderr.lower()
    assert """'data.root="~/data/celeba"'""" in result.stderr
    assert not list(tmp_path.rglob("*.yaml"))


@pytest.mark.slow
def test_our_errors_print_one_message_and_keep_the_traceback_behind_hydra_full_error(tmp_path):
    args = ("attack.py", "setting=fullbb", f"paths.root={tmp_path}")
    result = run_app(*args)
    assert result.returncode != 0
    assert "does not exist. Train it first" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 6  # vs 10-40 lines
    assert "FileNotFoundError: victim run folder" in result.stderr  # the error itself, on one line
    full = run_app(*args, env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode != 0 and "Traceback" in full.stderr and "does not exist" in full.stderr


def test_bugs_keep_their_traceback_user_errors_do_not():
    from ganleaks.cli import is_user_error

    def raised(function):
        try:
            function()
        except Exception as error:
            return error
        raise AssertionError("did not raise")

    from ganleaks.data.sources import load_image_folder

    manifest = MembershipSplit("x", 8, "f", 0, {"members": [0, 1, 2, 3], "nonmembers": [], "reference": [4, 5]})
    assert is_user_error(raised(lambda: select_queries(manifest, None, 0)))  # AttackConfigError
    assert is_user_error(raised(lambda: load_image_folder("/nonexistent/images")))  # FileNotFoundError, deliberate
    assert not is_user_error(raised(lambda: select_queries(None, None, 0)))  # AttributeError: a bug
    assert not is_user_error(raised(lambda: torch.zeros(2, 3) @ torch.zeros(2, 3)))  # from a dependency
    assert not is_user_error(raised(lambda: int("x")))  # a ValueError not raised by ganleaks


@pytest.mark.slow
@pytest.mark.parametrize("app", ["train.py", "attack.py"])
def test_help_says_what_the_tool_does_with_choices_and_examples(app):
    result = run_app(app, "--help")
    assert result.returncode == 0
    text = result.stdout
    assert "membership" in text.lower()
    for choice in ("model:", "dcgan", "wgangp", "data:", "digits"):
        assert choice in text
    if app == "attack.py":
        for choice in ("setting:", "fullbb", "whitebox", "calibration:", "reference"):
            assert choice in text
    assert "Examples" in text and f"python {app} " in text
    assert "--cfg job" in text  # where the full config dump went
