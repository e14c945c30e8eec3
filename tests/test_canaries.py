"""Canaries in training (``train.py canaries=...``) and the privacy audit of them (``attack.py audit=canaries``).

The fast tests draw canaries and compute audit blocks without training. The slow ones train tiny
victims on 16 members plus 32 canaries for many steps (so that they memorise), attack the canaries
with the discriminator score, and check the epsilon lower bound against the run's claim: none
(no DP), an honest DP-SGD accountant, and a false one (``privacy.test_only_noise_override``).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from ganleaks.data.canaries import (
    CANARIES_NAME,
    OOD_ID_OFFSET,
    Canaries,
    CanaryError,
    check_canaries_disjoint,
    draw_coins,
    load_canaries,
    make_canaries,
    save_canaries,
)
from ganleaks.data.sample_set import SampleSet
from ganleaks.data.sources import load_digits
from ganleaks.data.split import SplitError, make_split
from ganleaks.evaluation.estimates import result_lines
from ganleaks.evaluation.privacy_audit import (
    FALSIFIED,
    FALSIFIED_AS_GDP,
    NO_CLAIM,
    NOT_FALSIFIED,
    canary_audit,
    guess_grid,
    one_run_epsilon_lower_bound,
)
from tests.conftest import attack_overrides, compose_app

GRID = [10, 20, 50, 100, 200, 500, 1000]


@pytest.fixture(scope="module")
def digits():
    sample_set = load_digits(resolution=16)
    return sample_set, make_split(sample_set, 24, 24, 48, seed=0)


# ---------------------------------------------------------------------------------------------- drawing


def test_coins_reproduce_from_the_seed_and_are_recorded(digits, tmp_path):
    sample_set, split = digits
    canaries = make_canaries("indist", 40, 7, sample_set, split)
    assert torch.equal(canaries.included, draw_coins(40, 7))
    assert not torch.equal(draw_coins(40, 7), draw_coins(40, 8))
    assert torch.equal(make_canaries("indist", 40, 7, sample_set, split).ids, canaries.ids)  # records too
    save_canaries(canaries, sample_set.name, tmp_path)
    record = json.loads((tmp_path / CANARIES_NAME).read_text())
    assert record["kind"] == "indist" and record["seed"] == 7 and record["m"] == 40
    assert record["included"] == draw_coins(40, 7).tolist()
    assert record["ids"] == canaries.ids.tolist()
    assert torch.equal(load_canaries(tmp_path, sample_set, split).included, canaries.included)


def test_indist_canaries_are_outside_every_split_part(digits):
    sample_set, split = digits
    canaries = make_canaries("indist", 200, 0, sample_set, split)
    used = {i for ids in split.parts.values() for i in ids}
    assert used.isdisjoint(canaries.ids.tolist())
    assert len(set(canaries.ids.tolist())) == 200


def test_a_canary_that_is_a_nonmember_or_reference_record_is_refused(digits, tmp_path):
    sample_set, split = digits
    for part in ("nonmembers", "reference", "members"):
        clash = sample_set.select(torch.tensor(split.parts[part][:3]))
        canaries = Canaries("indist", sample_set.name, 0, clash, torch.tensor([True, False, True]))
        with pytest.raises(SplitError, match="parts must be disjoint"):
            check_canaries_disjoint(split, canaries)


def test_an_edited_record_is_refused(digits, tmp_path):
    sample_set, split = digits
    save_canaries(make_canaries("indist", 16, 3, sample_set, split), sample_set.name, tmp_path)
    path = tmp_path / CANARIES_NAME
    record = json.loads(path.read_text())
    record["included"][0] = not record["included"][0]
    path.write_text(json.dumps(record))
    with pytest.raises(CanaryError, match="not those its seed"):
        load_canaries(tmp_path, sample_set, split)
    with pytest.raises(FileNotFoundError, match="trained without canaries"):
        load_canaries(tmp_path / "elsewhere", sample_set, split)


def test_ood_canaries_fit_the_victims_shape_and_never_share_its_ids(digits):
    sample_set, split = digits
    patterns = make_canaries("ood", 12, 0, sample_set, split, source="patterns")
    assert patterns.records.shape == sample_set.shape and patterns.source == "patterns"
    assert bool((patterns.ids >= OOD_ID_OFFSET).all())
    assert set(patterns.records.data.unique().tolist()) == {-1.0, 1.0}
    try:
        fashion = make_canaries("ood", 12, 0, sample_set, split)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed here (/usr/share/datasets/fashion-mnist)")
    assert fashion.records.shape == sample_set.shape and fashion.source == "fashion_mnist"
    assert bool((fashion.ids >= OOD_ID_OFFSET).all())


def test_canaries_that_cannot_be_drawn_are_refused(digits):
    sample_set, split = digits
    with pytest.raises(CanaryError, match="only"):
        make_canaries("indist", len(sample_set), 0, sample_set, split)
    with pytest.raises(CanaryError, match="choose canaries=indist or canaries=ood"):
        make_canaries("both", 8, 0, sample_set, split)
    fashion = SampleSet(sample_set.data, sample_set.ids, "fashion_mnist", "image")
    with pytest.raises(CanaryError, match="not out of distribution"):
        make_canaries("ood", 8, 0, fashion, make_split(fashion, 24, 24, 48, seed=0))


def test_canaries_are_refused_for_a_reference_model(tmp_path):
    from ganleaks.workflows import train

    cfg, run_dir = compose_app("train", tmp_path, ["canaries=ood", "canaries.source=patterns", "data.part=reference"])
    with pytest.raises(ValueError, match="a calibration reference model is trained without canaries"):
        train(cfg, run_dir)
    assert not run_dir.exists()  # refused before anything was written


def test_a_resumed_run_must_ask_for_the_canaries_it_recorded(tmp_path):
    from ganleaks.workflows import draw_canaries

    sample_set = load_digits(resolution=16)
    cfg, run_dir = compose_app("train", tmp_path, ["canaries=ood", "canaries.source=patterns", "canaries.m=8"])
    canaries = draw_canaries(cfg, sample_set, run_dir)
    save_canaries(canaries, sample_set.name, run_dir)
    assert torch.equal(draw_canaries(cfg, sample_set, run_dir).included, canaries.included)  # the same: resumes
    other, _ = compose_app(
        "train", tmp_path, ["canaries=ood", "canaries.source=patterns", "canaries.m=8", "canaries.seed=5"]
    )
    with pytest.raises(ValueError, match="holds other canaries"):
        draw_canaries(other, sample_set, run_dir)
    none, _ = compose_app("train", tmp_path, [])
    with pytest.raises(ValueError, match="records canaries, but this run asks for none"):
        draw_canaries(none, sample_set, run_dir)


def test_audit_keys_are_checked_before_anything_runs(tmp_path):
    from ganleaks.errors import AttackConfigError
    from ganleaks.orchestration.plan import check_attack_keys

    for overrides, message in (
        (["victim=samples"], "victim=samples needs audit.randomized=true"),
        (["audit.alpha=1.5"], "audit.alpha=1.5"),
        (["audit.grid=[0]"], "audit.grid"),
        (["audit.guess=out"], "choose both or in"),
    ):
        cfg, _ = compose_app("attack", tmp_path, ["audit=canaries", *overrides])
        with pytest.raises(AttackConfigError, match=message):
            check_attack_keys(cfg)
    cfg, _ = compose_app("attack", tmp_path, ["audit=canaries"])
    check_attack_keys(cfg)


def test_the_test_only_noise_override_needs_its_environment_variable(monkeypatch):
    from ganleaks.models.privacy import TEST_ONLY_ENV, PrivacySettings

    monkeypatch.delenv(TEST_ONLY_ENV, raising=False)
    with pytest.raises(ValueError, match="refused unless GANLEAKS_TEST_ONLY=1"):
        PrivacySettings.from_config({"noise_multiplier": 100.0, "test_only_noise_override": 0.0})
    monkeypatch.setenv(TEST_ONLY_ENV, "1")
    assert PrivacySettings.from_config({"test_only_noise_override": 0.0}).test_only_noise_override == 0.0


# ---------------------------------------------------------------------------------------------- the block


def test_guess_grid_is_capped_at_m_and_tests_each_point_once():
    assert guess_grid(32, GRID) == [(5, 5), (10, 10), (16, 16)]
    assert guess_grid(32, GRID, "in") == [(10, 0), (20, 0), (32, 0)]
    assert len(guess_grid(1000, GRID)) == 7


def test_the_audit_block_of_perfect_scores():
    included = np.array([True, False] * 16)
    block = canary_audit(included.astype(float), included, counts=GRID, claimed_epsilon=0.4)
    # (16, 16) guesses, all 32 right, each of the 3 grid points at alpha / 3.
    assert (block["m"], block["guesses"], block["correct"]) == (32, 32, 32)
    expected = one_run_epsilon_lower_bound(32, 32, 32, 1e-5, 0.05 / 3)
    assert block["epsilon_lower_bound_one_run"] == pytest.approx(expected)
    assert block["epsilon_lower_bound_one_run"] == pytest.approx(1.99, abs=0.01)
    assert block["epsilon_lower_bound_gdp"] > block["epsilon_lower_bound_one_run"]
    assert block["verdict"] == FALSIFIED
    assert block["sentence"] == (
        "audited epsilon lower bound 1.99 (one-run) / 4.46 (Gaussian-DP claim) against the claimed 0.40: "
        "claim falsified"
    )
    assert "Bonferroni" in block["guess_selection"]
    # Between the two bounds: only the Gaussian-DP reading of the claim is refuted.
    assert canary_audit(included.astype(float), included, counts=GRID, claimed_epsilon=3.0)["verdict"] == (
        FALSIFIED_AS_GDP
    )
    assert canary_audit(included.astype(float), included, counts=GRID, claimed_epsilon=8.0)["verdict"] == NOT_FALSIFIED
    no_claim = canary_audit(included.astype(float), included, counts=GRID)
    assert no_claim["verdict"] == NO_CLAIM and no_claim["claimed_epsilon"] == "none"


def test_scores_that_carry_no_membership_give_no_bound():
    rng = np.random.default_rng(0)
    included = rng.integers(0, 2, 200).astype(bool)
    block = canary_audit(rng.normal(size=200), included, counts=GRID, claimed_epsilon=1.0)
    assert block["epsilon_lower_bound_one_run"] < 0.5 and block["verdict"] == NOT_FALSIFIED


def test_a_failed_canary_ranks_lowest():
    included = np.array([True, False] * 16)
    scores = included.astype(float)
    scores[0] = np.nan  # an included canary without a score: guessed "out" (wrong), and an excluded one moves
    block = canary_audit(scores, included, counts=[32])  # into the 16 "in" guesses (wrong too)
    assert block["n_failed"] == 1 and block["correct"] == 30


def test_the_gap_between_an_ideal_audit_and_the_true_epsilon():
    """docs/PRIVACY_AUDIT.md: 1000 canaries, the ideal scores of a Gaussian mechanism whose true epsilon is
    8 at delta 1e-5 (mu = 1.67), the default grid: medians over 20 draws 2.59 one-run, 3.77 Gaussian-DP."""
    from scipy import optimize

    from ganleaks.evaluation.privacy_audit import gdp_delta

    mu = optimize.brentq(lambda mu: gdp_delta(8.0, mu) - 1e-5, 0.01, 50)
    assert mu == pytest.approx(1.666, abs=0.001)
    bounds = []
    for draw in range(20):
        rng = np.random.default_rng(draw)
        included = rng.integers(0, 2, 1000).astype(bool)
        block = canary_audit(rng.normal(size=1000) + mu * included, included, counts=GRID, claimed_epsilon=8.0)
        bounds.append((block["epsilon_lower_bound_one_run"], block["epsilon_lower_bound_gdp"]))
        assert block["verdict"] == NOT_FALSIFIED  # an honest claim: no draw refutes it
    one_run, gdp = np.median(bounds, axis=0)
    assert one_run == pytest.approx(2.59, abs=0.01) and gdp == pytest.approx(3.77, abs=0.01)


# ---------------------------------------------------------------------------------------------- end to end

# 16 members and 32 in-distribution canaries (held-out digits, 14 trained on by seed 0's coins), 16x16
# digits, batch 8: the kind docs/PRIVACY_AUDIT.md recommends, and one that needs no data set installed.
CANARY_RUN = ["data.train_size=16", "canaries=indist", "canaries.m=32"]


def _train_and_audit(root, steps: int, extra: list[str] = ()):
    from ganleaks.workflows import attack, train

    overrides = [*CANARY_RUN, *extra]
    cfg, run_dir = compose_app("train", root, [*overrides, f"trainer.max_steps={steps}"])
    train(cfg, run_dir)
    cfg, out_dir = compose_app("attack", root, [*overrides, *attack_overrides("discriminator"), "audit=canaries"])
    return run_dir, out_dir, attack(cfg, out_dir)


@pytest.mark.slow
def test_a_memorising_victim_without_dp_gives_a_bound_well_above_zero(tmp_path):
    run_dir, out_dir, metrics = _train_and_audit(tmp_path, 1500)
    record = json.loads((run_dir / CANARIES_NAME).read_text())
    assert record["included"] == draw_coins(32, 0).tolist()  # canaries.seed = seed = 0
    # The coins are in canaries.json only: trained_on.json (members) and the exports name no canary.
    trained = json.loads((run_dir / "trained_on.json").read_text())["ids"]
    assert len(trained) == 16 and set(trained).isdisjoint(record["ids"])
    for name in ("generator.json", "discriminator.json"):
        assert str(record["ids"][0]) not in (run_dir / name).read_text()
    with open(out_dir / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(row["id"]) for row in rows) == sorted(record["ids"])
    assert {int(row["id"]): int(row["member"]) for row in rows} == dict(
        zip(record["ids"], record["included"], strict=True)
    )
    audit = metrics["privacy_audit"]
    # Measured: 14 of 32 included, AUC 0.97, 20 of 20 guesses right, one-run 1.48, Gaussian-DP 3.04 (seeds 1
    # and 2: AUC 1.0, 1.55 and 1.48). One wrong guess of 20 still gives 1.01 / 2.02.
    assert audit["m"] == 32 and audit["claimed_epsilon"] == "none" and audit["verdict"] == NO_CLAIM
    assert audit["epsilon_lower_bound_one_run"] > 1.0
    assert audit["epsilon_lower_bound_gdp"] > 2.0
    assert audit["sentence"] in (out_dir / "summary.html").read_text()
    assert f"privacy audit of 32 canaries: {audit['sentence']}" in result_lines(metrics, "discriminator", "none")
    assert json.loads((out_dir / "metrics.json").read_text())["privacy_audit"] == audit
    from ganleaks.report import build_report

    table = build_report([out_dir], tmp_path / "report", wandb="off").blocks["privacy_audit"]
    bounds = f"| {audit['epsilon_lower_bound_one_run']:.2f} | {audit['epsilon_lower_bound_gdp']:.2f} | none | no claim"
    assert bounds in table and (tmp_path / "report" / "privacy_audit.md").read_text() == table


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_honest_dp_claim_is_not_falsified(tmp_path, seed):
    # sigma 25 for 500 discriminator steps at q = 1/3: epsilon 1.23, a claim the 32 canaries could refute
    # (their ceiling is 1.99; the false claim below is refuted at 1.48). Measured with seed 0: AUC 0.39,
    # 3 of 10 right, 0.00. Each seed draws other canaries, other coins and another training run.
    extra = ["model=dpgan", "privacy.noise_multiplier=25", f"seed={seed}"]
    run_dir, _, metrics = _train_and_audit(tmp_path, 1000, extra)
    claim = json.loads((run_dir / "privacy.json").read_text())
    assert claim["epsilon"] < 1.99
    audit = metrics["privacy_audit"]
    assert audit["claimed_epsilon"] == pytest.approx(claim["epsilon"]) and audit["delta"] == claim["delta"]
    assert audit["epsilon_lower_bound_one_run"] <= claim["epsilon"]
    assert audit["epsilon_lower_bound_gdp"] <= claim["epsilon"]
    assert audit["verdict"] == NOT_FALSIFIED


@pytest.mark.slow
def test_a_false_dp_claim_is_falsified(tmp_path, monkeypatch):
    # The accountant is told sigma = 100 (epsilon about 0.3 after 500 discriminator steps at q = 1/3);
    # the discriminator trains without noise and memorises.
    monkeypatch.setenv("GANLEAKS_TEST_ONLY", "1")
    extra = ["model=dpgan", "privacy.noise_multiplier=100", "+privacy.test_only_noise_override=0.0"]
    run_dir, _, metrics = _train_and_audit(tmp_path, 1000, extra)
    claim = json.loads((run_dir / "privacy.json").read_text())
    assert claim["epsilon"] < 0.5 and claim["test_only_noise_override"] == 0.0
    audit = metrics["privacy_audit"]
    assert audit["epsilon_lower_bound_one_run"] > claim["epsilon"] + 0.5
    assert audit["verdict"] == FALSIFIED
    assert audit["sentence"].endswith("claim falsified")


@pytest.mark.slow
def test_out_of_distribution_canaries_are_audited_end_to_end(tmp_path):
    from ganleaks.workflows import attack, train

    # the seeded block patterns: no data set needed (Fashion-MNIST, the default source, is read by the
    # drawing test above where Debian's package is installed)
    overrides = ["data.train_size=16", "canaries=ood", "canaries.source=patterns", "canaries.m=32"]
    cfg, run_dir = compose_app("train", tmp_path, [*overrides, "trainer.max_steps=100"])
    train(cfg, run_dir)
    record = json.loads((run_dir / CANARIES_NAME).read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert record["kind"] == "ood" and record["source"] == "patterns"
    assert all(i >= OOD_ID_OFFSET for i in record["ids"])
    assert all(set(record["ids"]).isdisjoint(ids) for ids in manifest["parts"].values())
    cfg, out_dir = compose_app("attack", tmp_path, [*overrides, *attack_overrides("discriminator"), "audit=canaries"])
    audit = attack(cfg, out_dir)["privacy_audit"]
    assert audit["m"] == 32 and audit["n_included"] == sum(record["included"])
    assert out_dir.name == "none-l2-audit"


@pytest.mark.slow
def test_an_audit_of_a_run_without_canaries_says_how_to_train_one(tmp_path):
    from ganleaks.workflows import attack, train

    cfg, run_dir = compose_app("train", tmp_path, [])
    train(cfg, run_dir)
    cfg, out_dir = compose_app("attack", tmp_path, [*attack_overrides("discriminator"), "audit=canaries"])
    with pytest.raises(FileNotFoundError, match="trained without canaries"):
        attack(cfg, out_dir)
