"""What a page shows around its figures: error cards, alarm banners, verdict cards, the empty-root hint,
the chart grid. Every string that came from a run goes through `text.md` before it reaches Markdown."""

from __future__ import annotations

import logging
import shlex

import pandas as pd
import streamlit as st

from diagnostics import RunFormatError

from .text import md

log = logging.getLogger("contrastscope.dashboard")

MAKE_A_RUN = """\
No runs here yet. Train one on the CPU (the dashboard shows it while it trains):

```bash
python -m training.train --config training/configs/healthy-infonce-tau0.1.toml --runs-dir {shell_root}
```

or write one from your own loop:

```python
from contrastscope import RunWriter
with RunWriter("{root}", "my-run", config={{"description": "what this run shows"}}) as w:
    for step in range(1000):
        w.log_metrics(step, {{"loss/total": loss}})
        if step % 100 == 0:
            w.log_snapshot(step, embeddings=z, positives=z_pos, labels=y)
```

This page picks up the first run by itself."""


def make_a_run(root: str) -> None:
    """The empty-root hint: a config that exists and the flags that work, with this root filled in."""
    st.markdown(
        MAKE_A_RUN.format(
            shell_root=shlex.quote(root).replace("`", ""),
            root=root.replace("\\", "\\\\").replace('"', '\\"').replace("`", ""),
        )
    )


# -- errors ----------------------------------------------------------------------------------------


def error_card(run_name: str, error: Exception) -> None:
    """A run that fails to load gets a card naming the file and the problem; never a traceback."""
    if isinstance(error, (RunFormatError, OSError, ValueError, KeyError)):
        text = str(error).strip("'\"")
    else:  # an unexpected failure: the type helps a bug report; the traceback goes to the server log
        text = f"{type(error).__name__}: {error}"
    st.error(f"**{md(run_name)}** could not be loaded: {md(text)}", icon=":material/error:")


def safe(run_name: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), or None after an error card. Streamlit's own control flow passes through."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - one broken run must never take the page down
        if type(e).__module__.startswith("streamlit"):
            raise
        if not isinstance(e, (RunFormatError, OSError, ValueError, KeyError)):
            log.exception("loading %s failed", run_name)
        error_card(run_name, e)
        return None


def unreadable_card(messages: list[str]) -> None:
    """Run folders skipped for their names (not valid UTF-8, control characters): named, never opened."""
    if messages:
        st.warning(
            "Not shown (rename these folders to open them):  \n" + "  \n".join(md(m) for m in messages),
            icon=":material/folder_off:",
        )


def skipped_lines_warning(run_name: str, skipped: list[tuple[int, str]], shown: int = 3) -> None:
    """Metrics lines the reader skipped (torn by a crash mid-append, or malformed): the curves miss them, so
    say how many, where and why, naming the run."""
    if not skipped:
        return
    where = "; ".join(f"byte {offset}: {md(problem)}" for offset, problem in skipped[:shown])
    more = f" (and {len(skipped) - shown} more)" if len(skipped) > shown else ""
    st.warning(
        f"**{md(run_name)}**: {len(skipped)} line{'s' * (len(skipped) != 1)} of metrics.jsonl skipped "
        f"(torn or malformed; the curves leave them out) — {where}{more}",
        icon=":material/rule:",
    )


def skipped_keys_warning(run_name: str, keys) -> None:
    """Metric keys past the reader's bound on distinct keys (runformat.metrics_lines.MetricKeys): not drawn."""
    if keys.skipped:
        names = ", ".join(md(n) for n in keys.skipped_names[:5]) + (" …" if keys.skipped > 5 else "")
        st.warning(
            f"**{md(run_name)}**: {keys.skipped:,} metric key{'s' * (keys.skipped != 1)} skipped: the reader "
            f"keeps the first {keys.limit:,} distinct keys of a run (docs/run-format.md) — {names}",
            icon=":material/rule:",
        )


# -- alarms and verdicts -----------------------------------------------------------------------------


def context(run_name: str):
    """The run's config and metrics, which fit advice to its method and name the config events behind a change."""
    from diagnostics.judge.advice import RunContext

    from . import data

    return RunContext(data.config(run_name), data.metrics(run_name))


def alarms(run_name: str, table: pd.DataFrame) -> list:
    """The run's alarms over its run table, with its config and metrics as context so the suggestions fit
    the method and name the config switch behind a change (e.g. contrastive.negatives_off_step)."""
    from diagnostics.judge.judgement import findings

    return findings(table, context=context(run_name))


def alarm_banner(run_name: str, alarms: list) -> None:
    """One banner per run with collapse or divergence alarms: where the trouble started, the first alarm and
    what to try; the other alarms in an expander below it."""
    if not alarms:
        return
    from diagnostics.judge.judgement import lead as lead_finding

    critical = [a for a in alarms if a.severity == "critical"]
    lead = (critical or alarms)[0]
    dated = lead_finding(alarms)  # the onset Home shows as "since" (diagnostics.judge.judgement.judge_run)
    start = dated.step_started if dated is not None else min(a.step_started for a in alarms)
    kinds = ", ".join(dict.fromkeys(a.kind.replace("_", " ") for a in alarms))
    name = md(run_name)
    if all(a.severity == "info" for a in alarms):  # a collapse that training undid: say so quietly
        st.info(f"**{name}: {kinds} at step {start}, since recovered.** {md(lead.message)}", icon=":material/history:")
        return
    (st.error if critical else st.warning)(
        f"**{name}: {kinds} — trouble since step {start}.** {md(lead.message)}  \n**Try:** {md(lead.suggestion)}",
        icon=":material/crisis_alert:" if critical else ":material/warning:",
    )
    if len(alarms) > 1:  # folded; a suggestion already said above is not said again
        with st.expander(f"All {len(alarms)} alarms for {name}"):
            st.markdown(
                "\n".join(
                    f"- **{a.kind.replace('_', ' ')}** (started step {a.step_started}, detected "
                    f"step {a.step_detected}): {md(a.message)}"
                    + ("" if a.suggestion == lead.suggestion else f" *Try:* {md(a.suggestion)}")
                    for a in alarms
                )
            )


VERDICT_STYLE = {
    "healthy": (st.success, ":material/check_circle:"),
    "degrading": (st.warning, ":material/warning:"),
    "narrowing": (st.warning, ":material/warning:"),
    "contracting": (st.warning, ":material/warning:"),
    "dimensional_collapse": (st.warning, ":material/warning:"),
    "temperature_too_high": (st.warning, ":material/warning:"),
    "temperature_too_low": (st.warning, ":material/warning:"),
    "reconstruction_rising": (st.warning, ":material/warning:"),
    "collapsing": (st.error, ":material/crisis_alert:"),
    "complete_collapse": (st.error, ":material/crisis_alert:"),
    "diverged": (st.error, ":material/crisis_alert:"),
    "unmeasurable": (st.error, ":material/crisis_alert:"),
}


def verdict_card(run_name: str, table: pd.DataFrame, step: int, found: list | None = None) -> None:
    """The collapse verdict at `step` over the run table (judgement.judged: the ladder's verdict, its explanation
    and what to try from the alarms' advice, fitted to the method and naming the config event behind the
    change). `found`: the run's alarms (cards.alarms)."""
    from diagnostics.judge.judgement import judged

    verdict = safe(run_name, judged, table, step, found or [], context(run_name))
    if verdict is None:
        st.info(f"{md(run_name)}: no snapshot at step {step}.")
        return
    show, icon = VERDICT_STYLE.get(verdict["verdict"], (st.info, ":material/info:"))
    text = f"**{md(run_name)}, step {step}.** {md(verdict['explanation'])}"
    if verdict["suggestions"]:
        text += "\n\n**What to try:**\n" + "\n".join(f"- {md(t)}" for t in verdict["suggestions"])
    stale = table.loc[table["step"] == step, "stale"].dropna() if "stale" in table else ()
    if len(stale):  # diagnostics.store.record: numbers of an older record key until the worker has recomputed them
        text += f"\n\n:material/history: *Stale numbers: {md(str(stale.iloc[0]))}.*"
    show(text, icon=icon)


# -- figures -----------------------------------------------------------------------------------------


def embedding_dims(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """{run: embedding width d} from the run tables' `dim` column, where known."""
    return {n: int(t["dim"].iloc[-1]) for n, t in tables.items() if "dim" in t and pd.notna(t["dim"].iloc[-1])}


def chart_grid(figs: list, key: str, columns: int = 2) -> None:
    """Plotly figures in a grid, skipping those with nothing to draw (metrics this run never logged)."""
    figs = [f for f in figs if len(f.data)]
    for i in range(0, len(figs), columns):
        for col, fig in zip(st.columns(columns), figs[i : i + columns]):
            col.plotly_chart(fig, theme="streamlit", key=f"{key}-{i}-{fig.layout.title.text}")
