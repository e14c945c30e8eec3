"""The interface of everything an attack can be pointed at: a :class:`Victim`.

A victim is built by ``_target_`` from its config node (``conf/victim/*.yaml`` for the attacked
model, ``calibration.reference`` for a calibration reference model) and owns every fact about
itself: how it loads, what it offers to the settings (:data:`CAPABILITIES`), its output range,
its identity (a content fingerprint of its weights or samples and of every declared field that
changes a score), its provenance (the queries and, where known, the split) and its privacy
statement. The attack asks it; no code outside :mod:`ganleaks.victims` asks which kind it is.

A setting declares what it needs (its class attributes ``needs_generator``,
``needs_latent_space``, ``needs_discriminator``); :meth:`Victim.check_serves` refuses a pair that
cannot work with a message naming what is missing and what to bring instead.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue
from torch import Tensor, nn

from ganleaks.data.queries import Queries
from ganleaks.errors import AttackConfigError

#: What a victim can offer a setting (the names a setting's ``needs()`` uses), and what each means.
CAPABILITIES = {
    "generated samples": "generated samples (a generator to draw from, or a stored sample set)",
    "generator": "a generator whose latent space can be searched (z -> G(z))",
    "discriminator": "the trained discriminator",
    "reference records": "real records of the queries' distribution that are neither members nor non-members",
}
#: Keys of a victim node that name it, not build it (folder names, the short hash in them).
VICTIM_LABELS = ("name", "digest", "kind")


def required_capabilities(setting_class: type) -> frozenset[str]:
    """What a setting needs from a victim, as its class declares it (``AttackEngine.needs()``).

    A generator serves whatever needs generated samples too, so ``generator`` implies them.
    """
    needs = set(setting_class.needs())  # type: ignore[attr-defined]  # every setting is an AttackEngine
    if "generator" in needs:
        needs.add("generated samples")
    return frozenset(needs)


@dataclass(frozen=True)
class PrivacyStatement:
    """What is known of how a victim was trained with respect to differential privacy.

    Attributes:
        status: ``"dp"`` (trained here with DP-SGD: the accountant's epsilon), ``"none"`` (trained
            here without DP), ``"declared"`` (the user states a budget; nothing here checked it),
            ``"unknown"`` (the user's artefact: nobody here knows how it was trained).
        epsilon, delta, noise_multiplier: the budget, where known or declared.
    """

    status: str
    epsilon: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None

    def facts(self) -> dict:
        """``privacy`` and the budget's numbers where they exist (the run's facts)."""
        budget = {"noise_multiplier": self.noise_multiplier, "epsilon": self.epsilon, "delta": self.delta}
        return {"privacy": self.status, **{key: value for key, value in budget.items() if value is not None}}


@dataclass
class Networks:
    """The networks a setting's engine runs on: built, loaded, on the CPU, checked as they loaded."""

    generator: nn.Module | None = None
    discriminator: nn.Module | None = None


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tensors(tensors: Iterable[tuple[str, Tensor]]) -> str:
    """sha256 over named tensors' names and bytes (a state dict, a sample set)."""
    digest = hashlib.sha256()
    for name, tensor in tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Victim(ABC):
    """A model (or a model's released samples) that queries are scored against.

    Subclasses set :attr:`kind` and implement the abstract methods; each constructor only stores
    its declared fields (nothing is read until the attack asks), so a refused pair fails before any
    file is opened.

    Args:
        role: ``"victim"`` (the attacked model) or ``"reference"`` (a calibration reference model);
            it words the messages.
    """

    #: A short name of the kind, recorded in the run's facts (``victim_kind``) and folder names.
    kind: ClassVar[str]

    def __init__(self, role: str = "victim") -> None:
        self.role = role

    # ------------------------------------------------------------------ what it is and offers

    @property
    @abstractmethod
    def label(self) -> str:
        """What the victim is, for messages and the ``victim_run_dir`` fact (a folder or a file)."""

    @abstractmethod
    def offers(self) -> frozenset[str]:
        """The :data:`CAPABILITIES` this victim can serve (a generator offers generated samples too)."""

    def missing_hint(self, missing: frozenset[str], setting: str) -> str:
        """What the user can do about ``missing`` model capabilities (a subclass says what to bring)."""
        return "choose a setting this victim can serve"

    def reference_hint(self) -> str:
        """What the user can do when the setting needs reference records this victim does not hold."""
        return "choose a setting without reference data"

    def check_serves(self, setting_class: type, setting: str, where: str = "setting") -> None:
        """Refuse a setting that needs what this victim does not offer, naming what is missing."""
        missing = required_capabilities(setting_class) - self.offers()
        if missing:
            needs = ", ".join(CAPABILITIES[name] for name in sorted(missing))
            models = frozenset(missing - {"reference records"})
            hints = [self.missing_hint(models, setting)] if models else []
            hints += [self.reference_hint()] if "reference records" in missing else []
            raise AttackConfigError(
                f"{where}={setting} needs {needs}, which the {self.role} ({self.describe()}) does not offer: "
                f"{'; '.join(hints)}"
            )

    def describe(self) -> str:
        """One phrase naming the victim, for messages."""
        return f"{self.kind} {self.label}"

    # ------------------------------------------------------------------ queries and provenance

    @abstractmethod
    def queries(self, num_queries: int | None, seed: int) -> Queries:
        """The member and non-member records to score, from this victim's provenance.

        Only the attacked victim provides queries; a calibration reference model is asked to
        :meth:`check_disjoint` from them instead.
        """

    def check_disjoint(self, queries: Queries, victim: Victim | None = None) -> None:
        """Refuse to serve as a calibration reference if this model may have seen a query.

        ``victim``: the attacked victim (checked, with its samples or weights loaded as far as its
        ``check_fits`` loads them), whose records the reference must not hold either. The default
        trusts the user's statement (a generator the user brings as a reference, documented as
        trained on data disjoint from the queries).
        """
        return None

    def check_fits(self, setting_class: type, queries: Queries) -> None:
        """What can be checked before any weights load: recorded shapes and sizes fit the queries."""
        return None

    def reference_records(self, queries: Queries) -> Tensor:
        """``(R, *shape)`` real records of the queries' distribution, disjoint from every query, in ``[-1, 1]``.

        What a density-ratio setting (``needs_reference_records``) fits its reference density on. A
        victim that offers ``reference records`` loads and checks them once (its ``check_fits`` asks
        for them, so that a refusal comes before any network loads); the default holds none.
        """
        raise AttackConfigError(
            f"the {self.role} ({self.describe()}) holds no reference records: {self.reference_hint()}"
        )

    # ------------------------------------------------------------------ loading

    @abstractmethod
    def networks(self, setting_class: type, queries: Queries) -> Networks:
        """The networks ``setting_class`` needs, loaded and checked (finite outputs, the queries' scale)."""

    # ------------------------------------------------------------------ identity and facts

    @abstractmethod
    def identity(self, setting_class: type) -> dict:
        """A content fingerprint of what ``setting_class`` reads from this victim (weights, samples,
        declared fields): finished results with another identity are never reused."""

    def privacy(self) -> PrivacyStatement:
        """What is known of the victim's training with respect to differential privacy."""
        return PrivacyStatement("unknown")

    def facts(self) -> dict:
        """What the run's facts say about the victim: where it is, its data, model, size, privacy."""
        return {"victim_run_dir": self.label, **self.privacy().facts()}

    # ------------------------------------------------------------------ the config around it

    @classmethod
    def adapt_config(cls, cfg: DictConfig, overridden: set[str]) -> DictConfig:
        """The attack config to run with, given the keys the command line set (default: ``cfg`` as is).

        A training run named on the command line, say, brings the data settings it recorded.
        """
        return cfg


def victim_class(node: DictConfig | Mapping) -> type[Victim]:
    """The :class:`Victim` subclass a victim node names with ``_target_``."""
    target = node.get("_target_") if node is not None else None
    if not target:
        raise AttackConfigError(
            "the victim config names no class: give it `_target_: ganleaks.victims.<module>.<Class>` "
            "(see conf/victim/*.yaml and docs/ARCHITECTURE.md)"
        )
    cls = get_class(str(target))
    if not (isinstance(cls, type) and issubclass(cls, Victim)):
        raise AttackConfigError(f"_target_={target!r} is not a ganleaks Victim (ganleaks.victims.base.Victim)")
    return cls


def build_victim(node: DictConfig, role: str, objects: Mapping[str, Any] | None = None) -> Victim:
    """The victim ``node`` describes, in ``role``; ``objects`` are Python objects its class takes by name.

    The node's keys the class takes are its arguments (others, such as :data:`VICTIM_LABELS`, name
    the run's folder); a mandatory key left unset (``???``) is passed as None. ``objects`` (``ganleaks.audit``'s
    modules and arrays) are passed where the class takes them, replacing the node's value.
    """
    cls = victim_class(node)
    parameters = inspect.signature(cls).parameters
    values = OmegaConf.to_container(node, resolve=False)
    assert isinstance(values, dict)  # a victim node is a mapping
    arguments: dict[str, Any] = {}
    for name in parameters:
        if name in ("self", "role"):
            continue
        if objects and objects.get(name) is not None:
            arguments[name] = objects[name]
        elif name in values:
            # A mandatory key left unset (``???``) reaches the victim as None: the victim says what
            # to set, only when the setting actually reads it (check_fits).
            try:
                value = node[name]
            except (MissingMandatoryValue, InterpolationToMissingValueError):
                value = None
            arguments[name] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return cls(role=role, **arguments)


def check_same_identity(previous: dict, current: dict) -> list[str]:
    """The keys whose values differ between two identities (flattened), for a message."""
    old, new = _flatten(previous), _flatten(current)
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def _flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for name, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{name}.").items()} or {prefix: {}}


def canonical(value: Any) -> Any:
    """``value`` as plain JSON types (an identity is compared and hashed as JSON)."""
    return json.loads(json.dumps(value, default=str))
