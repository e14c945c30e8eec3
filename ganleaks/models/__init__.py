"""Victim generative models: networks (``nets``), losses, Lightning modules, DP training
(``privacy``, the only Opacus import), export and safe loading.

``load_generator`` / ``load_discriminator`` need neither Lightning nor pickle; ``fit_victim``
(``ganleaks.models.training``) is imported lazily so attack code never pulls in training.
"""

from typing import Any

from ganleaks.models.export import load_discriminator, load_generator, load_network

__all__ = ["fit_victim", "load_discriminator", "load_generator", "load_network"]


def __getattr__(name: str) -> Any:
    if name == "fit_victim":
        from ganleaks.models.training import fit_victim

        return fit_victim
    raise AttributeError(f"module 'ganleaks.models' has no attribute {name!r}")
