"""ganleaks.evaluation.claims: paired AUC differences with bootstrap intervals, and the claims' verdicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc

from ganleaks.evaluation.claims import (
    _auc,
    check_claims,
    claims_markdown,
    paired_difference,
    read_scores,
    unpaired_difference,
    verdict,
)


def write_scores(run_dir, ids, labels, scores):
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = ["id,member,victim_loss,reference_loss,score,status"]
    lines += [f"{i},{m},{-float(s)!r},,{float(s)!r},ok" for i, m, s in zip(ids, labels, scores, strict=True)]
    lines.append(f"{max(ids) + 1},1,,,,diverged")  # a failed query: left out
    (run_dir / "scores.csv").write_text("\n".join(lines) + "\n")
    return run_dir


def scores_dict(labels, scores):
    return {str(i): (int(m), float(s)) for i, (m, s) in enumerate(zip(labels, scores, strict=True))}


def test_auc_is_torchmetrics_auroc_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(size=300) + labels, 1)  # rounded: many ties
    ours = float(_auc(scores[labels == 1], scores[labels == 0]))
    reference = binary_auroc(torch.tensor(scores, dtype=torch.float64), torch.tensor(labels))
    assert ours == pytest.approx(float(reference), abs=1e-6)


def test_paired_difference_resolves_a_clear_gap_and_not_a_tie():
    rng = np.random.default_rng(1)
    labels = np.repeat([1, 0], 200)
    strong = rng.normal(size=400) + 2.0 * labels  # AUC ~0.92
    weak = rng.normal(size=400) + 0.2 * labels  # AUC ~0.56
    diff, interval, n = paired_difference(scores_dict(labels, strong), scores_dict(labels, weak))
    assert n == 400 and 0.25 < diff < 0.45 and interval[0] > 0.15 and verdict(diff, interval) == "holds"
    diff, interval, _ = paired_difference(scores_dict(labels, weak), scores_dict(labels, strong))
    assert verdict(diff, interval) == "reversed"
    same = paired_difference(scores_dict(labels, weak), scores_dict(labels, weak))
    assert same[0] == 0 and same[1] == (0.0, 0.0) and verdict(same[0], same[1]) == "not resolved"
    noisy = scores_dict(labels, weak + rng.normal(scale=0.05, size=400))
    diff, interval, _ = paired_difference(scores_dict(labels, weak), noisy)
    assert interval[0] < 0 < interval[1] and verdict(diff, interval) == "not resolved"
    # Paired: the shared difficulty of the queries cancels, so the interval is much narrower than unpaired.
    shifted = scores_dict(labels, strong + 0.3 * labels)
    paired = paired_difference(shifted, scores_dict(labels, strong))
    unpaired = unpaired_difference(shifted, scores_dict(labels, strong))
    assert paired[1][1] - paired[1][0] < 0.6 * (unpaired[1][1] - unpaired[1][0])


def test_runs_that_label_a_query_differently_are_refused():
    with pytest.raises(ValueError, match="not attacks on the same split"):
        paired_difference({"1": (1, 0.3), "2": (0, 0.1)}, {"1": (0, 0.3), "2": (0, 0.1)})


def test_claims_on_a_small_study(tmp_path):
    """A synthetic study where white-box separates most, calibration helps, and leakage falls with n."""
    rng = np.random.default_rng(2)
    rows = []
    strength = {"whitebox": 2.0, "partialbb": 1.0, "fullbb": 0.5}
    for size, scale in ((64, 1.0), (256, 0.5), (1024, 0.1)):
        n = 100
        ids = list(range(size, size + 2 * n))  # different members per size
        labels = np.repeat([1, 0], n)
        noise = rng.normal(size=2 * n)
        for setting, s in strength.items():
            for calibration, boost in (("none", 0.0), ("reference", 1.0)):
                scores = noise + (s + boost) * scale * labels + rng.normal(scale=0.3, size=2 * n)
                run = write_scores(tmp_path / f"n{size}" / setting / calibration, ids, labels, scores)
                auc = float(_auc(scores[labels == 1], scores[labels == 0]))
                rows.append(
                    {"model": "toy", "train_size": size, "setting": setting, "calibration": calibration}
                    | {"k": 10 if setting == "fullbb" else None, "epsilon": None, "auc": auc, "run_dir": str(run)}
                )
    assert len(read_scores(rows[0]["run_dir"])) == 200  # the failed query is not read
    lines = check_claims(rows)
    by_claim = {claim: [line for line in lines if line[0] == claim] for claim in ("C1", "C2", "C3")}
    assert len(by_claim["C1"]) == 6 and len(by_claim["C2"]) == 3 * 2 * 2 and len(by_claim["C3"]) == 3 * 3
    c1 = [line for line in by_claim["C1"] if "whitebox calibrated" in line[1]]
    assert c1[0][-1] == "holds" and c1[0][1] == "toy whitebox calibrated: n=64 vs n=1024"
    strong = [line for line in by_claim["C2"] if line[1].startswith("toy n=64") and "whitebox vs partialbb" in line[1]]
    assert {line[-1] for line in strong} == {"holds"}
    assert all(line[-1] == "holds" for line in by_claim["C3"] if "n=64" in line[1])
    two_sizes = [row for row in rows if row["train_size"] != 256]
    assert not [line for line in check_claims(two_sizes) if line[0] == "C1"]  # a trend needs three sizes
    text = claims_markdown(rows)
    assert text.splitlines()[0].startswith("| claim | what is compared | holds |")
    assert sum(line.startswith("| C") for line in text.splitlines()) == 3 + len(lines)


def test_c4_compares_each_dp_victim_with_the_no_dp_baseline_on_the_same_queries(tmp_path):
    rng = np.random.default_rng(3)
    labels = np.repeat([1, 0], 150)
    ids = list(range(300))
    rows = []
    for epsilon, signal in ((None, 1.5), (100.0, 0.8), (1.0, 0.0)):
        scores = rng.normal(size=300) + signal * labels
        run = write_scores(tmp_path / f"eps{epsilon}", ids, labels, scores)
        rows.append(
            {"model": "dpgan", "train_size": 256, "setting": "whitebox", "calibration": "none", "k": None}
            | {"epsilon": epsilon, "auc": float(_auc(scores[labels == 1], scores[labels == 0])), "run_dir": str(run)}
        )
    c4 = [line for line in check_claims(rows) if line[0] == "C4"]
    assert [line[1] for line in c4] == [
        "whitebox uncalibrated: no DP vs epsilon=100",
        "whitebox uncalibrated: no DP vs epsilon=1",
    ]
    assert [line[-1] for line in c4] == ["holds", "holds"]
    assert float(c4[1][4].split()[0]) > float(c4[0][4].split()[0])  # the tighter budget loses more
