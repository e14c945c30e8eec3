"""Per-record risk (most_exposed.csv / .png) and the one-page HTML summary of an attack run."""

from __future__ import annotations

import csv
import html
import json
import math

import numpy as np
import pytest
import torch
import yaml

from ganleaks.evaluation.estimates import INTERVAL_KEYS, format_estimate
from ganleaks.evaluation.exposure import (
    EXPOSED_HEADER,
    most_exposed,
    nonmember_percentile,
    read_scores_csv,
    write_most_exposed,
)
from ganleaks.evaluation.metrics import membership_metrics
from ganleaks.evaluation.plots import plot_roc
from ganleaks.evaluation.summary import SUMMARY_NAME, attack_command, write_summary
from ganleaks.settings import WhiteBoxEngine

IDS = ["m/a.png", "m/b.png", "m/c.png", "m/d.png", "n/e.png", "n/f.png", "n/g.png"]
LABELS = [1, 1, 1, 1, 0, 0, 0]
SCORES = [0.9, 0.1, math.nan, 0.5, 0.2, 0.5, 0.3]
LOSSES = [-0.9, -0.1, math.nan, -0.5, -0.2, -0.5, -0.3]


def test_most_exposed_ranks_members_by_score_with_their_nonmember_percentile():
    records = most_exposed(IDS, LABELS, SCORES, LOSSES, n=10)
    assert [r.id for r in records] == ["m/a.png", "m/d.png", "m/b.png"]  # the failed query (NaN) is not listed
    assert [r.rank for r in records] == [1, 2, 3]
    # 0.9 is above all three non-members; 0.5 is above 0.2 and 0.3 and ties 0.5 (counted half); 0.1 above none.
    assert [r.nonmember_percentile for r in records] == pytest.approx([100.0, 250 / 3, 0.0])
    assert [r.loss for r in records] == [-0.9, -0.5, -0.1]
    assert len(most_exposed(IDS, LABELS, SCORES, n=1)) == 1
    assert math.isnan(nonmember_percentile(np.array([1.0]), np.array([]))[0])


def test_most_exposed_files_hold_the_ranking_and_a_picture(tmp_path):
    queries = torch.rand(7, 1, 16, 16) * 2 - 1
    records = write_most_exposed(tmp_path, IDS, LABELS, SCORES, LOSSES, queries=queries, reconstructions=-queries, n=2)
    with open(tmp_path / "most_exposed.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == EXPOSED_HEADER
    assert rows[1][:4] == ["1", "m/a.png", "0.9", "-0.9"] and float(rows[1][4]) == 100.0
    assert [row[1] for row in rows[1:]] == [r.id for r in records] == ["m/a.png", "m/d.png"]
    assert (tmp_path / "most_exposed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["most_exposed.csv", "most_exposed.png"]  # no temporaries

    tabular = tmp_path / "tabular"
    write_most_exposed(tabular, IDS, LABELS, SCORES, queries=torch.zeros(7, 5))
    assert (tabular / "most_exposed.csv").is_file() and not (tabular / "most_exposed.png").exists()


def test_scores_csv_reads_back(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text(
        "id,member,victim_loss,reference_loss,score,status\ntrain/a.png,1,0.25,,-0.25,ok\nholdout/b.png,0,,,,diverged\n"
    )
    ids, labels, scores, losses = read_scores_csv(path)
    assert ids == ["train/a.png", "holdout/b.png"] and labels.tolist() == [1, 0]
    assert scores[0] == -0.25 and math.isnan(scores[1]) and losses[0] == 0.25
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an attack's scores.csv"):
        read_scores_csv(tmp_path / "other.csv")


@pytest.fixture
def attack_run(tmp_path):
    """A finished white-box attack run of a DP victim: metrics from seeded scores, ROC, most exposed, run.json."""
    victim = tmp_path / "train" / "dpgan"
    victim.mkdir(parents=True)
    (victim / "privacy.json").write_text(json.dumps({"epsilon": 3.21, "delta": 1e-5, "noise_multiplier": 1.1}))
    run = tmp_path / "attack" / "whitebox"
    run.mkdir(parents=True)
    rng = torch.Generator().manual_seed(0)
    labels = torch.tensor([1] * 40 + [0] * 40)
    scores = torch.randn(80, generator=rng, dtype=torch.float64) + labels
    scores[0] = 5.0  # the member with the hostile id is the most exposed one
    metrics = membership_metrics(scores, labels)
    (run / "metrics.json").write_text(json.dumps(metrics))
    plot_roc(scores, labels, run / "roc.png")
    ids = [f"<script>alert({i})</script>.png" if i == 0 else f"q{i}" for i in range(80)]
    write_most_exposed(run, ids, labels.tolist(), scores.tolist(), queries=torch.zeros(80, 1, 16, 16), n=5)
    overrides = ["setting=whitebox", f"victim.run_dir={victim}", "victim.output_range=[0,1]"]
    config = {
        "seed": 0,
        "data": {"name": "digits", "train_size": 40},
        "model": {"name": "dpgan"},
        "setting": {"name": "whitebox"},
        "calibration": {"name": "none"},
        "distance": {"name": "l2"},
        "victim": {"run_dir": str(victim)},
    }
    record = {"version": 1, "config": config, "metrics": metrics, "hydra_subdir": ".hydra",
              "hydra_files": {"overrides.yaml": yaml.safe_dump(overrides)}}  # fmt: skip
    (run / "run.json").write_text(json.dumps(record))
    return run, metrics


def test_the_summary_page_holds_the_numbers_of_metrics_json(attack_run):
    run, metrics = attack_run
    page = write_summary(run).read_text()
    assert (run / SUMMARY_NAME).is_file()
    for key in INTERVAL_KEYS:
        assert html.escape(format_estimate(metrics, key)) in page, key
    assert metrics["auc_ci"] is not None
    assert json.dumps(float(f"{metrics['auc']:.6g}")) in page  # metrics.json, its numbers to 6 digits
    assert json.dumps(metrics["auc"]) not in page  # no 17-digit floats on the page
    assert f"{metrics['n_members']} members" in page
    assert "&epsilon; = 3.21" in page and "&delta; = 1e-05" in page
    assert html.escape(WhiteBoxEngine.description) in page  # the run's setting's class says what the attacker had


def test_the_summary_page_is_self_contained_and_escaped(attack_run):
    run, _ = attack_run
    page = write_summary(run).read_text()
    assert page.count('src="data:image/png;base64,') == 2  # ROC and most exposed members
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "&lt;script&gt;alert(0)&lt;/script&gt;.png" in page
    assert attack_command(
        run
    ) == "python attack.py setting=whitebox victim.run_dir={} 'victim.output_range=[0,1]'".format(
        run.parent.parent / "train" / "dpgan"
    )
    assert "victim.output_range=[0,1]" in page


def test_a_summary_without_privacy_or_record_says_so(tmp_path):
    metrics = membership_metrics(torch.tensor([0.9, 0.2, 0.8, 0.1]), torch.tensor([1, 0, 1, 0]))
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    page = write_summary(tmp_path).read_text()
    assert "not trained with differential privacy" in page and "not recorded" in page
    assert html.escape(format_estimate(metrics, "auc")) in page


@pytest.mark.parametrize(
    ("facts", "said", "not_said"),
    [
        ({"privacy": "unknown"}, "How this model was trained is not known here", "not trained with differential"),
        (
            {"privacy": "declared", "epsilon": 2.0, "delta": 1e-6},
            "declared for this model, not checked here: &epsilon; = 2, &delta; = 1e-06",
            "from the privacy accountant",
        ),
    ],
)
def test_a_users_model_is_never_said_to_be_trained_without_dp(tmp_path, facts, said, not_said):
    """Nobody here knows how a user's artefact was trained: the page says so, or repeats the user's declaration."""
    metrics = membership_metrics(torch.tensor([0.9, 0.2, 0.8, 0.1]), torch.tensor([1, 0, 1, 0]))
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics, **facts}))
    page = write_summary(tmp_path).read_text()
    assert said in page and not_said not in page
