"""The privacy-audit study: the epsilon a DP victim's accountant claims against the lower bound its canaries prove.

For each audited attack run (``attack.py audit=canaries``) under the folders given: the victim (its noise
multiplier, or no DP, or a claim known to be false), the canary kind (``ood`` or ``indist``, from the
victim's ``canaries.json``), the attack setting, the claim, the AUC on the canaries, the guesses, both
epsilon lower bounds (one-run; Gaussian-DP), the verdict and the victim's sample quality; the ceiling that
``m`` canaries allow; the two canary kinds side by side on the same victims; and a figure of audited against
claimed epsilon with the diagonal drawn.

    python -m ganleaks.evaluation.audit_study results/cpu_audit results/cpu_audit_nodp \\
        --out results/cpu_audit/report --doc docs/RESULTS.md

``--doc`` rewrites the ``audit-study`` block of that document (``--check``: fail instead when it is stale).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ganleaks.evaluation.estimates import format_estimate
from ganleaks.evaluation.privacy_audit import gdp_epsilon_lower_bound, one_run_epsilon_lower_bound
from ganleaks.evaluation.runs import gather, resolve_victim_dir

BLOCK = "audit-study"
NO_DP = "no DP"


def _read(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def victim_label(privacy: dict | None) -> str:
    """``no DP``; ``DP sigma 1``; a claim known to be false: ``buggy: sigma 0 trained, 8 claimed``."""
    if not privacy:
        return NO_DP
    told = float(privacy.get("noise_multiplier") or 0.0)
    used = privacy.get("test_only_noise_override")
    if used is not None:
        return f"buggy: sigma {float(used):g} trained, {told:g} claimed"
    return f"DP sigma {told:g}"


def study_rows(rows: Sequence[dict]) -> list[dict]:
    """The audited runs, each with ``victim`` (its label), ``canaries`` (the kind), ``m``, ``claimed``
    (epsilon or None), ``bounds`` (one-run, Gaussian-DP), ``verdict`` and the victim's ``fid``; sorted by
    victim (no DP last), canary kind and setting. Two runs for one cell are refused."""
    out: dict[tuple, dict] = {}
    for row in rows:
        audit = row.get("privacy_audit")
        if not audit:
            continue
        victim_dir = resolve_victim_dir(row.get("victim_run_dir"), Path(row["run_dir"]))
        record = _read(victim_dir / "canaries.json") if victim_dir else None
        privacy = _read(victim_dir / "privacy.json") if victim_dir else None
        claimed = audit.get("claimed_epsilon")
        item = {
            # a user's artefact has no privacy.json: its claim is the one declared (victim.privacy.epsilon)
            "victim": victim_label(privacy) if privacy or not isinstance(claimed, (int, float)) else "declared claim",
            "noise_multiplier": None if not privacy else privacy.get("noise_multiplier"),
            "buggy": bool(privacy and privacy.get("test_only_noise_override") is not None),
            "canaries": (record or {}).get("kind") or "?",
            "canary_source": (record or {}).get("source"),
            "setting": _attack_label(row),
            "train_size": row.get("train_size"),
            "m": int(audit["m"]),
            "n_included": audit.get("n_included"),
            "guesses": audit.get("guesses"),
            "correct": audit.get("correct"),
            "one_run": float(audit["epsilon_lower_bound_one_run"]),
            "gdp": float(audit["epsilon_lower_bound_gdp"]),
            "claimed": float(claimed) if isinstance(claimed, (int, float)) else None,
            "delta": audit.get("delta"),
            "verdict": audit.get("verdict"),
            "alpha": audit.get("alpha"),
            "grid": audit.get("grid"),
            "guess_rule": audit.get("guess_rule"),
            "fid": row.get("fid_classifier"),
            "row": row,
        }
        key = (item["victim"], item["train_size"], item["m"], item["canaries"], item["setting"], row.get("seed"))
        if key in out:
            raise ValueError(f"two audits for {key}: {out[key]['row']['run_dir']} and {row['run_dir']}")
        out[key] = item
    return sorted(out.values(), key=_order)


def _attack_label(row: dict) -> str:
    """The setting, with its calibration if any: ``discriminator``, ``discriminator, calibrated (reference)``."""
    calibration = row.get("calibration")
    setting = str(row.get("setting"))
    return setting if calibration in (None, "none") else f"{setting}, calibrated ({calibration})"


def _order(item: dict) -> tuple:
    kind = 2 if item["victim"] == NO_DP else (0 if item["buggy"] else 1)
    sigma = -(item["noise_multiplier"] or 0.0)  # most noise (smallest claim) first
    return (-int(item["m"]), int(item["train_size"] or 0), kind, sigma, item["canaries"], item["setting"])


def ceiling(m: int, pairs: Sequence[Sequence[int]], alpha: float, delta: float) -> tuple[float, float]:
    """The largest bounds ``m`` canaries can give with the recorded guess grid (``(k_in, k_out)`` pairs, each
    tested at ``alpha / G``): every guess right."""
    level = alpha / len(pairs)
    counts = [int(k_in) + int(k_out) for k_in, k_out in pairs]
    one_run = max(one_run_epsilon_lower_bound(m, r, r, delta, level) for r in counts)
    gdp = max(gdp_epsilon_lower_bound(m, r, r, delta, level) for r in counts)
    return one_run, gdp


def _ceiling_of(item: dict) -> tuple[float, float]:
    pairs = item["grid"] or [[item["m"], 0]]
    return ceiling(item["m"], pairs, item["alpha"] or 0.05, float(item["delta"] or 1e-5))


def _claim(item: dict) -> str:
    return "none" if item["claimed"] is None else f"{item['claimed']:.2f}"


def table(items: Sequence[dict]) -> list[str]:
    lines = [
        "| members | canaries (m) | victim | setting | claimed eps | AUC on the canaries [95% CI] | "
        "guesses (correct) | eps lower bound, one-run | eps lower bound, Gaussian-DP | verdict | FID (classifier) |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for item in items:
        fid = "" if item["fid"] is None else f"{item['fid']:.0f}"
        lines.append(
            f"| {item['train_size']} | {item['canaries']} ({item['m']}) | {item['victim']} | {item['setting']} | "
            f"{_claim(item)} | "
            f"{format_estimate(item['row'], 'auc')} | {item['guesses']} ({item['correct']}) | "
            f"{item['one_run']:.2f} | {item['gdp']:.2f} | {item['verdict']} | {fid} |"
        )
    return lines


def kind_comparison(items: Sequence[dict]) -> list[str]:
    """The two canary kinds on the same victim and setting: which gives the larger one-run bound."""
    by_cell: dict[tuple, dict[str, dict]] = {}
    for item in items:
        by_cell.setdefault((item["train_size"], item["m"], item["victim"], item["setting"]), {})[item["canaries"]] = (
            item
        )
    lines, wins = [], {"ood": 0, "indist": 0, "tie": 0}
    for (size, m, victim, setting), kinds in by_cell.items():
        if not {"ood", "indist"} <= set(kinds):
            continue
        ood, indist = kinds["ood"], kinds["indist"]
        difference = ood["one_run"] - indist["one_run"]
        winner = "tie" if abs(difference) < 0.005 else ("ood" if difference > 0 else "indist")
        wins[winner] += 1
        lines.append(
            f"| {size} | {m} | {victim} | {setting} | {format_estimate(ood['row'], 'auc')} | {ood['one_run']:.2f} | "
            f"{format_estimate(indist['row'], 'auc')} | {indist['one_run']:.2f} | {winner} |"
        )
    if not lines:
        return []
    head = [
        "| members | m | victim | setting | AUC, ood | one-run bound, ood | AUC, indist | one-run bound, indist | "
        "larger bound |",
        "|---:|---:|---|---|---:|---:|---:|---:|---|",
    ]
    total = sum(wins.values())
    return [
        *head,
        *lines,
        "",
        f"* {total} victim-setting pairs: ood canaries give the larger one-run bound on {wins['ood']}, "
        f"in-distribution canaries on {wins['indist']}, ties (both within 0.005) {wins['tie']}",
    ]


def _where(item: dict) -> str:
    return f"n={item['train_size']}, {item['canaries']} m={item['m']}, {item['setting']}"


def summary(items: Sequence[dict]) -> list[str]:
    """The facts the prose quotes: each m's ceiling, the victims without DP, the largest honest bound against
    its claim, and each false claim."""
    lines = []
    for m in sorted({item["m"] for item in items}, reverse=True):
        first = next(item for item in items if item["m"] == m)
        one_run, gdp = _ceiling_of(first)
        lines.append(
            f"* ceiling: {m} canaries with this grid cannot give more than {one_run:.2f} (one-run) or "
            f"{gdp:.2f} (Gaussian-DP), at delta {first['delta']:g}, however leaky the victim"
        )
    for item in items:
        if item["victim"] == NO_DP:
            lines.append(
                f"* no DP ({_where(item)}): AUC {format_estimate(item['row'], 'auc')}, audited "
                f"{item['one_run']:.2f} (one-run) / {item['gdp']:.2f} (Gaussian-DP)"
            )
    honest = [item for item in items if item["claimed"] is not None and not item["buggy"]]
    if honest:
        falsified = [item for item in honest if item["verdict"] != "not falsified"]
        best = max(honest, key=lambda item: (item["one_run"], item["gdp"]))
        lines.append(
            f"* honest DP victims: {len(honest)} audits, {len(falsified)} falsified; the largest one-run bound is "
            f"{best['one_run']:.2f} ({best['victim']}, {_where(best)}: claimed {best['claimed']:.2f}, "
            f"Gaussian-DP bound {best['gdp']:.2f})"
        )
    for item in items:
        if item["buggy"]:
            lines.append(
                f"* {item['victim']} ({_where(item)}): claimed {item['claimed']:.2f}, AUC "
                f"{format_estimate(item['row'], 'auc')}, audited {item['one_run']:.2f} (one-run) / "
                f"{item['gdp']:.2f} (Gaussian-DP): {item['verdict']}"
            )
    return lines


def markdown(items: Sequence[dict]) -> str:
    lines = [*table(items), ""]
    alphas = sorted({item["alpha"] for item in items if isinstance(item["alpha"], (int, float))})
    lines.append(
        "Bounds at confidence " + ", ".join(f"{1 - a:.0%}" for a in alphas) + " over the guess grid "
        "(docs/PRIVACY_AUDIT.md); claims at the victims' delta; FID of 1000 samples against the non-members."
    )
    lines.append("")
    comparison = kind_comparison(items)
    if comparison:
        lines += ["**The canary kinds on the same victims**", "", *comparison, ""]
    lines += summary(items)
    return "\n".join(lines).rstrip() + "\n"


def figure(items: Sequence[dict], path: str | os.PathLike) -> Path:
    """Audited (one-run: filled; Gaussian-DP: hollow) against claimed epsilon, log-log, one panel per scale
    (members, canaries), the diagonal drawn and the ceiling of the panel's ``m`` canaries dashed; victims
    without DP at the right edge ("no claim"); a bound of 0 on the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganleaks.evaluation.plots import save_figure

    scales = sorted({(item["train_size"], item["m"]) for item in items}, key=lambda s: (-s[1], s[0] or 0))
    fig, axes = plt.subplots(1, len(scales), figsize=(5.2 * len(scales), 4.6), squeeze=False)
    claims = [item["claimed"] for item in items if item["claimed"]]
    low = min([0.5, *claims]) / 1.5
    high = max([10.0, *claims]) * 1.5
    no_claim_x = high * 1.6
    markers = {"ood": "o", "indist": "s"}
    attacks = sorted({item["setting"] for item in items})
    colours = {name: f"C{i % 10}" for i, name in enumerate(attacks)}
    floor = 0.02
    for ax, (size, m) in zip(axes[0], scales, strict=True):
        seen = set()
        annotated = False
        panel = [item for item in items if (item["train_size"], item["m"]) == (size, m)]
        for item in panel:
            x = item["claimed"] if item["claimed"] else no_claim_x
            colour, marker = colours[item["setting"]], markers.get(item["canaries"], "^")
            label = f"{item['canaries']} canaries, {item['setting']}"
            ax.scatter([x], [max(item["one_run"], floor)], marker=marker, color=colour,
                       label=label if label not in seen else None, zorder=3)  # fmt: skip
            ax.scatter([x], [max(item["gdp"], floor)], marker=marker, facecolors="none", edgecolors=colour, zorder=3)
            if item["buggy"] and not annotated:
                ax.annotate("false claims", (x, max(item["one_run"], floor)), textcoords="offset points",
                            xytext=(8, 0), fontsize=7)  # fmt: skip
                annotated = True
            seen.add(label)
        diagonal = np.geomspace(low, high, 50)
        ax.plot(diagonal, diagonal, color="grey", linewidth=1, label="audited = claimed")
        one_run, _ = _ceiling_of(panel[0])
        ax.axhline(one_run, color="grey", linestyle="--", linewidth=1, label=f"ceiling of {m} canaries (one-run)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low, no_claim_x * 1.5)
        ax.set_ylim(floor / 1.3, max(high, one_run * 2))
        ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100) if low <= t <= high]
        ax.set_xticks([*ticks, no_claim_x], [*(f"{t:g}" for t in ticks), "no claim"])
        ax.set_xlabel("claimed epsilon (the accountant's)")
        ax.set_ylabel("audited lower bound (filled: one-run, hollow: Gaussian-DP)", fontsize=8)
        ax.set_title(f"{size} members, {m} canaries (a bound of 0 on the floor)", fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)


def build(paths: Sequence[str | os.PathLike]) -> tuple[list[dict], str]:
    """The study's rows and its markdown from the attack runs under ``paths``."""
    items = study_rows(gather(paths))
    if not items:
        raise ValueError(f"no run under {', '.join(map(str, paths))} is a privacy audit (attack.py audit=canaries)")
    return items, markdown(items)


def main(argv: Sequence[str] | None = None) -> int:
    from ganleaks.evaluation.study_cli import run_study_command

    return run_study_command(
        argv,
        prog="python -m ganleaks.evaluation.audit_study",
        description=__doc__,
        block=BLOCK,
        build=build,
        figure=figure,
        markdown_name="audit_study.md",
        figure_name="claimed_vs_audited.png",
        paths_help="folders of audit runs (attack.py audit=canaries)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
