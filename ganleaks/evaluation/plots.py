"""Figures of an attack run: the ROC (linear and log-log) and queries beside their reconstructions."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ganleaks.evaluation.estimates import FPR_TARGETS, format_estimate
from ganleaks.evaluation.metrics import membership_metrics, roc_curve
from ganleaks.io import atomic_path

log = logging.getLogger(__name__)


def save_figure(figure: plt.Figure, path: str | os.PathLike) -> Path:
    """Write the figure atomically (a crash never leaves half a PNG), creating its folder, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def plot_roc(scores: Tensor, labels: Tensor, path: str | os.PathLike, title: str | None = None) -> Path:
    """ROC curve on linear axes (left) and log-log axes (right, low-FPR regime), with chance lines.

    Args:
        scores: ``(N,)`` higher = member; NaN scores are left out.
        labels: ``(N,)`` 1 = member, 0 = non-member.
        path: the PNG to write.
    """
    scores = torch.as_tensor(scores).detach().flatten().cpu().double()
    labels = torch.as_tensor(labels).detach().flatten().cpu().long()
    keep = ~torch.isnan(scores)
    metrics = membership_metrics(scores, labels)
    figure, (linear, loglog) = plt.subplots(1, 2, figsize=(10, 4.5))
    n_nonmembers = int((labels[keep] == 0).sum())
    floor = 1 / (2 * max(n_nonmembers, 1))  # where FPR = 0 is drawn on the log axis (log 0 has no place)
    if int(labels[keep].sum()) and n_nonmembers:
        fpr, tpr = roc_curve(scores[keep], labels[keep])
        auc, tpr_1 = (format_estimate(metrics, key, with_interval=True) for key in ("auc", "tpr_at_fpr_0.01"))
        label = re.sub(r" \((no interval|needs >= \d+ non-members)[^)]*\)", r" (\1)", f"AUC {auc}, TPR@1%FPR {tpr_1}")
        linear.plot(fpr.numpy(), tpr.numpy(), label=label)
        loglog.plot(fpr.clamp(min=floor).numpy(), tpr.numpy(), label=label)
        for target in FPR_TARGETS:  # each TPR at fixed FPR where it was read (realised FPR), if estimable
            key = f"tpr_at_fpr_{target}"
            if metrics.get(key) is not None and metrics.get(f"{key}_realised_fpr") is not None:
                point = (max(metrics[f"{key}_realised_fpr"], floor), max(metrics[key], floor))
                loglog.plot(*point, "o", color="tab:red", markersize=4)
                loglog.annotate(f"TPR@{target:.1%}", point, fontsize=7, xytext=(3, -9), textcoords="offset points")
    n = max(int(keep.sum()), 2)
    low = min(1 / n, floor)
    linear.plot([0, 1], [0, 1], "k--", linewidth=1, label="chance")
    loglog.plot([low, 1], [low, 1], "k--", linewidth=1, label="chance")
    linear.set(xlim=(0, 1), ylim=(0, 1), xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    loglog.set(xscale="log", yscale="log", xlim=(low, 1), ylim=(low, 1),
               xlabel=f"false positive rate (FPR 0 drawn at {floor:.2g})", ylabel="true positive rate",
               title="ROC (log-log: the low-FPR regime)")  # fmt: skip
    for axis in (linear, loglog):
        axis.legend(loc="lower right", fontsize=8)
        axis.grid(alpha=0.3)
    found = metrics["verdict"]
    status = "" if found["decided"] else f"{found['status'].upper()} (not a verdict)"
    if title or status:
        figure.suptitle(" - ".join(part for part in (title, status) if part))
    return save_figure(figure, path)


def _as_image(x: Tensor):
    """``(C, H, W)`` in [-1, 1] -> an array for imshow (H, W) or (H, W, 3) in [0, 1]."""
    x = (x.detach().float().cpu().clamp(-1, 1) + 1) / 2
    return x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy()


def save_reconstruction_grid(
    queries: Tensor,
    reconstructions: Tensor,
    labels: Tensor,
    path: str | os.PathLike,
    n: int = 8,
    reference_reconstructions: Tensor | None = None,
) -> Path:
    """Members and non-members (columns) above their reconstructions (rows), as in paper Fig. 3.

    Rows: query, reconstruction by the victim, and (optionally) by the reference model. Up to
    ``n`` members then up to ``n`` non-members are shown, in the given order.

    Args:
        queries, reconstructions: ``(N, C, H, W)`` in ``[-1, 1]``.
        labels: ``(N,)`` 1 = member, 0 = non-member.
        path: the PNG to write.
        n: queries per class.
        reference_reconstructions: optional ``(N, C, H, W)``.
    """
    labels = torch.as_tensor(labels).detach().flatten().cpu()
    if queries.ndim != 4 or queries.shape != reconstructions.shape or len(labels) != len(queries):
        raise ValueError("queries and reconstructions must be (N, C, H, W) images with one label each")
    chosen = torch.cat([(labels == 1).nonzero().flatten()[:n], (labels == 0).nonzero().flatten()[:n]])
    rows = [("query", queries), ("victim", reconstructions)]
    if reference_reconstructions is not None:
        rows.append(("reference", reference_reconstructions))
    columns = max(len(chosen), 1)
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.2 * columns, 1.3 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(columns):
            axis = axes[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c >= len(chosen):
                continue
            i = int(chosen[c])
            axis.imshow(_as_image(images[i]), cmap="gray", vmin=0, vmax=1)
            if r == 0:
                axis.set_title("member" if int(labels[i]) == 1 else "non-member", fontsize=7,
                               color="tab:red" if int(labels[i]) == 1 else "tab:blue")  # fmt: skip
        axes[r][0].set_ylabel(name, fontsize=8)
    return save_figure(figure, path)
