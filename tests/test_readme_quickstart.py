"""README.md's quickstart table is generated from the published quickstart runs (results/quickstart).

A change to those runs (or to how the table is made) that is not carried into the README fails here;
``python -m ganleaks.evaluation.seed_spread results/quickstart --doc README.md`` fixes it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ganleaks.evaluation.markdown_blocks import check_markdown_block
from ganleaks.evaluation.seed_spread import BLOCK, quickstart_table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quickstart_table_is_the_published_runs(monkeypatch):
    monkeypatch.chdir(ROOT)  # the runs record their victims relative to where they were launched
    table = quickstart_table(ROOT / "results" / "quickstart")
    check_markdown_block(ROOT / "README.md", BLOCK, table)
    # every README attack command at three seeds, each with its interval, and the spread across them
    rows = [line for line in table.splitlines() if "attack.py" in line or "null control" in line]
    assert len(rows) == 7
    for row in rows:
        assert len(re.findall(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", row)) == 3, row
        assert re.search(r"\| \d\.\d{3}-\d\.\d{3} \|", row), row
