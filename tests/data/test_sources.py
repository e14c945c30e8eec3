import logging

import numpy as np
import pytest
import scipy.sparse
import torch
from PIL import Image

from ganleaks.data.sources import (
    load_celeba,
    load_checkins,
    load_digits,
    load_idx_images,
    load_image_folder,
    load_mimic,
)


def test_digits_are_real_mnist_padded_to_32():
    digits = load_digits(resolution=32)
    assert digits.data.shape == (5000, 1, 32, 32)
    assert digits.kind == "image"
    assert set(digits.labels.tolist()) == set(range(10))
    assert torch.equal(digits.ids, torch.arange(5000))
    assert digits.data.min() == -1 and digits.data.max() == 1
    # Padding is background (-1); the digit strokes are in the centre 28x28.
    assert (digits.data[:, :, :2, :] == -1).all()
    assert (digits.data[:, :, 2:30, 2:30] > 0).float().mean() > 0.05


def test_idx_source_reads_train_then_test(idx_root):
    images = load_idx_images(str(idx_root), dataset="fashion_mnist", resolution=16, download=False)
    assert images.data.shape == (50, 1, 16, 16)
    assert images.ids.tolist() == list(range(50))
    assert images.labels.tolist() == [i % 10 for i in range(40)] + list(range(10))
    assert -1 <= images.data.min() and images.data.max() <= 1


def test_idx_source_missing_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.setattr("ganleaks.data.sources.DEBIAN_FASHION_MNIST", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as error:
        load_idx_images(str(tmp_path / "empty"), dataset="fashion_mnist", download=False)
    assert "download=true" in str(error.value)


def test_idx_source_corrupt_file_is_named(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load_idx_images(str(tmp_path), dataset="mnist", download=False)


def test_celeba_crop_resize_and_identities(celeba_root):
    celeba = load_celeba(str(celeba_root), resolution=16)
    assert celeba.data.shape == (12, 3, 16, 16)
    assert celeba.groups.tolist() == [i % 4 + 1 for i in range(12)]
    # The crop is the paper's 128x128 box centred at (89, 121): check against PIL directly.
    raw = Image.open(celeba_root / "img_align_celeba" / "000001.jpg").convert("RGB")
    expected = np.asarray(raw.crop((25, 57, 153, 185)).resize((16, 16), Image.BICUBIC), dtype=np.float32)
    got = (celeba.data[0].permute(1, 2, 0).numpy() + 1) * 127.5
    assert np.abs(got - expected).max() < 1e-3


@pytest.mark.parametrize("identity_file", ["identity_CelebA.txt", None])
def test_celeba_without_identities_refuses_before_decoding_and_names_the_file_and_flag(celeba_root, identity_file):
    (celeba_root / "identity_CelebA.txt").unlink()
    (celeba_root / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg")  # never reached
    with pytest.raises(FileNotFoundError) as refusal:
        load_celeba(str(celeba_root), resolution=16, identity_file=identity_file)
    message = str(refusal.value)
    if identity_file:
        assert str(celeba_root / "identity_CelebA.txt") in message
    else:
        assert "data.source.identity_file is null" in message
    assert "Anno/identity_CelebA.txt" in message and "data.source.allow_image_level_split=true" in message


def test_celeba_image_level_split_only_when_allowed_and_with_a_warning(celeba_root, caplog):
    (celeba_root / "identity_CelebA.txt").unlink()
    with caplog.at_level(logging.WARNING, logger="ganleaks.data.sources"):
        celeba = load_celeba(str(celeba_root), resolution=16, allow_image_level_split=True)
    assert celeba.groups is None and celeba.data.shape == (12, 3, 16, 16)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "allow_image_level_split" in warnings[0] and "share identities" in warnings[0]


def test_celeba_flag_does_not_override_an_identity_file(celeba_root, caplog):
    with caplog.at_level(logging.WARNING, logger="ganleaks.data.sources"):
        celeba = load_celeba(str(celeba_root), resolution=16, allow_image_level_split=True)
    assert celeba.groups.tolist() == [i % 4 + 1 for i in range(12)]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_celeba_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="img_align_celeba"):
        load_celeba(str(tmp_path))


def test_corrupt_image_names_the_file(celeba_root):
    bad = celeba_root / "img_align_celeba" / "000003.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="000003.jpg"):
        load_celeba(str(celeba_root), resolution=16)


def test_image_folder_recursive_grayscale(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "a").mkdir()
    for i, sub in enumerate(["a", "a", "."]):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / sub / f"{i}.png")
    images = load_image_folder(str(tmp_path), resolution=8, channels=1)
    assert images.data.shape == (3, 1, 8, 8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(str(tmp_path / "missing"))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", "sparse.npz"])
def test_mimic_formats_give_the_same_rows(tmp_path, suffix):
    rng = np.random.default_rng(0)
    codes = (rng.random((30, 12)) < 0.2).astype(np.int64)
    path = tmp_path / f"codes{suffix}"
    if suffix == ".npy":
        np.save(path, codes)
    elif suffix == ".npz":
        np.savez(path, codes=codes)
    elif suffix == ".csv":
        path.write_text(",".join(f"c{j}" for j in range(12)) + "\n" + "\n".join(",".join(map(str, r)) for r in codes))
    else:
        scipy.sparse.save_npz(path, scipy.sparse.csr_matrix(codes))
    rows = load_mimic(str(path))
    assert rows.kind == "tabular" and rows.data.shape == (30, 12)
    assert torch.equal(rows.data, torch.from_numpy(codes * 2.0 - 1).float())


def test_mimic_refuses_nan_and_non_binary(tmp_path):
    values = np.zeros((5, 3))
    values[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", values)
    with pytest.raises(ValueError, match="NaN"):
        load_mimic(str(tmp_path / "nan.npy"))
    np.save(tmp_path / "two.npy", np.full((5, 3), 2.0))
    with pytest.raises(ValueError, match="0/1"):
        load_mimic(str(tmp_path / "two.npy"))


def test_checkins_normalised_and_grouped_by_user(tmp_path):
    path = tmp_path / "checkins.csv"
    path.write_text(
        "lat,lon,timestamp,user\n"
        + "\n".join(f"{40 + i * 0.01},{-74 - i * 0.02},{1000 + i},{'u' + str(i % 3)}" for i in range(9))
    )
    rows = load_checkins(str(path), use_timestamp=True)
    assert rows.data.shape == (9, 3)
    assert rows.data.min() == -1 and rows.data.max() == 1
    assert rows.groups.tolist() == [i % 3 for i in range(9)]


def test_checkins_missing_value_names_the_row(tmp_path):
    path = tmp_path / "checkins.csv"
    path.write_text("lat,lon\n1,2\n,3\n")
    with pytest.raises(ValueError, match=r"rows \[3\]"):
        load_checkins(str(path))
