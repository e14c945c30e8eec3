"""Membership metrics against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from ganleaks.evaluation.metrics import MembershipMetrics, membership_metrics


def _reference(scores: np.ndarray, labels: np.ndarray) -> dict:
    fpr, tpr, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
    positives, negatives = labels.sum(), (1 - labels).sum()
    thresholds = np.concatenate([np.unique(scores), [np.inf]])
    accuracy = max(((scores >= t) == labels).mean() for t in thresholds)
    out = {
        "auc": sk.roc_auc_score(labels, scores),
        "average_precision": sk.average_precision_score(labels, scores),
        "accuracy": accuracy,
        "n_members": int(positives),
        "n_nonmembers": int(negatives),
    }
    for target in (0.001, 0.01, 0.1):
        out[f"tpr_at_fpr_{target}"] = tpr[fpr <= target].max()
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_including_ties_and_large_losses(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 2000)
    # Scores like -(reconstruction loss): large magnitudes where a sigmoid would collapse them.
    scores = -600.0 + 80.0 * rng.standard_normal(2000) + 60.0 * labels
    scores[::9] = np.round(scores[::9], -1)  # ties
    ours = membership_metrics(torch.tensor(scores), torch.tensor(labels))
    reference = _reference(scores, labels)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    assert ours["n_failed"] == 0


def test_low_fpr_uses_the_largest_fpr_not_above_the_target():
    # 1000 non-members: FPR steps of 0.001; members score above all but a few non-members.
    rng = np.random.default_rng(3)
    nonmembers = rng.standard_normal(1000)
    members = np.concatenate([np.full(30, 10.0), rng.standard_normal(70)])
    scores = np.concatenate([members, nonmembers])
    labels = np.concatenate([np.ones(100), np.zeros(1000)]).astype(int)
    ours = membership_metrics(torch.tensor(scores), torch.tensor(labels))
    assert ours["tpr_at_fpr_0.001"] >= 0.30
    assert ours["tpr_at_fpr_0.001"] == pytest.approx(_reference(scores, labels)["tpr_at_fpr_0.001"], abs=1e-9)


def test_nan_scores_are_excluded_and_counted():
    scores = torch.tensor([0.9, float("nan"), 0.8, 0.1, float("nan"), 0.2])
    labels = torch.tensor([1, 1, 1, 0, 0, 0])
    result = membership_metrics(scores, labels)
    assert result["n_failed"] == 2 and result["n_members"] == 2 and result["n_nonmembers"] == 2
    assert result["auc"] == 1.0 and result["accuracy"] == 1.0 and result["tpr_at_fpr_0.001"] == 1.0


def test_chance_and_inverted_scores():
    labels = torch.tensor([1, 0] * 50)
    constant = membership_metrics(torch.zeros(100), labels)
    assert constant["auc"] == 0.5 and constant["tpr_at_fpr_0.01"] == 0.0 and constant["accuracy"] == 0.5
    inverted = membership_metrics(-labels.double(), labels)
    assert inverted["auc"] == 0.0


def test_one_class_gives_nan_and_bad_labels_raise():
    result = membership_metrics(torch.rand(5), torch.ones(5, dtype=torch.long))
    assert math.isnan(result["auc"]) and result["n_nonmembers"] == 0
    with pytest.raises(ValueError):
        membership_metrics(torch.rand(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError):
        membership_metrics(torch.rand(3), torch.tensor([0, 1]))


def test_metric_class_accumulates_batches():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 300)
    scores = rng.standard_normal(300) + labels
    metric = MembershipMetrics()
    for start in range(0, 300, 64):
        metric.update(torch.tensor(scores[start : start + 64]), torch.tensor(labels[start : start + 64]))
    assert metric.compute() == membership_metrics(torch.tensor(scores), torch.tensor(labels))
