"""ContrastScope dashboard: `streamlit run app.py` (sample_runs/), or `streamlit run app.py -- --runs DIR`,
or CONTRASTSCOPE_RUNS=DIR. The runs root is never taken from a text box."""

import streamlit as st

from dashboard import data, picker, worker_process

# An emoji, not ":material/...": a Material icon as the tab icon makes the browser fetch it from
# fonts.gstatic.com, and the dashboard makes no request to any host but its own.
st.set_page_config(page_title="ContrastScope", page_icon="🔭", layout="wide")

pages = {
    "Monitor": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True, url_path="home"),
        st.Page("pages/live.py", title="Live", icon=":material/monitoring:", url_path="live"),
        st.Page("pages/geometry.py", title="Geometry", icon=":material/explore:", url_path="geometry"),
        st.Page("pages/collapse.py", title="Collapse", icon=":material/compress:", url_path="collapse"),
    ],
    "Explore": [
        st.Page("pages/projections.py", title="Projections", icon=":material/scatter_plot:", url_path="projections"),
        st.Page("pages/crossmodal.py", title="Cross-modal", icon=":material/join_inner:", url_path="crossmodal"),
    ],
    "Review": [
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
        st.Page("pages/report.py", title="Report", icon=":material/description:", url_path="report"),
    ],
}
page = st.navigation(pages)
picker.sidebar_run_picker()
page.run()
# After the page has drawn, so the first page a user opens does not share the CPU with numba's compiler.
worker_process.start_background_work(data.runs_root())
