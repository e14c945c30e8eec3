"""A generated block between marker comments in a hand-written Markdown document."""

import pytest

from ganleaks.evaluation.markdown_blocks import (
    MarkdownBlockError,
    StaleMarkdownBlockError,
    check_markdown_block,
    read_markdown_block,
    sync_markdown_block,
)

DOC = """# Results

Some prose the generator must not touch.

<!-- report:size -->
| old | table |
<!-- /report:size -->

<!-- report:other -->
| other | block |
<!-- /report:other -->

Closing prose.
"""
TABLE = "| a | b |\n|---|---:|\n| x | 0.91 [0.87, 0.95] |\n"


def test_sync_replaces_only_the_named_block(tmp_path):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(DOC)
    assert sync_markdown_block(doc, "size", TABLE) is True
    text = doc.read_text()
    assert text == DOC.replace("| old | table |\n", TABLE)  # markers, prose and the other block as written
    assert read_markdown_block(doc, "size") == TABLE.strip("\n")
    check_markdown_block(doc, "size", TABLE)  # up to date: no error
    assert sync_markdown_block(doc, "size", TABLE) is False and doc.read_text() == text  # idempotent


def test_check_fails_with_a_diff_when_the_document_is_stale(tmp_path):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(DOC)
    with pytest.raises(StaleMarkdownBlockError, match=r"report:size differs") as error:
        check_markdown_block(doc, "size", TABLE)
    assert "-| old | table |" in str(error.value) and "+| x | 0.91 [0.87, 0.95] |" in str(error.value)
    assert doc.read_text() == DOC  # a check never writes
    check_markdown_block(doc, "other", "\n| other | block |\n\n")  # line breaks around the text do not count


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("no markers here\n", r"holds 0 '<!-- report:size -->' and 0"),
        ("<!-- report:size -->\n<!-- /report:size -->\n<!-- report:size -->\n", "holds 2"),
        ("<!-- /report:size -->\n<!-- report:size -->\n", "comes before"),
    ],
)
def test_missing_repeated_or_swapped_markers_are_refused(tmp_path, text, match):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(text)
    with pytest.raises(MarkdownBlockError, match=match):
        sync_markdown_block(doc, "size", TABLE)
    with pytest.raises(MarkdownBlockError, match=match):
        check_markdown_block(doc, "size", TABLE)
    assert doc.read_text() == text


def test_a_block_name_that_would_break_the_marker_is_refused(tmp_path):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(DOC)
    with pytest.raises(MarkdownBlockError, match="letters, digits"):
        sync_markdown_block(doc, "size -->", TABLE)
