"""What ``train.py`` and ``attack.py`` share around Hydra: overrides checked before Hydra parses them,
and the errors a user causes printed as one message instead of a traceback.

A mistake a user can fix (a missing folder, a value out of range, a victim that does not fit the
data) is printed as one line, ``ErrorType: message``, with exit status 1; the full traceback stays
available with ``HYDRA_FULL_ERROR=1``. Anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import inspect
import linecache
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hydra.errors import CompactHydraException

PACKAGE_DIR = Path(__file__).resolve().parent
QUOTING_RULE = (
    "Hydra's override grammar allows only ASCII letters, digits, spaces and _ - + . / : \\ * @ % ? | $ in unquoted "
    "values. Quote any other value (~, #, =, non-ASCII letters, a comma meant literally, ...) for Hydra and for the "
    "shell at once: "
    "single quotes around the whole override, double quotes around the value, e.g. 'data.root=\"~/data/celeba\"' "
    "(or write the path without ~: data.root=$HOME/data/celeba, expanded by the shell). "
    "See https://hydra.cc/docs/advanced/override_grammar/basic/#quoted-values"
)


class UserError(CompactHydraException):
    """A mistake the user can fix; Hydra prints it as its message alone (no traceback)."""


def _raised_by_ganleaks(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is a ``raise`` statement in the ganleaks package."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = Path(tb.tb_frame.f_code.co_filename).resolve()
    if PACKAGE_DIR not in filename.parents:
        return False
    try:
        source, start = inspect.getsourcelines(tb.tb_frame.f_code)
        statement = source[tb.tb_lineno - start]
    except (OSError, IndexError):
        statement = linecache.getline(str(filename), tb.tb_lineno)
    return statement.lstrip().startswith("raise ")


def is_user_error(error: BaseException) -> bool:
    """A ValueError / FileNotFoundError / NotADirectoryError ganleaks raised on purpose, to say what to do.

    The same types raised elsewhere (by torch, numpy, a failing ``int(...)`` in our code) are bugs or
    unchecked values: they keep their traceback.
    """
    return isinstance(error, (ValueError, FileNotFoundError, NotADirectoryError)) and _raised_by_ganleaks(error)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the user errors raised inside into :class:`UserError` (one printed line), unless ``HYDRA_FULL_ERROR``."""
    try:
        yield
    except Exception as error:
        if is_user_error(error) and os.environ.get("HYDRA_FULL_ERROR", "") in ("", "0"):
            raise UserError(f"{type(error).__name__}: {error}") from None
        raise


def check_overrides(argv: Sequence[str]) -> None:
    """Exit with the quoting rule when Hydra's grammar rejects an override (before Hydra prints only a lexer error)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # argparse already said what is wrong
        raise
    parser = OverridesParser.create()
    for override in args.overrides or []:
        try:
            parser.parse_overrides([override])
        except OverrideParseException as error:
            reason = str(error).splitlines()[0]
            sys.stderr.write(f"cannot parse the override {override!r} ({reason}).\n{QUOTING_RULE}\n")
            sys.exit(2)
