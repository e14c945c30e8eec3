"""The part of a membership split that one model trains on, and the loader over it."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import PARTS, MembershipSplit


class IdDataset(Dataset):
    """``(x, id)`` pairs of a ``SampleSet``."""

    def __init__(self, sample_set: SampleSet) -> None:
        self.sample_set = sample_set

    def __len__(self) -> int:
        return len(self.sample_set)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample_set.data[index], self.sample_set.ids[index]


class TrainingSet:
    """The ``part`` of ``split`` that a model trains on, and the shuffled loader of its ``(x, ids)`` batches.

    A plain object, not a ``LightningDataModule``: ``fit_victim`` hands the Trainer its loader, which
    DP-SGD first replaces with a Poisson-sampling one (``ganleaks.models.privacy``).

    Args:
        sample_set: the whole source.
        split: its membership split.
        part: ``"members"`` for a victim, ``"reference"`` for a calibration reference model.
        batch_size: training batch size.
        num_workers: DataLoader workers (0 keeps everything in-process; the data is in memory).
        seed: seeds the training shuffle.
        extra: records trained on beside the part (the included canaries, ``ganleaks.data.canaries``);
            their ids must not be in the part.
        subset: the ids of the part to train on (one of several reference models, each on its own random
            subset: :func:`draw_subset`); None trains on the whole part. Each must be in the part.
    """

    def __init__(
        self,
        sample_set: SampleSet,
        split: MembershipSplit,
        part: str = "members",
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        extra: SampleSet | None = None,
        subset: torch.Tensor | None = None,
    ) -> None:
        if part not in PARTS:
            raise ValueError(f"data.part must be one of {PARTS}, got {part!r}")
        self.sample_set = sample_set
        self.split = split
        self.part = part
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        ids = split.ids(part)
        if len(ids) == 0:
            raise ValueError(f"the {part!r} part of the split is empty; raise its size in the data config")
        if subset is not None:
            if len(subset) == 0 or not torch.isin(subset, ids).all():
                raise ValueError(f"a training subset must be a non-empty subset of the {part!r} part's ids")
            ids = torch.sort(subset).values
        records = sample_set.select(ids)
        if extra is not None and len(extra):
            if torch.isin(extra.ids, ids).any():
                raise ValueError(f"extra training records share ids with the {part!r} part")
            records = SampleSet(
                torch.cat([records.data, extra.data]),
                torch.cat([records.ids, extra.ids]),
                sample_set.name,
                records.kind,
            )
        self.train_dataset = IdDataset(records)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.sample_set.shape

    @property
    def data_kind(self) -> str:
        return self.sample_set.kind

    @property
    def num_train_samples(self) -> int:
        return len(self.train_dataset)

    @property
    def train_ids(self) -> torch.Tensor:
        return self.train_dataset.sample_set.ids

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_dataset,
            batch_size=min(self.batch_size, len(self.train_dataset)),
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
            persistent_workers=self.num_workers > 0,
        )


def draw_subset(ids: torch.Tensor, fraction: float, seed: int, draw: int) -> torch.Tensor:
    """The sorted ids of reference model ``draw``: ``round(fraction * len(ids))`` (at least 1) of ``ids``
    drawn without replacement by a generator seeded with ``(seed, draw)``, so that every draw of a run's
    reference models has its own subset and each record is in about ``fraction`` of them (LiRA's
    reference models, Carlini et al. 2022)."""
    size = max(1, round(float(fraction) * len(ids)))
    generator = torch.Generator().manual_seed(draw_seed(seed, draw))
    return torch.sort(ids[torch.randperm(len(ids), generator=generator)[:size]]).values


def draw_seed(seed: int, draw: int) -> int:
    """One 32-bit seed for the pair ``(seed, draw)`` (numpy's SeedSequence: no two pairs share a stream)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(draw)]).generate_state(1)[0])
