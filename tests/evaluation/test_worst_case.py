"""The strongest attack per victim, corrected for picking the maximum (ganleaks.evaluation.worst_case)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganleaks.evaluation.worst_case import split_ids, strongest, worst_case, worst_case_markdown


def _queries(scores: np.ndarray, labels: np.ndarray, prefix: str = "") -> dict:
    return {f"{prefix}{i}": (int(m), float(s)) for i, (m, s) in enumerate(zip(labels, scores, strict=True))}


def _labels(n: int) -> np.ndarray:
    return np.array([1] * n + [0] * n)


def test_correction_keeps_chance_attacks_at_chance():
    """4 attacks at chance, 100 seeded studies: the corrected maximum rarely excludes 0.5, uncorrected more often."""
    rng = np.random.default_rng(1)
    n, corrected, uncorrected = 60, 0, 0
    from ganleaks.evaluation.metrics import membership_metrics

    for _ in range(100):
        attacks = {f"a{j}": _queries(rng.normal(size=2 * n), _labels(n)) for j in range(4)}
        found = strongest(attacks)
        corrected += found["bonferroni"]["metrics"]["auc_ci"][0] > 0.5
        plain = {
            name: membership_metrics(torch.tensor([v[1] for v in q.values()]), torch.tensor([v[0] for v in q.values()]))
            for name, q in attacks.items()
        }
        best = max(plain, key=lambda k: plain[k]["auc"])
        uncorrected += plain[best]["auc_ci"][0] > 0.5
    assert corrected <= 6
    assert uncorrected > corrected


def test_a_strong_attack_among_weak_ones_is_named():
    rng = np.random.default_rng(0)
    n = 150
    labels = _labels(n)
    attacks = {f"weak{j}": _queries(rng.normal(size=2 * n), labels) for j in range(3)}
    attacks["strong"] = _queries(rng.normal(size=2 * n) + 1.5 * labels, labels)
    found = strongest(attacks)
    assert found["bonferroni"]["attack"] == "strong"
    assert found["bonferroni"]["level"] == pytest.approx(1 - 0.05 / 4)
    assert found["bonferroni"]["metrics"]["auc_ci"][0] > 0.5
    assert found["bonferroni"]["verdict"]["status"] == "leakage"
    assert found["split"]["attack"] == "strong"
    assert found["split"]["metrics"]["auc_ci"][0] > 0.5


def test_split_halves_are_disjoint_and_stratified():
    rng = np.random.default_rng(0)
    queries = _queries(rng.normal(size=80), _labels(40))
    choose, measure = split_ids(queries)
    assert not set(choose) & set(measure)
    assert set(choose) | set(measure) == set(queries)
    assert sum(queries[i][0] for i in choose) == 20 == sum(queries[i][0] for i in measure)
    found = strongest({"a": queries, "b": dict(queries)})
    assert found["split"]["metrics"]["n_members"] + found["split"]["metrics"]["n_nonmembers"] == len(measure)
    assert found["split"]["measure_ids"] == measure


def test_different_query_sets_are_not_compared():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="different queries"):
        strongest(
            {"a": _queries(rng.normal(size=40), _labels(20)), "b": _queries(rng.normal(size=40), _labels(20), "x")}
        )


def _write_run(folder, scores, labels, setting, prefix=""):
    folder.mkdir(parents=True)
    lines = ["id,member,victim_loss,reference_loss,score"]
    lines += [f"{prefix}{i},{m},0,,{s}" for i, (m, s) in enumerate(zip(labels, scores, strict=True))]
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    return {
        "run_dir": str(folder),
        "victim_run_dir": "train/v",
        "setting": setting,
        "calibration": "none",
        "data": "d",
        "model": "dcgan",
        "train_size": 64,
        "seed": 0,
    }


def test_report_table_on_a_fake_results_tree(tmp_path):
    rng = np.random.default_rng(0)
    labels = _labels(100)
    rows = [
        _write_run(tmp_path / "a", rng.normal(size=200) + 2 * labels, labels, "whitebox"),
        _write_run(tmp_path / "b", rng.normal(size=200), labels, "fullbb"),
        _write_run(tmp_path / "c", rng.normal(size=200), labels, "partialbb", prefix="other"),
    ]
    results, notes = worst_case(rows)
    assert len(results) == 2  # the run on other queries is its own group, never pooled
    assert sorted(len(r["attacks"]) for r in results) == [1, 2]
    assert notes and "2 different query sets" in notes[0]
    text = worst_case_markdown(results, notes)
    assert "| whitebox/none |" in text and "leakage" in text
    assert "97.50% interval" in text
    json.dumps(results)


def test_victims_that_differ_only_in_their_canaries_are_labelled_apart(tmp_path):
    """Two victims with the same data, model, size and seed but other canaries (or a test-only false claim)
    are separate victims: their lines must not read the same."""
    import json

    rng = np.random.default_rng(0)
    labels = _labels(100)
    rows = []
    for kind, override in (("ood", None), ("indist", None), ("indist", 0.0)):
        name = f"{kind}-{override}"
        victim = tmp_path / "train" / name
        victim.mkdir(parents=True)
        (victim / "canaries.json").write_text(json.dumps({"kind": kind, "m": 200}))
        if override is not None:
            (victim / "privacy.json").write_text(json.dumps({"noise_multiplier": 8.0, "test_only_noise_override": 0.0}))
        row = _write_run(tmp_path / "attack" / name, rng.normal(size=200), labels, "discriminator")
        row["victim_run_dir"] = str(victim)
        rows.append(row)
    results, _ = worst_case(rows)
    victims = sorted(r["victim"] for r in results)
    assert victims == [
        "d dcgan n=64 seed=0 canaries=indist200",
        "d dcgan n=64 seed=0 canaries=indist200 (TEST ONLY: trained with sigma=0)",
        "d dcgan n=64 seed=0 canaries=ood200",
    ]
