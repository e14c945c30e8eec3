"""Calibration with a reference model (paper section 5.6, eq. 11) and its safety checks."""

from __future__ import annotations

from pathlib import Path

import torch

from ganleaks.data.loading import read_trained_on
from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import load_manifest


class ReferenceOverlapError(ValueError):
    """The reference model was trained on samples that are being queried."""


def check_reference_run(reference_dir: str | Path, query_ids: torch.Tensor, sample_set: SampleSet) -> None:
    """Refuse a reference model that did not train on this data or trained on any queried id.

    Args:
        reference_dir: the reference model's training run folder (that it holds a model is checked
            before, with the networks the attack needs: :func:`ganleaks.orchestration.plan.check_model_folder`).
        query_ids: ``(N,)`` ids of every query (members and non-members).
        sample_set: the data being attacked; the reference's manifest must be of the same data,
            otherwise its ids would name other samples.
    """
    reference_dir = Path(reference_dir)
    load_manifest(reference_dir, sample_set)  # same dataset, same preprocessing (fingerprint)
    trained = torch.tensor(read_trained_on(reference_dir)["ids"], dtype=torch.int64)
    overlap = torch.isin(query_ids, trained)
    if overlap.any():
        raise ReferenceOverlapError(
            f"the reference model in {reference_dir} was trained on {int(overlap.sum())} of the queried samples "
            f"(first ids: {query_ids[overlap][:5].tolist()}); calibration needs a reference trained on data "
            "disjoint from the queries: train it with data.part=reference"
        )


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
