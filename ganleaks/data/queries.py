"""The queries of an attack: which records are asked about, with their membership labels.

A victim trained here draws them from its membership split; a victim the user brings, from the
user's member and non-member records (:mod:`ganleaks.data.user_sets`). Either way the attack sees
one :class:`Queries`, keyed by integer id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import MembershipSplit
from ganleaks.errors import AttackConfigError


@dataclass
class Queries:
    """The records to score and their labels.

    Attributes:
        sample_set: the records the ids index (the victim's data, or the user's query records).
        ids: ``(m,)`` sorted int64 ids of the queries; labels ``(m,)`` (1 = member).
        data: ``(m, *shape)`` the queries, in the order of ``ids``, in ``[-1, 1]``.
        fingerprint: identifies the records' contents and ids (the split manifest's, or the query set's).
        names: the user's string id of each query (in the order of ``ids``), written to
            ``scores.csv``; None: the integer ids are the names (a training run's split).
        split: the membership split the ids come from, when they come from one (ids of another
            split, or a user's query ids, cannot be compared with a model's training ids).
    """

    sample_set: SampleSet
    ids: Tensor
    labels: Tensor
    data: Tensor
    fingerprint: str
    names: list[str] | None = None
    split: MembershipSplit | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one query."""
        return tuple(self.sample_set.shape)


def select_queries(manifest: MembershipSplit, num_queries: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """Members and non-members of a split to query, ``num_queries`` of each (default: every non-member).

    Returns:
        ``ids (2n,)`` sorted, and ``labels (2n,)`` (1 = member).
    """
    members, nonmembers = manifest.ids("members"), manifest.ids("nonmembers")
    if len(nonmembers) == 0:
        raise AttackConfigError("the victim's split has no non-members to query; train with data.nonmember_size > 0")
    return choose_queries(members, nonmembers, num_queries, seed)


def choose_queries(
    members: Tensor, nonmembers: Tensor, num_queries: int | None, seed: int, balanced: bool = True, where: str = ""
) -> tuple[Tensor, Tensor]:
    """``num_queries`` seeded members and non-members (``None``: as many of each as ``balanced`` allows).

    ``balanced``: ``None`` takes every non-member and as many members (a split's parts); otherwise
    every member and every non-member (a user's query sets, which may differ in size).

    Returns:
        ``ids (m,)`` sorted, and ``labels (m,)`` (1 = member).
    """
    where = where or "the victim's split"
    most = min(len(members), len(nonmembers))
    if num_queries is None and not balanced:
        n_members, n_nonmembers = len(members), len(nonmembers)
    else:
        n = most if num_queries is None else int(num_queries)
        if n < 1 or n > most:
            raise AttackConfigError(
                f"attack.num_queries={num_queries} but {where} has {len(members)} members and "
                f"{len(nonmembers)} non-members; choose 1..{most} (or null for all)"
            )
        n_members = n_nonmembers = n
    rng = torch.Generator().manual_seed(int(seed))
    chosen_members = members[torch.randperm(len(members), generator=rng)[:n_members]]
    chosen_nonmembers = nonmembers[torch.randperm(len(nonmembers), generator=rng)[:n_nonmembers]]
    ids = torch.cat([chosen_members, chosen_nonmembers])
    labels = torch.cat([torch.ones(n_members, dtype=torch.int64), torch.zeros(n_nonmembers, dtype=torch.int64)])
    order = torch.argsort(ids)
    return ids[order], labels[order]
