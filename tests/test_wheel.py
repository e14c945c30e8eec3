"""The built package works outside the checkout: ``pip install .`` (not editable), then the console
scripts and ``ganleaks.audit`` from any folder, with the config folder shipped in the wheel.

The wheel is built offline as ``pip install .`` builds it (an sdist, then the wheel from it), from a
copy of the sources (no ``build/`` or ``*.egg-info`` left in the checkout), and installed into a new
virtual environment that sees this environment's dependencies (a ``.pth`` line naming this
environment's site-packages) but not its editable ganleaks (that ``.pth`` file is not processed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import TINY

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# What the build reads (pyproject.toml names the readme; conf/ is the package ganleaks.conf).
SOURCES = ("pyproject.toml", "README.md", "ganleaks", "conf")
# The oldest setuptools that builds a wheel without the `wheel` package (the dev extra requires it).
SETUPTOOLS = (70, 1)


def run(args: list, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run ``args``; fail with the command's output unless it exits 0; its stdout."""
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited {result.returncode}:\n{output[-4000:]}"
    return result.stdout


def build_wheel(tmp: Path) -> Path:
    """Build the sdist from a copy of the sources, then the wheel from the sdist, offline."""
    have = tuple(int(part) for part in version("setuptools").split(".")[:2])
    assert have >= SETUPTOOLS, (
        f"setuptools {version('setuptools')} cannot build the wheel without the `wheel` package: "
        f"pip install -e '.[dev]' installs setuptools>={'.'.join(map(str, SETUPTOOLS))}"
    )
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # pyproject.toml's build backend, called as `python -m build` would (build is not a dependency).
    code = "import sys, setuptools.build_meta as backend; backend.build_sdist(sys.argv[1])"
    run([sys.executable, "-c", code, tmp / "sdist"], cwd=source, env=offline)
    (sdist,) = (tmp / "sdist").glob("ganleaks-*.tar.gz")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "wheels", sdist],
        cwd=tmp, env=offline)  # fmt: skip
    (wheel,) = (tmp / "wheels").glob("ganleaks-*.whl")
    return wheel


def check_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"ganleaks"}, sorted(tops)
    packages = sorted(init.parent.relative_to(REPO).as_posix() for init in (REPO / "ganleaks").rglob("__init__.py"))
    missing = [package.replace("/", ".") for package in packages if f"{package}/__init__.py" not in names]
    assert not missing, f"packages missing from the wheel (list them in pyproject.toml's [tool.setuptools]): {missing}"
    conf = REPO / "conf"
    configs = [f"ganleaks/conf/{path.relative_to(conf).as_posix()}" for path in conf.rglob("*.yaml")]
    absent = sorted(config for config in configs if config not in names)
    assert configs and not absent, f"config files missing from the wheel: {absent}"


def new_environment(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    """A virtual environment seeing this one's dependencies only: its python, its scripts folder, its env vars."""
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    code = "import json, sysconfig; print(json.dumps([sysconfig.get_path('purelib'), sysconfig.get_path('scripts')]))"
    purelib, scripts = (Path(path).resolve() for path in json.loads(run([python, "-c", code], cwd=tmp)))
    # Plain path lines: the .pth files in those folders (the editable ganleaks's finder) are not processed.
    ours = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (purelib / "ganleaks_test_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{scripts}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(env_dir),
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
    )
    return purelib, scripts, env


AUDIT = """
import json
import numpy as np
import ganleaks

rng = np.random.default_rng(0)
members = rng.uniform(-1, 1, size=(16, 1, 16, 16)).astype(np.float32)
nonmembers = rng.uniform(-1, 1, size=(16, 1, 16, 16)).astype(np.float32)
# A "generator" that reproduces its members, with a little noise.
samples = np.clip(np.concatenate([members] * 4) + rng.normal(0, 0.05, size=(64, 1, 16, 16)), -1, 1)
result = ganleaks.audit(
    "fullbb", samples=samples.astype(np.float32), members=members, nonmembers=nonmembers, distance="l2",
    **{"setting.k": 64, "trainer.accelerator": "cpu"},
)
print(json.dumps({"auc": result.metrics["auc"], "ganleaks": ganleaks.__file__}))
"""


def test_installed_wheel_runs_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    check_wheel_contents(wheel)
    purelib, scripts, env = new_environment(tmp_path)
    python = scripts / "python"
    run([python, "-m", "pip", "install", "--no-deps", "--force-reinstall", wheel], cwd=tmp_path, env=env)

    work = tmp_path / "work"  # a folder outside the checkout, as a user's
    work.mkdir()
    code = "import json, ganleaks, ganleaks.config_dir as c; print(json.dumps([ganleaks.__file__, str(c.CONF_DIR)]))"
    package, conf = (Path(path).resolve() for path in json.loads(run([python, "-c", code], cwd=work, env=env)))
    assert package.parent == purelib / "ganleaks", f"ganleaks imported from {package}, not from the wheel"
    assert conf == purelib / "ganleaks" / "conf"

    help_text = run([scripts / "ganleaks-attack", "--help"], cwd=work, env=env)
    assert "== Choices" in help_text and "fullbb" in help_text, help_text

    run([scripts / "ganleaks-train", *TINY], cwd=work, env=env)
    (train_log,) = (work / "outputs" / "train").rglob("train.log")  # the job keeps its name: train
    assert (train_log.parent / ".hydra" / "config.yaml").is_file()

    attack = [scripts / "ganleaks-attack", "setting=fullbb", "setting.k=256", "distance=l2", *TINY]
    output = run(attack, cwd=work, env=env)
    assert "AUC " in output, output
    (metrics_file,) = (work / "outputs" / "attack").rglob("metrics.json")
    assert (metrics_file.parent / "scores.csv").is_file() and (metrics_file.parent / "attack.log").is_file()
    assert 0 <= json.loads(metrics_file.read_text())["auc"] <= 1
    hydra = (metrics_file.parent / ".hydra" / "hydra.yaml").read_text()
    assert f"path: {purelib / 'ganleaks' / 'conf'}" in hydra, "the attack did not read the packaged config"

    audited = json.loads(run([python, "-c", textwrap.dedent(AUDIT)], cwd=work, env=env).splitlines()[-1])
    assert Path(audited["ganleaks"]).resolve().parent == purelib / "ganleaks"
    assert audited["auc"] >= 0.9, audited
