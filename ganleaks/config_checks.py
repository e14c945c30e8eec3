"""Every number and choice a run reads, checked before any file is read or model loaded.

The generic checks (:func:`~ganleaks.parameters.check_int`, ...) live in :mod:`ganleaks.parameters`;
a setting's keys and the distance's are declared by their classes (``config_parameters``), and checked
against those declarations (:func:`ganleaks.settings.base.check_setting`, :func:`check_distance`).
"""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class

from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.parameters import SEED_RANGE, check_choice, check_float, check_int, check_node, check_seed
from ganleaks.settings.base import check_setting

__all__ = [  # the generic checks, as this module has always offered them
    "SEED_RANGE",
    "check_attack_config",
    "check_choice",
    "check_distance",
    "check_float",
    "check_int",
    "check_seed",
    "check_train_config",
]


def check_attack_config(cfg) -> None:
    """Every number and choice an attack reads, before any file is read or model loaded."""
    check_seed(cfg.seed)
    check_setting(cfg.setting, "setting", warn_unused=False)  # the plan warns about unused keys, once
    check_distance(cfg.get("distance"), "distance")
    attack = cfg.attack
    check_int("attack.batch_size", attack.batch_size, 1)
    check_int("attack.num_queries", attack.get("num_queries"), allow_none=True)  # its range: select_queries
    check_int("attack.save_reconstructions", attack.get("save_reconstructions", 0), 0)
    check_int("attack.most_exposed", attack.get("most_exposed", 20), 0)


def check_distance(node: Any, where: str = "distance") -> None:
    """The distance node's values, by the parameters its class (``_target_``) declares.

    A class that cannot be imported is not checked here: the attack builds the distance only when
    its setting reconstructs, and says so there.
    """
    if node is None:
        return
    target = node.get("_target_")
    cls: Any = ReconstructionDistance
    if target and target != f"{ReconstructionDistance.__module__}.{ReconstructionDistance.__qualname__}":
        try:
            cls = get_class(target)
        except Exception:  # an unimportable target fails where the distance is built, if it is
            return
    check_node(where, node, getattr(cls, "config_parameters", ()))


def check_train_config(cfg) -> None:
    """Numbers that training reads besides the split sizes (``data.batch_size``, ``seed``, ...)."""
    check_seed(cfg.seed)
    check_int("data.batch_size", cfg.data.batch_size, 1)
    check_int("data.num_workers", cfg.data.get("num_workers", 0), 0)
    check_int("checkpoint_every_n_steps", cfg.get("checkpoint_every_n_steps", 0), 0)
