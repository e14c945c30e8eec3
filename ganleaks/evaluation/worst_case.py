"""The strongest attack per victim, with an interval corrected for having picked the maximum.

Taking the best of A attacks and quoting its own 95% interval overstates leakage: at chance, the
best of 4 independent attacks has an interval above 0.5 in about 10% of studies, not 2.5%. Two
honest estimates, over the attacks on ONE victim that scored the SAME queries (same ids, same labels):

* **Bonferroni** (shown by default): every attack's intervals recomputed at level ``1 - 0.05 / A``
  (the project's stratified bootstrap, seeded, with enough resamples to keep 25 in each tail); the
  strongest is the attack with the highest point AUC, reported with its corrected interval. The A
  intervals hold simultaneously with probability >= 95%, so the chosen one's does, whatever rule chose it.
* **split**: the queries are halved by id (stratified by membership, seeded; every attack uses the same
  halves); the attack with the highest AUC on the first half is measured on the second half only, with
  the usual 95% interval.

Bonferroni is the default: it names the strongest attack on all the queries, and for up to about 9
attacks its interval is narrower than the split's (which loses a factor sqrt 2 to the halving).
docs/METRICS.md, "The strongest attack, corrected".
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganleaks.evaluation.estimates import format_estimate, verdict
from ganleaks.evaluation.metrics import N_BOOTSTRAP, membership_metrics

ALPHA = 0.05
TAIL_RESAMPLES = 25  # resamples beyond each endpoint: what the default 95% interval of 1,000 resamples has
SEED = 0


def read_queries(run_dir: str | os.PathLike) -> dict[str, tuple[int, float]]:
    """``{id: (member, score)}`` of every query in ``scores.csv``; a failed query's score is NaN."""
    queries = {}
    with (Path(run_dir) / "scores.csv").open() as handle:
        for row in csv.DictReader(handle):
            try:
                value = float(row["score"])
            except (TypeError, ValueError):
                value = math.nan
            queries[row["id"]] = (int(row["member"]), value if math.isfinite(value) else math.nan)
    return queries


def resamples_for(level: float) -> int:
    """Bootstrap resamples that leave :data:`TAIL_RESAMPLES` beyond each endpoint of a ``level`` interval."""
    return max(N_BOOTSTRAP, math.ceil(TAIL_RESAMPLES / ((1 - level) / 2)))


def _metrics(queries: dict, ids: list[str], *, level: float, seed: int) -> dict[str, Any]:
    scores = torch.tensor([queries[i][1] for i in ids], dtype=torch.float64)
    labels = torch.tensor([queries[i][0] for i in ids])
    return membership_metrics(scores, labels, seed=seed, n_resamples=resamples_for(level), confidence_level=level)


def split_ids(queries: dict, seed: int = SEED) -> tuple[list[str], list[str]]:
    """Two disjoint halves of the query ids, each with half the members and half the non-members."""
    choose: list[str] = []
    measure: list[str] = []
    rng = np.random.default_rng(seed)
    for label in (1, 0):
        ids = sorted(i for i, (member, _) in queries.items() if member == label)
        order = [ids[j] for j in rng.permutation(len(ids))]
        choose += order[: len(order) // 2]
        measure += order[len(order) // 2 :]
    return sorted(choose), sorted(measure)


def strongest(attacks: dict[str, dict], *, alpha: float = ALPHA, seed: int = SEED) -> dict[str, Any]:
    """The strongest of ``attacks`` (``{name: read_queries(...)}``, all on the same queries), honestly.

    Returns ``{"attacks", "bonferroni": {"attack", "level", "metrics", "verdict"}, "split": {...}}``;
    raises ValueError when the attacks did not score the same queries with the same labels.
    """
    sets = {frozenset((i, m) for i, (m, _) in q.items()) for q in attacks.values()}
    if len(sets) != 1:
        raise ValueError("the attacks scored different queries (ids or labels differ): they cannot be compared")
    names = list(attacks)
    level = 1 - alpha / len(names)
    ids = sorted(next(iter(attacks.values())))
    corrected = {name: _metrics(attacks[name], ids, level=level, seed=seed) for name in names}
    best = max(names, key=lambda n: -math.inf if math.isnan(corrected[n]["auc"]) else corrected[n]["auc"])
    choose, measure = split_ids(attacks[names[0]], seed)
    on_first = {name: _metrics(attacks[name], choose, level=1 - alpha, seed=seed)["auc"] for name in names}
    chosen = max(names, key=lambda n: -math.inf if math.isnan(on_first[n]) else on_first[n])
    held_out = _metrics(attacks[chosen], measure, level=1 - alpha, seed=seed)
    return {
        "attacks": names,
        "bonferroni": {
            "attack": best,
            "level": level,
            "metrics": corrected[best],
            "verdict": verdict(corrected[best]),
        },
        "split": {
            "attack": chosen,
            "choose_ids": choose,
            "measure_ids": measure,
            "auc_on_choice_half": on_first[chosen],
            "metrics": held_out,
            "verdict": verdict(held_out),
        },
    }


def _victim(row: dict) -> tuple[Any, str]:
    label = f"{row.get('data')} {row.get('model')}"
    if row.get("noise_multiplier") is not None:
        label += f" (sigma={row['noise_multiplier']:g})"
    label += f" n={row.get('train_size')} seed={row.get('seed')}"
    label += _canary_label(row)
    key = os.path.normpath(str(row["victim_run_dir"])) if row.get("victim_run_dir") else label
    return key, label


def _canary_label(row: dict) -> str:
    """`` canaries=indist1000`` for a victim trained with canaries (two victims that differ only in their
    canaries are told apart), and the test-only noise override of a deliberately false claim; else ``""``."""
    if not row.get("victim_run_dir") or not row.get("run_dir"):
        return ""
    from ganleaks.evaluation.runs import resolve_victim_dir

    folder = resolve_victim_dir(row["victim_run_dir"], Path(row["run_dir"]))
    if folder is None:
        return ""
    label = ""
    try:
        record = json.loads((folder / "canaries.json").read_text())
        label += f" canaries={record.get('kind')}{record.get('m')}"
    except (OSError, ValueError, AttributeError):
        pass
    try:
        override = json.loads((folder / "privacy.json").read_text()).get("test_only_noise_override")
        if override is not None:
            label += f" (TEST ONLY: trained with sigma={float(override):g})"
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return label


def _attack_name(row: dict) -> str:
    name = f"{row.get('setting')}/{row.get('calibration')}"
    if row.get("distance") not in (None, "l2"):
        name += f" {row['distance']}"
    if row.get("k") is not None:
        name += f" k={row['k']}"
    return name


def worst_case(rows: list[dict], *, seed: int = SEED) -> tuple[list[dict], list[str]]:
    """Per victim and query set: :func:`strongest` over its attack runs; and notes (query sets that differ).

    Runs of one victim that scored different query sets are never pooled: each set is its own group.
    """
    groups: dict[tuple, dict[str, dict]] = defaultdict(dict)
    labels: dict[Any, str] = {}
    for row in rows:
        if not row.get("run_dir") or not (Path(row["run_dir"]) / "scores.csv").is_file():
            continue
        key, label = _victim(row)
        labels[key] = label
        queries = read_queries(row["run_dir"])
        query_set = frozenset((i, m) for i, (m, _) in queries.items())
        group = groups[(key, query_set)]
        name, n = _attack_name(row), 2
        while name in group:
            name, n = f"{_attack_name(row)} #{n}", n + 1
        group[name] = queries
    per_victim: dict[Any, int] = defaultdict(int)
    for key, _ in groups:
        per_victim[key] += 1
    notes = [
        f"{labels[key]}: its runs scored {count} different query sets; attacks are compared within each set only"
        for key, count in per_victim.items()
        if count > 1
    ]
    results = []
    for (key, query_set), attacks in groups.items():
        found = strongest(attacks, seed=seed)
        results.append({"victim": labels[key], "n_queries": len(query_set), **found})
    results.sort(key=lambda r: (r["victim"], r["n_queries"]))
    return results, notes


def worst_case_markdown(results: list[dict], notes: list[str]) -> str:
    """One sentence per victim, then the table (the uncorrected maximum is never shown)."""
    if not results:
        return ""
    out = []
    for r in results:
        b, s = r["bonferroni"], r["split"]
        out.append(
            f"* {r['victim']} ({r['n_queries']} queries): the strongest of {len(r['attacks'])} attacks is "
            f"{b['attack']}, AUC {format_estimate(b['metrics'], 'auc', with_interval=True)} "
            f"({b['level']:.2%} interval, Bonferroni over the {len(r['attacks'])} attacks): "
            f"{b['verdict']['status'].upper()}; chosen on half of the queries and measured on the other: "
            f"{s['attack']}, AUC {format_estimate(s['metrics'], 'auc', with_interval=True)}."
        )
    out += [f"* note: {note}" for note in notes]
    out += [
        "",
        "| victim | queries | attacks compared | strongest attack | AUC [Bonferroni interval] | "
        "TPR@1%FPR [Bonferroni interval] | verdict (corrected) | split: chosen attack | "
        "its AUC on the other half [95%] |",
        "|---|---:|---:|---|---:|---:|---|---|---:|",
    ]
    for r in results:
        b, s = r["bonferroni"], r["split"]
        out.append(
            f"| {r['victim']} | {r['n_queries']} | {len(r['attacks'])} | {b['attack']} | "
            f"{format_estimate(b['metrics'], 'auc')} | {format_estimate(b['metrics'], 'tpr_at_fpr_0.01')} | "
            f"{b['verdict']['status']} | {s['attack']} | {format_estimate(s['metrics'], 'auc')} |"
        )
    return "\n".join(out) + "\n"


def worst_case_json(results: list[dict], notes: list[str]) -> str:
    def plain(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain({"victims": results, "notes": notes}), indent=1) + "\n"
