"""Membership splits: disjoint members, non-members and reference set, saved as a manifest.

Splits are nested: one seeded permutation (of groups, when the source has them) is cut into
``reference | nonmembers | members``. For one seed, the non-members and the reference set are
the same for every ``train_size`` and smaller member sets are subsets of larger ones, so a size
sweep compares victims on the same held-out queries and shares one reference model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ganleaks.data.sample_set import SampleSet
from ganleaks.io import atomic_write_text

PARTS = ("members", "nonmembers", "reference")
MANIFEST_NAME = "manifest.json"


class SplitError(ValueError):
    """A split that cannot be made or a manifest that does not match its data."""


@dataclass
class MembershipSplit:
    """Disjoint id lists of the three parts plus what identifies the dataset they index."""

    dataset: str
    length: int
    fingerprint: str
    seed: int
    parts: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_disjoint(self.parts)

    def ids(self, part: str) -> torch.Tensor:
        if part not in self.parts:
            raise KeyError(f"unknown split part {part!r}; choose one of {PARTS}")
        return torch.tensor(self.parts[part], dtype=torch.int64)

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "length": self.length,
            "fingerprint": self.fingerprint,
            "seed": self.seed,
            "sizes": {part: len(ids) for part, ids in self.parts.items()},
            "parts": self.parts,
        }


def check_disjoint(parts: dict[str, list[int]]) -> None:
    """Raise ``SplitError`` if any id is in two parts (or twice in one)."""
    seen: dict[int, str] = {}
    for part, ids in parts.items():
        if len(set(ids)) != len(ids):
            raise SplitError(f"split part {part!r} lists an id twice")
        for sample_id in ids:
            if sample_id in seen:
                raise SplitError(f"id {sample_id} is in both {seen[sample_id]!r} and {part!r}: parts must be disjoint")
            seen[sample_id] = part


def make_split(
    sample_set: SampleSet, train_size: int, nonmember_size: int, reference_size: int, seed: int
) -> MembershipSplit:
    """Split ``sample_set`` into disjoint parts of the given sizes, deterministically per ``seed``."""
    sizes = {"members": int(train_size), "nonmembers": int(nonmember_size), "reference": int(reference_size)}
    for part, size in sizes.items():
        if size < 0:
            raise SplitError(f"{part} size must be >= 0, got {size}")
    if sizes["members"] == 0:
        raise SplitError("data.train_size must be at least 1: a victim needs members to train on")
    needed = sum(sizes.values())
    if needed > len(sample_set):
        raise SplitError(
            f"{sample_set.name} has {len(sample_set)} samples, but the split asks for "
            f"{sizes['members']} members + {sizes['nonmembers']} non-members + {sizes['reference']} reference "
            f"= {needed}; lower data.train_size, data.nonmember_size or data.reference_size"
        )
    rng = torch.Generator().manual_seed(int(seed))
    if sample_set.groups is None:
        order = sample_set.ids[torch.randperm(len(sample_set), generator=rng)]
    else:
        # Whole groups in a seeded order; a part may take fewer than all of its last group's
        # samples, but the rest of that group is never used by another part.
        unique_groups = torch.unique(sample_set.groups)
        group_order = unique_groups[torch.randperm(len(unique_groups), generator=rng)]
        rank = torch.empty(int(unique_groups.max()) + 1, dtype=torch.int64)
        rank[group_order] = torch.arange(len(group_order))
        keys = rank[sample_set.groups] * (len(sample_set) + 1) + torch.randperm(len(sample_set), generator=rng)
        order = sample_set.ids[torch.argsort(keys)]
    parts = _cut(order, sample_set, sizes)
    return MembershipSplit(sample_set.name, len(sample_set), sample_set.fingerprint(), int(seed), parts)


def _cut(order: torch.Tensor, sample_set: SampleSet, sizes: dict[str, int]) -> dict[str, list[int]]:
    parts: dict[str, list[int]] = {}
    start = 0
    groups = None
    if sample_set.groups is not None:
        groups = sample_set.groups[sample_set.positions(order)]
    for part in ("reference", "nonmembers", "members"):
        end = start + sizes[part]
        parts[part] = sorted(order[start:end].tolist())
        if groups is not None and 0 < sizes[part] and end <= len(order):  # else: too few groups, refused below
            # Skip the rest of the last group so no group straddles two parts.
            last = groups[end - 1]
            while end < len(order) and groups[end] == last:
                end += 1
        start = end
    if sum(len(v) for v in parts.values()) != sum(sizes.values()):
        raise SplitError(
            f"{sample_set.name}: not enough whole groups for the requested sizes {sizes}; "
            "lower the sizes (for CelebA, a split by image needs data.source.allow_image_level_split=true)"
        )
    return {part: parts[part] for part in PARTS}


def save_manifest(split: MembershipSplit, run_dir: str | os.PathLike) -> Path:
    """Write ``run_dir/manifest.json`` atomically and return its path."""
    path = Path(run_dir) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(split.to_json(), indent=1))
    return path


def load_manifest(path: str | os.PathLike, sample_set: SampleSet | None = None) -> MembershipSplit:
    """Read a manifest; with ``sample_set``, refuse it unless it was made from that exact data."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no split manifest at {path}; train the victim first (python train.py ...)")
    try:
        raw = json.loads(path.read_text())
        split = MembershipSplit(
            raw["dataset"],
            int(raw["length"]),
            raw["fingerprint"],
            int(raw["seed"]),
            {part: [int(i) for i in raw["parts"][part]] for part in PARTS},
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
        raise SplitError(f"{path} is not a valid split manifest ({error})") from error
    if sample_set is not None:
        verify_manifest(split, sample_set, path)
    return split


def verify_manifest(split: MembershipSplit, sample_set: SampleSet, where: object = "manifest") -> None:
    """Raise ``SplitError`` unless ``split`` was made from ``sample_set`` as it is now."""
    if split.dataset != sample_set.name or split.length != len(sample_set):
        raise SplitError(
            f"{where} was made for dataset {split.dataset!r} with {split.length} samples, but the data "
            f"loaded now is {sample_set.name!r} with {len(sample_set)}; attack with the same data config "
            "the victim was trained with"
        )
    if split.fingerprint != sample_set.fingerprint():
        raise SplitError(
            f"{where}: the dataset {sample_set.name!r} has changed since the split was made (fingerprint "
            "mismatch: different files, preprocessing or resolution). Use the data the victim was "
            "trained on, or retrain the victim"
        )
