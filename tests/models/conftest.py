"""Tiny configs and a stand-in datamodule for the victim tests (16x16 images, a few dozen samples)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
IMAGE_SHAPE = (1, 16, 16)
ROW_DIM = 12

# Shrinks every family's nets to a few thousand parameters.
TINY = {
    "dcgan": [
        "model.nets.image.generator.base_channels=8",
        "model.nets.image.discriminator.base_channels=8",
        "model.nets.tabular.generator.hidden_dims=[32]",
        "model.nets.tabular.discriminator.hidden_dims=[32]",
    ],
    "wgangp": [
        "model.nets.image.generator.base_channels=8",
        "model.nets.image.discriminator.base_channels=8",
        "model.nets.tabular.generator.hidden_dims=[32]",
        "model.nets.tabular.discriminator.hidden_dims=[32]",
        "model.module.n_critic=2",
    ],
    "pggan": [
        "model.nets.image.generator.fmap_base=32",
        "model.nets.image.generator.fmap_max=16",
        "model.nets.image.discriminator.fmap_base=32",
        "model.nets.image.discriminator.fmap_max=16",
        "model.module.images_per_phase=16",
    ],
    "vaegan": [
        "model.nets.image.generator.base_channels=8",
        "model.nets.image.discriminator.base_channels=8",
        "model.nets.image.encoder.base_channels=8",
    ],
}
TINY["dpgan"] = TINY["dcgan"]


class TensorIdDataset(Dataset):
    """``(x, id)`` pairs over a tensor, as the lead's ``IdDataset``."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data
        self.ids = torch.arange(len(data)) + 1000  # ids are not positions

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index], self.ids[index]


class TinyDataModule(pl.LightningDataModule):
    """Stand-in for ``ganleaks.data.TrainingSet`` with the attributes ``fit_victim`` uses."""

    def __init__(self, data: torch.Tensor, kind: str, batch_size: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.train_dataset = TensorIdDataset(data)
        self.data_shape = tuple(data.shape[1:])
        self.data_kind = kind
        self.batch_size = batch_size
        self.seed = seed

    @property
    def num_train_samples(self) -> int:
        return len(self.train_dataset)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(self.seed),
        )


class WritesMarker:
    """Unpickling this object creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def random_images(num: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(num, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def random_codes(num: int = 32, seed: int = 0) -> torch.Tensor:
    """Binary code rows in {-1, 1}, MIMIC-like."""
    bits = torch.rand(num, ROW_DIM, generator=torch.Generator().manual_seed(seed)) < 0.3
    return bits.float() * 2 - 1


def compose_victim_config(model: str, *overrides: str, max_steps: int = 4) -> DictConfig:
    """A train-like config with the groups ``fit_victim`` reads, tiny nets, on the CPU.

    ``privacy`` comes before ``model`` so that ``model=dpgan`` can override it to ``dp``.
    """
    base = [
        "+privacy=none",
        f"+model={model}",
        "+trainer=cpu",
        "+logger=csv",
        "+seed=0",
        f"trainer.max_steps={max_steps}",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
        "trainer.log_every_n_steps=1",
        "model.module.sample_every_n_steps=0",
        "model.latent_dim=8",
        "model.module.num_grid_samples=4",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(overrides=base + TINY.get(model, []) + list(overrides))


@pytest.fixture
def tiny() -> SimpleNamespace:
    """Helpers for the victim tests (a fixture, so test modules need not import conftest)."""
    return SimpleNamespace(
        config=compose_victim_config,
        datamodule=TinyDataModule,
        images=random_images,
        codes=random_codes,
        WritesMarker=WritesMarker,
    )
