"""A model ``train.py`` trained here: a run folder with its exported networks and membership split."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor

from ganleaks.attacks.nearest_neighbor import NonFiniteOutputError
from ganleaks.data.canaries import load_canaries
from ganleaks.data.loading import load_sample_set, read_trained_on, recorded_data_config
from ganleaks.data.queries import Queries, select_queries
from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import MembershipSplit, load_manifest
from ganleaks.errors import AttackConfigError, setting_hint
from ganleaks.models.export import load_discriminator, load_generator, read_network_spec
from ganleaks.victims.base import Networks, PrivacyStatement, Victim, sha256_tensors
from ganleaks.victims.output_checks import check_discriminator_outputs, check_generator_outputs

log = logging.getLogger(__name__)

PRIVACY_NAME = "privacy.json"  # a DP run's budget, written by training


class ReferenceOverlapError(ValueError):
    """The reference model was trained on samples that are being queried."""


def _read_object(path: Path) -> dict:
    """The JSON object in ``path``; empty when missing or unreadable (with a warning)."""
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log.warning("cannot read %s (%s); ignoring it", path, error)
        return {}
    return value if isinstance(value, dict) else {}


class TrainingRunVictim(Victim):
    """A training run of ours (``victim=run``, and the reference model of ``calibration=reference``).

    Its queries come from its own membership split (``manifest.json``), its networks from the
    exported ``generator`` / ``discriminator`` (safetensors, rebuilt from an allow-list), its privacy
    statement from ``privacy.json`` (the accountant's epsilon of a DP run).

    Args:
        run_dir: the training run folder.
        data: the ``data`` config the run was trained with (the attack's ``data``).
        model: the model name the config names (the report's fallback when the run recorded none).
        derived_run_dir: the folder the attack's overrides name; when ``run_dir`` is that folder,
            the run's latent size must match ``expected_latent_dim`` (the folder name does not encode it).
        expected_latent_dim: the latent size the attack's ``model`` config says.
        privacy_enabled: the attack's config says the victim was trained with DP.
        null_control: attack a model that never saw the queries (its AUC is the chance level).
        queries: the ``queries`` config; a training run is queried from its own split, so
            user query files given beside it are refused.
        audit: query the run's canaries (``canaries.json``) instead of its split: members = the
            canaries its coins included (``audit=canaries``, a one-run privacy audit).
        canaries_root: where out-of-distribution canaries are read from (``canaries.root``).
    """

    kind = "run"

    def __init__(
        self,
        run_dir: str,
        data: Mapping[str, Any],
        *,
        role: str = "victim",
        model: str | None = None,
        derived_run_dir: str | None = None,
        expected_latent_dim: int | None = None,
        privacy_enabled: bool = False,
        null_control: bool = False,
        queries: Mapping[str, Any] | None = None,
        audit: bool = False,
        canaries_root: str | None = None,
    ) -> None:
        super().__init__(role)
        self.audit = bool(audit)
        self.canaries_root = canaries_root
        self.run_dir = Path(run_dir)
        self.data = OmegaConf.create(dict(data)) if not isinstance(data, DictConfig) else data
        self.model = model
        self.check_latent = derived_run_dir is not None and Path(derived_run_dir) == self.run_dir
        self.expected_latent_dim = expected_latent_dim
        self.privacy_enabled = bool(privacy_enabled)
        self.null_control = bool(null_control)
        if (queries or {}).get("reference") is not None:
            raise AttackConfigError(
                "queries.reference given, but victim=run (the default) takes its reference records from the "
                "training run's own split (the reference part of its manifest.json, never a member or a non-member): "
                "drop queries.reference, or attack your own artefacts with victim=samples or victim=generator"
            )
        given = [f"queries.{k}" for k in ("members", "nonmembers") if (queries or {}).get(k) is not None]
        if given:
            raise AttackConfigError(
                f"{' and '.join(given)} given, but victim=run (the default) queries the training run's own split: "
                "to attack your own artefacts choose victim=samples (a generated sample set, victim.path=...) or "
                "victim=generator (your generator, victim.generator._target_=... victim.weights=...)"
            )
        self._sample_set: SampleSet | None = None
        self._reference: tuple[Tensor, Tensor] | None = None  # (ids, records) of the split's reference part
        self._needed: list[str] = []  # the networks the setting reads (check_serves)
        self._specs_checked = False

    @property
    def label(self) -> str:
        return str(self.run_dir)

    def describe(self) -> str:
        return f"the training run {self.run_dir}"

    def offers(self) -> frozenset[str]:
        parts = {part for part in ("generator", "discriminator") if (self.run_dir / f"{part}.json").is_file()}
        offered = {"generated samples", "generator"} if "generator" in parts else set()
        # its split's reference part (checked non-empty where it is read: reference_records)
        return frozenset(offered | ({"discriminator"} & parts) | {"reference records"})

    def check_serves(self, setting_class: type, setting: str, where: str = "setting") -> None:
        """The run folder exists and exported the networks the setting needs (a missing one: how to finish it)."""
        exported = self._exported()
        self._needed = self._needed_parts(setting_class)
        if not self.run_dir.is_dir():
            raise FileNotFoundError(
                f"victim run folder {self.run_dir} does not exist. Train it first with the same overrides "
                "(e.g. `python train.py data.train_size=...`), or point victim.run_dir=PATH at a training run"
            )
        for part in self._needed_parts(setting_class):
            if part not in exported:
                raise FileNotFoundError(
                    f"{self.run_dir} has no exported {part} ({part}.json / {part}.safetensors): the training run did "
                    "not finish, or this setting needs a model part the publisher did not release. Re-run the same "
                    "train.py command to finish it"
                )

    def _exported(self) -> list[str]:
        """The networks the run exported; a reference run that exported none is refused (how to train it)."""
        exported = [part for part in ("generator", "discriminator") if (self.run_dir / f"{part}.json").is_file()]
        if self.role == "reference" and not exported:
            raise FileNotFoundError(
                f"no trained reference model in {self.run_dir}. Train it on the split's reference part, e.g. "
                "`python train.py data.part=reference model=<setting.reference_model>` with the same data and "
                "seed overrides, or set calibration.reference_run_dir, or use calibration=none"
            )
        return exported

    @staticmethod
    def _needed_parts(setting_class: type) -> list[str]:
        needs = {
            "generator": getattr(setting_class, "needs_generator", False),
            "discriminator": getattr(setting_class, "needs_discriminator", False),
        }
        return [part for part, needed in needs.items() if needed]

    def sample_set(self) -> SampleSet:
        """The data the run was split from (loaded once)."""
        if self._sample_set is None:
            self._sample_set = load_sample_set(self.data)
        return self._sample_set

    def queries(self, num_queries: int | None, seed: int) -> Queries:
        sample_set = self.sample_set()
        self._check_specs(sample_set)  # before the manifest: a shape mismatch says more than a fingerprint
        manifest = load_manifest(self.run_dir, sample_set)  # same data, same preprocessing (fingerprint)
        trained = read_trained_on(self.run_dir)
        if trained.get("part") != "members" and not self.null_control:
            raise AttackConfigError(
                f"{self.run_dir} is a model trained on the {trained.get('part')!r} part, not a victim: point "
                "victim.run_dir at a run trained with data.part=members (a reference model belongs in "
                "calibration.reference_run_dir), or set attack.null_control=true to measure the attack's "
                "chance level on a model that never saw the queries"
            )
        if self.audit:
            return self._canary_queries(sample_set, manifest, num_queries)
        ids, labels = select_queries(manifest, num_queries, seed)
        if self.null_control:
            seen = torch.isin(ids, torch.tensor(trained.get("ids", []), dtype=torch.int64))
            if seen.any():
                raise AttackConfigError(
                    f"attack.null_control=true needs a model that never saw the queries, but {self.run_dir} trained "
                    f"on {int(seen.sum())} of them; use a model trained with data.part=reference"
                )
        data = sample_set.data[sample_set.positions(ids)]
        return Queries(sample_set, ids, labels, data, manifest.fingerprint, split=manifest)

    def _canary_queries(self, sample_set: SampleSet, manifest: MembershipSplit, num_queries: int | None) -> Queries:
        """Every canary of the run, labelled by its coin (1 = included in training), sorted by id."""
        if num_queries is not None or self.null_control:
            raise AttackConfigError(
                "audit=canaries queries every canary of the run (its bound counts all m): drop "
                f"{'attack.num_queries' if num_queries is not None else 'attack.null_control=true'}"
            )
        canaries = load_canaries(self.run_dir, sample_set, manifest, self.canaries_root)
        order = torch.argsort(canaries.ids)
        ids, labels = canaries.ids[order], canaries.included[order].to(torch.int64)
        data = canaries.records.data[order]
        fingerprint = hashlib.sha256(f"{manifest.fingerprint}:{canaries.fingerprint()}".encode()).hexdigest()
        return Queries(sample_set, ids, labels, data, fingerprint, split=manifest)

    def check_disjoint(self, queries: Queries, victim: Victim | None = None) -> None:
        """Refuse a reference model that did not train on this data, or trained on any queried id."""
        if queries.split is None:
            raise AttackConfigError(
                "calibration=reference calibrates with a reference model trained here on the split's "
                "reference part, whose records are numbered in that split and cannot be compared with your query "
                "ids (or checked for overlap with your queries). For your own victim, calibrate with a sample set "
                "generated by a reference model that never saw a query: calibration=samples calibration.path=DIR "
                "(fullbb, montecarlo), or attack with calibration=none"
            )
        self._exported()
        load_manifest(self.run_dir, queries.sample_set)  # same dataset, same preprocessing (fingerprint)
        trained = torch.tensor(read_trained_on(self.run_dir)["ids"], dtype=torch.int64)
        overlap = torch.isin(queries.ids, trained)
        if overlap.any():
            raise ReferenceOverlapError(
                f"the reference model in {self.run_dir} was trained on {int(overlap.sum())} of the queried samples "
                f"(first ids: {queries.ids[overlap][:5].tolist()}); calibration needs a reference trained on data "
                "disjoint from the queries: train it with data.part=reference"
            )

    def check_fits(self, setting_class: type, queries: Queries) -> None:
        self._needed = self._needed_parts(setting_class)
        self._check_specs(queries.sample_set)
        if getattr(setting_class, "needs_reference_records", False):
            self.reference_records(queries)

    def reference_records(self, queries: Queries) -> Tensor:
        """The split's reference part (what the calibration reference model trains on), disjoint from the queries."""
        if self._reference is None:
            if queries.split is None:
                raise AttackConfigError("the queries come from no split of this run, so it has no reference records")
            ids = queries.split.ids("reference")
            if len(ids) == 0:
                raise AttackConfigError(
                    f"the split of {self.run_dir} has no reference part (data.reference_size=0), which this setting "
                    "fits its reference density on: train the victim with data.reference_size > 0"
                )
            shared = torch.isin(ids, queries.ids)
            if shared.any():  # a split's parts are disjoint; canaries are checked disjoint from it when drawn
                raise AttackConfigError(
                    f"{int(shared.sum())} records of the split's reference part of {self.run_dir} are queried "
                    f"(first ids: {ids[shared][:5].tolist()}); the reference data must be disjoint from the queries"
                )
            sample_set = queries.sample_set
            self._reference = (ids, sample_set.data[sample_set.positions(ids)])
        return self._reference[1]

    def _check_specs(self, sample_set: SampleSet) -> None:
        """The data shape (and, for a victim found from the overrides, the latent size) its networks record."""
        if self._specs_checked:
            return
        for part in self._needed:
            spec = read_network_spec(self.run_dir, part)
            if tuple(spec["data_shape"]) != tuple(sample_set.shape):
                raise AttackConfigError(
                    f"the {self.role} in {self.run_dir} was trained on {spec['data_kind']} data of shape "
                    f"{tuple(spec['data_shape'])}, but {sample_set.name} is loaded now with shape "
                    f"{tuple(sample_set.shape)}: attack with the data config the {self.role} was trained with (same "
                    "data=..., data.source.resolution, ...)"
                )
            latent_dim = self.expected_latent_dim
            if self.check_latent and latent_dim is not None and int(spec["latent_dim"]) != int(latent_dim):
                raise AttackConfigError(
                    f"the victim found in {self.run_dir} has latent_dim {spec['latent_dim']}, but this attack says "
                    f"model.latent_dim={latent_dim}: the run folder name does not encode the latent size, so this "
                    "is another victim. Drop the override, or train yours into its own folder (python train.py "
                    f"model.latent_dim={latent_dim} hydra.run.dir=DIR) and pass {setting_hint('victim.run_dir', 'DIR')}"
                )
        self._specs_checked = True

    def networks(self, setting_class: type, queries: Queries) -> Networks:
        parts = self._needed_parts(setting_class)
        networks = Networks()
        try:
            if "generator" in parts:
                networks.generator = load_generator(self.run_dir)
                check_generator_outputs(networks.generator, self.run_dir, f"{self.role} generator")
            if "discriminator" in parts:
                networks.discriminator = load_discriminator(self.run_dir)
                check_discriminator_outputs(
                    networks.discriminator, queries.sample_set.data, self.run_dir, f"{self.role} discriminator"
                )
        except NonFiniteOutputError as error:
            raise AttackConfigError(str(error)) from None
        return networks

    def identity(self, setting_class: type) -> dict:
        """The sha256 of every exported weights file in the run folder (and of the reference part's ids,
        for a setting that reads them: the split's data is the queries' fingerprint already)."""
        hashes = {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.run_dir.glob("*.safetensors"))
        }
        if self._reference is not None and getattr(setting_class, "needs_reference_records", False):
            hashes["reference_records"] = sha256_tensors([("ids", self._reference[0])])
        return hashes

    def privacy(self) -> PrivacyStatement:
        budget = _read_object(self.run_dir / PRIVACY_NAME)
        if not budget and not self.privacy_enabled:
            return PrivacyStatement("none")
        return PrivacyStatement(
            "dp",
            epsilon=budget.get("epsilon"),
            delta=budget.get("delta"),
            noise_multiplier=budget.get("noise_multiplier"),
        )

    def facts(self) -> dict:
        """The run's folder, data, model (its ``trained_on.json`` record first), size and privacy budget."""
        return {
            "victim_run_dir": self.label,
            "data": self.data.get("name"),
            "model": _read_object(self.run_dir / "trained_on.json").get("model") or self.model,
            "train_size": self.data.get("train_size"),
            **self.privacy().facts(),
        }

    @classmethod
    def adapt_config(cls, cfg: DictConfig, overridden: set[str]) -> DictConfig:
        """``cfg`` with the ``data`` settings the run was trained with, when the user named the run.

        An attack given ``victim.run_dir=PATH`` on the command line attacks that training run, which
        records its data settings (``trained_on.json``; older runs: their Hydra ``config.yaml``): they
        replace the composed ``data`` (the default data) unless the command line also sets ``data=...``
        or a ``data.*`` key, which then stands (and is refused later if it does not fit the victim). A
        victim folder found from the overrides (the default ``victim.run_dir``) is named by those same
        data settings, so nothing is taken from it.
        """
        if "victim.run_dir" not in overridden:
            return cfg
        victim_dir = Path(cfg.victim.run_dir)
        given = sorted(key for key in overridden if key == "data" or key.startswith("data."))
        if given:
            log.info("data settings from the command line (%s), not from the victim's record", ", ".join(given))
            return cfg
        recorded = recorded_data_config(victim_dir)
        if recorded is None:
            log.info("data settings: %s records none; using data=%s", victim_dir, cfg.data.get("name"))
            return cfg
        data, source = recorded
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.data = data
        log.info("data settings from the victim's record %s (data=%s)", source, data.get("name"))
        return cfg
