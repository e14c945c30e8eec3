"""Membership-inference metrics: ROC AUC, average precision, TPR at low FPR, best accuracy.

Scores follow the house convention: higher = more likely a member; labels are 1 (member) and
0 (non-member). The functional core is :func:`membership_metrics`; :class:`MembershipMetrics`
wraps it as a torchmetrics ``Metric`` that gathers scores across processes.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_auroc, binary_average_precision, binary_roc

log = logging.getLogger(__name__)

FPR_TARGETS = (0.001, 0.01, 0.1)


def _to_unit_interval(scores: Tensor) -> Tensor:
    """Dense ranks of ``scores`` scaled into [0, 1]: same order, same ties.

    torchmetrics applies a sigmoid to scores outside [0, 1], which in floating point merges
    distinct large-magnitude scores (e.g. losses of hundreds) into ties; ranks cannot.
    """
    unique, inverse = torch.unique(scores, sorted=True, return_inverse=True)
    return inverse.double() / max(len(unique) - 1, 1)


def roc_curve(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(fpr, tpr)`` of the exact ROC (one point per distinct score, plus (0, 0)); finite scores only."""
    labels = labels.long()
    fpr, tpr, _ = binary_roc(_to_unit_interval(scores.double()), labels)
    # torchmetrics returns float32 rates; snap them to exact counts so that, e.g., an FPR of
    # 1/1000 compares equal to the 0.001 target instead of 1.00000005e-3.
    positives, negatives = int((labels == 1).sum()), int((labels == 0).sum())
    fpr = (fpr.double() * negatives).round() / max(negatives, 1)
    tpr = (tpr.double() * positives).round() / max(positives, 1)
    return fpr, tpr


def tpr_at_fpr(fpr: Tensor, tpr: Tensor, target: float) -> float:
    """TPR at the largest FPR <= ``target`` (Carlini et al. 2022); the ROC starts at (0, 0)."""
    admissible = fpr <= target + 1e-12
    return float(tpr[admissible].max()) if bool(admissible.any()) else 0.0


def membership_metrics(scores: Tensor, labels: Tensor) -> dict[str, float | int]:
    """All metrics of one attack.

    Args:
        scores: ``(N,)`` membership scores, higher = member; NaN (failed queries) and +-inf are excluded.
        labels: ``(N,)`` 1 = member, 0 = non-member.

    Returns:
        ``auc``, ``average_precision``, ``tpr_at_fpr_0.001``, ``tpr_at_fpr_0.01``,
        ``tpr_at_fpr_0.1``, ``accuracy`` (at the best threshold), ``n_members``, ``n_nonmembers``
        (queries scored) and ``n_failed`` (non-finite scores). Metrics are NaN when a class is empty.

    Example:
        >>> m = membership_metrics(torch.tensor([0.9, 0.8, 0.3, 0.1]), torch.tensor([1, 1, 0, 0]))
        >>> m["auc"], m["accuracy"], m["n_members"]
        (1.0, 1.0, 2)
    """
    scores = torch.as_tensor(scores).detach().flatten().cpu().double()
    labels = torch.as_tensor(labels).detach().flatten().cpu()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels must have the same length, got {len(scores)} and {len(labels)}")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    failed = ~torch.isfinite(scores)  # NaN (a failed query) and +-inf alike: never ranked, never in an AUC
    scores, labels = scores[~failed], labels[~failed].long()
    n_members, n_nonmembers = int((labels == 1).sum()), int((labels == 0).sum())
    result: dict[str, float | int] = {
        "n_members": n_members,
        "n_nonmembers": n_nonmembers,
        "n_failed": int(failed.sum()),
    }
    names = ["auc", "average_precision", *(f"tpr_at_fpr_{t}" for t in FPR_TARGETS), "accuracy"]
    if n_members == 0 or n_nonmembers == 0:
        log.warning("membership metrics need both members and non-members (got %d and %d)", n_members, n_nonmembers)
        result.update({name: math.nan for name in names})
        return result

    ranked = _to_unit_interval(scores)
    result["auc"] = float(binary_auroc(ranked, labels))
    result["average_precision"] = float(binary_average_precision(ranked, labels))
    fpr, tpr = roc_curve(scores, labels)
    for target in FPR_TARGETS:
        result[f"tpr_at_fpr_{target}"] = tpr_at_fpr(fpr, tpr, target)
    correct = tpr * n_members + (1 - fpr) * n_nonmembers
    result["accuracy"] = float(correct.max() / (n_members + n_nonmembers))
    return {key: result[key] for key in [*names, "n_members", "n_nonmembers", "n_failed"]}


class MembershipMetrics(Metric):
    """torchmetrics wrapper of :func:`membership_metrics` (scores gathered, then computed once)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, labels: Tensor) -> None:
        self.scores.append(scores.detach().flatten().double())
        self.labels.append(labels.detach().flatten().long())

    def compute(self) -> dict[str, float | int]:
        scores = self.scores if isinstance(self.scores, Tensor) else torch.cat(self.scores)
        labels = self.labels if isinstance(self.labels, Tensor) else torch.cat(self.labels)
        return membership_metrics(scores, labels)
