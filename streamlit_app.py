"""dfd app entry point: `streamlit run streamlit_app.py`.

Only the navigation and the shared sidebar (dataset, run) live here; each page is one script in pages/.
Nothing here imports TensorFlow, so the first page renders fast; the detector loads on first use.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # so `import dfd` and `from pages import _shared` work from any working directory
    sys.path.insert(0, str(ROOT))

from pages import _shared  # noqa: E402

st.set_page_config(page_title="dfd: deepfake detection", page_icon=":material/face_retouching_off:", layout="wide")

PAGES = [
    st.Page(ROOT / "pages" / "explorer.py", title="Data explorer", icon=":material/photo_library:", default=True),
    st.Page(ROOT / "pages" / "training.py", title="Training", icon=":material/model_training:"),
    st.Page(ROOT / "pages" / "evaluation.py", title="Evaluation", icon=":material/fact_check:"),
    st.Page(ROOT / "pages" / "compare.py", title="Compare runs", icon=":material/compare:"),
    st.Page(ROOT / "pages" / "detect.py", title="Detect", icon=":material/search:"),
]

page = st.navigation(PAGES)
_shared.sidebar()
page.run()
