"""Experiments: A/B arms compared on quality, latency, cost, energy and carbon.

The sample-ratio check comes first: a failed check marks every result below as
untrustworthy.  Then the verdict, the metrics table (lift, interval, p-value and
the corrected one, chance to win, the always-valid interval), the per-region
breakdown, the cumulative effect over time with its always-valid interval, and
the efficiency frontier.  Experiments come from the file named by
``OBSERVATORY_EXPERIMENTS`` and from the arm label of models with two or more arms.

Everything is read from the experiments' summed moments
(:mod:`observatory.experiment_state`: kept fresh by ``observatory experiment refresh``,
off the request path; only blocks whose source partitions changed are read again
here), never from the per-minute replicates: the same statistics, in a time that does
not grow with the minutes of the window (docs/experiments.md, "Performance").
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from analytics.experiment_metrics import ALL_REGIONS, METRICS
from app import data
from app.experiment_charts import cumulative_chart, frontier_chart, region_chart
from app.filters import url_choice
from app.ui import md, require_store
from observatory import experiment_engine as ee
from observatory import experiment_state as es
from observatory.config import ConfigError
from observatory.experiment_files import open_store
from observatory.experiment_listing import arms_frame
from observatory.experiment_report import (
    METHOD_NOTES,
    fmt_ci,
    fmt_lift,
    fmt_p,
    fmt_value,
    meta_lines,
    metrics_table,
    srm_text,
)
from observatory.experiments_config import ENV_FILE, Experiments, load_experiments

#: A collector writes today's partitions every minute, which makes the last block of
#: every experiment stale; computed less than this ago, the page takes it as saved
#: (``observatory experiment refresh`` on the scheduler keeps it younger).
MAX_STALE_S = 300.0


def _experiments() -> tuple[Experiments | None, list[str]]:
    path = os.environ.get(ENV_FILE, "").strip()
    if not path:
        return None, []
    try:
        return load_experiments(path), []
    except ConfigError as exc:
        return None, exc.messages


@st.cache_resource(max_entries=2, show_spinner=False)
def _report(
    store: str, name: str, file_key: tuple[str, float], data_key: str, _item: ee.Listed,
    _experiments: Experiments | None,
) -> ee.Report | None:  # fmt: skip
    """The analysis of one experiment, kept while the data and the file are unchanged."""
    del name, file_key, data_key  # cache key only
    carbon = _experiments.carbon if _experiments else None
    return es.run_fast(open_store(store), _item, carbon, MAX_STALE_S)


st.title("Experiments")
info = require_store()
experiments, problems = _experiments()
for line in problems:
    st.error(f"Experiments file: {md(line)}")

try:
    arms = arms_frame(open_store(info.path))
    listed = ee.list_experiments(data.query, experiments, arms)
except data.StoreError as exc:
    st.error(f"Could not read the store: {md(exc)}")
    st.stop()
if not listed:
    st.info(
        "No experiments: no model in the store has two or more arms (the `arm` label, "
        "e.g. a model version), and no experiments file defines one. Point "
        f"`{ENV_FILE}` at a file like `examples/experiments.yaml`."
    )
    st.stop()

names = [i.spec.name for i in listed]
name = url_choice("Experiment", names, key="experiment")  # ?experiment=... in the URL
item = listed[names.index(name)]
if not item.has_data:
    st.warning(
        f"The store holds no requests for every arm of {md(item.spec.name)} "
        f"({md(', '.join(item.spec.arms))} of {md(item.spec.model)})."
    )
    st.stop()

file_path = os.environ.get(ENV_FILE, "").strip()
file_key = (
    file_path,
    Path(file_path).stat().st_mtime if file_path and Path(file_path).exists() else 0.0,
)
data_key = f"{item.first_ts}|{item.last_ts}|{sorted(item.requests.items())}"
with st.spinner("Analysing the experiment…"):
    try:
        rep = _report(str(info.path.resolve()), name, file_key, data_key, item, experiments)
    except data.StoreError as exc:
        st.error(f"Could not read the store: {md(exc)}")
        st.stop()
if rep is None:
    st.warning(f"No data in the window of {md(item.spec.name)}.")
    st.stop()
analysis = rep.analysis
settings = analysis.settings

# 1. Sample ratio: first, and prominent.
flagged, srm_line = srm_text(rep)
if flagged:
    st.error(md(srm_line), icon=":material/warning:")
else:
    st.success(md(srm_line), icon=":material/check_circle:")
st.caption(" · ".join(md(line) for line in meta_lines(rep)) + f" · source: {md(item.source)}")
if item.last_ts is not None and rep.data.end < item.last_ts:
    st.caption(
        f"Statistics up to {rep.data.end:%Y-%m-%d %H:%M} UTC: the minutes written since are "
        f"included within {MAX_STALE_S / 60:.0f} minutes, or at once by "
        "`observatory experiment refresh`."
    )

# 2. Verdict and warnings.
for treatment, (decision, text) in analysis.verdicts.items():
    box = {"ship": st.success, "untrustworthy": st.error, "do not ship": st.error}.get(
        decision, st.info
    )
    box(f"**{md(treatment)}: {md(decision)}.** {md(text)}")
for warning in analysis.warnings:
    st.warning(md(warning))

# 3. Metrics table.
st.subheader("Metrics (all regions)")
header, rows = metrics_table(analysis.results, settings.engine)
st.dataframe(pd.DataFrame(rows, columns=header), hide_index=True, key="metrics_table")
st.caption(
    f"Lift: relative, treatment vs control; p and 95% CI: fixed-horizon Welch; corrected p: "
    f"{settings.correction} across metrics x arms; chance to win: flat-prior Bayesian; "
    f"always-valid CI: asymptotic confidence sequence (N* = {settings.tuning:g}). "
    "Units treated as independent: per-minute replicates (one arm, one region, one minute)."
)

# 4. Per-region breakdown.
st.subheader("Per region")
metric_names = [n for n, _ in settings.roles()]
labels = {n: METRICS[n].label for n in metric_names}
region_metric = st.selectbox(
    "Metric", metric_names, format_func=lambda n: labels[n], key="region_metric"
)
treatment = settings.treatments[0]
per_region = {
    ALL_REGIONS: next(
        r for r in analysis.results if r.metric.name == region_metric and r.treatment == treatment
    )
}
for region, results in analysis.by_region.items():
    per_region[region] = next(
        r for r in results if r.metric.name == region_metric and r.treatment == treatment
    )
st.plotly_chart(region_chart(per_region), key="region_chart")
m = METRICS[region_metric]


def _srm_p(region: str) -> str:
    srm = analysis.srm if region == ALL_REGIONS else analysis.srm_by_region.get(region)
    return fmt_p(srm.p_value) if srm else "—"


st.dataframe(
    pd.DataFrame(
        [
            {
                "Region": region,
                "Control": fmt_value(m, r.control_value.value),
                "Treatment": fmt_value(m, r.treatment_value.value),
                "Lift": r.guard or fmt_lift(r.fixed),
                "95% CI": "" if r.guard else fmt_ci(r.fixed),
                "Corrected p": fmt_p(r.adjusted_p),
                "SRM p": _srm_p(region),
            }
            for region, r in per_region.items()
        ]
    ),
    hide_index=True,
    key="region_table",
)

# 5. Cumulative effect over time.
st.subheader("Cumulative effect over time")
over_time = [n for n in metric_names if METRICS[n].kind != "quantile"]
if over_time:
    default = over_time.index(rep.cumulative_metric) if rep.cumulative_metric in over_time else 0
    cum_metric = st.selectbox(
        "Metric over time", over_time, index=default, format_func=lambda n: labels[n],
        key="cumulative_metric",
    )  # fmt: skip
    cum = rep.cumulative_for(cum_metric)
    st.plotly_chart(cumulative_chart(cum, METRICS[cum_metric].label), key="cumulative_chart")
    st.caption(
        "The fixed-horizon interval is valid only at a horizon fixed in advance; looking at "
        "it every day and stopping when it excludes 0 inflates false positives. The "
        "always-valid interval may be looked at any time."
    )

# 6. Efficiency frontier.
st.subheader("Efficiency frontier")
left, right = st.columns(2)
left.plotly_chart(
    frontier_chart(rep.frontier, METRICS["cost_per_1k"], METRICS["accuracy"]),
    key="frontier_cost",
)
right.plotly_chart(
    frontier_chart(rep.frontier, METRICS["energy_per_request"], METRICS["accuracy"]),
    key="frontier_energy",
)

with st.expander("Method"):
    for note in METHOD_NOTES:
        st.markdown(f"- {md(note)}")
