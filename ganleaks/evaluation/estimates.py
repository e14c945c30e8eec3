"""The headline metric keys of ``metrics.json`` and how an estimate is written beside its interval.

Kept free of torch so that readers of finished runs (the sweep report) load quickly; the
metrics themselves are computed in :mod:`ganleaks.evaluation.metrics`.
"""

from __future__ import annotations

import math

FPR_TARGETS = (0.001, 0.01, 0.1)
TPR_KEYS = tuple(f"tpr_at_fpr_{t}" for t in FPR_TARGETS)
INTERVAL_KEYS = ("auc", "average_precision", *TPR_KEYS)  # each has a ``<key>_ci`` = [low, high] or None


def format_estimate(metrics: dict, key: str, digits: int | None = None) -> str:
    """``"0.912 [0.871, 0.947]"``, ``"0.912"`` without an interval, or ``"n/a (reason)"`` when null.

    ``digits=None`` shows as many decimals as the interval resolves (two significant digits of
    its width: ``0.30 [0.21, 0.40]``, ``0.0036 [0.0022, 0.0069]``), 3 without an interval. Copes
    with metrics written before intervals existed (no ``<key>_ci``) and with JSON nulls.
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
    return text
