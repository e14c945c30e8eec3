"""``fit_victim``: build a victim from the composed config, train it (optionally with DP-SGD on
the discriminator), resume from ``<run_dir>/checkpoints/last.ckpt``, write sample grids and export."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, RichProgressBar
from pytorch_lightning.loggers import Logger

from ganleaks.errors import another_run_folder
from ganleaks.io import UnsafeFileError, load_weights_only
from ganleaks.loggers import build_loggers
from ganleaks.models.modules.base import GANModule

if TYPE_CHECKING:  # the privacy module imports Opacus: only DP training loads it
    from ganleaks.models.privacy import PrivacySettings

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.ckpt"


class CheckpointError(ValueError):
    """A ``last.ckpt`` that must not be resumed from: unsafe to unpickle, corrupt, or of another model."""


def verify_resume_checkpoint(path: Path, module: torch.nn.Module) -> None:
    """Refuse, before any training or output, a checkpoint that could run code or that another config wrote.

    :func:`ganleaks.io.load_weights_only` reads tensors and plain containers only and never executes
    code from the file; the ``state_dict`` shapes must then match ``module``'s (same model config).

    Raises:
        CheckpointError: saying why, and to delete the checkpoint or use another ``hydra.run.dir``.
    """
    try:
        checkpoint = load_weights_only(path)
    except UnsafeFileError as error:
        raise CheckpointError(
            f"refusing to resume: {error}. Delete it to train this run from scratch, or use {another_run_folder()}"
        ) from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    expected = module.state_dict()
    if not isinstance(state, dict) or not set(state) & set(expected):
        raise CheckpointError(
            f"{path} is not a checkpoint of this model (no matching state_dict); delete it to "
            f"train from scratch, or use {another_run_folder()}"
        )
    mismatched = [
        f"{name} {tuple(value.shape)} != {tuple(expected[name].shape)}"
        for name, value in state.items()
        if name in expected and torch.is_tensor(value) and value.shape != expected[name].shape
    ]
    if mismatched:
        raise CheckpointError(
            f"{path} was written by a different model config than the one asked for now ({'; '.join(mismatched[:3])}"
            f"{'; ...' if len(mismatched) > 3 else ''}): resume with the overrides that started this run, or use "
            f"{another_run_folder()}, or delete {path.parent} to start over"
        )


class LastCheckpoint(Callback):
    """Keep ``<dirpath>/last.ckpt`` current: every ``every_n_steps`` optimiser steps and when
    training ends, written atomically (a crash mid-write leaves the previous checkpoint intact).

    Lightning's ``ModelCheckpoint`` is not used because under manual optimisation it saves only
    when ``global_step`` is an exact multiple of its interval, and ``global_step`` advances by one
    per optimiser step (one to three per batch here), so many intervals would be skipped.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int = 500) -> None:
        self.path = Path(dirpath) / CHECKPOINT_NAME
        self.every_n_steps = int(every_n_steps)
        self._last_saved_step = -1

    def save(self, trainer: pl.Trainer) -> None:
        if trainer.global_step == self._last_saved_step:
            return
        partial_path = self.path.with_suffix(".ckpt.partial")
        trainer.save_checkpoint(partial_path, weights_only=False)
        if trainer.is_global_zero:
            os.replace(partial_path, self.path)
        self._last_saved_step = trainer.global_step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        every = self.every_n_steps
        if every > 0 and trainer.global_step // every > self._last_saved_step // every:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)


def build_victim(model_cfg: DictConfig, data_shape: tuple[int, ...], data_kind: str) -> GANModule:
    """Instantiate the networks of ``model_cfg.nets[data_kind]`` and the module ``model_cfg.module``.

    Each net node receives ``data_shape``; latent sizes come from the yaml (``${model.latent_dim}``).

    Raises:
        ValueError: the model has no nets for ``data_kind``.
    """
    nets_cfg = model_cfg.nets.get(data_kind)
    if nets_cfg is None:
        raise ValueError(
            f"model={model_cfg.name} has no networks for {data_kind} data (it has: "
            f"{', '.join(model_cfg.nets)}); for tabular data use model=wgangp, model=dcgan or model=dpgan"
        )
    networks = {
        name: instantiate(node, data_shape=list(data_shape), _convert_="all") for name, node in nets_cfg.items()
    }
    return instantiate(model_cfg.module, **networks, _convert_="all")


def build_trainer(cfg: DictConfig, run_dir: Path, loggers: list[Logger]) -> pl.Trainer:
    """A ``pl.Trainer`` from the plain Trainer kwargs of ``cfg.trainer``, rooted at ``run_dir``."""
    trainer_kwargs = (
        cast(dict[str, Any], OmegaConf.to_container(cfg.trainer, resolve=True)) if cfg.get("trainer") else {}
    )
    callbacks: list[Callback] = [LastCheckpoint(run_dir / "checkpoints", cfg.get("checkpoint_every_n_steps", 500))]
    # A progress bar only on an interactive terminal; in job logs it is noise (metrics go to the loggers).
    interactive = sys.stdout.isatty()
    trainer_kwargs.setdefault("enable_progress_bar", interactive)
    if interactive and trainer_kwargs["enable_progress_bar"]:
        callbacks.append(RichProgressBar())
    trainer_kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(default_root_dir=str(run_dir), logger=loggers or False, callbacks=callbacks, **trainer_kwargs)


def _refuse_unsupported_privacy(module: GANModule, model_name: str) -> None:
    from ganleaks.models.privacy import UnsupportedPrivacyError, check_private_discriminator

    if module.dp_refusal is not None:
        raise UnsupportedPrivacyError(
            f"privacy=dp cannot be applied to model={model_name}: {module.dp_refusal}. "
            "Use model=dpgan (DCGAN with DP-SGD on a GroupNorm discriminator) instead"
        )
    check_private_discriminator(module.discriminator, model_name)


def _refuse_distributed_privacy(trainer: pl.Trainer) -> None:
    """DP-SGD here is accounted for one process on one device: refuse any data-parallel strategy."""
    from pytorch_lightning.strategies import ParallelStrategy

    from ganleaks.models.privacy import UnsupportedPrivacyError

    if trainer.world_size > 1 or isinstance(trainer.strategy, ParallelStrategy):
        # Under DDP each process would Poisson-sample its own shard and clip and noise its own
        # discriminator gradient (Opacus computes the update from per-sample gradients DDP never
        # averages), so the ranks' discriminators drift apart and the accountant, which assumes one
        # sampler over all members and one noisy step, no longer describes the model. Opacus' DPDDP
        # with per-rank Poisson sampling would fix that; it is not wired in. Even one DDP process
        # breaks the Poisson loader (Lightning injects a distributed sampler into it).
        raise UnsupportedPrivacyError(
            f"privacy=dp trains in one process on one device, but this trainer runs {trainer.world_size} "
            f"process(es) with {type(trainer.strategy).__name__}: under data-parallel training each process "
            "would sample, clip and noise its own discriminator update and the privacy accountant's epsilon "
            "would not describe the trained model (Opacus' distributed DP-SGD is not wired in). Train DP "
            "victims on one device: trainer=default or trainer=gpu, with trainer.devices=1 and no "
            "trainer.strategy / trainer.num_nodes override; to use several devices, train several DP victims "
            "at once as a sweep (hydra/launcher=joblib, or hydra/launcher=slurm_gpu on a cluster)"
        )


@dataclass
class PreparedVictim:
    """A victim built once from the config, with the loggers and the Trainer that will fit it.

    Built by :func:`prepare_victim`, which has already refused every config error (a model without
    networks for the data, ``privacy=dp`` with a victim or a trainer it cannot protect).
    """

    module: GANModule
    loggers: list[Logger]
    trainer: pl.Trainer
    privacy: PrivacySettings | None  # the DP-SGD settings, None without privacy=dp


def prepare_victim(cfg: DictConfig, data_shape: tuple[int, ...], data_kind: str, run_dir: str | Path) -> PreparedVictim:
    """Build the victim, its loggers and its Trainer from ``cfg``, and check once that they can train.

    Writes nothing (loggers and the Trainer create their folders only when training starts), so
    ``train.py`` calls it before the split is written: a config error leaves no run folder behind.
    The victim is built right after seeding with ``cfg.seed``, so its initial weights depend on the
    seed only.

    Raises:
        ValueError: the model has no networks for ``data_kind``, or the privacy settings are invalid.
        UnsupportedPrivacyError: ``privacy=dp`` with a victim it cannot protect, or with a data-parallel
            trainer (``trainer=ddp``, ``trainer.devices>1``).
    """
    run_dir = Path(run_dir)
    pl.seed_everything(int(cfg.get("seed", 0)), workers=True, verbose=False)
    module = build_victim(cfg.model, tuple(data_shape), data_kind)
    settings = None
    if cfg.get("privacy") and cfg.privacy.get("enabled", False):
        from ganleaks.models.privacy import PrivacySettings

        _refuse_unsupported_privacy(module, cfg.model.name)
        settings = PrivacySettings.from_config(cast(dict[str, Any], OmegaConf.to_container(cfg.privacy, resolve=True)))
    loggers = build_loggers(cfg.get("logger"), run_dir)
    trainer = build_trainer(cfg, run_dir, loggers)
    if settings is not None:
        _refuse_distributed_privacy(trainer)
    return PreparedVictim(module, loggers, trainer, settings)


def fit_victim(
    cfg: DictConfig, training_set: Any, run_dir: str | Path, victim: PreparedVictim | None = None
) -> GANModule:
    """Train the victim that ``cfg`` describes on ``training_set`` and export it.

    Reads ``cfg.model`` (``name``, ``latent_dim``, ``nets.<data_kind>.*``, ``module``),
    ``cfg.privacy`` (``enabled`` and the DP settings), ``cfg.trainer`` (Trainer kwargs),
    ``cfg.logger`` (logger nodes), ``cfg.seed`` and optionally ``cfg.checkpoint_every_n_steps``.
    Resumes from ``<run_dir>/checkpoints/last.ckpt`` when it exists.

    Args:
        cfg: the composed train config.
        training_set: has ``data_shape``, ``data_kind`` and ``train_dataloader()`` yielding ``(x, ids)``
            (a :class:`ganleaks.data.TrainingSet`).
        run_dir: the run folder; receives checkpoints, logs, samples and the exported networks.
        victim: what :func:`prepare_victim` built and checked for this ``cfg``, ``training_set`` and
            ``run_dir``; None: prepared here.

    Returns:
        the trained module.

    Raises:
        UnsupportedPrivacyError: ``privacy=dp`` with a victim it cannot protect, or with a data-parallel
            trainer (``trainer=ddp``, ``trainer.devices>1``), before training.
    """
    run_dir = Path(run_dir)
    if victim is None:
        victim = prepare_victim(cfg, tuple(training_set.data_shape), training_set.data_kind, run_dir)
    module, trainer = victim.module, victim.trainer
    checkpoint = run_dir / "checkpoints" / CHECKPOINT_NAME
    if checkpoint.is_file():
        verify_resume_checkpoint(checkpoint, module)  # before anything is written
    loader = training_set.train_dataloader()
    if victim.privacy is not None:
        from ganleaks.models.privacy import make_discriminator_private

        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else 0
        module.privacy, loader = make_discriminator_private(
            module.discriminator,
            module.build_optimizer("discriminator"),
            loader,
            victim.privacy,
            planned_steps=module.discriminator_steps(max_steps),
        )
    for logger in victim.loggers:
        logger.log_hyperparams(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)))
    if checkpoint.is_file():
        log.info("resuming from %s", checkpoint)
    # weights_only: our checkpoints hold tensors and plain containers only, so resuming never unpickles code.
    trainer.fit(
        module, train_dataloaders=loader, ckpt_path=str(checkpoint) if checkpoint.is_file() else None, weights_only=True
    )
    if trainer.is_global_zero:
        module.write_sample_grid("final")
        module.export(run_dir, training_set.data_kind)
        if victim.privacy is not None:
            log.info(
                "DP training spent epsilon %.3f at delta %g", module.privacy.epsilon(), module.privacy.settings.delta
            )
    trainer.strategy.barrier("ganleaks_export")  # under DDP, no rank returns before the export exists
    return module
