"""Part 6 and 7 of issue 23: a Python API with no surprises, and messages that work where they are read.

* ``ganleaks.audit`` gives the user's modules back as they were passed, refuses an ``out_dir`` that
  already holds files unless ``overwrite=True``, and refuses unknown keyword arguments and config keys
  naming the closest valid one;
* every ``key=value`` a message or ``--help`` tells the user to type names a key the composed config
  has (``+key=`` one it has not), every ``group=option`` an option that exists; the defaults ``--help``
  states are the config's; a missing mandatory key is one line; run-folder hints name how this run
  was started (command line, multirun, API).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
N = 8  # members and non-members


# --- the static check: every key a message or --help names exists ----------------------------------------

#: a dotted ``key=`` / ``+key=`` token, not part of a path or a longer word
KEY_TOKEN = re.compile(r"(?<![\w./\-{+])(\+?)([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+)=")
GROUPS = ("setting", "victim", "calibration", "data", "model", "privacy", "distance", "trainer", "logger")
GROUP_TOKEN = re.compile(r"(?<![\w./\-{+])(" + "|".join(GROUPS) + r")=([a-z_][a-z0-9_]*)\b")


def _compose(name: str, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    from ganleaks.config_resolvers import register_resolvers

    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


def _keys(node, prefix: str = "") -> set[str]:
    """Every dotted key below ``node``; a null node ``a.b`` adds ``a.b.*`` (its children take '+' or not)."""
    keys: set[str] = set()
    if prefix and node._is_none():
        keys.add(prefix + "*")
    if not isinstance(node, DictConfig) or node._is_missing() or node._is_none():
        return keys
    for key in node.keys():
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        keys |= _keys(node._get_node(key), dotted + ".")
    return keys


def _options(group: str) -> set[str]:
    return {p.stem for p in (CONF / group).glob("*.yaml")}


@pytest.fixture(scope="module")
def config_keys() -> set[str]:
    """Every key of the attack and train configs, with each option of each group chosen in turn."""
    keys: set[str] = set()
    for name, groups in (
        ("attack", ("victim", "calibration", "data", "setting", "model", "privacy", "distance", "audit", "canaries")),
        ("train", ("data", "model", "privacy", "canaries")),
    ):
        keys |= _keys(_compose(name, []))
        for group in groups:
            for option in _options(group):
                keys |= _keys(_compose(name, [f"{group}={option}"]))
    return keys


def _message_texts() -> list[tuple[str, str]]:
    """(where, text) of every string constant in the package, and of the --help texts."""
    texts = []
    for path in sorted((REPO / "ganleaks").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts joined, placeholders as {}
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
                texts.append((f"{path.relative_to(REPO)}:{node.lineno}", text))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append((f"{path.relative_to(REPO)}:{node.lineno}", node.value))
    for path in sorted((CONF / "hydra" / "help").glob("*.yaml")):
        texts.append((str(path.relative_to(REPO)), path.read_text()))
    return texts


def test_every_key_a_message_or_help_names_exists(config_keys):
    wrong = []
    for where, text in _message_texts():
        for plus, key in KEY_TOKEN.findall(text):
            if key.startswith("hydra.") or key.split(".")[0] in ("self", "cfg", "os", "np", "torch"):
                exists = key.startswith("hydra.") and key in config_keys
                if key.startswith("hydra.") and not exists:
                    wrong.append(f"{where}: {plus}{key}= does not exist")
                continue
            parts = key.split(".")
            if any(".".join(parts[:i]) + ".*" in config_keys for i in range(1, len(parts))):
                continue  # below a null node: with or without '+'
            if plus and key in config_keys:
                wrong.append(f"{where}: +{key}= adds a key that exists (Hydra refuses '+' for it: drop the '+')")
            elif not plus and key not in config_keys:
                wrong.append(f"{where}: {key}= is not a config key (a new key needs '+{key}=')")
        for group, option in GROUP_TOKEN.findall(text):
            if option not in _options(group) and option not in ("null", "none", "x", "k"):
                wrong.append(f"{where}: {group}={option} is not an option of conf/{group}/")
    assert not wrong, "\n".join(wrong)


def test_the_key_check_catches_what_it_should(config_keys):
    """The static check itself: a key that exists passes, a misspelled one and a '+' on an existing one do not."""
    assert {"setting.k", "attack.batch_size", "victim.path", "hydra.run.dir", "hydra.sweep.dir"} <= config_keys
    assert "victim.generator.width" not in config_keys and "setting.kk" not in config_keys
    assert KEY_TOKEN.findall("add +victim.generator.width=64, or setting.k=5, not /a/b.c=1") == [
        ("+", "victim.generator.width"),
        ("", "setting.k"),
    ]


# --- --help states the config's defaults --------------------------------------------------------------------

HELP_DEFAULT = re.compile(r"^\s+([a-z_]+(?:\.[a-z_]+)*)=([0-9][0-9.e-]*|[a-z_]+)\s{2,}", re.MULTILINE)


@pytest.mark.parametrize("app", ["attack", "train"])
def test_help_states_the_defaults_of_the_config(app):
    """`--help`'s "Main keys" list ``key=value`` as the default: each value is the composed config's."""
    text = (CONF / "hydra" / "help" / f"{app}.yaml").read_text()
    stated = HELP_DEFAULT.findall(text)
    assert len(stated) >= 4, stated
    wrong = []
    for key, value in stated:
        cfg = _compose(app, ["setting=whitebox"] if key == "setting.max_iter" else [])  # whitebox's iterations
        actual = OmegaConf.select(cfg, key, default="<absent>")
        if str(actual) != value:
            wrong.append(f"--help says {key}={value}, the config has {actual}")
    for setting, key, value in re.findall(r"([a-z]+): setting\.([a-z_]+)=([0-9]+) by default", text):
        actual = OmegaConf.select(_compose(app, [f"setting={setting}"]), f"setting.{key}")
        if str(actual) != value:
            wrong.append(f"--help says setting={setting} has {key} {value}, the config has {actual}")
    assert not wrong, "\n".join(wrong)


# --- missing mandatory keys: one line ------------------------------------------------------------------------


def _cli(script: str, args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *args, f"paths.root={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )


def _attack(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return _cli("attack.py", args, tmp_path, **env)


def _train(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return _cli("train.py", args, tmp_path)


def test_a_missing_mandatory_key_is_one_line_naming_it(tmp_path):
    result = _attack(["victim=samples", "setting=fullbb"], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "AssertionError" not in result.stderr, result.stderr[-2000:]
    assert "victim.path is not set" in result.stderr and "victim.path=synthetic/" in result.stderr


def test_a_missing_mandatory_key_in_a_multirun_is_one_line(tmp_path):
    result = _attack(["-m", "victim=samples", "setting=fullbb"], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "victim.path is not set" in result.stderr


def test_a_misspelled_key_on_the_command_line_names_the_closest_not_plus(tmp_path):
    """Hydra alone advises '+setting.kk=5' for a typo: a key nothing reads. Ours names setting.k first."""
    result = _attack(["setting=fullbb", "setting.kk=5"], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "did you mean 'setting.k'?" in result.stderr and "+setting.kk=5" in result.stderr


def test_a_key_of_a_group_option_not_chosen_yet_says_to_choose_it_first(tmp_path):
    """A study's sweep selects model=dpgan (and with it privacy=dp) after the command line's keys are read: a bare
    privacy.noise_multiplier is refused by Hydra; the message names the option that has the key."""
    result = _train(["-m", "experiment=cpu_dp_controls_train", "privacy.noise_multiplier=0.0"], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "it is a key of privacy=dp" in result.stderr
    assert "privacy=dp privacy.noise_multiplier=0.0" in result.stderr
    chosen = _attack(["setting=whitebox", "setting.k=100"], tmp_path)
    assert "setting.k is not a key of setting=whitebox: it is a key of setting=domias / setting=fullbb" in chosen.stderr


def test_hydra_full_error_still_shows_the_traceback(tmp_path):
    result = _attack(["victim=samples", "setting=fullbb"], tmp_path, HYDRA_FULL_ERROR="1")
    assert result.returncode == 1 and "Traceback" in result.stderr and "victim.path" in result.stderr


def test_missing_key_message_in_each_launch_mode():
    from omegaconf.errors import MissingMandatoryValue

    from ganleaks.cli import missing_key
    from ganleaks.errors import launched_by, missing_key_message

    cfg = OmegaConf.create({"data": {"root": "???"}})
    with pytest.raises(MissingMandatoryValue) as caught:
        cfg.data.root  # noqa: B018
    assert missing_key(caught.value) == "data.root"
    assert missing_key_message("data.root").endswith("add data.root=/path/to/images")
    with launched_by("api"):
        assert missing_key_message("victim.path").endswith("add **{\"victim.path\": 'synthetic/'}")


# --- run-folder hints name how the run was started ------------------------------------------------------------


def test_run_folder_hints_follow_the_launch(tmp_path):
    import json

    from ganleaks.errors import AttackConfigError, launched_by
    from ganleaks.orchestration.plan import RESUME_KEY_NAME, check_resumable

    (tmp_path / RESUME_KEY_NAME).write_text(json.dumps({"seed": 0}))
    said = {}
    for how in ("run", "multirun", "api"):
        with launched_by(how), pytest.raises(AttackConfigError) as caught:
            check_resumable(tmp_path, {"seed": 1})
        said[how] = str(caught.value)
    assert "hydra.run.dir=" in said["run"]
    assert "hydra.sweep.dir=" in said["multirun"] and "hydra.run.dir" not in said["multirun"]
    assert "out_dir=" in said["api"] and "hydra" not in said["api"]


def test_no_error_names_hydra_run_dir_literally():
    """Errors name the run folder through ganleaks.errors.another_run_folder (it knows the launch), unless
    they say it for ``python train.py`` (training runs only from the command line)."""
    found = []
    for path in sorted((REPO / "ganleaks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = ast.unparse(node.exc)
                if "hydra.run.dir" in text and "python train.py" not in text:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, found


# --- the Python API -------------------------------------------------------------------------------------------


class Generator(nn.Module):
    """A small generator with a batch norm, a dropout, and a frozen part, over 8x8 grey images."""

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 4
        self.body = nn.Sequential(nn.Linear(4, 32), nn.BatchNorm1d(32), nn.Dropout(0.1), nn.Linear(32, 64))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)

    def forward(self, z):
        return torch.tanh(self.body(self.frozen(z))).view(-1, 1, 8, 8)


def _records(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(N, 1, 8, 8)).astype(np.float32)


FAST = {"setting.k": 64, "trainer.accelerator": "cpu"}


def test_modules_come_back_as_they_were_passed():
    import ganleaks

    generator = Generator().train()
    generator.body[1].eval()  # a mixed state: one submodule in eval mode
    modes = {name: m.training for name, m in generator.named_modules()}
    grads = {name: p.requires_grad for name, p in generator.named_parameters()}
    result = ganleaks.audit("fullbb", generator=generator, members=_records(0), nonmembers=_records(1), **FAST)
    assert result.metrics["n_members"] == N
    assert {name: m.training for name, m in generator.named_modules()} == modes
    assert {name: p.requires_grad for name, p in generator.named_parameters()} == grads


def test_modules_come_back_as_they_were_passed_when_the_audit_fails():
    import ganleaks

    class OutOfRange(Generator):
        def forward(self, z):
            return 3 * super().forward(z)  # outside the declared output_range [-1, 1]: refused by the probe

    generator = OutOfRange().train()
    with pytest.raises(ValueError, match="output_range"):  # refused after the attack wrapped (and froze) it
        ganleaks.audit("fullbb", generator=generator, members=_records(0), nonmembers=_records(1), **FAST)
    assert generator.training and all(m.training for m in generator.modules())
    assert generator.body[0].weight.requires_grad and not generator.frozen.weight.requires_grad


def test_module_states_put_back_devices_modes_and_grads():
    from ganleaks.api import ModuleStates

    generator = Generator().train()
    states = ModuleStates([generator])
    generator.eval().requires_grad_(False)
    generator.body[1].running_mean = generator.body[1].running_mean.clone()
    states.restore()
    assert all(m.training for m in generator.modules())
    assert generator.body[0].weight.requires_grad and not generator.frozen.weight.requires_grad


def test_an_out_dir_holding_files_is_refused_unless_overwrite(tmp_path):
    import ganleaks

    out = tmp_path / "notebook"
    out.mkdir()
    (out / "my_notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="my_notes.txt.*overwrite=True"):
        ganleaks.audit("fullbb", samples=_records(2), members=_records(0), nonmembers=_records(1), out_dir=out, **FAST)
    assert sorted(p.name for p in out.iterdir()) == ["my_notes.txt"]  # nothing written
    result = ganleaks.audit(
        "fullbb", samples=_records(2), members=_records(0), nonmembers=_records(1), out_dir=out, overwrite=True, **FAST
    )
    assert (out / "my_notes.txt").read_text() == "mine" and (out / "scores.csv").is_file()
    assert result.out_dir == out
    with pytest.raises(FileExistsError, match="already holds.*metrics.json"):  # a second audit: said, not silent
        ganleaks.audit("fullbb", samples=_records(2), members=_records(0), nonmembers=_records(1), out_dir=out, **FAST)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(FileExistsError, match="is a file"):
        ganleaks.audit(
            "fullbb", samples=_records(2), members=_records(0), nonmembers=_records(1), out_dir=tmp_path / "a_file"
        )


def test_an_out_dir_with_tilde_is_in_the_home_folder(tmp_path, monkeypatch):
    """out_dir="~/audits/run1" is the home folder's, not a folder named ~ in the working directory."""
    import ganleaks

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = ganleaks.audit(
        "fullbb", samples=_records(2), members=_records(0), nonmembers=_records(1), out_dir="~/audits/run1", **FAST
    )
    assert result.out_dir == tmp_path / "home/audits/run1" and (result.out_dir / "scores.csv").is_file()
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize(
    ("keyword", "closest"),
    [
        ("latent_dims", "latent_dim"),
        ("settings", "setting"),
        ("outdir", "out_dir"),
        ("member", "members"),
        ("overwrites", "overwrite"),
        ("distances", "distance"),
        ("seeds", "seed"),
    ],
)
def test_an_unknown_keyword_is_a_type_error_naming_the_closest(keyword, closest):
    import ganleaks

    with pytest.raises(TypeError, match=f"{keyword!r}.*did you mean {closest!r}"):
        ganleaks.audit("fullbb", samples=_records(2), members=_records(0), nonmembers=_records(1), **{keyword: 1})


def test_an_unknown_dotted_key_is_a_type_error_naming_the_closest(tmp_path):
    import ganleaks

    kwargs = dict(samples=_records(2), members=_records(0), nonmembers=_records(1))
    with pytest.raises(TypeError, match="'setting.kk'.*did you mean 'setting.k'"):
        ganleaks.audit("fullbb", **kwargs, **{"setting.kk": 64})
    with pytest.raises(TypeError, match="'attack.batchsize'.*did you mean 'attack.batch_size'"):
        ganleaks.audit("fullbb", **kwargs, **{"attack.batchsize": 64})
    with pytest.raises(TypeError, match="already in the config"):
        ganleaks.audit("fullbb", **kwargs, **{"+setting.k": 64})


def test_valid_keywords_still_work():
    """A top-level key (seed=), a group choice (distance=) and a new key with '+' are accepted."""
    import ganleaks

    result = ganleaks.audit(
        "fullbb",
        samples=_records(2),
        members=_records(0),
        nonmembers=_records(1),
        seed=3,
        distance="l2",
        **{**FAST, "+setting.note": "mine"},
    )
    assert result.metrics["n_members"] == N
    assert "AUC" in str(result) and "[" in str(result)  # the AUC with its interval


def test_api_errors_say_their_hints_as_audit_arguments():
    from ganleaks.api import api_hint

    assert api_hint("load the queries at (queries.resolution=8, queries.channels=1)") == (
        ' [in ganleaks.audit: **{"queries.resolution": 8, "queries.channels": 1}]'
    )
    assert api_hint("give the samples (victim.path=DIR), or set victim.output_range=[0,1].") == (
        " [in ganleaks.audit: samples='DIR', output_range=[0,1]]"
    )
    assert api_hint("add +victim.generator.width=64 or use another hydra.run.dir=DIR") == (
        ' [in ganleaks.audit: **{"+victim.generator.width": 64}]'
    )
    assert api_hint("nothing to set here") == ""


def test_a_float64_generator_is_told_about_dtype_not_latent_dim():
    from ganleaks.victims.external_networks import ExternalModelError, _find_latent_layout

    with pytest.raises(ExternalModelError, match=r"float32.*generator\.float\(\)") as caught:
        _find_latent_layout(Generator().double(), 4, "victim.generator")
    assert "Set victim.latent_dim" not in str(caught.value)


def test_a_module_on_the_meta_device_is_refused_in_words():
    import ganleaks

    with pytest.raises(ValueError, match="meta device.*load its weights first"):
        ganleaks.audit("fullbb", generator=Generator().to("meta"), members=_records(0), nonmembers=_records(1))


def test_a_module_class_instead_of_a_module_says_so():
    import ganleaks

    with pytest.raises(TypeError, match="the class Generator, not a module: pass an instance"):
        ganleaks.audit("fullbb", generator=Generator, members=_records(0), nonmembers=_records(1))


def test_an_api_run_records_its_call_and_prints_its_verdict(tmp_path):
    """summary.html names the ganleaks.audit call that made the run; str(result) gives the verdict first."""
    import ganleaks

    generator = torch.Generator().manual_seed(0)
    members, nonmembers = (torch.rand(12, 1, 16, 16, generator=generator) * 2 - 1 for _ in range(2))
    samples = torch.cat([members, torch.rand(20, 1, 16, 16, generator=generator) * 2 - 1])
    result = ganleaks.audit(
        "fullbb", samples=samples, members=members, nonmembers=nonmembers, out_dir=tmp_path / "a", distance="l2"
    )
    page = (tmp_path / "a" / "summary.html").read_text()
    assert "ganleaks.audit(&#x27;fullbb&#x27;, samples=&lt;Tensor 32x1x16x16&gt;" in page
    first = str(result).splitlines()[0]
    assert first.startswith(result.verdict["status"].upper())  # the verdict, before any number
    assert "AUC" in str(result).splitlines()[1] and "[" in str(result).splitlines()[1]  # with its interval
