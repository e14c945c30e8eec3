"""Membership metrics against scikit-learn, and their bootstrap intervals."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn import metrics as sk

from ganleaks.evaluation.estimates import INTERVAL_KEYS, format_estimate
from ganleaks.evaluation.metrics import _rank_metrics, membership_metrics


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
        # Not estimable (None) unless one false positive is possible at that FPR.
        out[f"tpr_at_fpr_{target}"] = tpr[fpr <= target].max() if negatives >= round(1 / target) else None
    return out


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_including_ties_and_large_losses(seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 2000)
    # Scores like -(reconstruction loss): large magnitudes where a sigmoid would collapse them.
    scores = -600.0 + 80.0 * rng.standard_normal(2000) + 60.0 * labels
    if ties:
        scores[::9] = np.round(scores[::9], -1)
    assert (len(np.unique(scores)) < len(scores)) == ties
    ours = membership_metrics(torch.tensor(scores), torch.tensor(labels))
    reference = _reference(scores, labels)
    for key, value in reference.items():
        assert ours[key] == (None if value is None else pytest.approx(value, abs=1e-6)), key
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
    assert result["auc"] == 1.0 and result["accuracy"] == 1.0
    # Two non-members cannot resolve an FPR of 0.1%: not estimable rather than the TPR at zero FPR.
    assert result["tpr_at_fpr_0.001"] is None and result["tpr_at_fpr_0.001_ci"] is None
    assert result["not_estimable"]["tpr_at_fpr_0.001"] == "needs at least 1000 non-members, got 2"


def test_chance_and_inverted_scores():
    labels = torch.tensor([1, 0] * 50)
    constant = membership_metrics(torch.zeros(100), labels)
    assert constant["auc"] == 0.5 and constant["tpr_at_fpr_0.1"] == 0.0 and constant["accuracy"] == 0.5
    inverted = membership_metrics(-labels.double(), labels)
    assert inverted["auc"] == 0.0


def test_one_class_gives_nan_and_bad_labels_raise():
    result = membership_metrics(torch.rand(5), torch.ones(5, dtype=torch.long))
    assert math.isnan(result["auc"]) and result["n_nonmembers"] == 0
    with pytest.raises(ValueError):
        membership_metrics(torch.rand(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError):
        membership_metrics(torch.rand(3), torch.tensor([0, 1]))


# ---------------------------------------------------------------------------------------------
# Intervals and estimability


def _two_normals(n_per_class: int, separation: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Members ~ N(d, 1), non-members ~ N(0, 1): AUC = Phi(d / sqrt 2)."""
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.standard_normal(n_per_class) + separation, rng.standard_normal(n_per_class)])
    labels = np.concatenate([np.ones(n_per_class), np.zeros(n_per_class)]).astype(int)
    return torch.tensor(scores), torch.tensor(labels)


def _width(interval: list[float]) -> float:
    return interval[1] - interval[0]


def test_intervals_contain_the_estimate_and_narrow_with_the_sample():
    small = membership_metrics(*_two_normals(50, 1.0, seed=0))
    large = membership_metrics(*_two_normals(2000, 1.0, seed=0))
    for result in (small, large):
        assert (result["ci_level"], result["n_bootstrap"]) == (0.95, 1000) and "percentile" in result["ci_method"]
    for key in ("auc", "average_precision", "tpr_at_fpr_0.1"):
        for result in (small, large):
            low, high = result[f"{key}_ci"]
            assert low <= result[key] <= high and low < high, key
        assert _width(large[f"{key}_ci"]) < 0.5 * _width(small[f"{key}_ci"]), key  # ~ 1/sqrt(n): 6x narrower
    # Only 50 non-members: the 1% and 0.1% TPRs are not estimable, with null intervals.
    assert small["tpr_at_fpr_0.01"] is None and small["tpr_at_fpr_0.01_ci"] is None
    assert large["tpr_at_fpr_0.001"] is not None and large["tpr_at_fpr_0.001_ci"] is not None


def test_the_same_seed_gives_the_same_interval():
    scores, labels = _two_normals(300, 0.5, seed=1)
    first = membership_metrics(scores, labels, seed=7)
    assert membership_metrics(scores, labels, seed=7) == first
    other = membership_metrics(scores, labels, seed=8)
    assert other["auc"] == first["auc"] and other["auc_ci"] != first["auc_ci"]
    assert membership_metrics(scores, labels)["ci_seed"] == 0  # a fixed default


def test_tpr_at_low_fpr_needs_enough_nonmembers():
    rng = np.random.default_rng(5)
    for n_nonmembers, estimable in ((256, False), (999, False), (1000, True)):
        scores = torch.tensor(np.concatenate([rng.standard_normal(200) + 2, rng.standard_normal(n_nonmembers)]))
        labels = torch.tensor([1] * 200 + [0] * n_nonmembers)
        result = membership_metrics(scores, labels)
        assert "tpr_at_fpr_0.001" in result and "tpr_at_fpr_0.001_ci" in result  # the keys stay (SPEC contract)
        if estimable:
            assert isinstance(result["tpr_at_fpr_0.001"], float) and len(result["tpr_at_fpr_0.001_ci"]) == 2
            assert "tpr_at_fpr_0.001" not in result["not_estimable"]
        else:
            assert result["tpr_at_fpr_0.001"] is None and result["tpr_at_fpr_0.001_ci"] is None
            assert result["not_estimable"]["tpr_at_fpr_0.001"] == (
                f"needs at least 1000 non-members, got {n_nonmembers}"
            )
        assert isinstance(result["tpr_at_fpr_0.01"], float)  # 100 suffice for 1%


def test_bootstrap_statistic_equals_the_point_estimates_on_tied_scores():
    # The vectorised statistic the intervals resample must follow the point estimate's tie convention.
    rng = np.random.default_rng(6)
    scores = np.round(rng.standard_normal(2400) + np.r_[np.full(1200, 0.7), np.zeros(1200)], 1)  # heavy ties
    labels = np.r_[np.ones(1200), np.zeros(1200)].astype(int)
    levels = np.unique(scores, return_inverse=True)[1]
    targets = (0.001, 0.01, 0.1)
    statistic = _rank_metrics(levels[labels == 1][None], levels[labels == 0][None], int(levels.max()) + 1, targets)
    point = membership_metrics(torch.tensor(scores), torch.tensor(labels), n_resamples=0)
    expected = [point["auc"], point["average_precision"], *(point[f"tpr_at_fpr_{t}"] for t in targets)]
    np.testing.assert_allclose(statistic[:, 0], expected, atol=1e-6)
    assert point["auc_ci"] is None and point["not_estimable"]["auc_ci"].startswith("intervals not computed")


def test_degenerate_inputs_give_sensible_intervals_without_warnings():
    labels = torch.tensor([1] * 20 + [0] * 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        constant = membership_metrics(torch.zeros(40), labels)
        perfect = membership_metrics(labels.double(), labels)
        single = membership_metrics(torch.tensor([0.9, 0.1, 0.2, 0.3]), torch.tensor([1, 0, 0, 0]))
    assert constant["auc_ci"] == [0.5, 0.5] and constant["tpr_at_fpr_0.1_ci"] == [0.0, 0.0]
    assert perfect["auc"] == 1.0 and perfect["auc_ci"] == [1.0, 1.0] and perfect["tpr_at_fpr_0.1_ci"] == [1.0, 1.0]
    assert single["auc"] == 1.0 and all(single[f"{key}_ci"] is None for key in INTERVAL_KEYS)
    assert single["not_estimable"]["auc_ci"] == (
        "a bootstrap interval needs at least 2 members and 2 non-members, got 1 and 3"
    )
    assert single["ci_method"] is None and single["n_bootstrap"] == 0


def test_auc_interval_covers_the_true_auc_about_95_percent_of_the_time():
    separation = 1.0
    true_auc = norm.cdf(separation / math.sqrt(2))
    repetitions = 100
    covered = 0
    for repetition in range(repetitions):
        low, high = membership_metrics(*_two_normals(150, separation, seed=100 + repetition), seed=repetition)["auc_ci"]
        covered += low <= true_auc <= high
    # 95% nominal; 100 repetitions have a binomial standard deviation of ~2.2 points.
    assert 0.88 <= covered / repetitions <= 0.99


def test_intervals_are_fast():
    # The figure quoted in membership_metrics' docstring (2 x 10,000 queries, 1,000 resamples).
    scores, labels = _two_normals(10_000, 0.5, seed=2)
    started = time.process_time()
    result = membership_metrics(scores, labels)
    assert time.process_time() - started < 1.5 and result["auc_ci"] is not None


def test_format_estimate_copes_with_nulls_and_old_results():
    result = membership_metrics(torch.tensor([0.9, 0.8, 0.3, 0.1]), torch.tensor([1, 1, 0, 0]))
    assert format_estimate(result, "auc") == "1.000 [1.000, 1.000]"  # a zero-width interval: 3 decimals
    # Decimals follow the interval's width (two significant digits of it).
    assert format_estimate({"auc": 0.9123, "auc_ci": [0.8712, 0.9467]}, "auc") == "0.912 [0.871, 0.947]"
    assert format_estimate({"t": 0.3012, "t_ci": [0.2134, 0.4021]}, "t") == "0.30 [0.21, 0.40]"
    assert format_estimate({"t": 0.00361, "t_ci": [0.00221, 0.00690]}, "t") == "0.0036 [0.0022, 0.0069]"
    assert format_estimate(result, "tpr_at_fpr_0.001") == "n/a (needs >= 1000 non-members)"
    assert format_estimate({"auc": 0.91234}, "auc") == "0.912"  # written before intervals existed
    assert format_estimate({"auc": None}, "auc") == "n/a"
    assert format_estimate({"auc": float("nan")}, "auc", digits=2) == "n/a"
