"""Issue 23, part 2 and 3: what a user declares is checked against the data itself.

A declared value or output range the values contradict, a sample set of another size or mode than
the queries, a folder that mixes sizes or modes, a calibration set that shares records with the
victim's samples or the queries, and the CSV files spreadsheets and pandas write.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ganleaks.data.sources import load_checkins, load_image_folder, load_mimic
from ganleaks.data.user_sets import load_records
from ganleaks.errors import AttackConfigError
from ganleaks.victims.external_networks import ExternalModelError, load_external_generator
from ganleaks.victims.user_samples import SampleSetVictim
from tests.userpkg.nets import ConvGenerator, Generator


def _pngs(folder, images, mode=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image, mode).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture
def queries(tmp_path):
    """Grey 16x16 members and non-members as PNG folders (random uint8: honest data)."""
    rng = np.random.default_rng(0)
    members, nonmembers = (rng.integers(0, 256, (12, 16, 16), dtype=np.uint8) for _ in range(2))
    return {
        "members": _pngs(tmp_path / "train", members),
        "nonmembers": _pngs(tmp_path / "holdout", nonmembers),
        "member_images": members,
        "rng": rng,
    }


def _victim(path, queries, **kwargs):
    victim = SampleSetVictim(
        str(path), queries={"members": str(queries["members"]), "nonmembers": str(queries["nonmembers"])}, **kwargs
    )
    chosen = victim.queries(None, 0)
    return victim, chosen


# --------------------------------------------------------------------------- value ranges


def test_zero_one_samples_declared_0_255_are_refused_with_the_range_they_suggest(tmp_path, queries):
    # The users' case: samples stored in [0, 1] declared [0, 255] were audited (AUC 0.64 instead of 0.965).
    samples = queries["rng"].random((20, 1, 16, 16)).astype(np.float32)
    np.save(tmp_path / "samples.npy", samples)
    with pytest.raises(ValueError, match=r"victim.value_range=\[0, 255\].*\[0, 1\] data.*victim.value_range=\[0,1\]"):
        load_records(tmp_path / "samples.npy", value_range=[0, 255], what="victim.path", options="victim")
    victim, chosen = _victim(tmp_path / "samples.npy", queries, value_range=[0, 255])
    with pytest.raises(ValueError, match=r"Set victim.value_range=\[0,1\]"):
        victim.check_fits(object, chosen)
    assert load_records(tmp_path / "samples.npy", value_range=[0, 1]).data.min() < -0.9  # declared right: used


def test_signed_unit_floats_declared_0_255_suggest_minus_one_one(tmp_path):
    rows = np.random.default_rng(1).uniform(-1, 1, (10, 4))
    np.save(tmp_path / "rows.npy", rows)
    with pytest.raises(ValueError, match=r"outside \[0, 255\]"):  # negatives: outside the range, as before
        load_records(tmp_path / "rows.npy", value_range=[0, 255])
    with pytest.raises(ValueError, match=r"queries.value_range=\[-1,1\]"):
        load_records(tmp_path / "rows.npy", value_range=[-128, 127])


def test_default_dtype_ranges_the_values_contradict_are_refused_unless_declared(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "mask.npy", rng.integers(0, 2, (10, 8, 8)).astype(np.uint8))  # 0/1 codes as uint8
    with pytest.raises(ValueError, match=r"1/255 part of \[0, 255\].*queries.value_range=\[0,1\].*declare"):
        load_records(tmp_path / "mask.npy")
    assert load_records(tmp_path / "mask.npy", value_range=[0, 1]).data.max() == 1.0
    load_records(tmp_path / "mask.npy", value_range=[0, 255])  # declared: the user says so, accepted (a warning)
    np.save(tmp_path / "eight_bit.npy", rng.integers(0, 256, (10, 8, 8)).astype(np.uint16))
    with pytest.raises(ValueError, match=r"\[0, 65535\].*queries.value_range=\[0,255\]"):
        load_records(tmp_path / "eight_bit.npy")


def test_honest_data_is_never_refused_and_a_narrow_span_is_only_warned(tmp_path, caplog):
    rng = np.random.default_rng(3)
    dark = rng.integers(0, 4, (10, 1, 8, 8)).astype(np.float32)  # a very dark 8-bit set stored as floats
    np.save(tmp_path / "dark.npy", dark)
    with caplog.at_level(logging.WARNING, logger="ganleaks.data.user_sets"):
        records = load_records(tmp_path / "dark.npy", value_range=[0, 255])
    assert records.data.max() < -0.95 and "1.2% of queries.value_range=[0, 255]" in caplog.text
    for array in (
        rng.integers(0, 256, (10, 8, 8)).astype(np.uint8),
        rng.integers(0, 65536, (10, 8, 8)).astype(np.uint16),
        rng.uniform(-1, 1, (10, 8)).astype(np.float32),
        rng.integers(0, 256, (10, 3, 8, 8)).astype(np.float64),  # [0, 255] floats, declared
    ):
        np.save(tmp_path / "a.npy", array)
        declared = [0, 255] if array.dtype == np.float64 else None
        assert torch.isfinite(load_records(tmp_path / "a.npy", value_range=declared).data).all()


def _saved_generator(tmp_path, output):
    torch.manual_seed(0)
    network = Generator(latent_size=8, output=output)
    save_file(network.state_dict(), str(tmp_path / f"G_{output}.safetensors"))
    return {"_target_": "tests.userpkg.nets.Generator", "latent_size": 8, "output": output}, tmp_path / (
        f"G_{output}.safetensors"
    )


@pytest.mark.parametrize(("output", "suggested"), [("sigmoid", "[0,1]"), ("tanh", "[-1,1]")])
def test_a_generator_declared_0_255_whose_outputs_are_unit_is_refused(tmp_path, output, suggested):
    node, weights = _saved_generator(tmp_path, output)
    low = -128 if output == "tanh" else 0
    expected = rf"output_range=\[{low},{low + 255}\].*Set victim.output_range={re.escape(suggested)}"
    with pytest.raises(ExternalModelError, match=expected):
        load_external_generator(node, weights, 8, output_range=[low, low + 255])
    load_external_generator(node, weights, 8, output_range=[0, 1] if output == "sigmoid" else [-1, 1])


def test_a_generator_declared_minus_one_one_that_outputs_zero_one_is_refused_against_the_queries(tmp_path, queries):
    from ganleaks.settings.full_black_box import FullBlackBoxEngine
    from ganleaks.victims.user_generator import UserGeneratorVictim

    node, weights = _saved_generator(tmp_path, "sigmoid")
    victim = UserGeneratorVictim(
        node, str(weights), 8, queries={"members": str(queries["members"]), "nonmembers": str(queries["nonmembers"])}
    )
    chosen = victim.queries(None, 0)
    with pytest.raises(ValueError, match=r"victim.output_range"):
        victim.networks(FullBlackBoxEngine, chosen)


# --------------------------------------------------------------------------- latent sizes and channels


@pytest.mark.parametrize("network", [Generator(latent_size=8), ConvGenerator(latent_size=8)])
def test_a_wrong_latent_size_is_refused_at_load(tmp_path, network):
    save_file(network.state_dict(), str(tmp_path / "G.safetensors"))
    node = {"_target_": f"tests.userpkg.nets.{type(network).__name__}", "latent_size": 8}
    with pytest.raises(ExternalModelError, match=r"victim.latent_dim=6.*Set victim.latent_dim"):
        load_external_generator(node, tmp_path / "G.safetensors", 6)


def test_a_generator_of_other_channels_than_the_queries_is_refused(tmp_path):
    network = Generator(latent_size=8, channels=3)
    save_file(network.state_dict(), str(tmp_path / "G.safetensors"))
    node = {"_target_": "tests.userpkg.nets.Generator", "latent_size": 8, "channels": 3}
    with pytest.raises(ExternalModelError, match=r"\(3, 16, 16\).*\(1, 16, 16\).*queries.channels=3"):
        load_external_generator(node, tmp_path / "G.safetensors", 8, data_shape=(1, 16, 16))


def test_a_sample_set_of_other_channels_or_size_is_refused_not_converted(tmp_path, queries):
    rng = queries["rng"]
    colour = _pngs(tmp_path / "colour", rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    victim, chosen = _victim(colour, queries)
    with pytest.raises(AttackConfigError, match=r"shape \(3, 16, 16\).*\(1, 16, 16\).*queries.channels=3"):
        victim.check_fits(object, chosen)
    larger = _pngs(tmp_path / "larger", rng.integers(0, 256, (6, 32, 32), dtype=np.uint8))
    victim, chosen = _victim(larger, queries)
    with pytest.raises(AttackConfigError, match=r"never resized.*queries.resolution=32"):
        victim.check_fits(object, chosen)
    np.save(tmp_path / "rgb.npy", rng.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8))
    victim, chosen = _victim(tmp_path / "rgb.npy", queries)
    with pytest.raises(AttackConfigError, match=r"queries.channels=3"):  # no victim.channels: it does not exist
        victim.check_fits(object, chosen)


def test_a_sample_folder_that_mixes_modes_or_sizes_is_refused_naming_no_missing_key(tmp_path, queries):
    rng = queries["rng"]
    mixed = _pngs(tmp_path / "mixed", rng.integers(0, 256, (3, 16, 16), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(mixed / "zz.png")
    victim, chosen = _victim(mixed, queries)
    with pytest.raises(ValueError, match=r"mixes grey and colour images and victim.path is used as stored") as error:
        victim.check_fits(object, chosen)
    assert "victim.channels" not in str(error.value)
    sizes = _pngs(tmp_path / "sizes", rng.integers(0, 256, (3, 16, 16), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(sizes / "zz.png")
    victim, chosen = _victim(sizes, queries)
    with pytest.raises(ValueError, match=r"mixes sizes and victim.path is used as stored"):
        victim.check_fits(object, chosen)


def test_a_training_image_folder_that_mixes_modes_and_sizes_says_so(tmp_path, caplog):
    rng = np.random.default_rng(4)
    _pngs(tmp_path / "d", rng.integers(0, 256, (2, 20, 20), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(tmp_path / "d" / "c.png")
    with caplog.at_level(logging.WARNING, logger="ganleaks.data.sources"):
        data = load_image_folder(str(tmp_path / "d"), resolution=8, channels=3)
    assert data.data.shape == (3, 3, 8, 8)
    assert "mixes grey" in caplog.text and "converted to RGB" in caplog.text and "2 sizes" in caplog.text


# --------------------------------------------------------------------------- calibration sets


def _reference(path, value_range=None):
    return SampleSetVictim(str(path), value_range, role="reference")


def test_a_calibration_set_identical_to_the_victims_samples_is_refused(tmp_path, queries):
    rng = queries["rng"]
    samples = _pngs(
        tmp_path / "synthetic",
        np.concatenate([queries["member_images"][:4], rng.integers(0, 256, (8, 16, 16), dtype=np.uint8)]),
    )
    victim, chosen = _victim(samples, queries)
    victim.check_fits(object, chosen)
    with pytest.raises(
        ValueError,
        match=r"shares 12 of its 12 records with the victim's samples.*e\.g\. its 0000.png is 0000.png there",
    ):
        _reference(samples).check_disjoint(chosen, victim)


def test_a_calibration_set_holding_member_queries_is_refused_and_a_disjoint_one_is_used(tmp_path, queries):
    rng = queries["rng"]
    victim, chosen = _victim(_pngs(tmp_path / "synthetic", rng.integers(0, 256, (8, 16, 16), dtype=np.uint8)), queries)
    victim.check_fits(object, chosen)
    leaky = _pngs(
        tmp_path / "leaky",
        np.concatenate([rng.integers(0, 256, (8, 16, 16), dtype=np.uint8), queries["member_images"][5:7]]),
    )
    with pytest.raises(
        ValueError, match=r"shares 2 of its 10 records with the member queries.*its 0008.png is train/0005.png"
    ):
        _reference(leaky).check_disjoint(chosen, victim)
    honest = _pngs(tmp_path / "honest", rng.integers(0, 256, (8, 16, 16), dtype=np.uint8))
    _pngs(honest, np.zeros((1, 16, 16), dtype=np.uint8))  # a blank image: a degenerate output two sets may share
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / "synthetic" / "blank.png")
    _reference(honest).check_disjoint(chosen, victim)


def test_tabular_calibration_rows_equal_by_chance_are_only_warned(tmp_path, caplog):
    rng = np.random.default_rng(5)
    codes = lambda n: (rng.random((n, 3)) < 0.5).astype(np.float32)  # 8 possible rows: duplicates by chance  # noqa: E731
    for name, rows in (
        ("train", codes(40)),
        ("holdout", codes(40)),
        ("synthetic", codes(60)),
        ("reference", codes(60)),
    ):
        np.savetxt(tmp_path / f"{name}.csv", rows, delimiter=",", fmt="%g")
    victim = SampleSetVictim(str(tmp_path / "synthetic.csv"), [0, 1], queries={
        "members": str(tmp_path / "train.csv"), "nonmembers": str(tmp_path / "holdout.csv"),
        "value_range": [0, 1], "allow_identical": True})  # fmt: skip
    chosen = victim.queries(None, 0)
    victim.check_fits(object, chosen)
    with caplog.at_level(logging.WARNING, logger="ganleaks.data.user_sets"):
        _reference(tmp_path / "reference.csv", [0, 1]).check_disjoint(chosen, victim)
    assert "by chance" in caplog.text
    with pytest.raises(ValueError, match=r"the very same records"):
        _reference(tmp_path / "synthetic.csv", [0, 1]).check_disjoint(chosen, victim)


# --------------------------------------------------------------------------- CSV files


def test_a_pandas_csv_with_its_index_keeps_every_id_in_place(tmp_path):
    rows = np.arange(12, dtype=float).reshape(4, 3) / 20
    (tmp_path / "indexed.csv").write_text(
        ",0,1,2\n" + "".join(f"{i},{','.join(map(str, r))}\n" for i, r in enumerate(rows))
    )
    records = load_records(tmp_path / "indexed.csv", value_range=[0, 1])
    assert records.ids == ["0", "1", "2", "3"] and records.shape == (3,)
    assert torch.allclose(records.data, torch.from_numpy(rows * 2 - 1).float())
    (tmp_path / "numbered.csv").write_text("0,1,2\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    records = load_records(tmp_path / "numbered.csv", value_range=[0, 1])
    assert records.ids == ["0", "1", "2", "3"] and torch.allclose(records.data, torch.from_numpy(rows * 2 - 1).float())


def test_csv_files_written_by_spreadsheets_are_read(tmp_path):
    (tmp_path / "bom.csv").write_text("id,a,b\np1,0.5,0.25\np2,0.75,1\n", encoding="utf-8-sig")
    records = load_records(tmp_path / "bom.csv", value_range=[0, 1], id_column="id")
    assert records.ids == ["p1", "p2"]
    (tmp_path / "semicolon.csv").write_text("a;b\n0.5;0.25\n0.75;1\n")
    assert load_records(tmp_path / "semicolon.csv", value_range=[0, 1]).shape == (2,)
    (tmp_path / "checkins.csv").write_text("lat,lon,user\n1.0,2.0,u1\n3.0,4.0,u2\n", encoding="utf-8-sig")
    assert load_checkins(str(tmp_path / "checkins.csv")).data.shape == (2, 2)


def test_a_pandas_csv_of_codes_with_its_index_loads_as_mimic(tmp_path):
    codes = (np.random.default_rng(6).random((5, 4)) < 0.5).astype(int)
    (tmp_path / "codes.csv").write_text(
        ",0,1,2,3\n" + "".join(f"{i},{','.join(map(str, r))}\n" for i, r in enumerate(codes))
    )
    assert torch.equal(load_mimic(str(tmp_path / "codes.csv")).data, torch.from_numpy(codes * 2 - 1).float())


def test_palette_greys_transparency_and_an_unused_value_range_are_handled_and_said(tmp_path, caplog):
    rng = np.random.default_rng(7)
    _pngs(tmp_path / "grey", rng.integers(0, 256, (2, 8, 8), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).convert("P").save(tmp_path / "grey" / "p.png")
    assert load_records(tmp_path / "grey").shape == (1, 8, 8)  # a palette of greys is a grey image, not a mix
    _pngs(tmp_path / "rgba", rng.integers(0, 256, (3, 8, 8, 4), dtype=np.uint8), "RGBA")
    with caplog.at_level(logging.WARNING, logger="ganleaks.data.user_sets"):
        assert load_records(tmp_path / "rgba", value_range=[0, 1]).shape == (3, 8, 8)
    assert "3 of 3 images have transparent pixels" in caplog.text
    assert "queries.value_range ([0, 1]) is not used" in caplog.text


def test_a_data_row_with_a_missing_first_value_is_not_taken_for_a_header(tmp_path):
    (tmp_path / "gap.csv").write_text(",0.5,0.25\n0,1,0\n1,0,1\n")
    with pytest.raises(ValueError, match=r"NaN, inf or empty values in 1 records \(first rows: \[0\]\)"):
        load_records(tmp_path / "gap.csv", value_range=[0, 1])
