"""The paper's claims, checked on a study's attack runs, each comparison with a paired interval.

Two attacks on the same victim score the same queries, so their AUCs are compared *paired*: the
members and the non-members are resampled (stratified, 1,000 resamples, seeded) and both AUCs are
computed on each resample; the 95% percentile interval of the difference says whether the data
resolve it. Independent intervals side by side would be too wide (the queries' own difficulty is
shared by both attacks and cancels in the difference).

A comparison's verdict is one of

* ``holds``: the difference has the claimed sign and its interval excludes 0;
* ``not resolved``: the interval contains 0 (the data cannot tell the two apart);
* ``reversed``: the difference has the opposite sign and its interval excludes 0.

Checked claims (paper sections 5-6):

* **C1** leakage falls as the training set grows: AUC at the smallest minus at the largest
  training-set size, per victim, setting and calibration (different members, same non-members:
  *unpaired*, each size resampled on its own); only where the runs span at least three sizes;
* **C2** white-box >= partial black-box >= full black-box, per victim, size and calibration;
* **C3** calibration raises the AUC: calibrated minus uncalibrated, per victim, size and setting;
* **C5** full black-box >= Monte-Carlo, and the discriminator attack strongest where D is
  accessible (discriminator minus the best other setting);
* **C6** a larger k helps the full black-box attack: AUC at the largest minus at the smallest k;
* **C4** DP lowers leakage towards chance: the AUC of each DP victim minus the no-DP baseline's on
  the same queries, and minus 0.5.

Which settings a claim compares is read from their classes' declarations
(:class:`ganleaks.settings.base.AttackEngine`), never from their names: C2 compares the paper's
attacks (settings that reconstruct, not baselines) of consecutive ``knowledge`` levels, the more
knowledgeable first; C5 each ``baseline`` with the paper's attack of the same knowledge, and each
setting that needs the discriminator with the best other setting; C6 and the matching of k concern
the settings that declare ``uses_k``.

``claims_markdown(rows)`` gives one table per claim that the runs can check (a claim whose runs are
absent is left out), and a count of verdicts per claim.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ganleaks.evaluation.runs import settings_of

N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def read_scores(run_dir: str | Path) -> dict[str, tuple[int, float]]:
    """``{id: (member, score)}`` of a run's ``scores.csv``, finite scores only (failed queries are left out)."""
    scores = {}
    with (Path(run_dir) / "scores.csv").open() as handle:
        for row in csv.DictReader(handle):
            try:
                value = float(row["score"])
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                scores[row["id"]] = (int(row["member"]), value)
    return scores


def _auc(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    """AUC of each row: P(member score > non-member score) + P(tie) / 2 (Mann-Whitney)."""
    greater = (members[..., :, None] > nonmembers[..., None, :]).mean(axis=(-1, -2))
    ties = (members[..., :, None] == nonmembers[..., None, :]).mean(axis=(-1, -2))
    return greater + 0.5 * ties


def _resampled(n: int, rng: np.random.Generator, resamples: int = N_RESAMPLES) -> np.ndarray:
    return rng.integers(0, n, size=(resamples, n))


def _interval(values: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(a: dict, b: dict) -> tuple[float, tuple[float, float], int] | None:
    """AUC(a) - AUC(b) over the queries both runs scored, its 95% paired bootstrap interval, and n.

    ``a`` and ``b`` are :func:`read_scores` results. None when they share no member or no non-member.
    """
    result = paired_bootstrap(a, b)
    if result is None:
        return None
    point, diffs, n = result
    return point, _interval(diffs), n


def paired_p_value(point: float, diffs: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from the bootstrap's standard error (normal approximation):
    ``2 (1 - Phi(|point| / sd(diffs)))``. Unlike a count of resamples on the far side of 0, it can go below
    ``1 / B``, which Holm's correction over many comparisons needs; 1 for a zero difference, 0 for a
    nonzero one that no resample moves."""
    from scipy.stats import norm

    spread = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
    if spread == 0.0:
        return 1.0 if point == 0 else 0.0
    return float(2 * norm.sf(abs(point) / spread))


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down correction: which of the hypotheses are rejected at family-wise error ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected


def paired_bootstrap(a: dict, b: dict, resamples: int = N_RESAMPLES) -> tuple[float, np.ndarray, int] | None:
    """AUC(a) - AUC(b) over the queries both runs scored, its ``resamples`` paired bootstrap differences
    (members and non-members resampled apart, the same draw for both runs), and n; None as
    :func:`paired_difference`."""
    common = sorted(set(a) & set(b))
    labels = np.array([a[i][0] for i in common])
    if any(a[i][0] != b[i][0] for i in common):
        raise ValueError("the two runs label a shared query differently: they are not attacks on the same split")
    sa, sb = np.array([a[i][1] for i in common]), np.array([b[i][1] for i in common])
    m, nm = labels == 1, labels == 0
    if not m.any() or not nm.any():
        return None
    rng = np.random.default_rng(SEED)
    im, inm = _resampled(int(m.sum()), rng, resamples), _resampled(int(nm.sum()), rng, resamples)
    diffs = np.empty(resamples)
    for start in range(0, resamples, 100):  # chunks keep the (resamples, members, non-members) array small
        sl = slice(start, start + 100)
        diffs[sl] = _auc(sa[m][im[sl]], sa[nm][inm[sl]]) - _auc(sb[m][im[sl]], sb[nm][inm[sl]])
    point = float(_auc(sa[m], sa[nm]) - _auc(sb[m], sb[nm]))
    return point, diffs, len(common)


def unpaired_difference(a: dict, b: dict) -> tuple[float, tuple[float, float], int] | None:
    """AUC(a) - AUC(b) for runs on different queries: each resampled on its own (stratified)."""
    result = unpaired_bootstrap(a, b)
    if result is None:
        return None
    point, diffs, n = result
    return point, _interval(diffs), n


def unpaired_bootstrap(a: dict, b: dict) -> tuple[float, np.ndarray, int] | None:
    """AUC(a) - AUC(b) for runs on different queries, its bootstrap differences (each run resampled on its own,
    stratified) and n; None when a run lacks members or non-members."""
    rng = np.random.default_rng(SEED)
    draws, points = [], []
    for scores in (a, b):
        labels = np.array([v[0] for v in scores.values()])
        values = np.array([v[1] for v in scores.values()])
        m, nm = values[labels == 1], values[labels == 0]
        if not len(m) or not len(nm):
            return None
        im, inm = _resampled(len(m), rng), _resampled(len(nm), rng)
        draws.append(
            np.concatenate([_auc(m[im[s : s + 100]], nm[inm[s : s + 100]]) for s in range(0, N_RESAMPLES, 100)])
        )
        points.append(float(_auc(m, nm)))
    return points[0] - points[1], draws[0] - draws[1], len(a) + len(b)


def verdict(difference: float, interval: tuple[float, float]) -> str:
    if interval[0] > 0:
        return "holds"
    if interval[1] < 0:
        return "reversed"
    return "not resolved"


def _fmt(value: float) -> str:
    return f"{value:+.3f}"


MIN_SIZES_FOR_TREND = 3  # C1 is a trend: a study with two sizes (the k study's victims) does not test it


def _k_label(a: dict, b: dict, uses_k: Callable[[str], bool]) -> str:
    """`` k=...`` in a comparison's label where one of the two settings has a k that varies in the study."""
    ks = {row.get("k") for row in (a, b) if uses_k(row["setting"])}
    return f" k={ks.pop()}" if len(ks) == 1 else ""


def _comparisons(infos: dict) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``[(stronger, weaker, claim)]`` of C2 and C5 (by the settings' declarations), and the settings
    that need the discriminator (compared with the best other, C5); ``infos`` in report order."""
    attacks = [i for i in infos.values() if i.known and i.reconstructs and not i.baseline and i.knowledge is not None]
    levels = sorted({i.knowledge for i in attacks}, reverse=True)
    pairs = [
        (stronger.name, weaker.name, "C2")
        for high, low in zip(levels, levels[1:], strict=False)
        for stronger in attacks
        if stronger.knowledge == high
        for weaker in attacks
        if weaker.knowledge == low
    ]
    baselines = [i for i in infos.values() if i.known and i.baseline and i.knowledge is not None]
    pairs += [(a.name, b.name, "C5") for b in baselines for a in attacks if a.knowledge == b.knowledge]
    with_d = [i.name for i in infos.values() if i.known and not i.baseline and i.needs_discriminator]
    return pairs, with_d


def _victim(row: dict) -> str:
    label = row["model"]
    if row.get("noise_multiplier") is not None:
        label += f" (sigma={row['noise_multiplier']:g})"
    return label


def _calibrated(row: dict) -> bool:
    return row.get("calibration") not in (None, "none")


def _cal(flag: bool) -> str:
    return "calibrated" if flag else "uncalibrated"


class _Runs:
    """The rows of a study indexed by what the claims compare, with their scores read once."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = [row for row in rows if row.get("run_dir") and (Path(row["run_dir"]) / "scores.csv").is_file()]
        self._scores: dict[str, dict] = {}

    def scores(self, row: dict) -> dict:
        key = str(row["run_dir"])
        if key not in self._scores:
            self._scores[key] = read_scores(key)
        return self._scores[key]

    def index(self, key: Callable[[dict], tuple]) -> dict[tuple, dict]:
        """``{key(row): row}``; several rows under one key (seeds, repeated runs) keep the first."""
        table: dict[tuple, dict] = {}
        for row in self.rows:
            table.setdefault(key(row), row)
        return table


def check_claims(rows: list[dict], *, with_p: bool = False) -> list[list[str]]:
    """Every comparison the runs allow, as table lines: claim, comparison, AUC a, AUC b, difference [CI], n, verdict;
    ``with_p``: and an eighth field, the comparison's two-sided p-value (:func:`paired_p_value`, from the bootstrap's
    standard error), for a correction over many comparisons."""
    runs = _Runs(rows)
    lines: list[list[str] | None] = []

    def _line(claim: str, what: str, a: dict, b: dict, result) -> list[str] | None:
        if result is None:
            return None
        diff, diffs, n = result
        interval = _interval(diffs)
        line = [
            claim,
            what,
            f"{a['auc']:.3f}",
            f"{b['auc']:.3f}",
            f"{_fmt(diff)} [{_fmt(interval[0])}, {_fmt(interval[1])}]",
            str(n),
            verdict(diff, interval),
        ]
        return [*line, repr(paired_p_value(diff, diffs))] if with_p else line

    infos = settings_of(runs.rows)  # in report order: the paper's, by attacker knowledge, baselines last

    def uses_k(setting: str) -> bool:
        return setting in infos and infos[setting].uses_k

    by_setting = runs.index(
        lambda r: (_victim(r), r.get("train_size"), r["setting"], _calibrated(r), r.get("k"), r.get("epsilon"))
    )

    def find(victim, size, setting, calibrated, k=None, epsilon=None) -> dict | None:
        """The run of one victim, setting and calibration; ``k`` is matched for the settings that have one."""
        for key, row in by_setting.items():
            k_matches = not uses_k(setting) or key[4] == k
            if key[:4] == (victim, size, setting, calibrated) and k_matches and key[5] == epsilon:
                return row
        return None

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in runs.rows:
        groups[(_victim(row), row["setting"], _calibrated(row), row.get("k"), row.get("epsilon"))].append(row)

    # C1: smallest against largest training-set size.
    for (victim, setting, calibrated, _k, _eps), group in sorted(groups.items(), key=lambda kv: str(kv[0])):
        sizes = sorted({row["train_size"] for row in group if row.get("train_size") is not None})
        if len(sizes) < MIN_SIZES_FOR_TREND:
            continue
        small = next(row for row in group if row["train_size"] == sizes[0])
        large = next(row for row in group if row["train_size"] == sizes[-1])
        what = f"{victim} {setting} {_cal(calibrated)}: n={sizes[0]} vs n={sizes[-1]}"
        lines.append(_line("C1", what, small, large, unpaired_bootstrap(runs.scores(small), runs.scores(large))))

    victims = sorted({(_victim(r), r.get("train_size"), r.get("epsilon")) for r in runs.rows}, key=str)
    ks = sorted({r.get("k") for r in runs.rows if uses_k(r["setting"])}, key=lambda k: (k is None, k or 0))
    pairs, with_discriminator = _comparisons(infos)
    # "The best other": the strongest first (baselines last), so that a tie keeps the paper's attack.
    strongest_first = sorted(infos, key=lambda s: (infos[s].baseline, -(infos[s].knowledge or 0), infos[s].rank))
    for (victim, size, epsilon), k in ((v, k) for v in victims for k in (ks or [None])):
        first_k = k == (ks[0] if ks else None)  # settings without k: compared once, not once per k
        for calibrated in (False, True):
            for stronger, weaker, claim in pairs:
                if not first_k and not uses_k(stronger) and not uses_k(weaker):
                    continue
                a = find(victim, size, stronger, calibrated, k, epsilon)
                b = find(victim, size, weaker, calibrated, k, epsilon)
                if a is not None and b is not None:
                    what = f"{victim} n={size}{_k_label(a, b, uses_k)} {_cal(calibrated)}: {stronger} vs {weaker}"
                    lines.append(_line(claim, what, a, b, paired_bootstrap(runs.scores(a), runs.scores(b))))
            for setting in with_discriminator:
                d = find(victim, size, setting, calibrated, k, epsilon)
                found = [find(victim, size, s, calibrated, k, epsilon) for s in strongest_first if s != setting]
                others = [other for other in found if other is not None]
                if d is not None and others and first_k:
                    best = max(others, key=lambda row: row["auc"])
                    what = f"{victim} n={size} {_cal(calibrated)}: {setting} vs best other ({best['setting']})"
                    lines.append(_line("C5", what, d, best, paired_bootstrap(runs.scores(d), runs.scores(best))))
        for setting in infos:
            if not first_k and not uses_k(setting):
                continue
            a = find(victim, size, setting, True, k, epsilon)
            b = find(victim, size, setting, False, k, epsilon)
            if a is not None and b is not None:
                what = f"{victim} n={size}{_k_label(a, b, uses_k)} {setting}: calibrated vs uncalibrated"
                lines.append(_line("C3", what, a, b, paired_bootstrap(runs.scores(a), runs.scores(b))))

    # C6: largest against smallest k, for the settings where k applies (full black-box, Monte-Carlo).
    k_groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in runs.rows:
        if uses_k(row["setting"]) and row.get("k") is not None:
            k_groups[(_victim(row), row.get("train_size"), row["setting"], _calibrated(row))].append(row)
    for (victim, size, setting, calibrated), group in sorted(k_groups.items(), key=lambda kv: str(kv[0])):
        ks = sorted({row["k"] for row in group})
        if len(ks) < 2:
            continue
        large = next(row for row in group if row["k"] == ks[-1])
        small = next(row for row in group if row["k"] == ks[0])
        what = f"{victim} n={size} {setting} {_cal(calibrated)}: k={ks[-1]} vs k={ks[0]}"
        lines.append(_line("C6", what, large, small, paired_bootstrap(runs.scores(large), runs.scores(small))))

    # C4: each DP victim against the no-DP baseline of the same nets and size (same queries).
    baseline = runs.index(lambda r: (r["model"], r.get("train_size"), r["setting"], _calibrated(r), r.get("epsilon")))
    for row in sorted(runs.rows, key=lambda r: (str(r["setting"]), _calibrated(r), -(r.get("epsilon") or 0))):
        if row.get("epsilon") is None:
            continue
        base = baseline.get((row["model"], row.get("train_size"), row["setting"], _calibrated(row), None))
        if base is None:
            continue
        what = f"{row['setting']} {_cal(_calibrated(row))}: no DP vs epsilon={row['epsilon']:.3g}"
        lines.append(_line("C4", what, base, row, paired_bootstrap(runs.scores(base), runs.scores(row))))
    return [line for line in lines if line is not None]


CLAIMS = {
    "C1": "leakage falls as the training set grows (AUC at the smallest minus the largest size)",
    "C2": "white-box >= partial black-box >= full black-box (AUC difference on the same queries)",
    "C3": "calibration raises the AUC (calibrated minus uncalibrated, same queries)",
    "C4": "DP lowers leakage (AUC without DP minus with DP, same queries)",
    "C5": "full black-box >= Monte-Carlo; the discriminator attack strongest where D is accessible",
    "C6": "a larger k helps the black-box attacks (AUC at the largest minus the smallest k)",
}


def claims_markdown(rows: list[dict], lines: list[list[str]] | None = None) -> str:
    """A verdict count per claim, then every comparison (Markdown), for the claims the runs can check.

    ``lines``: :func:`check_claims` of ``rows`` where the caller has them already (it takes a while).
    """
    lines = check_claims(rows) if lines is None else lines
    if not lines:
        return ""
    counts: dict[str, Counter] = defaultdict(Counter)
    for line in lines:
        counts[line[0]][line[-1]] += 1
    out = ["| claim | what is compared | holds | not resolved | reversed |", "|---|---|---:|---:|---:|"]
    for claim in sorted(counts):
        c = counts[claim]
        out.append(f"| {claim} | {CLAIMS[claim]} | {c['holds']} | {c['not resolved']} | {c['reversed']} |")
    out += [
        "",
        "| claim | comparison | AUC a | AUC b | a - b [95% CI] | queries | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    out += ["| " + " | ".join(line) + " |" for line in sorted(lines, key=_order)]
    return "\n".join(out) + "\n"


def _order(line: Iterable[str]) -> tuple:
    items = list(line)
    return (items[0],)  # stable: within a claim, the order the checks produced
