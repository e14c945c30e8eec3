"""Tiny generated datasets in the layouts the sources read."""

import gzip
import struct

import numpy as np
import pytest
from PIL import Image


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_root(tmp_path):
    """A Fashion-MNIST-layout folder: 40 train + 10 test random 28x28 images (gzipped IDX)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fashion"
    root.mkdir()
    write_idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28)))
    write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)))
    write_idx(root / "train-labels-idx1-ubyte.gz", np.arange(40) % 10)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    return root


@pytest.fixture
def celeba_root(tmp_path):
    """A CelebA-layout folder: 12 aligned 178x218 JPEGs of 4 identities plus identity_CelebA.txt."""
    rng = np.random.default_rng(0)
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    lines = []
    for i in range(12):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(root / "img_align_celeba" / name)
        lines.append(f"{name} {i % 4 + 1}")
    (root / "identity_CelebA.txt").write_text("\n".join(lines) + "\n")
    return root
