"""Home: every run under the root, its health at a glance; pick runs here for the other pages. The table
refreshes itself, so a run that stops beating turns "stalled" and a new run appears without a reload."""

import streamlit as st

from dashboard import cards, data, home_refresh, overview, pending, picker, table_view
from dashboard.text import md

REFRESH_S = 5
NO_GROUP = "(no grouping)"
WRAPPED_ROW = 84  # px: four lines of text
VERDICT_HELP = (
    "The run's state on the verdict ladder (healthy, degrading, narrowing, contracting, collapsing, "
    "dimensional / complete collapse), or a cause the geometry does not show (temperature too high / low, "
    "reconstruction rising), and the snapshot step it has held since: what the Collapse page says at the latest step"
)
SNAPSHOT_VERDICT_HELP = "The latest snapshot judged on its own, without the run's history"
STATUS_HELP = (
    "running (green) · stalled (orange): no heartbeat for longer than the writer's stall_after_s, "
    "killed or hung · finished (blue) · crashed (red)"
)

st.title("Runs")
shown = data.run_names()
cards.unreadable_card(data.unreadable_runs())
if not shown:
    picker.wait_for_first_run()


def _pick_selected_rows() -> None:
    table = st.session_state["home_rows"]
    rows = st.session_state["home_table"].selection.rows
    hidden = [n for n in picker.selected_runs() if n not in table]  # filtered out of view: still picked
    st.session_state[picker.RUNS_KEY] = hidden + [table[i] for i in rows if i < len(table)]
    st.session_state["home_picked"] = True  # the sidebar picker sits outside this fragment: rerun the app


@st.fragment  # redrawn by home_refresh.watch when what it shows changed, and by its own widgets
def runs_table() -> None:
    picker.rerun_when_runs_change(shown)
    if st.session_state.pop("home_picked", False):
        st.rerun(scope="app")
    before = home_refresh.fingerprint()
    pending.worker_panel()
    table, errors = overview.overview()
    home_refresh.drawn(before, live=bool(table["status"].isin(["running", "stalled"]).any()))
    for name, error in errors.items():
        cards.error_card(name, error)
    counts = table["status"].value_counts()
    cols = st.columns(5)
    cols[0].metric("Runs", len(table) + len(errors))
    for col, status in zip(cols[1:], ("running", "stalled", "finished", "crashed")):
        col.metric(status.capitalize(), int(counts.get(status, 0)))
    configs = overview.config_table(list(table["run"]))
    search, columns, group_by, wrap = st.columns([2, 3, 2, 1.2], vertical_alignment="bottom")
    query = search.text_input(
        "Search",
        key="home_search",
        bind="query-params",
        persist_state="session",
        placeholder="words in name, status, verdict, notes, config",
        help="Rows containing every word (any case), in any shown column.",
    )
    extra = [c for c in overview.COLUMNS if c not in overview.KEY_COLUMNS]
    keys = table_view.column_picker(
        extra + list(configs.columns),
        "home_columns",
        overview.SHOWN_COLUMNS,
        "More columns (and config keys)",
        where=columns,
    )
    group = group_by.selectbox(
        "Group by",
        [NO_GROUP, *configs.columns],
        key="home_group",
        bind="query-params",
        persist_state="session",
        help="One row per value: mean ± std of the key metrics across its runs (seeds of one setting)",
    )
    wrapped = wrap.toggle(
        "Wrap",
        key="home_wrap",
        bind="query-params",
        persist_state="session",
        help="Taller rows, so descriptions and notes show in full",
    )
    rows = overview.search(overview.with_config(table, configs, [k for k in keys if k not in extra]), query)
    st.session_state["home_rows"] = list(rows["run"])
    selected = set(picker.selected_runs())
    styled = table_view.styled(rows, overview.FORMATS)  # "—" while a snapshot is measured, never None
    st.dataframe(
        styled.map(_status_style, subset=["status"]).map(_verdict_style, subset=["verdict"]),
        key="home_table",
        hide_index=True,
        column_order=table_view.ordered(rows, overview.KEY_COLUMNS, keys),
        on_select=_pick_selected_rows,
        selection_mode="multi-row",
        row_height=WRAPPED_ROW if wrapped else None,
        height=min(40 + WRAPPED_ROW * len(rows), 900) if wrapped else table_view.fit_height(len(rows)),
        selection_default={"selection": {"rows": [i for i, n in enumerate(rows["run"]) if n in selected]}},
        column_config={
            "run": st.column_config.TextColumn("run", pinned=True, width="medium"),
            "heartbeat": st.column_config.TextColumn("heartbeat", help="last sign of life (finished runs: when)"),
            "last step": st.column_config.NumberColumn("last step"),
            "alignment": st.column_config.NumberColumn(
                "alignment", help="E‖x̂−x̂⁺‖² at the latest snapshot; lower is better; — while it is being measured"
            ),
            "uniformity": st.column_config.NumberColumn("uniformity", help="log E exp(−2‖x̂−ŷ‖²); lower is better"),
            "effective rank": st.column_config.NumberColumn("effective rank", help="dimensions (RankMe)"),
            "verdict": st.column_config.TextColumn("run verdict", width="medium", help=VERDICT_HELP),
            "snapshot verdict": st.column_config.TextColumn("snapshot verdict", help=SNAPSHOT_VERDICT_HELP),
            "status": st.column_config.TextColumn("status", width="small", help=STATUS_HELP),
            "description": st.column_config.TextColumn("description", width="large"),
            "notes": st.column_config.TextColumn("team notes", width="large"),
        },
    )
    if len(rows) < len(table):
        st.caption(f"{len(rows)} of {len(table)} runs match the search.")
    if group != NO_GROUP:
        st.subheader("Grouped by " + md(group), anchor=False)  # no slug of a config key in an href
        st.dataframe(
            overview.grouped(rows, configs, group),
            hide_index=True,
            key="home_grouped",
            row_height=WRAPPED_ROW if wrapped else None,
        )


def _verdict_style(verdict: str) -> str:
    colour = overview.verdict_colour(verdict)
    return f"color: {colour}; font-weight: 600" if colour else ""


def _status_style(status: str) -> str:
    colour = overview.STATUS_COLOURS.get(status)
    return f"color: {colour}; font-weight: 600" if colour else ""


runs_table()
home_refresh.watch(REFRESH_S)
st.caption(
    f"Select rows to pick runs for Live, Geometry, Collapse and the other pages; the selection follows "
    f"you (and the page link). The table refreshes every {REFRESH_S} s: new runs appear and a run whose "
    "heartbeat stops turns stalled by themselves."
)
