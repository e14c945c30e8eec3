"""The privacy-audit study's tables and figure (ganleaks.evaluation.audit_study), and the committed study's
block in docs/RESULTS.md regenerated from results/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ganleaks.evaluation.audit_study import (
    BLOCK,
    NO_DP,
    build,
    ceiling,
    figure,
    markdown,
    study_rows,
    victim_label,
)
from ganleaks.evaluation.markdown_blocks import check_markdown_block
from ganleaks.evaluation.privacy_audit import canary_audit, guess_grid, one_run_epsilon_lower_bound
from tests.conftest import prose_numbers_outside_block

ROOT = Path(__file__).resolve().parents[1]
GRID = [10, 20, 50, 100, 200, 500, 1000]


def _victim(tmp_path: Path, name: str, kind: str, privacy: dict | None) -> Path:
    folder = tmp_path / "train" / name / kind
    folder.mkdir(parents=True)
    (folder / "canaries.json").write_text(json.dumps({"kind": kind, "source": "digits"}))
    if privacy is not None:
        (folder / "privacy.json").write_text(json.dumps(privacy))
    return folder


def _row(victim: Path, setting: str, one_run: float, gdp: float, claimed, auc: float = 0.6, verdict="x") -> dict:
    return {
        "run_dir": str(victim.parent / f"attack-{setting}"),
        "train_size": 256,
        "victim_run_dir": str(victim),
        "setting": setting,
        "seed": 0,
        "data": "digits",
        "auc": auc,
        "auc_ci": [auc - 0.03, auc + 0.03],
        "fid_classifier": 12.3,
        "privacy_audit": {
            "m": 1000,
            "n_included": 509,
            "guesses": 20,
            "correct": 15,
            "epsilon_lower_bound_one_run": one_run,
            "epsilon_lower_bound_gdp": gdp,
            "claimed_epsilon": claimed,
            "delta": 1e-5,
            "verdict": verdict,
            "alpha": 0.05,
            "grid": [list(pair) for pair in guess_grid(1000, GRID, "both")],
            "guess_rule": "both",
        },
    }


def test_victims_are_labelled_from_their_privacy_record():
    assert victim_label(None) == NO_DP
    assert victim_label({"noise_multiplier": 2.0, "epsilon": 4.2}) == "DP sigma 2"
    buggy = {"noise_multiplier": 8.0, "test_only_noise_override": 0.0}
    assert victim_label(buggy) == "buggy: sigma 0 trained, 8 claimed"


def test_rows_tables_and_the_canary_kind_comparison(tmp_path):
    dp = {"noise_multiplier": 1.0, "epsilon": 12.0}
    buggy = {"noise_multiplier": 8.0, "epsilon": 0.8, "test_only_noise_override": 0.0}
    rows = [
        _row(_victim(tmp_path, "nodp", "ood", None), "discriminator", 2.1, 3.9, "none", 0.99, "no claim"),
        _row(_victim(tmp_path, "nodp", "indist", None), "discriminator", 0.4, 0.9, "none", 0.7, "no claim"),
        _row(_victim(tmp_path, "dp1", "ood", dp), "discriminator", 0.0, 0.0, 12.0, 0.52, "not falsified"),
        _row(_victim(tmp_path, "dp1", "indist", dp), "discriminator", 0.1, 0.2, 12.0, 0.53, "not falsified"),
        _row(_victim(tmp_path, "bug", "ood", buggy), "discriminator", 1.7, 3.0, 0.8, 0.95, "claim falsified"),
        {"run_dir": "x", "privacy_audit": None},  # not an audit: left out
    ]
    declared = _row(_victim(tmp_path, "user", "ood", None), "fullbb", 0.2, 0.3, 3.0, 0.6, "not falsified")
    assert study_rows([declared])[0]["victim"] == "declared claim"  # a user's artefact: no privacy.json, a claim
    items = study_rows(rows)
    assert [(i["victim"], i["canaries"]) for i in items] == [
        ("buggy: sigma 0 trained, 8 claimed", "ood"),
        ("DP sigma 1", "indist"),
        ("DP sigma 1", "ood"),
        (NO_DP, "indist"),
        (NO_DP, "ood"),
    ]
    assert items[0]["buggy"] and items[0]["claimed"] == 0.8 and items[-1]["claimed"] is None
    text = markdown(items)
    line = "| 256 | ood (1000) | DP sigma 1 | discriminator | 12.00 | 0.520 [0.490, 0.550] | 20 (15) | 0.00 | 0.00 |"
    assert line in text
    assert (
        "| 256 | 1000 | no DP | discriminator | 0.990 [0.960, 1.020] | 2.10 | 0.700 [0.670, 0.730] | 0.40 | ood |"
        in text
    )
    assert (
        "| 256 | 1000 | DP sigma 1 | discriminator | 0.520 [0.490, 0.550] | 0.00 | 0.530 [0.500, 0.560] | 0.10 |"
        in text
    )
    wins = "* 2 victim-setting pairs: ood canaries give the larger one-run bound on 1, in-distribution canaries on 1"
    assert wins in text
    assert (
        "* honest DP victims: 2 audits, 0 falsified; the largest one-run bound is 0.10 (DP sigma 1, n=256, indist"
        in text
    )
    assert "(n=256, ood m=1000, discriminator): claimed 0.80, AUC 0.950 [0.920, 0.980], audited 1.70" in text
    assert "* no DP (n=256, indist m=1000, discriminator): AUC 0.700 [0.670, 0.730], audited 0.40 (one-run)" in text
    one_run, gdp = ceiling(1000, guess_grid(1000, GRID, "both"), 0.05, 1e-5)
    assert f"cannot give more than {one_run:.2f} (one-run)" in text
    # every guess right at the grid's last point, tested at alpha / 7: below the 5.78 of a single fixed guess count
    assert one_run == pytest.approx(one_run_epsilon_lower_bound(1000, 1000, 1000, 1e-5, 0.05 / 7), abs=1e-6)
    assert 5.0 < one_run < 5.78
    perfect = canary_audit([1.0, 0.0] * 500, [True, False] * 500, counts=GRID)  # every canary separated
    assert (one_run, gdp) == pytest.approx((perfect["epsilon_lower_bound_one_run"], perfect["epsilon_lower_bound_gdp"]))
    assert gdp > one_run
    assert figure(items, tmp_path / "fig.png").stat().st_size > 5000
    with pytest.raises(ValueError, match="two audits"):
        study_rows([*rows, rows[0]])


STUDY = ROOT / "results" / "cpu_audit"


@pytest.mark.skipif(not (STUDY / "attack").is_dir(), reason="the audit study is not committed")
def test_results_doc_block_matches_the_committed_audit_study():
    cwd = os.getcwd()
    os.chdir(ROOT)  # the runs record their victims relative to where they were launched
    try:
        items, text = build([STUDY.relative_to(ROOT), Path("results") / "cpu_audit_nodp"])
    finally:
        os.chdir(cwd)
    assert len(items) >= 1
    check_markdown_block(ROOT / "docs" / "RESULTS.md", BLOCK, text)


# Numbers Part 5's prose may state without the block: the grid (canaries, members, non-members, sigmas,
# steps, image size, batch), the confidence level and the reference values of docs/PRIVACY_AUDIT.md.
STRUCTURAL = {"1", "2", "4", "5", "8", "16", "32", "95", "256", "1000", "1024", "1500", "3000", "0.05", "1e-5"}


@pytest.mark.skipif(not (STUDY / "attack").is_dir(), reason="the audit study is not committed")
def test_every_number_in_part_5s_prose_is_the_blocks():
    document = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    missing = prose_numbers_outside_block(document, "# Part 5: auditing a DP claim", BLOCK, STRUCTURAL)
    assert not missing, f"numbers in Part 5's prose that its generated block does not give: {missing}"


def test_the_command_line_refuses_a_folder_without_audits_in_one_line(tmp_path, capsys):
    from ganleaks.evaluation.audit_study import main

    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: no attack runs (metrics.json) under")
    assert not (tmp_path / "out").exists()
