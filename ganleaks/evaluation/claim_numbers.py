"""The numbers a results document quotes about a study, computed from its attack runs.

:mod:`ganleaks.evaluation.claims` checks each claim comparison by comparison; this module sums
those comparisons up into the few numbers a sentence about a claim needs (how many hold, the range
of the differences, which ones are reversed, which AUC intervals contain chance, the cost of each
setting), so that the prose of a results document can quote them from a generated block instead of
copying them by hand. ``numbers_markdown(rows, lines)`` gives one bullet per claim the runs check
(``lines``: :func:`~ganleaks.evaluation.claims.check_claims` of the same rows) and the attack time
per setting; ``python -m ganleaks.report RUNS --doc DOC`` puts it between the document's
``<!-- report:NAME-numbers -->`` markers.

Conventions: AUCs and AUC differences with three decimals (the claims table's), differences signed;
a range ``a to b`` is the smallest and the largest point estimate; times in seconds from each run's
``wall_seconds`` (the ``wall s`` column), and the span of a study's attacks from the first to the
last time stamp of its runs' ``attack.log`` files.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from ganleaks.evaluation.runs import settings_of

VERDICTS = ("holds", "not resolved", "reversed")
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def _diff(line: list[str]) -> float:
    """The point estimate of a claims line's ``a - b [95% CI]`` cell."""
    return float(line[4].split()[0])


def _cal(row: dict) -> str:
    return "calibrated" if row.get("calibration") not in (None, "none") else "uncalibrated"


def _victim(row: dict) -> str:
    label = str(row["model"])
    if row.get("noise_multiplier") is not None:
        label += f" (sigma={row['noise_multiplier']:g})"
    return label


def _auc(row: dict) -> str:
    text = f"{row['auc']:.3f}"
    if row.get("auc_ci"):
        low, high = row["auc_ci"]
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def _range(values: list[float], fmt: str = "{:+.3f}") -> str:
    return f"{fmt.format(min(values))} to {fmt.format(max(values))}"


def _counts(lines: list[list[str]]) -> str:
    c = Counter(line[-1] for line in lines)
    return f"{c['holds']} hold, {c['not resolved']} not resolved, {c['reversed']} reversed (of {len(lines)})"


def _listed(lines: list[list[str]]) -> str:
    return "; ".join(f"{line[1]} ({line[2]} vs {line[3]}, {line[4].split()[0]})" for line in lines) or "none"


def _holds_by(lines: list[list[str]], key) -> str:
    """``KEY h of t`` per value of ``key(line)`` (first seen first): how many of a group's comparisons hold."""
    totals: dict[str, Counter] = {}
    for line in lines:
        totals.setdefault(key(line), Counter())[line[-1]] += 1
    return ", ".join(f"{name} {c['holds']} of {sum(c.values())}" for name, c in totals.items())


def _size(line: list[str]) -> str:
    match = re.search(r"\bn=(\d+)", line[1])
    return f"n={match.group(1)}" if match else "?"


def _model(line: list[str]) -> str:
    return line[1].split()[0]


def _by_size(lines: list[list[str]]) -> list[list[str]]:
    return sorted(lines, key=lambda line: int(_size(line)[2:]) if _size(line) != "?" else 0)


def _contains_chance(row: dict) -> bool:
    return bool(row.get("auc_ci")) and row["auc_ci"][0] <= 0.5 <= row["auc_ci"][1]


def _c1(rows: list[dict], lines: list[list[str]]) -> list[str]:
    sizes = sorted({row["train_size"] for row in rows if row.get("train_size") is not None})
    largest = [row for row in rows if row.get("train_size") == sizes[-1] and row.get("epsilon") is None]
    outside = [row for row in largest if row.get("auc_ci") and not _contains_chance(row)]
    unresolved = [line for line in lines if line[-1] != "holds"]
    return [
        f"**C1** (smallest vs largest n, per victim, setting and calibration): {_counts(lines)}; differences "
        f"{_range([_diff(line) for line in lines])}; not holding: {_listed(unresolved)}.",
        f"**C1** at the largest n = {sizes[-1]}: AUC {_range([row['auc'] for row in largest], '{:.3f}')} over "
        f"{len(largest)} runs; {len(largest) - len(outside)} of the {len(largest)} intervals contain 0.5; "
        "the others: "
        + ("; ".join(f"{_victim(r)} {r['setting']} {_cal(r)} {_auc(r)}" for r in outside) or "none")
        + ".",
    ]


def _by_calibration(lines: list[list[str]]) -> dict[str, list[list[str]]]:
    groups: dict[str, list[list[str]]] = defaultdict(list)
    for line in lines:
        groups["calibrated" if " calibrated" in line[1] else "uncalibrated"].append(line)
    return groups


def _c2(lines: list[list[str]]) -> list[str]:
    out = [
        f"**C2** (each knowledge level vs the next): {_counts(lines)}; reversed: "
        f"{_listed([line for line in lines if line[-1] == 'reversed'])}."
    ]
    for calibration, group in sorted(_by_calibration(lines).items(), reverse=True):
        largest = max(group, key=_diff)
        out.append(
            f"**C2** {calibration}: differences {_range([_diff(line) for line in group])} "
            f"(the largest: {largest[1]}, {largest[2]} vs {largest[3]}, {largest[4].split()[0]}, {largest[-1]})."
        )
    return out


def _c3(lines: list[list[str]]) -> list[str]:
    holding = sorted((line for line in lines if line[-1] == "holds"), key=_diff, reverse=True)
    return [
        f"**C3** (calibrated minus uncalibrated): {_counts(lines)}; differences "
        f"{_range([_diff(line) for line in lines])}; reversed: "
        f"{_listed([line for line in lines if line[-1] == 'reversed'])}.",
        f"**C3** the largest resolved gains: {_listed(holding[:3])}.",
        f"**C3** holding, by training-set size: {_holds_by(_by_size(lines), _size)}.",
    ]


def _c5(lines: list[list[str]]) -> list[str]:
    against_d = [line for line in lines if "best other" in line[1]]
    baselines = [line for line in lines if "best other" not in line[1]]
    out = []
    if baselines:
        out.append(
            f"**C5** (paper's attack vs the baseline of the same knowledge): {_counts(baselines)}; differences "
            f"{_range([_diff(line) for line in baselines])}; resolved: "
            f"{_listed([line for line in baselines if line[-1] != 'not resolved'])}."
        )
    if against_d:
        holding = [line for line in against_d if line[-1] == "holds"]
        text = f"**C5** (discriminator vs the best other setting): {_counts(against_d)}"
        if holding:
            text += (
                f"; where it holds, discriminator {_range([float(line[2]) for line in holding], '{:.3f}')} "
                f"against {_range([float(line[3]) for line in holding], '{:.3f}')}"
            )
        text += f"; not holding: {_listed([line for line in against_d if line[-1] != 'holds'])}."
        out.append(text)
        out.append(
            f"**C5** discriminator vs the best other, holding by training-set size: "
            f"{_holds_by(_by_size(against_d), _size)}; by victim: {_holds_by(sorted(against_d), _model)}."
        )
    return out


def _c6(rows: list[dict], lines: list[list[str]]) -> list[str]:
    infos = settings_of(rows)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("k") is not None and row["setting"] in infos and infos[row["setting"]].uses_k:
            groups[(_victim(row), row.get("train_size"), row["setting"], _cal(row))].append(row)
    out = [
        f"**C6** (largest vs smallest k): {_counts(lines)}; resolved: "
        f"{_listed([line for line in lines if line[-1] != 'not resolved'])}."
    ]
    for (victim, size, setting, calibration), group in sorted(groups.items(), key=lambda kv: str(kv[0])):
        group = sorted(group, key=lambda row: row["k"])
        values = ", ".join(f"{row['auc']:.3f}" for row in group)
        out.append(
            f"**C6** {victim} n={size} {setting} {calibration}: AUC {_range([r['auc'] for r in group], '{:.3f}')} "
            f"over k = {', '.join(str(row['k']) for row in group)} ({values})."
        )
    return out


def _c4(rows: list[dict], lines: list[list[str]]) -> list[str]:
    dp = [row for row in rows if row.get("epsilon") is not None]
    base = [row for row in rows if row.get("epsilon") is None]
    top = max(dp, key=lambda row: row["auc"])
    by_setting: dict[str, Counter] = defaultdict(Counter)
    for line in lines:
        by_setting[line[1].split(":")[0]][line[-1]] += 1
    out = [
        f"**C4** (no DP minus DP, same queries): {_counts(lines)}; by setting, resolved of compared: "
        + ", ".join(f"{what} {c['holds']} of {sum(c.values())}" for what, c in by_setting.items())
        + ".",
        f"**C4** DP victims: AUC {_range([row['auc'] for row in dp], '{:.3f}')} over {len(dp)} runs; "
        f"{sum(_contains_chance(row) for row in dp)} of the {len(dp)} intervals contain 0.5; the highest: "
        f"{_victim(top)} {top['setting']} {_cal(top)} {_auc(top)}.",
    ]
    if base:
        best = sorted(base, key=lambda row: row["auc"], reverse=True)
        out.append(
            "**C4** no-DP baseline: " + "; ".join(f"{row['setting']} {_cal(row)} {_auc(row)}" for row in best) + "."
        )
    quality: dict[str, float] = {}
    for row in sorted(rows, key=lambda r: -(r.get("epsilon") or float("inf"))):
        if row.get("fid_classifier") is not None:
            label = "no DP" if row.get("epsilon") is None else f"epsilon {row['epsilon']:.3g}"
            quality.setdefault(label, row["fid_classifier"])
    if quality:
        out.append(
            "**C4** sample quality (Fréchet distance): "
            + ", ".join(f"{label} {value:.0f}" for label, value in quality.items())
            + "."
        )
    return out


def _log_span(rows: list[dict]) -> tuple[datetime, datetime] | None:
    stamps = []
    for row in rows:
        log = Path(str(row.get("run_dir", ""))) / "attack.log"
        if not log.is_file():
            continue
        for text in log.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _STAMP.match(text)
            if match:
                stamps.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
    return (min(stamps), max(stamps)) if stamps else None


def timing_markdown(rows: list[dict]) -> str:
    """Attack time per setting (from each run's ``wall_seconds``) and the span of the runs' logs."""
    walls: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row.get("wall_seconds") is not None:
            walls[str(row["setting"])].append(float(row["wall_seconds"]))
    if not walls:
        return ""
    total = sum(sum(values) for values in walls.values())
    out = [
        "| setting | runs | wall s: min | median | max | share of the summed wall s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for setting in settings_of(rows):
        values = walls.get(setting)
        if values:
            out.append(
                f"| {setting} | {len(values)} | {min(values):.1f} | {statistics.median(values):.1f} | "
                f"{max(values):.1f} | {100 * sum(values) / total:.0f}% |"
            )
    out.append(f"| all | {sum(len(v) for v in walls.values())} | | | | {total:.0f} s summed |")
    span = _log_span(rows)
    if span is not None:
        seconds = (span[1] - span[0]).total_seconds()
        out += [
            "",
            f"The runs' `attack.log` files span {span[0]:%Y-%m-%d %H:%M:%S} to {span[1]:%H:%M:%S} UTC: "
            f"{seconds:.0f} s ({seconds / 60:.1f} min) from the first logged line to the last "
            "(two jobs at a time; each job's start-up before its first line is not in its log).",
        ]
    return "\n".join(out) + "\n"


def numbers_markdown(rows: list[dict], lines: list[list[str]]) -> str:
    """The numbers a results document quotes about the claims, one bullet each, then the attack time."""
    by_claim: dict[str, list[list[str]]] = defaultdict(list)
    for line in lines:
        by_claim[line[0]].append(line)
    bullets: list[str] = []
    for claim in sorted(by_claim):
        group = by_claim[claim]
        if claim == "C1":
            bullets += _c1(rows, group)
        elif claim == "C2":
            bullets += _c2(group)
        elif claim == "C3":
            bullets += _c3(group)
        elif claim == "C4":
            bullets += _c4(rows, group)
        elif claim == "C5":
            bullets += _c5(group)
        elif claim == "C6":
            bullets += _c6(rows, group)
    out = [f"* {bullet}" for bullet in bullets]
    timing = timing_markdown(rows)
    if timing:
        out += ["", timing.rstrip("\n")]
    return "\n".join(out) + "\n" if out else ""
