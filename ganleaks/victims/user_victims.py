"""The attack plan for a victim the user brings (``victim=samples`` / ``victim=generator``).

A ``run`` victim (a model ``train.py`` trained here) is planned by :mod:`.preflight` from its run
folder and membership split. A user's victim has neither: its queries are the user's member and
non-member records (``queries.*``, :mod:`ganleaks.data.user_sets`), its model a generated sample
set (:mod:`.stored_samples`) or the user's own networks (:mod:`ganleaks.victims.external_networks`). This
module checks what only such a victim needs (the setting fits the victim's kind, the queries and
the sample set fit together, calibration), and returns the same :class:`~.preflight.AttackPlan`,
so loading, scoring and writing run unchanged.

Query ids are the user's strings (paths, row numbers, an id column); the engines and batch files
key them by :func:`~ganleaks.data.user_sets.stable_key`, and ``scores.csv`` shows the strings.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganleaks.data.user_sets import QuerySet, Records, check_same_scale, load_query_set, load_records
from ganleaks.orchestration.plan import (
    AttackConfigError,
    AttackPlan,
    ModelRun,
    check_distance,
    check_resumable,
    check_setting_keys,
    choose_queries,
    resume_key,
)
from ganleaks.settings.base import AttackEngine, engine_class
from ganleaks.victims.stored_samples import StoredSampleGenerator

log = logging.getLogger(__name__)

USER_KINDS = ("samples", "generator")
#: Generated samples compared with the queries' scale (check_same_scale) after an external generator loads.
SCALE_PROBES = 64


@dataclass
class UserArtefacts:
    """Objects given in Python (``ganleaks.audit``) in place of the files the config names.

    Attributes:
        generator: the user's generator, already built and loaded (an ``nn.Module``).
        discriminator: the user's discriminator, likewise.
        samples: a generated sample set, as :class:`~ganleaks.data.user_sets.Records`.
        query_set: the members and non-members.
        reference_samples: a reference sample set for ``calibration=samples``.
    """

    generator: nn.Module | None = None
    discriminator: nn.Module | None = None
    samples: Records | None = None
    query_set: QuerySet | None = None
    reference_samples: Records | None = None


@dataclass
class UserModel:
    """One model of a user's victim plan: how its networks are built (``ModelRun.user``).

    Attributes:
        kind: ``"samples"`` or ``"generator"``.
        node: the config node describing it (``victim``, or ``calibration`` for a reference set).
        samples: a sample set's records, ``(n, *shape)`` in ``[-1, 1]``.
        generator, discriminator: networks given in Python (else built from ``node``).
    """

    kind: str
    node: DictConfig
    samples: Tensor | None = None
    generator: nn.Module | None = None
    discriminator: nn.Module | None = None

    def networks(self, cls: type[AttackEngine], queries: Tensor) -> tuple[nn.Module | None, nn.Module | None]:
        """The generator and discriminator ``cls`` needs, built, loaded and checked against the queries."""
        if self.kind == "samples":
            return StoredSampleGenerator(self.samples), None  # type: ignore[arg-type]  # planned with samples
        from ganleaks.victims.external_networks import (
            ExternalDiscriminator,
            ExternalGenerator,
            load_external_discriminator,
            load_external_generator,
            wrap_external_generator,
        )

        shape = tuple(queries.shape[1:])
        generator = discriminator = None
        if cls.needs_generator:
            if isinstance(self.generator, ExternalGenerator):
                generator = self.generator
            elif self.generator is not None:  # a module given in Python (ganleaks.audit)
                generator = wrap_external_generator(
                    self.generator,
                    int(self.node.latent_dim),
                    latent_distribution=self.node.latent_distribution,
                    latent_range=list(self.node.latent_range),
                    output_range=list(self.node.output_range),
                    data_shape=shape,
                )
            else:
                generator = load_external_generator(
                    self.node.generator,
                    self.node.weights,
                    int(self.node.latent_dim),
                    latent_distribution=self.node.latent_distribution,
                    latent_range=list(self.node.latent_range),
                    output_range=list(self.node.output_range),
                    data_shape=shape,
                    weights_key=self.node.get("weights_key"),
                )
            if isinstance(generator, ExternalGenerator):
                with torch.no_grad():
                    z = torch.randn(SCALE_PROBES, generator.latent_dim, generator=torch.Generator().manual_seed(0))
                    check_same_scale(
                        generator(z),
                        queries,
                        "the generator's samples (mapped from victim.output_range)",
                        "the queries",
                        "Set victim.output_range to the range the generator produces ([0,1] for a sigmoid output, "
                        "[-1,1] for tanh), and queries.value_range to the range the query files are stored in.",
                    )
        if cls.needs_discriminator:
            if isinstance(self.discriminator, ExternalDiscriminator):
                discriminator = self.discriminator
            elif self.discriminator is not None:
                discriminator = ExternalDiscriminator(
                    self.discriminator, shape, list(self.node.discriminator_input_range)
                )
            else:
                discriminator = load_external_discriminator(
                    self.node.discriminator,
                    self.node.discriminator_weights,
                    shape,
                    input_range=list(self.node.discriminator_input_range),
                )
        return generator, discriminator


def is_user_victim(cfg: DictConfig) -> bool:
    """The victim is the user's (``victim=samples`` / ``victim=generator``), not a training run of ours."""
    return OmegaConf.select(cfg, "victim.kind", default="run") != "run"


def _query_set(cfg: DictConfig, artefacts: UserArtefacts) -> QuerySet:
    if artefacts.query_set is not None:
        return artefacts.query_set
    q = cfg.queries
    missing = [f"queries.{k}" for k in ("members", "nonmembers") if q.get(k) is None]
    if missing:
        raise AttackConfigError(
            f"victim={cfg.victim.kind} needs the records to query: set {' and '.join(missing)} to the members "
            "(the records the victim was trained on) and the non-members (held-out records of the same "
            "distribution), each an image folder, a .npy/.npz array or a .csv file"
        )
    return load_query_set(
        q.members,
        q.nonmembers,
        resolution=q.get("resolution"),
        channels=q.get("channels"),
        value_range=None if q.get("value_range") is None else list(q.value_range),
        id_column=q.get("id_column"),
        allow_identical=bool(q.get("allow_identical", False)),
    )


def _check_kind_serves(kind: str, cls: type[AttackEngine], cfg: DictConfig, where: str) -> None:
    """Refuse a setting the victim's kind cannot serve, saying what to bring instead."""
    setting = cfg.setting.get("name")
    if kind == "samples" and (cls.needs_latent_space or cls.needs_discriminator):
        raise AttackConfigError(
            f"setting={setting} cannot attack a generated sample set ({where}): it needs "
            f"{'a discriminator' if cls.needs_discriminator else 'a generator to search'}. With samples only, use "
            "setting=fullbb or setting=montecarlo; for whitebox or partialbb bring the generator itself "
            "(victim=generator victim.generator._target_=... victim.weights=...)"
        )
    if kind == "generator" and cls.needs_discriminator and OmegaConf.select(cfg, "victim.discriminator") is None:
        raise AttackConfigError(
            f"setting={setting} scores queries with the victim's discriminator, and victim.discriminator is not "
            "set: bring it with victim.discriminator._target_=mypkg.nets.Discriminator (plus its keyword arguments) "
            "and victim.discriminator_weights=D.safetensors, or choose a generator setting (whitebox, partialbb, "
            "fullbb, montecarlo)"
        )


def _sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_tensors(tensors) -> str:
    digest = hashlib.sha256()
    for name, tensor in tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _model_hashes(model: UserModel, cls: type[AttackEngine]) -> dict:
    """What identifies the model's results in the resume key: its weights files' or samples' contents."""
    if model.kind == "samples":
        return {"samples": _sha256_tensors([("samples", model.samples)])}
    hashes = {}
    if cls.needs_generator:
        hashes["generator"] = (
            _sha256_tensors(sorted(model.generator.state_dict().items()))
            if model.generator is not None
            else _sha256_file(model.node.weights)
        )
    if cls.needs_discriminator:
        hashes["discriminator"] = (
            _sha256_tensors(sorted(model.discriminator.state_dict().items()))
            if model.discriminator is not None
            else _sha256_file(model.node.discriminator_weights)
        )
    return hashes


def _check_weights_given(model: UserModel, cls: type[AttackEngine]) -> None:
    for needed, net, key in (
        (cls.needs_generator, model.generator, "weights"),
        (cls.needs_discriminator, model.discriminator, "discriminator_weights"),
    ):
        path = model.node.get(key)
        if needed and net is None and (path is None or not Path(path).expanduser().is_file()):
            raise FileNotFoundError(
                f"victim.{key}={path} does not exist; pass the .safetensors or state_dict file of your network"
            )


def _sample_records(node: DictConfig, given: Records | None, key: str, shape: tuple, queries: Tensor) -> Tensor:
    """A generated sample set, loaded and checked against the queries' shape and scale."""
    records = given
    if records is None:
        records = load_records(
            node.path,
            value_range=None if node.get("value_range") is None else list(node.value_range),
            resolution=shape[-1] if len(shape) == 3 else None,
            channels=shape[0] if len(shape) == 3 else None,
            what=f"{key}.path",
            options=key,
        )
    if records.shape != shape:
        raise AttackConfigError(
            f"{key}.path={records.path} holds records of shape {records.shape} but the queries have shape {shape}: "
            "bring samples of the queries' size and channels (or load the queries with queries.resolution / "
            "queries.channels to match)"
        )
    check_same_scale(
        records.data,
        queries,
        f"the samples of {key}.path",
        "the queries",
        f"Declare each set's stored range ({key}.value_range, queries.value_range) so both map onto [-1, 1] alike.",
    )
    return records.data


def plan_user_attack(cfg: DictConfig, out_dir: Path, artefacts: UserArtefacts | None = None) -> AttackPlan:
    """Check the user's victim and queries once, and plan the attack (nothing is scored or written).

    Raises (each saying what to change): :class:`AttackConfigError`, ``ValueError`` from the
    record loaders, ``FileNotFoundError``.
    """
    artefacts = artefacts or UserArtefacts()
    kind = str(cfg.victim.kind)
    if kind not in USER_KINDS:
        raise AttackConfigError(f"victim.kind={kind!r}: choose victim=run, victim=samples or victim=generator")
    victim_class = engine_class(cfg.setting)
    check_setting_keys(cfg.setting, victim_class, "setting")
    _check_kind_serves(kind, victim_class, cfg, "victim=samples")
    if cfg.attack.get("null_control"):
        raise AttackConfigError("attack.null_control applies to victim=run; for your own victim, set it to false")
    query_set = _query_set(cfg, artefacts)
    shape = query_set.shape
    victim = UserModel(kind, cfg.victim, generator=artefacts.generator, discriminator=artefacts.discriminator)
    if kind == "samples":
        victim.samples = _sample_records(cfg.victim, artefacts.samples, "victim", shape, query_set.data)
    else:
        _check_weights_given(victim, victim_class)
    models: dict[str, tuple[UserModel, DictConfig, type[AttackEngine], Path]] = {
        "victim": (victim, cfg.setting, victim_class, _victim_label(cfg, kind, artefacts))
    }
    reference_attack = None
    if cfg.calibration.enabled:
        models["reference"] = _reference_model(cfg, victim_class, artefacts, query_set)
        reference_attack = "setting"
    if any(cls.reconstructs for _, _, cls, _ in models.values()):
        check_distance(cfg, query_set.sample_set())
    sample_set = query_set.sample_set()
    fingerprint = sample_set.fingerprint()
    member_keys = query_set.keys[query_set.labels == 1]
    nonmember_keys = query_set.keys[query_set.labels == 0]
    ids, labels = choose_queries(
        member_keys, nonmember_keys, cfg.attack.num_queries, cfg.seed, balanced=False, where="the query sets"
    )
    runs = {}
    for role, (model, setting, cls, label) in models.items():
        key = resume_key(cfg, setting, cls.reconstructs, label, fingerprint, model_sha256=_model_hashes(model, cls))
        runs[role] = ModelRun(role, label, setting, cls, out_dir / "batches" / role, key, user=model)
        check_resumable(runs[role].batch_dir, runs[role].resume_key)
    queries = sample_set.data[sample_set.positions(ids)]
    return AttackPlan(
        sample_set,
        ids,
        labels,
        queries,
        runs,
        reference_attack,
        query_names=query_set.ids_of(ids),
        facts={
            "data": query_set.name,
            "model": _model_label(cfg, kind, artefacts),
            "train_size": int((query_set.labels == 1).sum()),
            "victim_kind": kind,
        },
    )


def _victim_label(cfg: DictConfig, kind: str, artefacts: UserArtefacts) -> Path:
    """What the victim is, for messages and ``victim_run_dir`` in the facts: its set or weights file."""
    if kind == "samples":
        return Path(artefacts.samples.path) if artefacts.samples is not None else Path(cfg.victim.path)
    if artefacts.generator is not None or artefacts.discriminator is not None:
        return Path("<python object>")
    weights = cfg.victim.get("weights") if cfg.victim.get("weights") not in (None, "???") else None
    return Path(weights or cfg.victim.get("discriminator_weights") or "<none>")


def _model_label(cfg: DictConfig, kind: str, artefacts: UserArtefacts) -> str:
    if kind == "samples":
        return "samples"
    if artefacts.generator is not None:
        return type(artefacts.generator).__name__
    target = OmegaConf.select(cfg, "victim.generator._target_", throw_on_missing=False)
    if target in (None, "???"):
        target = OmegaConf.select(cfg, "victim.discriminator._target_", default="generator")
    return str(target)


def _reference_model(cfg: DictConfig, victim_class: type[AttackEngine], artefacts: UserArtefacts, query_set: QuerySet):
    """The calibration reference of a user's victim: a reference sample set (calibration=samples)."""
    if cfg.calibration.name != "samples":
        raise AttackConfigError(
            f"calibration={cfg.calibration.name} calibrates with a reference model trained here on the split's "
            "reference part, whose records are numbered in that split and cannot be compared with your query ids "
            "(or checked for overlap with your queries). For your own victim, calibrate with a sample set "
            "generated by a reference model that never saw a query: calibration=samples calibration.path=DIR "
            "(fullbb, montecarlo), or attack with calibration=none"
        )
    _check_kind_serves("samples", victim_class, cfg, "calibration=samples")
    model = UserModel("samples", cfg.calibration)
    model.samples = _sample_records(cfg.calibration, artefacts.reference_samples, "calibration", query_set.shape,
                                    query_set.data)  # fmt: skip
    label = artefacts.reference_samples.path if artefacts.reference_samples is not None else cfg.calibration.path
    return model, cfg.setting, victim_class, Path(label)
