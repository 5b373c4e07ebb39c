"""Streamlit widgets and cached loaders shared by the dashboard pages (pages/ hold layout only)."""


def _use_app_navigation() -> None:
    """Route every first request through app.py's st.navigation.

    Streamlit treats a folder named `pages/` beside the entry point as an old-style multipage app until some
    session has run st.navigation. Until then a shared link such as /compare?runs=a would run
    pages/compare.py on its own, without the sidebar or the URL-bound run picker. The first time any page
    imports this package we switch that mode off and rerun, so app.py's navigation serves the link.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # a Streamlit without these internals has no old-style mode to escape
        return
    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        import streamlit as st

        PagesManager.uses_pages_directory = False
        st.rerun()


_use_app_navigation()
