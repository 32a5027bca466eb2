"""Observatory's dashboard: ``streamlit run app/main.py`` (``observatory serve`` does it).

Pages are files in ``app/views/``; add one by adding a file there and a line to
:data:`PAGES`.  The folder is not called ``pages/``: Streamlit would list such a
folder on its own, beside this navigation.  Shared sidebar filters live in
:mod:`app.filters`; the optional login in :mod:`app.login`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.login import require_login

PAGES_DIR = Path(__file__).resolve().parent / "views"

#: (file in app/views, title, Material icon); the first one is the default page.
PAGES: list[tuple[str, str, str]] = [
    ("overview.py", "Overview", ":material/public:"),
    ("slos.py", "SLOs", ":material/target:"),
    ("latency.py", "Latency", ":material/timer:"),
    ("gpus_energy.py", "GPUs & Energy", ":material/bolt:"),
    ("cost_carbon.py", "Cost & Carbon", ":material/eco:"),
    ("regressions.py", "Regressions", ":material/trending_up:"),
    ("experiments.py", "Experiments", ":material/science:"),
    ("drift.py", "Drift", ":material/query_stats:"),
    ("reports.py", "Reports", ":material/description:"),
    ("sql.py", "SQL", ":material/database:"),
    ("collection_health.py", "Collection health", ":material/sync:"),
]

st.set_page_config(page_title="Observatory", page_icon=":material/monitoring:", layout="wide")
require_login()
navigation = st.navigation(
    [
        st.Page(PAGES_DIR / file, title=title, icon=icon, default=(i == 0))
        for i, (file, title, icon) in enumerate(PAGES)
    ]
)
navigation.run()
