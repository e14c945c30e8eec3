"""docs/RESULTS.md's tables are the report's, regenerated from the committed results/.

A change to a committed result (or to how the report formats it) that is not carried into the
document fails here; `python -m ganleaks.report results/<study> --doc docs/RESULTS.md` fixes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ganleaks.evaluation.markdown_blocks import check_markdown_block, markers
from ganleaks.report import DOC_BLOCKS, build_report

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RESULTS.md"
# The studies whose attacks are committed, with the number of attack runs each must hold: a study
# cut short (or a results folder emptied by mistake) fails here instead of shrinking the tables.
STUDIES = {"cpu_size": 120, "cpu_k": 96, "cpu_dp": 60}


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_results_doc_tables_match_the_committed_runs(study, tmp_path, monkeypatch):
    results = ROOT / "results" / study
    assert (results / "attack").is_dir(), f"results/{study}/attack is missing: the study's attacks are not committed"
    monkeypatch.chdir(ROOT)  # the runs record their victims relative to where they were launched
    report = build_report([results], tmp_path / "report", wandb="off")
    assert len(report.rows) == STUDIES[study]
    assert all(row.get("auc") is not None for row in report.rows)
    document = DOC.read_text(encoding="utf-8")
    check_markdown_block(DOC, study, report.markdown)
    for suffix in DOC_BLOCKS:
        assert markers(f"{study}-{suffix}")[0] in document, f"docs/RESULTS.md lacks the {study}-{suffix} table"
        check_markdown_block(DOC, f"{study}-{suffix}", report.blocks[suffix])
