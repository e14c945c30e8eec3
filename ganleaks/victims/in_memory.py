"""Victims given as Python objects (``ganleaks.audit``): a generator module, or a sample set as an array.

They are the user's generator and sample set kinds with the files replaced by objects: the same
checks, the same scoring; their identity is the contents of the objects (a module's state dict,
the samples' values), not a file's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ganleaks.data.queries import Queries
from ganleaks.data.user_sets import QuerySet, Records
from ganleaks.victims.external_networks import ExternalDiscriminator, ExternalGenerator, wrap_external_generator
from ganleaks.victims.user_generator import UserGeneratorVictim, state_dict_hash
from ganleaks.victims.user_samples import SampleSetVictim


class InMemoryGeneratorVictim(UserGeneratorVictim):
    """A generator (and discriminator) given as ``nn.Module`` objects (``conf/victim/python_generator.yaml``).

    Args:
        generator: the user's generator module (or an already wrapped ``ExternalGenerator``).
        discriminator: the user's discriminator module, or None.
        Others: as :class:`~ganleaks.victims.user_generator.UserGeneratorVictim` declares them.
    """

    kind = "generator"

    def __init__(
        self,
        generator: nn.Module | None = None,
        latent_dim: int | None = None,
        *,
        role: str = "victim",
        latent_distribution: str = "normal",
        latent_range: Sequence[float] = (-1.0, 1.0),
        output_range: Sequence[float] = (-1.0, 1.0),
        discriminator: nn.Module | None = None,
        discriminator_input_range: Sequence[float] = (-1.0, 1.0),
        queries: Mapping[str, Any] | QuerySet | None = None,
        null_control: bool = False,
        privacy: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            generator,
            None,
            latent_dim,
            role=role,
            latent_distribution=latent_distribution,
            latent_range=latent_range,
            output_range=output_range,
            discriminator=discriminator,
            discriminator_input_range=discriminator_input_range,
            queries=queries,
            null_control=null_control,
            privacy=privacy,
        )

    @property
    def label(self) -> str:
        return "<python object>"

    def describe(self) -> str:
        return "your generator (a Python object)"

    def model_name(self) -> str:
        given = self.generator_spec if self.generator_spec is not None else self.discriminator_spec
        return type(given).__name__

    def check_fits(self, setting_class: type, queries: Queries) -> None:
        """No weights file to find on disk (the modules are given); the reference records, if the setting reads them."""
        self.check_reference(setting_class, queries)

    def _weights_given(self) -> object:
        return self.generator_spec

    def _generator(self, queries: Queries) -> nn.Module:
        if isinstance(self.generator_spec, ExternalGenerator):
            return self.generator_spec
        return wrap_external_generator(
            self.generator_spec,
            int(self.latent_dim),  # type: ignore[arg-type]
            latent_distribution=self.latent_distribution,
            latent_range=self.latent_range,
            output_range=self.output_range,
            data_shape=queries.shape,
        )

    def _discriminator(self, queries: Queries) -> nn.Module:
        if isinstance(self.discriminator_spec, ExternalDiscriminator):
            return self.discriminator_spec
        return ExternalDiscriminator(self.discriminator_spec, queries.shape, self.discriminator_input_range)

    def _declared(self) -> dict:
        declared = super()._declared()
        # the objects: their contents are hashed (_weights_hash), their classes named here
        declared.update(generator=_class_name(self.generator_spec), discriminator=_class_name(self.discriminator_spec))
        return declared

    def _weights_hash(self, part: str) -> str:
        return state_dict_hash(self.generator_spec if part == "generator" else self.discriminator_spec)


def _class_name(module: Any) -> str | None:
    """``module.Class`` of a network given as an object (None: none given)."""
    if module is None:
        return None
    inner = getattr(module, "network", None)  # an External* wrapper: the user's module inside it
    kind = type(inner if isinstance(inner, nn.Module) else module)
    return f"{kind.__module__}.{kind.__qualname__}"


class InMemorySampleSetVictim(SampleSetVictim):
    """A generated sample set given as an array (``conf/victim/python_samples.yaml``), or a reference set.

    Args:
        samples: the records, already in ``[-1, 1]`` (:func:`~ganleaks.data.user_sets.records_from_array`).
    """

    def __init__(
        self,
        samples: Records,
        *,
        role: str = "victim",
        queries: Mapping[str, Any] | QuerySet | None = None,
        null_control: bool = False,
        privacy: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(str(samples.path), role=role, queries=queries, null_control=null_control, privacy=privacy)
        self.given = samples

    def _load_records(self) -> Records:
        return self.given
