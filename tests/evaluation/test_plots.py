"""ROC and reconstruction figures are written (PNG, atomically) for images and edge cases."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ganleaks.evaluation.plots import plot_roc, save_reconstruction_grid


def _png_size(path):
    with Image.open(path) as image:
        return image.size


def test_roc_png_has_two_panels(tmp_path):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (200,), generator=g)
    scores = torch.randn(200, generator=g) + labels
    scores[3] = float("nan")
    path = plot_roc(scores, labels, tmp_path / "sub" / "roc.png", title="test")
    width, height = _png_size(path)
    assert width > 1.5 * height  # linear and log-log side by side
    assert [p.name for p in path.parent.iterdir()] == ["roc.png"]


def test_roc_with_one_class_still_draws_chance(tmp_path):
    assert plot_roc(torch.rand(5), torch.ones(5), tmp_path / "roc.png").is_file()


@pytest.mark.parametrize("channels", [1, 3])
def test_reconstruction_grid(tmp_path, channels):
    g = torch.Generator().manual_seed(0)
    queries = torch.rand(12, channels, 16, 16, generator=g) * 2 - 1
    recon = torch.rand(12, channels, 16, 16, generator=g) * 2 - 1
    labels = torch.tensor([1, 0] * 6)
    two_rows = save_reconstruction_grid(queries, recon, labels, tmp_path / "a.png", n=4)
    three_rows = save_reconstruction_grid(queries, recon, labels, tmp_path / "b.png", n=4,
                                          reference_reconstructions=recon.flip(0))  # fmt: skip
    assert _png_size(three_rows)[1] > _png_size(two_rows)[1]
    with pytest.raises(ValueError):
        save_reconstruction_grid(queries, recon[:5], labels, tmp_path / "c.png")
