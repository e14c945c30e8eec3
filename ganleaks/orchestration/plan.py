"""Every fact an attack depends on, checked once, before any model is loaded or any query scored.

:func:`check_inputs` reads what the run folders record (JSON, manifests; no weights) and returns
an :class:`AttackPlan`: the queries, and for each model to score (the victim, and the reference
model when calibrating) its run folder, setting, engine class and batch folder. Loading, scoring
and writing trust the plan and check none of these facts again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ganleaks.data.loading import load_sample_set, read_trained_on
from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import MembershipSplit, load_manifest
from ganleaks.io import UnsafeFileError, atomic_write_text, load_weights_only
from ganleaks.models.export import read_network_spec
from ganleaks.orchestration.calibration import check_reference_run
from ganleaks.settings.base import AttackConfigError, AttackEngine, check_setting, engine_class

log = logging.getLogger(__name__)

# How calibration reconstructs on the reference model (calibration.reference_attack).
REFERENCE_ATTACKS = ("whitebox", "setting")
RESUME_KEY_NAME = "attack_key.json"


@dataclass
class ModelRun:
    """One model that every query is scored against.

    Attributes:
        role: ``"victim"`` or ``"reference"``.
        run_dir: its training run folder.
        setting: the ``conf/setting`` node whose engine runs on it.
        engine_class: the class that node names.
        batch_dir: where its finished batches live (resumable).
        resume_key: what those batches depend on (:func:`resume_key`).
        user: for a victim the user brought (:mod:`.user_victims`), how its networks are built
            (a ``UserModel``); ``run_dir`` then names its sample set or weights file. None: a
            training run of ours, loaded from ``run_dir``.
    """

    role: str
    run_dir: Path
    setting: DictConfig
    engine_class: type[AttackEngine]
    batch_dir: Path
    resume_key: dict
    user: Any = None


@dataclass
class AttackPlan:
    """What the checks established: the queries and the models to score them against.

    Attributes:
        sample_set: the attacked data.
        ids: ``(2n,)`` sorted query ids; labels ``(2n,)`` (1 = member); queries ``(2n, *shape)``.
        runs: ``"victim"``, and ``"reference"`` when calibrating (in scoring order).
        reference_attack: ``"whitebox"`` or ``"setting"`` (calibration only).
        query_names: the user's string id of each query (in the order of ``ids``), written to
            ``scores.csv``; None: the integer ids are the names (a training run's split).
        facts: what the run's facts say instead of the config's data / model (a user's victim).
    """

    sample_set: SampleSet
    ids: Tensor
    labels: Tensor
    queries: Tensor
    runs: dict[str, ModelRun]
    reference_attack: str | None = None
    query_names: list[str] | None = None
    facts: dict | None = None


def check_inputs(cfg: DictConfig, out_dir: Path) -> AttackPlan:
    """Check each fact the attack ``cfg`` depends on once, and plan it; nothing is loaded or written.

    Raises (each with what to do): :class:`AttackConfigError`, ``FileNotFoundError`` (no victim,
    reference or exported network), ``SplitError`` (the data changed since the split),
    ``ReferenceOverlapError``, ``LPIPSWeightsMissingError``.
    """
    check_no_user_queries(cfg)
    victim_dir = Path(cfg.victim.run_dir)
    victim_class = engine_class(cfg.setting)
    check_setting_keys(cfg.setting, victim_class, "setting")
    check_model_folder(victim_dir, victim_class, "victim")
    sample_set = load_sample_set(cfg.data)
    check_network_specs(cfg, victim_dir, victim_class, sample_set, "victim")
    manifest = load_manifest(victim_dir, sample_set)  # same data, same preprocessing (fingerprint)
    ids, labels = _check_victim_training(cfg, victim_dir, manifest)
    models = {"victim": (victim_dir, cfg.setting, victim_class)}
    reference_attack = None
    if cfg.calibration.enabled:
        reference_dir = Path(cfg.calibration.reference_run_dir)
        reference_setting, reference_attack = reference_plan(cfg, victim_class)
        reference_class = engine_class(reference_setting)
        if reference_attack == "whitebox":  # otherwise the victim's setting, checked above
            check_setting_keys(reference_setting, reference_class, "calibration.reference_setting")
        check_model_folder(reference_dir, reference_class, "reference")
        check_reference_run(reference_dir, ids, sample_set)
        check_network_specs(cfg, reference_dir, reference_class, sample_set, "reference")
        models["reference"] = (reference_dir, reference_setting, reference_class)
    if any(cls.reconstructs for _, _, cls in models.values()):
        check_distance(cfg, sample_set)
    runs = {role: _model_run(cfg, out_dir, role, *model, manifest.fingerprint) for role, model in models.items()}
    for run in runs.values():
        check_resumable(run.batch_dir, run.resume_key)
    queries = sample_set.data[sample_set.positions(ids)]
    return AttackPlan(sample_set, ids, labels, queries, runs, reference_attack)


def check_no_user_queries(cfg: DictConfig) -> None:
    """A training run's victim is queried from its own split: refuse ``queries.members`` given beside it."""
    given = [f"queries.{k}" for k in ("members", "nonmembers") if OmegaConf.select(cfg, f"queries.{k}") is not None]
    if given:
        raise AttackConfigError(
            f"{' and '.join(given)} given, but victim=run (the default) queries the training run's own split: "
            "to attack your own artefacts choose victim=samples (a generated sample set, victim.path=...) or "
            "victim=generator (your generator, victim.generator._target_=... victim.weights=...)"
        )


def select_queries(manifest: MembershipSplit, num_queries: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """Members and non-members to query, ``num_queries`` of each (default: every non-member).

    Returns:
        ``ids (2n,)`` sorted, and ``labels (2n,)`` (1 = member).
    """
    members, nonmembers = manifest.ids("members"), manifest.ids("nonmembers")
    if len(nonmembers) == 0:
        raise AttackConfigError("the victim's split has no non-members to query; train with data.nonmember_size > 0")
    return choose_queries(members, nonmembers, num_queries, seed)


def choose_queries(
    members: Tensor, nonmembers: Tensor, num_queries: int | None, seed: int, balanced: bool = True, where: str = ""
) -> tuple[Tensor, Tensor]:
    """``num_queries`` seeded members and non-members (``None``: as many of each as ``balanced`` allows).

    ``balanced``: ``None`` takes every non-member and as many members (a split's parts); otherwise
    every member and every non-member (a user's query sets, which may differ in size).

    Returns:
        ``ids (m,)`` sorted, and ``labels (m,)`` (1 = member).
    """
    where = where or "the victim's split"
    most = min(len(members), len(nonmembers))
    if num_queries is None and not balanced:
        n_members, n_nonmembers = len(members), len(nonmembers)
    else:
        n = most if num_queries is None else int(num_queries)
        if n < 1 or n > most:
            raise AttackConfigError(
                f"attack.num_queries={num_queries} but {where} has {len(members)} members and "
                f"{len(nonmembers)} non-members; choose 1..{most} (or null for all)"
            )
        n_members = n_nonmembers = n
    rng = torch.Generator().manual_seed(int(seed))
    chosen_members = members[torch.randperm(len(members), generator=rng)[:n_members]]
    chosen_nonmembers = nonmembers[torch.randperm(len(nonmembers), generator=rng)[:n_nonmembers]]
    ids = torch.cat([chosen_members, chosen_nonmembers])
    labels = torch.cat([torch.ones(n_members, dtype=torch.int64), torch.zeros(n_nonmembers, dtype=torch.int64)])
    order = torch.argsort(ids)
    return ids[order], labels[order]


def reference_plan(cfg: DictConfig, victim_class: type[AttackEngine]) -> tuple[DictConfig, str]:
    """How queries are reconstructed on the reference model: ``(setting node, "whitebox" | "setting")``.

    Paper 5.6: the attacker owns G_r, so by default every setting whose loss is a reconstruction
    error reconstructs on G_r with the white-box optimiser (``calibration.reference_setting``);
    ``calibration.reference_attack=setting`` runs the attack's own engine on G_r instead. The
    discriminator and Monte-Carlo settings do not reconstruct: their reference is the same attack on G_r.
    """
    mode = cfg.calibration.get("reference_attack") or "whitebox"
    if mode not in REFERENCE_ATTACKS:
        raise AttackConfigError(
            f"calibration.reference_attack={mode!r}: choose whitebox (reconstruct on the reference "
            "model with the white-box optimiser, the paper's calibration) or setting (the attack's "
            "own engine on the reference model)"
        )
    if mode == "whitebox" and victim_class.reconstructs:
        return cfg.calibration.reference_setting, "whitebox"
    return cfg.setting, "setting"


def check_setting_keys(setting: DictConfig, cls: type[AttackEngine], where: str) -> None:
    """The setting node against its class's declaration: :func:`ganleaks.settings.base.check_setting`."""
    check_setting(setting, where)


def _needed_parts(cls: type[AttackEngine]) -> list[str]:
    needs = {"generator": cls.needs_generator, "discriminator": cls.needs_discriminator}
    return [part for part, needed in needs.items() if needed]


def check_model_folder(run_dir: Path, cls: type[AttackEngine], role: str) -> None:
    """The training run folder exists and exported the networks the engine needs."""
    if role == "reference" and not any((run_dir / f"{part}.json").is_file() for part in ("generator", "discriminator")):
        raise FileNotFoundError(
            f"no trained reference model in {run_dir}. Train it on the split's reference part, e.g. "
            "`python train.py data.part=reference model=<setting.reference_model>` with the same data and "
            "seed overrides, or set calibration.reference_run_dir, or use calibration=none"
        )
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"victim run folder {run_dir} does not exist. Train it first with the same overrides "
            "(e.g. `python train.py data.train_size=...`), or point victim.run_dir=PATH at a training run"
        )
    for part in _needed_parts(cls):
        if not (run_dir / f"{part}.json").is_file():
            raise FileNotFoundError(
                f"{run_dir} has no exported {part} ({part}.json / {part}.safetensors): the training run did not "
                "finish, or this setting needs a model part the publisher did not release. Re-run the same "
                "train.py command to finish it"
            )


def check_network_specs(
    cfg: DictConfig, run_dir: Path, cls: type[AttackEngine], sample_set: SampleSet, role: str
) -> None:
    """The data shape (and, for a victim found from the overrides, the latent size) its networks record."""
    for part in _needed_parts(cls):
        spec = read_network_spec(run_dir, part)
        if tuple(spec["data_shape"]) != tuple(sample_set.shape):
            raise AttackConfigError(
                f"the {role} in {run_dir} was trained on {spec['data_kind']} data of shape "
                f"{tuple(spec['data_shape'])}, but {sample_set.name} is loaded now with shape "
                f"{tuple(sample_set.shape)}: attack with the data config the {role} was trained with (same "
                "data=..., data.source.resolution, ...)"
            )
        latent_dim = cfg.model.get("latent_dim")
        # Only when the folder was found from the overrides: its name does not encode the latent size.
        if (
            role == "victim"
            and OmegaConf.is_interpolation(cfg.victim, "run_dir")
            and latent_dim is not None
            and int(spec["latent_dim"]) != int(latent_dim)
        ):
            raise AttackConfigError(
                f"the victim found in {run_dir} has latent_dim {spec['latent_dim']}, but this attack says "
                f"model.latent_dim={latent_dim}: the run folder name does not encode the latent size, so this "
                "is another victim. Drop the override, or train yours into its own hydra.run.dir and pass "
                "victim.run_dir=PATH"
            )


def _check_victim_training(cfg: DictConfig, victim_dir: Path, manifest: MembershipSplit) -> tuple[Tensor, Tensor]:
    """The victim trained on its members (or, for a null control, on none of the queries); the queries."""
    trained = read_trained_on(victim_dir)
    null_control = bool(cfg.attack.null_control)
    if trained.get("part") != "members" and not null_control:
        raise AttackConfigError(
            f"{victim_dir} is a model trained on the {trained.get('part')!r} part, not a victim: point "
            "victim.run_dir at a run trained with data.part=members (a reference model belongs in "
            "calibration.reference_run_dir), or set attack.null_control=true to measure the attack's "
            "chance level on a model that never saw the queries"
        )
    ids, labels = select_queries(manifest, cfg.attack.num_queries, cfg.seed)
    if null_control:
        seen = torch.isin(ids, torch.tensor(trained.get("ids", []), dtype=torch.int64))
        if seen.any():
            raise AttackConfigError(
                f"attack.null_control=true needs a model that never saw the queries, but {victim_dir} trained on "
                f"{int(seen.sum())} of them; use a model trained with data.part=reference"
            )
    return ids, labels


def check_distance(cfg: DictConfig, sample_set: SampleSet) -> None:
    """The configured distance applies to this data, and its LPIPS backbone (if any) is safe to load."""
    if not cfg.distance.get("lpips_weight", 0):
        return
    if sample_set.kind != "image":
        raise AttackConfigError(
            f"{sample_set.name} is tabular data, where LPIPS does not apply (paper 5.5: lambda_2 = 0); use distance=l2"
        )
    _verify_lpips_backbone(cfg.distance.get("lpips_net", "vgg"))


def _verify_lpips_backbone(net: str) -> None:
    """Refuse an LPIPS backbone file that is not plain tensors, before torchvision unpickles it.

    torchvision reads ``$TORCH_HOME/hub/checkpoints/<backbone>.pth`` with ``weights_only=False``, which
    would run code pickled into that file; ``weights_only=True`` here never does.
    """
    from ganleaks.distances.distance import check_lpips_backbone

    path = check_lpips_backbone(net)  # missing weights: says how to install them
    try:
        load_weights_only(path, mmap=True)  # mmap: no second copy of VGG in memory
    except UnsafeFileError as error:
        raise AttackConfigError(
            f"the LPIPS backbone {error}. Delete it and reinstall with `ganleaks-install-lpips-weights --force`, "
            "or attack without LPIPS: distance=l2"
        ) from None


# ----------------------------------------------------------------------------------- resume key


def _model_run(
    cfg: DictConfig,
    out_dir: Path,
    role: str,
    run_dir: Path,
    setting: DictConfig,
    cls: type[AttackEngine],
    fingerprint: str,
) -> ModelRun:
    shared = role == "reference" and bool(cfg.calibration.get("cache_dir"))
    key = resume_key(cfg, setting, cls.reconstructs, run_dir, fingerprint, per_query=shared)
    batch_dir = _shared_batch_dir(cfg.calibration.cache_dir, key) if shared else out_dir / "batches" / role
    return ModelRun(role, run_dir, setting, cls, batch_dir, key)


def resume_key(
    cfg: DictConfig,
    setting: DictConfig,
    reconstructs: bool,
    run_dir: Path,
    fingerprint: str,
    per_query: bool = False,
    model_sha256: dict | None = None,
) -> dict:
    """What the finished batches of one model depend on: a batch folder with another key is not reused.

    ``per_query``: the key of a shared reference cache, whose rows are keyed by query id and so do not
    depend on how many queries an attack asks (nor on the folder name of the reference model, which
    its weights' hashes identify). ``model_sha256``: the model's hashes when it is not a run folder
    of ours (a user's weights file or sample set: :mod:`.user_victims`); else its ``*.safetensors``.
    """
    container = OmegaConf.to_container(setting, resolve=True)
    assert isinstance(container, dict)  # a setting is a mapping
    container.pop("bank_cache_mb", None)  # memory only, never the results
    key = {
        "setting": container,
        "seed": int(cfg.seed),
        "num_queries": cfg.attack.num_queries,
        "distance": OmegaConf.to_container(cfg.distance, resolve=True) if reconstructs else None,
        "dataset_fingerprint": fingerprint,
        "model_sha256": model_sha256
        if model_sha256 is not None
        else {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(run_dir.glob("*.safetensors"))
        },
    }
    if per_query:
        del key["num_queries"]
        container.pop("reference_model", None)
        if isinstance(key["distance"], dict):
            key["distance"].pop("name", None)  # the weights define it, not the config's name
    return json.loads(json.dumps(key))


def _shared_batch_dir(cache_dir: str, key: dict) -> Path:
    """The reference losses' folder in the cache shared by every attack with the same key."""
    return Path(cache_dir) / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def check_resumable(batch_dir: Path, key: dict) -> None:
    """Refuse to mix in batches that another config or another version of the model produced."""
    path = batch_dir / RESUME_KEY_NAME
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise AttackConfigError(
                f"cannot read {path} ({error}), so it is unknown which attack the finished batches beside it "
                f"belong to: delete {batch_dir} to recompute them, or use another hydra.run.dir"
            ) from None
    elif any(batch_dir.glob("batch-*.safetensors")):
        previous = {}
    else:
        return
    if previous != key:
        old, new = _flatten(previous), _flatten(key)
        changed = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
        raise AttackConfigError(
            f"{batch_dir} holds results of another attack ({', '.join(changed[:6]) or 'unrecorded config'} "
            "differ): reusing them would mix two experiments. Use another hydra.run.dir, or delete "
            f"{batch_dir} to recompute"
        )


def claim_batch_dir(run: ModelRun) -> None:
    """Record the resume key beside the batches this attack is about to write."""
    atomic_write_text(run.batch_dir / RESUME_KEY_NAME, json.dumps(run.resume_key, indent=1))


def _flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for name, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{name}.").items()} or {prefix: {}}
