"""Every fact an attack depends on, checked once, before any model is loaded or any query scored.

:func:`plan_attack` asks the victim (and the calibration reference) what it owns (see
:mod:`ganleaks.victims`), checks what the attack itself owns (the setting's keys, the distance,
the resume key of finished batches), and returns an :class:`AttackPlan`: the queries, and for each
model to score its setting, engine class and batch folder. Loading, scoring and writing trust the
plan and check none of these facts again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ganleaks.data.sample_set import SampleSet
from ganleaks.distances.distance import check_distance_config
from ganleaks.errors import AttackConfigError, another_run_folder
from ganleaks.evaluation.privacy_audit import guess_grid
from ganleaks.io import UnsafeFileError, atomic_write_text, load_weights_only
from ganleaks.orchestration.references import REFERENCE_ROLE, is_multi, reference_nodes, reference_roles
from ganleaks.parameters import check_int, check_seed
from ganleaks.settings.base import AttackEngine, check_calibration, check_setting, engine_class
from ganleaks.victims.base import Victim, build_victim

log = logging.getLogger(__name__)

# How calibration reconstructs on the reference model (calibration.reference_attack).
REFERENCE_ATTACKS = ("whitebox", "setting")
RESUME_KEY_NAME = "attack_key.json"


@dataclass
class ModelRun:
    """One model that every query is scored against.

    Attributes:
        role: ``"victim"``, ``"reference"``, or ``"reference-<d>"`` (one of ``calibration=references``).
        run_dir: what the model is (its run folder, weights file or sample set), for messages and records.
        setting: the ``conf/setting`` node whose engine runs on it.
        engine_class: the class that node names.
        batch_dir: where its finished batches live (resumable).
        resume_key: what those batches depend on (:func:`resume_key`).
        victim: the model (:class:`~ganleaks.victims.base.Victim`): it loads the networks.
    """

    role: str
    run_dir: Path
    setting: DictConfig
    engine_class: type[AttackEngine]
    batch_dir: Path
    resume_key: dict
    victim: Victim


@dataclass
class AttackPlan:
    """What the checks established: the queries and the models to score them against.

    Attributes:
        sample_set: the attacked records.
        ids: ``(2n,)`` sorted query ids; labels ``(2n,)`` (1 = member); queries ``(2n, *shape)``.
        runs: ``"victim"``, and ``"reference"`` (or ``"reference-0"`` .. with several) when calibrating
            (in scoring order).
        reference_attack: ``"whitebox"`` or ``"setting"`` (calibration only).
        query_names: the user's string id of each query (in the order of ``ids``), written to
            ``scores.csv``; None: the integer ids are the names (a training run's split).
        facts: what the victim says about itself (``Victim.facts``): the run's facts.
    """

    sample_set: SampleSet
    ids: Tensor
    labels: Tensor
    queries: Tensor
    runs: dict[str, ModelRun]
    reference_attack: str | None = None
    query_names: list[str] | None = None
    facts: dict = field(default_factory=dict)


def check_attack_keys(cfg: DictConfig) -> None:
    """The attack's own numbers (``seed``, ``attack.*``), before anything is seeded or read.

    The setting's keys are its class's (``settings.check_setting``), the distance's its class's, the
    victim's facts the victim's: each is checked by :func:`plan_attack`, where it is owned.
    """
    check_seed(cfg.seed)
    attack = cfg.attack
    check_int("attack.batch_size", attack.batch_size, 1)
    check_int("attack.num_queries", attack.get("num_queries"), allow_none=True)  # its range: choose_queries
    check_int("attack.save_reconstructions", attack.get("save_reconstructions", 0), 0)
    check_int("attack.most_exposed", attack.get("most_exposed", 20), 0)
    check_audit_keys(cfg)


def check_audit_keys(cfg: DictConfig) -> None:
    """``audit=canaries``: a victim that can serve its canaries, and valid ``audit.*`` numbers."""
    audit = cfg.get("audit")
    if audit is None or not audit.get("enabled", False):
        return
    randomized = audit.get("randomized", False)
    if not isinstance(randomized, bool):
        raise AttackConfigError(f"audit.randomized={randomized!r}: true or false")
    if "audit" in cfg.victim:  # a training run made here: its coins are recorded (canaries.json)
        if randomized:
            raise AttackConfigError(
                "audit.randomized=true declares the coins of your own canaries (victim=generator|samples); "
                "a training run made here records its coins in canaries.json: drop audit.randomized"
            )
    else:
        check_declared_canaries(cfg, randomized)
    alpha = audit.get("alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise AttackConfigError(f"audit.alpha={alpha!r}: the significance must be in (0, 1), e.g. 0.05")
    delta = audit.get("delta")
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise AttackConfigError(f"audit.delta={delta!r}: must be in (0, 1), e.g. 1e-5")
    try:
        guess_grid(1, list(audit.grid), str(audit.get("guess", "both")))
    except (ValueError, TypeError) as error:
        raise AttackConfigError(f"{error} (audit.grid: guess counts, e.g. [10, 20, 50, 100])") from None


def check_declared_canaries(cfg: DictConfig, randomized: bool) -> None:
    """``audit=canaries`` on the user's victim: the query sets are the canaries, audited only when the user
    declares that each one's membership was an independent fair coin, and the claim has its delta."""
    kind = cfg.victim.get("kind")
    if not randomized:
        raise AttackConfigError(
            f"audit=canaries on victim={kind} needs audit.randomized=true, your declaration that each canary "
            "(queries.members = trained on, queries.nonmembers = left out) was included by an independent fair "
            "coin: the bound is valid only then (otherwise members and non-members may differ systematically and "
            "the 'bound' measures that); nothing here can record your coins (docs/PRIVACY_AUDIT.md)"
        )
    threshold = cfg.audit.get("coin_check_p", 1e-3)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise AttackConfigError(f"audit.coin_check_p={threshold!r}: a p-value threshold in [0, 1), e.g. 1e-3")
    if cfg.attack.get("num_queries") is not None:
        raise AttackConfigError(
            "audit=canaries queries every canary (its bound counts all m, and a balanced subset depends on the "
            "coins): drop attack.num_queries"
        )
    privacy = cfg.victim.get("privacy") or {}
    epsilon, delta = privacy.get("epsilon"), privacy.get("delta")
    if epsilon is not None and (isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon < 0):
        raise AttackConfigError(f"victim.privacy.epsilon={epsilon!r}: the claimed epsilon must be a number >= 0")
    if delta is not None and (isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1):
        raise AttackConfigError(f"victim.privacy.delta={delta!r}: must be in (0, 1), e.g. 1e-5")
    if epsilon is not None and delta is None:
        raise AttackConfigError(
            f"victim.privacy.epsilon={epsilon} is an (epsilon, delta) claim without its delta: the audit tests "
            "the claim at the claim's own delta, so declare it too (victim.privacy.delta=1e-5, say)"
        )


def plan_attack(cfg: DictConfig, out_dir: Path, objects: Mapping[str, Mapping[str, Any]] | None = None) -> AttackPlan:
    """Check each fact the attack ``cfg`` depends on once, and plan it; nothing is scored or written.

    The victim (``cfg.victim``) and the calibration reference (``cfg.calibration.reference``) are
    built from their nodes (:func:`~ganleaks.victims.base.build_victim`) and asked what only they
    know: whether they can serve the setting, the queries, whether the reference may have seen a
    query, whether their recorded shapes fit, their identity.

    Args:
        cfg: the attack config.
        out_dir: the attack's run folder.
        objects: Python objects per role (``{"victim": {"generator": G}, "reference": {...}}``),
            passed to the victims' classes by name (``ganleaks.audit``).

    Raises (each with what to do): :class:`AttackConfigError`, ``FileNotFoundError`` (no victim,
    reference or exported network), ``SplitError`` (the data changed since the split),
    ``ReferenceOverlapError``, ``LPIPSWeightsMissingError``.
    """
    objects = objects or {}
    victim_class = check_setting(cfg.setting, "setting")
    check_distance_config(cfg.get("distance"))
    victim = build_victim(cfg.victim, "victim", objects.get("victim"))
    victim.check_serves(victim_class, cfg.setting.get("name"))
    queries = victim.queries(cfg.attack.num_queries, cfg.seed)
    victim.check_fits(victim_class, queries)
    models: dict[str, tuple[Victim, DictConfig, type[AttackEngine]]] = {"victim": (victim, cfg.setting, victim_class)}
    reference_attack = None
    if cfg.calibration.enabled:
        check_calibration(victim_class, cfg.setting.get("name"), cfg.calibration.get("name"))
        reference_setting, reference_attack = reference_plan(cfg, victim_class)
        reference_class = engine_class(reference_setting)
        if reference_attack == "whitebox":  # otherwise the victim's setting, checked above
            check_setting(reference_setting, "calibration.reference_setting")
        if is_multi(cfg) and cfg.calibration.get("transform") == "log" and not victim_class.reconstructs:
            raise AttackConfigError(
                f"calibration.transform=log fits the log of the loss, which is a distance only for the reconstruction "
                f"settings (fullbb, partialbb, whitebox); setting={cfg.setting.get('name')}'s loss can be <= 0: "
                "use calibration.transform=none"
            )
        for role, node in _reference_nodes(cfg, objects):
            reference = build_victim(node, "reference", objects.get(role))
            reference.check_disjoint(queries, victim)  # first: a reference that may have seen a query is never used
            where = f"calibration={cfg.calibration.name}"
            reference.check_serves(reference_class, reference_setting.get("name"), where)
            reference.check_fits(reference_class, queries)
            models[role] = (reference, reference_setting, reference_class)
    if any(cls.reconstructs for _, _, cls in models.values()):
        check_distance(cfg, queries.sample_set)
    queried = queries_sha256(queries.ids, queries.labels)
    runs = {
        role: _model_run(cfg, out_dir, role, *model, queries.fingerprint, queried) for role, model in models.items()
    }
    check_distinct_references(runs)
    for run in runs.values():
        check_resumable(run.batch_dir, run.resume_key)
    return AttackPlan(
        queries.sample_set,
        queries.ids,
        queries.labels,
        queries.data,
        runs,
        reference_attack,
        query_names=queries.names,
        facts={**victim.facts(), "identity": run_identity(runs)},
    )


def _reference_nodes(cfg: DictConfig, objects: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, DictConfig]]:
    """The calibration's reference models by role: ``reference`` (one, the paper's), or ``reference-0 ..``
    (``calibration=references``: :func:`~ganleaks.orchestration.references.reference_nodes`)."""
    if not is_multi(cfg):
        return [(REFERENCE_ROLE, cfg.calibration.reference)]
    if objects.get(REFERENCE_ROLE):
        raise AttackConfigError(
            "calibration=references takes its reference models from training runs (calibration.run_dirs or the "
            "draws' folders); a reference given as a Python object serves calibration=reference only"
        )
    return reference_nodes(cfg)


def _architecture(run: ModelRun) -> str | None:
    """The networks a training run exported (class and keyword arguments of each ``<part>.json``), or None."""
    run_dir = getattr(run.victim, "run_dir", None)
    if run_dir is None:
        return None
    specs = {}
    for part in ("generator", "discriminator"):
        path = Path(run_dir) / f"{part}.json"
        try:
            spec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(spec, dict):
            specs[part] = {"class": spec.get("class"), "kwargs": spec.get("kwargs")}
    return json.dumps(specs, sort_keys=True) if specs else None


def _same_classes(first: str, second: str) -> bool:
    """Two :func:`_architecture` records name the same network classes (whatever their sizes)."""
    one, other = json.loads(first), json.loads(second)
    return {k: v["class"] for k, v in one.items()} == {k: v["class"] for k, v in other.items()}


def check_distinct_references(runs: Mapping[str, ModelRun]) -> None:
    """Several reference models must be different trainings of one architecture: two with the same weights
    are one model counted twice, which would shrink the spread the score divides by (and claim an R it does
    not have); two architectures would mix two loss distributions into one Gaussian."""
    roles = reference_roles(runs)
    if len(roles) > 1:
        architectures = {role: _architecture(runs[role]) for role in roles}
        first = architectures[roles[0]]
        for role in roles[1:]:
            if architectures[role] != first:
                raise AttackConfigError(
                    f"{runs[role].run_dir} ({role}) has other networks than {runs[roles[0]].run_dir} ({roles[0]}) "
                    f"(their generator.json / discriminator.json differ): the R reference models of one Gaussian fit "
                    "must be one architecture trained R times; retrain the odd one with the others' model overrides"
                )
        victim = _architecture(runs["victim"]) if "victim" in runs else None
        if victim is not None and first is not None and _same_classes(victim, first) and victim != first:
            log.warning(
                "the reference models (%s, ...) are the victim's networks (%s) with other sizes: a reference "
                "model is meant to be trained as the victim was (paper 5.6); pass the victim's model overrides "
                "(e.g. model.nets.image.generator.base_channels) when training them",
                runs[roles[0]].run_dir,
                runs["victim"].run_dir,
            )
    seen: dict[str, str] = {}
    for role in roles:
        identity = json.dumps(runs[role].resume_key["model_sha256"], sort_keys=True)
        if identity in seen:
            raise AttackConfigError(
                f"{runs[seen[identity]].run_dir} ({seen[identity]}) and {runs[role].run_dir} ({role}) hold the same "
                "weights: calibration=references needs R different reference models (trained on different draws "
                "of the reference data: python train.py -m data.part=reference data.reference_draw=0,1,2,3)"
            )
        seen[identity] = role


def reference_plan(cfg: DictConfig, victim_class: type[AttackEngine]) -> tuple[DictConfig, str]:
    """How queries are reconstructed on the reference model: ``(setting node, "whitebox" | "setting")``.

    Paper 5.6: the attacker owns G_r, so by default every setting whose loss is a reconstruction
    error reconstructs on G_r with the white-box optimiser (``calibration.reference_setting``);
    ``calibration.reference_attack=setting`` runs the attack's own engine on G_r instead. The
    discriminator and Monte-Carlo settings do not reconstruct: their reference is the same attack on G_r.
    """
    # null: white-box on reference models made here; sample sets have nothing to reconstruct on
    mode = cfg.calibration.get("reference_attack") or ("setting" if cfg.calibration.get("sample_sets") else "whitebox")
    if mode not in REFERENCE_ATTACKS:
        raise AttackConfigError(
            f"calibration.reference_attack={mode!r}: choose whitebox (reconstruct on the reference "
            "model with the white-box optimiser, the paper's calibration) or setting (the attack's "
            "own engine on the reference model)"
        )
    if mode == "whitebox" and victim_class.reconstructs:
        return cfg.calibration.reference_setting, "whitebox"
    return cfg.setting, "setting"


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


def queries_sha256(ids: Tensor, labels: Tensor) -> str:
    """sha256 of which records are queried, with their labels: the resume key holds it beside the
    dataset's fingerprint, which identifies the records' contents but not which of them this attack asks."""
    digest = hashlib.sha256()
    digest.update(ids.numpy().astype("int64").tobytes())
    digest.update(labels.numpy().astype("int64").tobytes())
    return digest.hexdigest()


def run_identity(runs: Mapping[str, ModelRun]) -> dict:
    """The full identity of an attack's scores, as ``run.json`` records it: each model's resume key
    (its setting's keys, the seed, the number of queries, the distance, the query records' fingerprint
    and which were queried, the model's content identity) and ``fingerprint``, a sha256 over all of them."""
    keys = {role: run.resume_key for role, run in runs.items()}
    fingerprint = hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()
    return {"fingerprint": fingerprint, **keys}


def _model_run(
    cfg: DictConfig,
    out_dir: Path,
    role: str,
    victim: Victim,
    setting: DictConfig,
    cls: type[AttackEngine],
    fingerprint: str,
    queried: str,
) -> ModelRun:
    shared = role in reference_roles([role]) and bool(cfg.calibration.get("cache_dir"))
    key = resume_key(cfg, setting, cls.reconstructs, victim.identity(cls), fingerprint, per_query=shared)
    if not shared:  # a shared cache is keyed per query: it serves any subset of the queries
        key["queries_sha256"] = queried
    batch_dir = _shared_batch_dir(cfg.calibration.cache_dir, key) if shared else out_dir / "batches" / role
    return ModelRun(role, Path(victim.label), setting, cls, batch_dir, key, victim)


def resume_key(
    cfg: DictConfig,
    setting: DictConfig,
    reconstructs: bool,
    identity: dict,
    fingerprint: str,
    per_query: bool = False,
) -> dict:
    """What the finished batches of one model depend on: a batch folder with another key is not reused.

    ``identity``: the model's content fingerprint (:meth:`~ganleaks.victims.base.Victim.identity`).
    ``per_query``: the key of a shared reference cache, whose rows are keyed by query id and so do not
    depend on how many queries an attack asks (nor on the folder name of the reference model, which
    its weights' hashes identify).
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
        "model_sha256": identity,
    }
    if per_query:
        del key["num_queries"]
        container.pop("reference_model", None)
        if isinstance(key["distance"], dict):
            key["distance"].pop("name", None)  # the weights define it, not the config's name
    return _integral_floats_as_ints(json.loads(json.dumps(key)))


def _integral_floats_as_ints(tree):
    """``[-1.0, 1.0]`` and ``[-1, 1]`` declare the same range: one key for both."""
    if isinstance(tree, dict):
        return {name: _integral_floats_as_ints(value) for name, value in tree.items()}
    if isinstance(tree, list):
        return [_integral_floats_as_ints(value) for value in tree]
    if isinstance(tree, float) and tree.is_integer():
        return int(tree)
    return tree


def _shared_batch_dir(cache_dir: str, key: dict) -> Path:
    """The reference losses' folder in the cache shared by every attack with the same key."""
    return Path(cache_dir).expanduser() / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def check_resumable(batch_dir: Path, key: dict) -> None:
    """Refuse to mix in batches that another config or another version of the model produced."""
    path = batch_dir / RESUME_KEY_NAME
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise AttackConfigError(
                f"cannot read {path} ({error}), so it is unknown which attack the finished batches beside it "
                f"belong to: delete {batch_dir} to recompute them, or use {another_run_folder()}"
            ) from None
    elif any(batch_dir.glob("batch-*.safetensors")):
        previous = {}
    else:
        return
    if previous != key:
        old, new = _flatten(previous), _flatten(key)
        changed = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
        said = (
            "; ".join(describe_change(name, old.get(name), new.get(name)) for name in changed[:6]) if previous else ""
        )
        what = f"{said} changed since they were scored" if said else f"no {RESUME_KEY_NAME} says which inputs"
        raise AttackConfigError(
            f"{batch_dir} holds the finished batches of another attack: {what}, so they are not reused (that "
            f"would serve scores of other inputs). To recompute with the new inputs, delete them: rm -r "
            f"'{batch_dir}' ; or keep them and write this attack elsewhere: {another_run_folder()}"
        )


# What a resume key's entries are, in the words a user set them with (changes to them are named so).
_KEY_WORDS = {
    "seed": "seed",
    "num_queries": "attack.num_queries",
    "dataset_fingerprint": "the query records' contents (the query files, or the victim's split data)",
    "queries_sha256": "which records are queried",
}


def describe_change(name: str, old, new) -> str:
    """One changed entry of a resume key (:func:`_flatten`'s dotted name), as the key the user set."""
    name = name.rstrip(".")
    first, _, rest = name.partition(".")
    if first == "model_sha256":
        if rest.startswith("declared."):
            what = f"victim.{rest.removeprefix('declared.')}"
        elif rest in ("generator", "discriminator"):
            key = "weights" if rest == "generator" else "discriminator_weights"
            what = f"the contents of the {rest}'s weights (victim.{key})"
        elif rest == "samples":
            what = "the samples' contents (victim.path / calibration.path)"
        elif rest == "reference_records":
            what = "the reference records (queries.reference, or the split's reference part)"
        else:
            what = f"the contents of the model's {rest or 'weights files'}"
    elif first in ("setting", "distance"):
        what = name
    else:
        what = _KEY_WORDS.get(name, name)
    if what != name:  # the key as attack_key.json records it, too
        what = f"{what} [{name}]"
    if _short(old) and _short(new):
        return f"{what} ({_show(old)} -> {_show(new)})"
    return what


def _short(value) -> bool:
    return not (isinstance(value, str) and len(value) >= 40)


def _show(value) -> str:
    return "unset" if value is None else json.dumps(value)


def claim_batch_dir(run: ModelRun) -> None:
    """Record the resume key beside the batches this attack is about to write."""
    atomic_write_text(run.batch_dir / RESUME_KEY_NAME, json.dumps(run.resume_key, indent=1))


def _flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for name, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{name}.").items()} or {prefix: {}}
