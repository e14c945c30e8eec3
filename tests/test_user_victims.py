"""Issue 17: attacks on a user's own artefacts, from the command line and from ``ganleaks.audit``.

The user's networks live in ``tests/userpkg`` (outside ``ganleaks``), loaded by ``_target_``.
``LookupGenerator`` is a certain memoriser: its outputs for most latents are rows of its table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ganleaks.errors import AttackConfigError
from ganleaks.victims.external_networks import ExternalModelError
from tests.conftest import compose_app
from tests.userpkg.nets import Discriminator, Generator, LookupGenerator

REPO = Path(__file__).resolve().parents[1]
N = 64  # members and non-members each: the null AUC's sd is ~0.05, the band below is +-0.25
FAST = {
    "whitebox": ["setting.nn_k=256", "setting.max_iter=5"],
    "partialbb": ["setting.nn_k=256", "setting.max_iter=1"],
    "fullbb": ["setting.k=512"],
    "montecarlo": ["setting.k=512"],
    "discriminator": [],
}


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 16, 16), dtype=np.uint8)


def _save_folder(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return folder


def _lookup_weights(path: Path, images: np.ndarray) -> Path:
    generator = LookupGenerator(len(images))
    generator.table.data = torch.from_numpy(images.astype(np.float32) / 127.5 - 1).unsqueeze(1)
    if path.suffix == ".safetensors":
        save_file(generator.state_dict(), str(path))
    else:
        torch.save(generator.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> dict[str, Path]:
    """Members and non-members as PNG folders, lookup generators on the members and on other records."""
    root = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(0)
    members, nonmembers, other = _images(rng, N), _images(rng, N), _images(rng, N)
    files = {
        "root": root,
        "members": _save_folder(root / "train", members),
        "nonmembers": _save_folder(root / "holdout", nonmembers),
        "memoriser": _lookup_weights(root / "G.safetensors", members),
        "memoriser_pt": _lookup_weights(root / "G.pt", members),
        "other": _lookup_weights(root / "G_other.safetensors", other),
    }
    discriminator = Discriminator()
    save_file(discriminator.state_dict(), str(root / "D.safetensors"))
    files["discriminator"] = root / "D.safetensors"
    samples = np.concatenate([members, _images(rng, N)])
    files["samples_png"] = _save_folder(root / "synthetic", samples)
    files["samples_csv"] = root / "synthetic.csv"
    np.savetxt(files["samples_csv"], samples.reshape(len(samples), -1)[:, :32] / 255.0, delimiter=",", fmt="%.6f")
    rows = lambda a: a.reshape(len(a), -1)[:, :32] / 255.0  # noqa: E731
    np.savetxt(root / "train.csv", rows(members), delimiter=",", fmt="%.6f")
    np.savetxt(root / "holdout.csv", rows(nonmembers), delimiter=",", fmt="%.6f")
    return files


def _generator_overrides(files, weights: str = "memoriser") -> list[str]:
    return [
        "victim=generator",
        "victim.generator._target_=tests.userpkg.nets.LookupGenerator",
        f"+victim.generator.rows={N}",
        f"victim.weights={files[weights]}",
        f"victim.latent_dim={N}",
        f"queries.members={files['members']}",
        f"queries.nonmembers={files['nonmembers']}",
    ]


def _attack(root: Path, overrides: list[str]) -> tuple[dict, Path]:
    from ganleaks.config_resolvers import register_resolvers
    from ganleaks.workflows import attack

    register_resolvers()
    cfg, out_dir = compose_app("attack", root, ["distance=l2", *overrides])
    return attack(cfg, out_dir), out_dir


@pytest.mark.parametrize("weights", ["memoriser", "memoriser_pt"])
@pytest.mark.parametrize("setting", ["whitebox", "partialbb", "fullbb"])
def test_memorising_external_generator_is_separated(user_files, tmp_path, setting, weights):
    metrics, out_dir = _attack(
        tmp_path, [f"setting={setting}", *FAST[setting], *_generator_overrides(user_files, weights)]
    )
    assert metrics["auc"] >= 0.9, metrics["auc"]
    ids = (out_dir / "scores.csv").read_text().splitlines()[1].split(",")[0]
    assert re.fullmatch(r"(train|holdout)/\d{4}\.png", ids)  # the user's record ids, not integers
    assert out_dir.parts[-3].startswith("generator-") and out_dir.parts[-4] == "user"


def test_generator_trained_on_other_data_is_not_separated(user_files, tmp_path):
    metrics, _ = _attack(tmp_path, ["setting=fullbb", *FAST["fullbb"], *_generator_overrides(user_files, "other")])
    assert metrics["n_members"] == metrics["n_nonmembers"] == N
    # The band is wide against the interval: the bootstrap interval is narrower than the band.
    low, high = metrics["auc_ci"]
    assert high - low < 0.5
    assert 0.25 <= metrics["auc"] <= 0.75, metrics["auc"]


def test_external_discriminator_attack_runs_and_two_victims_do_not_collide(user_files, tmp_path):
    common = _generator_overrides(user_files)
    discriminator = [
        "+victim.discriminator._target_=tests.userpkg.nets.Discriminator",
        f"victim.discriminator_weights={user_files['discriminator']}",
    ]
    metrics, out_dir = _attack(tmp_path, ["setting=discriminator", *common, *discriminator])
    assert metrics["n_members"] == N and (out_dir / "summary.html").is_file()
    _, other_dir = _attack(
        tmp_path, ["setting=discriminator", *_generator_overrides(user_files, "other"), *discriminator]
    )
    assert other_dir != out_dir


@pytest.mark.parametrize("samples", ["samples_png", "samples_csv"])
@pytest.mark.parametrize("setting", ["fullbb", "montecarlo"])
def test_generated_sample_sets(user_files, tmp_path, samples, setting):
    tabular = samples == "samples_csv"
    queries = (
        [f"queries.members={user_files['root'] / 'train.csv'}",
         f"queries.nonmembers={user_files['root'] / 'holdout.csv'}",
         "queries.value_range=[0,1]", "victim.value_range=[0,1]"]
        if tabular
        else [f"queries.members={user_files['members']}", f"queries.nonmembers={user_files['nonmembers']}"]
    )  # fmt: skip
    metrics, out_dir = _attack(
        tmp_path, [f"setting={setting}", "victim=samples", f"victim.path={user_files[samples]}", *queries]
    )
    assert metrics["auc"] >= 0.9  # the set holds every member
    assert (out_dir / "most_exposed.csv").is_file() and (out_dir / "most_exposed.png").is_file() != tabular


def test_output_range_zero_one_is_converted(user_files, tmp_path):
    # A sigmoid generator declared [0, 1]: its samples reach the distance in [-1, 1], as the queries.
    generator = Generator(latent_size=8, output="sigmoid")
    save_file(generator.state_dict(), str(tmp_path / "G01.safetensors"))
    from ganleaks.victims.external_networks import load_external_generator

    node = {"_target_": "tests.userpkg.nets.Generator", "latent_size": 8, "output": "sigmoid"}
    wrapped = load_external_generator(node, tmp_path / "G01.safetensors", 8, output_range=[0, 1])
    z = torch.randn(16, 8)
    assert torch.allclose(wrapped(z), 2 * generator.eval()(z) - 1, atol=1e-6)
    # Declared [-1, 1] instead, the attack refuses it against queries that use negative values.
    overrides = [
        "setting=fullbb",
        *FAST["fullbb"],
        "victim=generator",
        "victim.generator._target_=tests.userpkg.nets.Generator",
        "+victim.generator.latent_size=8",
        "+victim.generator.output=sigmoid",
        f"victim.weights={tmp_path / 'G01.safetensors'}",
        "victim.latent_dim=8",
        f"queries.members={user_files['members']}",
        f"queries.nonmembers={user_files['nonmembers']}",
    ]
    with pytest.raises(ValueError, match="victim.output_range"):
        _attack(tmp_path, overrides)
    metrics, _ = _attack(tmp_path, [*overrides, "victim.output_range=[0,1]"])
    assert metrics["n_members"] == N


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_pickled_code_refused_with_nothing_executed(user_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"table": _Payload()}, tmp_path / "evil.pt")
    overrides = ["setting=whitebox", *FAST["whitebox"], *_generator_overrides(user_files)]
    overrides = [o for o in overrides if not o.startswith("victim.weights")] + [
        f"victim.weights={tmp_path / 'evil.pt'}"
    ]
    with pytest.raises(ExternalModelError, match="Nothing was executed"):
        _attack(tmp_path, overrides)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (["victim.latent_dim=7"], ExternalModelError, "victim.latent_dim"),
        (["queries.resolution=8"], ExternalModelError, "queries.resolution=16"),  # shape mismatch
        (["setting=whitebox", "victim=samples"], AttackConfigError, "setting=fullbb or setting=montecarlo"),
        (["setting=discriminator"], AttackConfigError, "victim.discriminator._target_"),
        (["calibration=reference"], AttackConfigError, "calibration=samples"),
    ],
)
def test_mismatches_refused_early(user_files, tmp_path, change, error, message):
    overrides = ["setting=fullbb", *_generator_overrides(user_files)]
    if "victim=samples" in change:
        overrides = ["victim=samples", f"victim.path={user_files['samples_png']}",
                     f"queries.members={user_files['members']}",
                     f"queries.nonmembers={user_files['nonmembers']}"]  # fmt: skip
    with pytest.raises(error, match=re.escape(message)):
        _attack(tmp_path, [*overrides, *change])
    assert not (tmp_path / "attack").exists() or not list((tmp_path / "attack").rglob("scores.csv"))


def test_overlapping_queries_and_wrong_value_range_refused(user_files, tmp_path):
    overrides = ["setting=fullbb", *FAST["fullbb"], *_generator_overrides(user_files)]
    same = [o for o in overrides if not o.startswith("queries.nonmembers")] + [
        f"queries.nonmembers={user_files['members']}"
    ]
    with pytest.raises(ValueError, match="both a member and a non-member"):
        _attack(tmp_path, same)
    csv_queries = [f"queries.members={user_files['root'] / 'train.csv'}",
                   f"queries.nonmembers={user_files['root'] / 'holdout.csv'}"]  # fmt: skip
    with pytest.raises(ValueError, match="queries.value_range"):  # [0, 1] floats read as [-1, 1]: refused as [0, 1]
        _attack(tmp_path, ["setting=fullbb", "victim=samples", f"victim.path={user_files['samples_csv']}",
                           "victim.value_range=[0,1]", *csv_queries])  # fmt: skip


def test_queries_beside_a_run_victim_refused(tmp_path):
    with pytest.raises(AttackConfigError, match="victim=samples"):
        _attack(tmp_path, ["setting=fullbb", "queries.members=train/", "queries.nonmembers=holdout/"])


def test_summary_page_holds_the_metrics(user_files, tmp_path):
    metrics, out_dir = _attack(tmp_path, ["setting=fullbb", *FAST["fullbb"], *_generator_overrides(user_files)])
    page = (out_dir / "summary.html").read_text()
    recorded = json.loads((out_dir / "metrics.json").read_text())
    assert recorded["auc"] == metrics["auc"]
    assert f"{recorded['auc']:.3f}" in page and f"{recorded['auc_ci'][0]:.3f}" in page
    assert f"{recorded['n_members']} members" in page
    assert recorded["privacy"] == "unknown" and "How this model was trained is not known here" in page


def test_python_api_with_modules_arrays_and_paths(user_files, tmp_path):
    import ganleaks

    members = np.stack([np.asarray(Image.open(p)) for p in sorted(user_files["members"].glob("*.png"))])
    nonmembers = np.stack([np.asarray(Image.open(p)) for p in sorted(user_files["nonmembers"].glob("*.png"))])
    generator = LookupGenerator(N)
    generator.table.data = torch.from_numpy(members.astype(np.float32) / 127.5 - 1).unsqueeze(1)
    result = ganleaks.audit(
        "whitebox",
        generator=generator,
        latent_dim=N,
        members=members,
        nonmembers=nonmembers,
        **{"setting.nn_k": 256, "setting.max_iter": 5, "trainer.accelerator": "cpu"},
    )
    assert result.metrics["auc"] >= 0.9 and result.out_dir is None
    assert len(result.metrics["auc_ci"]) == 2
    assert len(result.scores) == 2 * N and result.scores[0]["id"].split(":")[0] in ("members", "nonmembers")
    assert result.to_pandas().shape[0] == 2 * N
    out = tmp_path / "run"
    written = ganleaks.audit(
        "fullbb",
        samples=user_files["samples_png"],
        members=user_files["members"],
        nonmembers=user_files["nonmembers"],
        out_dir=out,
        **{"setting.k": 512},
    )
    assert written.metrics["auc"] >= 0.9 and {"scores.csv", "summary.html", "most_exposed.csv"} <= {
        p.name for p in out.iterdir()
    }
    discriminated = ganleaks.audit(
        "discriminator",
        discriminator=Discriminator(),
        members=user_files["members"],
        nonmembers=user_files["nonmembers"],
    )
    assert discriminated.metrics["n_members"] == N


def test_command_line_entry_point(user_files, tmp_path):
    """The issue's command through attack.py itself (Hydra's real entry point)."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "attack.py"),
            f"paths.root={tmp_path}",
            "setting=fullbb",
            "setting.k=512",
            "trainer.accelerator=cpu",
            *_generator_overrides(user_files),
        ],  # fmt: skip
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AUC" in result.stdout
    found = list((tmp_path / "attack" / "user").rglob("summary.html"))
    assert len(found) == 1


def _readme_example() -> tuple[str, str]:
    """The command and the Python block of the README's "Audit your own generator or synthetic data"."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Audit your own generator or synthetic data") :]
    section = section[: section.index("\n## ", 5)]
    command = re.search(r"```bash\n(python attack\.py [^\n]+)\n```", section).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return command, code


def test_readme_worked_example_runs(user_files, tmp_path, monkeypatch):
    import shlex
    import shutil

    for name in ("train", "holdout"):
        shutil.copytree(user_files["members" if name == "train" else "nonmembers"], tmp_path / name)
    shutil.copytree(user_files["samples_png"], tmp_path / "synthetic")
    command, code = _readme_example()
    args = shlex.split(command)[2:]
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "attack.py"),
            *args,
            f"paths.root={tmp_path / 'outputs'}",
            "trainer.accelerator=cpu",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AUC 1.000" in result.stdout  # the sample set holds every member
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the documented example itself
    assert namespace["result"].metrics["auc"] >= 0.9
    assert (tmp_path / "audit" / "summary.html").is_file() and len(namespace["result"].most_exposed) == 20


def test_python_api_with_sample_sets_as_arrays(user_files):
    """A generated sample set and a calibration sample set given as arrays (not folders)."""
    import ganleaks

    def stack(folder):
        return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])

    members, nonmembers = stack(user_files["members"]), stack(user_files["nonmembers"])
    result = ganleaks.audit(
        "fullbb",
        samples=np.concatenate([members, members]),  # a "generator" that reproduces its members
        calibration=nonmembers[::-1].copy(),
        members=user_files["members"],
        nonmembers=user_files["nonmembers"],
    )
    assert result.metrics["auc"] >= 0.9 and result.metrics["calibration"] == "samples"
    assert len(result.scores) == 2 * N
