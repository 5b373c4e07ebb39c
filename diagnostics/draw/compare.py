"""Several runs side by side: config diff, final-metric table, TensorBoard smoothing, the λ ablation.

Pure: dicts and DataFrames in, DataFrames, sentences and plotly figures out. The dashboard's Compare page
and the offline report (diagnostics/draw/report.py) draw from the same functions, so they always agree.
Run names go into figures html-escaped: plotly.js parses a little HTML in trace names and titles.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import figures
from .chart_style import fit_value_axis, legend_name, legend_right, run_colours

MISSING = "—"  # a config key one run has and another does not
LAMBDA_KEY = "contrastive.weight"
RECON_METRIC = "eval/recon_mse"
# What a conditional generator draws, scored by a digit judge (training/generation.py): in the ablation when logged.
GENERATION_METRICS = {
    "gen/conditional_accuracy": ("conditional accuracy (higher is better)", "%{y:.1%}", ".0%"),
    "gen/diversity": ("diversity vs real digits (higher is better)", "%{y:.3g}", ".3~g"),
    "gen/frechet_distance": ("Fréchet distance (lower is better)", "%{y:.4g}", ".4~g"),
}
X_AXES = ("step", "wall_time")
# Which way is better, by substring of the metric name; metrics matching neither (lr, λ, τ) have no "best".
HIGHER_IS_BETTER = ("psnr", "top1", "acc", "infonce_bound", "pos_cos", "effective_rank")
LOWER_IS_BETTER = ("loss", "mse", "neg_cos", "alignment", "uniformity")


# -- config diff ------------------------------------------------------------------------------------
def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}. An empty nested dict stays a leaf so it is not silently dropped."""
    if not isinstance(config, Mapping):
        raise ValueError(f"config: must be a dict, got {type(config).__name__}")
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def format_value(value: Any) -> str:
    if value is MISSING:
        return MISSING
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Only the dotted keys whose values differ between runs (a key one run lacks differs).

    Rows: dotted keys, sorted. Columns: run names in the given order. Cells: the value as text, or MISSING.
    With one run there is nothing to differ: the frame is empty (with that run's column)."""
    flat = {name: flatten_config(cfg) for name, cfg in configs.items()}
    keys = sorted(set().union(*flat.values())) if flat else []
    rows = {}
    for key in keys:
        cells = [format_value(f.get(key, MISSING)) for f in flat.values()]
        if len(set(cells)) > 1:
            rows[key] = cells
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(flat)).rename_axis("key")


# -- metrics ----------------------------------------------------------------------------------------
def metric_direction(metric: str) -> str | None:
    """ "max", "min", or None when "best" means nothing for this metric (learning rate, λ, ...)."""
    leaf = metric.lower()
    if any(s in leaf for s in HIGHER_IS_BETTER):
        return "max"
    if any(s in leaf for s in LOWER_IS_BETTER):
        return "min"
    return None


def ema(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average; non-finite points pass through.

    s_t = m_t / (1 - w^k), m_t = w m_{t-1} + (1 - w) x_t, k = finite points so far. w = 0 returns the input."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight: smoothing must be in [0, 1), got {weight}")
    x = np.asarray(values, dtype=np.float64)
    out = x.copy()
    m, k = 0.0, 0
    for i, v in enumerate(x):
        if not math.isfinite(v):
            continue
        m = weight * m + (1.0 - weight) * v
        k += 1
        out[i] = m / (1.0 - weight**k)
    return out


def metric_columns(frames: Mapping[str, pd.DataFrame]) -> list[str]:
    """Every metric any run logged, in a stable order (losses first, then alphabetical)."""
    names = set()
    for df in frames.values():
        names.update(c for c in df.columns if c not in X_AXES)
    return sorted(names, key=lambda c: (not c.startswith("loss/"), c))


def series(df: pd.DataFrame, metric: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the rows where `metric` was logged. x = "wall_time" is seconds since the run's first record."""
    if x not in X_AXES:
        raise ValueError(f"x: one of {X_AXES}, got {x!r}")
    if metric not in df.columns or df.empty:
        return np.empty(0), np.empty(0)
    rows = df[df[metric].notna()]
    xs = rows[x].to_numpy(dtype=np.float64)
    if x == "wall_time":
        xs = xs - float(df["wall_time"].min())
    return xs, rows[metric].to_numpy(dtype=np.float64)


def final_metrics(frames: Mapping[str, pd.DataFrame], metrics: list[str]) -> pd.DataFrame:
    """One row per (run, metric): the last finite value and its step, and the best one (by metric_direction)."""
    rows = []
    for name, df in frames.items():
        for metric in metrics:
            steps, values = series(df, metric)
            finite = np.isfinite(values)
            if not finite.any():
                continue
            steps, values = steps[finite], values[finite]
            row = {
                "run": name,
                "metric": metric,
                "last": values[-1],
                "last_step": int(steps[-1]),
                "best": math.nan,
                "best_step": pd.NA,
            }
            direction = metric_direction(metric)
            if direction:
                i = int(np.argmax(values) if direction == "max" else np.argmin(values))
                row.update(best=values[i], best_step=int(steps[i]))
            rows.append(row)
    cols = ["run", "metric", "last", "last_step", "best", "best_step"]
    out = pd.DataFrame(rows, columns=cols)
    out["best_step"] = out["best_step"].astype("Int64")
    return out


def last_finite(df: pd.DataFrame, metric: str) -> float:
    _, values = series(df, metric)
    values = values[np.isfinite(values)]
    return float(values[-1]) if len(values) else math.nan


# -- ablation ---------------------------------------------------------------------------------------
def contrastive_weight(config: Mapping[str, Any]) -> float:
    value = flatten_config(config).get(LAMBDA_KEY)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# Keys that name a run rather than treat it: they may differ without confounding λ. Runs whose configs are
# equal apart from these are seeds (replicates), summarised as mean ± std; any other difference keeps them apart.
IDENTITY_KEYS = ("description", "name", "seed")
SEED_LIKE = IDENTITY_KEYS + (
    "run_name",
    "time",
    "timestamp",
    "date",
    "started",
    "output",
    "output_dir",
    "out_dir",
    "runs_dir",
    "log_dir",
    "logdir",
    "path",
    "dir",
)
SEED_LIKE_SUFFIXES = ("seed", "_dir", "_path", "_time")


def seed_like(key: str) -> bool:
    """A key that names, seeds, dates or places a run (its last dotted part): `seed`, `data.seed`, `name`,
    `output_dir`, `logging.runs_dir`, ..."""
    last = key.rsplit(".", 1)[-1].lower()
    return last in SEED_LIKE or last.endswith(SEED_LIKE_SUFFIXES)


def setting(config: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> str:
    """The config with its seed-like keys (and `ignore`) left out, as one canonical string: equal for seeds."""
    flat = {k: v for k, v in flatten_config(config).items() if not seed_like(k) and k not in ignore}
    return json.dumps(flat, sort_keys=True, default=str)


def differing_keys(configs: Mapping[str, Mapping]) -> list[str]:
    """The config keys, seed-like ones aside, whose values differ between the runs."""
    return [k for k in config_diff(configs).index if not seed_like(k)] if len(configs) > 1 else []


def confounders(configs: Mapping[str, Mapping]) -> list[str]:
    """Every config key other than λ (and the seed-like keys) whose value differs between the runs."""
    return [k for k in differing_keys(configs) if k != LAMBDA_KEY]


def ablation_table(
    configs: Mapping[str, Mapping], frames: Mapping[str, pd.DataFrame], knn: Mapping[str, float]
) -> pd.DataFrame:
    """run, λ (contrastive.weight), final eval/recon_mse, kNN accuracy at the latest snapshot, seed, and the
    final gen/* metrics where any run logged them; sorted by λ. `table.attrs["confounders"]`: the other
    config keys that differ between the runs with a λ."""
    gen = [m for m in GENERATION_METRICS if any(m in frames[n].columns for n in configs if n in frames)]
    rows = [
        {
            "run": name,
            "lambda": contrastive_weight(configs[name]),
            "recon_mse": last_finite(frames[name], RECON_METRIC) if name in frames else math.nan,
            "knn_accuracy": float(knn.get(name, math.nan)),
            "seed": flatten_config(configs[name]).get("seed"),
            **{m: last_finite(frames[name], m) if name in frames else math.nan for m in gen},
        }
        for name in configs
    ]
    out = pd.DataFrame(rows, columns=["run", "lambda", "recon_mse", "knn_accuracy", "seed", *gen])
    out = out.sort_values(["lambda", "run"], kind="stable", na_position="last").reset_index(drop=True)
    with_lambda = {r["run"]: configs[r["run"]] for r in rows if math.isfinite(r["lambda"])}
    out.attrs["confounders"] = confounders(with_lambda)
    out.attrs["settings"] = {n: setting(configs[n]) for n in configs}  # runs of one setting are seeds
    out.attrs["configs"] = dict(configs)
    return out


def _endpoints(table: pd.DataFrame, column: str):
    """((λ_lo, mean, std, n), (λ_hi, mean, std, n)) over runs with both λ and `column` finite. Runs that share a
    λ are pooled as seeds (std with ddof=1, NaN for one run) only when their configs are equal apart from
    seed-like keys; otherwise `mean` is the "a (run), b (run): not seeds, they differ in k" text, kept apart."""
    ok = table[np.isfinite(table["lambda"]) & np.isfinite(table[column])]
    lambdas = sorted(set(ok["lambda"]))
    if len(lambdas) < 2:
        return None
    settings, configs = table.attrs.get("settings", {}), table.attrs.get("configs", {})

    def at(lam):
        rows = ok[ok["lambda"] == lam]
        if len({settings.get(r, r) for r in rows["run"]}) > 1:  # different settings at one λ: not seeds
            keys = [k for k in differing_keys({r: configs.get(r, {}) for r in rows["run"]}) if k != LAMBDA_KEY]
            return lam, list(zip(rows["run"], rows[column])), keys, len(rows)
        return lam, float(rows[column].mean()), float(rows[column].std()), len(rows)

    return at(lambdas[0]), at(lambdas[-1])


def _pm(mean, std, n: int, fmt: str = "{:.4g}") -> str:
    """ "0.15" for one run, "0.15 ± 0.02 (n=3 seeds)" for seeds of one setting; runs of different settings at
    one λ (`mean` a list of (run, value), `std` the keys that differ) each with its own value."""
    if isinstance(mean, list):
        values = ", ".join(f"{fmt.format(v)} ({r})" for r, v in mean)
        return f"{values}: not seeds, they differ in {', '.join(std[:4]) or 'their config'}"
    return fmt.format(mean) if n < 2 else f"{fmt.format(mean)} ± {fmt.format(std)} (n={n} seeds)"


def ablation_sentence(table: pd.DataFrame, tolerance: float = 0.02, confounded: list[str] | None = None) -> str:
    """Plain words for "does the contrastive term help the generator?".

    Compares the smallest λ with the largest (runs sharing a λ and equal configs apart from seed-like keys
    are seeds: mean ± std; other runs at one λ are kept apart, each named). A relative change in
    the reconstruction error below `tolerance` counts as no effect. While any other config key differs
    (`confounded`, default table.attrs["confounders"]) the sentence names them and makes no causal claim."""
    confounded = table.attrs.get("confounders", []) if confounded is None else confounded
    recon = _endpoints(table, "recon_mse")
    if recon is None:
        return (
            "Cannot tell yet: pick runs with at least two different contrastive weights "
            f"(config `{LAMBDA_KEY}`) that log `{RECON_METRIC}`."
        )
    (lo, r_lo, s_lo, n_lo), (hi, r_hi, s_hi, n_hi) = recon
    apart = [k for _, m, keys, _ in recon if isinstance(m, list) for k in keys]  # runs of different settings
    confounded = (
        confounded
        or list(dict.fromkeys(apart))
        or (["config"] if isinstance(r_lo, list) or isinstance(r_hi, list) else [])
    )
    knn = _endpoints(table, "knn_accuracy")
    knn_text = ""
    if knn is not None and (knn[0][0], knn[1][0]) == (lo, hi):
        knn_text = (
            f"; kNN accuracy {_pm(knn[0][1], knn[0][2], knn[0][3], '{:.1%}')} → "
            f"{_pm(knn[1][1], knn[1][2], knn[1][3], '{:.1%}')}"
        )
    observed = (
        f"final reconstruction error {_pm(r_lo, s_lo, n_lo)} at λ = {lo:g} and {_pm(r_hi, s_hi, n_hi)} "
        f"at λ = {hi:g}{knn_text}"
    )
    drawn = _endpoints(table, "gen/conditional_accuracy") if "gen/conditional_accuracy" in table else None
    if drawn is not None and (drawn[0][0], drawn[1][0]) == (lo, hi):
        observed += (
            f"; the samples show the asked-for digit {_pm(drawn[0][1], drawn[0][2], drawn[0][3], '{:.1%}')}"
            f" → {_pm(drawn[1][1], drawn[1][2], drawn[1][3], '{:.1%}')} of the time"
        )
    if confounded:
        shown = ", ".join(confounded[:8]) + (f" and {len(confounded) - 8} more" if len(confounded) > 8 else "")
        return (
            f"Not a clean ablation: besides λ these runs differ in {len(confounded)} config "
            f"key{'s' if len(confounded) > 1 else ''} ({shown}), so no effect can be credited to λ. "
            f"Observed: {observed}."
        )
    change = (r_hi - r_lo) / abs(r_lo) if r_lo else math.copysign(math.inf, r_hi - r_lo) if r_hi != r_lo else 0.0
    noise = max(s_lo if n_lo > 1 else 0.0, s_hi if n_hi > 1 else 0.0)
    if abs(change) < tolerance or abs(r_hi - r_lo) <= noise:
        verdict = "barely changes the generator" + (" (within the seed-to-seed spread)" if noise else "")
    else:
        verdict = "helps the generator" if change < 0 else "hurts the generator"
    caveat = "" if n_lo > 1 and n_hi > 1 else " One seed per setting: seed-to-seed spread is unknown."
    return (
        f"Raising λ from {lo:g} to {hi:g} ({change:+.0%}): {observed}. In these runs the contrastive term "
        f"{verdict}.{caveat}"
    )


# -- figures ----------------------------------------------------------------------------------------
def _label(name: str) -> str:
    return html.escape(str(name), quote=False)


def metric_overlay_figure(
    frames: Mapping[str, pd.DataFrame], metric: str, x: str = "step", smoothing: float = 0.0
) -> go.Figure:
    """One line per run (smoothed when smoothing > 0, the raw curve faint behind it, as in TensorBoard)."""
    fig = go.Figure()
    colours, drawn = run_colours(frames), {}
    for name, df in frames.items():
        xs, ys = series(df, metric, x)
        if not len(xs):
            continue
        color = drawn[_label(name)] = colours[name]
        if smoothing > 0:
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    name=f"{_label(name)} (raw)",
                    legendgroup=_label(name),
                    showlegend=False,
                    opacity=0.25,
                    line=dict(color=color, width=1),
                    hoverinfo="skip",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ema(ys, smoothing) if smoothing > 0 else ys,
                mode="lines",
                name=_label(name),
                legendgroup=_label(name),
                showlegend=False,
                line=dict(color=color, width=2),
            )
        )
    fig.add_traces(figures.run_legend(drawn))  # one short legend entry per run
    fig.update_layout(
        template=figures.TEMPLATE,
        title=_label(metric),
        hovermode="x unified",
        xaxis_title="step" if x == "step" else "wall time (s since start)",
        yaxis_title=_label(metric),
        yaxis_tickformat=".4~g",
        yaxis_hoverformat=".4g",
        height=360,
        margin=dict(l=50, r=20, t=50, b=40),
        legend=legend_right(),
    )
    return fit_value_axis(fig, log=False)


def align_uniform_figure(tables: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Each run's path through Wang & Isola's (uniformity, alignment) plane; `tables`: run -> per-snapshot
    frame with step, alignment, uniformity (diagnostics.store.cache.cached_run_table)."""
    usable = {
        _label(name): t
        for name, t in tables.items()
        if t is not None and not t.empty and {"step", "alignment", "uniformity"} <= set(t.columns)
    }
    return figures.align_uniform_plane(usable)


def dodged(lambdas: pd.Series, spacing: float) -> np.ndarray:
    """λ with the runs that share one spread side by side, `spacing` apart and centred on it (a strip plot),
    so no marker hides another; runs keep the table's order within a λ."""
    rank = lambdas.groupby(lambdas).cumcount().to_numpy(dtype=float)
    size = lambdas.groupby(lambdas).transform("size").to_numpy(dtype=float)
    return lambdas.to_numpy(dtype=float) + (rank - (size - 1) / 2) * spacing


def ablation_figure(table: pd.DataFrame) -> go.Figure:
    """Side by side, one point per run in its colour: λ against the final reconstruction error (the generator),
    against kNN accuracy at the latest snapshot (the representation) and against each gen/* metric the table
    has (what the generator draws). Runs are named in the legend (cut to 28 characters) and in the hover (in
    full), never printed beside the points, where a dozen names on three λ values ran into each other; runs
    that share a λ stand side by side around it."""
    panels = [
        ("recon_mse", "generator: final eval/recon_mse", "lower is better", "%{y:.4g}", ".4~g"),
        ("knn_accuracy", "representation: kNN accuracy", "higher is better", "%{y:.1%}", ".0%"),
    ]
    panels += [
        (m, "samples: " + title.split(" (")[0], title.split(" (")[1].rstrip(")"), fmt, tick)
        for m, (title, fmt, tick) in GENERATION_METRICS.items()
        if m in table.columns
    ]
    n_cols = min(len(panels), 2)
    n_rows = math.ceil(len(panels) / n_cols)
    row_px, gap_px, margin_px = 280, 130, 160  # gap: x ticks and title of one row, the two-line panel title below
    height = n_rows * row_px + (n_rows - 1) * gap_px + margin_px
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        horizontal_spacing=0.14,
        vertical_spacing=gap_px / (height - margin_px) if n_rows > 1 else 0.0,
        subplot_titles=[f"{title}<br><sup>{better}</sup>" for _, title, better, _, _ in panels],
    )
    t = table[np.isfinite(table["lambda"])].reset_index(drop=True)
    colours = run_colours(t["run"])  # each run its colour in every panel, as on the other pages
    levels = sorted(set(t["lambda"]))
    gap = min(np.diff(levels)) if len(levels) > 1 else 1.0
    crowd = int(t.groupby("lambda").size().max()) if len(t) else 1
    x = dodged(t["lambda"], min(0.06 * gap, 0.7 * gap / max(crowd - 1, 1)))
    for i, (column, _, _, fmt, tick) in enumerate(panels):
        row, col = i // n_cols + 1, i % n_cols + 1
        for j, run in enumerate(t["run"]):
            name = _label(run)
            fig.add_trace(
                go.Scatter(
                    x=[x[j]],
                    y=[t[column].iloc[j]],
                    mode="markers",
                    name=legend_name(name),
                    legendgroup=name,
                    showlegend=i == 0,
                    text=[name],
                    customdata=[t["lambda"].iloc[j]],
                    marker=dict(size=11, color=colours[run], line=dict(color="white", width=1)),
                    hovertemplate="%{text}<br>λ = %{customdata:g}<br>" + fmt + "<extra></extra>",
                ),
                row=row,
                col=col,
            )
        fig.update_xaxes(
            title_text="λ (contrastive.weight)",
            tickvals=levels,
            ticktext=[f"{v:g}" for v in levels],
            range=[levels[0] - 0.5 * gap, levels[-1] + 0.5 * gap] if levels else None,
            row=row,
            col=col,
        )
        fig.update_yaxes(tickformat=tick, row=row, col=col)
    fig.update_layout(
        template=figures.TEMPLATE,
        title="Contrastive weight λ: the generator and the representation",
        height=height,
        legend=legend_right(),
        hovermode="closest",
        margin=dict(l=60, r=20, t=110, b=50),
    )
    fig.update_annotations(font_size=13)
    if t.empty:  # no run sets λ: say so instead of drawing empty panels
        fig.update_layout(meta={"empty": "No run sets contrastive.weight (λ): there is nothing to compare across λ."})
    return fig
