"""docs/RESULTS.md's tables and numbers are the report's, regenerated from the committed results/.

A change to a committed result (or to how the report formats it) that is not carried into the
document fails here; `python -m ganleaks.report results/<study> --doc docs/RESULTS.md` fixes it.
The prose is checked too: every number in the verdicts ("The verdicts at a glance" and the C1-C6
sections) and in the attack-time paragraph must be one that the study's generated
``-numbers`` block gives for that claim (a number typed by hand and not recomputed fails), the
statements that are easy to get wrong (which intervals contain 0.5, the verdict counts, the
reversals) are recomputed from the runs, and every training time (RESULTS.md and the costs in
docs/EXPERIMENTS.md) is compared with the runs' own records.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import pytest

from ganleaks.evaluation.claim_numbers import _log_span
from ganleaks.evaluation.markdown_blocks import check_markdown_block, markers, read_markdown_block
from ganleaks.report import DOC_BLOCKS, build_report

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RESULTS.md"
EXPERIMENTS = ROOT / "docs" / "EXPERIMENTS.md"
# The studies whose attacks are committed, with the number of attack runs each must hold: a study
# cut short (or a results folder emptied by mistake) fails here instead of shrinking the tables.
STUDIES = {"cpu_size": 120, "cpu_k": 96, "cpu_dp": 60}
NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Each study's report, built once (the claims' bootstrap takes a while)."""
    cwd = os.getcwd()
    os.chdir(ROOT)  # the runs record their victims relative to where they were launched
    try:
        return {
            study: build_report([ROOT / "results" / study], tmp_path_factory.mktemp(study), wandb="off")
            for study in STUDIES
        }
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_results_doc_tables_match_the_committed_runs(study, reports):
    results = ROOT / "results" / study
    assert (results / "attack").is_dir(), f"results/{study}/attack is missing: the study's attacks are not committed"
    report = reports[study]
    assert len(report.rows) == STUDIES[study]
    assert all(row.get("auc") is not None for row in report.rows)
    document = DOC.read_text(encoding="utf-8")
    check_markdown_block(DOC, study, report.markdown)
    for suffix in DOC_BLOCKS:
        assert markers(f"{study}-{suffix}")[0] in document, f"docs/RESULTS.md lacks the {study}-{suffix} table"
        check_markdown_block(DOC, f"{study}-{suffix}", report.blocks[suffix])


# --------------------------------------------------------------------------------------------
# The prose


REFERENCE = re.compile(r"\b(?:figure|section|sections|Part|Stage|stage) \d[\d.-]*")  # the paper's, this document's


def _numbers(text: str) -> set[str]:
    """The numbers written in ``text``, without sign and thousands separators (``-0.016`` -> ``0.016``);
    references (the paper's figure 5, Part 3) are not numbers."""
    text = REFERENCE.sub("", text)
    return {token.lstrip("+-").replace(",", "").rstrip(".") for token in NUMBER.findall(text)} - {""}


def _section(document: str, heading_start: str) -> str:
    """The text under the heading line starting with ``heading_start``, up to the next heading."""
    lines = document.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading_start))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start + 1 : end])


def _glance_rows(document: str) -> dict[str, str]:
    """``{claim: its row}`` of "The verdicts at a glance"."""
    rows = {}
    for line in _section(document, "## The verdicts at a glance").splitlines():
        match = re.match(r"\| (C\d) ", line)
        if match:
            rows[match.group(1)] = line
    return rows


# Generated blocks beside the studies' numbers whose bullets speak of a claim (``* **C4** ...``): C4's controls
# (Part 6, ganleaks.evaluation.dp_controls) and the size and k studies' claims over seeds
# (ganleaks.evaluation.seed_claims).
CLAIM_BLOCKS = ("dp-controls", "cpu_size-seeds", "cpu_k-seeds")


def _bullets(claim: str) -> str:
    """The generated bullets about ``claim`` in every study's numbers block and in the claim blocks."""
    document = DOC.read_text(encoding="utf-8")
    blocks = [f"{study}-numbers" for study in STUDIES]
    blocks += [name for name in CLAIM_BLOCKS if f"<!-- report:{name} -->" in document]
    return "\n".join(
        line
        for block in blocks
        for line in read_markdown_block(DOC, block).splitlines()
        if line.startswith(f"* **{claim}**")
    )


def _design_numbers(reports) -> set[str]:
    """The grid's own values (training-set sizes, k, noise multipliers): a sentence may name them."""
    values: set[str] = set()
    for report in reports.values():
        for row in report.rows:
            for key in ("train_size", "k"):
                if row.get(key) is not None:
                    values.add(str(row[key]))
            if row.get("noise_multiplier") is not None:
                values.add(f"{row['noise_multiplier']:g}")
    return values


def _claim_texts(document: str) -> dict[str, list[tuple[str, str]]]:
    """``{claim: [(where, text)]}``: its row at a glance and its section."""
    texts: dict[str, list[tuple[str, str]]] = {}
    for claim, row in _glance_rows(document).items():
        texts.setdefault(claim, []).append(("the verdicts at a glance", row))
    for line in document.splitlines():
        match = re.match(r"#### (C\d):", line)
        if match:
            texts.setdefault(match.group(1), []).append((line, _section(document, line)))
    return texts


def test_every_number_in_the_verdicts_is_generated(reports):
    document = DOC.read_text(encoding="utf-8")
    texts = _claim_texts(document)
    assert set(texts) == {"C1", "C2", "C3", "C4", "C5", "C6"}, sorted(texts)
    design = _design_numbers(reports)
    for claim, places in texts.items():
        allowed = _numbers(_bullets(claim)) | design
        for where, text in places:
            typed = _numbers(text) - allowed
            assert not typed, (
                f"docs/RESULTS.md, {claim} ({where}): {sorted(typed)} are not among the numbers the report "
                f"generates for {claim} (the -numbers blocks); quote those, or make the report compute it"
            )


def test_every_number_in_the_attack_times_is_generated(reports):
    document = DOC.read_text(encoding="utf-8")
    text = _section(document, "#### Wall time")
    allowed = _numbers(read_markdown_block(DOC, "cpu_size-numbers").split("\n\n|", 1)[-1]) | _design_numbers(reports)
    assert not _numbers(text) - allowed, sorted(_numbers(text) - allowed)


def _counts(report, claim: str) -> tuple[int, int, int, int]:
    """Holds, not resolved, reversed and all of ``claim``'s comparisons (the report's claims, recounted)."""
    verdicts = [
        line.rstrip(" |").rsplit(" | ", 1)[-1]
        for line in report.blocks["claims"].splitlines()
        if line.startswith(f"| {claim} | ") and line.count(" | ") == 6
    ]
    return (verdicts.count("holds"), verdicts.count("not resolved"), verdicts.count("reversed"), len(verdicts))


def test_the_verdicts_say_what_the_runs_give(reports):
    """The statements that have gone wrong before, recomputed from the runs."""
    document = DOC.read_text(encoding="utf-8")
    glance = _glance_rows(document)
    c1 = " ".join(_section(document, "#### C1:").split())
    # C1: which AUC intervals at the largest training-set size contain chance.
    rows = reports["cpu_size"].rows
    largest = max(row["train_size"] for row in rows)
    at_largest = [row for row in rows if row["train_size"] == largest]
    inside = sum(row["auc_ci"][0] <= 0.5 <= row["auc_ci"][1] for row in at_largest)
    for text in (glance["C1"], c1):
        assert f"{inside} of the {len(at_largest)}" in text
        if inside < len(at_largest):
            assert not re.search(r"every (?:attack|interval)[^|;]{0,120}?0\.5\b", text), "not every interval has 0.5"
    # C2: the verdict counts of each study that checks it, and the reversals of all of them.
    for study in ("cpu_size", "cpu_dp"):
        holds, unresolved, reversed_, total = _counts(reports[study], "C2")
        assert f"{holds} hold, {unresolved} not resolved, {reversed_} reversed (of {total})" in glance["C2"], study
    c2 = " ".join(_section(document, "#### C2:").split())
    holds, unresolved, reversed_, total = _counts(reports["cpu_size"], "C2")
    assert f"{holds} hold, {unresolved} are not resolved and {reversed_} is reversed of the size study's {total}" in c2
    assert f"the DP study adds {_counts(reports['cpu_dp'], 'C2')[2]} more" in c2
    # C4: the DP victims' AUC range, as the glance row gives it.
    dp = [row["auc"] for row in reports["cpu_dp"].rows if row.get("epsilon") is not None]
    assert f"{min(dp):.3f} to {max(dp):.3f}" in glance["C4"]
    # C6: the full black-box AUC on the victims where more k does not help, over every k.
    flat = [
        row["auc"]
        for row in reports["cpu_k"].rows
        if row["setting"] == "fullbb" and not (row["model"] == "dcgan" and row["train_size"] == 256)
    ]
    for text in (glance["C6"], " ".join(_section(document, "#### C6:").split())):
        assert f"{min(flat):.3f}-{max(flat):.3f}" in text


# --------------------------------------------------------------------------------------------
# Training times: every one quoted is a run's own record


def _train_records() -> dict[tuple[str, str], dict]:
    """``{(model folder, part): run.json}`` of every training run of the studies (seed 0: the one the text times;
    results/quickstart is the README's, tests/test_readme_quickstart.py). The reference draws
    (``reference_n<N>-f<frac>-draw<d>``) belong to the references study, whose generated block states their
    times from the same records (tests/test_reference_study.py)."""
    return {
        (path.parents[2].name, path.parents[1].name): json.loads(path.read_text())
        for study in STUDIES
        for path in sorted((ROOT / "results" / study).glob("train/*/*/*/seed0/run.json"))
        if "-draw" not in path.parents[1].name
    }


def test_training_times_are_the_runs_records():
    records = _train_records()
    quoted = re.findall(
        r"^\| ([\w.]+) \| ((?:reference_)?n\d+) \| (\d+) s \|$", DOC.read_text(encoding="utf-8"), re.MULTILINE
    )
    assert sorted((model, part) for model, part, _ in quoted) == sorted(records), "every training run, once"
    for model, part, seconds in quoted:
        assert int(seconds) == records[(model, part)]["train_wall_s"], (model, part)


def test_stage_times_are_the_committed_records():
    """Stage 1's table is results/cpu_size/README.md's (the record written when the stage ran)."""
    readme = (ROOT / "results" / "cpu_size" / "README.md").read_text(encoding="utf-8")
    recorded = set(re.findall(r"\| (2026-\d\d-\d\d \d\d:\d\d:\d\d) \| (\d+ s \([\d.]+ min\)) \|", readme))
    table = _section(DOC.read_text(encoding="utf-8"), "### How it was run")
    stages = re.findall(r"\| (2026-\d\d-\d\d \d\d:\d\d:\d\d) \| (\d+ s \([\d.]+ min\)) \|", table)
    assert stages and set(stages) <= recorded
    total = sum(int(wall.split()[0]) for _, wall in stages)
    assert f"**{total} s ({total / 60:.1f} min)**" in table


def _minutes(values) -> str:
    low, high = min(values) / 60, max(values) / 60
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}"


def test_experiments_costs_are_the_runs_records(reports):
    text = " ".join(EXPERIMENTS.read_text(encoding="utf-8").split())
    walls = {key: record["train_wall_s"] for key, record in _train_records().items()}

    def pick(model, reference=None):
        """The training times of ``model``'s runs: victims (False), reference models (True) or both (None)."""
        return [
            seconds
            for (name, part), seconds in walls.items()
            if name == model and reference in (None, part.startswith("reference"))
        ]

    dp = [s for (m, _), s in walls.items() if m.startswith("dpgan_dp")]
    expected = [
        f"{_minutes(pick('dcgan'))} minutes for dcgan",
        f"{_minutes(pick('vaegan', False))} for a vaegan victim",
        f"{_minutes(pick('wgangp', False))} for a wgangp victim",
        f"{_minutes(pick('vaegan', True))} and {_minutes(pick('wgangp', True))} for their reference models",
        f"{_minutes(dp)} for a width-16 DP-GAN under DP-SGD ({_minutes(pick('dpgan'))} without DP)",
        f"about {_minutes(list(walls.values()))} minutes per model",
    ]
    rows = reports["cpu_size"].rows
    for setting in ("discriminator", "montecarlo", "fullbb", "whitebox", "partialbb"):
        median = statistics.median(row["wall_seconds"] for row in rows if row["setting"] == setting)
        expected.append(f"{median:.1f} s ({setting})")
    total = sum(row["wall_seconds"] for row in rows)
    share = sum(row["wall_seconds"] for row in rows if row["setting"] == "partialbb") / total
    expected.append(f"{100 * share:.0f}% of the summed attack time")
    spans = []
    for study in STUDIES:
        first, last = _log_span(reports[study].rows)
        spans.append(f"{(last - first).total_seconds() / 60:.1f}")
    expected.append(f"span {', '.join(spans[:-1])} and {spans[-1]} minutes")
    # The cpu_dp grid is the committed one.
    dp_rows = reports["cpu_dp"].rows
    sigmas = sorted({row["noise_multiplier"] for row in dp_rows if row.get("noise_multiplier") is not None})
    epsilons = [row["epsilon"] for row in dp_rows if row.get("epsilon") is not None]
    victims = {row["victim_run_dir"] for row in dp_rows}
    references = [  # the study's own reference models (the draws are the references study's)
        path
        for path in sorted((ROOT / "results" / "cpu_dp" / "train").glob("*/*/reference_*"))
        if "-draw" not in path.name
    ]
    expected += [
        f"noise multiplier {', '.join(f'{sigma:g}' for sigma in sigmas)} "
        f"(epsilon about {max(epsilons):.3g} to {min(epsilons):.3g}): {len(sigmas)} victims, "
        f"{len(references)} reference",
        f"{len(victims)} victims and {len(dp_rows)} attacks, as in `results/cpu_dp`",
    ]
    missing = [phrase for phrase in expected if phrase not in text]
    assert not missing, f"docs/EXPERIMENTS.md does not say (recomputed from results/): {missing}"
