"""Property tests (hypothesis) over random small configurations: whatever the split sizes, query
counts, batch sizes, batch order, interruptions and DDP-style repeats, the attack's per-query results
stay keyed by id (aligned with the right sample) and the split parts stay disjoint."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ganleaks.data import PARTS, SampleSet, SplitError, load_manifest, make_split
from ganleaks.data.queries import select_queries
from ganleaks.data.sources import load_digits
from ganleaks.models import load_discriminator
from ganleaks.orchestration.calibration import align_by_id, calibrated_loss
from ganleaks.orchestration.runner import read_batches, score_queries, write_batch
from ganleaks.settings import BatchResult, DiscriminatorEngine

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sample_set_for(n: int, seed: int, grouped: bool) -> SampleSet:
    rng = torch.Generator().manual_seed(seed)
    data = torch.rand(n, 5, generator=rng) * 2 - 1
    ids = torch.randperm(n, generator=rng) * 3 + 7  # ids are not positions
    groups = torch.randint(0, max(2, n // 3), (n,), generator=rng) if grouped else None
    return SampleSet(data, ids, "random", "tabular", groups)


def truth(sample_set: SampleSet, ids: torch.Tensor, salt: float) -> torch.Tensor:
    """A per-query result that only the right sample gives: what a correctly aligned engine returns."""
    return sample_set.select(ids).data.sum(dim=1) + salt


def write_in_batches(
    batch_dir: Path, sample_set: SampleSet, ids: torch.Tensor, batch_size: int, salt: float, rank: int = 0
) -> None:
    """Score ``ids`` in the given order, ``batch_size`` at a time, as process ``rank`` would."""
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        loss = truth(sample_set, batch, salt)
        status = torch.zeros(len(batch), dtype=torch.int8)
        with mock.patch("os.getpid", return_value=10_000 + rank):
            write_batch(batch_dir, batch, BatchResult(loss, loss, loss[:, None].repeat(1, 3), status))


@FAST
@given(data=st.data())
def test_split_queries_and_batches_stay_aligned_and_disjoint(data):
    n = data.draw(st.integers(8, 60), label="samples")
    grouped = data.draw(st.booleans(), label="grouped")
    sample_set = sample_set_for(n, data.draw(st.integers(0, 1000)), grouped)
    members = data.draw(st.integers(1, n // 3), label="members")
    nonmembers = data.draw(st.integers(1, n // 3), label="nonmembers")
    reference = data.draw(st.integers(0, n - members - nonmembers), label="reference")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    try:
        split = make_split(sample_set, members, nonmembers, reference, seed)
    except SplitError as error:  # whole groups cannot always fill the sizes; the error says so
        assert grouped and "whole groups" in str(error)
        assume(False)

    # Disjoint, exactly sized, within the data, and no group in two parts.
    sizes = {"members": members, "nonmembers": nonmembers, "reference": reference}
    assert {part: len(split.parts[part]) for part in PARTS} == sizes
    everything = [i for part in PARTS for i in split.parts[part]]
    assert len(set(everything)) == len(everything) and set(everything) <= set(sample_set.ids.tolist())
    if grouped:
        owner = {}
        for part in PARTS:
            for group in sample_set.select(split.parts[part]).groups.tolist():
                assert owner.setdefault(group, part) == part
    assert make_split(sample_set, members, nonmembers, reference, seed).parts == split.parts  # deterministic

    # Queries: n of each class, labels from the manifest, sorted unique ids.
    limit = min(members, nonmembers)
    num_queries = data.draw(st.none() | st.integers(1, limit), label="num_queries")
    ids, labels = select_queries(split, num_queries, seed)
    per_class = limit if num_queries is None else num_queries
    assert len(ids) == 2 * per_class and int(labels.sum()) == per_class
    assert torch.equal(ids, torch.unique(ids))
    for sample_id, label in zip(ids.tolist(), labels.tolist(), strict=False):
        assert sample_id in (split.parts["members"] if label else split.parts["nonmembers"])

    # Victim and reference scored in different orders and batch sizes, each run interrupted once
    # (the second run writes the rest) and padded DDP-style: results still land on the right id.
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for role, salt in (("victim", 0.5), ("reference", -2.0)):
            order = data.draw(st.permutations(range(len(ids))), label=f"{role} order")
            batch_size = data.draw(st.integers(1, len(ids) + 3), label=f"{role} batch_size")
            cut = data.draw(st.integers(0, len(ids)), label=f"{role} interrupted after")
            repeat = data.draw(st.integers(0, min(3, len(ids))), label=f"{role} repeats")
            batch_dir = Path(tmp) / role
            shuffled = ids[torch.tensor(order, dtype=torch.long)]
            write_in_batches(batch_dir, sample_set, shuffled[:cut], batch_size, salt)  # killed after `cut`
            write_in_batches(batch_dir, sample_set, shuffled[cut:], batch_size, salt)  # the re-run: the rest
            write_in_batches(batch_dir, sample_set, shuffled[:repeat], batch_size, salt, rank=1)  # DDP padding
            rows = read_batches(batch_dir)
            assert torch.equal(rows["ids"], torch.unique(rows["ids"]))  # one row per id, sorted
            results[role] = align_by_id(ids, rows["ids"], rows["loss"])
            assert torch.equal(results[role], truth(sample_set, ids, salt))
            assert torch.equal(align_by_id(ids, rows["ids"], rows["z"])[:, 2], results[role])
        shuffle = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))
        rows = read_batches(Path(tmp) / "victim")
        assert torch.equal(align_by_id(ids[shuffle], rows["ids"], rows["loss"]), results["victim"][shuffle])
        calibrated = calibrated_loss(results["victim"], results["reference"])
        torch.testing.assert_close(calibrated, truth(sample_set, ids, 0.5) - truth(sample_set, ids, -2.0))


@pytest.fixture(scope="module")
def discriminator_case(trained_root):
    victim = trained_root / "train/digits/dcgan/n24/seed0"
    sample_set = load_digits(16)
    manifest = load_manifest(victim, sample_set)
    return sample_set, manifest, load_discriminator(victim)


TRAINER = {
    "accelerator": "cpu",
    "devices": 1,
    "logger": False,
    "enable_checkpointing": False,
    "inference_mode": False,
    "enable_model_summary": False,
    "enable_progress_bar": False,
}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_queries=st.integers(1, 24),
    batch_size=st.integers(1, 20),
    done_fraction=st.floats(0, 1),
    seed=st.integers(0, 1000),
)
def test_real_engine_through_lightning_keeps_every_score_on_its_id(
    discriminator_case, num_queries, batch_size, done_fraction, seed
):
    """The discriminator attack through ``score_queries`` (Lightning predict loop, batch files), resumed
    after a partial run: every id gets D(its own sample), whatever the batch it was scored in."""
    sample_set, manifest, discriminator = discriminator_case
    ids, labels = select_queries(manifest, num_queries, seed)
    x = sample_set.select(ids).data
    with torch.no_grad():
        expected = -torch.cat([discriminator(x[i : i + 1]) for i in range(len(x))])  # one query at a time
    engine = DiscriminatorEngine(discriminator)
    done = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))[: int(done_fraction * len(ids))]
    with tempfile.TemporaryDirectory() as tmp:
        batch_dir = Path(tmp) / "victim"
        if len(done):
            score_queries(engine, x[done], ids[done], batch_dir, TRAINER, batch_size)  # the interrupted run
        first = {path: path.stat().st_mtime_ns for path in batch_dir.glob("batch-*")}
        rows, _ = score_queries(engine, x, ids, batch_dir, TRAINER, batch_size)
        assert all(path.stat().st_mtime_ns == mtime for path, mtime in first.items())
        assert torch.equal(rows["ids"], ids)
        torch.testing.assert_close(align_by_id(ids, rows["ids"], rows["loss"]), expected, rtol=1e-5, atol=1e-6)
        assert not rows["status"].any()
