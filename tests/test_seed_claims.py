"""A study's claims over seeds (ganleaks.evaluation.seed_claims) and the fidelity comparisons
(ganleaks.evaluation.fidelity), on synthetic attack runs whose answers are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ganleaks.evaluation.fidelity import Fidelity, budget_table, distance_table, reference_attack_table
from ganleaks.evaluation.seed_claims import SeedStudy, claim_table, comparisons, figure, markdown

N = 80  # members and as many non-members per run


def _run(root: Path, name: str, separation: float, seed: int, *, draw: int = 0) -> str:
    """A run folder with ``scores.csv``: member scores shifted up by ``separation`` standard deviations."""
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1000 * seed + draw)
    lines = ["id,member,victim_loss,reference_loss,score,status"]
    for i in range(2 * N):
        member = int(i < N)
        score = float(rng.normal()) + (separation if member else 0.0)
        lines.append(f"q{i},{member},{-score},,{score},ok")
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    return str(folder)


def _row(run: str, model: str, size: int, setting: str, calibration: str, seed: int, separation: float) -> dict:
    auc = 0.5 + 0.4 * min(separation, 1.0)  # only the order of the AUCs matters to the claims' labels
    return {
        "run_dir": run,
        "model": model,
        "train_size": size,
        "setting": setting,
        "calibration": calibration,
        "distance": "l2",
        "seed": seed,
        "k": None,
        "epsilon": None,
        "noise_multiplier": None,
        "data": "fashion_mnist",
        "auc": auc,
        "auc_ci": [auc - 0.05, auc + 0.05],
    }


def _size_study(tmp_path: Path, seeds=(0, 1, 2)) -> list[dict]:
    """Members separate at n=64 (strongly), weakly at 256, not at 1024; white-box beats full black-box
    only at n=64; calibration changes nothing."""
    separation = {64: {"whitebox": 2.5, "fullbb": 1.0}, 256: {"whitebox": 0.3, "fullbb": 0.3}, 1024: {}}
    rows = []
    for seed in seeds:
        for size, by_setting in separation.items():
            for setting in ("whitebox", "fullbb"):
                for calibration in ("none", "reference"):
                    value = by_setting.get(setting, 0.0)
                    name = f"s{seed}/n{size}/{setting}/{calibration}"
                    run = _run(tmp_path, name, value, seed, draw=size)  # same queries for both calibrations
                    rows.append(_row(run, "dcgan", size, setting, calibration, seed, value))
    return rows


def test_a_comparison_holds_across_seeds_only_where_it_holds_at_every_seed(tmp_path):
    rows = _size_study(tmp_path)
    study = SeedStudy(rows, comparisons(rows))
    assert study.seeds == [0, 1, 2]
    c1 = {key: study.of(("C1", ""), key) for key in study.keys(("C1", ""))}
    # smallest vs largest n: 2 settings x 2 calibrations per seed; each holds at every seed
    assert len(c1) == 4 and all(len(cells) == 3 and all(c.holds for c in cells.values()) for cells in c1.values())
    c2 = {key: study.of(("C2", ""), key) for key in study.keys(("C2", ""))}
    strong = [key for key in c2 if "n=64 " in key]
    assert strong and all(all(c.holds for c in c2[key].values()) for key in strong)
    assert not any(c.holds for key in c2 if "n=1024 " in key for c in c2[key].values())
    # C3 compares identical scores: nothing holds, nothing is reversed
    assert not any(c.holds or c.reversed for c in study.comparisons if c.claim == "C3")
    table = "\n".join(claim_table(study))
    assert "| C1 | 4 | 4 / 4 / 4 | 12 | 4 / 4 / 4 | **4 of 4** | 0 |" in table
    text = markdown(study)
    assert "* **C1** at 3 seeds: 4 comparisons per seed, 12 in Holm's family; 4 of 4 hold at every seed" in text
    assert figure(study, tmp_path / "seeds.png").stat().st_size > 10_000


def test_the_verdict_across_seeds_needs_every_seed_and_flags_any_reversal():
    from ganleaks.evaluation.seed_claims import Comparison, comparison_table

    def comparison(key, seed, difference, holds=False, reversed_=False):
        low, high = difference - 0.05, difference + 0.05
        verdict = "holds" if holds else ("reversed" if reversed_ else "not resolved")
        return Comparison("C2", key, seed, key, difference, (low, high), verdict, 0.01, holds, reversed_)

    study = SeedStudy([], [
        *(comparison("every", seed, 0.2, holds=True) for seed in (0, 1, 2)),
        comparison("two", 0, 0.2, holds=True), comparison("two", 1, 0.2, holds=True), comparison("two", 2, 0.04),
        comparison("flip", 0, 0.2, holds=True), comparison("flip", 1, -0.2, reversed_=True), comparison("flip", 2, 0.0),
    ])  # fmt: skip
    table = "\n".join(comparison_table(study))
    assert "| C2 | every | +0.200 [+0.150, +0.250] ✓ |" in table and table.count("holds at every seed") == 1
    assert "| holds at 2 of 3 |" in table and "| reversed at a seed |" in table
    assert "| C2 | 3 | 3 / 2 / 1 | 9 | 3 / 2 / 1 | **1 of 3** | 1 |" in "\n".join(claim_table(study))


def test_one_seed_is_refused(tmp_path):
    from ganleaks.evaluation.seed_claims import build

    with pytest.raises(FileNotFoundError, match="no attack runs"):
        build([tmp_path])


def _fidelity_run(root: Path, name: str, separation: float, config: str) -> str:
    run = _run(root, name, separation, seed=0, draw=7)
    (Path(run) / ".hydra").mkdir()
    (Path(run) / ".hydra" / "config.yaml").write_text(config)
    return run


WHITEBOX = "setting:\n  init: {init}\n  max_iter: {iters}\ncalibration:\n  reference_attack: whitebox\n"


def test_fidelity_tables_compare_each_variant_with_the_default_on_the_same_queries(tmp_path):
    def row(name, setting, calibration, distance, separation, config):
        run = _fidelity_run(tmp_path, name, separation, config)
        return {**_row(run, "dcgan", 64, setting, calibration, 0, separation), "distance": distance}

    rows = [
        row("default/none-l2", "whitebox", "none", "l2", 1.0, WHITEBOX.format(init="nn", iters=100)),
        row("paper/none-paper", "whitebox", "none", "paper", 1.0, WHITEBOX.format(init="nn", iters=100)),
        row("budget/none-l2-setting.init=zero", "whitebox", "none", "l2", 1.0, WHITEBOX.format(init="zero", iters=999)),
        row("bb/reference-l2", "fullbb", "reference", "l2", 1.0, "calibration:\n  reference_attack: whitebox\n"),
        row("bb/reference-l2-calibration.reference_attack=setting", "fullbb", "reference", "l2", 1.0,
            "calibration:\n  reference_attack: setting\n"),
    ]  # fmt: skip
    study = Fidelity(rows)
    distance = "\n".join(distance_table(study))
    # identical scores: a difference of exactly 0, not resolved
    assert "| dcgan | 64 | white-box |" in distance and "+0.000 [+0.000, +0.000] (not resolved)" in distance
    budget = "\n".join(budget_table(study))
    assert "| dcgan | 64 | zero | 999 | no |" in budget
    reference = "\n".join(reference_attack_table(study))
    assert "| dcgan | 64 | fullbb |" in reference


ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "results" / "cpu_size_seeds"
# Numbers the prose of "The claims at three seeds" may state without the block: the design and the seeds.
STRUCTURAL = {"0", "1", "2", "3", "64", "256", "1024", "4096", "0.05", "95"}


def _committed_seed_study():
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)  # the runs record their victims relative to where they were launched
    try:
        from ganleaks.evaluation.seed_claims import build

        return build([Path("results") / "cpu_size", Path("results") / "cpu_size_seeds"])
    finally:
        os.chdir(cwd)


@pytest.mark.slow
@pytest.mark.skipif(not (SEEDS / "attack").is_dir(), reason="the size study's seeds are not committed")
def test_results_doc_block_matches_the_committed_seeds():
    from ganleaks.evaluation.markdown_blocks import check_markdown_block
    from ganleaks.evaluation.seed_claims import BLOCK

    study, text = _committed_seed_study()
    assert study.seeds == [0, 1, 2] and len(study.rows) == 3 * 120
    check_markdown_block(ROOT / "docs" / "RESULTS.md", BLOCK, text)


@pytest.mark.skipif(not (SEEDS / "attack").is_dir(), reason="the size study's seeds are not committed")
def test_every_number_in_the_seeds_section_is_the_blocks():
    from ganleaks.evaluation.seed_claims import BLOCK
    from tests.conftest import prose_numbers_outside_block

    document = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    missing = prose_numbers_outside_block(document, "### The claims at three seeds", BLOCK, STRUCTURAL)
    assert not missing, f"numbers in the seeds section's prose that its generated block does not give: {missing}"


K_SEEDS = ROOT / "results" / "cpu_k_seeds"


@pytest.mark.slow
@pytest.mark.skipif(not (K_SEEDS / "attack").is_dir(), reason="the k study's seeds are not committed")
def test_results_doc_block_matches_the_committed_k_seeds():
    import os

    from ganleaks.evaluation.markdown_blocks import check_markdown_block
    from ganleaks.evaluation.seed_claims import build

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        study, text = build([Path("results") / "cpu_k", Path("results") / "cpu_k_seeds"])
    finally:
        os.chdir(cwd)
    assert study.seeds == [0, 1, 2] and len(study.rows) == 3 * 96
    assert ("C6", "") in study.families
    check_markdown_block(ROOT / "docs" / "RESULTS.md", "cpu_k-seeds", text)


@pytest.mark.skipif(not (K_SEEDS / "attack").is_dir(), reason="the k study's seeds are not committed")
def test_every_number_in_the_k_seeds_section_is_the_blocks():
    from tests.conftest import prose_numbers_outside_block

    document = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    structural = STRUCTURAL | {"100", "30000"}
    missing = prose_numbers_outside_block(document, "### C6 at three seeds", "cpu_k-seeds", structural)
    assert not missing, f"numbers in the k study's seeds section that its generated block does not give: {missing}"
