"""SQL: read-only ad hoc queries over the store's views, in the sandbox (docs/sql.md).

The query text, result values, column names and DuckDB's messages are untrusted:
they are shown with ``st.code``, ``st.dataframe`` and plain text, escaped for
Markdown (:func:`app.ui.md`) and for Plotly labels (:func:`app.ui.plotly_text`),
never as HTML.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
import streamlit as st

from app import sql_access
from app.ui import md, plotly_text, require_store
from collectors.signals import SIGNALS

HISTORY_KEY = "sql_history"
RESULT_KEY = "sql_result"
TEXT_KEY = "sql_text"
EXAMPLE_KEY = "sql_example"
PAST_KEY = "sql_past"
PICK = "(choose)"
MAX_SERIES = 20
DEFAULT_QUERY = (
    "SELECT region, sum(requests) AS requests, sum(errors) AS errors,\n"
    "       sum(errors) / nullif(sum(requests), 0) AS error_ratio\n"
    "FROM requests_by_region_minute\nGROUP BY region\nORDER BY error_ratio DESC"
)


def _load_example() -> None:
    title = st.session_state.get(EXAMPLE_KEY)
    for example in sql_access.examples():
        if example.title == title:
            st.session_state[TEXT_KEY] = example.sql


def _load_past() -> None:
    label = st.session_state.get(PAST_KEY)
    for i, item in enumerate(reversed(st.session_state.get(HISTORY_KEY, []))):
        if label == _past_label(i, item):
            st.session_state[TEXT_KEY] = item["query"]


def _past_label(i: int, item: dict[str, object]) -> str:
    first = " ".join(str(item["query"]).split())
    return f"{i + 1}. {item['time_utc']}  {first[:70]}"


def _unique_columns(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n + 1}")
    return out


def _frame(table: pa.Table) -> pd.DataFrame:
    """The result as a DataFrame the table widget can show (nested values as text)."""
    table = table.rename_columns(_unique_columns([str(c) for c in table.column_names]))
    frame = table.to_pandas()
    for i, field in enumerate(table.schema):
        t = field.type
        if (
            pa.types.is_nested(t)
            or pa.types.is_interval(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_decimal(t)
            or pa.types.is_time(t)
            or pa.types.is_duration(t)
        ):
            frame.isetitem(i, [None if v is None else str(v) for v in table.column(i).to_pylist()])
    return frame


def _parquet(result: sql_access.SQLResult) -> bytes:
    buf = io.BytesIO()
    result.to_parquet(buf)
    return buf.getvalue()


def _chart(frame: pd.DataFrame) -> None:
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    if frame.empty or len(frame.columns) < 2 or not numeric:
        st.caption("A chart needs at least two columns, one of them numeric.")
        return
    cols = st.columns([2, 3, 2, 2])
    x = cols[0].selectbox("x", list(frame.columns), key="sql_chart_x")
    y_choices = [c for c in numeric if c != x]
    if not y_choices:
        st.caption("Choose an x column other than the only numeric one.")
        return
    y = cols[1].multiselect("y", y_choices, default=y_choices[:1], key="sql_chart_y")
    groups = [
        c
        for c in frame.columns
        if c not in (x, *y)
        and not pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_datetime64_any_dtype(frame[c])
    ]
    split = cols[2].selectbox("split by", ["(none)", *groups], key="sql_chart_split")
    kind = cols[3].selectbox("chart", ["line", "bar", "scatter"], key="sql_chart_kind")
    if not y:
        return
    data = frame.sort_values(x) if kind == "line" else frame
    xs = data[x]
    if not (pd.api.types.is_numeric_dtype(xs) or pd.api.types.is_datetime64_any_dtype(xs)):
        xs = xs.map(plotly_text)
    fig = go.Figure()
    parts = [("", data.index)]
    if split != "(none)":
        parts = [(str(k), g.index) for k, g in data.groupby(split, sort=True, dropna=False)]
        if len(parts) > MAX_SERIES:
            st.caption(f"Showing the first {MAX_SERIES} of {len(parts)} groups.")
            parts = parts[:MAX_SERIES]
    for column in y:
        for group, index in parts:
            name = f"{column} {group}".strip() if group else column
            if kind == "bar":
                trace: go.Bar | go.Scatter = go.Bar(
                    x=xs.loc[index], y=data.loc[index, column], name=plotly_text(name)
                )
            else:
                trace = go.Scatter(
                    x=xs.loc[index],
                    y=data.loc[index, column],
                    name=plotly_text(name),
                    mode="lines" if kind == "line" else "markers",
                )
            fig.add_trace(trace)
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title=plotly_text(x),
        yaxis_title=plotly_text(", ".join(y)) if len(y) < 4 else "",
        showlegend=len(fig.data) > 1,
    )
    st.plotly_chart(fig, width="stretch")


def _run(query: str) -> None:
    began = datetime.now(UTC).strftime("%H:%M:%S")
    status: str
    rows: int | None
    seconds: float | None
    try:
        result = sql_access.run(query)
    except sql_access.SQLError as exc:
        st.session_state[RESULT_KEY] = {"error": str(exc), "kind": exc.kind, "query": query}
        status, rows, seconds = exc.kind, None, None
    else:
        st.session_state[RESULT_KEY] = {"result": result, "query": query}
        status, rows, seconds = "ok", result.num_rows, round(result.elapsed_s, 3)
        if result.truncated:
            status = "ok (truncated)"
        if result.store_changed:
            status += " (store changed)"
    history = st.session_state.setdefault(HISTORY_KEY, [])
    history.append(
        {"time_utc": began, "status": status, "rows": rows, "seconds": seconds, "query": query}
    )
    del history[:-50]


_TITLES = {
    "refused": "Query refused",
    "timeout": "Query stopped: time limit",
    "memory": "Query stopped: memory limit",
    "busy": "The SQL service is busy",
    "failed": "Query failed",
}

st.title("SQL")
require_store()
limits = sql_access.limits()
st.caption(
    "Read-only SQL (DuckDB dialect) over the store's views, in a sandbox: one query at a "
    f"time, results cut at {limits.max_rows:,} rows, {limits.timeout_s:g} s and "
    f"{md(limits.memory_limit)} per query. Times are UTC; `ts_utc` is the end of its "
    "step, `(ts_utc - step, ts_utc]`. Views, units and examples: docs/sql.md."
)

editor, browser = st.columns([3, 2], gap="large")

with browser:
    st.subheader("Schema")
    try:
        columns, views = sql_access.schema()
    except sql_access.SQLError as exc:
        st.error("Could not list the views.")
        st.code(str(exc), language=None)
    else:
        with st.expander("signals (values of the signal column)"):
            st.dataframe(
                pd.DataFrame(
                    [(s.name, s.kind, s.unit, s.description) for s in SIGNALS.values()],
                    columns=["signal", "kind", "unit", "description"],
                ),
                hide_index=True,
                width="stretch",
            )
        for view, description in views.items():
            with st.expander(view):
                if description:
                    st.caption(md(description))
                st.dataframe(
                    columns.loc[columns["view"] == view, ["column", "type", "unit", "description"]],
                    hide_index=True,
                    width="stretch",
                )

with editor:
    example_list = sql_access.examples()
    st.selectbox(
        "Example queries",
        [PICK, *[e.title for e in example_list]],
        key=EXAMPLE_KEY,
        on_change=_load_example,
    )
    chosen = next((e for e in example_list if e.title == st.session_state.get(EXAMPLE_KEY)), None)
    if chosen is not None and chosen.description:
        st.caption(md(chosen.description))
    st.session_state.setdefault(TEXT_KEY, DEFAULT_QUERY)
    with st.form("sql_form", border=False):
        text = st.text_area("Query", key=TEXT_KEY, height=240)
        submitted = st.form_submit_button("Run", type="primary")
    if submitted:
        with st.spinner("Running..."):
            _run(text)

outcome = st.session_state.get(RESULT_KEY)
if outcome is not None:
    st.subheader("Result")
    if "error" in outcome:
        st.error(_TITLES.get(outcome["kind"], "Query failed"))
        st.code(outcome["error"], language=None, wrap_lines=True)
    else:
        result = outcome["result"]
        if result.store_changed:
            st.warning(
                "The collector wrote to the store while this query ran (on every "
                "attempt): rows of the partitions it rewrote may mix two versions of a "
                "file. Run the query again when the collector is idle."
            )
        if result.truncated:
            st.warning(
                f"Showing the first {result.max_rows:,} rows: the query returned more. "
                "Aggregate, filter or add a LIMIT to see everything."
            )
        rows = "1 row" if result.num_rows == 1 else f"{result.num_rows:,} rows"
        st.caption(f"{rows} in {result.elapsed_s:.2f} s")
        frame = _frame(result.table)
        st.dataframe(frame, hide_index=True, width="stretch")
        down = st.columns(2)
        down[0].download_button(
            "Download CSV",
            frame.to_csv(index=False).encode("utf-8"),
            file_name="observatory-query.csv",
            mime="text/csv",
        )
        down[1].download_button(
            "Download Parquet",
            _parquet(result),
            file_name="observatory-query.parquet",
            mime="application/vnd.apache.parquet",
        )
        with st.expander("Chart", expanded=True):
            _chart(frame)

history = st.session_state.get(HISTORY_KEY, [])
if history:
    st.subheader("History")
    st.caption("This session's queries, newest first.")
    past = list(reversed(history))
    st.selectbox(
        "Load a previous query",
        [PICK, *[_past_label(i, item) for i, item in enumerate(past)]],
        key=PAST_KEY,
        on_change=_load_past,
    )
    st.dataframe(pd.DataFrame(past), hide_index=True, width="stretch")
