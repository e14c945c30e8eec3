"""A victim kind added in a test package (one class, one YAML file) runs end to end and reaches the report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ganleaks.errors import AttackConfigError
from ganleaks.report import build_report
from tests.conftest import compose_app

SEARCH_PATH = f"hydra.searchpath=[file://{Path(__file__).resolve().parent / 'userpkg' / 'conf'}]"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """Members released verbatim among other samples: a memoriser the full black-box attack must catch."""
    generator = torch.Generator().manual_seed(0)
    members = torch.rand(24, 1, 16, 16, generator=generator) * 2 - 1
    nonmembers = torch.rand(24, 1, 16, 16, generator=generator) * 2 - 1
    others = torch.rand(40, 1, 16, 16, generator=generator) * 2 - 1
    path = tmp_path_factory.mktemp("bundle") / "bundle.safetensors"
    save_file({"samples": torch.cat([members, others]), "members": members, "nonmembers": nonmembers}, str(path))
    return path


def _attack(root: Path, overrides: list[str]) -> tuple[dict, Path]:
    from ganleaks.workflows import attack

    cfg, out_dir = compose_app("attack", root, [SEARCH_PATH, "victim=bundle", "distance=l2", *overrides])
    return attack(cfg, out_dir), out_dir


def test_a_new_victim_kind_is_one_class_and_one_yaml_file(bundle, tmp_path):
    metrics, out_dir = _attack(tmp_path, [f"victim.path={bundle}", "setting=fullbb", "setting.k=64"])
    assert metrics["auc"] > 0.95, metrics["auc"]  # members are in the bundle verbatim: distance 0
    assert (metrics["victim_kind"], metrics["model"], metrics["privacy"]) == ("bundle", "bundle-samples", "unknown")
    assert out_dir.parts[-4:-2] == ("user", "bundle")  # the kind's folder name, from its YAML
    report = build_report([tmp_path / "attack"], tmp_path / "report", wandb="off")
    (row,) = report.rows
    assert (row["model"], row["data"], row["setting"]) == ("bundle-samples", "bundle", "fullbb")
    assert "bundle-samples" in report.markdown


def test_the_new_kind_is_refused_a_setting_it_cannot_serve_by_the_capability_check(bundle, tmp_path):
    with pytest.raises(AttackConfigError, match=r"setting=whitebox needs .*latent space.*use setting=fullbb"):
        _attack(tmp_path, [f"victim.path={bundle}", "setting=whitebox"])
    assert not (tmp_path / "attack").exists() or not list((tmp_path / "attack").rglob("scores.csv"))
