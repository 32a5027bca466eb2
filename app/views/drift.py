"""Drift: a heatmap of the drift metric by signal x region, drill-down into one slice
(overlaid distributions, drift over time, every metric), and the report archive.

The sidebar's shared filters (:func:`app.filters.shared_filters`) choose the regions,
models and arms shown and the END of the drift window (the end of the time range);
the window's length, the reference and the heatmap metric are this page's controls.
Every control, and the drilled-down slice, is kept in the URL
(``?drift_window=7+days&drift_slice=ttft/us-west-2/...``), so a link reproduces the
view.  The fleet's report is read from the archive's saved JSON report of this window
when one answers the question exactly (:mod:`observatory.drift_archive`: what
``observatory run`` computed off the request path; docs/drift.md, "The page at the
large fleet"); for a preset time range (ending at the latest data, which moves with
every collector run) the default view is the newest fresh scheduled report ("drift as
of <its window end>"), with a button that computes the latest window instead; else
drift is computed once for the whole fleet (cached).  Then it is narrowed to the
selection (:func:`app.drift_data.selected`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics import drift as dm
from app import data, drift_data
from app.data import StoreError
from app.filters import TIME_RANGES, URL_STATE, Filters, live, require_selection, shared_filters
from app.ui import md, plotly_text, show_report_file
from observatory import drift_archive
from observatory.drift_engine import OVER_TIME_METRICS, DriftReport, Reference
from observatory.drift_ondemand import Busy, Job, Question
from observatory.drift_report import dist_figure, over_time_figure

WINDOWS = {
    "6 hours": timedelta(hours=6),
    "24 hours": timedelta(hours=24),
    "7 days": timedelta(days=7),
}
DEFAULT_WINDOW = "24 hours"
REFERENCES = {
    "previous 7 days": "7d",
    "previous 14 days": "14d",
    "same window a week earlier": "week-ago",
}
METRICS = {
    "PSI": "psi",
    "Jensen-Shannon distance (log base 2)": "js",
    "Hellinger distance": "hellinger",
    "Wasserstein-1 / reference std": "wasserstein",
}
#: Metrics the drift-over-time chart can draw.
TIME_METRICS = {**METRICS, "KS statistic (lower bound on buckets)": "ks"}
ICON = {"ok": "", "warning": "⚠", "critical": "✖", "insufficient data": "?"}
EXPLAINER = (
    "A slice (signal x region x model x arm) drifts when its PSI crosses the customary "
    "threshold (0.1 warning, 0.25 critical) and also the threshold learned from the "
    "reference cut into window-long chunks (median + 3 robust sigma). Jensen-Shannon "
    "distance uses log base 2 (0-1). p-values are context, never the alarm. "
    "Load-driven signals (GPU utilisation, energy per request) compare with the same "
    "window a week earlier. Accuracy (late labels) counts labels in the window they "
    "arrived in: warning when the 95% interval of the change lies below 0 and accuracy "
    "fell by at least 1 point, critical from 5 points; its heatmap cell shows the drop in "
    "points, coloured so that 1 point matches the chosen metric's warning level."
)


def _url_select(
    where: Any,
    label: str,
    options: Sequence[str],
    key: str,
    index: int = 0,
) -> str:
    """A selectbox kept in the URL (``?<key>=<value>``) starting at ``options[index]``.

    The options are shown as they are (Streamlit keeps the shown text in the URL).
    """
    choice = where.selectbox(
        label,
        list(options),
        index=index,
        key=key,
        **URL_STATE,
    )
    return str(choice if choice is not None else options[index])


def _heatmap(report: DriftReport, metric: str, metric_label: str) -> None:
    """Signal x region, the worst model/arm per cell, on the chosen metric's scale."""
    rule = dm.RULES[metric]
    rows = []
    for s in report.slices:
        r = s.metric(metric)
        value, shown = (r.value if r is not None else math.nan), ""
        if r is None and s.kind == "labels":  # the accuracy drop, on the chosen metric's scale
            own = s.metric(s.alarm)
            if own is not None and math.isfinite(own.value):
                scale = (rule.warning or 0.1) / (dm.RULES[s.alarm].warning or 1.0)
                value, shown = own.value * scale, f"{own.value * 100:.2g} pts"
        rows.append(
            {
                "signal": s.title,
                "region": s.region,
                "value": value,
                "shown": shown,
                "severity": dm.SEVERITY[s.verdict],
                "verdict": s.verdict,
            }
        )
    cells = pd.DataFrame(rows)
    worst = (
        cells.sort_values(["severity", "value"], ascending=False)
        .groupby(["signal", "region"], sort=False)
        .first()
        .reset_index()
    )
    signals = list(dict.fromkeys(s.title for s in report.slices))
    regions = sorted(cells["region"].unique())

    def grid(column: str) -> pd.DataFrame:
        return worst.pivot(index="signal", columns="region", values=column).reindex(
            index=signals, columns=regions
        )

    z, verd, shown_cells = grid("value"), grid("verdict"), grid("shown")
    if z.isna().all().all():  # e.g. a fresh store: no reference data before the window yet
        st.info(
            f"No slice has a {md(metric_label)} value yet: each needs data in both the "
            "reference and the current window (a store younger than the reference window "
            "has none). Choose a shorter window, another reference or another metric, or "
            "wait for more data; the slices below say what each one lacks."
        )
        return
    zmax = max(rule.critical or (rule.warning or 0.1) * 2.5, 0.05)
    text = [
        [
            ""
            if pd.isna(v)
            else f"{shown_cells.iloc[i, j] or format(v, '.3g')} "
            f"{ICON.get(str(verd.iloc[i, j]), '')}"
            for j, v in enumerate(row)
        ]
        for i, row in enumerate(z.to_numpy())
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(),
            x=[plotly_text(r) for r in regions],
            y=[plotly_text(s) for s in signals],
            text=text,
            texttemplate="%{text}",
            zmin=0,
            zmax=zmax,
            colorscale=[[0, "#f7fbff"], [0.4, "#fdd49e"], [1, "#d7301f"]],
            colorbar={"title": {"text": plotly_text(metric_label)}},
            hovertemplate="%{y} in %{x}<br>worst model/arm: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        height=90 + 45 * len(signals),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title=plotly_text(f"{metric_label}, worst model/arm per cell (✖ critical, ⚠ warning)"),
        yaxis={"autorange": "reversed"},
    )
    st.plotly_chart(fig, width="stretch", key="drift_heatmap")


def _drilldown(report: DriftReport, metric: str) -> None:
    """One slice: its metrics, overlaid distributions and drift over time (URL: ``drift_slice``)."""
    st.subheader("Drill-down")
    keys = [s.key for s in report.slices]
    drifted = [s.key for s in report.drifted]
    choice = _url_select(
        st,
        "Signal / region / model / arm",
        keys,
        key="drift_slice",
        index=keys.index(drifted[0]) if drifted else 0,  # the worst drifted slice
    )
    chosen = next((s for s in report.slices if s.key == choice), report.slices[0])
    st.markdown(
        f"**{md(chosen.verdict)}** against {md(chosen.reference)}"
        + (f"; fired: {md(chosen.fired)}" if chosen.fired else "")
        + ("; re-binned (bucket layouts differ)" if chosen.rebinned else "")
    )
    metrics_table = pd.DataFrame(
        [
            {
                "metric": r.label,
                "value": r.value,
                "threshold": r.threshold,
                "learned": r.learned,
                "verdict": r.verdict,
                "fired / note": r.fired or r.note,
                "n reference": r.n_ref,
                "n current": r.n_cur,
            }
            for r in chosen.results
        ]
    )
    st.dataframe(metrics_table, hide_index=True, width="stretch")
    left, right = st.columns(2)
    if chosen.distribution:
        left.plotly_chart(dist_figure(chosen), width="stretch", key="drift-dist")
    time_metric = None
    if chosen.kind == "labels":
        right.caption(
            "Accuracy per label-arrival window (as long as the window) with its 95% Wilson "
            "interval, against the reference accuracy."
        )
    elif len(chosen.over_time):
        # Default: the first metric that fired, else the heatmap's metric.
        fired = [m for m in chosen.fired_metrics if m in OVER_TIME_METRICS]
        first = fired[0] if fired else (metric if metric in OVER_TIME_METRICS else chosen.alarm)
        names = list(TIME_METRICS)
        time_label = right.selectbox(
            "Over-time metric",
            names,
            index=names.index(next(k for k, v in TIME_METRICS.items() if v == first)),
            key=f"drift-time-metric-{chosen.key}",
        )
        time_metric = TIME_METRICS[time_label]
    if len(chosen.over_time):
        right.plotly_chart(
            over_time_figure(chosen, report, time_metric), width="stretch", key="drift-time"
        )
    else:
        right.caption("No drift-over-time curve for this reference.")
    with st.expander("All slices"):
        st.dataframe(report.summary(), hide_index=True, width="stretch")


def _archive() -> None:
    """The reports ``observatory report drift`` / ``observatory run`` wrote, one opened."""
    st.subheader("Report archive")
    folder = drift_data.archive_path()
    try:
        reports = drift_data.archive()
    except OSError as exc:
        st.error(f"Could not read the drift report folder {md(folder)}: {md(exc)}")
        return
    if not reports:
        st.info(
            f"No reports in {md(folder)} yet. Write one with `observatory report drift --out "
            f"{md(folder)}` or schedule them with `observatory run` (docs/drift.md); "
            "`OBSERVATORY_DRIFT_REPORTS` names another folder."
        )
        return
    st.dataframe(drift_data.archive_table(reports), hide_index=True, width="stretch")
    name = _url_select(st, "Open a report", [r["name"] for r in reports], key="drift_report")
    picked = next(r for r in reports if r["name"] == name)
    show_report_file(picked["path"], picked["format"], key="drift_report_file")


def _exact(window: timedelta, reference: str, end: datetime) -> tuple[DriftReport, str] | None:
    """The archive's report of exactly this window when it answers the question
    (:func:`observatory.drift_archive.covers`), with the caption's source line."""
    path = drift_archive.candidate_path(drift_data.archive_path(), window, end)
    saved = drift_data.saved_report(path) if path is not None else None
    if saved is None or path is None:
        return None
    ref = Reference.parse(reference)
    if not drift_archive.covers(
        saved, data.store_path(), window, ref, end, store=drift_data.store()
    ):
        return None
    return saved, (
        f"Read from the saved report {md(path.name)} (computed "
        f"{saved.generated_utc:%Y-%m-%d %H:%M} UTC; no row it read has changed since)."
    )


def _scheduled(
    window: timedelta, reference: str, until: datetime
) -> tuple[Path, DriftReport] | None:
    """The newest fresh scheduled report of this question ending at or before ``until``
    (:func:`observatory.drift_archive.latest_fresh`), None without one."""
    path = drift_archive.latest_fresh(
        drift_data.archive_path(),
        data.store_path(),
        window,
        Reference.parse(reference),
        until,
        store=drift_data.store(),
    )
    saved = drift_data.saved_report(path) if path is not None else None
    return (path, saved) if path is not None and saved is not None else None


def _compute_now_key(window: timedelta, reference: str) -> str:
    return f"drift-compute-now-{int(window.total_seconds())}-{reference}"


#: Seconds between the page's checks of a running on-demand computation.
POLL_S = 5


@st.fragment(run_every=POLL_S)
def _wait_for(job: Job) -> None:
    """While ``job`` runs: its status, refreshed every :data:`POLL_S` s; once it has
    finished, the page runs again and picks up the result (or asks again, when it was
    another question's run that held the worker)."""
    if not job.running:
        st.rerun(scope="app")
    status = job.status()
    st.info(f"**{md(status[0].upper() + status[1:])}**.")


def _on_demand(
    question: Question, latest: bool, expected: float | None, after: datetime | None = None
) -> Job | None:
    """The on-demand run of ``question`` for this session: found (running, or finished
    and still fresh), or asked for (:mod:`observatory.drift_ondemand`: one run per
    question for every session of the server, one run at a time).  What is not ready
    yet is said on the page, with a check every :data:`POLL_S` s; a failed run's error
    too, with a button to try again.  Returns the job when it holds a report, else None.
    ``after``: a run whose window ends at or before it does not answer (the scheduled
    report shown instead is as new).
    """
    worker = drift_data.on_demand()
    found = worker.find(question, latest=latest, fresh=drift_data.fresh)
    if found is not None and after is not None and found.question.end <= after:
        found = None
    asked = found if found is not None else worker.ask(question, expected)
    if isinstance(asked, Busy):
        st.warning(
            f"Another drift computation holds the server's worker ({md(asked.running.status())}); "
            f"one runs at a time, to bound memory. Drift for {md(question.describe())} "
            f"starts when it has finished (the page checks every {POLL_S} s)."
        )
        _wait_for(asked.running)
        return None
    if asked.error is not None:
        st.error(f"Could not compute drift for {md(question.describe())}: {md(asked.error)}")
        if st.button("Try again", key="drift-on-demand-retry"):
            worker.forget(asked.question)
            st.rerun()
        return None
    if asked.running:
        _wait_for(asked)
        st.caption(
            "Computed in the background, once for every session asking the same question; "
            "the page shows the result when it is done."
        )
        return None
    return asked


def _fleet(window: timedelta, reference: str, f: Filters) -> tuple[DriftReport, str] | None:
    """Drift of the whole fleet and where it came from (shown in the caption), or None
    while it is being computed (the page says so).

    In this order: the archive's JSON report of exactly this window when it answers
    the question; for a preset time range (which ends at the latest data, moving with
    every collector run), the newest fresh scheduled report of the question, shown
    "as of" its window end with a button that computes the latest window instead;
    else computed on demand in the server's background worker (:func:`_on_demand`),
    the scheduled report shown meanwhile if there is one.  A saved report's values
    are those ``compute_drift`` gives for its window (docs/drift.md, "The page at the
    large fleet").

    Raises:
        StoreError, ValueError: reading the archive or the store failed; a bad reference.
    """
    exact = _exact(window, reference, f.end)
    if exact is not None:
        return exact
    key = _compute_now_key(window, reference)
    preset = f.range_label in TIME_RANGES
    found = _scheduled(window, reference, f.end) if preset else None
    question = drift_data.question(window, reference, f.end)
    cost = found[1].settings.get("compute_s") if found is not None else None
    expected = float(cost) if cost else drift_data.on_demand().last_seconds(question.store)
    if found is not None and not st.session_state.get(key):
        path, saved = found
        st.info(
            f"**Drift as of {saved.window_end:%Y-%m-%d %H:%M} UTC**, scheduled report "
            f"{md(path.name)} (computed {saved.generated_utc:%Y-%m-%d %H:%M} UTC); data "
            f"since then (up to {f.end:%Y-%m-%d %H:%M} UTC) not included."
        )
        took = "the scheduled report" if cost else "the last on-demand run"
        cost_text = f"about {expected:.0f} s, as {took} took" if expected else ""
        if not st.button(
            "Compute now for the latest data",
            key=f"{key}-button",
            help=f"Computes drift for the window ending {f.end:%Y-%m-%d %H:%M} UTC over "
            f"the whole fleet in the background ({cost_text or 'duration unknown'}); "
            "this report stays shown until it is done.",
        ):
            return saved, (
                f"Read from the scheduled report {md(path.name)}: no row it read has "
                "changed since it was computed."
            )
        st.session_state[key] = True
    job = _on_demand(question, preset, expected, found[1].window_end if found else None)
    if found is not None and st.button("Back to the scheduled report", key=f"{key}-back"):
        st.session_state[key] = False
        st.rerun(scope="fragment")
    if job is not None and job.report is not None:
        how = (
            f"on demand in {job.seconds:.0f} s, finished {job.finished_utc:%H:%M} UTC"
            if job.finished_utc is not None
            else "on demand"
        )
        return job.report, (
            f"Computed now for the latest data ({how})."
            if found is not None
            else f"Computed now ({how}; no saved report in the archive answers this window)."
        )
    if found is not None:
        path, saved = found
        return saved, (
            f"Read from the scheduled report {md(path.name)} while drift for the latest "
            "data is computed."
        )
    return None


def render(f: Filters) -> None:
    """The page's body (a fragment: reruns on the live-refresh interval, Off by default)."""
    st.caption(md(f.caption()))
    c1, c2, c3 = st.columns(3)
    window_label = _url_select(
        c1, "Window", list(WINDOWS), key="drift_window", index=list(WINDOWS).index(DEFAULT_WINDOW)
    )
    reference_label = _url_select(c2, "Reference", list(REFERENCES), key="drift_reference")
    metric_label = _url_select(c3, "Heatmap metric", list(METRICS), key="drift_metric")
    metric = METRICS[metric_label]
    try:
        answer = _fleet(WINDOWS[window_label], REFERENCES[reference_label], f)
    except (StoreError, ValueError) as exc:
        st.error(f"Could not compute drift: {md(exc)}")
        return
    if answer is None:  # being computed: the page said so
        _archive()
        return
    fleet, source = answer
    report = drift_data.selected(fleet, f)
    box = {"critical": st.error, "warning": st.warning, "ok": st.success}.get(
        report.verdict, st.info
    )
    box(
        f"**{md(report.verdict.upper())}**: {md(report.summary_line())}. Window "
        f"{report.window_start:%Y-%m-%d %H:%M} .. {report.window_end:%Y-%m-%d %H:%M} UTC."
    )
    st.caption(
        f"The drift window is the {md(window_label)} ending at "
        + (
            "the end of the sidebar's time range"
            if report.window_end == f.end.replace(second=0, microsecond=0)
            else "the shown report's window end, before the sidebar's"
        )
        + f" ({report.window_end:%Y-%m-%d %H:%M} UTC); its length is this page's "
        "Window control, not the range's. Regions, models and arms follow the sidebar "
        f"({len(report.slices)} of {len(fleet.slices)} slices). {source} " + EXPLAINER
    )
    if report.slices:
        _heatmap(report, metric, metric_label)
        _drilldown(report, metric)
    else:
        st.info(
            "No signal has data in this window for the selected regions, models and arms. "
            "Choose a longer window, another time range or other filters."
        )
    _archive()


st.title("Drift")
filters = shared_filters()
require_selection(filters)
live(render, filters, heavy=True)
