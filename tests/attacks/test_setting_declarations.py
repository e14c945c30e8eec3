"""Settings describe themselves: a class declares its keys, label, description and order once.

The end-to-end test adds a setting the way a user would (``tests/userpkg/toy_setting.py`` and one
YAML file in a config folder on Hydra's search path), attacks with it and reports it beside a
built-in setting: nothing in ganleaks names it, yet the report's key, figure and summary page do.
"""

from __future__ import annotations

import html
import logging

import pytest
from omegaconf import OmegaConf

from ganleaks.parameters import Parameter
from ganleaks.settings import (
    AttackConfigError,
    AttackEngine,
    DensityRatioEngine,
    DiscriminatorEngine,
    FullBlackBoxEngine,
    MonteCarloEngine,
    PartialBlackBoxEngine,
    WhiteBoxEngine,
    check_setting,
)
from ganleaks.settings.registry import describe_setting
from tests.conftest import CONF, attack_overrides, compose_app
from tests.userpkg.toy_setting import TOY_SETTING_YAML, BestOfRandomEngine

BUILT_IN = (
    FullBlackBoxEngine,
    PartialBlackBoxEngine,
    WhiteBoxEngine,
    DiscriminatorEngine,
    MonteCarloEngine,
    DensityRatioEngine,
)


@pytest.mark.parametrize("cls", BUILT_IN, ids=lambda cls: cls.__name__)
def test_every_built_in_setting_declares_how_reports_show_it(cls):
    assert cls.label and cls.description.endswith(".") and isinstance(cls.knowledge, int)
    assert cls.config_parameters is not None and cls.needs()


def test_the_declared_order_is_the_papers():
    """Attacker knowledge, the baseline last: what the reports' columns and legends follow."""
    names = [path.stem for path in (CONF / "setting").glob("*.yaml")]
    ordered = sorted((describe_setting(name) for name in names), key=lambda info: info.rank)
    names = [info.name for info in ordered]
    assert names == ["fullbb", "partialbb", "whitebox", "discriminator", "domias", "montecarlo"]
    assert {info.name for info in ordered if info.uses_k} == {"fullbb", "montecarlo", "domias"}


def test_a_run_recorded_with_an_old_engine_path_or_an_unknown_setting_is_still_described():
    old = describe_setting("whitebox", "ganleaks.attacks.engines.ReconstructionEngine")  # before the engines moved
    assert (old.label, old.knowledge, old.engine) == ("white-box", 3, "ganleaks.settings.reconstruction.WhiteBoxEngine")
    shared = describe_setting("partialbb", "ganleaks.settings.reconstruction.ReconstructionEngine")  # one shared class
    assert shared.label == "partial black-box"
    unknown = describe_setting("mystery", "nowhere.MysteryEngine")
    assert (unknown.known, unknown.label, unknown.description) == (False, "mystery", "Setting mystery.")
    assert unknown.rank > describe_setting("montecarlo").rank  # after every known setting
    assert describe_setting("../../etc/passwd").known is False


def _toy_node(**changes):
    node = OmegaConf.create(TOY_SETTING_YAML.replace("${model.name}", "dcgan"))
    for key, value in changes.items():
        node[key] = value
    return node


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"draws": 0}, r"setting.draws=0 is out of range: set setting.draws to an integer in 1 \.\. 64"),
        ({"draws": "many"}, "setting.draws='many' is not valid: set setting.draws to an integer in 1 .. 64"),
        ({"scale": -1.0}, "setting.scale=-1 is out of range: set setting.scale to a number >= 0"),
    ],
)
def test_a_declared_parameter_is_range_checked_by_the_one_checker(changes, match):
    with pytest.raises(ValueError, match=match):
        check_setting(_toy_node(**changes), "setting")


def test_the_checker_refuses_a_missing_key_and_warns_about_an_unused_one(caplog):
    node = _toy_node()
    del node["draws"]
    with pytest.raises(
        AttackConfigError, match=r"setting.draws is missing: .*BestOfRandomEngine, which takes draws, scale"
    ):
        check_setting(node, "setting")
    with caplog.at_level(logging.WARNING, logger="ganleaks.settings.base"):
        assert check_setting(_toy_node(k=256), "setting") is BestOfRandomEngine
    assert "setting.k not used by BestOfRandomEngine" in caplog.text


def test_a_declaration_that_disagrees_with_the_constructor_fails_where_the_class_is_defined():
    with pytest.raises(TypeError, match=r"size is declared but __init__ does not take it.*__init__ takes k"):

        class Wrong(AttackEngine):
            config_parameters = (Parameter("size", "int", low=1),)

            def __init__(self, generator, seed, *, k: int) -> None:
                super().__init__()


def test_a_distance_declares_its_parameters_and_is_checked_the_same_way(tmp_path):
    from ganleaks.orchestration.plan import plan_attack

    cfg, out_dir = compose_app("attack", tmp_path, ["setting=whitebox", "distance=paper", "distance.lpips_min_size=0"])
    with pytest.raises(ValueError, match=r"distance.lpips_min_size=0 is out of range: .* an integer >= 1"):
        plan_attack(cfg, out_dir)  # its first checks: the setting's and the distance's declared keys


def test_a_new_setting_runs_end_to_end_and_the_report_describes_it(trained_root, tmp_path, monkeypatch):
    import matplotlib.figure

    from ganleaks.evaluation.summary import write_summary
    from ganleaks.evaluation.sweep_figures import plot_train_size
    from ganleaks.report import build_report
    from ganleaks.workflows import attack

    extra = tmp_path / "my_conf"
    (extra / "setting").mkdir(parents=True)
    (extra / "setting" / "bestofrandom.yaml").write_text(TOY_SETTING_YAML)
    toy_overrides = [f"hydra.searchpath=[file://{extra}]", "setting=bestofrandom", "distance=l2", "calibration=none"]
    toy_cfg, _ = compose_app("attack", trained_root, toy_overrides)
    toy_run = tmp_path / "attack" / "bestofrandom"
    toy_metrics = attack(toy_cfg, toy_run)
    assert toy_metrics["setting"] == "bestofrandom" and 0.0 <= toy_metrics["auc"] <= 1.0
    built_in_cfg, _ = compose_app("attack", trained_root, attack_overrides("fullbb"))
    attack(built_in_cfg, tmp_path / "attack" / "fullbb")

    report = build_report([tmp_path / "attack"], tmp_path / "report", wandb="off")
    assert [row["setting"] for row in report.rows] == ["fullbb", "bestofrandom"]  # declared order, unranked last
    header = report.blocks["auc"].splitlines()[0]
    assert header.index("fullbb") < header.index("bestofrandom")  # the pivot table's columns
    key = report.files["settings"].read_text()
    assert "| bestofrandom | best of random draws | " + BestOfRandomEngine.description in key
    assert "| fullbb | full black-box | " + FullBlackBoxEngine.description in key

    saved = []
    original = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        saved.append([ax.get_title() for ax in fig.axes])
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    swept = [*report.rows, *({**row, "train_size": 2 * row["train_size"]} for row in report.rows)]
    assert plot_train_size(swept, tmp_path / "size.png") is not None
    (titles,) = saved
    assert any(title.endswith("\nbest of random draws") for title in titles)
    assert any(title.endswith("\nfull black-box") for title in titles)

    page = write_summary(toy_run).read_text()
    assert html.escape(BestOfRandomEngine.description) in page and "Threat model: best of random draws" in page
