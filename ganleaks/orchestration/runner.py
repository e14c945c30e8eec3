"""Run one attack through a Lightning predict loop, with per-batch results that survive interruption.

Each finished batch is written atomically to ``<out>/batches/<role>/`` keyed by query id, so a
re-run of the same command scores only the queries that are not done yet. Under DDP every rank
scores its shard and writes its own batch files; the merge is by id.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset

from ganleaks.io import atomic_path
from ganleaks.settings.base import AttackEngine, BatchResult

log = logging.getLogger(__name__)


class QueryDataset(Dataset):
    """``(x, id)`` for the queries still to score."""

    def __init__(self, data: torch.Tensor, ids: torch.Tensor) -> None:
        self.data, self.ids = data, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        return self.data[index], self.ids[index]


class AttackModule(pl.LightningModule):
    """Scores query batches with an engine and writes each batch's results to ``batch_dir``."""

    def __init__(self, engine: AttackEngine, batch_dir: str | os.PathLike) -> None:
        super().__init__()
        self.engine = engine
        self.batch_dir = Path(batch_dir)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> int:
        x, ids = batch
        with torch.enable_grad():  # white-box reconstruction differentiates through G
            result = self.engine.losses(x, ids)
        write_batch(self.batch_dir, ids.cpu(), result)
        return len(ids)


def write_batch(batch_dir: Path, ids: torch.Tensor, result: BatchResult) -> Path:
    """Atomically save one batch's results under a name made of its first id and size."""
    batch_dir.mkdir(parents=True, exist_ok=True)
    tensors = {
        "ids": ids.to(torch.int64),
        "loss": result.loss,
        "objective": result.objective,
        "status": result.status.to(torch.int8),
    }
    if result.z is not None:
        tensors["z"] = result.z
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}  # no shared storage
    path = batch_dir / f"batch-{int(ids.min()):09d}-{len(ids):05d}-{os.getpid()}.safetensors"
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return path


BATCH_KEYS = ("ids", "loss", "objective", "status")


def _read_batch(path: Path) -> dict[str, torch.Tensor] | None:
    """One batch file; a corrupt one (derived data) is deleted, with a warning, so its queries are rescored."""
    try:
        part = load_file(str(path))
        n = len(part["ids"])
        if any(len(part[key]) != n for key in BATCH_KEYS) or ("z" in part and len(part["z"]) != n):
            raise ValueError("its tensors have different lengths")
    except FileNotFoundError:  # another DDP rank removed it first
        return None
    except Exception as error:
        log.warning(
            "batch file %s is corrupt (%s: %s); deleting it and recomputing its queries",
            path,
            type(error).__name__,
            error,
        )
        path.unlink(missing_ok=True)
        return None
    return part


def read_batches(batch_dir: Path) -> dict[str, torch.Tensor]:
    """All finished results in ``batch_dir``, one row per id (sorted by id)."""
    files = sorted(batch_dir.glob("batch-*.safetensors")) if batch_dir.is_dir() else []
    parts = [part for part in map(_read_batch, files) if part is not None]
    if not parts:
        return {"ids": torch.empty(0, dtype=torch.int64)}
    keys = set.intersection(*(set(p) for p in parts))
    merged = {k: torch.cat([p[k] for p in parts]) for k in keys}
    # DDP pads shards by repeating queries: keep one row per id (they are identical by invariance).
    order = torch.argsort(merged["ids"], stable=True)
    merged = {k: v[order] for k, v in merged.items()}
    keep = torch.ones(len(order), dtype=torch.bool)
    keep[1:] = merged["ids"][1:] != merged["ids"][:-1]
    return {k: v[keep] for k, v in merged.items()}


def score_queries(
    engine: AttackEngine, data: torch.Tensor, ids: torch.Tensor, batch_dir: Path, trainer_kwargs: dict, batch_size: int
) -> tuple[dict[str, torch.Tensor], int]:
    """Score every query with ``engine``, skipping ids already in ``batch_dir``.

    Returns:
        The rows by id, and this process's rank as the Trainer that scored them sees it (Lightning's
        cluster environment: its DDP launcher, SLURM, torchrun; 0 without DDP): rank 0 writes the outputs.
    """
    # Under DDP every rank reads what is done before any rank writes: no rank scores a batch before all
    # ranks have entered the predict loop (process-group start, Lightning's setup barriers), so all
    # ranks shard the same remaining queries.
    done = read_batches(batch_dir)["ids"]
    todo = ~torch.isin(ids, done)
    trainer = pl.Trainer(**trainer_kwargs)  # starts no process: its predict does, if anything is left
    if todo.any():
        log.info("%s: scoring %d queries (%d already done)", batch_dir.name, int(todo.sum()), len(done))
        engine.prepare(data)
        loader = DataLoader(QueryDataset(data[todo], ids[todo]), batch_size=int(batch_size), shuffle=False)
        trainer.predict(AttackModule(engine, batch_dir), dataloaders=loader, return_predictions=False)
        if trainer.world_size > 1:
            trainer.strategy.barrier("ganleaks_scored")  # every rank's batch files exist before anyone merges
    else:
        log.info("%s: all %d queries already scored", batch_dir.name, len(ids))
    rows = read_batches(batch_dir)
    missing = ~torch.isin(ids, rows["ids"])
    if missing.any():
        raise RuntimeError(f"{batch_dir}: {int(missing.sum())} queries have no result; re-run to finish them")
    keep = torch.isin(rows["ids"], ids)
    return {k: v[keep] for k, v in rows.items()}, int(trainer.global_rank)
