"""The references study's tables and figure (ganleaks.evaluation.reference_study), and the committed study's
block in docs/RESULTS.md regenerated from results/."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ganleaks.evaluation.markdown_blocks import check_markdown_block
from ganleaks.evaluation.reference_study import BLOCK, build, column, columns_of, figure, markdown, study_cells
from tests.conftest import prose_numbers_outside_block

ROOT = Path(__file__).resolve().parents[1]


def _row(setting: str, calibration: str, auc: float, tpr: float | None, size: int = 1024, **extra) -> dict:
    return {
        "data": "fashion_mnist",
        "model": "dcgan",
        "privacy": "none",
        "train_size": size,
        "seed": 0,
        "setting": setting,
        "calibration": calibration,
        "auc": auc,
        "auc_ci": [auc - 0.05, auc + 0.05],
        "tpr_at_fpr_0.01": tpr,
        "tpr_at_fpr_0.01_ci": None if tpr is None else [max(tpr - 0.02, 0), tpr + 0.02],
        "n": 512,
        "run_dir": f"runs/{setting}/{calibration}/{size}",
        "wall_seconds": 10.0,
        **extra,
    }


def test_columns_name_each_calibration():
    assert column(_row("whitebox", "none", 0.5, 0.01)) == "none"
    assert column(_row("whitebox", "reference", 0.5, 0.01)) == "paper"
    assert column(_row("whitebox", "references R=8", 0.5, 0.01)) == "R=8"
    assert column(_row("domias", "none", 0.5, 0.01)) == "domias"
    assert column(_row("whitebox", "references R=8 log", 0.5, 0.01)) is None  # another transform: not a column
    assert column(_row("fullbb", "samples", 0.5, 0.01)) is None


def test_cells_keep_only_settings_with_several_references_and_domias_as_its_own_line():
    rows = [
        _row("whitebox", "none", 0.52, 0.01),
        _row("whitebox", "reference", 0.54, 0.0),
        _row("whitebox", "references R=1", 0.55, 0.01),
        _row("whitebox", "references R=8", 0.60, 0.05),
        _row("discriminator", "references R=2", 0.58, 0.02),
        _row("fullbb", "reference", 0.53, 0.01),  # no references run for this setting: left out
        _row("domias", "none", 0.51, 0.01),
        _row("whitebox", "none", 0.50, 0.01, size=4096),  # a victim without references: left out
    ]
    cells = study_cells(rows)
    assert list(cells) == [("fashion_mnist", "dcgan", "none", 1024, 0)]
    settings = cells[("fashion_mnist", "dcgan", "none", 1024, 0)]
    assert set(settings) == {"whitebox", "discriminator", "domias"}
    assert columns_of(cells) == ["none", "paper", "R=1", "R=2", "R=8", "domias"]
    text = markdown(cells, {"training the dcgan reference models": "8 models"})
    assert "| dcgan n=1024 seed=0 | whitebox | 512 | 0.52 [0.47, 0.57] | 0.54 [0.49, 0.59] |" in text
    assert "| dcgan n=1024 seed=0 | domias | 512 |  |  |  |  |  | 0.51 [0.46, 0.56] |" in text
    assert text.index("| discriminator |") < text.index("| whitebox |") < text.index("| domias |")
    assert "0.60 [0.55, 0.65]" in text and "TPR at 1% FPR" in text and "Attack wall time" in text
    assert "* training the dcgan reference models: 8 models" in text
    with pytest.raises(ValueError, match="two runs"):
        study_cells([*rows, _row("whitebox", "references R=8", 0.61, 0.05)])


def test_figure_is_written_with_and_without_an_estimable_tpr(tmp_path):
    rows = [_row("whitebox", f"references R={r}", 0.55, 0.01 * r) for r in (1, 2, 4, 8)]
    rows.append(_row("whitebox", "reference", 0.54, 0.02))
    assert figure(study_cells(rows), tmp_path / "a.png").stat().st_size > 1000
    blank = [_row("whitebox", f"references R={r}", 0.55, None) for r in (1, 2)]
    assert figure(study_cells(blank), tmp_path / "b.png").stat().st_size > 1000


def test_paired_tpr_difference_at_one_percent_fpr():
    from ganleaks.evaluation.reference_study import paired_tpr_difference

    rng = np.random.default_rng(0)
    ids = [str(i) for i in range(400)]
    labels = [1] * 200 + [0] * 200
    noise = {i: (label, float(rng.normal())) for i, label in zip(ids, labels, strict=True)}
    perfect = {i: (label, float(label * 10 + rng.normal())) for i, label in zip(ids, labels, strict=True)}
    point, (low, high) = paired_tpr_difference(perfect, noise)
    assert point > 0.9 and low > 0.8  # every member above the non-members' 99th percentile
    assert paired_tpr_difference(noise, noise) == (0.0, (0.0, 0.0))
    few = {i: v for i, v in noise.items() if int(i) < 250}  # 50 non-members: no false positive allowed at 1%
    assert paired_tpr_difference(few, few) is None


STUDY = [ROOT / "results" / name for name in ("cpu_refs", "cpu_size", "cpu_dp")]


@pytest.mark.skipif(
    not (ROOT / "results" / "cpu_refs" / "attack").is_dir(), reason="the references study is not committed"
)
def test_results_doc_block_matches_the_committed_references_study():
    cwd = os.getcwd()
    os.chdir(ROOT)  # the runs record their reference models relative to where they were launched
    try:
        cells, text = build([path.relative_to(ROOT) for path in STUDY])
    finally:
        os.chdir(cwd)
    assert len(cells) >= 1
    check_markdown_block(ROOT / "docs" / "RESULTS.md", BLOCK, text)


# Numbers Part 4's prose may state without the block: the grid (R, training-set sizes, queries), the
# reference fraction, the FPR targets and the false positives they allow, the equation.
STRUCTURAL = {"1", "2", "4", "8", "0.5", "1024", "4096", "256", "0.1", "11", "0.46"}


def test_every_number_in_part_4s_prose_is_the_blocks():
    document = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    missing = prose_numbers_outside_block(document, "# Part 4: the newer attacks", BLOCK, STRUCTURAL)
    assert not missing, f"numbers in Part 4's prose that its generated block does not give: {missing}"
