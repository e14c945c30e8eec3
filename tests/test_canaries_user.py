"""Issue 25, part 3: the one-run epsilon audit (``audit=canaries``) of a generator or sample set the user brings.

The canaries are the query sets (members = the canaries trained on, non-members = those left out);
the audit runs only when the user declares their coins fair (``audit.randomized=true``), tests the
declared ``victim.privacy.epsilon`` at ``victim.privacy.delta``, and flags member counts that fair
coins make implausible. The bounds are those of training runs (``canary_audit``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ganleaks.config_resolvers import register_resolvers
from ganleaks.errors import AttackConfigError
from ganleaks.evaluation.declared_coins import COINS_CONTRADICTED, DECLARED, declared_coins_audit
from ganleaks.evaluation.privacy_audit import FALSIFIED, NO_CLAIM, NOT_FALSIFIED, canary_audit
from tests.conftest import compose_app
from tests.test_user_victims import _images, _lookup_weights, _save_folder

register_resolvers()  # conf/victim's ${ganleaks_fingerprint:...}, for configs composed here

N = 32  # member canaries and non-member canaries each
FAST = ["distance=l2", "setting=fullbb", "setting.k=256", "audit=canaries"]
CLAIM = ["victim.privacy.epsilon=0.1", "victim.privacy.delta=1e-5"]
GRID = [10, 20, 50, 100, 200, 500, 1000]  # conf/audit/canaries.yaml


@pytest.fixture(scope="module")
def canaries(tmp_path_factory) -> dict[str, Path]:
    """32 member and 32 non-member canary images, a generator that memorised the members, a member-free
    sample set, and an unbalanced split of the same 64 canaries (60 members, 4 non-members)."""
    root = tmp_path_factory.mktemp("canaries")
    rng = np.random.default_rng(0)
    members, nonmembers = _images(rng, N), _images(rng, N)
    both = np.concatenate([members, nonmembers])
    return {
        "root": root,
        "members": _save_folder(root / "in", members),
        "nonmembers": _save_folder(root / "out", nonmembers),
        "weights": _lookup_weights(root / "G.safetensors", members),
        "clean_samples": _save_folder(root / "clean_samples", _images(rng, 4 * N)),
        "members_60": _save_folder(root / "in60", both[:60]),
        "nonmembers_4": _save_folder(root / "out4", both[60:]),
    }


def _generator(files, members: str = "members", nonmembers: str = "nonmembers") -> list[str]:
    return [
        "victim=generator",
        "victim.generator._target_=tests.userpkg.nets.LookupGenerator",
        f"+victim.generator.rows={N}",
        f"victim.weights={files['weights']}",
        f"victim.latent_dim={N}",
        f"queries.members={files[members]}",
        f"queries.nonmembers={files[nonmembers]}",
    ]


def _samples(files, members: str = "members", nonmembers: str = "nonmembers") -> list[str]:
    return [
        "victim=samples",
        f"victim.path={files['clean_samples']}",
        f"queries.members={files[members]}",
        f"queries.nonmembers={files[nonmembers]}",
    ]


def _attack(root: Path, overrides: list[str]) -> tuple[dict, Path]:
    from ganleaks.workflows import attack

    cfg, out_dir = compose_app("attack", root, [*FAST, *overrides])
    return attack(cfg, out_dir), out_dir


def test_refused_without_the_declaration_of_fair_coins(canaries, tmp_path):
    from ganleaks.orchestration.plan import check_attack_keys

    for overrides, message in (
        (_generator(canaries), r"needs audit\.randomized=true.*independent fair coin.*the bound is valid only then"),
        (_samples(canaries), r"victim=samples needs audit\.randomized=true"),
        ([*_generator(canaries), "audit.randomized=true", "victim.privacy.epsilon=1"], "without its delta"),
        ([*_generator(canaries), "audit.randomized=true", "attack.num_queries=8"], "drop attack.num_queries"),
        ([*_generator(canaries), "audit.randomized=true", "victim.privacy.delta=2"], r"victim\.privacy\.delta=2"),
        (["audit.randomized=true"], "records its coins in canaries.json"),  # victim=run: the coins are recorded
    ):
        cfg, _ = compose_app("attack", tmp_path, [*FAST, *overrides])
        with pytest.raises(AttackConfigError, match=message) as refused:
            check_attack_keys(cfg)
        assert "\n" not in str(refused.value)  # one line
    cfg, _ = compose_app("attack", tmp_path, [*FAST, *_generator(canaries), "audit.randomized=true", *CLAIM])
    check_attack_keys(cfg)


def test_refused_before_anything_is_written(canaries, tmp_path):
    with pytest.raises(AttackConfigError, match="audit.randomized=true"):
        _attack(tmp_path, _generator(canaries))
    assert not (tmp_path / "attack").exists()


def test_memorising_generator_falsifies_a_small_declared_epsilon(canaries, tmp_path):
    metrics, out_dir = _attack(tmp_path, [*_generator(canaries), "audit.randomized=true", *CLAIM])
    block = metrics["privacy_audit"]
    assert metrics["auc"] == 1.0
    assert block["m"] == 2 * N and block["n_included"] == N
    assert block["claimed_epsilon"] == 0.1 and block["delta"] == 1e-5
    assert block["verdict"] == FALSIFIED and block["guesses"] == block["correct"] == 2 * N
    # docs/PRIVACY_AUDIT.md: 2.64 / 5.53, the ceiling of 64 canaries (all right, 4 grid points at alpha / 4)
    assert block["epsilon_lower_bound_one_run"] == pytest.approx(2.64, abs=0.01)
    assert block["epsilon_lower_bound_gdp"] == pytest.approx(5.53, abs=0.01)
    assert block["coins"] == DECLARED and not block["coin_check"]["contradicted"]
    assert "declared by the user, not recorded here" in block["sentence"]
    # exactly the training runs' bounds: canary_audit on the same scores and coins
    rows = [line.split(",") for line in (out_dir / "scores.csv").read_text().splitlines()[1:]]
    scores = np.array([float(row[4]) for row in rows])
    included = np.array([row[1] == "1" for row in rows])
    same = canary_audit(scores, included, counts=GRID, delta=1e-5, claimed_epsilon=0.1)
    for key in ("epsilon_lower_bound_one_run", "epsilon_lower_bound_gdp", "guesses", "correct", "grid", "bounds"):
        assert block[key] == same[key], key
    assert out_dir.name.startswith("none-l2-audit")  # apart from the plain attack of the same queries
    written = json.loads((out_dir / "metrics.json").read_text())["privacy_audit"]
    assert written["verdict"] == FALSIFIED and written["coins"] == DECLARED
    summary = (out_dir / "summary.html").read_text()
    assert "Privacy audit (canaries)" in summary and "declared by the user" in summary


def test_member_free_sample_set_gives_bound_zero_not_falsified(canaries, tmp_path):
    metrics, _ = _attack(tmp_path, [*_samples(canaries), "audit.randomized=true", *CLAIM])
    block = metrics["privacy_audit"]
    assert block["epsilon_lower_bound_one_run"] == 0.0 and block["epsilon_lower_bound_gdp"] == 0.0
    assert block["verdict"] == NOT_FALSIFIED
    assert "not falsified (membership coins declared by the user" in block["sentence"]


def test_without_a_declared_epsilon_there_is_no_claim(canaries, tmp_path):
    metrics, _ = _attack(tmp_path, [*_samples(canaries), "audit.randomized=true", "audit.delta=1e-6"])
    block = metrics["privacy_audit"]
    assert block["verdict"] == NO_CLAIM and block["claimed_epsilon"] == "none" and block["delta"] == 1e-6
    assert "no epsilon declared (victim.privacy.epsilon)" in block["sentence"]


def test_unbalanced_member_counts_are_flagged(canaries, tmp_path, caplog):
    overrides = _generator(canaries, "members_60", "nonmembers_4")
    with caplog.at_level("WARNING"):
        metrics, out_dir = _attack(tmp_path, [*overrides, "audit.randomized=true", *CLAIM])
    block = metrics["privacy_audit"]
    check = block["coin_check"]
    assert (check["n_included"], check["m"]) == (60, 64) and check["contradicted"]
    assert check["p_value"] == pytest.approx(7.4e-14, rel=0.01)  # docs/PRIVACY_AUDIT.md's example
    assert block["verdict"] == COINS_CONTRADICTED and "verdict_if_fair" in block
    assert "contradict the declaration audit.randomized=true" in block["sentence"]
    assert "contradict the declaration" in caplog.text
    assert "NOT VALID" in (out_dir / "summary.html").read_text()


def test_the_member_count_check():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=64)
    balanced = declared_coins_audit(scores, np.arange(64) < 32, counts=GRID, claimed_epsilon=1.0)
    assert balanced["coin_check"]["p_value"] == pytest.approx(1.0) and balanced["verdict"] == NOT_FALSIFIED
    skewed = declared_coins_audit(scores, np.arange(64) < 60, counts=GRID, claimed_epsilon=1.0)
    assert skewed["coin_check"]["contradicted"] and skewed["verdict"] == COINS_CONTRADICTED
    # 44 of 64 (p ~ 0.003) is unusual but not beyond the threshold: reported, not flagged
    mild = declared_coins_audit(scores, np.arange(64) < 44, counts=GRID)
    assert 1e-3 < mild["coin_check"]["p_value"] < 0.01 and mild["verdict"] == NO_CLAIM


def test_python_api_audits_declared_canaries():
    import ganleaks

    rng = np.random.default_rng(0)
    members, nonmembers, fresh = (rng.uniform(-1, 1, (n, 1, 16, 16)).astype(np.float32) for n in (N, N, 2 * N))
    given = dict(samples=np.concatenate([members, fresh]), members=members, nonmembers=nonmembers, audit="canaries")
    with pytest.raises(AttackConfigError, match=r'needs audit\.randomized=true.*\*\*\{"audit\.randomized": True\}'):
        ganleaks.audit("fullbb", **given)
    declared = {"audit.randomized": True, "victim.privacy.epsilon": 0.1, "victim.privacy.delta": 1e-5}
    result = ganleaks.audit("fullbb", distance="l2", **given, **declared)
    block = result.metrics["privacy_audit"]
    assert block["verdict"] == FALSIFIED and block["coins"] == DECLARED
