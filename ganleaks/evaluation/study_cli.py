"""The command line the studies share (``reference_study``, ``audit_study``): build a study from attack runs,
write its markdown and figure to ``--out``, and rewrite (or, with ``--check``, verify) its block of a document."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def run_study_command(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str | None,
    block: str,
    build: Callable[[Sequence[str | os.PathLike]], tuple[Any, str]],
    figure: Callable[[Any, Path], Path],
    markdown_name: str,
    figure_name: str,
    paths_help: str,
) -> int:
    """Parse ``argv``, build the study and write it; a study that cannot be built (no runs, none that belong
    to it, two runs of one cell) is one line on stderr and exit status 2, nothing written."""
    from ganleaks.evaluation.markdown_blocks import check_markdown_block, sync_markdown_block

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("paths", nargs="+", help=paths_help)
    parser.add_argument("--out", required=True, help=f"where {markdown_name} and {figure_name} go")
    parser.add_argument("--doc", help=f"a markdown document whose {block!r} block is rewritten")
    parser.add_argument("--check", action="store_true", help="with --doc: fail if the block is stale")
    args = parser.parse_args(argv)
    try:
        study, text = build(args.paths)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / markdown_name).write_text(text)
    figure(study, out / figure_name)
    if args.doc:
        if args.check:
            check_markdown_block(args.doc, block, text)
        else:
            sync_markdown_block(args.doc, block, text)
    print(text)
    return 0
