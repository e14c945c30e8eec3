"""Attack engines: one class per threat model, each scoring a batch of queries against one model.

An engine maps queries ``x (B, *shape)`` with ids ``(B,)`` to a per-query loss (lower = more
likely a member), the latent code of the reconstruction where there is one, and a status. Every
engine is per-query: a query's result never depends on which other queries share its batch.

The settings are a Hydra registry: ``conf/setting/<name>.yaml`` names its engine class with
``_target_``, and its other keys are the class's arguments (but for :data:`SETTING_LABELS`).
What the attack must prepare for an engine is written on the class (``needs_generator``,
``needs_discriminator``, ``reconstructs``), so adding a setting means adding a class and a YAML
file; nothing dispatches on a setting's name.
"""

from __future__ import annotations

import inspect
import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.status import status_from

#: Keys of a setting node that describe the run, not the engine: ``name`` (folder names, reports)
#: and ``reference_model`` (the architecture of the calibration reference, which names its folder).
SETTING_LABELS = ("name", "reference_model")
#: What the attack passes an engine at run time, as the class asks (``needs_generator``, ...).
RUNTIME_ARGUMENTS = ("generator", "seed", "discriminator", "distance")


@dataclass
class BatchResult:
    """Per-query outputs of one batch (all on the CPU).

    Attributes:
        loss: ``(B,)`` the L2 + LPIPS part of the distance (or -D(x), or -log density); NaN if failed.
        objective: ``(B,)`` what the search minimised (loss + latent prior), or the loss.
        z: ``(B, d)`` latent of the reconstruction, or ``None`` (discriminator setting).
        status: ``(B,)`` int8, ``STATUS_OK`` or ``STATUS_DIVERGED``.
    """

    loss: Tensor
    objective: Tensor
    z: Tensor | None
    status: Tensor


def status_and_values(values: Tensor, diverged: Tensor | None = None) -> tuple[Tensor, Tensor]:
    bad = ~torch.isfinite(values)
    if diverged is not None:
        bad = bad | diverged
    return torch.where(bad, torch.full_like(values, math.nan), values), status_from(bad)


def non_finite_queries(x: Tensor) -> Tensor:
    """``(B,)`` True for queries holding NaN or inf: they cannot be scored and are marked diverged."""
    return ~torch.isfinite(x.flatten(1)).all(dim=1)


def searchable(x: Tensor, bad: Tensor) -> Tensor:
    """``x`` with non-finite queries zeroed, so that a nearest-neighbour search over the batch stays valid."""
    return torch.where(bad.view(-1, *[1] * (x.ndim - 1)), torch.zeros_like(x), x)


class AttackEngine(nn.Module):
    """Base class: holds the attacked network(s) as submodules so Lightning moves them to the device.

    A subclass says what the attack prepares for it, as class attributes; :func:`build_engine`
    passes it those runtime objects as keyword arguments beside the setting's keys.
    """

    #: The attack loads the generator and passes ``generator=`` and ``seed=`` (its samples and latents).
    needs_generator: ClassVar[bool] = True
    #: The attack loads the discriminator and passes ``discriminator=``.
    needs_discriminator: ClassVar[bool] = False
    #: The loss is a reconstruction error L(x, R(x|G)): the attack passes ``distance=`` (one built for
    #: all engines), and calibration reconstructs on the reference model with the white-box optimiser.
    reconstructs: ClassVar[bool] = False
    #: The engine searches (or draws from) the generator's latent space: a generated sample set
    #: (``victim=samples``, ``StoredSampleGenerator``) cannot serve it. Only engines that see nothing
    #: but generated samples (full black-box, Monte-Carlo) set it False.
    needs_latent_space: ClassVar[bool] = True

    def prepare(self, queries: Tensor) -> None:
        """Called once with every query before scoring (only the Monte-Carlo baseline needs it)."""

    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:  # pragma: no cover - abstract
        """Per-query losses of a batch (lower = more likely a member); the membership score is -loss."""
        raise NotImplementedError

    @torch.no_grad()
    def reconstructions(self, z: Tensor) -> Tensor:
        """``G(z)`` (float32, CPU) for latents ``z (B, d)`` this engine returned: the queries' R(x)."""
        generator = cast(nn.Module, self.generator)  # an engine that returns latents holds its generator
        # A stored sample set holds a buffer and no parameters; its latents are indices (float32).
        tensor = next(itertools.chain(generator.parameters(), generator.buffers()))
        dtype = tensor.dtype if tensor.is_floating_point() else z.dtype
        return generator(z.to(device=tensor.device, dtype=dtype)).float().cpu()


def engine_class(setting: DictConfig) -> type[AttackEngine]:
    """The engine class a setting node names with ``_target_``."""
    target = setting.get("_target_")
    if not target:
        raise ValueError(
            f"setting {setting.get('name')!r} names no engine: give its conf/setting/*.yaml a "
            "`_target_: module.EngineClass` line (see docs/ARCHITECTURE.md)"
        )
    cls = get_class(target)
    if not issubclass(cls, AttackEngine):
        raise TypeError(f"setting._target_={target!r} is not an AttackEngine (ganleaks.settings.base)")
    return cls


def engine_arguments(cls: type[AttackEngine]) -> dict[str, inspect.Parameter]:
    """The setting keys ``cls`` takes: its constructor's parameters but :data:`RUNTIME_ARGUMENTS`."""
    return {name: p for name, p in inspect.signature(cls).parameters.items() if name not in RUNTIME_ARGUMENTS}


def build_engine(
    setting: DictConfig,
    generator: nn.Module | None,
    discriminator: nn.Module | None,
    distance: ReconstructionDistance | None,
    seed: int,
) -> AttackEngine:
    """The engine ``setting`` (a ``conf/setting/*.yaml`` node) names, over one model.

    The setting's keys that the class takes are its arguments (the labels, and any key a sweep set
    for other settings, are not: :func:`ganleaks.orchestration.plan.check_setting_keys` warns about
    the latter); the runtime objects the class asks for by its class attributes are passed beside them.
    """
    cls = engine_class(setting)
    taken = engine_arguments(cls)
    setting_keys = cast(dict[str, Any], OmegaConf.to_container(setting, resolve=True))
    arguments = {key: value for key, value in setting_keys.items() if key == "_target_" or key in taken}
    runtime: dict[str, Any] = {}
    if cls.needs_generator:
        runtime.update(generator=generator, seed=int(seed))
    if cls.needs_discriminator:
        runtime.update(discriminator=discriminator)
    if cls.reconstructs:
        runtime.update(distance=distance)
    return instantiate(arguments, **runtime)
