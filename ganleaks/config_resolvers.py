"""OmegaConf resolvers the configs use, registered once by the entry points (``attack.py``, ``train.py``,
``ganleaks.audit``; importing :mod:`ganleaks.workflows` registers them for configs composed in code)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from omegaconf import OmegaConf

DIGEST_RESOLVER = "ganleaks_digest"
FINGERPRINT_RESOLVER = "ganleaks_fingerprint"
SWEPT_RESOLVER = "ganleaks_swept"
EXPAND_RESOLVER = "ganleaks_expand"
DRAW_RESOLVER = "ganleaks_draw_tag"
# Keys of a node that name or describe it without changing a score: left out of its fingerprint (and
# ``name`` / ``digest`` / ``variant`` are the names this fingerprint makes: hashing them would recurse).
NOT_SCORED = frozenset({"name", "digest", "variant", "privacy", "null_control"})


def short_digest(*values) -> str:
    """8 hex digits of sha256 over ``values`` (JSON): a short, stable name for what defines a run."""
    text = json.dumps([None if v is None else str(v) for v in values])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _plain(node: Any) -> Any:
    """A config node's resolved value as plain JSON types, its :data:`NOT_SCORED` keys left out (and a
    mandatory value not set yet as ``???``: the victim says what to set, not the folder's name)."""
    if OmegaConf.is_dict(node):
        return {
            str(key): "???" if OmegaConf.is_missing(node, key) else _plain(node[key])
            for key in node.keys()
            if key not in NOT_SCORED
        }
    if OmegaConf.is_list(node):
        return [_plain(item) for item in node]
    if isinstance(node, float) and node.is_integer():
        return int(node)  # [-1.0, 1.0] and [-1, 1] declare the same range: one folder
    return node


def config_fingerprint(*keys: str, _root_: Any) -> str:
    """8 hex digits of sha256 over the resolved config nodes named by ``keys`` (their :data:`NOT_SCORED`
    keys left out).

    ``${ganleaks_fingerprint:victim}`` names a user's victim by everything its node declares (files as
    given, ranges, latent, the generator's keyword arguments, the query files and their options), so
    that two victims differing in any of them never share an attack folder. The files' *contents*
    are not read here: the resume key holds them (``orchestration/plan.py``).
    """
    values = {key: _plain(OmegaConf.select(_root_, key, default=None)) for key in keys}
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# What a built-in victim's attack folder names when it is set on the command line (or swept): the keys
# that change its scores but no part of the folder's name (victim name, setting, calibration, distance).
SWEPT_PREFIXES = ("setting.", "distance.", "calibration.", "victim.", "attack.num_queries")
# Keys under those prefixes that change no score (memory, where shared losses are kept).
SWEPT_IGNORED = frozenset({"setting.bank_cache_mb", "calibration.cache_dir"})
_READABLE = re.compile(r"^[\w.+-]{1,24}$")
_MAX_SUFFIX = 120


def swept_suffix(*, _root_: Any) -> str:
    """``-setting.k=100`` for ``python attack.py ... setting.k=100``: the attack folder of a built-in victim
    names every score-changing key given on the command line or swept by a multirun (Hydra's
    ``hydra.overrides.task``), so that ``setting.k=100,1000`` writes one folder per value without the
    user naming them; ``""`` without such keys, so that a default run keeps its documented folder
    ``<victim>/<setting>/<calibration>-<distance>``.

    Keys are sorted and joined by ``,`` (Hydra's ``override_dirname`` convention); a value that is not a
    short plain word (a path, a list) is given as 8 hex digits of its sha256, and a suffix longer than
    120 characters as one digest. A key set in a YAML file instead is not named: a second run into the
    same folder is then refused by the resume key, naming the change (``orchestration/plan.py``).
    """
    overrides = OmegaConf.select(_root_, "hydra.overrides.task", default=None) or []
    named = {}
    for override in overrides:
        key, equals, value = str(override).partition("=")
        key = key.lstrip("+~")
        if not equals or key in SWEPT_IGNORED or not key.startswith(SWEPT_PREFIXES):
            continue
        value = value.strip("'\"")
        named[key] = value if _READABLE.match(value) else short_digest(value)
    if not named:
        return ""
    suffix = ",".join(f"{key}={named[key]}" for key in sorted(named))
    return f"-{suffix}" if len(suffix) <= _MAX_SUFFIX else f"-{short_digest(suffix)}"


def expand_path(path: Any) -> Any:
    """``~/audits`` -> ``/home/me/audits`` (and ``$VARS``), for the folder keys of conf/paths/default.yaml,
    so that a config composed in code (``ganleaks.audit``, ``compose``) expands them as the command line does."""
    return os.path.expanduser(os.path.expandvars(path)) if isinstance(path, str) else path


# The command-line keys naming folders that Hydra creates itself: a ``~`` or ``$VAR`` in them is
# expanded before Hydra reads them (Hydra would create a folder literally named ``~``).
FOLDER_KEYS = ("paths.root", "paths.models", "hydra.run.dir", "hydra.sweep.dir")


def expand_folder_overrides(overrides: list[str]) -> list[str]:
    """``paths.root='~/audits'`` -> ``paths.root='/home/me/audits'`` (and ``$VARS``) for :data:`FOLDER_KEYS`.

    A value Hydra would read as something else than one path (an interpolation ``${...}``, a sweep
    ``a,b``) is left as given. The expanded value is single-quoted for Hydra's override grammar.
    """
    expanded = []
    for override in overrides:
        key, equals, value = override.partition("=")
        if equals and key.lstrip("+") in FOLDER_KEYS:
            bare = value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value
            if (bare.startswith("~") or "$" in bare) and "${" not in bare and "," not in bare and "'" not in bare:
                path = os.path.expanduser(os.path.expandvars(bare))
                if path != bare:
                    override = f"{key}='{path}'"
        expanded.append(override)
    return expanded


def reference_draw_tag(draw: Any, fraction: Any) -> str:
    """The part tag's suffix of one of several reference models (``data.reference_draw``): ``-f0.5-draw3``
    for draw 3 on a random half of the reference part; ``""`` without a draw (the whole reference part,
    calibration=reference), so that the folder of a single reference model keeps its name. train.py names
    the folder with it (conf/paths/default.yaml) and calibration=references finds the folders with it."""
    if draw is None:
        return ""
    return f"-f{float(fraction):g}-draw{int(draw)}"


def register_resolvers() -> None:
    """Register ``${ganleaks_digest:...}``, ``${ganleaks_fingerprint:...}``, ``${ganleaks_swept:}`` (conf/victim/)
    ``${ganleaks_expand:...}`` and ``${ganleaks_draw_tag:...}`` (conf/paths/); idempotent."""
    for name, function in (
        (DIGEST_RESOLVER, short_digest),
        (FINGERPRINT_RESOLVER, config_fingerprint),
        (SWEPT_RESOLVER, swept_suffix),
        (EXPAND_RESOLVER, expand_path),
        (DRAW_RESOLVER, reference_draw_tag),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
