"""Copy a study's small files into a folder meant for git (``results/<study>``).

    python -m ganleaks.evaluation.publish outputs/cpu_size results/cpu_size --commit <sha> --command "..."

What a reader needs to check or re-use the results, and nothing that is large or machine-bound:

* every attack run (a folder with ``metrics.json``): ``metrics.json``, ``scores.csv``, ``run.json``,
  ``reference_losses.csv`` (several reference models),
  ``attack.log`` and ``.hydra/config.yaml`` / ``.hydra/overrides.yaml``;
* every trained model (a folder with ``trained_on.json``): the exported weights (``*.safetensors``)
  with their JSON (``generator.json``, ``manifest.json``, ``privacy.json``, ``quality.json``, ...),
  the resolved config as ``config.yaml``, ``train.log``, the last sample grid as ``final.png`` and a
  ``run.json`` naming the commit, the command, the job's overrides and its training wall time.

No checkpoints, sample batches, attack batches or logger folders. The layout under the source is
kept, so ``python attack.py ... paths.root=results/<study>`` re-attacks the published models and
``python -m ganleaks.report results/<study>`` reads the published attacks. Files already there are
overwritten with the source's; nothing else in the destination is touched.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ganleaks.io import atomic_write_text

log = logging.getLogger(__name__)

ATTACK_FILES = (
    "metrics.json",
    "scores.csv",
    "reference_losses.csv",  # calibration=references: each reference model's loss per query
    "run.json",
    "attack.log",
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
)
MODEL_PATTERNS = ("*.safetensors", "*.json", "train.log")
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\]")


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _train_wall_seconds(train_log: Path) -> int | None:
    """Seconds between the first and the last timestamped line of a ``train.log``."""
    if not train_log.is_file():
        return None
    stamps = [m.group(1) for line in train_log.read_text().splitlines() if (m := _LOG_TIME.match(line))]
    if len(stamps) < 2:
        return None
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in (stamps[0], stamps[-1]))
    return int((last - first).total_seconds())


def publish_attack(run: Path, target: Path) -> int:
    copied = 0
    for name in ATTACK_FILES:
        if (run / name).is_file():
            _copy(run / name, target / name)
            copied += 1
    return copied


def publish_model(run: Path, target: Path, commit: str | None, command: str | None) -> int:
    copied = 0
    for pattern in MODEL_PATTERNS:
        for path in sorted(run.glob(pattern)):
            if path.is_file() and path.name != "run.json":
                _copy(path, target / path.name)
                copied += 1
    if (run / ".hydra" / "config.yaml").is_file():
        _copy(run / ".hydra" / "config.yaml", target / "config.yaml")
        copied += 1
    grids = sorted((run / "samples").glob("*.png")) if (run / "samples").is_dir() else []
    final = run / "samples" / "final.png"
    if final.is_file() or grids:
        _copy(final if final.is_file() else grids[-1], target / "final.png")
        copied += 1
    overrides_file = run / ".hydra" / "overrides.yaml"
    overrides = (
        [line[2:].strip() for line in overrides_file.read_text().splitlines()] if overrides_file.is_file() else []
    )
    facts = {
        "commit": commit,
        "command": command,
        "job_overrides": [o for o in overrides if o],
        "train_wall_s": _train_wall_seconds(run / "train.log"),
        "final_sample_grid": "final.png" if (target / "final.png").is_file() else None,
    }
    atomic_write_text(target / "run.json", json.dumps(facts, indent=2) + "\n")
    return copied + 1


def publish(
    source: str | Path,
    destination: str | Path,
    commit: str | None = None,
    command: str | None = None,
    only: str | None = None,
) -> dict:
    """Copy the small files of every attack run and trained model under ``source`` to ``destination``.

    ``only="attacks"`` or ``"models"`` copies one kind (a study's models are often published a
    stage earlier, with facts of their own in ``run.json`` that a later pass must not replace).

    Returns ``{"attacks": n, "models": m, "files": f}``.

    Raises:
        FileNotFoundError: ``source`` is not a folder.
    """
    source, destination = Path(source), Path(destination)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a folder; pass a study's root (e.g. outputs/cpu_size)")
    counts = {"attacks": 0, "models": 0, "files": 0}
    for marker, kind in (("metrics.json", "attacks"), ("trained_on.json", "models")):
        if only not in (None, kind):
            continue
        for path in sorted(source.rglob(marker)):
            run = path.parent
            if any(part in ("batches", "checkpoints", ".hydra") for part in run.relative_to(source).parts):
                continue
            target = destination / run.relative_to(source)
            if kind == "attacks":
                counts["files"] += publish_attack(run, target)
            else:
                counts["files"] += publish_model(run, target, commit, command)
            counts[kind] += 1
    log.info("published %d attack runs and %d models (%d files) -> %s", *counts.values(), destination)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ganleaks.evaluation.publish",
        description="Copy a study's small files (metrics, scores, configs, exported weights) into a folder for git.",
    )
    parser.add_argument("source", help="the study's root, e.g. outputs/cpu_size")
    parser.add_argument("destination", help="where to copy, e.g. results/cpu_size")
    parser.add_argument("--commit", default=None, help="the commit the study ran at (recorded in models' run.json)")
    parser.add_argument("--command", default=None, help="the command that trained the models (recorded likewise)")
    parser.add_argument("--only", choices=["attacks", "models"], default=None, help="copy one kind of run only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        counts = publish(args.source, args.destination, args.commit, args.command, args.only)
    except FileNotFoundError as error:
        parser.exit(2, f"error: {error}\n")
    print(f"{counts['attacks']} attack runs, {counts['models']} models, {counts['files']} files -> {args.destination}")


if __name__ == "__main__":
    main()
