"""The Lightning loggers of the ``logger`` config group (``csv``, ``wandb``, ``tensorboard``)."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger


def build_loggers(logger_cfg: DictConfig | None, run_dir: Path) -> list[Logger]:
    """One Lightning logger per node of the ``logger`` group, each saving under ``run_dir``."""
    if not logger_cfg:
        return []
    return [instantiate(node, save_dir=str(run_dir)) for node in logger_cfg.values() if node is not None]
