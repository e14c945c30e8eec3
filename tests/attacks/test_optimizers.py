"""The objective protocol shared by the optimisers."""

from __future__ import annotations

import pytest
import torch

from ganleaks.optimizers.base import as_indexed, occurrence_rank
from ganleaks.optimizers.registry import minimize


def test_occurrence_rank():
    assert occurrence_rank(torch.tensor([3, 1, 3, 3, 0, 1])).tolist() == [0, 0, 1, 2, 0, 1]
    assert occurrence_rank(torch.tensor([], dtype=torch.long)).tolist() == []


def test_plain_objectives_are_evaluated_row_by_row_even_with_repeats():
    weights = torch.tensor([1.0, 2.0, 3.0])
    seen_shapes = []

    def plain(z):  # full batch only
        seen_shapes.append(tuple(z.shape))
        return (z.pow(2).sum(1) + 1) * weights

    indexed = as_indexed(plain, batch_size=3)
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [0.0, 0.0]])
    index = torch.tensor([2, 0, 2, 2])
    expected = torch.tensor([2.0 * 3, 5.0 * 1, 10.0 * 3, 1.0 * 3])
    torch.testing.assert_close(indexed(z, index), expected)
    assert set(seen_shapes) == {(3, 2)}


def test_indexed_objectives_pass_through():
    def indexed(z, index):
        return z.sum(1) + index

    assert as_indexed(indexed, 5) is indexed


def test_minimize_dispatch():
    f = lambda z: (z - 2).pow(2).sum(1)  # noqa: E731
    for method in ("lbfgs", "powell"):
        result = minimize(f, torch.zeros(2, 3), method=method)
        assert result.objective.max() < 1e-4
    with pytest.raises(ValueError, match="optimizer"):
        minimize(f, torch.zeros(2, 3), method="adam")
