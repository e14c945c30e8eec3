"""The report's row of an attack run: the facts its run.json recorded, else what older runs hold."""

from __future__ import annotations

import json
from pathlib import Path

from ganleaks.evaluation.runs import load_run

METRICS = {"auc": 0.75, "n_members": 10, "n_nonmembers": 10, "setting": "fullbb", "seed": 0}
# What the attack was composed with; the facts say what it actually attacked.
CONFIG = {
    "data": {"name": "digits", "train_size": 32},
    "model": {"name": "dcgan"},
    "privacy": {"enabled": False},
    "setting": {"name": "fullbb", "k": 100},
    "calibration": {"name": "none"},
    "distance": {"name": "l2"},
    "seed": 0,
}


def write_run(run: Path, facts: dict | None) -> Path:
    run.mkdir(parents=True)
    metrics = {**METRICS, **(facts or {})}
    (run / "metrics.json").write_text(json.dumps(metrics))
    record = {"version": 1 if facts is None else 2, "config": CONFIG, "metrics": metrics}
    if facts is not None:
        record["facts"] = facts
    (run / "run.json").write_text(json.dumps(record))
    return run


def test_the_row_holds_the_recorded_facts(tmp_path):
    facts = {
        "setting": "fullbb",
        "k": 256,
        "calibration": "reference",
        "distance": "l2",
        "victim_run_dir": str(tmp_path / "elsewhere"),
        "reference_run_dir": str(tmp_path / "reference"),
        "data": "image_folder",
        "model": "wgangp",
        "train_size": 24,
        "privacy": "dp",
        "noise_multiplier": 2.0,
        "epsilon": 3.5,
        "delta": 1e-5,
        "seed": 3,
    }
    row = load_run(write_run(tmp_path / "run", facts))
    for key in ("data", "model", "train_size", "privacy", "noise_multiplier", "epsilon", "k", "calibration", "seed"):
        assert row[key] == facts[key], key


def test_a_fact_the_run_does_not_have_is_empty_not_taken_from_the_config(tmp_path):
    facts = {"setting": "discriminator", "data": "digits", "model": "dcgan", "train_size": 32, "privacy": "none"}
    row = load_run(write_run(tmp_path / "run", facts))
    assert row["k"] is None and row["epsilon"] is None and row["privacy"] == "none"


def test_a_run_from_before_the_facts_reads_its_config(tmp_path):
    row = load_run(write_run(tmp_path / "run", None))
    described = (row["data"], row["model"], row["train_size"], row["k"], row["setting"])
    assert described == ("digits", "dcgan", 32, 100, "fullbb")
    assert row["privacy"] == "none" and row["epsilon"] is None
