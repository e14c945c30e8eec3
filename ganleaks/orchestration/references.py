"""Calibration with several reference models and a per-query Gaussian fit (``calibration=references``).

The offline likelihood-ratio attack (LiRA, Carlini et al., S&P 2022, section IV-C "offline"), with the
attack's own loss as the statistic. Each query ``x`` is scored on ``R`` reference models that never saw it
(losses ``l_1(x) .. l_R(x)``); their centre ``mu(x)`` and spread ``sigma`` describe the loss of ``x`` on a
model that did not train on it, and the score is the one-sided test of the victim's loss against that
Gaussian: ``(mu(x) - L_victim(x)) / sigma``, higher = member (a loss lower than a non-member's would be).

Choices, checked against the authors' released code (``tensorflow/privacy``,
``research/mi_lira_2021/plot.py``, ``generate_ours_offline``) and, where we differ, said so in
docs/ATTACKS.md ("Several reference models"):

* centre: the median of the R losses, as their code (``np.median``; equal to the mean for R <= 2);
* spread: one shared sigma below ``per_query_variance_from`` references (their "fixed variance", the stronger
  choice with few references), each query's own standard deviation from there (``np.std``, ddof 0, as theirs).
  A shared sigma only scales every score by the same number, so it never changes the order of the scores (the
  AUC, the TPR at any FPR): we use the pooled within-query standard deviation, which makes the score a z-score
  (their code pools every loss of every query, between-query spread included; the order is the same);
* one-sided: the paper's offline test, ``1 - Pr[Z > observed]``, is one-sided; their code scores
  ``-logpdf``, two-sided, which also calls a query whose victim loss is far *above* its references a member.
  One-sided keeps R = 1 the paper's calibration (eq. 11): the score is then ``L_reference - L_victim``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from torch import Tensor

from ganleaks.errors import AttackConfigError

TRANSFORMS = ("none", "log")
_LISTS = {
    "run_dirs": "training-run folders",
    "sample_sets": "sample sets (image folders, .npy/.npz or .csv)",
    "generator_weights": "weights files of your reference generators (the victim's class)",
}
SAMPLE_SET_VICTIM = "ganleaks.victims.user_samples.SampleSetVictim"
REFERENCE_ROLE = "reference"


def is_multi(cfg: DictConfig) -> bool:
    """``calibration=references``: several reference models, each a role ``reference-<d>``."""
    return bool(cfg.calibration.get("enabled", False)) and cfg.calibration.get("num_references") is not None


def reference_roles(runs) -> list[str]:
    """The reference models' roles of a plan's runs, in scoring order (``reference`` or ``reference-0`` ..)."""
    return [role for role in runs if role == REFERENCE_ROLE or role.startswith(f"{REFERENCE_ROLE}-")]


def check_references_keys(calibration: DictConfig) -> int:
    """``calibration.num_references`` / ``run_dirs`` / ``transform`` / ``per_query_variance_from`` /
    ``reference_fraction``, before anything is read; returns R."""
    count = calibration.get("num_references")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise AttackConfigError(
            f"calibration.num_references={count!r}: the number of reference models R, an integer >= 1 "
            "(R = 1 is the paper's calibration; LiRA's offline attack uses 8 or more)"
        )
    given = [key for key in _LISTS if calibration.get(key) is not None]
    if len(given) > 1:
        raise AttackConfigError(
            f"calibration.{given[0]} and calibration.{given[1]} both given: the reference models are training runs "
            "made here (run_dirs), sample sets they generated (sample_sets) or your generators (generator_weights), "
            "one kind, not both"
        )
    discriminators = calibration.get("discriminator_weights")
    if discriminators is not None and (
        calibration.get("generator_weights") is None
        or not isinstance(discriminators, (list, ListConfig))
        or len(discriminators) != len(calibration.generator_weights)
    ):
        raise AttackConfigError(
            "calibration.discriminator_weights lists the discriminators of the reference generators of "
            "calibration.generator_weights, one per generator in the same order: give both lists, of equal length"
        )
    for key in given:
        listed = calibration.get(key)
        if not isinstance(listed, (list, ListConfig)) or not listed:
            raise AttackConfigError(
                f"calibration.{key}={listed!r}: a list of {_LISTS[key]}, e.g. 'calibration.{key}=[a,b]' (or null)"
            )
        if len(listed) != count:
            raise AttackConfigError(
                f"calibration.{key} names {len(listed)} reference models but calibration.num_references={count}: "
                f"set calibration.num_references={len(listed)}"
            )
    transform = calibration.get("transform", "none")
    if transform not in TRANSFORMS:
        raise AttackConfigError(
            f"calibration.transform={transform!r}: none (fit the loss itself) or log (fit log loss; positive losses)"
        )
    per_query = calibration.get("per_query_variance_from")
    if isinstance(per_query, bool) or not isinstance(per_query, int) or per_query < 2:
        raise AttackConfigError(
            f"calibration.per_query_variance_from={per_query!r}: the R from which each query gets its own variance, "
            "an integer >= 2 (64: LiRA's authors' advice)"
        )
    fraction = calibration.get("reference_fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise AttackConfigError(
            f"calibration.reference_fraction={fraction!r}: the fraction of the reference part each reference model "
            "trained on (data.reference_fraction when it was trained), in (0, 1]"
        )
    return int(count)


def reference_nodes(cfg: DictConfig) -> list[tuple[str, DictConfig]]:
    """Each reference model's victim node, by role: ``reference-0 .. reference-(R-1)``.

    Without ``calibration.run_dirs``, reference ``d`` is the training run of ``data.part=reference
    data.reference_draw=d`` with the attack's data, seed and reference architecture: the folder
    ``paths.reference`` names with that draw (conf/paths/default.yaml), so a train multirun over the draws
    and this attack line up. Two roles naming one folder are refused.
    """
    count = check_references_keys(cfg.calibration)
    sample_sets = cfg.calibration.get("sample_sets")
    if sample_sets is not None:  # the user's: each a SampleSetVictim, checked for records shared with the queries
        value_range = cfg.calibration.get("value_range")
        return [
            (
                f"{REFERENCE_ROLE}-{draw}",
                OmegaConf.create(
                    {
                        "_target_": SAMPLE_SET_VICTIM,
                        "path": str(path),
                        "value_range": value_range,
                        "path_key": f"calibration.sample_sets[{draw}]",
                    }
                ),
            )
            for draw, path in enumerate(sample_sets)
        ]
    if cfg.calibration.get("generator_weights") is not None:
        return _generator_nodes(cfg)
    run_dirs = cfg.calibration.get("run_dirs")
    nodes = []
    seen: dict[Path, str] = {}
    missing: list[int] = []
    for draw in range(count):
        copied = copy.deepcopy(cfg)
        with open_dict(copied):
            if run_dirs is None:
                copied.data.reference_draw = draw
                copied.data.reference_fraction = float(cfg.calibration.reference_fraction)
                run_dir = str(copied.paths.reference)
            else:
                run_dir = str(run_dirs[draw])
            copied.calibration.reference.run_dir = run_dir
        role = f"{REFERENCE_ROLE}-{draw}"
        where = Path(run_dir).expanduser().resolve()
        if where in seen:
            raise AttackConfigError(
                f"calibration.run_dirs names {run_dir} twice ({seen[where]} and {role}): the reference models must "
                "be different trainings (each on its own random part of the reference data, or another seed)"
            )
        seen[where] = role
        nodes.append((role, copied.calibration.reference))
        exported = any((Path(run_dir) / f"{part}.json").is_file() for part in ("generator", "discriminator"))
        if run_dirs is None and not exported:
            missing.append(draw)
    if missing:
        model = OmegaConf.select(cfg, "setting.reference_model") or cfg.model.name
        draws = ",".join(str(draw) for draw in missing)
        raise FileNotFoundError(
            f"calibration=references with R={count} needs the reference models of draws 0..{count - 1}; "
            f"draw(s) {draws} are not trained (no model in {nodes[missing[0]][1].run_dir}). Train them with the "
            "attack's data and seed overrides: python train.py -m data.part=reference "
            f"data.reference_draw={draws} model={model} "
            f"data.reference_fraction={float(cfg.calibration.reference_fraction):g} seed={cfg.seed} "
            "(or point calibration.run_dirs=[...] at trained reference models)"
        )
    return nodes


def _generator_nodes(cfg: DictConfig) -> list[tuple[str, DictConfig]]:
    """The user's reference generators (``calibration.generator_weights``): the victim's generator node
    (class, latent, ranges) with each reference's weights (and discriminator weights, where given). Nothing
    here can check what they were trained on: they are the user's statement (docs/USER_ARTEFACTS.md)."""
    if cfg.victim.get("kind") != "generator":
        raise AttackConfigError(
            "calibration.generator_weights gives reference generators of your victim's class, for victim=generator; "
            "for a training run made here use the draws or calibration.run_dirs, for a sample set "
            "calibration.sample_sets"
        )
    weights = list(cfg.calibration.generator_weights)
    discriminators = cfg.calibration.get("discriminator_weights")
    nodes = []
    for draw, path in enumerate(weights):
        if not Path(str(path)).expanduser().is_file():
            raise FileNotFoundError(
                f"calibration.generator_weights[{draw}]={path} does not exist; pass the .safetensors or state_dict "
                "file of each reference generator"
            )
        copied = copy.deepcopy(cfg)
        with open_dict(copied):
            copied.victim.weights = str(path)
            copied.victim.discriminator_weights = None if discriminators is None else str(discriminators[draw])
        nodes.append((f"{REFERENCE_ROLE}-{draw}", copied.victim))
    return nodes


@dataclass
class ReferenceFit:
    """The Gaussian fitted to each query's losses on the reference models, and the score it gives.

    Attributes:
        score: ``(N,)`` ``(mu - t(L_victim)) / sigma``, higher = member (t: the transform).
        mean: ``(N,)`` mu, the median of the references' transformed losses at each query.
        sigma: ``(N,)`` the spread used at each query (one value repeated when shared).
        shared_variance: True when one sigma serves every query.
        transform: ``"none"`` or ``"log"``.
    """

    score: Tensor
    mean: Tensor
    sigma: Tensor
    shared_variance: bool
    transform: str

    def facts(self, count: int) -> dict:
        shared = float(self.sigma[0]) if self.shared_variance and len(self.sigma) else None
        return {
            "num_references": count,
            "transform": self.transform,
            "variance": "shared" if self.shared_variance else "per_query",
            "shared_sigma": None if shared is None or math.isnan(shared) else shared,
        }


def fit_references(
    victim_loss: Tensor, reference_losses: Tensor, transform: str = "none", per_query_variance_from: int = 64
) -> ReferenceFit:
    """The offline LiRA score of each query (module docstring).

    Args:
        victim_loss: ``(N,)`` the victim's loss at each query (NaN where it failed).
        reference_losses: ``(R, N)`` each reference model's loss at each query (NaN where it failed).
        transform: ``none`` or ``log`` (fit log loss: losses must be > 0).
        per_query_variance_from: from this R on, each query's own sigma; below it, one shared sigma.

    A query with a NaN anywhere scores NaN (its status says it failed). With R = 1 (no spread to measure)
    sigma is 1: the score is ``L_reference - L_victim``, the paper's calibrated score (eq. 11).
    """
    if reference_losses.ndim != 2 or reference_losses.shape[1] != victim_loss.shape[0]:
        shape = tuple(reference_losses.shape)
        raise ValueError(f"reference losses {shape} do not match {victim_loss.shape[0]} queries")
    victim = victim_loss.double()
    references = reference_losses.double()
    if transform == "log":
        finite = torch.cat([victim[~victim.isnan()], references[~references.isnan()]])
        if (finite <= 0).any():
            raise AttackConfigError(
                "calibration.transform=log fits the log of the loss, but this setting's loss is <= 0 at some queries "
                "(the discriminator's and Monte-Carlo losses can be): use calibration.transform=none"
            )
        victim, references = victim.log(), references.log()
    elif transform != "none":
        raise ValueError(f"transform={transform!r}: none or log")
    count = references.shape[0]
    # np.median's median (the mean of the two middle values for even R; torch.median takes the lower one)
    mean = torch.quantile(references, 0.5, dim=0, interpolation="linear")
    mean = torch.where(references.isnan().any(dim=0), torch.nan, mean)
    if count == 1:
        sigma = torch.ones_like(mean)
        shared = True
    elif count < per_query_variance_from:
        within = references.var(dim=0, unbiased=True)  # per query, over the R references
        pooled = float(within[~within.isnan()].mean().sqrt()) if (~within.isnan()).any() else math.nan
        # a shared sigma scales every score alike (the order is the same whatever it is): 1 where none is measured
        sigma = torch.full_like(mean, pooled if pooled > 0 else 1.0)
        shared = True
    else:
        sigma = references.std(dim=0, unbiased=False).clamp_min(1e-30)  # as the authors' np.std (+1e-30)
        shared = False
    score = (mean - victim) / sigma
    return ReferenceFit(score.float(), mean.float(), sigma.float(), shared, transform)
