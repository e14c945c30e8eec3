"""The report gathers attack run folders into tables and figures."""

import csv
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ganleaks import report as report_module
from ganleaks.report import NoRunsFoundError, build_report, find_attack_runs, gather, main

SETTINGS = ("fullbb", "whitebox")
CALIBRATIONS = ("none", "reference")


def make_victim(
    root: Path, model: str, train_size: int, epsilon: float | None = None, quality: float | None = None
) -> Path:
    suffix = "" if epsilon is None else f"_dp{epsilon:g}"
    victim = root / "train" / "toy" / f"{model}{suffix}" / f"n{train_size}" / "seed0"
    victim.mkdir(parents=True, exist_ok=True)
    if epsilon is not None:
        (victim / "privacy.json").write_text(json.dumps({"epsilon": epsilon, "noise_multiplier": 1 / epsilon}))
    if quality is not None:
        (victim / "quality.json").write_text(
            json.dumps({"fid_classifier": quality, "n": 100, "feature_extractor": "classifier-cnn"})
        )
    return victim


def make_attack_run(
    root: Path,
    victim: Path,
    model: str,
    train_size: int,
    setting: str,
    calibration: str,
    auc: float,
    k: int | None = None,
    epsilon: float | None = None,
    logger: dict | None = None,
    intervals: bool = False,
) -> Path:
    run = (
        root
        / "attack"
        / victim.relative_to(root / "train")
        / f"{setting}{'' if k is None else f'_k{k}'}"
        / f"{calibration}-paper"
    )
    (run / ".hydra").mkdir(parents=True)
    config = {
        "data": {"name": "toy", "train_size": train_size},
        "model": {"name": model},
        "privacy": {"enabled": epsilon is not None, "noise_multiplier": None if epsilon is None else 1 / epsilon},
        "setting": {"name": setting, **({} if k is None else {"k": k})},
        "calibration": {"name": calibration},
        "seed": 0,
        "victim": {"run_dir": "${paths.root}/train/x"},  # left unresolved, as Hydra saves it
        "paths": {"root": str(root)},
        "logger": logger or {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": "."},
    }
    OmegaConf.save(OmegaConf.create(config), run / ".hydra" / "config.yaml")
    metrics = {
        "auc": auc,
        "average_precision": auc,
        "tpr_at_fpr_0.001": 0.0,
        "tpr_at_fpr_0.01": auc / 10,
        "tpr_at_fpr_0.1": auc / 2,
        "accuracy": auc,
        "n_members": 10,
        "n_nonmembers": 10,
        "n_failed": 1,
        "setting": setting,
        "calibration": calibration,
        "distance": "paper",
        "victim_run_dir": str(victim),
        "reference_run_dir": None,
        "seed": 0,
        "wall_seconds": 1.5,
    }
    if epsilon is not None:
        metrics["epsilon"] = epsilon
    if intervals:  # as metrics.json has been written since intervals exist; 10 non-members resolve 10% only
        metrics.update(
            {
                "auc_ci": [auc - 0.1, min(auc + 0.05, 1.0)],
                "average_precision_ci": [auc - 0.1, auc],
                "tpr_at_fpr_0.001": None,
                "tpr_at_fpr_0.001_ci": None,
                "tpr_at_fpr_0.01": None,
                "tpr_at_fpr_0.01_ci": None,
                "tpr_at_fpr_0.1_ci": [auc / 4, auc / 2 + 0.1],
                "not_estimable": {
                    "tpr_at_fpr_0.001": "needs at least 1000 non-members, got 10",
                    "tpr_at_fpr_0.01": "needs at least 100 non-members, got 10",
                },
            }
        )
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture
def size_study(tmp_path):
    """2 victims x 3 sizes x 2 settings x 2 calibrations = 24 attack runs (+ quality for dcgan n64)."""
    root = tmp_path / "study"
    for model in ("dcgan", "wgangp"):
        for size in (64, 256, 1024):
            victim = make_victim(root, model, size, quality=12.5 if (model, size) == ("dcgan", 64) else None)
            for setting in SETTINGS:
                for calibration in CALIBRATIONS:
                    auc = 0.5 + 32 / size + (0.05 if calibration == "reference" else 0)
                    make_attack_run(root, victim, model, size, setting, calibration, min(auc, 1.0))
    return root


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_report_tables_and_size_figure(size_study, tmp_path):
    out = tmp_path / "report"
    result = build_report([size_study / "attack"], out, wandb="off")
    rows = read_csv(out / "runs.csv")
    assert len(rows) == len(result.rows) == 24
    assert {(r["model"], r["train_size"]) for r in rows} == {
        (m, str(s)) for m in ("dcgan", "wgangp") for s in (64, 256, 1024)
    }
    assert {r["setting"] for r in rows} == set(SETTINGS) and {r["calibration"] for r in rows} == set(CALIBRATIONS)
    first = rows[0]  # sorted: dcgan, n64, fullbb, none
    assert (first["model"], first["train_size"], first["setting"], first["calibration"]) == (
        "dcgan",
        "64",
        "fullbb",
        "none",
    )
    assert float(first["auc"]) == pytest.approx(1.0) and first["n"] == "20" and first["n_failed"] == "1"
    assert first["fid_classifier"] == "12.5"  # from the victim's quality.json
    assert all(r["fid_classifier"] == "" for r in rows if (r["model"], r["train_size"]) != ("dcgan", "64"))
    markdown = (out / "runs.md").read_text().splitlines()
    assert len(markdown) == 2 + 24 and "AUC" in markdown[0] and "TPR@1%" in markdown[0]
    assert "epsilon" not in markdown[0]  # empty columns are left out
    assert (out / "auc_vs_train_size.png").stat().st_size > 1000
    assert not (out / "epsilon_vs_auc.png").exists() and not (out / "auc_vs_k.png").exists()
    assert result.markdown == (out / "runs.md").read_text()


def test_dp_and_k_sweeps_make_their_figures(tmp_path):
    root = tmp_path / "study"
    for epsilon, quality in ((1.0, 40.0), (10.0, 20.0), (100.0, 10.0)):
        victim = make_victim(root, "dpgan", 256, epsilon=epsilon, quality=quality)
        for calibration in CALIBRATIONS:
            make_attack_run(root, victim, "dpgan", 256, "whitebox", calibration, 0.5 + epsilon / 1000, epsilon=epsilon)
    baseline = make_victim(root, "dpgan", 256, quality=5.0)  # the same nets trained without DP
    make_attack_run(root, baseline, "dpgan", 256, "whitebox", "none", 0.9)
    victim = make_victim(root, "dcgan", 256)
    for k in (100, 1000, 10000):
        make_attack_run(root, victim, "dcgan", 256, "fullbb", "none", 0.5 + k / 1e5, k=k)
    result = build_report([root], tmp_path / "out", wandb="off")
    assert len(result.rows) == 10
    dp = [row for row in result.rows if row["model"] == "dpgan" and row["epsilon"] is not None]
    assert sorted({row["epsilon"] for row in dp}) == [1.0, 10.0, 100.0]
    assert {row["fid_classifier"] for row in dp} == {40.0, 20.0, 10.0}
    assert {row["privacy"] for row in dp} == {"dp"} and {row["noise_multiplier"] for row in dp} == {1.0, 0.1, 0.01}
    (no_dp,) = [row for row in result.rows if row["model"] == "dpgan" and row["epsilon"] is None]
    assert (no_dp["privacy"], no_dp["noise_multiplier"], no_dp["fid_classifier"]) == ("none", None, 5.0)
    assert sorted(row["k"] for row in result.rows if row["model"] == "dcgan") == [100, 1000, 10000]
    for name in ("epsilon_vs_auc", "auc_vs_k"):
        assert result.files[name].stat().st_size > 1000
    assert "auc_vs_train_size" not in result.files  # one size only


def test_no_runs_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoRunsFoundError, match="no attack runs"):
        gather([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_attack_runs([tmp_path / "missing"])
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "empty")])
    assert exit_info.value.code == 2 and "no attack runs" in capsys.readouterr().err


def test_cli_prints_the_table(size_study, tmp_path, capsys):
    main([str(size_study / "attack"), "--out", str(tmp_path / "cli"), "--wandb", "off"])
    printed = capsys.readouterr().out
    assert printed.count("| dcgan |") == 12 and "24 attack runs" in printed
    assert (tmp_path / "cli" / "runs.csv").is_file()


def test_python_dash_m_entry_point(size_study, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "ganleaks.report", str(size_study), "--wandb", "off"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (size_study / "report" / "runs.md").is_file() and "24 attack runs" in done.stdout


class FakeRun:
    def __init__(self, calls):
        self.calls = calls

    def log(self, payload):
        self.calls.append(("log", payload))

    def finish(self):
        self.calls.append(("finish", None))


def fake_wandb(calls, fail=False):
    module = types.ModuleType("wandb")

    def init(**kwargs):
        if fail:
            raise RuntimeError("no network")
        calls.append(("init", kwargs))
        return FakeRun(calls)

    module.init = init
    module.Table = lambda columns, data, **kwargs: ("table", columns, data)
    module.Image = lambda path: ("image", path)
    return module


def test_wandb_runs_get_an_offline_report_run(tmp_path, monkeypatch):
    root = tmp_path / "study"
    wandb_logger = {"_target_": "pytorch_lightning.loggers.WandbLogger", "project": "leaks"}
    for size in (64, 256):
        victim = make_victim(root, "dcgan", size)
        make_attack_run(root, victim, "dcgan", size, "fullbb", "none", 0.7, logger=wandb_logger)
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    build_report([root], tmp_path / "out")
    init = dict(calls)["init"]
    assert init["project"] == "leaks" and init["mode"] == "offline" and init["job_type"] == "report"
    payload = dict(calls)["log"]
    assert payload["attack_runs"][0] == "table" and len(payload["attack_runs"][2]) == 2
    assert payload["auc_vs_train_size"][0] == "image" and calls[-1][0] == "finish"
    # A W&B failure is logged and the report still completes.
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb([], fail=True))
    result = build_report([root], tmp_path / "out2")
    assert (tmp_path / "out2" / "runs.csv").is_file() and len(result.rows) == 2


def test_relative_victim_dir_is_found_from_the_study_root(size_study, tmp_path, monkeypatch):
    run = next(iter(find_attack_runs([size_study / "attack"])))
    metrics = json.loads((run / "metrics.json").read_text())
    victim = Path(metrics["victim_run_dir"])
    metrics["victim_run_dir"] = str(victim.relative_to(size_study.parent))  # as attack.py writes it
    (run / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.chdir(tmp_path.parent)  # somewhere else: found by walking up from the attack run
    assert report_module.resolve_victim_dir(metrics["victim_run_dir"], run) == victim.resolve()


class FillBetweenSpy:
    """Counts the shaded interval bands the figures draw."""

    def __init__(self, monkeypatch):
        import matplotlib.axes

        self.calls = []
        original = matplotlib.axes.Axes.fill_between

        def spy(ax, x, low, high, **kwargs):
            self.calls.append((ax, list(x), list(low), list(high)))
            return original(ax, x, low, high, **kwargs)

        monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", spy)


def test_intervals_show_in_the_table_and_as_bands(tmp_path, monkeypatch):
    root = tmp_path / "study"
    for size in (64, 256):
        victim = make_victim(root, "dcgan", size)
        make_attack_run(root, victim, "dcgan", size, "whitebox", "none", 0.9 if size == 64 else 0.6, intervals=True)
    for k in (100, 1000):
        victim = make_victim(root, "wgangp", 256)
        make_attack_run(root, victim, "wgangp", 256, "fullbb", "none", 0.5 + k / 1e4, k=k, intervals=True)
    spy = FillBetweenSpy(monkeypatch)
    result = build_report([root], tmp_path / "out", wandb="off")
    header, _, first, *_ = (tmp_path / "out" / "runs.md").read_text().splitlines()
    assert "AUC [95% CI]" in header and "best-threshold accuracy (optimistic)" in header
    cells = [cell.strip() for cell in first.split("|")]
    assert "0.90 [0.80, 0.95]" in cells  # dcgan n64: AUC with its interval, decimals as resolved
    assert cells.count("n/a") == 2  # TPR at 0.1% and 1% with 10 non-members: not estimable
    rows = read_csv(tmp_path / "out" / "runs.csv")
    assert rows[0]["tpr_at_fpr_0.001"] == "" and rows[0]["tpr_at_fpr_0.001_ci_low"] == ""
    assert float(rows[0]["auc_ci_low"]) == pytest.approx(0.8) and float(rows[0]["auc_ci_high"]) == pytest.approx(0.95)
    assert {"auc_vs_train_size", "auc_vs_k"} <= set(result.files)
    # Bands: AUC against the training-set size (the TPR@1% panel has no estimable points) and against k.
    assert sorted(call[0].get_ylabel() for call in spy.calls) == ["ROC AUC", "ROC AUC"]  # read once labelled
    auc_bands = spy.calls
    by_size = next(call for call in auc_bands if call[1] == [64.0, 256.0])
    assert by_size[2] == pytest.approx([0.8, 0.5]) and by_size[3] == pytest.approx([0.95, 0.65])


def test_results_from_before_intervals_render_without_bands(size_study, tmp_path, monkeypatch):
    spy = FillBetweenSpy(monkeypatch)
    result = build_report([size_study / "attack"], tmp_path / "out", wandb="off")
    assert result.files["auc_vs_train_size"].stat().st_size > 1000 and spy.calls == []
    first = (tmp_path / "out" / "runs.md").read_text().splitlines()[2]
    assert "| 1.000 |" in first and "[" not in first  # the point estimate alone
    assert all(row["auc_ci"] is None for row in result.rows)


def test_the_table_is_kept_in_a_results_document(tmp_path, capsys):
    """--doc puts runs.md between the document's markers; --check fails once the runs give another table."""
    from ganleaks.evaluation.markdown_blocks import StaleMarkdownBlockError, check_markdown_block

    root = tmp_path / "study"
    for size in (64, 256):
        victim = make_victim(root, "dcgan", size)
        make_attack_run(root, victim, "dcgan", size, "whitebox", "none", 0.9 if size == 64 else 0.6, intervals=True)
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n\n<!-- report:study -->\nstale\n<!-- /report:study -->\n\nProse stays.\n")
    args = [str(root), "--out", str(tmp_path / "out"), "--wandb", "off", "--doc", str(doc)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--check"])
    assert exit_info.value.code == 1 and "-stale" in capsys.readouterr().err and "stale" in doc.read_text()
    main(args)  # the block's name defaults to the folder's: study
    text = doc.read_text()
    table = (tmp_path / "out" / "runs.md").read_text()
    assert text == f"# Results\n\n<!-- report:study -->\n{table}<!-- /report:study -->\n\nProse stays.\n"
    assert "| 0.90 [0.80, 0.95] |" in text and "| n/a |" in text  # intervals, and n/a where not estimable
    main([*args, "--check"])  # up to date: returns normally
    # A test regenerating the table from committed runs fails when a result changes under the document.
    metrics_path = next(root.rglob("metrics.json"))
    metrics = json.loads(metrics_path.read_text())
    metrics["auc"] = 0.5
    metrics_path.write_text(json.dumps(metrics))
    with pytest.raises(StaleMarkdownBlockError, match="report:study differs"):
        check_markdown_block(doc, "study", build_report([root], tmp_path / "again", wandb="off").markdown)
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--block", "missing", "--check"])
    assert exit_info.value.code == 2 and "exactly one" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(root), "--check"])
    assert exit_info.value.code == 2 and "need --doc" in capsys.readouterr().err


def test_size_figure_has_a_panel_per_victim_setting_and_metric(size_study, tmp_path, monkeypatch):
    """Readable at a glance: each panel holds one setting of one victim (calibrated beside
    uncalibrated), ticked at the swept sizes, with the chance line."""
    import matplotlib.figure

    saved = []
    original = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        saved.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    build_report([size_study / "attack"], tmp_path / "out", wandb="off")
    (figure,) = [fig for fig in saved if any(ax.get_xlabel() == "training-set size" for ax in fig.axes)]
    titles = [ax.get_title() for ax in figure.axes]
    victims = ("toy/dcgan", "toy/wgangp")
    labels = ("full black-box", "white-box")  # the settings' declared labels (fullbb, whitebox)
    assert sorted(titles) == sorted(f"{v}\n{s}" for v in victims for s in labels for _ in ("auc", "tpr"))
    for ax in figure.axes:
        assert [float(t) for t in ax.get_xticks()] == [64.0, 256.0, 1024.0]
        styles = sorted(
            line.get_linestyle() for line in ax.get_lines() if line.get_label() in ("calibrated", "uncalibrated")
        )
        assert styles in (["-", "--"], [])  # TPR@1% is not estimable with these 10 non-members
        assert any(line.get_label().startswith("chance") for line in ax.get_lines())


def test_pivot_tables_put_settings_side_by_side_and_fill_their_blocks(tmp_path):
    """pivot_auc.md: a row per victim and size, a column per setting (uncalibrated, then calibrated),
    each cell the AUC with its interval; --doc fills report:NAME-auc / -tpr where the document has them."""
    root = tmp_path / "study"
    for size, auc in ((64, 0.9), (256, 0.6)):
        victim = make_victim(root, "dcgan", size)
        for calibration, shift in (("none", 0.0), ("reference", 0.04)):
            make_attack_run(root, victim, "dcgan", size, "whitebox", calibration, auc + shift, intervals=True)
        make_attack_run(root, victim, "dcgan", size, "fullbb", "none", auc - 0.1, intervals=True)
    report = build_report([root], tmp_path / "out", wandb="off")
    lines = (tmp_path / "out" / "pivot_auc.md").read_text().splitlines()
    assert lines[0] == "| model | train size | fullbb | whitebox | whitebox cal. |"
    assert lines[2] == "| dcgan | 64 | 0.80 [0.70, 0.85] | 0.90 [0.80, 0.95] | 0.94 [0.84, 0.99] |"
    assert lines[3].startswith("| dcgan | 256 | 0.50 [0.40, 0.55] |") and len(lines) == 4
    assert (tmp_path / "out" / "pivot_tpr.md").read_text().count("n/a") == 6  # 10 non-members: TPR@1% n/a
    doc = tmp_path / "RESULTS.md"
    doc.write_text(
        "<!-- report:study -->\n<!-- /report:study -->\n\n<!-- report:study-auc -->\nold\n<!-- /report:study-auc -->\n"
    )
    main([str(root), "--out", str(tmp_path / "out"), "--wandb", "off", "--doc", str(doc)])
    text = doc.read_text()
    assert report.blocks["auc"] in text and report.markdown in text and "\nold\n" not in text
    assert "report:study-tpr" not in text  # a block the document does not have is not added


def test_a_published_study_finds_its_victims_under_the_new_root(tmp_path, monkeypatch):
    """Runs attacked under outputs/cpu_size and committed under results/cpu_size (and a study whose
    victims are another study's, results/cpu_k reading results/cpu_size) still find their victims."""
    victim = tmp_path / "results" / "cpu_size" / "train" / "toy" / "dcgan" / "n64" / "seed0"
    victim.mkdir(parents=True)
    attack = tmp_path / "results" / "cpu_k" / "attack" / "toy" / "dcgan" / "n64" / "seed0" / "fullbb" / "none-l2"
    attack.mkdir(parents=True)
    own = tmp_path / "results" / "cpu_size" / "attack" / "toy" / "dcgan" / "n64" / "seed0" / "fullbb" / "none-l2"
    own.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    recorded = "outputs/cpu_size/train/toy/dcgan/n64/seed0"
    assert report_module.resolve_victim_dir(recorded, own) == victim.resolve()
    assert report_module.resolve_victim_dir(recorded, attack) == victim.resolve()
    assert report_module.resolve_victim_dir("outputs/cpu_size/train/toy/dcgan/n256/seed0", own) is None


def test_the_privacy_audit_table_lists_each_audit_with_its_claim():
    from ganleaks.report import privacy_audit_markdown

    audit = {
        "m": 1000,
        "n_included": 497,
        "guesses": 100,
        "correct": 90,
        "epsilon_lower_bound_one_run": 1.63,
        "epsilon_lower_bound_gdp": 2.46,
        "claimed_epsilon": 1.0,
        "delta": 1e-5,
        "alpha": 0.05,
        "verdict": "claim falsified",
    }
    rows = [
        {"data": "digits", "model": "dpgan", "privacy": "dp", "setting": "discriminator", "calibration": "none",
         "seed": 0, "run_dir": "a", "privacy_audit": audit},
        {"data": "digits", "model": "dcgan", "privacy": "none", "setting": "fullbb", "calibration": "none",
         "seed": 0, "run_dir": "b", "privacy_audit": None},
    ]  # fmt: skip
    table = privacy_audit_markdown(rows)
    assert "| 1000 (497) | 100 (90) | 1.63 | 2.46 | 1.00 (1e-05) | claim falsified | a |" in table
    assert "| b |" not in table and "confidence 95%" in table
    assert privacy_audit_markdown(rows[1:]) == ""
