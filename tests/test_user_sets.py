"""Query sets and generated sample sets a user brings: folders, arrays and CSV rows, with stable ids."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from ganleaks.attacks.montecarlo import monte_carlo_scores
from ganleaks.attacks.nearest_neighbor import SampleBank, make_sample_bank, nearest_neighbors
from ganleaks.data.user_sets import QuerySet, load_query_set, load_records, stable_key
from ganleaks.victims.stored_samples import FixedSampleBank, StoredSampleGenerator


def _write_pngs(folder, names, seed, mode="L", size=16):
    rng = np.random.default_rng(seed)
    pixels = {}
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = (size, size) if mode == "L" else (size, size, 3)
        array = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(array, mode=mode).save(path)
        pixels[name] = array
    return pixels


@pytest.fixture
def folders(tmp_path):
    members = _write_pngs(tmp_path / "train", ["b.png", "a.png", "sub/c.png"], seed=0)
    nonmembers = _write_pngs(tmp_path / "holdout", ["a.png", "d.png", "e.png"], seed=1)
    return tmp_path, members, nonmembers


def test_png_folders_load_with_paths_as_ids_and_exact_pixels(folders):
    root, members, nonmembers = folders
    queries = load_query_set(root / "train", root / "holdout")
    assert queries.ids == ["train/a.png", "train/b.png", "train/sub/c.png", "holdout/a.png", "holdout/d.png",
                           "holdout/e.png"]  # fmt: skip
    assert queries.labels.tolist() == [1, 1, 1, 0, 0, 0]
    assert queries.data.shape == (6, 1, 16, 16) and queries.kind == "image"
    expected = torch.from_numpy(members["sub/c.png"].astype(np.float32) / 127.5 - 1)
    assert torch.equal(queries.data[2, 0], expected)
    assert queries.sample_set().ids.tolist() == queries.keys.tolist()
    assert queries.ids_of(queries.keys[[4, 0]]) == ["holdout/d.png", "train/a.png"]


def test_keys_are_stable_when_other_files_are_added(folders):
    root, _, _ = folders
    before = load_query_set(root / "train", root / "holdout")
    _write_pngs(root / "holdout", ["0-first.png"], seed=5)
    after = load_query_set(root / "train", root / "holdout")
    old = dict(zip(before.ids, before.keys.tolist(), strict=True))
    assert all(old[i] == k for i, k in zip(after.ids, after.keys.tolist(), strict=True) if i in old)
    assert len(after) == len(before) + 1
    assert stable_key("train/a.png") == before.keys[0]


@pytest.mark.parametrize("nonmembers", ["train", "."])
def test_overlapping_folders_are_refused(folders, nonmembers):
    root, _, _ = folders
    members = "train/sub" if nonmembers == "." else "train"
    with pytest.raises(ValueError, match="both in queries.members.*cannot be both a member and a non-member"):
        load_query_set(root / members, root / nonmembers)


def test_an_identical_record_in_both_sets_is_refused_unless_allowed(folders):
    root, _, _ = folders
    shutil.copy(root / "train" / "b.png", root / "holdout" / "copy-of-b.png")
    with pytest.raises(ValueError, match=r"identical.*train/b.png == holdout/copy-of-b.png.*allow_identical=true"):
        load_query_set(root / "train", root / "holdout")
    assert len(load_query_set(root / "train", root / "holdout", allow_identical=True)) == 7


def test_mixed_channels_and_sizes_are_refused_naming_the_option(tmp_path):
    _write_pngs(tmp_path / "mixed", ["a.png"], seed=0)
    _write_pngs(tmp_path / "mixed", ["b.png"], seed=1, mode="RGB")
    with pytest.raises(ValueError, match=r"queries.channels=1 \(grey\) or queries.channels=3"):
        load_records(tmp_path / "mixed")
    assert load_records(tmp_path / "mixed", channels=3).data.shape == (2, 3, 16, 16)

    _write_pngs(tmp_path / "sizes", ["a.png"], seed=0)
    _write_pngs(tmp_path / "sizes", ["b.png"], seed=1, size=20)
    with pytest.raises(ValueError, match=r"20x20 but .*16x16; set queries.resolution=N"):
        load_records(tmp_path / "sizes")
    assert load_records(tmp_path / "sizes", resolution=16).data.shape == (2, 1, 16, 16)


def test_grey_members_and_colour_nonmembers_are_refused(tmp_path):
    _write_pngs(tmp_path / "train", ["a.png"], seed=0)
    _write_pngs(tmp_path / "holdout", ["a.png"], seed=1, mode="RGB")
    with pytest.raises(ValueError, match=r"\(1, 16, 16\).*\(3, 16, 16\).*queries.channels"):
        load_query_set(tmp_path / "train", tmp_path / "holdout")


def test_npy_arrays_load_with_row_ids_in_any_layout_and_range(tmp_path):
    rng = np.random.default_rng(0)
    members = rng.integers(0, 256, (5, 16, 16), dtype=np.uint8)  # (N, H, W), uint8: [0, 255]
    nonmembers = rng.integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)  # (N, H, W, C)
    np.save(tmp_path / "train.npy", members)
    np.savez(tmp_path / "holdout.npz", images=nonmembers)
    queries = load_query_set(tmp_path / "train.npy", tmp_path / "holdout.npz")
    assert queries.ids[:2] == ["train.npy:0", "train.npy:1"] and queries.ids[5] == "holdout.npz:0"
    assert queries.data.shape == (10, 1, 16, 16)
    assert torch.allclose(queries.data[0, 0], torch.from_numpy(members[0] / 127.5 - 1).float())
    assert torch.allclose(queries.data[5, 0], torch.from_numpy(nonmembers[0, ..., 0] / 127.5 - 1).float())

    unit = nonmembers.astype(np.float32) / 255  # the same images as floats in [0, 1]
    np.save(tmp_path / "unit.npy", unit)
    with pytest.raises(ValueError, match=r"values in \[0, 1\], outside \[-1, 0\].*set queries.value_range"):
        load_records(tmp_path / "unit.npy", value_range=[-1, 0], what="queries.nonmembers")
    assert torch.allclose(load_records(tmp_path / "unit.npy", value_range=[0, 1]).data, queries.data[5:], atol=1e-6)
    # Read without value_range, [0, 1] floats are taken as the project's [-1, 1]: the sets' scales disagree.
    with pytest.raises(ValueError, match="one looks scaled from"):
        load_query_set(tmp_path / "train.npy", tmp_path / "unit.npy")


def test_the_same_array_as_members_and_nonmembers_is_refused(tmp_path):
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).uniform(-1, 1, (6, 4)))
    with pytest.raises(ValueError, match="both in"):
        load_query_set(tmp_path / "rows.npy", tmp_path / "rows.npy")


def test_an_array_that_needs_pickle_or_another_size_is_refused(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="object arrays are pickles"):
        load_records(tmp_path / "objects.npy")
    np.save(tmp_path / "images.npy", np.zeros((2, 1, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match=r"never resized: set queries.resolution=16"):
        load_records(tmp_path / "images.npy", resolution=32)


def test_csv_rows_with_an_id_column(tmp_path):
    (tmp_path / "train.csv").write_text("patient,x,y\np7,0,1\np3,1,1\n")
    (tmp_path / "holdout.csv").write_text("patient,x,y\np9,1,0\np4,0,0\n")
    queries = load_query_set(tmp_path / "train.csv", tmp_path / "holdout.csv", id_column="patient", value_range=[0, 1])
    assert queries.ids == ["p7", "p3", "p9", "p4"] and queries.kind == "tabular"
    assert queries.data.tolist() == [[-1, 1], [1, 1], [1, -1], [-1, -1]]
    (tmp_path / "holdout.csv").write_text("patient,x,y\np3,1,0\n")
    with pytest.raises(ValueError, match=r"both in .*\['p3'\]"):
        load_query_set(tmp_path / "train.csv", tmp_path / "holdout.csv", id_column="patient", value_range=[0, 1])
    with pytest.raises(ValueError, match="queries.id_column='person'"):
        load_records(tmp_path / "train.csv", id_column="person")


def test_csv_rows_without_ids_are_numbered_and_checked(tmp_path):
    (tmp_path / "synthetic.csv").write_text("0.5,-0.25\n1,0\n-1,0.75\n")
    records = load_records(tmp_path / "synthetic.csv")
    assert records.ids == ["0", "1", "2"] and records.data.shape == (3, 2)
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n")
    with pytest.raises(ValueError, match="line 2: non-numeric"):
        load_records(tmp_path / "bad.csv")
    (tmp_path / "wide.csv").write_text("3,0\n")
    with pytest.raises(ValueError, match="value_range"):
        load_records(tmp_path / "wide.csv")


def test_a_query_set_refuses_duplicate_ids():
    with pytest.raises(ValueError, match="not unique"):
        QuerySet(torch.zeros(2, 3), ["a", "a"], torch.tensor([1, 0]), "tabular")


# --------------------------------------------------------------------------- generated sample sets


def test_a_png_folder_of_samples_is_a_bank_whose_latent_is_the_sample_index(tmp_path):
    _write_pngs(tmp_path / "synthetic", [f"{i:02d}.png" for i in range(20)], seed=3)
    samples = load_records(tmp_path / "synthetic", what="victim.path", options="victim")
    generator = StoredSampleGenerator(samples.data)
    bank = make_sample_bank(generator, None, seed=0, chunk_size=6)
    assert isinstance(bank, FixedSampleBank) and len(bank) == 20
    queries = samples.data[[13, 2]] + 0.01
    found = nearest_neighbors(queries, bank)
    assert found.indices[:, 0].tolist() == [13, 2]
    assert found.z is not None and torch.equal(generator(found.z[:, 0]), samples.data[[13, 2]])


def test_a_seeded_subset_of_k_samples(tmp_path):
    data = torch.rand(50, 6) * 2 - 1
    generator = StoredSampleGenerator(data)
    bank = FixedSampleBank(generator, k=10, seed=1, chunk_size=4)
    assert len(bank) == 10
    assert torch.equal(bank.sample_index, FixedSampleBank(generator, k=10, seed=1).sample_index)
    assert not torch.equal(bank.sample_index, FixedSampleBank(generator, k=10, seed=2).sample_index)
    chosen = torch.cat([chunk for _, chunk in bank.chunks()])
    assert torch.equal(chosen, data[bank.sample_index])
    queries = torch.rand(8, 6) * 2 - 1
    assert torch.equal(monte_carlo_scores(queries, bank).score, monte_carlo_scores(queries, chosen).score)
    assert len(FixedSampleBank(generator, k=500)) == 50  # more than the set holds: all of it


def test_a_stored_set_refuses_a_latent_search_naming_the_settings_that_apply():
    generator = StoredSampleGenerator(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="setting=fullbb and setting=montecarlo"):
        generator(torch.tensor([[0.5]]))
    with pytest.raises(ValueError, match="victim=generator"):
        generator(torch.zeros(1, 1, requires_grad=True))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        StoredSampleGenerator(torch.full((2, 3), 2.0))


def test_make_sample_bank_keeps_generators_on_the_seeded_bank():
    class Tiny(torch.nn.Module):
        latent_dim, data_shape = 2, (2,)

        def forward(self, z):
            return torch.tanh(z)

    assert type(make_sample_bank(Tiny(), 16, seed=0)) is SampleBank


def test_todays_engines_score_a_stored_set_once_given_its_bank():
    """What the wiring changes is only which bank the engines build (make_sample_bank); the rest runs as is."""
    from ganleaks.distances.distance import ReconstructionDistance
    from ganleaks.settings import FullBlackBoxEngine, MonteCarloEngine

    samples = torch.rand(30, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    generator = StoredSampleGenerator(samples)
    queries = samples[[4, 9]] * 0.9
    ids = torch.tensor([11, 12])
    fullbb = FullBlackBoxEngine(
        generator, ReconstructionDistance(), k=30, seed=0, chunk_size=7, rerank_top=1, bank_cache_mb=0
    )
    fullbb.bank = make_sample_bank(generator, 30, seed=0, chunk_size=7)
    result = fullbb.losses(queries, ids)
    assert result.z is not None and result.z[:, 0].tolist() == [4, 9]
    expected = (queries - samples[[4, 9]]).pow(2).flatten(1).mean(1)
    assert torch.allclose(result.loss, expected)
    montecarlo = MonteCarloEngine(
        generator, k=30, seed=0, chunk_size=2048, bank_cache_mb=0, epsilon_rule="nearest", quantile=0.5
    )
    montecarlo.attack.bank = make_sample_bank(generator, 30, seed=0)
    montecarlo.prepare(queries)
    assert torch.equal(montecarlo.losses(queries, ids).loss, -monte_carlo_scores(queries, samples).score.float())
