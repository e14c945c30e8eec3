"""ganleaks.io: atomic writes keep the old file on failure; the weights-only load never runs code."""

from __future__ import annotations

import os
import stat

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from ganleaks.io import UnsafeFileError, atomic_path, atomic_write_bytes, atomic_write_text, load_weights_only


class _WritesMarker:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_atomic_write_replaces_the_file_and_leaves_it_shared_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.json"
    atomic_write_text(path, "old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "out.csv"
    atomic_write_text(path, "old")
    with pytest.raises(OSError, match="No space"), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_figure_is_saved_in_the_format_its_name_asks_for(tmp_path):
    figure = plt.figure()
    with atomic_path(tmp_path / "roc.png") as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("mmap", [False, True])
def test_weights_only_load_reads_tensors(tmp_path, mmap):
    path = tmp_path / "state.pth"
    torch.save({"w": torch.arange(3.0)}, path)
    assert torch.equal(load_weights_only(path, mmap=mmap)["w"], torch.arange(3.0))


def test_a_legacy_file_that_cannot_be_mapped_is_read_normally(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(load_weights_only(path, mmap=True)["w"], torch.ones(2))


@pytest.mark.parametrize("mmap", [False, True])
def test_pickled_code_is_refused_naming_the_global_and_never_runs(tmp_path, mmap):
    marker = tmp_path / "pwned"
    path = tmp_path / "bad.pth"
    torch.save({"w": _WritesMarker(marker)}, path)
    with pytest.raises(UnsafeFileError, match=r"bad\.pth is not a plain tensor checkpoint .*GLOBAL posix\.system"):
        load_weights_only(path, mmap=mmap)
    assert not marker.exists()


def test_a_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UnsafeFileError, match="corrupt"):
        load_weights_only(path)
