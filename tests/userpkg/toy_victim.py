"""A victim kind added outside ganleaks: this class and one YAML file (``conf/victim/bundle.yaml`` here).

An "audit bundle" is one safetensors file a publisher hands over: the generated samples they
release, and the member and non-member records they declare. It offers samples only (the
full black-box and Monte-Carlo settings), names its own queries, and is identified by its bytes.
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from ganleaks.data.queries import Queries, choose_queries
from ganleaks.data.sample_set import SampleSet
from ganleaks.victims.base import Networks, Victim, sha256_file
from ganleaks.victims.stored_samples import StoredSampleGenerator


class BundleVictim(Victim):
    """``samples``, ``members`` and ``nonmembers`` tensors in one ``.safetensors`` file, in ``[-1, 1]``."""

    kind = "bundle"

    def __init__(self, path: str, *, role: str = "victim") -> None:
        super().__init__(role)
        self.path = path

    @property
    def label(self) -> str:
        return str(self.path)

    def offers(self) -> frozenset[str]:
        return frozenset({"generated samples"})

    def missing_hint(self, missing: frozenset[str], setting: str) -> str:
        return "a bundle holds samples only: use setting=fullbb or setting=montecarlo"

    def _tensors(self) -> dict[str, torch.Tensor]:
        return load_file(self.path)

    def queries(self, num_queries: int | None, seed: int) -> Queries:
        tensors = self._tensors()
        members, nonmembers = tensors["members"], tensors["nonmembers"]
        data = torch.cat([members, nonmembers])
        sample_set = SampleSet(data, torch.arange(len(data)), "bundle", "image")
        ids, labels = choose_queries(
            torch.arange(len(members)), torch.arange(len(members), len(data)), num_queries, seed, balanced=False
        )
        return Queries(sample_set, ids, labels, data[ids], sample_set.fingerprint())

    def networks(self, setting_class: type, queries: Queries) -> Networks:
        return Networks(generator=StoredSampleGenerator(self._tensors()["samples"]))

    def identity(self, setting_class: type) -> dict:
        return {"bundle": sha256_file(self.path)}

    def facts(self) -> dict:
        n_members = len(self._tensors()["members"])
        return {
            "victim_run_dir": self.label,
            "data": "bundle",
            "model": "bundle-samples",
            "train_size": n_members,
            **self.privacy().facts(),
            "victim_kind": self.kind,
        }
