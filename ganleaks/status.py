"""A query's status: one int8 per query, from the optimiser through the batch files to ``scores.csv``.

Only the CSV writer turns a status into a word (:data:`STATUS_NAMES`). A higher code is worse, so
the status of a calibrated query (victim and reference) is the maximum of its two statuses.
"""

from __future__ import annotations

import torch
from torch import Tensor

STATUS_OK = 0
STATUS_DIVERGED = 1  # the objective, the query or the model output was not finite: no loss
STATUS_NAMES = {STATUS_OK: "ok", STATUS_DIVERGED: "diverged"}


def status_from(diverged: Tensor) -> Tensor:
    """``(B,)`` int8 statuses from a boolean mask of diverged queries."""
    return torch.where(diverged, STATUS_DIVERGED, STATUS_OK).to(torch.int8)
