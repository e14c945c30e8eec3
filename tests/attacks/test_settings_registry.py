"""Settings are a Hydra registry: a ``conf/setting/*.yaml`` node names its engine class with ``_target_``.

The first test is the worked example of docs/ARCHITECTURE.md ("Adding a setting"): one engine class
(below) and one YAML file, run end to end through ``run_attack``.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from ganleaks.attacks.reconstruction import random_latents
from ganleaks.errors import AttackConfigError
from ganleaks.parameters import Parameter
from ganleaks.settings import (
    AttackEngine,
    BatchResult,
    ReconstructionEngine,
    build_engine,
    check_setting,
    engine_class,
    setting_parameters,
)
from ganleaks.status import STATUS_OK, status_from
from ganleaks.workflows import attack
from tests.attacks.helpers import make_generator
from tests.conftest import CONF, TINY, compose_app


class RandomSampleEngine(AttackEngine):
    """Null baseline: R(x) = G(z) for one random latent per query, seeded by (seed, id)."""

    reconstructs = True  # the loss is L(x, R(x)): the attack passes the distance
    label = "random sample"
    description = "Null baseline: each record is compared with one random generated sample."
    baseline = True
    config_parameters = (Parameter("scale", "float", low=0.0, help="the latents' standard deviation"),)

    def __init__(self, generator, distance, seed, *, scale: float) -> None:
        super().__init__()
        self.generator, self.distance, self.seed, self.scale = generator, distance, seed, scale

    @torch.no_grad()
    def losses(self, x, ids):
        z = self.scale * random_latents(ids.cpu(), self.generator.latent_dim, self.seed).to(x.device)
        _, loss = self.distance(x, self.generator(z), None)
        return BatchResult(loss.cpu(), loss.cpu(), z.cpu(), status_from(~torch.isfinite(loss)).cpu())


RANDOM_SAMPLE_YAML = f"""\
_target_: {__name__}.RandomSampleEngine
name: randomsample
scale: 1.0
reference_model: ${{model.name}}
"""


def test_a_new_setting_is_one_class_and_one_yaml_file(trained_root, tmp_path):
    conf = shutil.copytree(CONF, tmp_path / "conf")
    (conf / "setting" / "randomsample.yaml").write_text(RANDOM_SAMPLE_YAML)
    with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
        cfg = compose("attack", overrides=[*TINY, f"paths.root={trained_root}", "setting=randomsample"])
    out = tmp_path / "out"
    metrics = attack(cfg, out)

    with open(out / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["n_members"] + metrics["n_nonmembers"] == 48
    assert {row["status"] for row in rows} == {"ok"}
    assert all(float(row["score"]) == -float(row["victim_loss"]) < 0 for row in rows)
    assert metrics["setting"] == "randomsample" and 0.0 <= metrics["auc"] <= 1.0
    assert (out / "reconstructions.png").is_file()  # drawn from the latents the new engine returned
    # The same command again resumes from its batches and writes the same scores.
    first = (out / "scores.csv").read_bytes()
    attack(cfg, out)
    assert (out / "scores.csv").read_bytes() == first


@pytest.mark.parametrize("path", sorted((CONF / "setting").glob("*.yaml")), ids=lambda path: path.stem)
def test_every_setting_names_an_engine_and_gives_exactly_its_arguments(tmp_path, path):
    cfg, _ = compose_app("attack", tmp_path, [f"setting={path.stem}"])
    cls = check_setting(cfg.setting, "setting")  # raises if a key is missing or a value out of range
    assert cls is engine_class(cfg.setting)
    assert issubclass(cls, AttackEngine) and cfg.setting.name == path.stem
    given = set(cfg.setting) - {"_target_", "name", "reference_model"}
    assert given == {parameter.name for parameter in setting_parameters(cls)}  # exactly its declared keys


def test_a_missing_setting_key_is_refused_before_anything_is_read(tmp_path):
    cfg, _ = compose_app("attack", tmp_path, ["setting=fullbb", "~setting.k"])
    with pytest.raises(AttackConfigError, match=r"setting.k is missing: .*FullBlackBoxEngine, which takes"):
        attack(cfg, tmp_path / "out")  # no victim exists: the keys are checked first
    assert not (tmp_path / "out").exists()


def test_a_setting_key_the_engine_does_not_take_is_ignored_with_a_warning(tmp_path, caplog):
    """A sweep may set ``++setting.k`` for every setting; the discriminator has no ``k``."""
    cfg, _ = compose_app("attack", tmp_path, ["setting=discriminator", "++setting.k=256"])
    with caplog.at_level(logging.WARNING, logger="ganleaks.settings.base"):
        check_setting(cfg.setting, "setting")
    assert "setting.k not used by DiscriminatorEngine" in caplog.text
    assert not [record for record in caplog.records if "reference_model" in record.getMessage()]  # a label


def test_an_optimizer_kwargs_key_of_earlier_versions_says_where_it_went(tmp_path):
    cfg, _ = compose_app("attack", tmp_path, ["setting=whitebox"])
    with open_dict(cfg.setting):
        cfg.setting.optimizer_kwargs = {"history_size": 20}
    with pytest.raises(AttackConfigError, match=r"setting.optimizer_kwargs: .*\+setting.optimizer.history_size=20"):
        attack(cfg, tmp_path / "out")


def test_the_optimizer_by_name_and_by_node_reconstruct_the_same(tmp_path):
    """``setting.optimizer=powell`` (a name, as before settings were a registry) = partialbb's Powell node."""
    from ganleaks.distances.distance import ReconstructionDistance

    fast = ["setting.init=zero", "setting.max_iter=2"]
    by_name, _ = compose_app("attack", tmp_path, ["setting=whitebox", "setting.optimizer=powell", *fast])
    by_node, _ = compose_app("attack", tmp_path, ["setting=partialbb", *fast])
    generator, distance = make_generator(), ReconstructionDistance(latent_weight=1e-3)
    x, ids = generator(torch.randn(4, 8, generator=torch.Generator().manual_seed(0))).detach(), torch.arange(4)
    results = [build_engine(c.setting, generator, None, distance, seed=0).losses(x, ids) for c in (by_name, by_node)]
    assert isinstance(build_engine(by_node.setting, generator, None, distance, seed=0), ReconstructionEngine)
    assert results[0].status.tolist() == [STATUS_OK] * 4
    torch.testing.assert_close(results[0].loss, results[1].loss, rtol=0, atol=0)
    torch.testing.assert_close(results[0].z, results[1].z, rtol=0, atol=0)


def test_the_new_setting_yaml_is_in_the_architecture_doc():
    """docs/ARCHITECTURE.md shows the example this file runs (the class and the YAML, as written here)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md").read_text()
    assert RANDOM_SAMPLE_YAML.replace(f"{__name__}.", "my_attacks.") in doc
    assert "class RandomSampleEngine(AttackEngine):" in doc
