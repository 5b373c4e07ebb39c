"""Home: every run under the root, its health at a glance; pick runs here for the other pages."""
import streamlit as st

from dashboard import common

st.title("Runs")
root = common.runs_root()
table, errors = common.overview()

if table.empty and not errors:
    st.info(f"No runs under `{root}`.", icon=":material/folder_off:")
    st.markdown(common.MAKE_A_RUN)
    st.stop()

for name, error in errors.items():
    common.error_card(name, error)

counts = table["status"].value_counts()
cols = st.columns(5)
cols[0].metric("Runs", len(table) + len(errors))
for col, status in zip(cols[1:], ("running", "stalled", "finished", "crashed")):
    col.metric(status.capitalize(), int(counts.get(status, 0)))


def _pick_selected_rows() -> None:
    rows = st.session_state["home_table"].selection.rows
    st.session_state["runs"] = [table["run"].iloc[i] for i in rows]


selected = set(common.selected_runs())
st.dataframe(
    table, key="home_table", hide_index=True, on_select=_pick_selected_rows, selection_mode="multi-row",
    selection_default={"selection": {"rows": [i for i, n in enumerate(table["run"]) if n in selected]}},
    column_config={
        "run": st.column_config.TextColumn("run", pinned=True),
        "status": st.column_config.TextColumn("status", help="stalled: no heartbeat for longer than the "
                                                             "writer's stall_after_s (killed or hung)"),
        "heartbeat": st.column_config.TextColumn("heartbeat", help="last sign of life (finished runs: when)"),
        "last step": st.column_config.NumberColumn("last step", format="%d"),
        "alignment": st.column_config.NumberColumn("alignment", format="%.3f",
                                                   help="E‖x̂−x̂⁺‖² at the latest snapshot; lower is better"),
        "uniformity": st.column_config.NumberColumn("uniformity", format="%.3f",
                                                    help="log E exp(−2‖x̂−ŷ‖²); lower is better"),
        "effective rank": st.column_config.NumberColumn("effective rank", format="%.1f"),
        "verdict": st.column_config.TextColumn("collapse verdict"),
        "description": st.column_config.TextColumn("description", width="large"),
        "notes": st.column_config.TextColumn("team notes", width="medium"),
    })
st.caption("Select rows to pick runs for Live, Geometry, Collapse and the other pages; the selection follows "
           "you (and the page link). New runs appear on the next refresh.")
st.button("Refresh", icon=":material/refresh:")
