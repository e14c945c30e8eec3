"""A one-page HTML audit summary of a finished attack run folder (``summary.html``).

One self-contained file a data owner can open or mail: the threat model (what the attacker had),
the victim, AUC and TPR at low FPR with their 95% intervals, the ROC figure and the most exposed
records embedded as base64 PNGs, epsilon where the victim was trained with DP, and the exact
command. No server, no scripts, no external assets; every value read from the run folder is
HTML-escaped. Reads files only (``metrics.json``, ``run.json`` or ``.hydra/``, the victim's
``privacy.json``), through :func:`ganleaks.evaluation.runs.load_run`, as the sweep report does.
The threat model is the one the setting's engine class declares (its ``label`` and ``description``,
:func:`ganleaks.evaluation.runs.setting_info`).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import os
import shlex
from pathlib import Path
from typing import Any

import yaml

from ganleaks.evaluation.estimates import FPR_TARGETS, INTERVAL_KEYS, format_estimate, verdict_of
from ganleaks.evaluation.exposure import EXPOSED_CSV, EXPOSED_PNG
from ganleaks.evaluation.runs import load_run, resolve_victim_dir, setting_info
from ganleaks.io import atomic_write_text

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.html"
FIGURES = (("roc.png", "ROC curve (linear and log-log axes)"), (EXPOSED_PNG, "Most exposed members"),
           ("reconstructions.png", "Queries and their reconstructions"))  # fmt: skip

METRIC_LABELS = {
    "auc": "ROC AUC",
    "average_precision": "Average precision",
    "tpr_at_fpr_0.001": "TPR at 0.1% FPR",
    "tpr_at_fpr_0.01": "TPR at 1% FPR",
    "tpr_at_fpr_0.1": "TPR at 10% FPR",
}

_STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
code, pre { background: #f4f4f4; padding: 0.1em 0.3em; } pre { padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; } .note { color: #666; font-size: 0.9em; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _config(run_dir: Path) -> dict:
    record = _read_json(run_dir / "run.json")
    if record is not None and isinstance(record.get("config"), dict):
        return record["config"]
    path = run_dir / ".hydra" / "config.yaml"
    if path.is_file():
        loaded = yaml.safe_load(path.read_text())
        return loaded if isinstance(loaded, dict) else {}
    return {}


def attack_command(run_dir: str | os.PathLike) -> str | None:
    """``python attack.py <overrides>`` as the run was launched (``run.json``, else ``.hydra/overrides.yaml``)."""
    run_dir = Path(run_dir)
    record = _read_json(run_dir / "run.json") or {}
    text = (record.get("hydra_files") or {}).get("overrides.yaml")
    if text is None and (run_dir / ".hydra" / "overrides.yaml").is_file():
        text = (run_dir / ".hydra" / "overrides.yaml").read_text()
    if text is None:
        return None
    overrides = yaml.safe_load(text) or []
    if not isinstance(overrides, list):
        return None
    return " ".join(["python attack.py", *(shlex.quote(str(o)) for o in overrides)])


def made_by(run_dir: str | os.PathLike) -> str | None:
    """The exact command or API call that made the run: ``python attack.py <overrides>``, or the
    ``ganleaks.audit(...)`` call an API run recorded (the config key ``api_call``, in ``run.json``)."""
    command = attack_command(run_dir)
    if command is not None:
        return command
    call = _config(Path(run_dir)).get("api_call")
    return str(call) if call else None


VERDICT_WORDS = {
    "leakage": "members can be told apart: it leaks membership",
    "no evidence of leakage": "no evidence of leakage from this attack (a stronger attack might still find some)",
    "inconclusive": "INCONCLUSIVE: too little evidence to decide either way",
    "no signal": "NO SIGNAL: every query got the same score, so nothing was measured; this is not a verdict",
    "flagged": "FLAGGED: this outcome does not make sense as a membership measurement; it is not a verdict",
}


def _knowledge(description: str) -> str:
    """``"the attacker saw only a set of generated samples, no model"`` from a setting's description."""
    text = description.split(": ", 1)[-1].split(";")[0].strip().rstrip(".")
    return text or "what the attacker knew is not recorded"


def _victim_phrase(run: dict) -> str:
    kind = run.get("victim_kind") or "run"
    where = run.get("victim_run_dir")
    if kind == "run":
        size = run.get("train_size")
        trained = f" trained here on {size} {run.get('data') or ''} records".replace("  ", " ") if size else ""
        return f"the {run.get('model') or ''} generator{trained}".replace("the  ", "the ")
    what = {"samples": "the user's generated sample set", "generator": "the user's generator"}.get(
        str(kind), f"the user's {kind}"
    )
    return f"{what} ({where})" if where else what


def headline(run: dict, metrics: dict) -> str:
    """One plain-language sentence: what was attacked, with what knowledge, how well members were told
    apart (the AUC with its interval) and what that allows to conclude (the verdict)."""
    info = setting_info(run)
    found = verdict_of(metrics)
    auc = format_estimate(metrics, "auc", with_interval=True)
    conclusion = VERDICT_WORDS.get(str(found["status"]), str(found["status"]))
    return (
        f"A {info.label} attack ({_knowledge(info.description)}) on {_victim_phrase(run)} told its "
        f"{metrics.get('n_members')} member records from {metrics.get('n_nonmembers')} non-members with AUC {auc} "
        f"(0.5 is chance, 1 is perfect; 95% interval in brackets): {conclusion}."
    )


def significant(value: Any, digits: int = 4) -> str:
    """A score as the page shows it: ``digits`` significant digits (float32 scores carry about 7)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    return "" if number != number else f"{number:.{digits}g}"


def _rounded(node: Any, digits: int = 6) -> Any:
    """``node`` with every float rounded to ``digits`` significant digits (the page's copy of metrics.json)."""
    if isinstance(node, float):
        return float(f"{node:.{digits}g}")
    if isinstance(node, dict):
        return {key: _rounded(value, digits) for key, value in node.items()}
    if isinstance(node, list):
        return [_rounded(value, digits) for value in node]
    return node


def _distinct_digits(values: list[str]) -> int:
    """Fewest significant digits (3 to 7) that keep distinct numbers of ``values`` distinct."""
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except ValueError:
            continue
    for digits in range(3, 8):
        if len({f"{n:.{digits}g}" for n in numbers}) == len(set(numbers)):
            return digits
    return 7


def _operating_points(metrics: dict) -> str:
    """Each TPR at fixed FPR with the FPR it was read at and the score threshold that gives it."""
    rows = []
    for target in FPR_TARGETS:
        key = f"tpr_at_fpr_{target}"
        estimate = format_estimate(metrics, key, with_interval=True)
        realised, threshold = metrics.get(f"{key}_realised_fpr"), metrics.get(f"{key}_threshold")
        rows.append(
            f"<tr><td>{_e(f'{target:.1%}')}</td><td>{_e(estimate)}</td>"
            f"<td>{_e('' if realised is None else f'{float(realised):.4g}')}</td>"
            f"<td>{_e('' if threshold is None else f'score > {significant(threshold, 6)}')}</td></tr>"
        )
    head = "<tr><th>FPR target</th><th>TPR [95% CI]</th><th>realised FPR</th><th>member when</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _flatten(node: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _flatten(value, f"{prefix}.{key}")]
    return [(prefix, node)]


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    image = f'<img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
    return f"<figure>{image}<figcaption>{_e(caption)}</figcaption></figure>"


def _exposed_table(path: Path, limit: int = 10) -> str:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        return "<p>No member could be scored.</p>"
    head = "".join(f"<th>{_e(cell)}</th>" for cell in rows[0])
    shown = rows[1 : limit + 1]
    # Numbers to the digits that tell the shown records apart (float32 scores carry about 7), not repr's 17.
    numeric = [c for c, name in enumerate(rows[0]) if name not in ("rank", "id")]
    digits = {c: _distinct_digits([row[c] for row in shown if c < len(row)]) for c in numeric}
    shown = [
        [significant(cell, digits[c]) if c in digits and cell else cell for c, cell in enumerate(row)] for row in shown
    ]
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in shown)
    return f"<table><tr>{head}</tr>{body}</table>"


def _privacy(run: dict, run_dir: Path) -> str:
    """The victim's privacy statement as its run recorded it (``Victim.privacy``): dp, none, declared or unknown."""
    status, epsilon, delta = run.get("privacy"), run.get("epsilon"), run.get("delta")
    budget = "" if epsilon is None else f"&epsilon; = {_e(f'{float(epsilon):.3g}')}" + (
        f", &delta; = {_e(f'{float(delta):.2g}')}" if delta is not None else ""
    )  # fmt: skip
    if status == "unknown":
        return (
            "How this model was trained is not known here: no privacy budget can be stated (declare one with "
            "victim.privacy.epsilon and victim.privacy.delta if its publisher gives one)."
        )
    if status == "declared":
        return f"Privacy budget declared for this model, not checked here: {budget}."
    if epsilon is None:
        return "The victim was not trained with differential privacy (no privacy budget recorded)."
    if delta is None:  # runs from before run.json recorded delta: the victim's own record
        victim_dir = resolve_victim_dir(run.get("victim_run_dir"), run_dir)
        privacy = _read_json(victim_dir / "privacy.json") if victim_dir is not None else None
        delta = None if privacy is None else privacy.get("delta")
        budget = f"&epsilon; = {_e(f'{float(epsilon):.3g}')}" + (
            f", &delta; = {_e(f'{float(delta):.2g}')}" if delta is not None else ""
        )  # fmt: skip
    return f"Differentially private victim: {budget} (from the privacy accountant)."


def render_summary(run_dir: str | os.PathLike) -> str:
    """The summary page of the attack run in ``run_dir`` as an HTML string.

    Raises:
        ValueError: no readable ``metrics.json`` in ``run_dir``.
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    metrics = _read_json(run_dir / "metrics.json") or {}
    config = _config(run_dir)
    setting = str(run.get("setting") or "?")
    calibration = run.get("calibration")
    info = setting_info(run)
    threat = info.description
    fit = metrics.get("references")
    if isinstance(fit, dict) and fit.get("num_references"):
        variance = "one shared variance" if fit.get("variance") == "shared" else "each query's own variance"
        threat += (
            f" Scores are each query's offline likelihood-ratio test against its losses on {fit['num_references']} "
            f"reference models trained on data disjoint from the queries (a Gaussian fit, {variance}; "
            'reference_losses.csv; docs/ATTACKS.md, "Several reference models").'
        )
    elif calibration and calibration != "none":
        threat += " Scores are calibrated with a reference model trained on data disjoint from the queries (eq. 11)."

    found = verdict_of(metrics)
    parts = [
        f"<h1>Membership-inference audit: {_e(setting)}</h1>",
        f'<p class="headline"><strong>{_e(headline(run, metrics))}</strong></p>',
        f'<p class="verdict">Verdict: <strong>{_e(found["status"])}</strong>'
        + ("" if found.get("decided") else " (not a verdict)")
        + "</p><ul>"
        + "".join(f"<li>{_e(reason)}</li>" for reason in found.get("reasons") or [])
        + "</ul>",
        f"<h2>Threat model: {_e(info.label)}</h2>",
        f"<p>{_e(threat)}</p>",
    ]
    victim = config.get("victim") if isinstance(config.get("victim"), dict) else {}
    facts = [("data", run.get("data")), ("model", run.get("model")), ("members trained on", run.get("train_size"))]
    for key, what in (("k", "generated samples searched (k)"), ("nn_k", "samples searched for initial latents (nn_k)")):
        if metrics.get(key) is not None:  # the count used; the setting's value beside it where more was asked for
            asked = metrics.get(f"{key}_requested")
            facts.append(
                (
                    what,
                    f"{metrics[key]} (setting.{key}={asked}: only {metrics[key]} available)" if asked else metrics[key],
                )
            )
    facts += _flatten(victim, "victim")
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts if v not in (None, ""))
    parts += ["<h2>Victim</h2>", f"<table>{rows}</table>", f"<p>{_privacy(run, run_dir)}</p>"]
    audit = metrics.get("privacy_audit")
    if isinstance(audit, dict) and audit.get("sentence"):
        parts += [
            "<h2>Privacy audit (canaries)</h2>",
            f'<p class="audit"><strong>{_e(audit["sentence"])}</strong></p>',
            f'<p class="note">{_e(audit.get("m"))} canaries, {_e(audit.get("n_included"))} trained on by their coins'
            f"{_e(' (' + audit['coins'] + ')') if audit.get('coins') else ''}; "
            f"{_e(audit.get('guesses'))} guesses, {_e(audit.get('correct'))} correct; confidence "
            f"{_e(1 - float(audit.get('alpha', 0.05)))}, delta {_e(audit.get('delta'))}; "
            f"{_e(audit.get('guess_selection', ''))}. A lower bound can show a claim false, never true "
            "(docs/PRIVACY_AUDIT.md).</p>",
        ]

    metric_rows = [
        (METRIC_LABELS.get(key, key), format_estimate(metrics, key, with_interval=True)) for key in INTERVAL_KEYS
    ]
    if metrics.get("accuracy") is not None:
        metric_rows.append(("Best-threshold accuracy (optimistic)", format_estimate(metrics, "accuracy")))
    counts = ", ".join(
        f"{metrics.get(key)} {name}"
        for key, name in (("n_members", "members"), ("n_nonmembers", "non-members"), ("n_failed", "failed"))
    )
    parts += [
        "<h2>Results</h2>",
        "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in metric_rows) + "</table>",
        f'<p class="note">Queries: {_e(counts)}. Intervals: {_e(metrics.get("ci_level", 0.95))} '
        f"{_e(metrics.get('ci_method', 'bootstrap'))}. AUC 0.5 is chance; a TPR at low FPR well above that FPR "
        "means some records are identified with few false alarms.</p>",
        "<h3>TPR at fixed FPR: where it was read</h3>",
        _operating_points(metrics),
        '<p class="note">The TPR at an FPR target is read at the largest FPR the non-members allow not above '
        "it (the realised FPR); a query is called a member when its score is above the threshold.</p>",
    ]
    for name, caption in FIGURES:
        if (run_dir / name).is_file():
            parts.append(_image(run_dir / name, caption))
    if (run_dir / EXPOSED_CSV).is_file():
        parts += ["<h2>Most exposed members</h2>", _exposed_table(run_dir / EXPOSED_CSV)]

    command = made_by(run_dir)
    parts += ["<h2>Command</h2>", f"<pre>{_e(command or 'not recorded (no run.json or .hydra/overrides.yaml)')}</pre>"]
    parts += [
        "<details><summary>metrics.json (numbers rounded to 6 significant digits; the file holds them all)</summary>",
        f"<pre>{_e(json.dumps(_rounded(metrics), indent=1, sort_keys=True))}</pre></details>",
        f'<p class="note">Run folder: {_e(run_dir)}</p>',
    ]
    title = f"ganleaks audit: {setting}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_summary(run_dir: str | os.PathLike) -> Path:
    """Write ``<run_dir>/summary.html`` (atomically) and return its path."""
    path = Path(run_dir) / SUMMARY_NAME
    atomic_write_text(path, render_summary(run_dir))
    return path
