"""Per-record risk: the members an attack exposes most, as ``most_exposed.csv`` and ``most_exposed.png``.

A data owner wants to know *which* records leak, not only how much. A member is the more exposed
the higher its membership score, and the clearer it stands out from the non-members: each listed
member carries its percentile among the non-members' scores (100 = above every non-member, so a
threshold exists that flags this record without a single false positive among the non-members).

``most_exposed.csv`` has the header ``rank,id,score,loss,nonmember_percentile``: ``score`` is the
membership score of ``scores.csv`` (higher = member), ``loss`` its victim loss (the reconstruction
error, or -D(x) / -density for the settings without reconstructions). Failed queries (NaN score)
are never listed.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganleaks.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

EXPOSED_CSV = "most_exposed.csv"
EXPOSED_PNG = "most_exposed.png"
EXPOSED_HEADER = ["rank", "id", "score", "loss", "nonmember_percentile"]


@dataclass
class ExposedRecord:
    """One row of ``most_exposed.csv``; ``position`` is the record's row in the inputs."""

    rank: int
    id: str
    score: float
    loss: float
    nonmember_percentile: float
    position: int


def nonmember_percentile(scores: np.ndarray, nonmember_scores: np.ndarray) -> np.ndarray:
    """Percent of non-member scores below each score, ties counted half (as the AUC counts them).

    Args:
        scores: ``(n,)`` membership scores.
        nonmember_scores: ``(m,)`` finite scores of the non-members; ``m = 0`` gives NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    reference = np.sort(np.asarray(nonmember_scores, dtype=np.float64))
    if len(reference) == 0:
        return np.full(len(scores), math.nan)
    below = np.searchsorted(reference, scores, side="left")
    not_above = np.searchsorted(reference, scores, side="right")
    return 100.0 * (below + 0.5 * (not_above - below)) / len(reference)


def most_exposed(
    ids: Sequence, labels: Sequence[int], scores: Sequence[float], losses: Sequence[float] | None = None, n: int = 20
) -> list[ExposedRecord]:
    """The ``n`` members with the highest membership score, best first (ties: by id, for a stable order).

    Args:
        ids: ``N`` record ids (strings or integers).
        labels: ``(N,)`` 1 = member, 0 = non-member.
        scores: ``(N,)`` membership scores, higher = member; NaN = a failed query (left out).
        losses: ``(N,)`` the victim losses (NaN where absent).
        n: members to list.
    """
    labels_array = np.asarray(labels, dtype=np.int64)
    score_array = np.asarray(scores, dtype=np.float64)
    loss_array = np.full(len(score_array), math.nan) if losses is None else np.asarray(losses, dtype=np.float64)
    if not (len(ids) == len(labels_array) == len(score_array) == len(loss_array)):
        raise ValueError("ids, labels, scores and losses must have one entry per query")
    if int(n) < 1:
        raise ValueError(f"n (members to list) must be >= 1, got {n}")
    finite = np.isfinite(score_array)
    percentile = nonmember_percentile(score_array, score_array[finite & (labels_array == 0)])
    members = [int(i) for i in np.nonzero(finite & (labels_array == 1))[0]]
    members.sort(key=lambda i: (-score_array[i], str(ids[i])))
    return [
        ExposedRecord(
            rank=rank,
            id=str(ids[i]),
            score=float(score_array[i]),
            loss=float(loss_array[i]),
            nonmember_percentile=float(percentile[i]),
            position=i,
        )
        for rank, i in enumerate(members[: int(n)], start=1)
    ]


def _number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def write_most_exposed_csv(path: str | os.PathLike, records: Sequence[ExposedRecord]) -> Path:
    """Write ``records`` to ``path`` (atomically) with :data:`EXPOSED_HEADER`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPOSED_HEADER)
    for record in records:
        writer.writerow(
            [record.rank, record.id, _number(record.score), _number(record.loss), _number(record.nonmember_percentile)]
        )
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def read_scores_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``ids, labels, scores, victim losses`` of an attack's ``scores.csv`` (empty cells are NaN)."""
    path = Path(path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"id", "member", "score"} - set(rows[0] if rows else {})
    if not rows or missing:
        raise ValueError(f"{path} is not an attack's scores.csv (no rows, or no {sorted(missing)} columns)")

    def number(text: str | None) -> float:
        return float(text) if text not in (None, "") else math.nan

    return (
        [row["id"] for row in rows],
        np.array([int(row["member"]) for row in rows], dtype=np.int64),
        np.array([number(row["score"]) for row in rows]),
        np.array([number(row.get("victim_loss")) for row in rows]),
    )


def save_most_exposed_figure(
    path: str | os.PathLike, records: Sequence[ExposedRecord], queries, reconstructions=None
) -> Path:
    """Each listed member (a column) above its reconstruction, labelled with rank, id and score.

    Args:
        path: the PNG to write.
        records: from :func:`most_exposed`; ``position`` indexes ``queries``.
        queries: ``(N, C, H, W)`` images in ``[-1, 1]`` (a tensor or array), in the rows of the inputs.
        reconstructions: ``(N, C, H, W)`` in ``[-1, 1]``, or ``None`` (settings without reconstructions).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    rows = [("member", np.asarray(queries, dtype=np.float32))]
    if reconstructions is not None:
        rows.append(("reconstruction", np.asarray(reconstructions, dtype=np.float32)))
    if rows[0][1].ndim != 4 or any(images.shape != rows[0][1].shape for _, images in rows):
        raise ValueError("queries and reconstructions must be (N, C, H, W) images of one shape")
    columns = max(len(records), 1)
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.3 * columns, 1.5 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(columns):
            axis = axes[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c >= len(records):
                continue
            image = (np.clip(images[records[c].position], -1, 1) + 1) / 2
            axis.imshow(image[0] if image.shape[0] == 1 else image[:3].transpose(1, 2, 0), cmap="gray", vmin=0, vmax=1)
            if r == 0:
                record = records[c]
                label = record.id if len(record.id) <= 14 else "..." + record.id[-11:]
                axis.set_title(f"#{record.rank} {label}\nscore {record.score:.3g}", fontsize=6)
        axes[r][0].set_ylabel(name, fontsize=7)
    figure.suptitle("most exposed members (highest membership score)", fontsize=8)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def write_most_exposed(
    out_dir: str | os.PathLike,
    ids: Sequence,
    labels: Sequence[int],
    scores: Sequence[float],
    losses: Sequence[float] | None = None,
    *,
    queries=None,
    reconstructions=None,
    n: int = 20,
) -> list[ExposedRecord]:
    """Write ``most_exposed.csv`` and, for image queries, ``most_exposed.png`` into ``out_dir``.

    Args:
        out_dir: the attack run folder.
        ids, labels, scores, losses: as in ``scores.csv`` (one entry per query, any order).
        queries: ``(N, C, H, W)`` query images in the same order, or ``None`` / tabular rows (no picture).
        reconstructions: ``(N, C, H, W)`` their reconstructions, or ``None``.
        n: members to list.

    Returns:
        The listed records, best first.
    """
    out_dir = Path(out_dir)
    records = most_exposed(ids, labels, scores, losses, n)
    write_most_exposed_csv(out_dir / EXPOSED_CSV, records)
    if queries is not None and np.ndim(queries) == 4:
        save_most_exposed_figure(out_dir / EXPOSED_PNG, records, queries, reconstructions)
    elif queries is not None:
        log.info("queries are not images: %s lists the most exposed members without a picture", EXPOSED_CSV)
    return records
