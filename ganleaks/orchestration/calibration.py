"""Calibration with a reference model (paper section 5.6, eq. 11): losses aligned by id, then subtracted.

That the reference never saw a query is the reference victim's own check
(:meth:`~ganleaks.victims.base.Victim.check_disjoint`)."""

from __future__ import annotations

import torch


def align_by_id(query_ids: torch.Tensor, ids: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` (rows keyed by ``ids``) reordered to follow ``query_ids``; never matched by position.

    Raises:
        KeyError: a queried id has no row.
    """
    order = torch.argsort(ids)
    sorted_ids = ids[order]
    where = torch.searchsorted(sorted_ids, query_ids).clamp(max=max(len(sorted_ids) - 1, 0))
    if len(sorted_ids) == 0 or not torch.equal(sorted_ids[where], query_ids):
        raise KeyError("some queried ids have no row to match")
    return values[order][where]


def calibrated_loss(victim_loss: torch.Tensor, reference_loss: torch.Tensor) -> torch.Tensor:
    """``L_cal = L(x, R(x|G_v)) - L(x, R(x|G_r))`` (eq. 11), both ``(N,)`` aligned by id."""
    return victim_loss - reference_loss
