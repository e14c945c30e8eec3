"""An in-memory dataset with stable integer ids: what every data source returns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class SampleSet:
    """Samples of one source, each with a stable integer id.

    Attributes:
        data: ``float32`` tensor in ``[-1, 1]``: images ``(N, C, H, W)`` or tabular rows ``(N, D)``.
        ids: ``int64`` tensor ``(N,)``; a sample's id is its index in the full source.
        name: the dataset's name, written into split manifests.
        kind: ``"image"`` or ``"tabular"``.
        groups: optional ``int64`` tensor ``(N,)`` of group labels (e.g. CelebA identities);
            membership splits never put one group into two parts.
        labels: optional ``int64`` class labels ``(N,)`` (digits, Fashion-MNIST); never used by
            training or attacks, only by the sample-quality classifier.
    """

    data: Tensor
    ids: Tensor
    name: str
    kind: str
    groups: Tensor | None = None
    labels: Tensor | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("image", "tabular"):
            raise ValueError(f"kind must be 'image' or 'tabular', got {self.kind!r}")
        if self.data.ndim != (4 if self.kind == "image" else 2):
            raise ValueError(
                f"{self.name}: {self.kind} data must be "
                f"{'(N, C, H, W)' if self.kind == 'image' else '(N, D)'}, got shape {tuple(self.data.shape)}"
            )
        if self.ids.shape != (len(self.data),):
            raise ValueError(f"{self.name}: ids must have shape ({len(self.data)},), got {tuple(self.ids.shape)}")
        for extra in ("groups", "labels"):
            if getattr(self, extra) is not None and getattr(self, extra).shape != self.ids.shape:
                raise ValueError(f"{self.name}: {extra} must have one entry per sample")
        if len(torch.unique(self.ids)) != len(self.ids):
            raise ValueError(f"{self.name}: sample ids are not unique")
        if not torch.isfinite(self.data).all():
            bad = self.ids[~torch.isfinite(self.data.reshape(len(self.data), -1)).all(dim=1)]
            raise ValueError(
                f"{self.name}: {len(bad)} samples contain NaN or inf (first ids: {bad[:5].tolist()}); "
                "clean or drop those rows before training"
            )
        if len(self.data) and (self.data.min() < -1 - 1e-6 or self.data.max() > 1 + 1e-6):
            raise ValueError(f"{self.name}: data must be scaled to [-1, 1]")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one sample."""
        return tuple(self.data.shape[1:])

    def fingerprint(self) -> str:
        """sha256 over the ids, the shape and the data bytes: changes whenever the dataset does."""
        digest = hashlib.sha256()
        digest.update(str((self.name, self.kind, tuple(self.data.shape))).encode())
        digest.update(self.ids.numpy().astype(np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.data.numpy(), dtype=np.float32).tobytes())
        return digest.hexdigest()

    def positions(self, ids) -> Tensor:
        """Positions of ``ids`` in this set; raises ``KeyError`` naming ids that are absent."""
        ids = torch.as_tensor(ids, dtype=torch.int64)
        order = torch.argsort(self.ids)
        sorted_ids = self.ids[order]
        where = torch.searchsorted(sorted_ids, ids).clamp(max=len(sorted_ids) - 1)
        missing = sorted_ids[where] != ids
        if missing.any():
            raise KeyError(f"{self.name}: ids not in the dataset: {ids[missing][:10].tolist()}")
        return order[where]

    def select(self, ids) -> SampleSet:
        """The subset with the given ids, in the given order."""
        pos = self.positions(ids)
        return SampleSet(
            data=self.data[pos],
            ids=self.ids[pos],
            name=self.name,
            kind=self.kind,
            groups=None if self.groups is None else self.groups[pos],
            labels=None if self.labels is None else self.labels[pos],
        )
