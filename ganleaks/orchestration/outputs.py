"""What an attack writes into its run folder: ``scores.csv``, ``run.json``, ``metrics.json``,
``roc.png``, ``reconstructions.png``, ``most_exposed.csv`` / ``.png`` (the members the attack exposes
most, beside the engine's reconstructions of them), ``summary.html`` (one page over all of these), and
the same results to the configured Lightning loggers."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ganleaks.evaluation.exposure import (
    EXPOSED_CSV,
    EXPOSED_PNG,
    most_exposed,
    save_most_exposed_figure,
    write_most_exposed_csv,
)
from ganleaks.evaluation.plots import plot_roc, save_reconstruction_grid
from ganleaks.evaluation.summary import write_summary
from ganleaks.io import atomic_write_text
from ganleaks.loggers import build_loggers
from ganleaks.orchestration.calibration import align_by_id
from ganleaks.orchestration.run_record import write_run_record
from ganleaks.settings.base import AttackEngine
from ganleaks.status import STATUS_NAMES

SCORES_HEADER = ["id", "member", "victim_loss", "reference_loss", "score", "status"]
REFERENCE_LOSSES_CSV = "reference_losses.csv"  # calibration=references: each reference model's loss per query


@dataclass
class QueryScores:
    """Every query's result, one row per id (all ``(N,)``, in the order of ``ids``).

    Attributes:
        ids, labels: the queries (1 = member).
        victim_loss: L(x, R(x|G_victim)) (or the setting's loss); NaN where the query failed.
        reference_loss: the same on the reference model, or None without calibration (several reference
            models: their mean; each one's in ``reference_losses``).
        score: the membership score, -(victim_loss - reference_loss): higher = member (several reference
            models: the offline LiRA score of ``fit``).
        status: int8 (:mod:`ganleaks.status`), the worse of the victim's and the reference's.
        names: the user's string id of each query (written to ``scores.csv`` and ``most_exposed.csv``
            instead of the integer ``ids``), or None.
        reference_losses: ``calibration=references``: each reference model's loss by role, ``(N,)`` each.
        fit: ``calibration=references``: the per-query Gaussian fit the score comes from.
    """

    ids: Tensor
    labels: Tensor
    victim_loss: Tensor
    reference_loss: Tensor | None
    score: Tensor
    status: Tensor
    names: list[str] | None = None
    reference_losses: dict[str, Tensor] | None = None
    fit: Any = None  # orchestration.references.ReferenceFit

    def id_names(self) -> list[str]:
        """Each query's id as written to the outputs."""
        return list(self.names) if self.names is not None else [str(int(i)) for i in self.ids]


@dataclass
class Reconstructions:
    """The latents one engine found (rows keyed by ``ids``) and the engine that renders them."""

    ids: Tensor
    z: Tensor
    engine: AttackEngine


def write_outputs(
    cfg: DictConfig,
    out_dir: Path,
    scores: QueryScores,
    metrics: dict,
    queries: Tensor,
    reconstructions: dict[str, Reconstructions],
) -> None:
    """Write every output of a finished attack.

    Args:
        queries: ``(N, *shape)`` the queried records, in the order of ``scores.ids``.
        reconstructions: ``victim`` and ``reference``, where the engines made some.
    """
    write_scores(out_dir / "scores.csv", scores)
    if scores.reference_losses is not None:
        write_reference_losses(out_dir / REFERENCE_LOSSES_CSV, scores)
    write_run_record(out_dir, cfg, metrics)  # what these results were computed with, written with them
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    plot_roc(scores.score, scores.labels, out_dir / "roc.png")
    save_grid(out_dir / "reconstructions.png", cfg.attack.save_reconstructions, queries, scores, reconstructions)
    write_exposure(out_dir, scores, queries, reconstructions.get("victim"), int(cfg.attack.get("most_exposed", 20)))
    write_summary(out_dir)  # last: it reads the files above
    log_to_loggers(cfg, out_dir, metrics)


def _fmt(value: Tensor) -> str:
    """A 0-d loss or score as its shortest round-trip decimal; empty for NaN (a failed query)."""
    number = float(value)
    return "" if math.isnan(number) else repr(number)


def write_scores(path: Path, scores: QueryScores) -> None:
    """``scores.csv``: one row per query; the only place a status becomes a word."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORES_HEADER)
    for i in range(len(scores.ids)):
        writer.writerow(
            [
                int(scores.ids[i]) if scores.names is None else scores.names[i],
                int(scores.labels[i]),
                _fmt(scores.victim_loss[i]),
                "" if scores.reference_loss is None else _fmt(scores.reference_loss[i]),
                _fmt(scores.score[i]),
                STATUS_NAMES.get(int(scores.status[i]), "failed"),
            ]
        )
    atomic_write_text(path, buffer.getvalue())


def write_reference_losses(path: Path, scores: QueryScores) -> None:
    """``reference_losses.csv`` (``calibration=references``): per query, each reference model's loss, the
    fitted centre and spread (on the transform's scale) the score divides by; empty where a query failed."""
    assert scores.reference_losses is not None and scores.fit is not None
    roles = list(scores.reference_losses)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "member", *roles, "fit_mean", "fit_sigma"])
    names = scores.id_names()
    for i in range(len(scores.ids)):
        writer.writerow(
            [
                names[i],
                int(scores.labels[i]),
                *(_fmt(scores.reference_losses[role][i]) for role in roles),
                _fmt(scores.fit.mean[i]),
                _fmt(scores.fit.sigma[i]),
            ]
        )
    atomic_write_text(path, buffer.getvalue())


def write_exposure(out_dir: Path, scores: QueryScores, queries: Tensor, found: Reconstructions | None, n: int) -> None:
    """``most_exposed.csv`` (the ``n`` members with the highest score) and, for images, ``most_exposed.png``.

    The picture shows each listed member above its reconstruction on the victim, rendered by the
    engine from the latent it returned (only for the listed members), where the setting made one.
    """
    if n < 1:
        return
    records = most_exposed(
        scores.id_names(), scores.labels.tolist(), scores.score.tolist(), scores.victim_loss.tolist(), n
    )
    write_most_exposed_csv(out_dir / EXPOSED_CSV, records)
    if queries.ndim != 4 or not records:
        return
    positions = torch.tensor([record.position for record in records], dtype=torch.int64)
    rows = None
    if found is not None:
        rows = found.engine.reconstructions(align_by_id(scores.ids[positions], found.ids, found.z))
    listed = [dataclasses.replace(record, position=i) for i, record in enumerate(records)]
    save_most_exposed_figure(out_dir / EXPOSED_PNG, listed, queries[positions], rows)


def save_grid(
    path: Path, n: int, queries: Tensor, scores: QueryScores, reconstructions: dict[str, Reconstructions]
) -> None:
    """Up to ``n`` members and ``n`` non-members beside their reconstructions on the victim (and reference)."""
    if n <= 0 or queries.ndim != 4 or "victim" not in reconstructions:
        return

    def spread(positions: Tensor) -> Tensor:  # evenly over the ids: sources are often sorted by class
        return positions[torch.linspace(0, len(positions) - 1, min(n, len(positions))).round().long()]

    labels = scores.labels
    pick = torch.cat([spread(torch.nonzero(labels == 1).flatten()), spread(torch.nonzero(labels == 0).flatten())])
    ids = scores.ids[pick]
    rows = {
        role: found.engine.reconstructions(align_by_id(ids, found.ids, found.z))
        for role, found in reconstructions.items()
    }
    save_reconstruction_grid(
        queries[pick],
        rows["victim"],
        labels[pick],
        path,
        reference_reconstructions=rows.get("reference"),
    )


def log_to_loggers(cfg: DictConfig, out_dir: Path, metrics: dict) -> None:
    """Send the config, metrics, ROC and reconstructions to the configured Lightning loggers."""
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
    for logger in build_loggers(cfg.get("logger"), out_dir):
        logger.log_hyperparams(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)))
        logger.log_metrics({f"attack/{k}": v for k, v in numbers.items()})
        log_image = getattr(logger, "log_image", None)  # W&B
        if log_image is not None:
            images = [p for p in (out_dir / "roc.png", out_dir / "reconstructions.png") if p.is_file()]
            log_image(key="attack/plots", images=[str(p) for p in images])
            with open(out_dir / "scores.csv") as handle:
                rows = list(csv.reader(handle))
            logger.log_table(key="attack/scores", columns=rows[0], data=rows[1:])  # type: ignore[attr-defined]  # W&B
        logger.finalize("success")
        if log_image is not None:
            logger.experiment.finish()  # type: ignore[attr-defined]  # flush the W&B run now: the attack process is done with it
