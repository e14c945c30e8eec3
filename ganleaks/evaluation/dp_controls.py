"""Claim C4 with its controls: does DP-SGD lower the leakage by its noise, by its clipping, or only by
leaving the victim undertrained?

The victims (studies ``cpu_dp_controls`` and ``cpu_dp_controls_nodp``), all the same DP-GAN nets on one
split per seed: DP-SGD at noise multipliers sigma > 0, DP-SGD with sigma 0 (per-sample clipping only), and
no DP, at full length and stopped early. For every attack (setting, uncalibrated or calibrated) and seed,
four contrasts, each an AUC difference over the same queries with its paired bootstrap interval and p-value:

* **DP as a whole**: no DP (full length) minus DP sigma;
* **clipping**: no DP (full length) minus clipping only;
* **noise**: clipping only minus DP sigma (the same clipping, with and without noise);
* **quality-matched**: the no-DP victim stopped at the sample quality of the DP victim (the stopping point
  whose Fréchet distance is nearest the DP victim's, at that seed) minus DP sigma.

A contrast "holds" at a seed where its difference is positive after Holm's correction over every
(attack, seed, sigma) test of that contrast (two-sided p-values from the paired bootstrap's standard error,
:func:`ganleaks.evaluation.claims.paired_p_value`); it holds across seeds only where it holds at every seed.

    python -m ganleaks.evaluation.dp_controls results/cpu_dp_controls results/cpu_dp_controls_nodp \\
        --out results/cpu_dp_controls/report --doc docs/RESULTS.md

``--doc`` rewrites the ``dp-controls`` block of that document (``--check``: fail instead when it is stale).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ganleaks.evaluation.claims import holm, paired_bootstrap, paired_p_value, read_scores
from ganleaks.evaluation.estimates import format_estimate
from ganleaks.evaluation.runs import gather, resolve_victim_dir

BLOCK = "dp-controls"
ALPHA = 0.05
RESAMPLES = 2000  # paired bootstrap resamples of each difference: its interval and standard error
FULL = "full"
CONTRASTS = ("DP as a whole", "clipping", "noise", "quality-matched")


@dataclass(frozen=True, order=True)
class Victim:
    """A victim kind: ``sigma`` None for no DP (0 for clipping only) and its training length."""

    order: tuple = field(repr=False)
    sigma: float | None
    steps: int

    @property
    def label(self) -> str:
        if self.sigma is None:
            return "no DP" if self.order[1] == 0 else f"no DP, stopped at {self.steps:,} steps"
        if self.sigma == 0:
            return "clipping only (sigma 0)"
        return f"DP sigma {self.sigma:g}"


def _victim_steps(victim_dir: Path | None) -> int | None:
    for name in ("config.yaml", ".hydra/config.yaml"):
        if victim_dir is not None and (victim_dir / name).is_file():
            steps = OmegaConf.select(OmegaConf.load(victim_dir / name), "trainer.max_steps")
            return None if steps is None else int(steps)
    return None


def _attack(row: dict) -> str:
    setting = {"whitebox": "white-box"}.get(str(row["setting"]), str(row["setting"]))
    return setting if row.get("calibration") in (None, "none") else f"{setting}, calibrated"


def study_rows(rows: Sequence[dict]) -> list[dict]:
    """The attack runs on the study's victims, each with its ``victim`` (a :class:`Victim`), ``attack`` label,
    ``seed`` and the victim's ``fid`` / ``fid_ci`` and ``epsilon``. Two runs of one cell are refused."""
    full_length = max((_victim_steps(resolve_victim_dir(r.get("victim_run_dir"), Path(r["run_dir"]))) or 0)
                      for r in rows) if rows else 0  # fmt: skip
    out: dict[tuple, dict] = {}
    for row in rows:
        if row.get("privacy_audit") or row.get("victim_kind", "run") != "run":
            continue
        victim_dir = resolve_victim_dir(row.get("victim_run_dir"), Path(row["run_dir"]))
        steps = _victim_steps(victim_dir)
        if steps is None:
            raise ValueError(f"{row['run_dir']}: its victim's training config (trainer.max_steps) is not found")
        sigma = None if row.get("privacy") != "dp" else float(row.get("noise_multiplier") or 0.0)
        stopped = int(sigma is None and steps < full_length)
        victim = Victim((0 if sigma is None else 1, stopped, -steps, sigma or 0.0), sigma, steps)
        item = {
            "victim": victim,
            "attack": _attack(row),
            "seed": int(row.get("seed") or 0),
            "fid": row.get("fid_classifier"),
            "fid_ci": row.get("fid_classifier_ci"),
            "epsilon": row.get("epsilon"),
            "row": row,
        }
        key = (victim, item["attack"], item["seed"])
        if key in out:
            raise ValueError(f"two runs for {victim.label}, {item['attack']}, seed {item['seed']}: "
                             f"{out[key]['row']['run_dir']} and {row['run_dir']}")  # fmt: skip
        out[key] = item
    return sorted(out.values(), key=lambda item: (item["victim"], item["attack"], item["seed"]))


@dataclass
class Study:
    items: list[dict]
    victims: list[Victim]
    attacks: list[str]
    seeds: list[int]
    tests: list[dict]

    def cell(self, victim: Victim, attack: str, seed: int) -> dict | None:
        return next(
            (i for i in self.items if (i["victim"], i["attack"], i["seed"]) == (victim, attack, seed)),
            None,
        )

    def fid(self, victim: Victim, seed: int) -> tuple[float | None, list[float] | None]:
        item = next((i for i in self.items if (i["victim"], i["seed"]) == (victim, seed)), None)
        return (None, None) if item is None else (item["fid"], item["fid_ci"])


def _matched(study: Study, dp: Victim, seed: int) -> Victim | None:
    """The stopped no-DP victim whose Fréchet distance at ``seed`` is nearest the DP victim's."""
    target = study.fid(dp, seed)[0]
    distances = {
        v: fid
        for v in study.victims
        if v.sigma is None and v.order[1] == 1 and (fid := study.fid(v, seed)[0]) is not None
    }
    if target is None or not distances:
        return None
    return min(distances, key=lambda v: abs(float(distances[v]) - float(target)))


def build_study(items: list[dict]) -> Study:
    victims = sorted({i["victim"] for i in items})
    attacks = sorted({i["attack"] for i in items}, key=lambda a: (a.split(",")[0] != "discriminator", a))
    seeds = sorted({i["seed"] for i in items})
    study = Study(items, victims, attacks, seeds, [])
    full = next((v for v in victims if v.sigma is None and v.order[1] == 0), None)
    clip = next((v for v in victims if v.sigma == 0), None)
    noisy = [v for v in victims if v.sigma]
    scores: dict[str, dict] = {}

    def loaded(item: dict) -> dict:
        run = item["row"]["run_dir"]
        if run not in scores:
            scores[run] = read_scores(run)
        return scores[run]

    for dp in noisy:
        for seed in seeds:
            pairs = {
                "DP as a whole": (full, dp),
                "clipping": (full, clip),
                "noise": (clip, dp),
                "quality-matched": (_matched(study, dp, seed), dp),
            }
            for contrast, (a, b) in pairs.items():
                if a is None or b is None or (contrast == "clipping" and dp != noisy[0]):
                    continue  # the clipping contrast does not depend on sigma: tested once
                for attack in attacks:
                    first, second = study.cell(a, attack, seed), study.cell(b, attack, seed)
                    if first is None or second is None:
                        continue
                    result = paired_bootstrap(loaded(first), loaded(second), RESAMPLES)
                    if result is None:
                        continue
                    point, diffs, n = result
                    tail = (1 - 0.95) / 2 * 100
                    low, high = np.percentile(diffs, [tail, 100 - tail])
                    study.tests.append({
                        "contrast": contrast, "sigma": None if contrast == "clipping" else dp.sigma, "attack": attack,
                        "seed": seed, "a": a, "b": b, "difference": point, "interval": (float(low), float(high)),
                        "p": paired_p_value(point, diffs), "n": n,
                    })  # fmt: skip
    for contrast in CONTRASTS:
        family = [t for t in study.tests if t["contrast"] == contrast]
        for test, rejected in zip(family, holm([t["p"] for t in family], ALPHA), strict=True):
            test["family"] = len(family)
            test["holds"] = bool(rejected and test["difference"] > 0)
            test["reversed"] = bool(rejected and test["difference"] < 0)
    return study


def _fid_text(fid: float | None, ci: list[float] | None) -> str:
    if fid is None:
        return "n/a"
    return f"{fid:.0f}" if not ci else f"{fid:.0f} [{ci[0]:.0f}, {ci[1]:.0f}]"


def _epsilon(study: Study, victim: Victim) -> str:
    values = {round(float(i["epsilon"]), 3) for i in study.items if i["victim"] == victim and i["epsilon"] is not None}
    if victim.sigma is None:
        return "none"
    if not values:
        return "n/a"
    value = max(values)
    return "infinite" if not np.isfinite(value) else f"{value:.3g}"


def quality_table(study: Study) -> list[str]:
    lines = [
        "| victim | steps | epsilon | " + " | ".join(f"FD seed {s} [95% CI]" for s in study.seeds) + " |",
        "|---|---:|---:|" + "---:|" * len(study.seeds),
    ]
    for victim in study.victims:
        cells = [_fid_text(*study.fid(victim, seed)) for seed in study.seeds]
        lines.append(f"| {victim.label} | {victim.steps:,} | {_epsilon(study, victim)} | {' | '.join(cells)} |")
    return lines


def auc_table(study: Study) -> list[str]:
    lines = [
        "| victim | attack | "
        + " | ".join(f"AUC seed {s} [95% CI]" for s in study.seeds)
        + " | mean (range over seeds) |",
        "|---|---|" + "---:|" * (len(study.seeds) + 1),
    ]
    for victim in study.victims:
        for attack in study.attacks:
            cells = [study.cell(victim, attack, seed) for seed in study.seeds]
            if all(c is None for c in cells):
                continue
            values = [float(c["row"]["auc"]) for c in cells if c is not None]
            texts = ["" if c is None else format_estimate(c["row"], "auc", 3, with_interval=True) for c in cells]
            spread = f"{np.mean(values):.3f} ({min(values):.3f} to {max(values):.3f})"
            lines.append(f"| {victim.label} | {attack} | {' | '.join(texts)} | {spread} |")
    return lines


def _verdict(tests: list[dict]) -> str:
    held = sum(t["holds"] for t in tests)
    reversed_ = sum(t["reversed"] for t in tests)
    text = f"holds at {held} of {len(tests)} seeds"
    if reversed_:
        text += f", reversed at {reversed_}"
    if held == len(tests):
        text = f"**holds at every seed ({held} of {len(tests)})**"
    return text


def _difference(test: dict) -> str:
    low, high = test["interval"]
    return f"{test['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"


def contrast_table(study: Study) -> list[str]:
    lines = [
        "| contrast | sigma | attack | "
        + " | ".join(f"difference seed {s} [95% CI]" for s in study.seeds)
        + " | mean difference | after Holm |",
        "|---|---:|---|" + "---:|" * (len(study.seeds) + 1) + "---|",
    ]
    for contrast in CONTRASTS:
        for sigma in sorted({t["sigma"] for t in study.tests if t["contrast"] == contrast}, key=lambda s: s or 0):
            for attack in study.attacks:
                tests = [
                    t for t in study.tests if (t["contrast"], t["sigma"], t["attack"]) == (contrast, sigma, attack)
                ]
                if not tests:
                    continue
                by_seed = {t["seed"]: t for t in tests}
                cells = ["" if seed not in by_seed else _difference(by_seed[seed]) for seed in study.seeds]
                mean = np.mean([t["difference"] for t in tests])
                label = "any" if sigma is None else f"{sigma:g}"
                lines.append(
                    f"| {contrast} | {label} | {attack} | {' | '.join(cells)} | {mean:+.3f} | {_verdict(tests)} |"
                )
    return lines


def matched_lines(study: Study) -> list[str]:
    lines = []
    for dp in [v for v in study.victims if v.sigma]:
        for seed in study.seeds:
            matched = _matched(study, dp, seed)
            if matched is None:
                continue
            lines.append(
                f"* **C4** quality-matched control of {dp.label} at seed {seed}: {matched.label} "
                f"(FD {_fid_text(*study.fid(matched, seed))} against {_fid_text(*study.fid(dp, seed))})"
            )
    return lines


def victim_lines(study: Study) -> list[str]:
    """Each victim over the seeds: its Fréchet distances and each attack's mean AUC and range."""
    lines = []
    for victim in study.victims:
        fids = [study.fid(victim, seed)[0] for seed in study.seeds]
        fid_text = ", ".join("n/a" if f is None else f"{f:.0f}" for f in fids)
        parts = []
        for attack in study.attacks:
            values = [float(c["row"]["auc"]) for seed in study.seeds if (c := study.cell(victim, attack, seed))]
            if values:
                parts.append(f"{attack} {np.mean(values):.3f} ({min(values):.3f} to {max(values):.3f})")
        lines.append(f"* **C4** {victim.label}: FD {fid_text} at seeds {', '.join(map(str, study.seeds))}; "
                     f"mean AUC (range): {'; '.join(parts)}")  # fmt: skip
    return lines


def summary(study: Study) -> list[str]:
    """One line per contrast: its tests, how many hold after Holm, and the mean difference."""
    lines = []
    families = {c: next((t["family"] for t in study.tests if t["contrast"] == c), 0) for c in CONTRASTS}
    for contrast in CONTRASTS:
        if not families[contrast]:
            continue
        tests = [t for t in study.tests if t["contrast"] == contrast]
        held = sum(t["holds"] for t in tests)
        reversed_ = sum(t["reversed"] for t in tests)
        lines.append(
            f"* **C4** {contrast}: {families[contrast]} tests (attacks x {len(study.seeds)} seeds x sigma), "
            f"{held} hold after Holm, {reversed_} reversed, {len(tests) - held - reversed_} not resolved; "
            "mean difference "
            f"{np.mean([t['difference'] for t in tests]):+.3f} (range {min(t['difference'] for t in tests):+.3f} to "
            f"{max(t['difference'] for t in tests):+.3f})"
        )
    return lines


def markdown(study: Study) -> str:
    lines = [
        "**Sample quality** (Fréchet distance in the features of the split's classifier, 256 samples against 256 "
        "non-members; 95% bootstrap interval; lower is better)",
        "",
        *quality_table(study),
        "",
        "**AUC of each attack** (95% bootstrap interval; the mean and range over the seeds)",
        "",
        *auc_table(study),
        "",
        f"**The contrasts** (AUC of the first victim minus the second on the same queries, paired bootstrap with "
        f"{RESAMPLES} resamples; two-sided p-values from the bootstrap standard error; Holm's correction at {ALPHA:g} "
        "over every test of a contrast)",
        "",
        *contrast_table(study),
        "",
        *matched_lines(study),
        *summary(study),
        *victim_lines(study),
    ]
    return "\n".join(lines).rstrip() + "\n"


def figure(study: Study, path: str | os.PathLike) -> Path:
    """AUC against the Fréchet distance, one panel per attack: the no-DP victims of a seed joined in order of
    training length (the undertraining curve), the DP-SGD victims as separate markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganleaks.evaluation.plots import save_figure

    fig, axes = plt.subplots(1, len(study.attacks), figsize=(4.4 * len(study.attacks), 4.2), squeeze=False)
    markers = {None: "o", 0.0: "s"}
    for ax, attack in zip(axes[0], study.attacks, strict=True):
        for seed in study.seeds:
            colour = f"C{seed % 10}"
            curve = []
            for victim in study.victims:
                item = study.cell(victim, attack, seed)
                if item is None or item["fid"] is None:
                    continue
                x, y = float(item["fid"]), float(item["row"]["auc"])
                if victim.sigma is None:
                    curve.append((victim.steps, x, y))
                else:
                    marker = markers.get(victim.sigma, "^" if victim.sigma <= 1 else "v")
                    ax.scatter([x], [y], marker=marker, color=colour, edgecolors="black", zorder=3,
                               label=f"{victim.label}" if seed == study.seeds[0] else None)  # fmt: skip
            curve.sort()
            if curve:
                ax.plot([c[1] for c in curve], [c[2] for c in curve], "-o", color=colour, markersize=4,
                        label=f"no DP by training length, seed {seed}")  # fmt: skip
        ax.axhline(0.5, color="grey", linewidth=1, linestyle=":")
        ax.set_xscale("log")
        ax.set_xticks([50, 100, 200, 400, 800], ["50", "100", "200", "400", "800"])
        ax.minorticks_off()
        ax.set_xlabel("Fréchet distance (lower: better samples; colour: seed)")
        ax.set_ylabel("AUC")
        ax.set_title(attack, fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


def build(paths: Sequence[str | os.PathLike]) -> tuple[Study, str]:
    items = study_rows(gather(paths))
    if not items:
        raise ValueError(f"no attack run on a training-run victim under {', '.join(map(str, paths))}")
    study = build_study(items)
    if not study.tests:
        raise ValueError("no contrast can be formed: the study needs DP, clipping-only and no-DP victims")
    return study, markdown(study)


def main(argv: Sequence[str] | None = None) -> int:
    from ganleaks.evaluation.study_cli import run_study_command

    return run_study_command(
        argv,
        prog="python -m ganleaks.evaluation.dp_controls",
        description=__doc__,
        block=BLOCK,
        build=build,
        figure=figure,
        markdown_name="dp_controls.md",
        figure_name="auc_vs_quality.png",
        paths_help="folders of the study's attack runs (cpu_dp_controls, cpu_dp_controls_nodp)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
