"""Gather attack runs into one table and the paper's figures.

    python -m ganleaks.report outputs/cpu_size/attack [more folders...] [--out DIR]
    ganleaks-report outputs/cpu_size/attack
    python -m ganleaks.report results/cpu_size --doc docs/RESULTS.md [--block cpu_size] [--check]

Every folder under the given ones that holds a ``metrics.json`` is an attack run; its
``run.json`` (written with the results; ``.hydra/config.yaml`` for older runs) says what was attacked.
Writes into ``--out`` (default: ``report/`` inside the first folder given):

* ``runs.csv`` and ``runs.md``: one row per attack run (sorted), with the victim's sample quality
  (``quality.json`` in the victim's run folder, from ``python -m ganleaks.evaluation.quality``);
* ``pivot_auc.md`` and ``pivot_tpr.md``: AUC and TPR@1%FPR (with intervals) as one row per victim
  and one column per setting, uncalibrated beside calibrated;
* ``settings.md``: the key to the settings' columns: each setting's label, what the attacker had
  and what it needs from a victim, as its engine class declares them (:mod:`ganleaks.settings`);
* ``claims.md``: the paper's claims (C1-C6) checked on the runs, each comparison of two attacks on
  the same queries with a paired bootstrap interval and a verdict (:mod:`ganleaks.evaluation.claims`);
* ``numbers.md``: what a sentence about each claim quotes (verdict counts, ranges of the differences,
  the reversals, which AUC intervals contain 0.5) and the attack time per setting
  (:mod:`ganleaks.evaluation.claim_numbers`);
* ``worst_case.md`` and ``worst_case.json``: per victim, the strongest attack with its interval
  corrected for picking the maximum (Bonferroni, and chosen on half the queries / measured on the
  other half; :mod:`ganleaks.evaluation.worst_case`); the uncorrected maximum is never shown;
* ``auc_vs_train_size.png``: AUC and TPR@1%FPR against the training-set size (log axis), one panel
  per victim and setting, calibrated solid and uncalibrated dashed (paper figure 5);
* ``epsilon_vs_auc.png``: DP victims, AUC against epsilon per setting beside the sample quality;
* ``auc_vs_k.png``: AUC against the number of generated samples k, for the settings where k applies.

Metrics are shown with their 95% bootstrap interval where the run recorded one (the table as
``0.912 [0.871, 0.947]``, the figures as a shaded band); a metric that was not estimable (a TPR
at an FPR the non-members cannot resolve) is ``n/a``. Runs written before intervals existed load
and render without them. A figure is written only when the runs vary along its x axis. When the runs were logged to
Weights & Biases, the table and the figures are also logged there as one ``report`` run (offline
unless ``WANDB_MODE`` says otherwise); a W&B failure is logged and never stops the report.

``--doc DOC`` also puts the Markdown table (``runs.md``) into a results document, between the lines
``<!-- report:NAME -->`` and ``<!-- /report:NAME -->`` (``--block NAME``; default: the first folder's
name), and the pivot tables, the claims, the claims' numbers and the settings' key into the blocks
``NAME-auc``, ``NAME-tpr``, ``NAME-claims``, ``NAME-numbers`` and ``NAME-settings`` where the document
has their markers. With ``--check`` the
document is only compared: the command exits with status 1 and a diff when the document's table is
not the one the runs give.

The work is done in :mod:`ganleaks.evaluation`: ``runs`` (reading the run folders), ``tables``
(CSV and Markdown), ``sweep_figures`` (matplotlib) and ``markdown_blocks`` (the document's table);
this module writes the files and logs to W&B.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganleaks.evaluation.claim_numbers import numbers_markdown
from ganleaks.evaluation.claims import check_claims, claims_markdown
from ganleaks.evaluation.markdown_blocks import (
    MarkdownBlockError,
    StaleMarkdownBlockError,
    check_markdown_block,
    markers,
    sync_markdown_block,
)
from ganleaks.evaluation.runs import NoRunsFoundError, find_attack_runs, gather, load_run, resolve_victim_dir
from ganleaks.evaluation.sweep_figures import plot_epsilon, plot_k, plot_train_size
from ganleaks.evaluation.tables import (
    raw_columns,
    raw_value,
    to_csv,
    to_markdown,
    to_pivot_markdown,
    to_settings_markdown,
)
from ganleaks.evaluation.worst_case import worst_case, worst_case_json, worst_case_markdown

__all__ = [  # what ganleaks.report has always offered, wherever it now lives
    "NoRunsFoundError",
    "Report",
    "build_report",
    "find_attack_runs",
    "gather",
    "load_run",
    "log_to_wandb",
    "main",
    "resolve_victim_dir",
]

log = logging.getLogger("ganleaks.report")


@dataclass
class Report:
    """What ``build_report`` found and wrote."""

    rows: list[dict[str, Any]]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    markdown: str = ""
    blocks: dict[str, str] = field(default_factory=dict)  # block suffix -> Markdown (pivots, claims, settings)


def log_to_wandb(report: Report, project: str | None = None) -> bool:
    """Log the table and figures as one W&B run (``job_type="report"``); never raises.

    Mode: ``WANDB_MODE`` from the environment, ``offline`` when unset. Returns whether it logged.
    """
    try:
        import wandb
    except Exception as error:  # not installed, or broken
        log.warning("wandb is not available (%s); the report stays in %s", error, report.out_dir)
        return False
    project = project or next((r["wandb_project"] for r in report.rows if r.get("wandb_project")), None) or "ganleaks"
    run = None
    try:
        run = wandb.init(
            project=str(project),
            job_type="report",
            name="ganleaks-report",
            mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]  # wandb checks the value
            dir=str(report.out_dir),
        )
        columns = raw_columns()
        table = wandb.Table(
            columns=columns,  # type: ignore[arg-type]  # wandb types it list[str | int]; list is invariant
            data=[[raw_value(row, key) for key in columns] for row in report.rows],
            allow_mixed_types=True,
        )  # missing values (None) beside numbers
        payload: dict[str, Any] = {"attack_runs": table}
        for name, path in report.files.items():
            if path.suffix == ".png":
                payload[name] = wandb.Image(str(path))
        run.log(payload)
        log.info("logged the report to W&B project %s (%s)", project, os.environ.get("WANDB_MODE", "offline"))
        return True
    except Exception as error:  # offline, no credentials, network: the files on disk are the report
        log.warning("could not log the report to W&B (%s); the report stays in %s", error, report.out_dir)
        return False
    finally:
        if run is not None:
            try:
                run.finish()
            except Exception as error:
                log.warning("wandb finish failed: %s", error)


# --------------------------------------------------------------------------------------------
# Entry points


# The blocks beside the runs table report:NAME: the pivot tables report:NAME-auc / -tpr (metric key),
# the claims' verdicts report:NAME-claims and the numbers the prose quotes report:NAME-numbers,
# which a results document must hold; the settings' key report:NAME-settings is filled where the
# document has its markers.
PIVOT_BLOCKS = {"auc": "auc", "tpr": "tpr_at_fpr_0.01"}
DOC_BLOCKS = (*PIVOT_BLOCKS, "claims", "numbers")


def privacy_audit_markdown(rows: Sequence[dict]) -> str:
    """The privacy audits among the runs (``audit=canaries``): per run, the canaries, the guesses, the two
    epsilon lower bounds (one-run; Gaussian-DP, which tests the claim read as a Gaussian-DP one), the claimed
    epsilon at its delta and the verdict; empty when no run audited (docs/PRIVACY_AUDIT.md)."""
    audited = [row for row in rows if row.get("privacy_audit")]
    if not audited:
        return ""
    lines = [
        "| data | model | privacy | setting | calibration | seed | canaries (in) | guesses (correct) | "
        "eps lower bound, one-run | eps lower bound, Gaussian-DP | claimed eps (delta) | verdict | run |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in audited:
        audit = row["privacy_audit"]
        claimed = audit.get("claimed_epsilon")
        claim = f"{claimed:.2f} ({audit.get('delta'):g})" if isinstance(claimed, (int, float)) else "none"
        lines.append(
            f"| {row.get('data')} | {row.get('model')} | {row.get('privacy')} | {row.get('setting')} | "
            f"{row.get('calibration')} | {row.get('seed')} | {audit.get('m')} ({audit.get('n_included')}) | "
            f"{audit.get('guesses')} ({audit.get('correct')}) | {audit.get('epsilon_lower_bound_one_run', 0):.2f} | "
            f"{audit.get('epsilon_lower_bound_gdp', 0):.2f} | {claim} | {audit.get('verdict')} | {row.get('run_dir')} |"
        )
    level = {row["privacy_audit"].get("alpha") for row in audited}
    note = ", ".join(f"{1 - a:.0%}" for a in sorted(level) if isinstance(a, (int, float)))
    return "\n".join(lines) + f"\n\nBounds at confidence {note} (audit.alpha), valid over the guess grid.\n"


def doc_blocks(report: Report, block: str, doc: Path) -> list[tuple[str, str]]:
    """The blocks of ``doc`` a report fills: ``block`` (every run, required) and, where the
    document has their markers, ``block-auc`` / ``block-tpr`` (the pivot tables), ``block-claims``
    and ``block-settings``."""
    document = doc.read_text(encoding="utf-8")
    blocks = [(block, report.markdown)]
    for suffix, text in report.blocks.items():
        name = f"{block}-{suffix}"
        if markers(name)[0] in document or markers(name)[1] in document:
            blocks.append((name, text))
    return blocks


def build_report(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None, wandb: str = "auto"
) -> Report:
    """Gather the attack runs under ``paths``, write the table and figures into ``out_dir``.

    Args:
        paths: attack run folders or folders above them.
        out_dir: where to write; default ``<paths[0]>/report``.
        wandb: ``"auto"`` (log to W&B when the runs did), ``"on"`` or ``"off"``.

    Raises:
        NoRunsFoundError: nothing to report.
    """
    if not paths:
        raise NoRunsFoundError("pass at least one folder holding attack runs")
    rows = gather(paths)
    out = Path(out_dir) if out_dir is not None else Path(paths[0]) / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(rows=rows, out_dir=out)
    (out / "runs.csv").write_text(to_csv(rows))
    report.markdown = to_markdown(rows, relative_to=Path(paths[0]).resolve())
    (out / "runs.md").write_text(report.markdown)
    report.files.update({"table_csv": out / "runs.csv", "table_markdown": out / "runs.md"})
    for suffix, metric in PIVOT_BLOCKS.items():
        report.blocks[suffix] = to_pivot_markdown(rows, metric)
        (out / f"pivot_{suffix}.md").write_text(report.blocks[suffix])
        report.files[f"pivot_{suffix}"] = out / f"pivot_{suffix}.md"
    report.blocks["settings"] = to_settings_markdown(rows)
    (out / "settings.md").write_text(report.blocks["settings"])
    report.files["settings"] = out / "settings.md"
    claim_lines = check_claims(rows)
    report.blocks["claims"] = claims_markdown(rows, claim_lines)
    report.blocks["numbers"] = numbers_markdown(rows, claim_lines)
    for name in ("claims", "numbers"):
        if report.blocks[name]:
            (out / f"{name}.md").write_text(report.blocks[name])
            report.files[name] = out / f"{name}.md"
    report.blocks["privacy_audit"] = privacy_audit_markdown(rows)
    if report.blocks["privacy_audit"]:
        (out / "privacy_audit.md").write_text(report.blocks["privacy_audit"])
        report.files["privacy_audit"] = out / "privacy_audit.md"
    results, notes = worst_case(rows)
    report.blocks["worst_case"] = worst_case_markdown(results, notes)
    if report.blocks["worst_case"]:
        (out / "worst_case.md").write_text(report.blocks["worst_case"])
        (out / "worst_case.json").write_text(worst_case_json(results, notes))
        report.files["worst_case"] = out / "worst_case.md"
        report.files["worst_case_json"] = out / "worst_case.json"
    for name, plot in (("auc_vs_train_size", plot_train_size), ("epsilon_vs_auc", plot_epsilon), ("auc_vs_k", plot_k)):
        written = plot(rows, out / f"{name}.png")
        if written is not None:
            report.files[name] = written
    log.info("report of %d attack runs -> %s (%s)", len(rows), out, ", ".join(p.name for p in report.files.values()))
    if wandb == "on" or (wandb == "auto" and any(row["uses_wandb"] for row in rows)):
        log_to_wandb(report)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ganleaks-report",
        description="Gather attack runs (folders holding metrics.json) into runs.csv / runs.md and figures.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="attack run folders or folders above them")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR/report of the first one)")
    parser.add_argument(
        "--wandb",
        choices=["auto", "on", "off"],
        default="auto",
        help="log the report to W&B: auto = when the runs were logged there (default)",
    )
    parser.add_argument(
        "--doc",
        default=None,
        metavar="DOC",
        help="also put the Markdown table into DOC, between <!-- report:NAME --> and <!-- /report:NAME -->",
    )
    parser.add_argument("--block", default=None, metavar="NAME", help="the block's NAME (default: RUN_DIR's name)")
    parser.add_argument(
        "--check", action="store_true", help="with --doc: leave DOC as it is; exit 1 when its table is stale"
    )
    args = parser.parse_args(argv)
    if (args.block or args.check) and not args.doc:
        parser.error("--block and --check need --doc DOC (the document holding the table)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = build_report(args.run_dirs, args.out, args.wandb)
    except FileNotFoundError as error:
        parser.exit(2, f"error: {error}\n")
    print(report.markdown, end="")
    if report.blocks.get("worst_case"):
        print("\nworst case per victim (corrected for picking the strongest attack):")
        print(report.blocks["worst_case"].split("\n\n")[0])
    print(f"\n{len(report.rows)} attack runs -> {report.out_dir}")
    if args.doc:
        block = args.block or Path(args.run_dirs[0]).resolve().name
        try:
            for name, text in doc_blocks(report, block, Path(args.doc)):
                if args.check:
                    check_markdown_block(args.doc, name, text)
                    log.info("%s: the table report:%s is up to date", args.doc, name)
                else:
                    changed = sync_markdown_block(args.doc, name, text)
                    log.info("%s: the table report:%s %s", args.doc, name, "updated" if changed else "is up to date")
        except StaleMarkdownBlockError as error:
            parser.exit(1, f"error: {error}")
        except (FileNotFoundError, MarkdownBlockError) as error:
            parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
