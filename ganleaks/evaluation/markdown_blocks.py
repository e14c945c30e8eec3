"""Generated text kept inside a hand-written Markdown document, between two marker comments.

A results document marks where a generated table belongs::

    <!-- report:cpu_size -->
    | data | model | ... |
    <!-- /report:cpu_size -->

``sync_markdown_block`` replaces what lies between the markers (the markers and everything
around them stay as written); ``check_markdown_block`` raises when the document holds something
else, so a test can regenerate a table from committed results and fail on a stale document.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

BLOCK_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class MarkdownBlockError(ValueError):
    """The document lacks the block's markers, or holds them more than once or in the wrong order."""


class StaleMarkdownBlockError(MarkdownBlockError):
    """The document's block differs from the text it should hold (the message carries the diff)."""


def markers(name: str) -> tuple[str, str]:
    """The opening and closing marker comments of block ``name``."""
    if not BLOCK_NAME.fullmatch(name):
        raise MarkdownBlockError(f"block name {name!r}: use letters, digits, '_', '.' and '-' only")
    return f"<!-- report:{name} -->", f"<!-- /report:{name} -->"


def _block_span(document: str, name: str, where: str) -> tuple[int, int]:
    """``(start, end)`` of the text between block ``name``'s markers in ``document``."""
    opening, closing = markers(name)
    counts = document.count(opening), document.count(closing)
    if counts != (1, 1):
        raise MarkdownBlockError(
            f"{where} holds {counts[0]} '{opening}' and {counts[1]} '{closing}' markers; it needs exactly one "
            f"of each, on their own lines around where the generated text belongs"
        )
    start, end = document.index(opening) + len(opening), document.index(closing)
    if end < start:
        raise MarkdownBlockError(f"{where}: '{closing}' comes before '{opening}'; swap them")
    return start, end


def _body(text: str) -> str:
    """What lies between the markers for ``text``: the text on its own lines."""
    return "\n" + text.strip("\n") + "\n" if text.strip("\n") else "\n"


def read_markdown_block(doc_path: str | os.PathLike, name: str) -> str:
    """The text between block ``name``'s markers in the document (without the line breaks around it)."""
    path = Path(doc_path)
    document = path.read_text(encoding="utf-8")
    start, end = _block_span(document, name, str(path))
    return document[start:end].strip("\n")


def sync_markdown_block(doc_path: str | os.PathLike, name: str, text: str) -> bool:
    """Put ``text`` between block ``name``'s markers in the document; returns whether the file changed.

    Raises:
        FileNotFoundError: no document at ``doc_path``.
        MarkdownBlockError: the markers are missing, repeated or out of order (the file is left as it was).
    """
    path = Path(doc_path)
    document = path.read_text(encoding="utf-8")
    start, end = _block_span(document, name, str(path))
    updated = document[:start] + _body(text) + document[end:]
    if updated == document:
        return False
    from ganleaks.io import atomic_write_text

    atomic_write_text(path, updated)
    return True


def check_markdown_block(doc_path: str | os.PathLike, name: str, text: str) -> None:
    """Raise ``StaleMarkdownBlockError`` (with a diff) unless block ``name`` of the document holds ``text``.

    Line breaks around the text do not count; everything else does.
    """
    current = read_markdown_block(doc_path, name)
    expected = text.strip("\n")
    if current == expected:
        return
    diff = "".join(
        difflib.unified_diff(
            (current + "\n").splitlines(keepends=True),
            (expected + "\n").splitlines(keepends=True),
            f"{doc_path} (report:{name})",
            "regenerated",
        )
    )
    raise StaleMarkdownBlockError(
        f"{doc_path}: block report:{name} differs from the regenerated text; update it with "
        f"sync_markdown_block (python -m ganleaks.report ... --doc {doc_path} --block {name})\n{diff}"
    )
