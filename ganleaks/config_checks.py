"""Numeric and choice settings, checked where the config is read, by key name and valid range.

A value that reaches torch, numpy or a DataLoader unchecked fails there with a message that does
not name the key (``kthvalue(): selected number k out of range``, ``-1 is not in bounds``,
``batch_size should be a positive integer value``); these checks name it and say what is valid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

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


# Keys of a ``conf/setting/*.yaml`` node: (kind, low, high) for numbers, a tuple of names for choices.
SETTING_RULES: dict[str, Any] = {
    "k": ("int", 1, None),
    "chunk_size": ("int", 1, None),
    "rerank_top": ("int", 1, None),
    "bank_cache_mb": ("int", 0, None),
    "max_iter": ("int", 0, None),
    "restarts": ("int", 1, None),
    "nn_k": ("int", 1, None),
    "quantile": ("float", 0.0, 1.0),
    "init": ("zero", "random", "nn"),
    "epsilon_rule": ("nearest", "pairwise"),
}
DISTANCE_RULES = {
    "l2_weight": ("float", 0.0, None),
    "lpips_weight": ("float", 0.0, None),
    "latent_weight": ("float", 0.0, None),
    "lpips_min_size": ("int", 1, None),
}


def _check_node(prefix: str, node, rules: dict) -> None:
    for key, rule in rules.items():
        if node is None or key not in node:
            continue
        value = node[key]
        if rule[0] == "int":
            check_int(f"{prefix}.{key}", value, rule[1], rule[2])
        elif rule[0] == "float":
            check_float(f"{prefix}.{key}", value, rule[1], rule[2])
        else:
            check_choice(f"{prefix}.{key}", value, rule)


def check_attack_config(cfg) -> None:
    """Every number and choice an attack reads, before any file is read or model loaded."""
    check_seed(cfg.seed)
    _check_node("setting", cfg.setting, SETTING_RULES)
    _check_node("distance", cfg.get("distance"), DISTANCE_RULES)
    attack = cfg.attack
    check_int("attack.batch_size", attack.batch_size, 1)
    check_int("attack.num_queries", attack.get("num_queries"), allow_none=True)  # its range: select_queries
    check_int("attack.save_reconstructions", attack.get("save_reconstructions", 0), 0)
    check_int("attack.most_exposed", attack.get("most_exposed", 20), 0)


def check_train_config(cfg) -> None:
    """Numbers that training reads besides the split sizes (``data.batch_size``, ``seed``, ...)."""
    check_seed(cfg.seed)
    check_int("data.batch_size", cfg.data.batch_size, 1)
    check_int("data.num_workers", cfg.data.get("num_workers", 0), 0)
    check_int("checkpoint_every_n_steps", cfg.get("checkpoint_every_n_steps", 0), 0)
