"""C4 with its controls (ganleaks.evaluation.dp_controls): the victims told apart, the contrasts with Holm's
correction, the quality-matched control, and the committed study's block in docs/RESULTS.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ganleaks.evaluation.claims import holm, paired_bootstrap, paired_difference, paired_p_value
from ganleaks.evaluation.dp_controls import build, build_study, figure, markdown, study_rows

ROOT = Path(__file__).resolve().parents[1]
N = 60  # members and as many non-members per run


def test_holm_steps_down_and_stops_at_the_first_failure():
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2: the last two are kept
    assert holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    assert holm([0.001] * 10) == [True] * 10
    assert holm([0.03, 0.03]) == [False, False]  # each alone would pass at 0.05; Holm needs 0.025 first
    assert holm([]) == []


def test_the_bootstrap_p_value_follows_the_standard_error():
    draws = np.random.default_rng(0).normal(0.1, 0.1, 4000)
    assert paired_p_value(0.1, draws) == pytest.approx(0.3173, abs=0.02)  # one standard error from 0
    assert paired_p_value(0.4, draws) == pytest.approx(6.3e-5, rel=0.3)  # four: below 1 / len(draws)
    assert paired_p_value(-0.4, draws) == paired_p_value(0.4, draws)  # two-sided
    assert paired_p_value(0.0, np.zeros(10)) == 1.0 and paired_p_value(0.2, np.full(10, 0.2)) == 0.0


def test_paired_difference_is_the_bootstrap_it_summarises():
    rng = np.random.default_rng(1)
    a = {str(i): (i % 2, float(rng.normal(i % 2))) for i in range(40)}
    b = {str(i): (i % 2, float(rng.normal())) for i in range(40)}
    point, interval, n = paired_difference(a, b)
    again, diffs, n_again = paired_bootstrap(a, b)
    assert (point, n) == (again, n_again) and len(diffs) == 1000
    assert interval == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))


def _scores(separation: float, seed: int) -> list[tuple[str, int, float]]:
    """Member scores shifted up by ``separation`` standard deviations; the same ids at every call."""
    rng = np.random.default_rng(seed)
    return [(f"q{i}", int(i < N), float(rng.normal()) + (separation if i < N else 0.0)) for i in range(2 * N)]


def _victim(root: Path, name: str, steps: int, sigma: float | None, fid: float) -> Path:
    folder = root / "train" / name / "n60" / "seed0"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"trainer:\n  max_steps: {steps}\n")
    (folder / "quality.json").write_text(json.dumps({"fid_classifier": fid, "fid_classifier_ci": [fid - 9, fid + 9]}))
    if sigma is not None:
        (folder / "privacy.json").write_text(json.dumps({"noise_multiplier": sigma, "epsilon": 5.0 / (sigma or 1e-9)}))
    return folder


def _row(root: Path, victim: Path, sigma: float | None, setting: str, calibration: str, separation: float) -> dict:
    run = root / "attack" / victim.parts[-3] / setting / calibration
    run.mkdir(parents=True)
    rows = _scores(separation, seed=len(setting) + len(calibration))
    (run / "scores.csv").write_text("id,member,score\n" + "".join(f"{i},{m},{s}\n" for i, m, s in rows))
    members = np.array([s for _, m, s in rows if m])
    others = np.array([s for _, m, s in rows if not m])
    auc = float((members[:, None] > others[None, :]).mean())
    return {
        "run_dir": str(run),
        "victim_run_dir": str(victim),
        "privacy": "none" if sigma is None else "dp",
        "noise_multiplier": sigma,
        "epsilon": None if sigma is None else (float("inf") if sigma == 0 else 5.0 / sigma),
        "setting": setting,
        "calibration": calibration,
        "seed": 0,
        "auc": auc,
        "auc_ci": [auc - 0.05, auc + 0.05],
        # as ganleaks.evaluation.runs reads them from the victim's quality.json
        "fid_classifier": json.loads((victim / "quality.json").read_text())["fid_classifier"],
        "fid_classifier_ci": json.loads((victim / "quality.json").read_text())["fid_classifier_ci"],
    }


def _study_rows(tmp_path: Path) -> list[dict]:
    # (folder, steps, sigma, FD, separation): memorising no-DP victim; clipping halves the signal; noise and
    # early stopping erase it; the victim stopped at 1000 steps has the DP victim's quality, the one at 400 not
    victims = [
        ("nodp3000", 3000, None, 90.0, 3.0),
        ("nodp1000", 1000, None, 170.0, 0.0),
        ("nodp400", 400, None, 330.0, 0.0),
        ("clip", 3000, 0.0, 95.0, 1.0),
        ("dp1", 3000, 1.0, 166.0, 0.0),
    ]
    rows = []
    for name, steps, sigma, fid, separation in victims:
        folder = _victim(tmp_path, name, steps, sigma, fid)
        for setting in ("discriminator", "whitebox"):
            for calibration in ("none", "reference"):
                rows.append(_row(tmp_path, folder, sigma, setting, calibration, separation))
    return rows


def test_the_contrasts_separate_noise_clipping_and_undertraining(tmp_path):
    study = build_study(study_rows(_study_rows(tmp_path)))
    labels = [victim.label for victim in study.victims]
    assert labels == [
        "no DP",
        "no DP, stopped at 1,000 steps",
        "no DP, stopped at 400 steps",
        "clipping only (sigma 0)",
        "DP sigma 1",
    ]
    by_contrast = {}
    for test in study.tests:
        by_contrast.setdefault(test["contrast"], []).append(test)
    assert {c: len(t) for c, t in by_contrast.items()} == {
        "DP as a whole": 4,
        "clipping": 4,
        "noise": 4,
        "quality-matched": 4,
    }
    assert all(t["holds"] and t["family"] == 4 for c in ("DP as a whole", "clipping", "noise") for t in by_contrast[c])
    matched = by_contrast["quality-matched"]
    assert {t["a"].label for t in matched} == {"no DP, stopped at 1,000 steps"}  # FD 170 is nearest 166
    assert not any(t["holds"] or t["reversed"] for t in matched)
    text = markdown(study)
    assert "| quality-matched | 1 | discriminator |" in text and "holds at 0 of 1 seeds" in text
    assert "no DP, stopped at 1,000 steps (FD 170 [161, 179] against 166 [157, 175])" in text
    assert "| clipping only (sigma 0) | 3,000 | infinite |" in text
    assert figure(study, tmp_path / "figure.png").stat().st_size > 10_000


def test_two_runs_of_one_cell_and_a_victim_without_its_config_are_refused(tmp_path):
    rows = _study_rows(tmp_path)
    with pytest.raises(ValueError, match="two runs for DP sigma 1, white-box, calibrated, seed 0"):
        study_rows([*rows, dict(rows[-1], run_dir=rows[-1]["run_dir"] + "-again")])
    (Path(rows[0]["victim_run_dir"]) / "config.yaml").unlink()
    with pytest.raises(ValueError, match="trainer.max_steps"):
        study_rows(rows)


def test_a_folder_without_the_study_is_refused(tmp_path):
    with pytest.raises((ValueError, FileNotFoundError)):
        build([tmp_path])


STUDY = ROOT / "results" / "cpu_dp_controls"
# Numbers Part 6's prose may state without the block: the design (seeds, sigmas, stopping points, members,
# image size, network width, clipping norm, interval level) and the parts it refers to.
STRUCTURAL = {"0", "1", "2", "3", "4", "6", "16", "32", "95", "256", "400", "1000", "1500", "2000", "3000"}


@pytest.mark.skipif(not (STUDY / "attack").is_dir(), reason="the C4 controls study is not committed")
def test_results_doc_block_matches_the_committed_study():
    import os

    from ganleaks.evaluation.dp_controls import BLOCK
    from ganleaks.evaluation.markdown_blocks import check_markdown_block

    cwd = os.getcwd()
    os.chdir(ROOT)  # the runs record their victims relative to where they were launched
    try:
        study, text = build([Path("results") / "cpu_dp_controls", Path("results") / "cpu_dp_controls_nodp"])
    finally:
        os.chdir(cwd)
    assert len(study.seeds) == 3 and len(study.items) == 96
    check_markdown_block(ROOT / "docs" / "RESULTS.md", BLOCK, text)


@pytest.mark.skipif(not (STUDY / "attack").is_dir(), reason="the C4 controls study is not committed")
def test_every_number_in_part_6s_prose_is_the_blocks():
    from ganleaks.evaluation.dp_controls import BLOCK
    from tests.conftest import prose_numbers_outside_block

    document = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    missing = prose_numbers_outside_block(document, "# Part 6: C4 with its controls", BLOCK, STRUCTURAL)
    assert not missing, f"numbers in Part 6's prose that its generated block does not give: {missing}"
