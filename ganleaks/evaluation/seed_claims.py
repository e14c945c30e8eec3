"""A study's claims at several training seeds: the spread of every AUC and comparison, and Holm's correction.

Each seed's attack runs give the claims' comparisons (:func:`ganleaks.evaluation.claims.check_claims`, each a
difference of AUCs with its bootstrap interval and a two-sided p-value). A claim that is a count of wins (C1,
C2, C3, C5, C6) makes many comparisons, so its count is corrected: Holm's step-down procedure at 0.05 over every
comparison of that claim at every seed (the family). A comparison **holds across seeds** only where it holds
after the correction at every seed; it is **reversed** where it is reversed (after the correction) at any.

    python -m ganleaks.evaluation.seed_claims results/cpu_size results/cpu_size_seeds \\
        --out results/cpu_size_seeds/report --doc docs/RESULTS.md

``--doc`` rewrites the ``cpu_size-seeds`` block of that document (``--check``: fail instead when it is stale);
``--block cpu_k-seeds`` names another block (the k study's, for C6).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganleaks.evaluation.claims import check_claims, holm
from ganleaks.evaluation.estimates import format_estimate
from ganleaks.evaluation.runs import gather

BLOCK = "cpu_size-seeds"
ALPHA = 0.05
COUNTED = ("C1", "C2", "C3", "C5", "C6")
_DIFFERENCE = re.compile(r"^([-+]?[\d.]+) \[([-+]?[\d.]+), ([-+]?[\d.]+)\]$")


@dataclass
class Comparison:
    claim: str
    key: str  # the comparison without the seed-dependent choice (C5's "best other" setting)
    seed: int
    what: str
    difference: float
    interval: tuple[float, float]
    verdict: str  # uncorrected: holds / not resolved / reversed
    p: float
    holds: bool = False  # after Holm, over the claim's family
    reversed: bool = False
    part: str = ""  # C5 has two: the discriminator against the best other setting; an attack against its baseline

    @property
    def family(self) -> tuple[str, str]:
        return (self.claim, self.part)


def _key(claim: str, what: str) -> str:
    return re.sub(r" \([a-z]+\)$", "", what) if claim == "C5" else what


def comparisons(rows: Sequence[dict]) -> list[Comparison]:
    """Every claim comparison of every seed, with Holm's correction applied per claim over all seeds."""
    by_seed: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_seed[int(row.get("seed") or 0)].append(row)
    found: list[Comparison] = []
    for seed in sorted(by_seed):
        for claim, what, _a, _b, difference, _n, verdict, p in check_claims(by_seed[seed], with_p=True):
            match = _DIFFERENCE.match(difference)
            if match is None:
                raise ValueError(f"cannot read the difference {difference!r} of {claim} {what}")
            point, low, high = (float(v) for v in match.groups())
            part = "" if claim != "C5" else ("discriminator vs the best other" if "best other" in what else
                                             "an attack vs its baseline")  # fmt: skip
            found.append(
                Comparison(claim, _key(claim, what), seed, what, point, (low, high), verdict, float(p), part=part)
            )
    for name in {c.family for c in found}:
        family = [c for c in found if c.family == name]
        for comparison, rejected in zip(family, holm([c.p for c in family], ALPHA), strict=True):
            comparison.holds = rejected and comparison.difference > 0
            comparison.reversed = rejected and comparison.difference < 0
    return found


@dataclass
class SeedStudy:
    rows: list[dict]
    comparisons: list[Comparison]

    @property
    def seeds(self) -> list[int]:
        return sorted({c.seed for c in self.comparisons})

    @property
    def families(self) -> list[tuple[str, str]]:
        """(claim, part) of the counted claims, in order."""
        found = {c.family for c in self.comparisons if c.claim in COUNTED}
        return sorted(found, key=lambda f: (COUNTED.index(f[0]), f[1]))

    def keys(self, family: tuple[str, str]) -> list[str]:
        return list(dict.fromkeys(c.key for c in self.comparisons if c.family == family))

    def of(self, family: tuple[str, str], key: str) -> dict[int, Comparison]:
        return {c.seed: c for c in self.comparisons if (c.family, c.key) == (family, key)}

    def members(self, family: tuple[str, str]) -> list[Comparison]:
        return [c for c in self.comparisons if c.family == family]


def _label(family: tuple[str, str]) -> str:
    claim, part = family
    return f"{claim} ({part})" if part else claim


def _across(cells: dict[int, Comparison], seeds: list[int]) -> str:
    if any(c.reversed for c in cells.values()):
        return "reversed at a seed"
    if len(cells) == len(seeds) and all(c.holds for c in cells.values()):
        return "holds at every seed"
    held = sum(c.holds for c in cells.values())
    return f"holds at {held} of {len(seeds)}" if held else "not resolved"


def claim_table(study: SeedStudy) -> list[str]:
    seeds = study.seeds
    lines = [
        "| claim | comparisons per seed | hold, uncorrected (seed "
        + " / ".join(map(str, seeds))
        + ") | Holm family | hold after Holm (seed "
        + " / ".join(map(str, seeds))
        + ") | **hold at every seed after Holm** | reversed at a seed after Holm |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in study.families:
        keys = study.keys(name)
        family = study.members(name)
        per_seed = [[c for c in family if c.seed == seed] for seed in seeds]
        uncorrected = " / ".join(str(sum(c.verdict == "holds" for c in group)) for group in per_seed)
        corrected = " / ".join(str(sum(c.holds for c in group)) for group in per_seed)
        every = sum(_across(study.of(name, key), seeds) == "holds at every seed" for key in keys)
        reversed_ = sum(_across(study.of(name, key), seeds) == "reversed at a seed" for key in keys)
        counts = sorted({len(group) for group in per_seed})
        lines.append(
            f"| {_label(name)} | {'-'.join(map(str, counts))} | {uncorrected} | {len(family)} | {corrected} | "
            f"**{every} of {len(keys)}** | {reversed_} |"
        )
    return lines


def _cell(comparison: Comparison | None) -> str:
    if comparison is None:
        return ""
    mark = " ✓" if comparison.holds else (" ✗" if comparison.reversed else "")
    low, high = comparison.interval
    return f"{comparison.difference:+.3f} [{low:+.3f}, {high:+.3f}]{mark}"


def comparison_table(study: SeedStudy) -> list[str]:
    seeds = study.seeds
    lines = [
        "| claim | comparison | " + " | ".join(f"seed {s}: difference [95% CI]" for s in seeds) + " | across seeds |",
        "|---|---|" + "---:|" * len(seeds) + "---|",
    ]
    for name in study.families:
        for key in study.keys(name):
            cells = study.of(name, key)
            texts = " | ".join(_cell(cells.get(seed)) for seed in seeds)
            lines.append(f"| {name[0]} | {key} | {texts} | {_across(cells, seeds)} |")
    return lines


def auc_table(study: SeedStudy) -> list[str]:
    seeds = study.seeds
    lines = [
        "| victim | n | setting | " + " | ".join(f"AUC seed {s} [95% CI]" for s in seeds) + " | range over seeds |",
        "|---|---:|---|" + "---:|" * (len(seeds) + 1),
    ]
    cells = _auc_cells(study.rows)
    for key in sorted(cells, key=lambda k: (k[0], int(k[1][2:]), k[2], k[3])):
        model, size, setting, calibration = key
        by_seed = cells[key]
        values = [float(r["auc"]) for r in by_seed.values()]
        texts = " | ".join(
            format_estimate(by_seed[s], "auc", 3, with_interval=True) if s in by_seed else "" for s in seeds
        )
        label = setting if calibration == "uncalibrated" else f"{setting}, calibrated"
        lines.append(f"| {model} | {size[2:]} | {label} | {texts} | {max(values) - min(values):.3f} |")
    return lines


def bullets(study: SeedStudy) -> list[str]:
    """The numbers the prose and the verdicts at a glance quote, one line per claim."""
    seeds = study.seeds
    lines = []
    for name in study.families:
        keys = study.keys(name)
        family = study.members(name)
        verdicts = [_across(study.of(name, key), seeds) for key in keys]
        every = verdicts.count("holds at every seed")
        some = sum(v.startswith("holds at ") and v != "holds at every seed" for v in verdicts)
        reversed_ = verdicts.count("reversed at a seed")
        uncorrected = [sum(c.verdict == "holds" for c in family if c.seed == seed) for seed in seeds]
        corrected = [sum(c.holds for c in family if c.seed == seed) for seed in seeds]
        lines.append(
            f"* **{name[0]}**{f' ({name[1]})' if name[1] else ''} at {len(seeds)} seeds: {len(keys)} comparisons per "
            f"seed, {len(family)} in Holm's family; "
            f"{every} of {len(keys)} hold at every seed after Holm, {some} at some seeds only, {reversed_} reversed "
            f"at a seed; holding uncorrected per seed {' / '.join(map(str, uncorrected))}, after Holm "
            f"{' / '.join(map(str, corrected))}"
        )
    spreads = []
    for key, by_seed in _auc_cells(study.rows).items():
        if len(by_seed) == len(seeds):
            values = [float(r["auc"]) for r in by_seed.values()]
            spreads.append((max(values) - min(values), key))
    if spreads:
        widths = np.array([s for s, _ in spreads])
        largest = max(spreads)
        lines.append(
            f"* AUC spread over {len(seeds)} seeds (largest minus smallest, {len(spreads)} attack cells): median "
            f"{np.median(widths):.3f}, largest {largest[0]:.3f} ({' '.join(map(str, largest[1]))})"
        )
    return lines


def _auc_cells(rows: Sequence[dict]) -> dict[tuple, dict[int, dict]]:
    """``{(model, "n=<size>", setting, calibration): {seed: row}}``; a setting run at several k (the k study) is
    one cell per k (``fullbb k=300``)."""
    ks: dict[tuple, set] = defaultdict(set)
    for row in rows:
        ks[(row["model"], row["train_size"], str(row["setting"]))].add(row.get("k"))
    cells: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for row in rows:
        calibrated = "calibrated" if row.get("calibration") not in (None, "none") else "uncalibrated"
        setting = str(row["setting"])
        if len(ks[(row["model"], row["train_size"], setting)]) > 1:
            setting += f" k={row['k']}"
        key = (row["model"], f"n={row['train_size']}", setting, calibrated)
        cells[key][int(row.get("seed") or 0)] = row
    return cells


def markdown(study: SeedStudy) -> str:
    lines = [
        f"Seeds {', '.join(map(str, study.seeds))}; each claim's comparisons as in the study's own claims (paired "
        f"or, for C1, unpaired bootstrap differences of AUC); Holm's correction at {ALPHA:g} over every comparison "
        "of a claim at every seed (p-values from the bootstrap standard error).",
        "",
        *claim_table(study),
        "",
        *bullets(study),
        "",
        "<details><summary>Every comparison at every seed (✓ holds, ✗ reversed, after Holm)</summary>",
        "",
        *comparison_table(study),
        "",
        "</details>",
        "",
        "<details><summary>Every AUC at every seed</summary>",
        "",
        *auc_table(study),
        "",
        "</details>",
    ]
    return "\n".join(lines).rstrip() + "\n"


def figure(study: SeedStudy, path: str | os.PathLike) -> Path:
    """Each attack cell's AUC at every seed against its seed-0 AUC: the spread the seeds give."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganleaks.evaluation.plots import save_figure

    fig, ax = plt.subplots(figsize=(5, 5))
    seeds = study.seeds
    for i, seed in enumerate(seeds[1:], start=1):
        xs, ys = [], []
        for by_seed in _auc_cells(study.rows).values():
            if seeds[0] in by_seed and seed in by_seed:
                xs.append(float(by_seed[seeds[0]]["auc"]))
                ys.append(float(by_seed[seed]["auc"]))
        ax.scatter(xs, ys, s=12, color=f"C{i}", label=f"seed {seed}")
    ax.plot([0.4, 1.0], [0.4, 1.0], color="grey", linewidth=1)
    ax.set_xlabel(f"AUC at seed {seeds[0]}")
    ax.set_ylabel("AUC at another seed")
    ax.set_title("every attack cell of the study", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def build(paths: Sequence[str | os.PathLike]) -> tuple[SeedStudy, str]:
    rows = [row for row in gather(paths) if row.get("victim_kind", "run") == "run" and not row.get("privacy_audit")]
    if len({int(row.get("seed") or 0) for row in rows}) < 2:
        raise ValueError(f"the runs under {', '.join(map(str, paths))} hold fewer than 2 seeds")
    study = SeedStudy(rows, comparisons(rows))
    return study, markdown(study)


def main(argv: Sequence[str] | None = None) -> int:
    """The study command line, with ``--block NAME`` for a study other than the size study (``cpu_k-seeds``)."""
    import sys

    from ganleaks.evaluation.study_cli import run_study_command

    args = list(sys.argv[1:] if argv is None else argv)
    block = BLOCK
    if "--block" in args:
        at = args.index("--block")
        if at + 1 >= len(args):
            print("error: --block needs a block name", file=sys.stderr)
            return 2
        block = args[at + 1]
        del args[at : at + 2]
    return run_study_command(
        args,
        prog="python -m ganleaks.evaluation.seed_claims",
        description=__doc__,
        block=block,
        build=build,
        figure=figure,
        markdown_name="seed_claims.md",
        figure_name="auc_across_seeds.png",
        paths_help="folders of a study's attack runs at several seeds",
    )


if __name__ == "__main__":
    raise SystemExit(main())
