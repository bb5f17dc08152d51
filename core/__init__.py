"""Vision Lab's computational core: pure Python + PyTorch, no Streamlit."""
