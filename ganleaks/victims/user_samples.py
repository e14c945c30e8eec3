"""A generated sample set the user brings (``victim=samples``; ``calibration=samples`` as the reference).

A released synthetic data set is all the full black-box and Monte-Carlo attacks ever see: the set
stands behind the generator interface as a
:class:`~ganleaks.victims.stored_samples.StoredSampleGenerator`, whose sample bank is the set
itself (or a seeded subset of ``setting.k``). It has no latent space and no discriminator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ganleaks.data.queries import Queries
from ganleaks.data.user_sets import QuerySet, Records, check_no_shared_records, check_same_scale, load_records
from ganleaks.errors import AttackConfigError, missing_key_message
from ganleaks.victims.base import Networks, Victim, sha256_tensors
from ganleaks.victims.stored_samples import StoredSampleGenerator
from ganleaks.victims.user_artefacts import UserArtefactVictim


class SampleSetVictim(UserArtefactVictim):
    """A generated sample set: an image folder, a ``.npy`` / ``.npz`` array or a CSV of rows.

    Args:
        path: where the samples are.
        value_range: ``[low, high]`` of stored array / CSV values (None: by dtype; floats ``[-1, 1]``).
        role: ``"victim"``, or ``"reference"`` for a calibration sample set (whose config keys are
            ``calibration.*``).
        queries, null_control, privacy: see :class:`UserArtefactVictim` (the victim only).
        path_key: the config key that gave ``path``, for messages (default ``victim.path`` /
            ``calibration.path``; ``calibration.sample_sets[1]`` for one of several reference sets).
    """

    kind = "samples"

    def __init__(
        self,
        path: str | None = None,
        value_range: Sequence[float] | None = None,
        *,
        role: str = "victim",
        queries: Mapping[str, Any] | QuerySet | None = None,
        null_control: bool = False,
        privacy: Mapping[str, Any] | None = None,
        path_key: str | None = None,
    ) -> None:
        super().__init__(role=role, queries=queries, null_control=null_control, privacy=privacy)
        self.path = path
        self.path_key = path_key or f"{self.key}.path"  # the config key of ``path``, for messages
        self.value_range = None if value_range is None else list(value_range)
        self._records: Records | None = None
        self._stored: Records | None = None

    @property
    def key(self) -> str:
        """The config node its keys live in, for messages."""
        return "victim" if self.role == "victim" else "calibration"

    @property
    def label(self) -> str:
        return str(Path(str(self.path)))

    def describe(self) -> str:
        return f"a generated sample set, {self.key}=samples"

    def model_name(self) -> str:
        return "samples"

    def offers(self) -> frozenset[str]:
        return frozenset({"generated samples"}) | self.offered_reference()

    def check_serves(self, setting_class: type, setting: str, where: str = "setting") -> None:
        """As every victim does, and the sample set itself is named (``victim.path`` / ``calibration.path``)."""
        super().check_serves(setting_class, setting, where)
        if self.path is None:
            raise AttackConfigError(missing_key_message(self.path_key))

    def missing_hint(self, missing: frozenset[str], setting: str) -> str:
        return (
            "a sample set has no latent space to search and no discriminator. With samples only, use "
            "setting=fullbb or setting=montecarlo (or setting=domias, with queries.reference); for whitebox or "
            "partialbb bring the generator itself (victim=generator victim.generator._target_=... victim.weights=...)"
        )

    def _load_records(self) -> Records:
        return load_records(
            str(self.path),
            value_range=self.value_range,
            what=self.path_key,
            options=self.key,
            convertible=False,  # used as stored: no resizing or mode conversion the user did not ask for
        )

    def _loaded(self) -> Records:
        """The samples as stored (loaded once), before any comparison with the queries."""
        if self._stored is None:
            if self.path is None:
                raise AttackConfigError(missing_key_message(self.path_key))
            self._stored = self._load_records()
        return self._stored

    def records(self, queries: Queries) -> Records:
        """The samples, loaded once and checked against the queries' shape and scale."""
        if self._records is None:
            records = self._loaded()
            if records.shape != queries.shape:
                raise AttackConfigError(
                    f"{self.path_key}={records.path} holds records of shape {records.shape} but the queries have "
                    f"shape {queries.shape}: {_shape_fix(records.shape, queries.shape)}"
                )
            check_same_scale(  # against every query record, not only the ones this run selected
                records.data,
                queries.sample_set.data,
                f"the samples of {self.path_key}",
                "the queries",
                f"Declare each set's stored range ({self.key}.value_range, queries.value_range) so both map onto "
                "[-1, 1] alike.",
            )
            self._records = records
        return self._records

    def check_disjoint(self, queries: Queries, victim: Victim | None = None) -> None:
        """As a reference: refuse samples that share records with the queries or the victim's samples.

        A calibration set holding the victim's own samples (or the member queries) cancels the very
        signal calibration should sharpen; the rule: :func:`~ganleaks.data.user_sets.check_no_shared_records`.
        """
        if self.role != "reference":
            return
        victim_samples = victim._loaded() if isinstance(victim, SampleSetVictim) else None
        names = queries.names or [str(i) for i in queries.ids.tolist()]
        check_no_shared_records(self._loaded(), victim_samples, queries.data, names, queries.labels, self.path_key)

    def check_fits(self, setting_class: type, queries: Queries) -> None:
        self.records(queries)
        self.check_reference(setting_class, queries)

    def networks(self, setting_class: type, queries: Queries) -> Networks:
        return Networks(generator=StoredSampleGenerator(self.records(queries).data))

    def identity(self, setting_class: type) -> dict:
        if self._records is None:
            raise RuntimeError("the samples are read by check_fits before the identity is asked")
        return {"samples": sha256_tensors([("samples", self._records.data)]), **self.reference_identity(setting_class)}


def _shape_fix(stored: tuple[int, ...], wanted: tuple[int, ...]) -> str:
    """What to do about samples of shape ``stored`` beside queries of shape ``wanted``."""
    if len(stored) == 3 and len(wanted) == 3:
        parts = [f"queries.resolution={stored[-1]}"] if stored[1:] != wanted[1:] else []
        parts += [f"queries.channels={stored[0]}"] if stored[0] != wanted[0] else []
        return (
            "a sample set is used as stored (never resized or converted): save the samples at the queries' size "
            f"and channels, or load the queries at the samples' shape ({' '.join(parts)})"
        )
    return "bring samples with the queries' number of columns (the same features, in the same order)"
