"""What every victim GAN shares: manual optimisation with one optimiser per network, the fixed
latent of the sample grids, sampling, sample-grid PNGs, DP hooks, and export."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from torch import nn
from torchvision.utils import make_grid, save_image

from ganleaks.io import atomic_path
from ganleaks.models.export import save_network, write_json

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class GANModule(pl.LightningModule):
    """Base of the victim modules; a family implements only ``train_batch``.

    Args:
        generator: a ``ganleaks.models.nets`` generator (has ``latent_dim`` and ``data_shape``).
        discriminator: the matching discriminator / critic.
        generator_optimizer, discriminator_optimizer: partially applied optimisers
            (Hydra ``_partial_: true`` nodes), finished in ``configure_optimizers``.
        sample_every_n_steps: write a sample grid every this many optimiser steps (0: only at the end).
        num_grid_samples: samples per grid; their latents are fixed (a buffer) so grids are comparable.
        grid_seed: seed of the fixed latents.
    """

    #: networks trained by this module, each with its own optimiser, in step order.
    network_names: ClassVar[tuple[str, ...]] = ("generator", "discriminator")
    #: why DP-SGD on the discriminator cannot protect this family (``None``: it can).
    dp_refusal: ClassVar[str | None] = None
    fixed_latent: torch.Tensor  # a buffer (registered in __init__)

    def __init__(
        self,
        *,
        generator: nn.Module,
        discriminator: nn.Module,
        generator_optimizer: OptimizerFactory,
        discriminator_optimizer: OptimizerFactory,
        sample_every_n_steps: int = 500,
        num_grid_samples: int = 64,
        grid_seed: int = 0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer_factories = {"generator": generator_optimizer, "discriminator": discriminator_optimizer}
        self.sample_every_n_steps = int(sample_every_n_steps)
        latent_dim = int(generator.latent_dim)  # type: ignore[arg-type]
        self.register_buffer(
            "fixed_latent",
            torch.randn(num_grid_samples, latent_dim, generator=torch.Generator().manual_seed(grid_seed)),
        )
        #: Opacus state of the discriminator (``ganleaks.models.privacy.DiscriminatorPrivacy``), set by
        #: ``fit_victim`` for ``privacy=dp`` before training.
        self.privacy: Any = None
        self._next_grid_step: float = 0  # math.inf when grids are off

    # ------------------------------------------------------------------ shape of the model
    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)  # type: ignore[arg-type]

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.generator.data_shape)  # type: ignore[arg-type]

    def networks(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.network_names}

    def discriminator_steps(self, optimizer_steps: int) -> int:
        """Discriminator steps among ``optimizer_steps`` (one step per network per batch)."""
        return math.ceil(optimizer_steps / len(self.network_names))

    # ------------------------------------------------------------------ optimisation
    def build_optimizer(self, name: str) -> torch.optim.Optimizer:
        """The plain optimiser of network ``name`` from its partial."""
        return self.optimizer_factories[name](getattr(self, name).parameters())

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.privacy.optimizer
            if name == "discriminator" and self.privacy is not None
            else self.build_optimizer(name)
            for name in self.network_names
        ]

    @contextmanager
    def optimizing(self, name: str) -> Iterator[Callable[[torch.Tensor], None]]:
        """One optimiser step of network ``name``; yields ``step(loss)``.

        Only ``name``'s parameters require gradients inside the block (the others are frozen by
        ``toggle_optimizer``, so build the loss inside it); the discriminator's per-sample
        gradient hooks are paused unless ``name`` is the discriminator.
        """
        optimizer = self.optimizers()[self.network_names.index(name)]  # type: ignore[index]  # always a list here
        self.toggle_optimizer(optimizer)
        paused = self.privacy.hooks_paused() if self.privacy is not None and name != "discriminator" else nullcontext()
        try:
            with paused:
                optimizer.zero_grad()
                yield partial(self._backward_and_step, optimizer)
        finally:
            self.untoggle_optimizer(optimizer)

    def _backward_and_step(self, optimizer: Any, loss: torch.Tensor) -> None:
        self.manual_backward(loss)
        optimizer.step()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, _ids = batch
        if real.shape[0] == 0:
            self._empty_batch_step()
            return
        self.train_batch(real)

    def train_batch(self, real: torch.Tensor) -> None:
        """One training iteration on a non-empty batch of members ``(B, *data_shape)`` in ``[-1, 1]``."""
        raise NotImplementedError

    def _empty_batch_step(self) -> None:
        # Poisson sampling (DP) can draw an empty batch. The discriminator still takes its
        # noise-only DP step, so the accountant counts every sampling round; nothing else trains.
        if self.privacy is None:
            return
        optimizer = self.optimizers()[self.network_names.index("discriminator")]  # type: ignore[index]  # a list
        optimizer.zero_grad()
        self.privacy.prepare_empty_step()
        optimizer.step()

    # ------------------------------------------------------------------ sampling
    def sample_latent(self, num: int) -> torch.Tensor:
        """``num`` latents ``z ~ N(0, I)`` on the module's device, ``(num, latent_dim)``."""
        return torch.randn(num, self.latent_dim, device=self.device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's output used in training steps (PGGAN: at the current stage resolution)."""
        return self.generator(z)

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """Samples of the generator in eval mode (as exported), ``(B, *data_shape)``; the fixed
        grid latents when ``z`` is None."""
        z = self.fixed_latent if z is None else z
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z.to(self.device))
        finally:
            self.generator.train(was_training)

    def sample_grid(self) -> torch.Tensor:
        """The fixed-latent samples as one ``(C, H, W)`` image in ``[0, 1]`` (tabular: rows as pixels)."""
        samples = (self.sample().float().cpu() + 1) / 2
        if samples.dim() == 2:
            return samples.unsqueeze(0)
        return make_grid(samples, nrow=max(1, int(math.sqrt(samples.shape[0]))), padding=1)

    def write_sample_grid(self, name: str) -> Path:
        """Save the sample grid to ``<run_dir>/samples/<name>.png`` and send it to image-capable loggers."""
        grid = self.sample_grid()
        path = Path(self.trainer.default_root_dir) / "samples" / f"{name}.png"
        with atomic_path(path) as tmp:  # a crash never leaves half a PNG
            save_image(grid, tmp, format="png")
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[grid], caption=[name])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, self.global_step)
        return path

    def on_train_start(self) -> None:
        every = self.sample_every_n_steps
        self._next_grid_step = (self.global_step // every + 1) * every if every > 0 else math.inf

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step >= self._next_grid_step:
            if self.trainer.is_global_zero:
                self.write_sample_grid(f"step_{self.global_step:07d}")
            every = self.sample_every_n_steps
            self._next_grid_step = (self.global_step // every + 1) * every

    # ------------------------------------------------------------------ privacy bookkeeping
    def on_train_epoch_end(self) -> None:
        if self.privacy is not None:
            self.log("privacy/epsilon", self.privacy.epsilon())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.privacy is not None:
            checkpoint["privacy_accountant"] = self.privacy.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        private_checkpoint = "privacy_accountant" in checkpoint
        if private_checkpoint != (self.privacy is not None):
            was, now = ("with", "without") if private_checkpoint else ("without", "with")
            raise ValueError(
                f"the checkpoint to resume was trained {was} privacy=dp but this run is {now} it; "
                "resume with the same privacy settings, or train into a new run folder"
            )
        if private_checkpoint:
            self.privacy.load_state_dict(checkpoint["privacy_accountant"])

    # ------------------------------------------------------------------ export
    def export(self, run_dir: str | Path, data_kind: str) -> None:
        """Write every network as ``<role>.safetensors`` + ``<role>.json`` (and ``privacy.json``)."""
        for name, network in self.networks().items():
            save_network(network, run_dir, name, latent_dim=self.latent_dim, data_kind=data_kind)
        if self.privacy is not None:
            write_json(Path(run_dir) / "privacy.json", self.privacy.report())
