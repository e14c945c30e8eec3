"""ganleaks.evaluation.claim_numbers: the numbers a sentence about each claim quotes, from the claims' lines."""

from __future__ import annotations

from ganleaks.evaluation.claim_numbers import numbers_markdown, timing_markdown


def _line(claim, what, a, b, diff, verdict):
    interval = f"{diff:+.3f} [{diff - 0.05:+.3f}, {diff + 0.05:+.3f}]"
    return [claim, what, f"{a:.3f}", f"{b:.3f}", interval, "512", verdict]


def _row(size, setting, calibration, auc, ci, **extra):
    return {
        "model": "toy",
        "train_size": size,
        "setting": setting,
        "calibration": calibration,
        "k": 10000 if setting == "fullbb" else None,
        "epsilon": None,
        "auc": auc,
        "auc_ci": ci,
    } | extra


def test_c1_names_the_intervals_at_the_largest_size_that_exclude_chance():
    rows = [
        _row(64, "whitebox", "none", 0.8, [0.7, 0.9]),
        _row(4096, "whitebox", "none", 0.49, [0.44, 0.54]),
        _row(4096, "discriminator", "reference", 0.551, [0.503, 0.597]),
    ]
    lines = [_line("C1", "toy whitebox uncalibrated: n=64 vs n=4096", 0.8, 0.49, 0.31, "holds")]
    text = numbers_markdown(rows, lines)
    assert "1 hold, 0 not resolved, 0 reversed (of 1)" in text
    assert "at the largest n = 4096: AUC 0.490 to 0.551 over 2 runs; 1 of the 2 intervals contain 0.5" in text
    assert "the others: toy discriminator calibrated 0.551 [0.503, 0.597]." in text


def test_c2_gives_the_range_of_each_calibration_and_the_reversals():
    lines = [
        _line("C2", "toy n=64 uncalibrated: whitebox vs partialbb", 0.71, 0.70, 0.010, "not resolved"),
        _line("C2", "toy n=64 calibrated: whitebox vs partialbb", 0.78, 0.64, 0.143, "holds"),
        _line("C2", "toy n=1024 uncalibrated: whitebox vs partialbb", 0.513, 0.529, -0.016, "reversed"),
    ]
    text = numbers_markdown([_row(64, "whitebox", "none", 0.71, [0.6, 0.8])], lines)
    assert "1 hold, 1 not resolved, 1 reversed (of 3); reversed: toy n=1024 uncalibrated" in text
    assert "**C2** uncalibrated: differences -0.016 to +0.010" in text
    assert "**C2** calibrated: differences +0.143 to +0.143" in text


def test_c4_gives_the_dp_victims_range_and_the_quality_per_budget():
    rows = [
        _row(256, "discriminator", "none", 0.876, [0.84, 0.91], fid_classifier=88.6),
        _row(256, "discriminator", "none", 0.558, [0.509, 0.608], epsilon=118.0, noise_multiplier=1.0),
        _row(256, "discriminator", "none", 0.50, [0.45, 0.55], epsilon=1.25, noise_multiplier=32.0, fid_classifier=993),
    ]
    rows[1]["fid_classifier"] = 166.0
    lines = [
        _line("C4", "discriminator uncalibrated: no DP vs epsilon=118", 0.876, 0.558, 0.318, "holds"),
        _line("C4", "discriminator uncalibrated: no DP vs epsilon=1.25", 0.876, 0.50, 0.376, "holds"),
    ]
    text = numbers_markdown(rows, lines)
    assert "DP victims: AUC 0.500 to 0.558 over 2 runs; 1 of the 2 intervals contain 0.5" in text
    assert "the highest: toy (sigma=1) discriminator uncalibrated 0.558 [0.509, 0.608]" in text
    assert "sample quality (Fréchet distance): no DP 89, epsilon 118 166, epsilon 1.25 993." in text


def test_timing_gives_each_settings_wall_time_and_the_span_of_the_logs(tmp_path):
    rows = []
    for i, (setting, wall) in enumerate((("whitebox", 60.0), ("whitebox", 80.0), ("fullbb", 10.0))):
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "attack.log").write_text(
            f"[2026-11-29 21:0{i}:00,000][ganleaks.attacks.runner][INFO] - scoring\n"
            f"[2026-11-29 21:0{i}:30,000][ganleaks.attacks.audit][INFO] - done\n"
        )
        rows.append(_row(256, setting, "none", 0.5, None, wall_seconds=wall, run_dir=str(run)))
    text = timing_markdown(rows)
    assert "| whitebox | 2 | 60.0 | 70.0 | 80.0 | 93% |" in text
    assert "| fullbb | 1 | 10.0 | 10.0 | 10.0 | 7% |" in text
    assert "span 2026-11-29 21:00:00 to 21:02:30 UTC: 150 s (2.5 min)" in text
