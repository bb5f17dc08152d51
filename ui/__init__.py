"""Streamlit-aware helpers: the only place outside pages that imports Streamlit."""
