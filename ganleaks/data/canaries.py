"""Canaries for a one-run privacy audit: ``m`` records, each put into the training set by a fair coin.

``python train.py canaries=ood`` (or ``canaries=indist``) draws ``m`` canary records and one
independent fair coin per canary from ``canaries.seed``, trains on the members plus the canaries
whose coin came up "included", and records the canaries and their coins in ``canaries.json`` beside
the split manifest. ``python attack.py audit=canaries`` queries the canaries (included = member)
and turns the attack's guesses into an epsilon lower bound (``docs/PRIVACY_AUDIT.md``).

Kinds:

* ``indist``: held-out records of the victim's own data set, none of them in the split's members,
  non-members or reference part (nor, for a source with groups, in a group any part uses).
* ``ood``: images of another data set (``source: fashion_mnist``, read offline), or seeded synthetic
  block patterns (``source: patterns``), fitted to the victim's image shape. Their ids are the
  source index plus :data:`OOD_ID_OFFSET`, so they never name a record of the victim's data.

The record choice and the coins come from independent numpy streams of ``canaries.seed``
(``SeedSequence([seed, 0])`` and ``[seed, 1]``): a coin is independent of which record it decides.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import MembershipSplit, SplitError, check_disjoint
from ganleaks.io import atomic_write_text

CANARIES_NAME = "canaries.json"
KINDS = ("indist", "ood")
OOD_SOURCES = ("fashion_mnist", "patterns")
#: Added to an out-of-distribution source's index to make a canary's id: far above any data set's length.
OOD_ID_OFFSET = 1 << 40
_CHOICE_STREAM, _COIN_STREAM, _PATTERN_STREAM = 0, 1, 2


class CanaryError(ValueError):
    """Canaries that cannot be drawn, or a ``canaries.json`` that does not match its run."""


@dataclass
class Canaries:
    """The canaries of one training run.

    Attributes:
        kind: ``"indist"`` or ``"ood"``.
        source: where the records come from (the victim's data set's name, ``fashion_mnist``, ``patterns``).
        seed: the seed the records and the coins were drawn from.
        records: the ``m`` canary records (``ids`` in the order drawn, data in ``[-1, 1]``).
        included: ``(m,)`` bool, the coins: True = trained on.
    """

    kind: str
    source: str
    seed: int
    records: SampleSet
    included: torch.Tensor

    @property
    def m(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> torch.Tensor:
        return self.records.ids

    def included_records(self) -> SampleSet:
        """The canaries trained on (coin = included)."""
        return self.records.select(self.records.ids[self.included])

    def fingerprint(self) -> str:
        """sha256 over the canaries' ids, data and coins."""
        digest = hashlib.sha256(self.records.fingerprint().encode())
        digest.update(self.included.numpy().astype(np.uint8).tobytes())
        return digest.hexdigest()

    def to_json(self, dataset: str) -> dict:
        return {
            "kind": self.kind,
            "source": self.source,
            "seed": self.seed,
            "m": self.m,
            "dataset": dataset,
            "n_included": int(self.included.sum()),
            "ids": [int(i) for i in self.ids],
            "included": [bool(c) for c in self.included],
            "fingerprint": self.fingerprint(),
        }


def draw_coins(m: int, seed: int) -> torch.Tensor:
    """``(m,)`` bool: one independent fair coin per canary, True = included in training."""
    rng = np.random.default_rng([int(seed), _COIN_STREAM])
    return torch.from_numpy(rng.integers(0, 2, size=int(m)).astype(bool))


def _choose(candidates: torch.Tensor, m: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng([int(seed), _CHOICE_STREAM])
    return candidates[torch.from_numpy(rng.choice(len(candidates), size=m, replace=False))]


def _heldout_ids(sample_set: SampleSet, split: MembershipSplit) -> torch.Tensor:
    """Ids in no part of ``split`` (and, with groups, in no group a part uses), sorted."""
    used = torch.tensor(sorted(i for ids in split.parts.values() for i in ids), dtype=torch.int64)
    free = ~torch.isin(sample_set.ids, used)
    if sample_set.groups is not None:
        used_groups = torch.unique(sample_set.groups[sample_set.positions(used)]) if len(used) else used
        free &= ~torch.isin(sample_set.groups, used_groups)
    return torch.sort(sample_set.ids[free]).values


def _fit_images(images: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Grey ``(N, 1, h, w)`` images in ``[-1, 1]`` resized to ``shape`` = ``(C, H, W)``, the grey repeated in C."""
    channels, height, width = shape
    if images.shape[-2:] != (height, width):
        images = F.interpolate(images, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return images.clamp(-1, 1).repeat(1, channels, 1, 1).contiguous()


def _patterns(indices: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Seeded synthetic canaries: a random 4x4 pattern of black and white blocks, one per index."""
    channels, height, width = shape
    blocks = torch.stack(
        [
            torch.from_numpy(np.random.default_rng([int(seed), _PATTERN_STREAM, int(i)]).integers(0, 2, size=(4, 4)))
            for i in indices
        ]
    ).to(torch.float32)
    images = F.interpolate(blocks[:, None] * 2 - 1, size=(height, width), mode="nearest")
    return images.repeat(1, channels, 1, 1).contiguous()


def _ood_records(source: str, shape: tuple[int, ...], m: int, seed: int, root: str | None) -> SampleSet:
    if source == "patterns":
        indices = torch.arange(m, dtype=torch.int64)
        return SampleSet(_patterns(indices, shape, seed), indices + OOD_ID_OFFSET, "patterns", "image")
    from ganleaks.data.sources import load_idx_images  # the IDX reader only where Fashion-MNIST is used

    images = load_idx_images(root, "fashion_mnist", resolution=28, download=False, name="fashion_mnist")
    if m > len(images):
        raise CanaryError(f"canaries.m={m} but {source} has only {len(images)} images")
    chosen = _choose(images.ids, m, seed)
    data = _fit_images(images.data[images.positions(chosen)], shape)
    return SampleSet(data, chosen + OOD_ID_OFFSET, source, "image")


def make_canaries(
    kind: str,
    m: int,
    seed: int,
    sample_set: SampleSet,
    split: MembershipSplit,
    *,
    source: str | None = None,
    root: str | None = None,
) -> Canaries:
    """Draw ``m`` canaries of ``kind`` for a victim of ``sample_set`` split by ``split``, and their coins.

    Raises:
        CanaryError: an unknown kind or source, too few held-out records, OOD canaries for tabular data
            or from the victim's own data set, or canaries that would overlap a split part.
    """
    if kind not in KINDS:
        raise CanaryError(f"canaries.kind={kind!r}: choose canaries=indist or canaries=ood (or canaries=none)")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise CanaryError(f"canaries.m={m!r}: the number of canaries must be an integer >= 1")
    if kind == "indist":
        heldout = _heldout_ids(sample_set, split)
        if m > len(heldout):
            raise CanaryError(
                f"canaries=indist needs {m} records of {sample_set.name} outside the split's members, non-members "
                f"and reference part, but only {len(heldout)} are left: lower canaries.m, data.nonmember_size or "
                "data.reference_size, or use canaries=ood"
            )
        records = sample_set.select(_choose(heldout, m, seed))
        records = SampleSet(records.data, records.ids, sample_set.name, sample_set.kind)
        source = sample_set.name
    else:
        source = source or "fashion_mnist"
        if source not in OOD_SOURCES:
            raise CanaryError(f"canaries.source={source!r}: choose one of {', '.join(OOD_SOURCES)}")
        if sample_set.kind != "image":
            raise CanaryError(f"canaries=ood draws images, but {sample_set.name} is tabular: use canaries=indist")
        if source == sample_set.name:
            raise CanaryError(
                f"canaries=ood with canaries.source={source} is the victim's own data set, not out of distribution: "
                "use canaries=indist, or canaries.source=patterns"
            )
        records = _ood_records(source, tuple(sample_set.shape), m, seed, root)
        if torch.isin(records.ids, sample_set.ids).any():
            raise CanaryError(
                f"{source} canary ids collide with ids of {sample_set.name}; use canaries.source=patterns"
            )
    canaries = Canaries(kind, source, int(seed), records, draw_coins(m, seed))
    check_canaries_disjoint(split, canaries)
    return canaries


def check_canaries_disjoint(split: MembershipSplit, canaries: Canaries) -> None:
    """Raise :class:`~ganleaks.data.split.SplitError` if a canary is a member, non-member or reference record."""
    check_disjoint({**split.parts, "canaries": [int(i) for i in canaries.ids]})


def save_canaries(canaries: Canaries, dataset: str, run_dir: str | os.PathLike) -> Path:
    """Write ``run_dir/canaries.json`` (ids, source, coins, seed, kind) atomically; return its path.

    The coins live only here: nothing an attacker is given (the exported networks, samples,
    ``trained_on.json``, which lists the members alone) says which canaries were trained on.
    """
    path = Path(run_dir) / CANARIES_NAME
    atomic_write_text(path, json.dumps(canaries.to_json(dataset), indent=1))
    return path


def read_canaries_record(run_dir: str | os.PathLike) -> dict | None:
    """The raw ``canaries.json`` of a run, or None when the run has no canaries."""
    path = Path(run_dir) / CANARIES_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CanaryError(f"{path} is not readable ({error})") from error
    if not isinstance(record, dict):
        raise CanaryError(f"{path} is not a canaries record")
    return record


def load_canaries(
    run_dir: str | os.PathLike, sample_set: SampleSet, split: MembershipSplit, root: str | None = None
) -> Canaries:
    """The canaries a run recorded, rebuilt from their source and checked against the record.

    The records are drawn again from the recorded kind, source and seed; their ids, coins and
    fingerprint must equal the recorded ones, and they must be disjoint from every split part.

    Raises:
        FileNotFoundError: the run has no ``canaries.json`` (it was trained with ``canaries=none``).
        CanaryError: the record does not match what its seed draws (edited, or other data).
        SplitError: a canary is in a split part.
    """
    record = read_canaries_record(run_dir)
    path = Path(run_dir) / CANARIES_NAME
    if record is None:
        raise FileNotFoundError(
            f"{path} is missing: {run_dir} was trained without canaries. Train the victim with canaries "
            "(python train.py canaries=ood ...) to audit it with audit=canaries"
        )
    try:
        kind, source, seed, m = record["kind"], record["source"], int(record["seed"]), int(record["m"])
        ids, included = list(record["ids"]), [bool(c) for c in record["included"]]
    except (KeyError, TypeError, ValueError) as error:
        raise CanaryError(f"{path} is not a valid canaries record ({error})") from error
    canaries = make_canaries(kind, m, seed, sample_set, split, source=None if kind == "indist" else source, root=root)
    if [int(i) for i in canaries.ids] != ids or [bool(c) for c in canaries.included] != included:
        raise CanaryError(
            f"{path}: the recorded canaries or coins are not those its seed {seed} draws from {source}: the record "
            "was edited or the data changed since training; retrain the victim"
        )
    if record.get("fingerprint") != canaries.fingerprint():
        raise SplitError(
            f"{path}: the canary records changed since training (fingerprint mismatch); retrain the victim"
        )
    return canaries
