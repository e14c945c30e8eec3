"""Every number with its evidence: verdicts that say when a run cannot decide or makes no sense, the
counts a run really used, and a summary page a data owner can act on (issue 23, parts 3-5)."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from omegaconf import OmegaConf

from ganleaks.evaluation.estimates import MAX_FAILED_FRACTION, result_lines, verdict
from ganleaks.evaluation.metrics import membership_metrics, roc_curve, tpr_at_fpr
from ganleaks.evaluation.runs import load_run
from ganleaks.evaluation.summary import render_summary
from ganleaks.evaluation.tables import to_csv
from ganleaks.orchestration.run_record import attack_facts

LABELS_200 = torch.tensor([1] * 200 + [0] * 200)


def gaussian(shift: float, n: int = 200, seed: int = 0) -> torch.Tensor:
    """``n`` members shifted by ``shift`` above ``n`` standard-normal non-members."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(n, generator=g) + shift, torch.randn(n, generator=g)]).double()


def status(scores, labels, **extra) -> str:
    metrics = membership_metrics(torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(labels))
    metrics.update(extra)
    return verdict(metrics)["status"]


def test_one_member_and_two_nonmembers_are_inconclusive_and_never_a_bare_auc():
    metrics = membership_metrics(torch.tensor([0.9, 0.1, 0.2]), torch.tensor([1, 0, 0]))
    assert metrics["auc"] == 1.0 and metrics["auc_ci"] is None
    assert metrics["verdict"]["status"] == "inconclusive" and not metrics["verdict"]["decided"]
    lines = result_lines(metrics, "fullbb", "none")
    assert lines[0].startswith("INCONCLUSIVE (not a verdict): too few queries")
    assert "AUC 1.000 (no interval: a bootstrap interval needs at least 2 members" in lines[1]
    assert not re.search(r"AUC \d\.\d+ +TPR", lines[1])  # no AUC standing alone


def test_constant_scores_are_no_signal_not_a_verdict():
    # calibrated scores all zero: a calibration set identical to the victim's samples
    metrics = membership_metrics(torch.zeros(400, dtype=torch.float64), LABELS_200)
    assert metrics["auc_ci"] == [0.5, 0.5]
    assert metrics["verdict"]["status"] == "no signal" and not metrics["verdict"]["decided"]
    assert "same score" in metrics["verdict"]["reasons"][0]


def test_an_auc_far_below_chance_is_flagged():
    assert status(-gaussian(1.0), LABELS_200) == "flagged"  # members scored as less likely: a sign error
    assert status(gaussian(1.0), 1 - LABELS_200) == "flagged"  # labels swapped
    assert status(-gaussian(1.0)[:6], [1, 1, 1, 0, 0, 0]) == "inconclusive"  # 3 v 3: chance does that


def test_many_failed_queries_are_flagged():
    scores = gaussian(1.0)
    assert status(scores, LABELS_200) == "leakage"
    failed = math.floor(MAX_FAILED_FRACTION * 400)
    assert status(scores, LABELS_200, n_failed=failed) == "leakage"  # at most the documented fraction
    scores[: failed + 1] = math.nan  # NaN: a failed query, excluded from the metrics and counted
    metrics = membership_metrics(scores, LABELS_200)
    assert metrics["n_failed"] == failed + 1 and metrics["verdict"]["status"] == "flagged"
    assert status([math.nan] * 4, [1, 1, 0, 0]) == "flagged"  # nothing measured at all
    assert status([0.9, 0.8, 0.7], [1, 1, 1]) == "flagged"  # members only


def test_members_and_nonmembers_with_the_same_scores_are_flagged():
    x = torch.randn(300, generator=torch.Generator().manual_seed(1)).double()
    metrics = membership_metrics(torch.cat([x, x]), torch.tensor([1] * 300 + [0] * 300))
    assert metrics["verdict"]["status"] == "flagged" and "same records" in metrics["verdict"]["reasons"][0]


def test_the_interval_width_decides_between_inconclusive_and_no_evidence():
    assert status(gaussian(0.0, n=50), [1] * 50 + [0] * 50) == "inconclusive"  # [0.4, 0.6]: cannot rule out 0.6
    assert status(gaussian(0.0, n=1000, seed=3), [1] * 1000 + [0] * 1000) == "no evidence of leakage"
    assert status(gaussian(3.0, n=5), [1] * 5 + [0] * 5) == "inconclusive"  # too few members
    assert status(torch.arange(20.0), [0] * 10 + [1] * 10) == "leakage"  # 10 v 10, perfectly apart


def test_each_tpr_records_the_fpr_it_was_read_at_and_its_threshold():
    scores, labels = gaussian(1.0, n=1000), torch.tensor([1] * 1000 + [0] * 1000)
    metrics = membership_metrics(scores, labels)
    fpr, tpr = roc_curve(scores, labels)
    for target in (0.001, 0.01, 0.1):
        key = f"tpr_at_fpr_{target}"
        threshold, realised = metrics[f"{key}_threshold"], metrics[f"{key}_realised_fpr"]
        assert realised <= target
        assert metrics[key] == tpr_at_fpr(fpr, tpr, target) == float((scores[:1000] > threshold).double().mean())
        assert realised == float((scores[1000:] > threshold).double().mean())
    small = membership_metrics(scores[990:1030], labels[990:1030])  # 10 members, 30 non-members
    assert small["tpr_at_fpr_0.01_threshold"] is None and "tpr_at_fpr_0.01_threshold" in small["not_estimable"]


def test_a_run_records_the_k_it_used_not_the_k_it_asked_for():
    from ganleaks.settings.full_black_box import FullBlackBoxEngine
    from ganleaks.settings.monte_carlo import MonteCarloEngine
    from ganleaks.victims.stored_samples import StoredSampleGenerator

    samples = StoredSampleGenerator(torch.zeros(128, 4))
    engine = FullBlackBoxEngine(samples, None, 0, k=10000, chunk_size=64, rerank_top=1, bank_cache_mb=0)
    assert engine.counts_used() == {"k": 128}
    monte_carlo = MonteCarloEngine(samples, 0, k=10000, chunk_size=64, bank_cache_mb=0, epsilon_rule="nearest",
                                   quantile=0.5)  # fmt: skip
    assert monte_carlo.counts_used() == {"k": 128}
    cfg = OmegaConf.create({"setting": {"name": "fullbb", "k": 10000}, "calibration": {"name": "none"},
                            "distance": {"name": "l2"}, "seed": 0})  # fmt: skip
    facts = attack_facts(cfg, {}, None, engine.counts_used())
    assert (facts["k"], facts["k_requested"]) == (128, 10000)
    assert "k_requested" not in attack_facts(cfg, {}, None, {"k": 10000})


def write_run(run_dir, metrics, facts):
    run_dir.mkdir(parents=True)
    metrics = {**metrics, **facts}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    config = {"setting": {"name": facts["setting"]}, "seed": 0}
    (run_dir / "run.json").write_text(json.dumps({"version": 2, "config": config, "metrics": metrics, "facts": facts}))
    return run_dir


USER_FACTS = {"setting": "fullbb", "k": 128, "k_requested": 10000, "calibration": "none", "distance": "l2",
              "victim_run_dir": "samples.npy", "data": "members+nonmembers", "model": "samples", "train_size": 1,
              "privacy": "unknown", "seed": 0, "victim_kind": "samples"}  # fmt: skip


def test_the_summary_page_states_the_verdict_in_one_sentence_with_its_interval(tmp_path):
    metrics = membership_metrics(torch.tensor([0.9, 0.1, 0.2]), torch.tensor([1, 0, 0]))
    page = render_summary(write_run(tmp_path / "few", metrics, USER_FACTS))
    sentence = re.search(r'<p class="headline"><strong>(.*?)</strong></p>', page).group(1)
    assert sentence.startswith("A full black-box attack (the attacker saw only a set of generated samples")
    assert "the user&#x27;s generated sample set (samples.npy)" in sentence
    assert "AUC 1.000 (no interval" in sentence and "INCONCLUSIVE" in sentence

    metrics = membership_metrics(gaussian(1.0, n=1000), torch.tensor([1] * 1000 + [0] * 1000))
    page = render_summary(write_run(tmp_path / "many", metrics, {**USER_FACTS, "victim_kind": "run"}))
    sentence = re.search(r'<p class="headline"><strong>(.*?)</strong></p>', page).group(1)
    auc_ci = metrics["auc_ci"]
    assert f"[{auc_ci[0]:.3f}, {auc_ci[1]:.3f}]" in sentence and "leaks membership" in sentence
    assert "realised FPR" in page and f"score &gt; {metrics['tpr_at_fpr_0.01_threshold']:.6g}" in page
    assert not re.search(r"\d\.\d{9,}", page.split("<details>")[0])  # no long floats on the page


def test_the_report_tells_user_victims_from_trained_ones(tmp_path):
    metrics = membership_metrics(gaussian(1.0, n=20), torch.tensor([1] * 20 + [0] * 20))
    user = load_run(write_run(tmp_path / "user", metrics, USER_FACTS))
    trained = load_run(write_run(tmp_path / "trained", metrics, {**USER_FACTS, "victim_kind": None}))
    assert (user["victim_kind"], trained["victim_kind"]) == ("samples", "run")
    assert user["k"] == 128  # the k used
    header, *rows = to_csv([user, trained]).splitlines()
    column = header.split(",").index("victim_kind")
    assert [row.split(",")[column] for row in rows] == ["samples", "run"]


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_the_verdict_of_an_older_run_is_computed_from_its_numbers(shift):
    from ganleaks.evaluation.estimates import verdict_of

    metrics = membership_metrics(gaussian(shift, n=1000), torch.tensor([1] * 1000 + [0] * 1000))
    recorded = metrics.pop("verdict")
    assert verdict_of(metrics)["status"] == recorded["status"]


def test_the_summary_page_says_how_many_samples_were_searched(tmp_path):
    metrics = membership_metrics(gaussian(1.0, n=20), torch.tensor([1] * 20 + [0] * 20))
    page = render_summary(write_run(tmp_path / "user", metrics, USER_FACTS))
    assert "128 (setting.k=10000: only 128 available)" in page
