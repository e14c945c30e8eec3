"""Full black-box search: reproducible sample bank, exact nearest neighbours, bounded memory."""

from __future__ import annotations

import pytest
import torch

from ganleaks.attacks import nearest_neighbor
from ganleaks.attacks.nearest_neighbor import SampleBank, nearest_neighbors
from tests.attacks.helpers import make_generator


def test_bank_latents_depend_on_seed_and_index_only():
    generator = make_generator(0)
    small = SampleBank(generator, 3000, seed=1, chunk_size=7)
    large = SampleBank(generator, 3000, seed=1, chunk_size=1000)
    indices = torch.tensor([2999, 5, 1024, 5])
    torch.testing.assert_close(small.latents(indices), large.latents(indices))
    torch.testing.assert_close(small.latents(indices)[1], small.latents(indices)[3])
    first_chunk = next(iter(small.chunks()))[1]
    torch.testing.assert_close(first_chunk, small.samples(torch.arange(7)))
    assert not torch.allclose(SampleBank(generator, 3000, seed=2).latents(indices), small.latents(indices))
    with pytest.raises(IndexError):
        small.latents(torch.tensor([3000]))


def test_equals_brute_force_cdist():
    generator = make_generator(0)
    bank = SampleBank(generator, 700, seed=0, chunk_size=64)
    g = torch.Generator().manual_seed(0)
    queries = torch.rand(37, 1, 16, 16, generator=g) * 2 - 1
    samples = torch.cat([chunk for _, chunk in bank.chunks()])
    distances = torch.cdist(queries.flatten(1).double(), samples.flatten(1).double()) ** 2
    expected_d, expected_i = distances.topk(3, dim=1, largest=False)

    found = nearest_neighbors(queries, bank, top_m=3)
    indices, squared, z = found  # unpacks as a triple
    assert torch.equal(indices, expected_i)
    torch.testing.assert_close(squared.double(), expected_d, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(generator(z[:, 0]).detach(), samples[indices[:, 0]])
    # A plain tensor of samples works too (no latents then).
    plain = nearest_neighbors(queries, samples, top_m=1, chunk_size=50)
    assert torch.equal(plain.indices[:, 0], expected_i[:, 0]) and plain.z is None


def test_memory_is_queries_times_chunk_never_queries_times_k(monkeypatch):
    shapes = []
    real_addmm = torch.addmm

    def recording_addmm(*args, **kwargs):
        out = real_addmm(*args, **kwargs)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(nearest_neighbor.torch, "addmm", recording_addmm)
    samples = torch.rand(1000, 1, 4, 4) * 2 - 1
    queries = torch.rand(20, 1, 4, 4) * 2 - 1
    nearest_neighbors(queries, samples, top_m=2, chunk_size=128)
    assert shapes and max(s[1] for s in shapes) <= 128 and len(shapes) == 8


def test_rerank_orders_candidates_by_the_given_distance():
    class L1:
        def loss(self, x, y):
            return (x - y).abs().flatten(1).sum(1)

    g = torch.Generator().manual_seed(3)
    samples = torch.rand(300, 1, 4, 4, generator=g) * 2 - 1
    queries = torch.rand(10, 1, 4, 4, generator=g) * 2 - 1
    found = nearest_neighbors(queries, samples, top_m=8, distance=L1())
    l1 = (queries[:, None] - samples[found.indices]).abs().flatten(2).sum(2)
    torch.testing.assert_close(found.ranking_loss, l1)
    assert (found.ranking_loss[:, 1:] >= found.ranking_loss[:, :-1]).all()
    plain = nearest_neighbors(queries, samples, top_m=8)
    assert torch.equal(found.indices.sort(1).values, plain.indices.sort(1).values)  # same candidates


def test_cache_generates_once():
    generator = make_generator(0)
    calls = []
    generator.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    bank = SampleBank(generator, 200, seed=0, chunk_size=64, cache_bytes=10**8)
    queries = torch.zeros(3, 1, 16, 16)
    nearest_neighbors(queries, bank)
    generated = sum(calls)
    nearest_neighbors(queries, bank)
    assert generated >= 200 and sum(calls) - generated == 3  # only the 3 winners are regenerated
