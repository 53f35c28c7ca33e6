"""dfd app entry point: `streamlit run streamlit_app.py`.

Only the navigation and the shared sidebar (dataset, run) live here; each page is one script in app_pages/
Nothing here imports TensorFlow, so the first page renders fast; the detector loads on first use.

The pages live in app_pages/, not pages/: Streamlit treats a pages/ folder next to the entry point as a
version-1 multipage app, and then runs a page script on its own (without this file's sidebar) for the first
request of a server to a page URL and on every AppTest rerun.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # so `import dfd` and `from app_pages import _shared` work from any working directory
    sys.path.insert(0, str(ROOT))

from app_pages import _shared  # noqa: E402

st.set_page_config(page_title="dfd: deepfake detection", page_icon=":material/face_retouching_off:", layout="wide")

PAGES = [
    st.Page(ROOT / "app_pages" / "explorer.py", title="Data explorer", icon=":material/photo_library:", default=True),
    st.Page(ROOT / "app_pages" / "training.py", title="Training", icon=":material/model_training:"),
    st.Page(ROOT / "app_pages" / "evaluation.py", title="Evaluation", icon=":material/fact_check:"),
    st.Page(ROOT / "app_pages" / "compare.py", title="Compare runs", icon=":material/compare:"),
    st.Page(ROOT / "app_pages" / "detect.py", title="Detect", icon=":material/search:"),
]

page = st.navigation(PAGES)
_shared.sidebar()
page.run()
