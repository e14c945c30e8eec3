"""Dry runs of every study in conf/experiment: the sweeps expand to the expected jobs, and every
attack job reads a victim (and a reference model) that a train job of the same study writes."""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

import ganleaks  # noqa: F401  (registers the resolvers conf/ reads, as train.py and attack.py do)

CONF = Path(__file__).resolve().parents[1] / "conf"
ROLES = {"train": "train", "reference": "train", "attack": "attack"}  # experiment suffix -> Hydra app
STUDY_ARGS = {"celeba": ["data.root=/data/celeba"]}  # what every command of a study needs on the command line

# (train jobs, reference jobs, attack jobs) per study; changing a study's grid changes these.
EXPECTED_JOBS = {
    "cpu_size": (3 * 4, 3, 3 * 4 * 5 * 2),
    "cpu_dp": (5, 1, 5 * 5 * 2),
    "cpu_k": (2 * 2, 1, 2 * 2 * 2 * 6 * 2),
    "cpu_audit": (4 * 2, 1, 4 * 2),  # sigma x canary kind; the reference model; the discriminator audits
    "cpu_audit_nodp": (2, 1, 2),
    "cpu_dp_controls": (3 * 3, 3, 3 * 3 * 2 * 2),  # sigma 0 / 1 / 2 x seed; a reference per seed; x 2 settings x 2
    "cpu_dp_controls_nodp": (5 * 3, 3, 5 * 3 * 2 * 2),  # stopping point x seed
    "celeba_size": (4 * 8, 4, 4 * 8 * 5 * 2),
    "celeba_dp": (5, 2, 5 * 5 * 2),
    "celeba_k": (3 * 2, 1, 3 * 2 * 2 * 4 * 2),
}
PARSER = OverridesParser.create()


def studies() -> list[str]:
    names = {path.stem.rsplit("_", 1)[0] for path in (CONF / "experiment").glob("*.yaml")}
    return sorted(names)


def study_args(study: str) -> list[str]:
    return STUDY_ARGS.get(study.split("_")[0], [])


@functools.cache
def compose_cached(app: str, overrides: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name=app, overrides=list(overrides), return_hydra_config=True)


def expand(app: str, experiment: str, args: list[str]) -> list[list[str]]:
    """The override lists of a multirun's jobs, as Hydra's BasicSweeper builds them."""
    cfg = compose_cached(app, (f"experiment={experiment}", *args))
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True) or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + [f"experiment={experiment}", *args]
    (batch,) = BasicSweeper.split_arguments(PARSER.parse_overrides(arguments), None)
    return batch


# Swept values filled into a per-composition template; every other override is composed.
TEMPLATED = {"data.train_size", "seed", "privacy.noise_multiplier", "setting.k"}


def is_composed(override: str) -> bool:
    return override.split("=", 1)[0] not in TEMPLATED


FIELDS = {  # what the checks read from a job's config
    "output_dir": "${hydra.sweep.dir}/${hydra.sweep.subdir}",
    "victim": "${oc.select:victim.run_dir,''}",
    "reference": "${oc.select:calibration.reference_run_dir,''}",
    "calibrated": "${oc.select:calibration.enabled,''}",
    "reference_model": "${oc.select:setting.reference_model,''}",
    "setting": "${oc.select:setting.name,''}",
    "part": "${data.part}",
    "model": "${model.name}",
    "private": "${privacy.enabled}",
    "noise": "${oc.select:privacy.noise_multiplier,''}",
    # what makes two runs' membership splits identical (train_size only matters for victims)
    "split": "${data.name}|${data.nonmember_size}|${data.reference_size}|${seed}",
    "members": "${data.train_size}",
}


@functools.cache
def job_template(app: str, groups: tuple[str, ...], value_keys: tuple[str, ...]) -> dict[str, str]:
    """FIELDS of the config composed for ``groups``, with a placeholder for every TEMPLATED value.

    Composing each of several hundred jobs would take minutes; a job's fields are this template
    with its values filled in (``test_templates_match_full_composition`` checks it against Hydra).
    """
    cfg = copy.deepcopy(compose_cached(app, groups))
    for key in value_keys:
        OmegaConf.update(cfg, key, f"<{key}>", merge=True)
    # The job's overrides as Hydra hands them to it: a built-in victim's attack folder names the swept
    # keys (conf/victim/run.yaml's variant). Their placeholder is a plain word, as the numbers they stand for.
    cfg.hydra.overrides.task = [*cfg.hydra.overrides.task, *(f"{key}=__{key}__" for key in value_keys)]
    OmegaConf.update(cfg, "_fields", dict(FIELDS), force_add=True)
    fields = OmegaConf.to_container(cfg._fields, resolve=True)
    fields["source"] = OmegaConf.to_yaml(cfg.data.source, resolve=True)
    return {key: str(value) for key, value in fields.items()}


def job_fields(app: str, overrides: list[str]) -> dict[str, str]:
    """The FIELDS (plus the data source) of one job of a multirun."""
    groups = tuple(sorted(o for o in overrides if is_composed(o)))
    values = PARSER.parse_overrides([o for o in overrides if not is_composed(o)])
    template = job_template(app, groups, tuple(sorted(v.key_or_group for v in values)))
    fields = dict(template)
    for value in values:
        for key in fields:
            for placeholder in (f"<{value.key_or_group}>", f"__{value.key_or_group}__"):
                fields[key] = fields[key].replace(placeholder, str(value.value()))
    return fields


def test_every_experiment_belongs_to_a_study():
    files = {path.stem for path in (CONF / "experiment").glob("*.yaml")}
    assert files == {f"{study}_{role}" for study in studies() for role in ROLES}
    assert set(studies()) == set(EXPECTED_JOBS)


@pytest.mark.parametrize("study", sorted(EXPECTED_JOBS))
def test_study_grids_line_up(study):
    args = study_args(study)
    jobs = {role: expand(app, f"{study}_{role}", args) for role, app in ROLES.items()}
    assert tuple(len(jobs[role]) for role in ROLES) == EXPECTED_JOBS[study]

    # A study that re-uses another study's models (study.models_root) trains into that study's root.
    models_root = models_root_of(study)
    written: dict[str, dict] = {}
    for role in ("train", "reference"):
        for overrides in jobs[role]:
            job = job_fields("train", overrides)
            folder = job["output_dir"]
            assert folder not in written, f"two {study} train jobs write {folder}"
            assert folder.startswith(f"{models_root}/train/")
            assert job["part"] == ("members" if role == "train" else "reference")
            written[folder] = job

    attack_dirs = set()
    settings = set()
    for overrides in jobs["attack"]:
        job = job_fields("attack", overrides)
        folder = job["output_dir"]
        assert folder not in attack_dirs, f"two {study} attack jobs write {folder}"
        assert folder.startswith(f"outputs/{study}/attack/")
        attack_dirs.add(folder)
        settings.add(job["setting"])
        victim = written.get(job["victim"])
        assert victim is not None, f"{overrides}: no train job of {study} writes the victim {job['victim']}"
        assert victim["part"] == "members" and victim["model"] == job["model"]
        for key in ("source", "split", "members", "private", "noise"):  # same data, split and privacy
            assert victim[key] == job[key], (key, overrides)
        if job["calibrated"] == "True":
            reference = written.get(job["reference"])
            assert reference is not None, (
                f"{overrides}: no train job of {study} writes the reference {job['reference']}"
            )
            assert reference["part"] == "reference" and reference["model"] == job["reference_model"]
            assert reference["private"] == "False"
            assert (reference["source"], reference["split"]) == (job["source"], job["split"])
        else:
            assert job["calibrated"] == "False"
    if study.endswith("_size"):  # the size studies cover every threat model they can calibrate
        assert settings == sweepable_settings()


def sweepable_settings() -> set[str]:
    """The settings a sweep over calibration=none,reference can run: all but those that refuse calibration
    (``calibration_refusal``: DOMIAS, whose score already divides by a density of the reference data)."""
    from ganleaks.settings.registry import describe_setting

    names = {path.stem for path in (CONF / "setting").glob("*.yaml")}
    refusing = {name for name in names if get_class(describe_setting(name).engine).calibration_refusal is not None}
    assert refusing == {"domias"}  # a new one: give the studies a sweep for it, or calibrate it
    return names - refusing


def models_root_of(study: str) -> str:
    cfg = compose_cached("train", (f"experiment={study}_train", *study_args(study)))
    return OmegaConf.select(cfg, "study.models_root", default=None) or f"outputs/{study}"


def train_folders(study: str) -> set[str]:
    args = study_args(study)
    return {
        job_fields("train", overrides)["output_dir"]
        for role in ("train", "reference")
        for overrides in expand("train", f"{study}_{role}", args)
    }


def test_k_study_reuses_the_size_study_models():
    """cpu_k trains nothing of its own: every victim and reference it reads is one cpu_size trains."""
    assert models_root_of("cpu_k") == "outputs/cpu_size"
    assert train_folders("cpu_k") <= train_folders("cpu_size")
    for overrides in expand("attack", "cpu_k_attack", []):
        job = job_fields("attack", overrides)
        assert job["output_dir"].startswith("outputs/cpu_k/attack/")
        assert job["victim"].startswith("outputs/cpu_size/train/")


def test_templates_match_full_composition():
    """``job_fields`` gives what Hydra composes for a job from all its overrides."""
    for study, role, index in (
        ("cpu_size", "attack", 37),
        ("cpu_dp", "attack", 7),
        ("cpu_k", "attack", 50),
        ("cpu_dp", "reference", 0),
        ("cpu_dp", "train", 3),
        ("celeba_size", "train", 5),
        ("celeba_k", "attack", 20),
    ):
        app = ROLES[role]
        overrides = expand(app, f"{study}_{role}", study_args(study))[index]
        cfg = copy.deepcopy(compose_cached(app, tuple(overrides)))
        OmegaConf.update(cfg, "_fields", dict(FIELDS), force_add=True)
        full = {key: str(value) for key, value in OmegaConf.to_container(cfg._fields, resolve=True).items()}
        full["source"] = OmegaConf.to_yaml(cfg.data.source, resolve=True)
        assert job_fields(app, overrides) == full, (study, role, overrides)


def test_scales_use_the_data_they_promise():
    cpu = compose_cached("attack", tuple(expand("attack", "cpu_size_attack", [])[0]))
    assert (cpu.data.name, cpu.data.source.resolution, cpu.data.nonmember_size) == ("fashion_mnist", 32, 256)
    assert cpu.distance.lpips_weight == 0  # no VGG on a CPU
    celeba = compose_cached("attack", tuple(expand("attack", "celeba_size_attack", study_args("celeba"))[0]))
    assert (celeba.data.name, celeba.data.source.resolution, celeba.distance.name) == ("celeba", 64, "paper")
    assert max(int(s) for s in str(celeba.study.train_sizes).split(",")) >= 20000
    assert min(int(s) for s in str(cpu.study.train_sizes).split(",")) == 64


def test_real_multirun_writes_where_the_dry_run_says(tmp_path):
    """Hydra itself (BasicSweeper + launcher) runs the cpu_dp train and reference sweeps with a no-op
    task: the job folders and privacy choices are those of the dry run."""
    app = tmp_path / "noop.py"
    app.write_text(
        textwrap.dedent(f"""
        import hydra
        from hydra.core.hydra_config import HydraConfig

        import ganleaks  # conf/ reads its resolvers (paths: ganleaks_expand)

        @hydra.main(version_base="1.3", config_path={str(CONF)!r}, config_name="train")
        def main(cfg):
            print("JOB", HydraConfig.get().runtime.output_dir, cfg.privacy.enabled, cfg.data.part, flush=True)

        main()
    """)
    )
    for experiment in ("cpu_dp_train", "cpu_dp_reference"):
        done = subprocess.run(
            [
                sys.executable,
                str(app),
                "-m",
                f"experiment={experiment}",
                "hydra/job_logging=disabled",
                "hydra/hydra_logging=disabled",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        seen = sorted(tuple(line.split()[1:]) for line in done.stdout.splitlines() if line.startswith("JOB "))
        expected = sorted(
            (str(tmp_path / job["output_dir"]), job["private"], job["part"])
            for job in (job_fields("train", o) for o in expand("train", experiment, []))
        )
        assert seen == expected


def test_dp_baseline_commands_line_up():
    """The two extra commands of docs/EXPERIMENTS.md that add a no-DP baseline to cpu_dp."""
    train = expand("train", "cpu_dp_reference", ["data.part=members", "data.train_size=256", "model=dpgan"])
    references = [job_fields("train", o) for o in expand("train", "cpu_dp_reference", [])]
    (baseline,) = [job_fields("train", o) for o in train]
    assert baseline["output_dir"] == "outputs/cpu_dp/train/fashion_mnist/dpgan/n256/seed0"
    assert (baseline["part"], baseline["private"]) == ("members", "False")
    attacks = expand(
        "attack",
        "cpu_size_attack",
        [
            "paths.root=outputs/cpu_dp",
            "model=dpgan",
            "data.train_size=256",
            "privacy=none",
            "calibration.blackbox_model=dpgan",
        ],
    )
    assert len(attacks) == 5 * 2
    for overrides in attacks:
        job = job_fields("attack", overrides)
        assert job["victim"] == baseline["output_dir"] and job["output_dir"].startswith("outputs/cpu_dp/attack/")
        assert (job["source"], job["split"]) == (baseline["source"], baseline["split"])
        if job["calibrated"] == "True":
            assert job["reference"] in {reference["output_dir"] for reference in references}


def test_cpu_dp_epsilons_span_one_to_a_hundred():
    """The cpu_dp noise multipliers give, by Opacus' RDP accountant for the training the study runs
    (max_steps / 2 discriminator steps at Poisson rate batch / train_size), epsilons from about 1 to
    about 100 at a delta no larger than 1 / train_size (issue: "epsilon spans roughly 1 to 100")."""
    from opacus.accountants import RDPAccountant

    jobs = expand("train", "cpu_dp_train", [])
    epsilons = []
    for overrides in jobs:
        cfg = compose_cached("train", tuple(overrides))
        assert cfg.privacy.enabled and cfg.privacy.delta <= 1 / cfg.data.train_size
        accountant = RDPAccountant()
        rate = cfg.data.batch_size / cfg.data.train_size
        accountant.history = [(cfg.privacy.noise_multiplier, rate, cfg.trainer.max_steps // 2)]
        epsilons.append(accountant.get_epsilon(cfg.privacy.delta))
    assert len(epsilons) == EXPECTED_JOBS["cpu_dp"][0]
    assert 0.5 <= min(epsilons) <= 2 and 50 <= max(epsilons) <= 200, sorted(epsilons)
