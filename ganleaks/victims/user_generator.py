"""A generator (and optionally its discriminator) the user trained elsewhere (``victim=generator``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganleaks.data.queries import Queries
from ganleaks.data.user_sets import QuerySet
from ganleaks.errors import AttackConfigError, missing_key_message
from ganleaks.victims.base import Networks, sha256_file, sha256_tensors
from ganleaks.victims.external_networks import (
    ExternalGenerator,
    load_external_discriminator,
    load_external_generator,
)
from ganleaks.victims.user_artefacts import UserArtefactVictim, check_queries_scale

#: Generated samples compared with the queries' scale after the generator loads.
SCALE_PROBES = 64
OUTPUT_RANGE_HINT = (
    "Set victim.output_range to the range the generator produces ([0,1] for a sigmoid output, "
    "[-1,1] for tanh), and queries.value_range to the range the query files are stored in."
)


class UserGeneratorVictim(UserArtefactVictim):
    """The user's generator, built by ``_target_`` and loaded from a weights file that cannot run code.

    It offers generated samples and its latent space (every generator setting); the discriminator
    setting when ``discriminator`` is given too. Its outputs are mapped from ``output_range`` and its
    latent from ``latent_distribution`` (:class:`~ganleaks.victims.external_networks.ExternalGenerator`).

    Args:
        generator: ``{"_target_": "mypkg.nets.Generator", **kwargs}``.
        weights: its ``.safetensors`` or ``torch.save(state_dict)`` file.
        latent_dim, latent_distribution, latent_range, output_range, weights_key: as declared
            (``conf/victim/generator.yaml``).
        discriminator, discriminator_weights, discriminator_input_range: the discriminator, if given.
        queries, null_control, privacy: see :class:`UserArtefactVictim`.
    """

    kind = "generator"

    def __init__(
        self,
        generator: Any = None,
        weights: str | None = None,
        latent_dim: int | None = None,
        *,
        role: str = "victim",
        latent_distribution: str = "normal",
        latent_range: Sequence[float] = (-1.0, 1.0),
        output_range: Sequence[float] = (-1.0, 1.0),
        weights_key: str | None = None,
        discriminator: Any = None,
        discriminator_weights: str | None = None,
        discriminator_input_range: Sequence[float] = (-1.0, 1.0),
        queries: Mapping[str, Any] | QuerySet | None = None,
        null_control: bool = False,
        privacy: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(role=role, queries=queries, null_control=null_control, privacy=privacy)
        self.generator_spec = generator
        self.weights = weights
        self.latent_dim = latent_dim
        self.latent_distribution = latent_distribution
        self.latent_range = list(latent_range)
        self.output_range = list(output_range)
        self.weights_key = weights_key
        self.discriminator_spec = discriminator
        self.discriminator_weights = discriminator_weights
        self.discriminator_input_range = list(discriminator_input_range)

    @property
    def label(self) -> str:
        return str(self.weights or self.discriminator_weights or "<none>")

    def describe(self) -> str:
        return f"your generator {self.label}"

    def model_name(self) -> str:
        spec = self.generator_spec if self.generator_spec is not None else self.discriminator_spec
        target = spec.get("_target_") if isinstance(spec, Mapping) else None
        return str(target) if target not in (None, "???") else "generator"

    def has_discriminator(self) -> bool:
        return self.discriminator_spec is not None

    def offers(self) -> frozenset[str]:
        discriminator = {"discriminator"} if self.has_discriminator() else set()
        return frozenset({"generated samples", "generator", *discriminator}) | self.offered_reference()

    def check_serves(self, setting_class: type, setting: str, where: str = "setting") -> None:
        """As every victim does, and the declared fields the setting reads are set (one line naming the first)."""
        super().check_serves(setting_class, setting, where)
        if getattr(setting_class, "needs_generator", False):
            for key, value in (("latent_dim", self.latent_dim), ("weights", self._weights_given())):
                if value is None:
                    raise AttackConfigError(missing_key_message(f"victim.{key}"))

    def _weights_given(self) -> object:
        """What the generator is loaded from: a weights file here (the module itself for an in-memory one)."""
        return self.weights

    def missing_hint(self, missing: frozenset[str], setting: str) -> str:
        return (
            "bring it with victim.discriminator._target_=mypkg.nets.Discriminator (plus its keyword arguments) "
            "and victim.discriminator_weights=D.safetensors, or choose a generator setting (whitebox, partialbb, "
            "fullbb, montecarlo)"
        )

    def check_fits(self, setting_class: type, queries: Queries) -> None:
        """The declared fields and weights files the setting reads are given (contents are checked as they load)."""
        for needed, key, path in (
            (getattr(setting_class, "needs_generator", False), "weights", self.weights),
            (getattr(setting_class, "needs_discriminator", False), "discriminator_weights", self.discriminator_weights),
        ):
            if needed and (path is None or not Path(path).expanduser().is_file()):
                raise FileNotFoundError(
                    f"victim.{key}={path} does not exist; pass the .safetensors or state_dict file of your network"
                )
        self.check_reference(setting_class, queries)

    # ------------------------------------------------------------------ loading

    def _generator(self, queries: Queries) -> nn.Module:
        return load_external_generator(
            self.generator_spec,
            str(self.weights),
            int(self.latent_dim),  # type: ignore[arg-type]  # required by the node (???)
            latent_distribution=self.latent_distribution,
            latent_range=self.latent_range,
            output_range=self.output_range,
            data_shape=queries.shape,
            weights_key=self.weights_key,
        )

    def _discriminator(self, queries: Queries) -> nn.Module:
        return load_external_discriminator(
            self.discriminator_spec,
            str(self.discriminator_weights),
            queries.shape,
            input_range=self.discriminator_input_range,
        )

    def networks(self, setting_class: type, queries: Queries) -> Networks:
        networks = Networks()
        if getattr(setting_class, "needs_generator", False):
            networks.generator = self._generator(queries)
            if isinstance(networks.generator, ExternalGenerator):
                with torch.no_grad():
                    z = torch.randn(
                        SCALE_PROBES, networks.generator.latent_dim, generator=torch.Generator().manual_seed(0)
                    )
                    check_queries_scale(
                        networks.generator(z),
                        queries,
                        "the generator's samples (mapped from victim.output_range)",
                        OUTPUT_RANGE_HINT,
                    )
        if getattr(setting_class, "needs_discriminator", False):
            if not self.has_discriminator():
                raise AttackConfigError("victim.discriminator is not set")  # check_serves refused it before
            networks.discriminator = self._discriminator(queries)
        return networks

    # ------------------------------------------------------------------ identity

    def _declared(self) -> dict:
        """Every declared field that changes a score (besides the weights' contents)."""
        return {
            "generator": self.generator_spec if isinstance(self.generator_spec, Mapping) else None,
            "latent_dim": self.latent_dim,
            "latent_distribution": self.latent_distribution,
            "latent_range": self.latent_range,
            "output_range": self.output_range,
            "weights_key": self.weights_key,
            "discriminator": self.discriminator_spec if isinstance(self.discriminator_spec, Mapping) else None,
            "discriminator_input_range": self.discriminator_input_range,
        }

    def _weights_hash(self, part: str) -> str:
        return sha256_file(self.weights if part == "generator" else self.discriminator_weights)  # type: ignore[arg-type]

    def identity(self, setting_class: type) -> dict:
        hashes: dict[str, Any] = {}
        if getattr(setting_class, "needs_generator", False):
            hashes["generator"] = self._weights_hash("generator")
        if getattr(setting_class, "needs_discriminator", False):
            hashes["discriminator"] = self._weights_hash("discriminator")
        hashes["declared"] = self._declared()
        return {**hashes, **self.reference_identity(setting_class)}


def state_dict_hash(module: nn.Module) -> str:
    """sha256 of a module's state dict (an in-memory network's identity)."""
    return sha256_tensors(sorted(module.state_dict().items()))
