"""Attack engines: one class per threat model, each scoring a batch of queries against one model.

An engine maps queries ``x (B, *shape)`` with ids ``(B,)`` to a per-query loss (lower = more
likely a member), the latent code of the reconstruction where there is one, and a status. Every
engine is per-query: a query's result never depends on which other queries share its batch.

The settings are a Hydra registry: ``conf/setting/<name>.yaml`` names its engine class with
``_target_``, and its other keys are the class's arguments (but for :data:`SETTING_LABELS`).
Everything else about a setting is declared once, on its class:

* what the attack must prepare for it (``needs_generator``, ``needs_discriminator``,
  ``reconstructs``, ``needs_latent_space``, ``needs_reference_records``; summarised by
  :meth:`AttackEngine.needs`), and whether calibration applies to it (``calibration_refusal``);
* its keys and their valid values (``config_parameters``, :class:`~ganleaks.parameters.Parameter` specs),
  which :func:`check_setting` checks before an attack reads anything;
* how reports show it (``label``, ``description``) and order and compare it (``knowledge``,
  ``baseline``, ``uses_k``): see :mod:`ganleaks.settings.registry`.

So adding a setting means adding a class and a YAML file; nothing outside this package dispatches
on a setting's name.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganleaks.distances.distance import ReconstructionDistance
from ganleaks.errors import AttackConfigError
from ganleaks.parameters import Parameter, check_node
from ganleaks.status import status_from

log = logging.getLogger(__name__)

#: Keys of a setting node that describe the run, not the engine: ``name`` (folder names, reports)
#: and ``reference_model`` (the architecture of the calibration reference, which names its folder).
SETTING_LABELS = ("name", "reference_model")
#: What the attack passes an engine at run time, as the class asks (``needs_generator``, ...).
RUNTIME_ARGUMENTS = ("generator", "seed", "discriminator", "distance", "reference_records")
#: Setting keys of earlier versions, and where their values go now.
MOVED_SETTING_KEYS = {
    "optimizer_kwargs": "the optimiser's arguments are keys of setting.optimizer now (e.g. "
    "+setting.optimizer.history_size=20)",
}


#: Keys several settings share: how a bank of generated samples is made (:func:`make_sample_bank`).
CHUNK_SIZE = Parameter("chunk_size", "int", low=1, help="generated samples made and compared at a time")
BANK_CACHE_MB = Parameter("bank_cache_mb", "int", low=0, help="keep generated samples in memory up to this size")


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
    passes it those runtime objects as keyword arguments beside the setting's keys. It declares
    its keys (``config_parameters``) and how reports show it (``label``, ``description``, ``knowledge``,
    ``baseline``, ``uses_k``) the same way.
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
    #: The engine fits a density on real records of the queries' distribution that are disjoint from
    #: every query (a training run's split ``reference`` part, or the user's ``queries.reference``):
    #: the attack asks the victim for them and passes ``reference_records=`` (``(R, *shape)`` in [-1, 1]).
    needs_reference_records: ClassVar[bool] = False
    #: Why calibration with a reference model (paper eq. 11, ``calibration=reference`` / ``samples``)
    #: does not apply to this setting, for the refusal (:func:`check_calibration`); None: it applies.
    calibration_refusal: ClassVar[str | None] = None

    #: The setting's keys (besides :data:`SETTING_LABELS` and the runtime objects) and their valid
    #: values. None: the keyword arguments of the constructor, unchecked (:func:`setting_parameters`).
    #: (Not ``parameters``: that is ``nn.Module.parameters()``, the weights.)
    config_parameters: ClassVar[tuple[Parameter, ...] | None] = None
    #: How reports name the setting ("full black-box"); empty: the setting's name.
    label: ClassVar[str] = ""
    #: One sentence: what the attacker had and how a record is scored (the audit summary's threat model).
    description: ClassVar[str] = ""
    #: The attacker's knowledge, the paper's order of settings (section 4): a larger number, more
    #: access (1 = generated samples only, 2 = the generator as a query box, 3 = its weights, 4 = the
    #: discriminator). Reports sort settings by it; claim C2 compares the attacks (``reconstructs``)
    #: of consecutive levels, claim C5 a baseline with the attack of its level. None: not ranked.
    knowledge: ClassVar[int | None] = None
    #: A reference attack from the literature rather than the paper's: reports put it after the
    #: attacks, and claim C5 compares the paper's attack of the same knowledge against it.
    baseline: ClassVar[bool] = False
    #: ``setting.k`` (the number of generated samples the attacker sees) applies: reports show k
    #: and draw AUC against it, and compare two settings with k at the same k.
    uses_k: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_parameters" in cls.__dict__ and cls.config_parameters is not None:
            _check_declaration(cls)

    @classmethod
    def needs(cls) -> tuple[str, ...]:
        """What the setting needs from a victim, from the capability attributes: ``generated
        samples`` (a sample set serves), ``generator`` (its latent space), ``discriminator``,
        ``reference records`` (real records of the queries' distribution, disjoint from them)."""
        parts = []
        if cls.needs_generator:
            parts.append("generator" if cls.needs_latent_space else "generated samples")
        if cls.needs_discriminator:
            parts.append("discriminator")
        if cls.needs_reference_records:
            parts.append("reference records")
        return tuple(parts)

    def counts_used(self) -> dict[str, int]:
        """The counts this engine really uses where they may differ from the setting's keys, by key
        (``{"k": 128}`` when a sample set of 128 samples capped ``setting.k=10000``); the run records
        them as its facts. Empty: the keys' values are used as given."""
        return {}

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


def _constructor_keys(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """The constructor's keyword arguments but :data:`RUNTIME_ARGUMENTS`, and whether it takes ``**kwargs``."""
    taken, any_key = {}, False
    for name, parameter in inspect.signature(cls).parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            any_key = True
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL and name not in RUNTIME_ARGUMENTS:
            taken[name] = parameter
    return taken, any_key


def _check_declaration(cls: type[AttackEngine]) -> None:
    """A class's declared ``config_parameters`` are the keys its constructor takes (raised when it is defined)."""
    declared = cast(tuple[Parameter, ...], cls.config_parameters)
    names = [parameter.name for parameter in declared]
    taken, any_key = _constructor_keys(cls)
    problems = [f"{name} is declared twice" for name in sorted({n for n in names if names.count(n) > 1})]
    problems += [
        f"{name} is a runtime argument or label" for name in names if name in (*RUNTIME_ARGUMENTS, *SETTING_LABELS)
    ]
    problems += [
        f"{name} is declared but __init__ does not take it" for name in names if name not in taken and not any_key
    ]
    problems += [
        f"__init__ takes {name} (no default) but config_parameters does not declare it"
        for name, parameter in taken.items()
        if name not in names and parameter.default is parameter.empty
    ]
    problems += [
        f"{parameter.name} is declared optional but __init__ has no default for it"
        for parameter in declared
        if not parameter.required
        and parameter.name in taken
        and taken[parameter.name].default is inspect.Parameter.empty
    ]
    if problems:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__}.config_parameters: {'; '.join(problems)}")


def setting_parameters(cls: type[AttackEngine]) -> tuple[Parameter, ...]:
    """The setting keys ``cls`` takes: its declared ``config_parameters``, or, for a class that declares
    none, its constructor's keyword arguments (unchecked; required where they have no default)."""
    if cls.config_parameters is not None:
        return cls.config_parameters
    taken, _ = _constructor_keys(cls)
    return tuple(Parameter(name, "any", required=p.default is p.empty) for name, p in taken.items())


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


def check_setting(node: DictConfig, where: str = "setting", *, warn_unused: bool = True) -> type[AttackEngine]:
    """Check a setting node (``conf/setting/*.yaml``) against its class's declaration; return the class.

    Every declared parameter the node gives has a valid value (``ValueError`` naming the key and
    what is valid); a key of earlier versions whose value would be lost, or a required key that
    is missing, is refused (:class:`AttackConfigError`). A key the class does not take is ignored
    with a warning (``warn_unused``): a sweep may set ``++setting.k`` for settings that have no ``k``.

    Args:
        node: the setting node (``cfg.setting``, ``cfg.calibration.reference_setting``).
        where: its key in the config, for messages.
    """
    cls = engine_class(node)
    parameters = setting_parameters(cls)
    check_node(where, node, parameters)
    taken = sorted(parameter.name for parameter in parameters)
    given = {str(key) for key in node} - {"_target_", *SETTING_LABELS}
    problems = [f"{where}.{name}: {MOVED_SETTING_KEYS[name]}" for name in sorted(given & MOVED_SETTING_KEYS.keys())]
    problems += [
        f"{where}.{parameter.name} is missing"
        for parameter in sorted(parameters, key=lambda p: p.name)
        if parameter.required and parameter.name not in given
    ]
    if problems:
        raise AttackConfigError(
            f"{'; '.join(problems)}: {where} ({node.get('name')}) names {cls.__name__}, which takes "
            f"{', '.join(taken) or 'no keys'}; fix the override or its conf/setting/*.yaml"
        )
    ignored = sorted(given - set(taken))
    if ignored and warn_unused:
        log.warning(
            "%s not used by %s (setting %s), ignored; it takes %s",
            ", ".join(f"{where}.{name}" for name in ignored),
            cls.__name__,
            node.get("name"),
            ", ".join(taken) or "no keys",
        )
    return cls


def check_calibration(cls: type[AttackEngine], setting: str | None, calibration: str | None) -> None:
    """Refuse calibration with a reference model for a setting that declares it does not apply
    (``calibration_refusal``), saying why and what to run instead."""
    if cls.calibration_refusal is None:
        return
    raise AttackConfigError(
        f"calibration={calibration} does not apply to setting={setting}: {cls.calibration_refusal}; "
        "attack with calibration=none"
    )


def build_engine(
    setting: DictConfig,
    generator: nn.Module | None,
    discriminator: nn.Module | None,
    distance: ReconstructionDistance | None,
    seed: int,
    reference_records: Tensor | None = None,
) -> AttackEngine:
    """The engine ``setting`` (a ``conf/setting/*.yaml`` node) names, over one model.

    The setting's keys that the class takes (:func:`setting_parameters`) are its arguments (the
    labels, and any key a sweep set for other settings, are not: :func:`check_setting` warns about
    the latter); the runtime objects the class asks for by its class attributes are passed beside them
    (``reference_records``: the victim's, for a class that ``needs_reference_records``).
    """
    cls = engine_class(setting)
    taken = {parameter.name for parameter in setting_parameters(cls)}
    setting_keys = cast(dict[str, Any], OmegaConf.to_container(setting, resolve=True))
    arguments = {key: value for key, value in setting_keys.items() if key == "_target_" or key in taken}
    runtime: dict[str, Any] = {}
    if cls.needs_generator:
        runtime.update(generator=generator, seed=int(seed))
    if cls.needs_discriminator:
        runtime.update(discriminator=discriminator)
    if cls.reconstructs:
        runtime.update(distance=distance)
    if cls.needs_reference_records:
        if reference_records is None:
            raise ValueError(f"{cls.__name__} needs reference_records (the victim's Victim.reference_records)")
        runtime.update(reference_records=reference_records)
    return instantiate(arguments, **runtime)
