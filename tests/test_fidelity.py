"""The committed fidelity comparisons (docs/RESULTS.md Part 7) regenerated from results/, and every number the
prose of Part 7 and of docs/ATTACKS.md's summary of it states checked against the generated block."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ganleaks.evaluation.fidelity import BLOCK, build
from ganleaks.evaluation.markdown_blocks import check_markdown_block, read_markdown_block
from tests.conftest import prose_numbers_outside_block

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results" / "cpu_fidelity"
DOC = ROOT / "docs" / "RESULTS.md"
# The design: sizes, budgets, the nearest-neighbour pool, the LPIPS weight and image sizes, the interval level,
# the part's number.
STRUCTURAL = {"0", "0.2", "1", "2", "3", "7", "30", "32", "64", "95", "100", "256", "1000", "2048"}


def _committed():
    cwd = os.getcwd()
    os.chdir(ROOT)  # the runs record their victims relative to where they were launched
    try:
        return build([Path("results") / "cpu_fidelity", Path("results") / "cpu_size"])
    finally:
        os.chdir(cwd)


@pytest.mark.skipif(not (STUDY / "attack").is_dir(), reason="the fidelity comparisons are not committed")
def test_results_doc_block_matches_the_committed_fidelity_runs():
    study, text = _committed()
    assert {victim[:2] for victim in study.victims} >= {("dcgan", 64), ("wgangp", 64)}
    check_markdown_block(DOC, BLOCK, text)


@pytest.mark.skipif(not (STUDY / "attack").is_dir(), reason="the fidelity comparisons are not committed")
def test_every_number_in_part_7s_prose_and_in_attacks_md_is_the_blocks():
    document = DOC.read_text(encoding="utf-8")
    missing = prose_numbers_outside_block(document, "# Part 7: the fidelity choices measured", BLOCK, STRUCTURAL)
    assert not missing, f"numbers in Part 7's prose that its generated block does not give: {missing}"
    attacks = (ROOT / "docs" / "ATTACKS.md").read_text(encoding="utf-8")
    summary = attacks[attacks.index("## The fidelity choices, measured") :]
    summary = summary[: summary.find("\n## ", 5)]
    number = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")
    generated = {t.lstrip("+-").replace(",", "") for t in number.findall(read_markdown_block(DOC, BLOCK))}
    stated = {t.lstrip("+-").replace(",", "") for t in number.findall(re.sub(r"`[^`]*`", "", summary))}
    assert not stated - generated - STRUCTURAL, sorted(stated - generated - STRUCTURAL)
