"""The headline metric keys of ``metrics.json`` and how an estimate is written beside its interval.

Kept free of torch so that readers of finished runs (the sweep report) load quickly; the
metrics themselves are computed in :mod:`ganleaks.evaluation.metrics`.
"""

from __future__ import annotations

import math

FPR_TARGETS = (0.001, 0.01, 0.1)
TPR_KEYS = tuple(f"tpr_at_fpr_{t}" for t in FPR_TARGETS)
INTERVAL_KEYS = ("auc", "average_precision", *TPR_KEYS)  # each has a ``<key>_ci`` = [low, high] or None


def format_estimate(metrics: dict, key: str, digits: int | None = None, *, with_interval: bool = False) -> str:
    """``"0.912 [0.871, 0.947]"``, ``"0.912"`` without an interval, or ``"n/a (reason)"`` when null.

    ``digits=None`` shows as many decimals as the interval resolves (two significant digits of
    its width: ``0.30 [0.21, 0.40]``, ``0.0036 [0.0022, 0.0069]``), 3 without an interval. Copes
    with metrics written before intervals existed (no ``<key>_ci``) and with JSON nulls.
    ``with_interval``: a number never stands alone; without an interval it reads
    ``"1.000 (no interval: <reason>)"`` (the console and the summary page).
    """
    value = metrics.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        reason = (metrics.get("not_estimable") or {}).get(key)
        if reason and reason.startswith("needs at least "):
            reason = "needs >= " + reason.removeprefix("needs at least ").split(",")[0]
        return f"n/a ({reason})" if reason else "n/a"
    interval = metrics.get(f"{key}_ci")
    if not (isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval):
        interval = None
    if digits is None:
        width = 0.0 if interval is None else interval[1] - interval[0]
        digits = 3 if not width > 0 else min(max(2, 1 - math.floor(math.log10(width))), 6)
    text = f"{value:.{digits}f}"
    if interval is not None:
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    elif with_interval:
        reason = (metrics.get("not_estimable") or {}).get(f"{key}_ci") or "not recorded"
        text += f" (no interval: {reason})"
    return text


# The verdict: what a run's numbers allow a data owner to conclude (docs/METRICS.md, "Verdict").
MIN_PER_CLASS = 10  # fewer scored members or non-members: inconclusive, whatever the interval says
MAX_WIDTH_AT_CHANCE = 0.1  # an AUC interval holding 0.5 and wider than this cannot rule out leakage
MAX_FAILED_FRACTION = 0.05  # more failed queries than this: flagged (the failures may depend on membership)
BELOW_CHANCE_AUC = 0.45  # an AUC below this whose interval excludes 0.5: flagged (labels or sign reversed?)
DECIDED = ("leakage", "no evidence of leakage")
STATUSES = ("leakage", "no evidence of leakage", "inconclusive", "no signal", "flagged")


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _ci(metrics: dict, key: str) -> list[float] | None:
    interval = metrics.get(f"{key}_ci")
    if not (isinstance(interval, (list, tuple)) and len(interval) == 2):
        return None
    low, high = _number(interval[0]), _number(interval[1])
    return None if low is None or high is None else [low, high]


def verdict(metrics: dict) -> dict:
    """What the metrics of one run allow to conclude: ``{"status", "decided", "reasons"}``.

    ``status`` is the first that applies of (the rules and their reasons: docs/METRICS.md, "Verdict"):

    * ``flagged``: not a membership measurement: no member or no non-member scored, more than
      :data:`MAX_FAILED_FRACTION` of the queries failed, members and non-members got exactly the same
      scores, or (with enough queries) an AUC below :data:`BELOW_CHANCE_AUC` whose interval excludes 0.5;
    * ``no signal``: every scored query has the same score (e.g. calibrated scores all zero);
    * ``inconclusive``: fewer than :data:`MIN_PER_CLASS` scored members or non-members, no AUC
      interval, or an AUC interval that holds 0.5 and is wider than :data:`MAX_WIDTH_AT_CHANCE`;
    * ``leakage``: the AUC interval lies above 0.5, or a TPR interval above its FPR target;
    * ``no evidence of leakage``: otherwise.

    ``decided`` is True for the last two only: any other status is not a verdict. ``reasons`` says
    why, in words a data owner can check. Works on metrics written before verdicts existed.
    """
    flagged: list[str] = []
    inconclusive: list[str] = []
    n_members, n_nonmembers = int(metrics.get("n_members") or 0), int(metrics.get("n_nonmembers") or 0)
    n_failed = int(metrics.get("n_failed") or 0)
    checks = metrics.get("score_checks")
    checks = checks if isinstance(checks, dict) else {}
    total = n_members + n_nonmembers + n_failed
    if n_members == 0 or n_nonmembers == 0:
        flagged.append(
            f"nothing measured: {n_members} members and {n_nonmembers} non-members were scored "
            f"({n_failed} queries failed); an AUC needs both"
        )
    if total and n_failed / total > MAX_FAILED_FRACTION:
        flagged.append(
            f"{n_failed} of {total} queries failed ({n_failed / total:.0%}, more than {MAX_FAILED_FRACTION:.0%}): "
            "if failing depends on membership the scored queries are a biased sample; see status in scores.csv"
        )
    no_signal = checks.get("n_distinct_scores") == 1 and n_members > 0 and n_nonmembers > 0
    if checks.get("same_scores_both_classes") and n_members and n_nonmembers and not no_signal:
        flagged.append(
            "members and non-members received exactly the same scores: the two query sets are probably the "
            "same records (check the member and non-member queries)"
        )
    auc, interval = _number(metrics.get("auc")), _ci(metrics, "auc")
    enough = min(n_members, n_nonmembers) >= MIN_PER_CLASS
    if not enough and n_members and n_nonmembers:
        inconclusive.append(
            f"too few queries: {n_members} members and {n_nonmembers} non-members scored; a verdict needs at "
            f"least {MIN_PER_CLASS} of each (with fewer, a perfect separation happens by chance too often and "
            "the bootstrap interval is unreliable)"
        )
    if interval is None and n_members and n_nonmembers and not no_signal:
        inconclusive.append("the AUC has no interval (see not_estimable)")
    leakage: list[str] = []
    if enough and interval is not None and auc is not None and not no_signal:
        low, high = interval
        if high < 0.5 and auc < BELOW_CHANCE_AUC:
            flagged.append(
                f"AUC {auc:.3f} [{low:.3f}, {high:.3f}] lies below chance: members look LESS likely members than "
                "non-members; labels swapped, a score with the wrong sign or a wrong declaration (e.g. the "
                "output range) are likelier than a real effect"
            )
        elif low <= 0.5 <= high and high - low > MAX_WIDTH_AT_CHANCE:
            inconclusive.append(
                f"the AUC interval [{low:.3f}, {high:.3f}] holds 0.5 but is {high - low:.3f} wide (more than "
                f"{MAX_WIDTH_AT_CHANCE}): it cannot rule out an AUC of {high:.2f}; score more queries"
            )
        if low > 0.5:
            leakage.append(f"the AUC interval [{low:.3f}, {high:.3f}] lies above 0.5 (chance)")
        for key in TPR_KEYS:
            tpr_interval, target = _ci(metrics, key), float(key.removeprefix("tpr_at_fpr_"))
            if tpr_interval is not None and tpr_interval[0] > target:
                leakage.append(
                    f"TPR at {target:.1%} FPR: its interval [{tpr_interval[0]:.3f}, {tpr_interval[1]:.3f}] lies "
                    f"above {target:g} (chance)"
                )
    if flagged:
        status, reasons = "flagged", flagged
    elif no_signal:
        status = "no signal"
        reasons = [
            f"every one of the {n_members + n_nonmembers} scored queries has the same score: the attack measured "
            "nothing (e.g. calibrated scores all zero because the reference equals the victim); not a verdict"
        ]
    elif inconclusive:
        status, reasons = "inconclusive", inconclusive
    elif leakage:
        status, reasons = "leakage", leakage
    else:
        status = "no evidence of leakage"
        low, high = interval if interval is not None else (math.nan, math.nan)
        reasons = [
            f"the AUC interval [{low:.3f}, {high:.3f}] does not lie above 0.5 and is at most {MAX_WIDTH_AT_CHANCE} "
            "wide, and no TPR interval lies above its FPR: this attack found no leakage (a stronger one might)"
        ]
        if high < 0.5:
            reasons.append(
                f"members scored slightly but reliably LOWER than non-members (interval below 0.5, AUC {auc:.3f}): "
                "if unexpected, check the member / non-member labels and the declared ranges"
            )
    return {"status": status, "decided": status in DECIDED, "reasons": reasons}


def verdict_of(metrics: dict) -> dict:
    """The verdict ``metrics.json`` recorded, else (runs from before verdicts) the one computed from it."""
    recorded = metrics.get("verdict")
    if isinstance(recorded, dict) and recorded.get("status") in STATUSES:
        return recorded
    return verdict(metrics)


def verdict_line(metrics: dict) -> str:
    """One line: the verdict and its reasons (``"INCONCLUSIVE: too few queries: ..."``)."""
    found = verdict_of(metrics)
    status = str(found["status"])
    head = status.upper() if found.get("decided") else f"{status.upper()} (not a verdict)"
    return f"{head}: " + "; ".join(str(reason) for reason in found.get("reasons") or [])


def result_lines(metrics: dict, setting: str, calibration: str | None) -> list[str]:
    """What the console (and ``AuditResult``) shows of a finished attack: the verdict first, then each
    estimate with its 95% interval (or why it has none) and the counts it rests on."""
    tpr = {t: format_estimate(metrics, f"tpr_at_fpr_{t}", with_interval=True) for t in ("0.01", "0.001")}
    audit = metrics.get("privacy_audit")
    audit_lines = [f"privacy audit of {audit.get('m')} canaries: {audit['sentence']}"] if audit else []
    return [
        verdict_line(metrics),
        f"AUC {format_estimate(metrics, 'auc', with_interval=True)}  TPR@1%FPR {tpr['0.01']}  "
        f"TPR@0.1%FPR {tpr['0.001']}  ({setting}, calibration={calibration}, {metrics.get('n_members')} members / "
        f"{metrics.get('n_nonmembers')} non-members, {metrics.get('n_failed', 0)} failed; brackets: 95% bootstrap "
        "interval)",
        f"best-threshold accuracy {format_estimate(metrics, 'accuracy')} (optimistic: the threshold is chosen "
        "on the evaluated queries)",
        *audit_lines,
    ]
