"""One membership-inference audit: queries from the victim's manifest -> scores, metrics, plots."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, cast

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from ganleaks.attacks.calibration import align_by_id, calibrated_loss, check_reference_run
from ganleaks.attacks.checks import NonFiniteOutputError, check_discriminator_outputs, check_generator_outputs
from ganleaks.attacks.engines import STATUS_NAMES, build_engine
from ganleaks.attacks.run_record import attack_facts, write_run_record
from ganleaks.attacks.runner import global_rank, score_queries
from ganleaks.data.loading import load_sample_set, read_trained_on
from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import load_manifest
from ganleaks.evaluation.estimates import format_estimate
from ganleaks.evaluation.metrics import membership_metrics
from ganleaks.evaluation.plots import plot_roc, save_reconstruction_grid
from ganleaks.io import UnsafeFileError, atomic_write_text, load_weights_only
from ganleaks.models import load_discriminator, load_generator
from ganleaks.models.export import read_network_spec

log = logging.getLogger(__name__)

SCORES_HEADER = ["id", "member", "victim_loss", "reference_loss", "score", "status"]
# Settings whose loss is a reconstruction error L(x, R(x|G)); the others score without reconstructing.
RECONSTRUCTION_KINDS = ("fullbb", "reconstruction")
REFERENCE_ATTACKS = ("whitebox", "setting")


class AttackConfigError(ValueError):
    """An attack configuration that cannot work with this victim or data."""


def select_queries(manifest, num_queries: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Members and non-members to query, ``num_queries`` of each (default: every non-member).

    Returns:
        ``ids (2n,)`` sorted, and ``labels (2n,)`` (1 = member).
    """
    members, nonmembers = manifest.ids("members"), manifest.ids("nonmembers")
    if len(nonmembers) == 0:
        raise AttackConfigError("the victim's split has no non-members to query; train with data.nonmember_size > 0")
    n = min(len(members), len(nonmembers)) if num_queries is None else int(num_queries)
    if n < 1 or n > min(len(members), len(nonmembers)):
        raise AttackConfigError(
            f"attack.num_queries={num_queries} but the victim's split has {len(members)} members and "
            f"{len(nonmembers)} non-members; choose 1..{min(len(members), len(nonmembers))} (or null for all)"
        )
    rng = torch.Generator().manual_seed(int(seed))
    chosen_members = members[torch.randperm(len(members), generator=rng)[:n]]
    chosen_nonmembers = nonmembers[torch.randperm(len(nonmembers), generator=rng)[:n]]
    ids = torch.cat([chosen_members, chosen_nonmembers])
    labels = torch.cat([torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64)])
    order = torch.argsort(ids)
    return ids[order], labels[order]


def _check_victim(run_dir: Path, needs_generator: bool, needs_discriminator: bool) -> None:
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"victim run folder {run_dir} does not exist. Train it first with the same overrides "
            "(e.g. `python train.py data.train_size=...`), or point victim.run_dir=PATH at a training run"
        )
    for name, needed in (("generator", needs_generator), ("discriminator", needs_discriminator)):
        if needed and not (run_dir / f"{name}.json").is_file():
            raise FileNotFoundError(
                f"{run_dir} has no exported {name} ({name}.json / {name}.safetensors): the training run did not "
                "finish, or this setting needs a model part the publisher did not release. Re-run the same "
                "train.py command to finish it"
            )


def _check_model_fits(model: torch.nn.Module, sample_set: SampleSet, run_dir: Path, what: str) -> None:
    shape = tuple(getattr(model, "data_shape", ()))
    if shape and shape != tuple(sample_set.shape):
        raise AttackConfigError(
            f"the {what} in {run_dir} works on data of shape {shape}, but {sample_set.name} samples have shape "
            f"{tuple(sample_set.shape)}; attack with the data config (and resolution) the model was trained on"
        )


def _verify_lpips_backbone(net: str) -> None:
    """Refuse an LPIPS backbone file that is not plain tensors, before torchvision unpickles it.

    torchvision reads ``$TORCH_HOME/hub/checkpoints/<backbone>.pth`` with ``weights_only=False``, which
    would run code pickled into that file; ``weights_only=True`` here never does.
    """
    from ganleaks.attacks.distances import check_lpips_backbone

    path = check_lpips_backbone(net)  # missing weights: says how to install them
    try:
        load_weights_only(path, mmap=True)  # mmap: no second copy of VGG in memory
    except UnsafeFileError as error:
        raise AttackConfigError(
            f"the LPIPS backbone {error}. Delete it and reinstall with `ganleaks-install-lpips-weights --force`, "
            "or attack without LPIPS: distance=l2"
        ) from None


def _build_distance(cfg: DictConfig, sample_set: SampleSet, settings) -> torch.nn.Module | None:
    """The configured distance, built once (one LPIPS network) if any of ``settings`` reconstructs."""
    if not any(setting.kind in RECONSTRUCTION_KINDS for setting in settings):
        return None
    if sample_set.kind != "image" and cfg.distance.get("lpips_weight", 0):
        raise AttackConfigError(
            f"{sample_set.name} is tabular data, where LPIPS does not apply (paper 5.5: lambda_2 = 0); use distance=l2"
        )
    if cfg.distance.get("lpips_weight", 0):
        _verify_lpips_backbone(cfg.distance.get("lpips_net", "vgg"))
    return hydra.utils.instantiate(cfg.distance)


def _distance_for(distance, setting):
    """The distance ``setting`` minimises: ``distance`` itself, without the latent prior for fullbb, or None."""
    if distance is None or setting.kind not in RECONSTRUCTION_KINDS:
        return None
    if setting.kind == "fullbb":
        distance = copy.copy(distance)  # shares the LPIPS network
        distance.latent_weight = 0.0  # paper 5.5: the sampling process already satisfies z ~ P_z
    return distance


def reference_plan(cfg: DictConfig) -> tuple[DictConfig, str]:
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
    if mode == "whitebox" and cfg.setting.kind in RECONSTRUCTION_KINDS:
        return cfg.calibration.reference_setting, "whitebox"
    return cfg.setting, "setting"


def _engine_for(cfg: DictConfig, setting, run_dir: Path, sample_set: SampleSet, distance, what: str):
    kind = setting.kind
    needs_d = kind == "discriminator"
    _check_victim(run_dir, not needs_d, needs_d)
    generator = discriminator = None
    try:
        if needs_d:
            discriminator = load_discriminator(run_dir)
            _check_model_fits(discriminator, sample_set, run_dir, f"{what} discriminator")
            check_discriminator_outputs(discriminator, sample_set.data, run_dir, f"{what} discriminator")
        else:
            generator = load_generator(run_dir)
            _check_model_fits(generator, sample_set, run_dir, f"{what} generator")
            check_generator_outputs(generator, run_dir, f"{what} generator")
    except NonFiniteOutputError as error:
        raise AttackConfigError(str(error)) from None
    return build_engine(setting, generator, discriminator, _distance_for(distance, setting), cfg.seed)


def _check_victim_spec(cfg: DictConfig, victim_dir: Path, sample_set: SampleSet) -> None:
    """The victim's data shape and latent size, read from its JSON (no weights), against this attack's."""
    spec = read_network_spec(victim_dir, "discriminator" if cfg.setting.kind == "discriminator" else "generator")
    if tuple(spec["data_shape"]) != tuple(sample_set.shape):
        raise AttackConfigError(
            f"the victim in {victim_dir} was trained on {spec['data_kind']} data of shape {tuple(spec['data_shape'])}, "
            f"but {sample_set.name} is loaded now with shape {tuple(sample_set.shape)}: attack with the data config "
            "the victim was trained with (same data=..., data.source.resolution, ...)"
        )
    latent_dim = cfg.model.get("latent_dim")
    # Only when the folder was found from the overrides: its name does not encode the latent size.
    if (
        OmegaConf.is_interpolation(cfg.victim, "run_dir")
        and latent_dim is not None
        and int(spec["latent_dim"]) != int(latent_dim)
    ):
        raise AttackConfigError(
            f"the victim found in {victim_dir} has latent_dim {spec['latent_dim']}, but this attack says "
            f"model.latent_dim={latent_dim}: the run folder name does not encode the latent size, so this is "
            "another victim. Drop the override, or train yours into its own hydra.run.dir and pass "
            "victim.run_dir=PATH"
        )


RESUME_KEY_NAME = "attack_key.json"


def _resume_key(cfg: DictConfig, setting, run_dir: Path, fingerprint: str, per_query: bool = False) -> dict:
    """What the finished batches of one model depend on: a batch folder with another key is not reused.

    ``per_query``: the key of a shared reference cache, whose rows are keyed by query id and so do not
    depend on how many queries an attack asks (nor on the folder name of the reference model, which
    its weights' hashes identify).
    """
    setting = OmegaConf.to_container(setting, resolve=True)
    setting.pop("bank_cache_mb", None)  # memory only, never the results
    reconstructs = setting["kind"] in RECONSTRUCTION_KINDS
    key = {
        "setting": setting,
        "seed": int(cfg.seed),
        "num_queries": cfg.attack.num_queries,
        "distance": OmegaConf.to_container(cfg.distance, resolve=True) if reconstructs else None,
        "dataset_fingerprint": fingerprint,
        "model_sha256": {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(run_dir.glob("*.safetensors"))
        },
    }
    if per_query:
        del key["num_queries"]
        setting.pop("reference_model", None)
        if key["distance"] is not None:
            key["distance"].pop("name", None)  # the weights define it, not the config's name
    return json.loads(json.dumps(key))


def _recorded_path(path: Path, out_dir: Path) -> str:
    """``path`` relative to the run folder when inside it (a record that survives moving the folder)."""
    try:
        return str(path.relative_to(out_dir))
    except ValueError:
        return str(path)


def _reference_batch_dir(cfg: DictConfig, out_dir: Path, key: dict) -> Path:
    """Where the reference losses live: a cache shared by every attack with the same key, or the run folder."""
    cache_dir = cfg.calibration.get("cache_dir")
    if not cache_dir:
        return out_dir / "batches" / "reference"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / digest


def _check_resumable(batch_dir: Path, key: dict) -> None:
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


def _flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for name, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{name}.").items()} or {prefix: {}}


def _trainer_kwargs(cfg: DictConfig) -> dict:
    kwargs = {
        k: v
        for k, v in cast(dict[str, Any], OmegaConf.to_container(cfg.trainer, resolve=True)).items()
        if k in ("accelerator", "devices", "strategy", "num_nodes", "precision")
    }
    kwargs.update(
        logger=False,
        enable_checkpointing=False,
        inference_mode=False,
        enable_model_summary=False,
        default_root_dir=None,
    )
    return kwargs


def run_attack(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Attack ``cfg.victim.run_dir`` as ``cfg.setting`` says; write the outputs into ``out_dir``."""
    started = time.time()
    out_dir = Path(out_dir)
    victim_dir = Path(cfg.victim.run_dir)
    kind = cfg.setting.kind
    if not isinstance(cfg.attack.batch_size, int) or cfg.attack.batch_size < 1:
        raise AttackConfigError(
            f"attack.batch_size={cfg.attack.batch_size!r}: set it to a positive integer (queries optimised together)"
        )
    _check_victim(victim_dir, kind != "discriminator", kind == "discriminator")
    sample_set = load_sample_set(cfg.data)
    _check_victim_spec(cfg, victim_dir, sample_set)
    manifest = load_manifest(victim_dir, sample_set)
    trained = read_trained_on(victim_dir)
    null_control = bool(cfg.attack.get("null_control", False))
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
    data = sample_set.data[sample_set.positions(ids)]
    reference_dir = reference_setting = reference_attack = None
    if cfg.calibration.enabled:
        reference_dir = Path(cfg.calibration.reference_run_dir)
        check_reference_run(reference_dir, ids, sample_set)
        reference_setting, reference_attack = reference_plan(cfg)
    distance = _build_distance(cfg, sample_set, [s for s in (cfg.setting, reference_setting) if s is not None])
    trainer_kwargs = _trainer_kwargs(cfg)

    # Every model is loaded and every resume checked before any scoring: a bad reference fails early.
    victim_engine = _engine_for(cfg, cfg.setting, victim_dir, sample_set, distance, "victim")
    batch_dirs = {
        "victim": (out_dir / "batches" / "victim", _resume_key(cfg, cfg.setting, victim_dir, manifest.fingerprint))
    }
    reference_engine = None
    if reference_dir is not None:
        reference_engine = _engine_for(cfg, reference_setting, reference_dir, sample_set, distance, "reference")
        key = _resume_key(
            cfg,
            reference_setting,
            reference_dir,
            manifest.fingerprint,
            per_query=bool(cfg.calibration.get("cache_dir")),
        )
        batch_dirs["reference"] = (_reference_batch_dir(cfg, out_dir, key), key)
    for batch_dir, key in batch_dirs.values():
        _check_resumable(batch_dir, key)
    for batch_dir, key in batch_dirs.values():
        atomic_write_text(batch_dir / RESUME_KEY_NAME, json.dumps(key, indent=1))
    victim = reference = None
    try:
        victim = score_queries(victim_engine, data, ids, batch_dirs["victim"][0], trainer_kwargs, cfg.attack.batch_size)
        if reference_engine is not None:
            reference = score_queries(
                reference_engine, data, ids, batch_dirs["reference"][0], trainer_kwargs, cfg.attack.batch_size
            )
    except NonFiniteOutputError as error:  # the sample bank met latents the fixed probes did not cover
        model = victim_dir if victim is None else reference_dir
        raise AttackConfigError(f"{model}: {error}") from None

    if not _is_global_zero(cfg):
        return {}
    loss = align_by_id(ids, victim["ids"], victim["loss"])
    status = align_by_id(ids, victim["ids"], victim["status"])
    reference_loss = None
    calibrated = loss
    if reference is not None:
        reference_loss = align_by_id(ids, reference["ids"], reference["loss"])
        status = torch.maximum(status, align_by_id(ids, reference["ids"], reference["status"]))
        calibrated = calibrated_loss(loss, reference_loss)
    score = -calibrated
    metrics = membership_metrics(score, labels)
    metrics.update(_run_facts(cfg, victim_dir, reference_dir, status, time.time() - started))
    if reference_setting is not None:
        metrics.update(
            reference_attack=reference_attack,
            reference_setting=reference_setting.name,
            reference_batches=_recorded_path(batch_dirs["reference"][0], out_dir),
        )
    _write_scores(out_dir / "scores.csv", ids, labels, loss, reference_loss, score, status)
    write_run_record(out_dir, cfg, metrics)  # what these results were computed with, written with them
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    plot_roc(score, labels, out_dir / "roc.png")
    _save_grid(cfg, out_dir, victim_dir, reference_dir, sample_set, victim, reference, ids, labels)
    _log_to_loggers(cfg, out_dir, metrics)
    log.info(
        "%s on %s: AUC %s, TPR@1%%FPR %s (%d members, %d non-members, %d failed) -> %s",
        cfg.setting.name,
        victim_dir,
        format_estimate(metrics, "auc"),
        format_estimate(metrics, "tpr_at_fpr_0.01"),
        metrics["n_members"],
        metrics["n_nonmembers"],
        metrics.get("n_failed", 0),
        out_dir,
    )
    return metrics


def _log_to_loggers(cfg: DictConfig, out_dir: Path, metrics: dict) -> None:
    """Send the config, metrics, ROC and reconstructions to the configured Lightning loggers."""
    from ganleaks.models.training import build_loggers

    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
    for logger in build_loggers(cfg.get("logger"), out_dir):
        logger.log_hyperparams(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)))
        logger.log_metrics({f"attack/{k}": v for k, v in numbers.items()})
        log_image = getattr(logger, "log_image", None)  # W&B
        if log_image is not None:
            images = [p for p in (out_dir / "roc.png", out_dir / "reconstructions.png") if p.is_file()]
            log_image(key="attack/plots", images=[str(p) for p in images])
            with open(out_dir / "scores.csv") as handle:
                rows = list(csv.reader(handle))
            logger.log_table(key="attack/scores", columns=rows[0], data=rows[1:])  # type: ignore[attr-defined]  # W&B
        logger.finalize("success")
        if log_image is not None:
            logger.experiment.finish()  # type: ignore[attr-defined]  # flush the W&B run now: the attack process is done with it


def _is_global_zero(cfg: DictConfig) -> bool:
    """Whether this process writes the outputs: rank 0 as Lightning sees it (DDP launcher, SLURM, torchrun)."""
    return global_rank(_trainer_kwargs(cfg)) == 0


def _run_facts(cfg, victim_dir, reference_dir, status, seconds) -> dict:
    """What was attacked and how (run_record.attack_facts, the record the report reads), and how it went."""
    return {
        **attack_facts(cfg, victim_dir, reference_dir),
        "n_failed": int((status != 0).sum()),
        "wall_seconds": round(seconds, 2),
    }


def _fmt(value: float) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def _write_scores(path: Path, ids, labels, loss, reference_loss, score, status) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORES_HEADER)
    for i in range(len(ids)):
        writer.writerow(
            [
                int(ids[i]),
                int(labels[i]),
                _fmt(loss[i]),
                "" if reference_loss is None else _fmt(reference_loss[i]),
                _fmt(score[i]),
                STATUS_NAMES.get(int(status[i]), "failed"),
            ]
        )
    atomic_write_text(path, buffer.getvalue())


@torch.no_grad()
def _save_grid(cfg, out_dir, victim_dir, reference_dir, sample_set, victim, reference, ids, labels) -> None:
    n = int(cfg.attack.get("save_reconstructions", 8))
    if n <= 0 or sample_set.kind != "image" or "z" not in victim:
        return

    def spread(positions: torch.Tensor) -> torch.Tensor:  # evenly over the ids: sources are often sorted by class
        return positions[torch.linspace(0, len(positions) - 1, min(n, len(positions))).round().long()]

    pick = torch.cat([spread(torch.nonzero(labels == 1).flatten()), spread(torch.nonzero(labels == 0).flatten())])
    queries = sample_set.data[sample_set.positions(ids[pick])]
    rows = [load_generator(victim_dir)(align_by_id(ids[pick], victim["ids"], victim["z"]))]
    if reference is not None and "z" in reference:
        rows.append(load_generator(reference_dir)(align_by_id(ids[pick], reference["ids"], reference["z"])))
    save_reconstruction_grid(
        queries,
        rows[0],
        labels[pick],
        out_dir / "reconstructions.png",
        reference_reconstructions=rows[1] if len(rows) > 1 else None,
    )
