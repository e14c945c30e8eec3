"""One membership-inference audit: check the inputs, load the models, score the queries, write the outputs.

:func:`run_attack` is the whole path of ``python attack.py``; each step lives in its own module:
:mod:`.plan` (every fact checked once, the victim's by the victim), :mod:`ganleaks.settings` (one
engine class per setting), :mod:`.runner` (resumable batches through Lightning), :mod:`.outputs`
(files and loggers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from ganleaks.attacks.nearest_neighbor import NonFiniteOutputError
from ganleaks.data.queries import Queries
from ganleaks.errors import AttackConfigError
from ganleaks.evaluation.declared_coins import declared_coins_audit
from ganleaks.evaluation.estimates import format_estimate, verdict
from ganleaks.evaluation.metrics import membership_metrics
from ganleaks.evaluation.privacy_audit import canary_audit
from ganleaks.orchestration.calibration import align_by_id, calibrated_loss
from ganleaks.orchestration.outputs import REFERENCE_LOSSES_CSV, QueryScores, Reconstructions, write_outputs
from ganleaks.orchestration.plan import AttackPlan, ModelRun, claim_batch_dir, plan_attack
from ganleaks.orchestration.references import REFERENCE_ROLE, fit_references, reference_roles
from ganleaks.orchestration.run_record import attack_facts
from ganleaks.orchestration.runner import score_queries
from ganleaks.settings.base import AttackEngine, build_engine

log = logging.getLogger(__name__)

__all__ = ["AttackConfigError", "run_attack"]


def run_attack(cfg: DictConfig, out_dir: str | Path, objects: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """Attack the victim ``cfg.victim`` describes as ``cfg.setting`` says; write the outputs into ``out_dir``.

    The victim is whatever its node builds (:mod:`ganleaks.victims`: a training run, the user's
    generator or sample set, objects given in Python); ``objects`` holds those Python objects per
    role (``{"victim": {...}, "reference": {...}}``, from ``ganleaks.audit``).

    Returns:
        The metrics (``{}`` in a DDP process other than rank 0, which writes nothing).
    """
    started = time.time()
    out_dir = Path(out_dir)
    plan = plan_attack(cfg, out_dir, objects)  # nothing is loaded, scored or written before every check passed
    engines = _load_engines(cfg, plan)  # every model before any scoring: a bad reference fails early
    rows, rank = _score(cfg, plan, engines)
    if rank != 0:
        return {}
    scores = _query_scores(cfg, plan, rows)
    metrics = _metrics(cfg, plan, scores, out_dir, time.time() - started, engines["victim"].counts_used())
    found = {
        role: Reconstructions(row["ids"], row["z"], engines[role])
        for role, row in rows.items()
        if "z" in row and role in ("victim", REFERENCE_ROLE)  # several references: none is shown
    }
    write_outputs(cfg, out_dir, scores, metrics, plan.queries, found)
    log.info(
        "%s on %s: %s; AUC %s, TPR@1%%FPR %s (%d members, %d non-members, %d failed) -> %s",
        cfg.setting.name,
        plan.runs["victim"].run_dir,
        metrics["verdict"]["status"],
        format_estimate(metrics, "auc", with_interval=True),
        format_estimate(metrics, "tpr_at_fpr_0.01", with_interval=True),
        metrics["n_members"],
        metrics["n_nonmembers"],
        metrics.get("n_failed", 0),
        out_dir,
    )
    if "privacy_audit" in metrics:
        log.info(
            "privacy audit of %d canaries: %s", metrics["privacy_audit"]["m"], metrics["privacy_audit"]["sentence"]
        )
    return metrics


def _load_engines(cfg: DictConfig, plan: AttackPlan) -> dict[str, AttackEngine]:
    """One engine per model of the plan, sharing one distance (one LPIPS network)."""
    reconstructs = any(run.engine_class.reconstructs for run in plan.runs.values())
    distance = hydra.utils.instantiate(cfg.distance) if reconstructs else None
    return {role: _load_engine(cfg, run, plan, distance) for role, run in plan.runs.items()}


def _load_engine(cfg: DictConfig, run: ModelRun, plan: AttackPlan, distance) -> AttackEngine:
    """The engine of ``run`` over the networks its victim loads (and checks) for it."""
    queries = Queries(plan.sample_set, plan.ids, plan.labels, plan.queries, "", plan.query_names)
    networks = run.victim.networks(run.engine_class, queries)
    records = run.victim.reference_records(queries) if run.engine_class.needs_reference_records else None
    return build_engine(run.setting, networks.generator, networks.discriminator, distance, cfg.seed, records)


def _score(cfg: DictConfig, plan: AttackPlan, engines: dict[str, AttackEngine]) -> tuple[dict[str, dict], int]:
    """Every query on every model (resuming finished batches); the rows by id, and this process's rank."""
    for run in plan.runs.values():
        claim_batch_dir(run)
    rows: dict[str, dict] = {}
    rank = 0
    for role, run in plan.runs.items():
        try:
            rows[role], rank = score_queries(
                engines[role], plan.queries, plan.ids, run.batch_dir, _trainer_kwargs(cfg), cfg.attack.batch_size
            )
        except NonFiniteOutputError as error:  # the sample bank met latents the fixed probes did not cover
            raise AttackConfigError(f"{run.run_dir}: {error}") from None
    return rows, rank


def _query_scores(cfg: DictConfig, plan: AttackPlan, rows: dict[str, dict]) -> QueryScores:
    """Victim (and reference) rows aligned by id; calibrated (paper eq. 11) with one reference model, or
    fitted per query (offline LiRA, :mod:`.references`) with several."""
    victim_loss = align_by_id(plan.ids, rows["victim"]["ids"], rows["victim"]["loss"])
    status = align_by_id(plan.ids, rows["victim"]["ids"], rows["victim"]["status"])
    roles = reference_roles(rows)
    for role in roles:  # a query failed on any model has failed
        status = torch.maximum(status, align_by_id(plan.ids, rows[role]["ids"], rows[role]["status"]))
    if not roles:
        return QueryScores(plan.ids, plan.labels, victim_loss, None, -victim_loss, status, plan.query_names)
    losses = torch.stack([align_by_id(plan.ids, rows[role]["ids"], rows[role]["loss"]) for role in roles])
    if roles == [REFERENCE_ROLE]:
        loss = calibrated_loss(victim_loss, losses[0])
        return QueryScores(plan.ids, plan.labels, victim_loss, losses[0], -loss, status, plan.query_names)
    fit = fit_references(
        victim_loss,
        losses,
        str(cfg.calibration.get("transform", "none")),
        int(cfg.calibration.per_query_variance_from),
    )
    return QueryScores(
        plan.ids,
        plan.labels,
        victim_loss,
        losses.nanmean(dim=0).where(~losses.isnan().any(dim=0), torch.nan),
        fit.score,
        status,
        plan.query_names,
        reference_losses=dict(zip(roles, losses, strict=True)),
        fit=fit,
    )


def _metrics(
    cfg: DictConfig, plan: AttackPlan, scores: QueryScores, out_dir: Path, seconds: float, used: dict | None = None
) -> dict:
    """The membership metrics and the facts of the run (and of its calibration); ``used``: the counts
    the victim's engine really used (``k`` of a sample set smaller than ``setting.k``)."""
    metrics = membership_metrics(scores.score, scores.labels)
    roles = reference_roles(plan.runs)
    reference = plan.runs[roles[0]] if roles else None
    reference_dir = reference.run_dir if roles == [REFERENCE_ROLE] and reference is not None else None
    metrics.update(_run_facts(cfg, plan.facts, reference_dir, scores.status, seconds, used))
    metrics["verdict"] = verdict(metrics)  # again: n_failed now counts every query whose status is not ok
    if cfg.get("audit") is not None and cfg.audit.get("enabled", False):
        if "audit" in cfg.victim:  # a training run made here: the coins recorded in canaries.json
            metrics["privacy_audit"] = _privacy_audit(cfg.audit, plan.facts, scores)
        else:  # the user's generator or sample set: the coins the user declared (audit.randomized=true)
            metrics["privacy_audit"] = _declared_privacy_audit(cfg, plan.facts, scores)
    if reference is not None:
        batches = [_recorded_path(plan.runs[role].batch_dir, out_dir) for role in roles]
        metrics.update(
            reference_attack=plan.reference_attack,
            reference_setting=reference.setting.name,
            reference_batches=batches[0] if roles == [REFERENCE_ROLE] else batches,
        )
    if scores.fit is not None:  # calibration=references
        metrics["reference_run_dirs"] = [str(plan.runs[role].run_dir) for role in roles]
        metrics["references"] = {**scores.fit.facts(len(roles)), "losses": REFERENCE_LOSSES_CSV}
    return metrics


def _privacy_audit(audit: DictConfig, facts: dict, scores: QueryScores) -> dict:
    """``audit=canaries``: the epsilon lower bounds from the canaries' scores (members = included), against
    the victim's claim (``privacy.json``'s epsilon and delta; ``audit.delta`` for a victim without DP)."""
    dp = facts.get("privacy") == "dp" and facts.get("epsilon") is not None
    delta = float(facts["delta"]) if dp and facts.get("delta") else float(audit.delta)
    return canary_audit(
        scores.score.numpy(),
        scores.labels.numpy().astype(bool),
        counts=list(audit.grid),
        guess=str(audit.get("guess", "both")),
        alpha=float(audit.alpha),
        delta=delta,
        claimed_epsilon=float(facts["epsilon"]) if dp else None,
    )


def _declared_privacy_audit(cfg: DictConfig, facts: dict, scores: QueryScores) -> dict:
    """``audit=canaries`` on the user's victim: the same bounds from the query sets (members = the canaries
    trained on), against the declared ``victim.privacy.epsilon`` at its ``victim.privacy.delta`` (required
    beside an epsilon, plan.check_declared_canaries); without a declared delta, ``audit.delta``."""
    audit = cfg.audit
    declared = facts.get("privacy") == "declared" and facts.get("epsilon") is not None
    declared_delta = OmegaConf.select(cfg, "victim.privacy.delta")
    block = declared_coins_audit(
        scores.score.numpy(),
        scores.labels.numpy().astype(bool),
        counts=list(audit.grid),
        guess=str(audit.get("guess", "both")),
        alpha=float(audit.alpha),
        delta=float(declared_delta) if declared_delta is not None else float(audit.delta),
        claimed_epsilon=float(facts["epsilon"]) if declared else None,
        coin_check_p=float(audit.get("coin_check_p", 1e-3)),
    )
    if block["coin_check"]["contradicted"]:
        log.warning("privacy audit: %s", block["sentence"])
    return block


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


def _recorded_path(path: Path, out_dir: Path) -> str:
    """``path`` relative to the run folder when inside it (a record that survives moving the folder)."""
    try:
        return str(path.relative_to(out_dir))
    except ValueError:
        return str(path)


def _run_facts(cfg, victim_facts, reference_dir, status, seconds, used=None) -> dict:
    """What was attacked and how (run_record.attack_facts, the record the report reads), and how it went."""
    return {
        **attack_facts(cfg, victim_facts, reference_dir, used),
        "n_failed": int((status != 0).sum()),
        "wall_seconds": round(seconds, 2),
    }
