"""``ganleaks.audit``: the attack of ``attack.py`` as one Python call, for notebooks.

The same engine underneath: the attack config is composed from ``conf/`` with Hydra's compose
API (as ``attack.py`` composes it) and run by :func:`ganleaks.orchestration.run.run_attack`; what the
user gives as Python objects (a generator module, arrays of records) is handed to it as
:class:`~ganleaks.victims.user_victims.UserArtefacts` instead of file paths, and checked the same way.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The config folder attack.py composes (the repository's conf/).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
#: Keyword overrides that choose a config group (``distance="paper"``), not set a value.
GROUPS = ("distance", "trainer", "logger", "model", "data", "privacy")


@dataclass
class AuditResult:
    """What an audit found.

    Attributes:
        metrics: ``metrics.json``: AUC, TPR at low FPR (each with ``<name>_ci``, ``[low, high]`` of
            the 95% bootstrap interval), counts, and the run's facts.
        scores: ``scores.csv`` as a list of rows (``id``, ``member``, ``victim_loss``,
            ``reference_loss``, ``score``, ``status``; losses and scores as floats, NaN where a query failed).
        most_exposed: ``most_exposed.csv`` rows: the members with the highest membership score.
        out_dir: the run folder, or None when none was kept (``out_dir=None``).
    """

    metrics: dict
    scores: list[dict] = field(repr=False)
    most_exposed: list[dict] = field(repr=False)
    out_dir: Path | None = None

    def to_pandas(self):
        """The per-record scores as a ``pandas.DataFrame`` (pandas is imported only here)."""
        import pandas

        return pandas.DataFrame(self.scores)

    def __str__(self) -> str:
        from ganleaks.evaluation.estimates import format_estimate

        return (
            f"AUC {format_estimate(self.metrics, 'auc')}, TPR@1%FPR {format_estimate(self.metrics, 'tpr_at_fpr_0.01')} "
            f"({self.metrics.get('setting')}, {self.metrics.get('n_members')} members / "
            f"{self.metrics.get('n_nonmembers')} non-members)"
        )


def _number(text: str) -> float:
    return float(text) if text != "" else float("nan")


def _read_rows(path: Path, numbers: Sequence[str]) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in numbers:
            if key in row:
                row[key] = _number(row[key])
        if "member" in row:
            row["member"] = int(row["member"])
        if "rank" in row:
            row["rank"] = int(row["rank"])
    return rows


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _sample_set_argument(value: Any, name: str, options: str, value_range) -> tuple[str, Any]:
    """``(config value, records)`` for a sample set given as a path (read by the attack) or an array."""
    if _is_path(value):
        return str(value), None
    from ganleaks.data.user_sets import records_from_array

    return "<array>", records_from_array(value, name=name, value_range=value_range, what=name, options=options)


def _override(key: str, value: Any) -> str:
    """A Hydra override for a plain value (lists and None included)."""
    return f"{key}={json.dumps(value) if not isinstance(value, str) else value}"


def audit(
    setting: str = "whitebox",
    *,
    generator=None,
    samples=None,
    discriminator=None,
    members=None,
    nonmembers=None,
    out_dir: str | os.PathLike | None = None,
    calibration=None,
    latent_dim: int | None = None,
    output_range: Sequence[float] = (-1.0, 1.0),
    latent_distribution: str = "normal",
    value_range: Sequence[float] | None = None,
    **overrides: Any,
) -> AuditResult:
    """Audit a generator or a generated sample set for membership leakage of ``members``.

    Args:
        setting: ``whitebox``, ``partialbb``, ``fullbb``, ``montecarlo`` or ``discriminator``.
        generator: an ``nn.Module`` (``G(z (B, latent_dim)) -> (B, *shape)``; give ``latent_dim``
            and ``output_range``), or a weights file with ``**{"victim.generator._target_": ...}``.
        samples: a generated sample set instead of a generator (``fullbb`` / ``montecarlo``): a
            path (image folder, ``.npy`` / ``.npz``, ``.csv``) or an array / tensor.
        discriminator: an ``nn.Module`` (``D(x) -> (B,)`` or ``(B, 1)``) or a weights file, for
            ``setting="discriminator"``.
        members, nonmembers: the records the model was trained on, and held-out records of the
            same distribution: paths, or arrays / tensors (``(N, C, H, W)`` images or ``(N, D)``
            rows; floats in ``[-1, 1]`` unless ``value_range`` says otherwise).
        out_dir: write the run folder here (as ``attack.py`` does: ``scores.csv``,
            ``metrics.json``, plots, ``most_exposed.*``, ``summary.html``); None: a temporary
            folder, removed after the results are read.
        calibration: a reference sample set (path or array) generated by a model that never saw
            a query (``calibration=samples``); None: uncalibrated.
        latent_dim, output_range, latent_distribution: of a generator given as a module or file.
        value_range: ``[low, high]`` of array records (members, non-members, samples) when not ``[-1, 1]``.
        **overrides: further config keys, dotted, e.g. ``**{"setting.k": 5000, "attack.batch_size": 32}``,
            or a group choice (``distance="paper"``).

    Returns:
        An :class:`AuditResult`.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from ganleaks.config_resolvers import register_resolvers
    from ganleaks.data.user_sets import build_query_set, records_from_array
    from ganleaks.victims.user_victims import UserArtefacts
    from ganleaks.workflows import attack

    if (generator is None) == (samples is None) and discriminator is None:
        raise ValueError("give the model to audit: generator=G (a module or weights file) or samples=... (not both)")
    if members is None or nonmembers is None:
        raise ValueError("give the records to query: members=... (trained on) and nonmembers=... (held out)")
    kind = "samples" if samples is not None else "generator"
    artefacts = UserArtefacts()
    group_overrides = [f"setting={setting}", f"victim={kind}", "logger=[]"]
    values: dict[str, Any] = {}
    if _is_path(members) != _is_path(nonmembers):
        raise ValueError("give members and nonmembers the same way: both paths, or both arrays / tensors")
    if _is_path(members):
        values.update({"queries.members": str(members), "queries.nonmembers": str(nonmembers)})
        if value_range is not None:
            values["queries.value_range"] = list(value_range)
    else:
        artefacts.query_set = build_query_set(
            records_from_array(members, name="members", value_range=value_range, what="members"),
            records_from_array(nonmembers, name="nonmembers", value_range=value_range, what="nonmembers"),
        )
    if kind == "samples":
        values["victim.path"], artefacts.samples = _sample_set_argument(samples, "samples", "victim", value_range)
    else:
        values.update(
            {
                "victim.output_range": list(output_range),
                "victim.latent_distribution": latent_distribution,
                "victim.latent_dim": latent_dim,
            }
        )
        _model_argument(generator, "generator", values, artefacts, latent_dim, output_range, latent_distribution)
        _model_argument(discriminator, "discriminator", values, artefacts, latent_dim, output_range,
                        latent_distribution)  # fmt: skip
    if calibration is not None:
        group_overrides.append("calibration=samples")
        values["calibration.path"], artefacts.reference_samples = _sample_set_argument(
            calibration, "calibration", "calibration", value_range
        )
    for key, value in overrides.items():
        if key in GROUPS or key in ("victim", "calibration"):
            group_overrides.append(f"{key}={value}")
        else:
            values[key] = value

    keep = out_dir is not None
    run_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="ganleaks-audit-"))
    register_resolvers()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            cfg = compose(config_name="attack", overrides=group_overrides)
        with open_dict(cfg):
            for key, value in values.items():
                OmegaConf.update(cfg, key, value, merge=True, force_add=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics = attack(cfg, run_dir, artefacts=artefacts)
        scores = _read_rows(run_dir / "scores.csv", ("victim_loss", "reference_loss", "score"))
        exposed = _read_rows(run_dir / "most_exposed.csv", ("score", "loss", "nonmember_percentile"))
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return AuditResult(metrics, scores, exposed, run_dir if keep else None)


def _model_argument(value, part, values, artefacts, latent_dim, output_range, latent_distribution) -> None:
    """A generator / discriminator given as a weights file (its config keys) or a module (wrapped and checked)."""
    if value is None:
        if part == "generator":
            values["victim.weights"] = None
        return
    if _is_path(value):
        values["victim.weights" if part == "generator" else "victim.discriminator_weights"] = str(value)
        return
    from torch import nn

    from ganleaks.victims.external_networks import ExternalDiscriminator, ExternalGenerator

    if not isinstance(value, nn.Module):
        raise TypeError(f"{part}= must be a torch.nn.Module or a weights file path, got {type(value).__name__}")
    if part == "discriminator":
        artefacts.discriminator = value if isinstance(value, ExternalDiscriminator) else value.eval()
        values["victim.discriminator"] = {"_target_": f"{type(value).__module__}.{type(value).__qualname__}"}
        return
    if not isinstance(value, ExternalGenerator):
        dim = latent_dim if latent_dim is not None else getattr(value, "latent_dim", None)
        if dim is None:
            raise ValueError("give latent_dim= (the size of the latent your generator takes)")
        values["victim.latent_dim"] = int(dim)
        artefacts.generator = value  # wrapped and checked once the queries' shape is known (UserModel.networks)
    else:
        artefacts.generator = value
        values["victim.latent_dim"] = value.latent_dim
    values["victim.generator"] = {"_target_": f"{type(value).__module__}.{type(value).__qualname__}"}
