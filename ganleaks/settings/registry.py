"""What reports need to know about a setting, read from its class's declarations.

A finished run names its setting by ``name`` and, when its config recorded one, by the engine
class (``setting._target_``). :func:`describe_setting` resolves the class from that target, else
from the setting's YAML file in the config registry (``conf/setting/<name>.yaml``: runs written
before the engines moved, or before targets were recorded), else describes the setting by its
name alone. It never raises: a report over runs of a setting this installation does not know
still renders, the unknown setting after the known ones.
"""

from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


def conf_dir() -> Path:
    """The Hydra config folder whose ``setting/`` is the registry of settings (:mod:`ganleaks.config_dir`)."""
    from ganleaks.config_dir import CONF_DIR

    return CONF_DIR


@dataclass(frozen=True)
class SettingInfo:
    """How reports show, order and compare one setting (see :class:`~ganleaks.settings.base.AttackEngine`).

    Attributes:
        name: the setting's name (``setting=NAME``, folder names, the tables' columns).
        label: how figures and the report's key name it ("full black-box").
        description: one sentence: what the attacker had (the summary page's threat model).
        known: an engine class was found for it (else every other field is a default).
        knowledge, baseline, uses_k, reconstructs, needs_discriminator: the class's declarations.
        needs: what it needs from a victim (:meth:`AttackEngine.needs`).
        engine: the class's import path, or None.
    """

    name: str
    label: str
    description: str
    known: bool = False
    knowledge: int | None = None
    baseline: bool = False
    uses_k: bool = False
    reconstructs: bool = False
    needs_discriminator: bool = False
    needs: tuple[str, ...] = ()
    engine: str | None = None

    @property
    def rank(self) -> tuple:
        """Sort key: the known settings by attacker knowledge (the paper's order), baselines after
        the attacks, then unranked ones; unknown settings after all known ones; ties by name."""
        return (
            not self.known,
            self.baseline,
            self.knowledge is None,
            0 if self.knowledge is None else self.knowledge,
            self.name,
        )


def _engine(target: object):
    """The AttackEngine subclass ``target`` names, or None (not importable, not an engine)."""
    if not isinstance(target, str) or "." not in target:
        return None
    module, _, attribute = target.rpartition(".")
    try:
        from ganleaks.settings.base import AttackEngine

        cls = getattr(importlib.import_module(module), attribute)
    except Exception as error:  # moved or removed since the run, or not installed here
        log.debug("setting target %s cannot be imported (%s)", target, error)
        return None
    return cls if isinstance(cls, type) and issubclass(cls, AttackEngine) else None


def registered_target(name: str) -> str | None:
    """The ``_target_`` of ``conf/setting/<name>.yaml`` in the registry (:func:`conf_dir`), or None."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = conf_dir() / "setting" / f"{name}.yaml"
    try:
        node = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None
    target = node.get("_target_") if isinstance(node, dict) else None
    return target if isinstance(target, str) else None


@functools.lru_cache(maxsize=256)
def describe_setting(name: str | None, target: str | None = None) -> SettingInfo:
    """The setting ``name`` as its class declares it; ``target``: the engine its run recorded.

    The recorded target is tried first, then the registry's ``conf/setting/<name>.yaml``; a class
    that declares no label is passed over for one that does (a run recorded when partial
    black-box and white-box shared one class). Without a class: a description built from the name.
    """
    name = "" if name is None else str(name)
    candidates = [cls for cls in (_engine(target), _engine(registered_target(name))) if cls is not None]
    labelled = [cls for cls in candidates if cls.label]
    cls = (labelled or candidates or [None])[0]
    if cls is None:
        return SettingInfo(name=name, label=name or "?", description=f"Setting {name or '?'}.")
    return SettingInfo(
        name=name,
        label=cls.label or name,
        description=cls.description or f"Setting {name} ({cls.__name__}).",
        known=True,
        knowledge=cls.knowledge,
        baseline=cls.baseline,
        uses_k=cls.uses_k,
        reconstructs=cls.reconstructs,
        needs_discriminator=cls.needs_discriminator,
        needs=cls.needs(),
        engine=f"{cls.__module__}.{cls.__qualname__}",
    )
