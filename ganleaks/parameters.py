"""Declared parameters and the checks of their values, where a config node is read.

A value that reaches torch, numpy or a DataLoader unchecked fails there with a message that does
not name the key (``kthvalue(): selected number k out of range``, ``-1 is not in bounds``,
``batch_size should be a positive integer value``); these checks name it and say what is valid.

A class whose keys come from a config node (a setting's engine, the distance) declares them once
as :class:`Parameter` specs; :func:`check_node` checks a node against them. This module imports
nothing of ganleaks: every layer may use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: numpy's and Lightning's seed range (``seed_everything``, ``np.random.seed``).
SEED_RANGE = (0, 2**32 - 1)


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _valid(kind: str, low: Any, high: Any, between: str, at_least: str, unbounded: str) -> str:
    """What a valid value is, for a message: ``between`` names [low, high], ``at_least`` low alone."""
    if low is not None and high is not None:
        return f"{kind} {between}"
    return f"{kind} >= {at_least}" if low is not None else unbounded


def _check_range(key: str, value: Any, shown: str, low: Any, high: Any, valid: str) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{key}={shown} is out of range: set {key} to {valid}")


def check_int(key: str, value: Any, low: int | None = None, high: int | None = None, allow_none: bool = False) -> None:
    """``value`` (read from config key ``key``) is an integer in ``[low, high]`` (or None if allowed)."""
    if value is None and allow_none:
        return
    valid = _valid("an integer", low, high, f"in {low} .. {high}", str(low), "an integer")
    if allow_none:
        valid += " (or null)"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}={_text(value)} is not valid: set {key} to {valid}")
    _check_range(key, value, str(value), low, high, valid)


def check_float(key: str, value: Any, low: float | None = None, high: float | None = None) -> None:
    """``value`` is a finite number in ``[low, high]``."""
    between = f"in [{low:g}, {high:g}]" if low is not None and high is not None else ""
    valid = _valid("a number", low, high, between, "" if low is None else f"{low:g}", "a finite number")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key}={_text(value)} is not valid: set {key} to {valid}")
    _check_range(key, value, f"{value:g}", low, high, valid)


def check_choice(key: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{key}={_text(value)} is not valid: choose one of {', '.join(choices)}")


def check_seed(value: Any) -> None:
    check_int("seed", value, *SEED_RANGE)


@dataclass(frozen=True)
class Parameter:
    """One key a class takes from its config node, and what values are valid.

    Attributes:
        name: the key (``k``; checked and reported as ``<node>.k``).
        kind: ``int``, ``float`` (a finite number), ``choice`` (one of ``choices``) or ``any``
            (not checked here: a callable node, a path; the class checks it where it uses it).
        low, high: the inclusive range of an ``int`` or ``float`` (None: unbounded).
        choices: the valid values of a ``choice``.
        required: the node must give it (the class has no default for it).
        help: one line for the reader (what it does, its unit).
    """

    name: str
    kind: Literal["int", "float", "choice", "any"] = "any"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = True
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("int", "float", "choice", "any"):
            raise ValueError(f"Parameter {self.name!r}: kind must be int, float, choice or any, not {self.kind!r}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"Parameter {self.name!r}: give choices for kind='choice', and only for it")

    def check(self, key: str, value: Any) -> None:
        """Raise ``ValueError`` naming ``key`` and what is valid unless ``value`` is."""
        if self.kind == "int":
            low = None if self.low is None else int(self.low)
            high = None if self.high is None else int(self.high)
            check_int(key, value, low, high)
        elif self.kind == "float":
            check_float(key, value, self.low, self.high)
        elif self.kind == "choice":
            check_choice(key, value, self.choices)

    def describe(self) -> str:
        """``k: int >= 1`` and the like, for a reader (help texts, error messages)."""
        if self.kind == "choice":
            valid = " | ".join(self.choices)
        elif self.kind in ("int", "float"):
            bounds = [
                f">= {self.low:g}" if self.low is not None else "",
                f"<= {self.high:g}" if self.high is not None else "",
            ]
            valid = " ".join([self.kind, *(b for b in bounds if b)])
        else:
            valid = "any"
        return f"{self.name}: {valid}" + (f" ({self.help})" if self.help else "")


def check_node(prefix: str, node: Mapping[str, Any] | None, parameters: Iterable[Parameter]) -> None:
    """Each declared parameter that ``node`` gives is valid (``prefix.name`` in messages).

    A parameter the node does not give is not checked here: whether it is required is the
    owner's question (:func:`ganleaks.settings.base.check_setting` refuses a missing one).
    """
    for parameter in parameters:
        if node is None or parameter.name not in node:
            continue
        parameter.check(f"{prefix}.{parameter.name}", node[parameter.name])
