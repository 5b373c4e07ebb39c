"""Alarms and the verdict ladder over a run's history, from change detection on its per-snapshot table.

Each signal (spread, rank, uniformity, positive–negative gap, kNN) is oriented so that a fall is bad and
compared with a noise-aware baseline: the best level of its 3-snapshot running median so far (the initial
transient only ever raises it), with a threshold of max(minimum effect, K × the noise of its
snapshot-to-snapshot steps). An alarm needs persistence (two snapshots out, or one out by twice the
threshold) and agreement (the spread alone, two other signals together, or a drift sustained over
SUSTAINED snapshots with a second signal near its threshold: a rank that settles while kNN climbs is classes
forming, not collapse). The onset is the estimated change point: the split of the last
snapshots where the mean falls most (`change_point`). Pure functions of the table plus an optional
`RunContext` (config, metrics): cheap enough for every page view.

Thresholds were set on the scenario suite (bench/scenarios.py; scores in docs/metrics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import advice
from .advice import SUGGEST_DIVERGED, RunContext
from .collapse import CollapseThresholds, separability_text

# Persistence: a single snapshot out must be this many thresholds out to count alone. 2 keeps all 7 healthy
# scenario runs silent (largest single healthy excursion: 1.6 thresholds, kNN of nt-xent-every2) and dates
# the weight-decay shock at its first snapshot.
STRONG = 2.0
K_NOISE = 4.0  # threshold ≥ K·σ of the snapshot-to-snapshot noise (robust, MAD of the steps)
# The spread has halved from its baseline: "collapsing" rather than "contracting". Negatives removed and
# stop-gradient removed pass 0.5× within 2–3 snapshots of onset; no healthy scenario goes below 0.9×.
COLLAPSING_FRACTION = 0.5


@dataclass(frozen=True)
class Signal:
    name: str
    kind: str  # the alarm kind it raises
    label: str
    min_effect: float  # smallest fall that counts, in the signal's units (log for ratios)
    noise_floor: float  # σ never assumed below this
    log: bool = True  # compare logs (relative change) rather than values
    column: str = ""  # the run-table column it reads ("" for the spread on the sphere: std / (1/√d))


# Evidence (bench/scenarios.py, 300-step digits runs): healthy runs move the log spread by ≤ 0.09 after
# their first snapshot (simsiam: 0.81× → 0.74×), the log rank by ≤ 0.08 (nt-xent 18.3 → 17.0), uniformity
# by ≤ 0.10 nats, the gap by ≤ 0.03 and kNN by ≤ 0.04 in one snapshot (100 query points: ±1 point = 1%).
# The first affected snapshot of the faults moves rank by ≥ 0.13 (MoCo queue dropped) and uniformity by
# ≥ 0.26 nats; the minimum effects sit between the two.
SIGNALS = (
    Signal("spread", "spread_falling", "normalised std", 0.15, 0.02),
    Signal("rank", "rank_falling", "effective rank", 0.10, 0.02, column="effective_rank"),
    Signal("uniformity", "uniformity_rising", "uniformity", 0.15, 0.03, log=False, column="uniformity"),
    Signal("gap", "gap_closing", "positive–negative cosine gap", 0.05, 0.01, log=False, column="pos_neg_gap"),
    Signal("knn", "knn_falling", "kNN accuracy", 0.03, 0.01, log=False, column="knn_accuracy"),
)
# Variance-regularised objectives (VICReg, Barlow Twins; advice.methods "variance") shape the raw embeddings,
# not their directions, so they are judged there: the spread is the raw per-dimension std (raw_std), the rank
# the centred one, and the sphere's uniformity and gap are not read. Evidence (bench/scenarios.py):
# vicreg-healthy grows a mean offset (‖mean‖ 0.7 → 6) that narrows its cone on the sphere (normalised std
# 0.88× → 0.74×, gap 0.57 → 0.45: four sphere alarms) while its raw std holds at 1.0–1.24 and kNN at
# 0.70–0.77; vicreg-variance-off loses its scale (raw std 1.12 → 0.08 in 150 steps) while the directions of
# its shrinking vectors turn to noise (the sphere's rank *rises* 10.8 → 18.3). Same effects and noise floors
# as on the sphere: a ratio is a ratio.
RAW_SIGNALS = (
    Signal("spread", "spread_falling", "std of the raw embeddings", 0.15, 0.02, column="raw_std"),
    Signal("rank", "rank_falling", "centred effective rank", 0.10, 0.02, column="effective_rank_centred"),
    SIGNALS[-1],
)


def signals_for(context: RunContext | None) -> tuple:
    """The signals a run is judged on: the raw geometry for variance-regularised methods, else the sphere."""
    return RAW_SIGNALS if context is not None and "variance" in advice.methods(context) else SIGNALS


@dataclass
class Alarm:
    kind: str  # spread_falling, rank_falling, uniformity_rising, gap_closing, knn_falling,
    #                      collapsing, dimensional_collapse, complete_collapse, nonfinite
    severity: str  # "info" (it recovered), "warning" or "critical"
    step_started: int  # the estimated change point: first snapshot of the slide
    step_detected: int  # the snapshot where persistence and agreement were first met
    message: str
    suggestion: str
    signals: list[str] = field(default_factory=list)  # the signals that agreed when it fired
    step_before: int | None = None  # the last snapshot before the change point


def signal_values(table: pd.DataFrame, name: str, signals: tuple = SIGNALS) -> np.ndarray:
    """The signal as displayed (std ratio, rank, uniformity, gap, kNN; or a column of `signals`); NaN where
    missing."""
    col = lambda c: pd.to_numeric(table[c], errors="coerce").to_numpy(np.float64) if c in table else None  # noqa: E731
    column = next(s.column for s in signals if s.name == name)
    if not column:  # the spread on the sphere
        std, inv = col("normalized_std"), col("inv_sqrt_d")
        return std / inv if std is not None and inv is not None else np.full(len(table), np.nan)
    values = col(column)
    return values if values is not None else np.full(len(table), np.nan)


def running_median3(xf: np.ndarray) -> np.ndarray:
    """Causal 3-point running median of finite values: x0, then the median of (x0, x1) (their mean), then of
    each three. Equal to np.nanmedian over the NaN-padded window, which cost ~1 ms per signal in masked-array
    set-up (5 signals per run, every run on Home)."""
    smooth = xf.astype(np.float64, copy=True)
    if len(xf) >= 2:
        smooth[1] = np.median(xf[:2])
    if len(xf) >= 3:
        smooth[2:] = np.median(np.stack([xf[2:], xf[1:-1], xf[:-2]]), axis=0)
    return smooth


@dataclass
class Track:
    """Per snapshot: the baseline, threshold and deviation (oriented units), and whether it is out."""

    shown: np.ndarray
    x: np.ndarray  # oriented values (log for ratios; higher is better)
    base: np.ndarray
    dev: np.ndarray
    thr: np.ndarray
    out: np.ndarray
    start: np.ndarray  # index where the current loose run began (−1 when in band)
    peak: np.ndarray  # index where the baseline level was reached (the end of the initial transient)

    def persistent(self, i: int) -> bool:
        return bool(self.out[i] and ((i > 0 and self.out[i - 1]) or self.dev[i] >= STRONG * self.thr[i]))


def track(table: pd.DataFrame, sig: Signal) -> Track:
    """Causal scan: snapshot i is judged on snapshots 0..i only, so an alarm never depends on the future."""
    shown = signal_values(table, sig.name, (sig,))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(np.where(shown > 0, shown, np.nan)) if sig.log else shown.copy()
    if sig.name == "uniformity":
        x = -x  # lower uniformity is better
    n = len(x)
    base, dev, thr = (np.full(n, np.nan) for _ in range(3))
    out, start, peak = np.zeros(n, bool), np.full(n, -1), np.zeros(n, int)
    finite = np.flatnonzero(np.isfinite(x))
    xf = x[finite]
    # causal 3-snapshot running median of the finite values, its running best and where that best was reached
    smooth = running_median3(xf)
    best_at = np.zeros(len(xf), int)
    for j in range(1, len(xf)):
        best_at[j] = j if smooth[j] > smooth[best_at[j - 1]] else best_at[j - 1]
    frozen = None  # (base, thr, peak) kept while the signal is out, so the slide does not lower its own bar
    for i in range(n):
        k = int(np.searchsorted(finite, i))  # finite values before snapshot i
        if k < 2 or not math.isfinite(x[i]):
            continue
        b = best_at[k - 1]
        if frozen is None and smooth[b] - x[i] <= sig.min_effect / 2:
            # in band whatever the noise (the threshold is ≥ min_effect): no σ estimate needed (thr stays NaN)
            base[i], peak[i], dev[i] = smooth[b], finite[b], smooth[b] - x[i]
            continue
        if frozen is None:
            steps = np.diff(xf[:k])
            sigma = 1.4826 * np.median(np.abs(steps - np.median(steps)))
            frozen = (
                smooth[b],
                max(sig.min_effect, K_NOISE * max(sigma / math.sqrt(2), sig.noise_floor)),
                int(finite[b]),
            )
        base[i], thr[i], peak[i] = frozen
        dev[i] = base[i] - x[i]
        out[i] = dev[i] > thr[i]
        if dev[i] > thr[i] / 2:
            start[i] = start[i - 1] if i > 0 and start[i - 1] >= 0 else i
        else:
            frozen = None
    return Track(shown, x, base, dev, thr, out, start, peak)


# How far back a change point is searched: 12 snapshots cover every scenario's slide from its first affected
# snapshot to detection (at most 5) with room for the level before it.
LOOKBACK = 12


def change_point(tr: Track, i: int, lookback: int = LOOKBACK) -> int:
    """The index h in (a, i] where the series drops: argmax of the mean-shift statistic
    (mean x[a:h] − mean x[h:i+1])·√(n_before·n_after/n) (binary segmentation, one split, a fall only), with
    a = the baseline's peak (so the initial transient's rise is never taken for the level before) or i − lookback."""
    x = tr.x
    a = max(0, i - lookback, int(tr.peak[i]))
    best, best_h = -math.inf, i
    for h in range(a + 1, i + 1):
        before, after = x[a:h][np.isfinite(x[a:h])], x[h : i + 1][np.isfinite(x[h : i + 1])]
        if len(before) and len(after):
            stat = (before.mean() - after.mean()) * math.sqrt(len(before) * len(after) / (len(before) + len(after)))
            if stat > best:
                best, best_h = stat, h
    return best_h


# A slow drift: one signal out for this many snapshots in a row while another has been past half its threshold
# all along. Catches τ = 5 (rank out from 220, uniformity loosely out from 200); the longest such run in the
# healthy scenarios is 1 snapshot (simsiam-healthy: rank out at 100 and 160, nothing else near its threshold).
SUSTAINED = 4


def agreement(tracks: dict, i: int) -> bool:
    """Enough evidence at snapshot i: the spread persistently out, two other signals persistently out, or a
    sustained drift (one signal out SUSTAINED snapshots running, another loosely out over the same span)."""
    persistent = [n for n, tr in tracks.items() if tr.persistent(i)]
    if "spread" in persistent or len([n for n in persistent if n != "spread"]) >= 2:
        return True
    span = range(i - SUSTAINED + 1, i + 1)
    if i + 1 < SUSTAINED:
        return False
    long_out = [n for n, tr in tracks.items() if all(tr.out[j] for j in span)]
    return any(all(tr.start[j] >= 0 for j in span) for n, tr in tracks.items() for m in long_out if n != m)


def _shown_base(sig: Signal, base: float) -> float:
    v = math.exp(base) if sig.log else base
    return -v if sig.name == "uniformity" else v


def _fmt(sig: Signal, v: float) -> str:
    if sig.name == "spread" and not sig.column:
        return f"{v:.2f}× 1/√d"
    if sig.name == "knn":
        return f"{v:.1%}"
    return f"{v:.3g}"


def trend_alarms(table: pd.DataFrame, context: RunContext | None = None) -> list[Alarm]:
    """Alarms over a run's per-snapshot table (summary.run_table); missing columns drop their signal. At most
    one alarm per kind, for its first occurrence, ordered by the step it was detected. `context` (the run's
    config and metrics) fits the suggestions to the method and names the config switch behind a change."""
    if not isinstance(table, pd.DataFrame) or "step" not in table.columns:
        raise ValueError("table: needs a DataFrame with a 'step' column (summary.run_table)")
    ctx = context or RunContext()
    signals = signals_for(ctx)
    t = table.sort_values("step").reset_index(drop=True)
    steps = [int(s) for s in t["step"]]
    tracks = {s.name: track(t, s) for s in signals}
    alarms: dict[str, Alarm] = {}
    fired_at = None
    for i in range(len(t)):
        persistent = [s for s in signals if tracks[s.name].persistent(i)]
        agree = agreement(tracks, i)
        if fired_at is not None and all(tracks[s.name].start[i] < 0 for s in signals):
            fired_at = None  # the slide is over: a later lone signal needs agreement again
        if fired_at is None and agree:
            fired_at = i
        if fired_at is None:
            continue
        for sig in persistent:  # signals that join a running episode later raise their own alarm
            if sig.kind in alarms:
                continue
            tr = tracks[sig.name]
            start = change_point(tr, i)
            before = steps[start - 1] if start > 0 else None
            was, now = _shown_base(sig, tr.base[i]), tr.shown[i]
            agreeing = [s.name for s in persistent]
            msg = (
                f"The {sig.label} went from {_fmt(sig, was)} (its baseline) to {_fmt(sig, now)} at step "
                f"{steps[i]}; the change began "
                + (f"between step {before} and {steps[start]}" if before is not None else f"by step {steps[start]}")
                + (f" (agrees with: {', '.join(a for a in agreeing if a != sig.name)})." if len(agreeing) > 1 else ".")
            )
            alarms[sig.kind] = Alarm(
                sig.kind,
                "warning",
                steps[start],
                steps[i],
                msg,
                advice.suggestion(sig.name, ctx, before, steps[start]),
                agreeing,
                before,
            )
    for a in alarms.values():  # recovered: back in band at the last two snapshots
        tr = tracks[next(s.name for s in signals if s.kind == a.kind)]
        back = [j for j in (-1, -2) if np.isfinite(tr.dev[j]) and tr.start[j] < 0]  # finite and in band
        if len(t) >= 2 and len(back) == 2:
            a.severity, a.message = "info", a.message + f" It recovered by step {steps[-1]}."
    result = list(alarms.values())
    result += _verdict_alarms(t, steps, run_verdicts(t, tracks, signals), result, ctx, signals)
    nonfinite = _nonfinite_alarm(t, steps)
    if nonfinite:
        result.append(nonfinite)
    return sorted(result, key=lambda a: (a.step_detected, a.kind))


def _verdict_alarms(t, steps, verdicts: pd.DataFrame, trend: list[Alarm], ctx: RunContext, signals=SIGNALS):
    """Each "collapsing", dimensional and complete collapse of the ladder: the episode in force at the last
    snapshot (critical), else the first one (info, recovered); they share the slide's onset when it came first.
    An earlier episode that recovered dates nothing: a lone end-state snapshot long before a real slide
    (byol with a narrow predictor: dimensional collapse at 30 and 60, then from 165) is history, said in words."""
    out = []
    onset = min((a for a in trend if a.severity != "info"), key=lambda a: a.step_started, default=None)
    # every end state is critical (the gate fails on it); a slide under way ("collapsing") too
    for kind, severity in (
        ("collapsing", "critical"),
        ("dimensional_collapse", "critical"),
        ("complete_collapse", "critical"),
        ("unmeasurable", "critical"),
    ):
        hits = [i for i, v in enumerate(verdicts["verdict"]) if v == kind]
        if not hits:
            continue
        i, last = hits[0], len(steps) - 1
        if hits[-1] == last:  # in force now: the start of its current episode
            i = last
            while i - 1 in hits:
                i -= 1
        message = (
            f"The verdict turned to {kind.replace('_', ' ')} at step {steps[i]}: {verdicts['explanation'].iloc[i]}"
        )
        if i != hits[0]:
            message += f" (It had also been {kind.replace('_', ' ')} at step {steps[hits[0]]} and recovered.)"
        finite_end = bool(np.isfinite(signal_values(t, "spread", signals)[-1]))  # NaN rows are no recovery
        if verdicts["verdict"].iloc[-1] != kind and kind != "collapsing" and finite_end:
            back = next(steps[j] for j in range(i, len(steps)) if verdicts["verdict"].iloc[j] != kind)
            # an early collapse that training undid (e.g. before the λ warm-up ends): worth knowing, not alarming
            severity, message = "info", message + f" It recovered by step {back}."
        start = onset.step_started if onset and onset.step_started <= steps[i] else steps[i]
        before = onset.step_before if onset and onset.step_started <= steps[i] else None
        out.append(
            Alarm(
                kind,
                severity,
                start,
                steps[i],
                message,
                advice.suggestion(VERDICT_SIGNAL_OF.get(kind, "collapse"), ctx, before, start),
                step_before=before,
            )
        )
    return out


def _nonfinite_alarm(t: pd.DataFrame, steps: list[int]) -> Alarm | None:
    """Non-finite embedding rows, or a metric that had been finite turning NaN."""
    num = lambda c: pd.to_numeric(t[c], errors="coerce").to_numpy(np.float64)  # noqa: E731  None -> NaN
    metrics = {c: np.isfinite(num(c)) for c in ("effective_rank", "uniformity", "pos_neg_gap") if c in t}
    rows = np.nan_to_num(num("nonfinite_rows")) if "nonfinite_rows" in t else np.zeros(len(t))
    seen_finite = {c: False for c in metrics}
    for i in range(len(t)):
        why = f"{int(rows[i])} embedding rows are NaN/inf" if rows[i] > 0 else ""
        for c, finite in metrics.items():
            if not finite[i] and seen_finite[c] and not why:
                why = f"{c} became NaN"
            seen_finite[c] |= bool(finite[i])
        if why:
            return Alarm(
                "nonfinite",
                "critical",
                steps[i],
                steps[i],
                f"Training diverged at step {steps[i]}: {why}.",
                SUGGEST_DIVERGED[0],
            )
    return None


# -- the verdict ladder ----------------------------------------------------------------------------------

# What the ladder reads of a run table (here, in `track` and in collapse.separability_text): run_verdicts
# works on these columns only, so the other ~30 columns of a run table cost nothing per snapshot.
LADDER_COLUMNS = (
    "step",
    "verdict",
    "explanation",
    "roc_auc",
    "knn_accuracy",
    "mean_cos",
    "normalized_std",
    "inv_sqrt_d",
    "effective_rank",
    "uniformity",
    "pos_neg_gap",
    "raw_std",
    "effective_rank_centred",
)
# Every verdict run_verdicts gives, mildest first.
LADDER = (
    "healthy",
    "cone",
    "degrading",
    "narrowing",
    "contracting",
    "collapsing",
    "dimensional_collapse",
    "complete_collapse",
    "diverged",
    "unmeasurable",
)
END_STATES = ("dimensional_collapse", "complete_collapse", "diverged", "unmeasurable")  # named per snapshot
# A terminal state named plainly: the spread below TERMINAL_STD_RATIO of the healthy 1/√d with a mean cosine
# above TERMINAL_MEAN_COS at TERMINAL_SNAPSHOTS snapshots running is complete collapse, whatever AUC says
# (a per-snapshot AUC ≥ 0.8 calls such a snapshot "cone"). Evidence: complete-collapse-negatives-removed
# reaches 0.101×/0.989 at 675, 0.087×/0.992 at 750, 0.077×/0.994 at 825, 0.067×/0.995 at 900 with kNN
# 45 % (from 95 %) while its AUC stays 0.97; no healthy run or scenario goes below 0.3× after its first
# snapshot, and a first, untrained snapshot (nt-xent-healthy-every2 at step 2: 0.08×) is one snapshot, not 3.
TERMINAL_STD_RATIO, TERMINAL_MEAN_COS, TERMINAL_SNAPSHOTS = 0.1, 0.99, 3
VERDICT_SIGNAL_OF = {"dimensional_collapse": "rank", "unmeasurable": "unmeasurable"}  # advice.SYMPTOM key


def run_verdicts(table: pd.DataFrame, tracks: dict | None = None, signals: tuple = SIGNALS) -> pd.DataFrame:
    """Per snapshot: verdict and explanation over the run. The snapshot's own verdict (table["verdict"],
    collapse.judge) names end states; while a slide is under way (an agreed alarm whose signals are still
    out) the ladder names it: contracting (spread or uniformity falling), collapsing (spread below half its
    baseline), narrowing (rank falling), degrading (only separation falling). Columns: step, verdict,
    explanation."""
    th = CollapseThresholds()
    t = table[[c for c in LADDER_COLUMNS if c in table.columns]].sort_values("step").reset_index(drop=True)
    tracks = tracks or {s.name: track(t, s) for s in signals}
    sig = {s.name: s for s in signals}
    sphere = signals is SIGNALS
    rows, episode = [], False
    since: dict[str, int] = {}  # signal -> its change point, dated once when it joins the slide
    columns = {c: t[c].tolist() for c in t.columns}  # what to_dict("records") gives, without its per-cell cost
    records, spread = [{c: v[i] for c, v in columns.items()} for i in range(len(t))], signal_values(t, "spread")
    mean_cos = (
        pd.to_numeric(t["mean_cos"], errors="coerce").to_numpy(np.float64)
        if "mean_cos" in t
        else np.full(len(t), np.nan)
    )
    terminal = (spread < TERMINAL_STD_RATIO) & (mean_cos > TERMINAL_MEAN_COS) & sphere  # NaN compares False
    for i, row in enumerate(records):
        own = row["verdict"] if isinstance(row.get("verdict"), str) else "healthy"
        text = row["explanation"] if isinstance(row.get("explanation"), str) else ""
        auc, ratio = row.get("roc_auc"), spread[i]
        if (
            own not in ("diverged", "unmeasurable")
            and i + 1 >= TERMINAL_SNAPSHOTS
            and terminal[i + 1 - TERMINAL_SNAPSHOTS : i + 1].all()
        ):
            first = int(records[i + 1 - TERMINAL_SNAPSHOTS]["step"])
            rows.append(
                (
                    int(row["step"]),
                    "complete_collapse",
                    f"Complete collapse: every point sits at nearly the same spot on the sphere since step "
                    f"{first}: the normalised std is {ratio:.2f}× the healthy 1/√d (below "
                    f"{TERMINAL_STD_RATIO}× for {TERMINAL_SNAPSHOTS} snapshots) and the mean cosine between "
                    f"points is {mean_cos[i]:.3f}. What is still separable, in a sliver of the sphere:"
                    + (separability_text(row).replace(" Separability:", "") or " nothing measured."),
                )
            )
            continue
        if own == "complete_collapse" and auc is not None and auc >= th.separable_auc and ratio >= th.point_std_ratio:
            # judged without the pairs (summary computes the AUC after the verdict): the pairs say separable
            own = "cone"
            text = (
                f"A tight cone, not (yet) collapse: the normalised std is {ratio:.2f}× the healthy 1/√d, but "
                f"positives still stand out from negatives (AUC {auc:.2f} ≥ {th.separable_auc})."
                + separability_text({"knn_accuracy": row.get("knn_accuracy")})
            )
        persistent = [n for n, tr in tracks.items() if tr.persistent(i)]
        episode = episode or agreement(tracks, i)
        active = [
            n
            for n, tr in tracks.items()
            if episode and tr.start[i] >= 0 and np.isfinite(tr.dev[i]) and (tr.out[i] or n in persistent)
        ]
        since = {n: since.get(n, change_point(tracks[n], i)) for n in active}
        if own in END_STATES or not active:
            episode = episode and bool(active)
            rows.append((int(row["step"]), own, text))
            continue
        sp = tracks["spread"]
        if "spread" in active:
            was, now = math.exp(sp.base[i]), sp.shown[i]
            verdict = "collapsing" if now < COLLAPSING_FRACTION * was else "contracting"
            what = (
                f"the normalised std fell from {was:.2f}× to {now:.2f}× the healthy 1/√d"
                if sphere
                else f"the {sig['spread'].label} fell from {was:.3g} to {now:.3g}"
            )
            text = (
                f"{verdict.capitalize()}: {what} since step {int(records[since['spread']]['step'])}"
                + (f" (below {COLLAPSING_FRACTION:.0%} of where it was)" if verdict == "collapsing" else "")
                + f"; the mean cosine between points is {float(row.get('mean_cos') if row.get('mean_cos') is not None else math.nan):.2f}."  # noqa: E501
            )
        else:
            name = "rank" if "rank" in active else "uniformity" if "uniformity" in active else active[0]
            verdict = {"rank": "narrowing", "uniformity": "contracting"}.get(name, "degrading")
            tr, s = tracks[name], sig[name]
            text = (
                f"{verdict.capitalize()}: the {s.label} went from {_fmt(s, _shown_base(s, tr.base[i]))} to "
                f"{_fmt(s, tr.shown[i])} since step {int(records[since[name]]['step'])}."
            )
        rows.append((int(row["step"]), verdict, text + separability_text(row)))
    return pd.DataFrame(rows, columns=["step", "verdict", "explanation"])
