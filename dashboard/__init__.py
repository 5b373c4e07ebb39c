"""Streamlit widgets and cached loaders shared by the dashboard pages (pages/ hold layout only)."""
