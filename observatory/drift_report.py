"""Drift reports: one self-contained file per run, in HTML, Markdown or JSON.

- **HTML**: summary, a table per signal (one row per region x model x arm), and for
  every drifted slice the reference and current distributions overlaid and, over
  time, each metric that fired (accuracy with its interval for late labels).  All
  figures are in one page and plotly.js is embedded once (about 4.8 MB), so the file
  opens offline.
- **Markdown**: the same summary and tables, for chat and tickets.
- **JSON**: everything, for machines (``schema: observatory.drift/1``; NaN is null).

Files are named ``drift-<window end, UTC>-<window>.<ext>``
(``drift-2026-11-30T0000Z-24h.html``), so a folder of reports is an archive sorted by
date.  A report is rendered completely in memory, then written to a temporary file in
the same folder and moved into place with ``os.replace``: a render that fails leaves
no file, and a reader never sees half a report.

Exit codes of ``observatory report drift`` (:func:`exit_code`), for cron and CI:

== =====================================================================
0  no drift (every judged signal is ok)
1  drift at the warning level (no critical)
2  drift at the critical level
3  bad usage or configuration (the message says what and where)
4  runtime error: the store cannot be read, a query or the render failed
5  nothing could be judged: no data, or too little data, in the window
== =====================================================================
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
import re
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from analytics import drift as dm
from observatory.config import format_duration
from observatory.drift_codes import (
    EXIT_CRITICAL,
    EXIT_NO_DATA,
    EXIT_OK,
    EXIT_WARNING,
    FORMATS,
)
from observatory.drift_engine import (
    OVER_TIME_METRICS,
    PRIMARY,
    DriftReport,
    SliceResult,
)

#: Drifted slices drawn in an HTML report (the table lists them all).
MAX_CHARTED = 40
SCHEMA = "observatory.drift/1"
NAME_RE = re.compile(r"^drift-(\d{4}-\d{2}-\d{2})T(\d{4})Z-([0-9a-z]+)\.(html|md|json)$")


def exit_code(report: DriftReport) -> int:
    """0 no drift, 1 warning, 2 critical, 5 nothing judged (see the module docstring)."""
    verdict = report.verdict
    if verdict == "critical":
        return EXIT_CRITICAL
    if verdict == "warning":
        return EXIT_WARNING
    if verdict == "insufficient data":
        return EXIT_NO_DATA
    return EXIT_OK


def file_name(report: DriftReport, fmt: str) -> str:
    """``drift-2026-11-30T0000Z-24h.html``: the window's end (UTC) and length."""
    return report_name(report.window_end, report.window, fmt)


def report_name(window_end: datetime, window: timedelta, fmt: str) -> str:
    """The file name of a report whose window ``(window_end - window, window_end]``
    (UTC naive) is given, in format ``fmt`` (a key of ``FORMATS``)."""
    return f"drift-{window_end:%Y-%m-%dT%H%M}Z-{format_duration(window)}{FORMATS[fmt]}"


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(float(x)):
        return "-"
    x = float(x)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.2e}"
    return f"{x:.{digits}g}"


def _count(x: float | None) -> str:
    if x is None or not math.isfinite(float(x)):
        return "-"
    return f"{float(x):,.0f}"


def _pct(x: float | None) -> str:
    if x is None or not math.isfinite(float(x)):
        return "-"
    return f"{float(x) * 100:+.1f}%"


# --------------------------------------------------------------------------- JSON
def to_dict(report: DriftReport) -> dict[str, Any]:
    """The report as plain data (what the JSON format holds)."""

    def metric(r: dm.MetricResult) -> dict[str, Any]:
        return {
            "metric": r.metric,
            "label": r.label,
            "alarm": dm.RULES[r.metric].alarm,
            "value": _num(r.value),
            "threshold": _num(r.threshold),
            "fixed_warning": dm.RULES[r.metric].warning,
            "fixed_critical": dm.RULES[r.metric].critical,
            "learned": _num(r.learned),
            "verdict": r.verdict,
            "fired": r.fired,
            "note": r.note,
            "n_ref": _num(r.n_ref),
            "n_cur": _num(r.n_cur),
            "detail": {k: _num(v) for k, v in r.detail.items()},
        }

    def one(s: SliceResult) -> dict[str, Any]:
        over = s.over_time
        return {
            "signal": s.signal,
            "title": s.title,
            "kind": s.kind,
            "unit": s.unit,
            "region": s.region,
            "model": s.model,
            "arm": s.arm,
            "reference": s.reference,
            "reference_start_utc": s.reference_start.isoformat(),
            "reference_end_utc": s.reference_end.isoformat(),
            "verdict": s.verdict,
            "fired": s.fired,
            "rebinned": s.rebinned,
            "metrics": [metric(r) for r in s.results],
            "distribution": s.distribution,
            "alarm_metric": s.alarm,
            "fired_metrics": s.fired_metrics,
            "over_time": [
                {
                    "ts_utc": row["ts_utc"].isoformat(),
                    **{k: _num(v) for k, v in row.items() if k != "ts_utc"},
                }
                for row in over.to_dict("records")
            ],
        }

    return {
        "schema": SCHEMA,
        "generated_utc": report.generated_utc.isoformat(),
        "window_start_utc": report.window_start.isoformat(),
        "window_end_utc": report.window_end.isoformat(),
        "window": format_duration(report.window),
        "reference": report.reference.describe(),
        "verdict": report.verdict,
        "exit_code": exit_code(report),
        "summary": report.summary_line(),
        "signals_without_data": report.without_data,
        "js_log_base": 2,
        "settings": report.settings,
        "slices": [one(s) for s in report.slices],
    }


def render_json(report: DriftReport) -> str:
    """JSON text (NaN and infinities are null)."""
    return json.dumps(to_dict(report), indent=1, allow_nan=False, default=str) + "\n"


# --------------------------------------------------------------------------- Markdown
def _label_row(s: SliceResult) -> dict[str, str]:
    """A late-label accuracy slice: both accuracies, the drop and its interval."""
    d = s.metric("accuracy_drop")
    detail = d.detail if d else {}
    low, high = detail.get("ci_low", math.nan), detail.get("ci_high", math.nan)
    interval = "-" if not math.isfinite(low) else f"[{low * 100:+.2f}, {high * 100:+.2f}]"
    return {
        "region": s.region,
        "model": s.model,
        "arm": s.arm,
        "verdict": s.verdict,
        "accuracy ref": _fmt(detail.get("reference")),
        "accuracy now": _fmt(detail.get("current")),
        "drop (points)": _fmt(d.value * 100 if d else None, 3),
        "95% interval of the change (points)": interval,
        "labels ref / cur": (f"{_count(d.n_ref) if d else '-'} / {_count(d.n_cur) if d else '-'}"),
        "fired / note": s.fired or (d.note if d else ""),
    }


def _slice_row(s: SliceResult) -> dict[str, str]:
    if s.kind == "labels":
        return _label_row(s)
    p = s.metric(PRIMARY)
    js, hel, w1 = s.metric("js"), s.metric("hellinger"), s.metric("wasserstein")
    shift = s.metric("p50_shift")
    return {
        "region": s.region,
        "model": s.model,
        "arm": s.arm,
        "verdict": s.verdict,
        "PSI": _fmt(p.value if p else None),
        "threshold": _fmt(p.threshold if p else None),
        "learned": _fmt(p.learned if p else None),
        "JS (base 2)": _fmt(js.value if js else None),
        "Hellinger": _fmt(hel.value if hel else None),
        "W1 / std": _fmt(w1.value if w1 else None),
        "p50 shift": _pct(shift.value) if shift else "-",
        "n ref / cur": f"{_count(p.n_ref) if p else '-'} / {_count(p.n_cur) if p else '-'}",
        "fired / note": (s.fired or (p.note if p else "")) + (" (re-binned)" if s.rebinned else ""),
    }


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: DriftReport) -> str:
    """Markdown: summary line, a table per signal, the drifted slices' details."""
    icon = {"ok": "ok", "warning": "WARNING", "critical": "CRITICAL"}
    lines = [
        f"# Drift report: {report.window_start:%Y-%m-%d %H:%M} .. "
        f"{report.window_end:%Y-%m-%d %H:%M} UTC",
        "",
        f"**{icon.get(report.verdict, report.verdict)}**: {report.summary_line()}.",
        "",
        f"- Window: {format_duration(report.window)} "
        f"ending {report.window_end:%Y-%m-%d %H:%M} UTC; "
        f"reference: {report.reference.describe()} (unless a signal sets its own).",
        "- Verdict per slice from PSI (natural log, empty buckets 1e-4): warning >= 0.1, "
        "critical >= 0.25, counted only when also above the threshold learned from "
        "reference chunks (median + 3 robust sigma). JS distance is log base 2.",
        "- KS on bucket bounds is a lower bound; p-values are context, never the alarm.",
        "- Accuracy (late labels): labels counted in the window they arrived in; warning "
        "when the 95% Newcombe interval of the change lies below 0 and accuracy fell by at "
        "least 1 point, critical from 5 points; fewer than 200 labels a side: insufficient "
        "labels.",
        f"- Exit code: {exit_code(report)}. Generated {report.generated_utc:%Y-%m-%d %H:%M} UTC.",
    ]
    if report.without_data:
        lines.append(f"- Signals without data: {', '.join(report.without_data)}.")
    for signal in dict.fromkeys(s.signal for s in report.slices):
        rows = [_slice_row(s) for s in report.slices if s.signal == signal]
        first = next(s for s in report.slices if s.signal == signal)
        lines += [
            "",
            f"## {first.title} ({first.kind}, {first.unit}; reference: {first.reference})",
            "",
        ]
        head = list(rows[0])
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in rows:
            lines.append("| " + " | ".join(_md_escape(r[h]) for h in head) + " |")
    drifted = report.drifted
    if drifted:
        lines += ["", "## Drifted signals", ""]
        for s in drifted:
            lines.append(f"### {s.verdict.upper()}: {s.title} in {s.region}, {s.model} {s.arm}")
            lines.append("")
            lines.append(f"Fired: {s.fired}")
            lines.append("")
            lines.append(f"Metrics that fired: {', '.join(s.fired_metrics)}")
            lines.append("")
            lines.append("| metric | value | threshold | learned | verdict | note |")
            lines.append("|---|---|---|---|---|---|")
            for m in s.results:
                value = _pct(m.value) if m.metric.endswith("_shift") else _fmt(m.value)
                if m.metric.endswith("_shift") and m.detail:
                    value += (
                        f" ({_fmt(m.detail.get('reference'))} -> {_fmt(m.detail.get('current'))})"
                    )
                lines.append(
                    f"| {m.label} | {value} | {_fmt(m.threshold)} | {_fmt(m.learned)} | "
                    f"{m.verdict} | {_md_escape(m.fired or m.note)} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330}
h1{font-size:1.4em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px}
h3{font-size:1em;margin:18px 0 4px}
.summary{font-size:1.1em;padding:10px 14px;border-radius:6px;margin:10px 0}
.v-ok{background:#e7f5ec}.v-warning{background:#fff4d6}.v-critical{background:#fde2e1}
.v-insufficient{background:#eceff3}
table{border-collapse:collapse;font-size:.86em;margin:6px 0 12px}
th,td{border:1px solid #d8dde6;padding:3px 7px;text-align:right}
th{background:#f3f5f9} td.l,th.l{text-align:left}
td.ok{color:#1b7a3d} td.warning{color:#9a6700;font-weight:600}
td.critical{color:#b3261e;font-weight:700} td.insufficient{color:#6b7280}
.note{color:#555;font-size:.86em} .charts{display:flex;flex-wrap:wrap;gap:8px}
.chart{flex:0 0 auto;width:640px;height:360px}
"""


def _verdict_class(v: str) -> str:
    return "insufficient" if v == "insufficient data" else v


def dist_figure(s: SliceResult) -> go.Figure:
    """Reference and current distributions of a slice, overlaid (labels escaped)."""
    return _dist_figure(s)


def over_time_figure(s: SliceResult, report: DriftReport, metric: str | None = None) -> go.Figure:
    """A drift metric of the trailing window over time, with its thresholds and the
    current window shaded; for late labels, accuracy per label-arrival window with its
    95% Wilson interval and the reference accuracy.

    Args:
        metric: one of :data:`observatory.drift_engine.OVER_TIME_METRICS` (default:
            the slice's alarm metric); ignored for late labels.

    Raises:
        ValueError: a metric that is not drawn over time.
    """
    if s.kind == "labels":
        return _accuracy_figure(s, report)
    return _over_time_figure(s, report, metric or s.alarm)


def _dist_figure(s: SliceResult) -> go.Figure:
    d = s.distribution
    fig = go.Figure()
    fig.add_bar(x=d.get("x", []), y=d.get("reference", []), name="reference", opacity=0.6)
    fig.add_bar(x=d.get("x", []), y=d.get("current", []), name="current window", opacity=0.6)
    fig.update_layout(
        title=html.escape(f"{s.title}: reference vs current ({s.region}, {s.model} {s.arm})"),
        barmode="overlay",
        xaxis_title=d.get("xtitle", ""),
        yaxis_title="share of observations",
        width=640,
        height=350,
        margin={"l": 50, "r": 10, "t": 40, "b": 60},
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def _time_layout(fig: go.Figure, s: SliceResult, report: DriftReport, title: str) -> None:
    fig.add_vrect(
        x0=report.window_start.isoformat(),
        x1=report.window_end.isoformat(),
        fillcolor="#ffd8b5",
        opacity=0.3,
        line_width=0,
    )
    fig.update_layout(
        title=html.escape(f"{s.title}: {title} ({s.region}, {s.model} {s.arm})"),
        xaxis_title="end of a trailing window (UTC)",
        width=640,
        height=350,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
        showlegend=False,
    )


def _over_time_figure(s: SliceResult, report: DriftReport, metric: str) -> go.Figure:
    if metric not in OVER_TIME_METRICS:
        raise ValueError(f"no curve over time for {metric!r}; one of {OVER_TIME_METRICS}")
    over = s.over_time
    rule = dm.RULES[metric]
    name = "KS statistic" if metric == "ks" else rule.label
    fig = go.Figure()
    if len(over) and metric in over:
        fig.add_scatter(
            x=[t.isoformat() for t in over["ts_utc"]],
            y=over[metric].tolist(),
            mode="lines+markers",
            name=f"{name} of the trailing window vs the reference",
        )
    for level, color in ((rule.warning, "#d29922"), (rule.critical, "#cf222e")):
        if level is not None:
            fig.add_hline(y=level, line_dash="dash", line_color=color, annotation_text=f"{level:g}")
    p = s.metric(metric)
    if p is not None and math.isfinite(p.learned):
        fig.add_hline(y=p.learned, line_dash="dot", line_color="#57606a", annotation_text="learned")
    _time_layout(fig, s, report, f"{name} over time")
    fig.update_layout(yaxis_title=name)
    return fig


def _accuracy_figure(s: SliceResult, report: DriftReport) -> go.Figure:
    over = s.over_time
    fig = go.Figure()
    if len(over):
        x = [t.isoformat() for t in over["ts_utc"]]
        fig.add_scatter(
            x=x + x[::-1],
            y=over["high"].tolist() + over["low"].tolist()[::-1],
            fill="toself",
            fillcolor="rgba(31,119,180,0.2)",
            line={"width": 0},
            name="95% Wilson interval",
            hoverinfo="skip",
        )
        fig.add_scatter(x=x, y=over["accuracy"].tolist(), mode="lines+markers", name="accuracy")
    d = s.metric("accuracy_drop")
    ref = d.detail.get("reference", math.nan) if d else math.nan
    if math.isfinite(ref):
        fig.add_hline(y=ref, line_dash="dot", line_color="#57606a", annotation_text="reference")
    _time_layout(fig, s, report, "accuracy per label-arrival window")
    fig.update_layout(yaxis_title="accuracy (labels that arrived)")
    return fig


def _charts(s: SliceResult, report: DriftReport) -> list[go.Figure]:
    """A drifted slice's figures: distributions, then each metric that fired over time."""
    if s.kind == "labels":
        return [_dist_figure(s), _accuracy_figure(s, report)]
    metrics = [m for m in s.fired_metrics if m in OVER_TIME_METRICS] or [s.alarm]
    return [_dist_figure(s), *(_over_time_figure(s, report, m) for m in metrics)]


def _html_table(rows: list[dict[str, str]], verdict_key: str = "verdict") -> str:
    if not rows:
        return ""
    head = list(rows[0])
    left = {"region", "model", "arm", "verdict", "fired / note", "metric", "note"}
    out = ["<table><tr>"]
    out += [f'<th class="{"l" if h in left else ""}">{html.escape(h)}</th>' for h in head]
    out.append("</tr>")
    for r in rows:
        out.append("<tr>")
        for h in head:
            cls = "l" if h in left else ""
            if h == verdict_key:
                cls += " " + _verdict_class(r[h])
            out.append(f'<td class="{cls.strip()}">{html.escape(r[h])}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def render_html(report: DriftReport) -> str:
    """One self-contained HTML page; plotly.js embedded once, every figure in it."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Drift report {report.window_end:%Y-%m-%d %H:%M} UTC</title>",
        f"<style>{_CSS}</style>",
        f"<script>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>Drift report: {report.window_start:%Y-%m-%d %H:%M} .. "
        f"{report.window_end:%Y-%m-%d %H:%M} UTC</h1>",
        f'<div class="summary v-{_verdict_class(report.verdict)}" id="summary">'
        f"<b>{html.escape(report.verdict.upper())}</b>: "
        f"{html.escape(report.summary_line())}.</div>",
        '<p class="note">',
        f"Window {html.escape(format_duration(report.window))}; reference "
        f"{html.escape(report.reference.describe())} (unless a signal sets its own). "
        "A slice's verdict comes from PSI (natural log; empty buckets 1e-4): warning at "
        "0.1, critical at 0.25, counted only when PSI is also above the threshold learned "
        "from the reference cut into window-long chunks (median + 3 robust sigma). "
        "Jensen-Shannon distance uses log base 2 (0-1). KS on bucket bounds is a lower "
        "bound of the raw-sample statistic; p-values are context, never the alarm. "
        "Accuracy (late labels) counts labels in the window they arrived in: warning when "
        "the 95% Newcombe interval of the change lies below 0 and accuracy fell by at "
        "least 1 point, critical from 5 points; below 200 labels a side, insufficient "
        "labels. "
        f"Exit code {exit_code(report)}. Generated {report.generated_utc:%Y-%m-%d %H:%M} UTC.",
        "</p>",
    ]
    if report.without_data:
        parts.append(
            f'<p class="note">Signals without data: {html.escape(", ".join(report.without_data))}'
            "</p>"
        )
    for signal in dict.fromkeys(s.signal for s in report.slices):
        sl = [s for s in report.slices if s.signal == signal]
        parts.append(
            f"<h2>{html.escape(sl[0].title)} <span class='note'>({html.escape(sl[0].kind)}, "
            f"{html.escape(sl[0].unit)}; reference: {html.escape(sl[0].reference)})</span></h2>"
        )
        parts.append(_html_table([_slice_row(s) for s in sl]))
    drifted = report.drifted
    if drifted:
        parts.append("<h2>Drifted signals</h2>")
    for i, s in enumerate(drifted[:MAX_CHARTED]):
        parts.append(
            f"<h3 id='drift-{i}'>{html.escape(s.verdict.upper())}: {html.escape(s.title)} in "
            f"{html.escape(s.region)}, {html.escape(s.model)} {html.escape(s.arm)}</h3>"
            f"<p class='note'>{html.escape(s.fired)}<br>Metrics that fired: "
            f"{html.escape(', '.join(s.fired_metrics))}</p>"
        )
        rows = []
        for r in s.results:
            value = _pct(r.value) if r.metric.endswith("_shift") else _fmt(r.value)
            if r.metric.endswith("_shift") and r.detail:
                value += f" ({_fmt(r.detail.get('reference'))} -> {_fmt(r.detail.get('current'))})"
            rows.append(
                {
                    "metric": r.label,
                    "value": value,
                    "threshold": _fmt(r.threshold),
                    "learned": _fmt(r.learned),
                    "verdict": r.verdict,
                    "note": r.fired or r.note,
                }
            )
        parts.append(_html_table(rows))
        parts.append("<div class='charts'>")
        for j, fig in enumerate(_charts(s, report)):
            div = fig.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"fig-{i}-{j}",
                default_width="640px",
                default_height="350px",
                config={"displaylogo": False, "displayModeBar": False},
            )
            parts.append(f"<div class='chart'>{div}</div>")
        parts.append("</div>")
    if len(drifted) > MAX_CHARTED:
        parts.append(
            f"<p class='note'>{len(drifted) - MAX_CHARTED} more drifted slices are in the "
            f"tables above (charts are drawn for the first {MAX_CHARTED}).</p>"
        )
    parts.append("</body></html>\n")
    return "".join(parts)


RENDERERS = {"html": render_html, "md": render_markdown, "json": render_json}


def write_report(report: DriftReport, out_dir: str | Path, fmt: str) -> Path:
    """Render ``report`` in ``fmt`` and write it into ``out_dir`` atomically.

    The whole file is rendered in memory first; then written to a temporary file in
    ``out_dir`` and renamed (``os.replace``).  A failure leaves no file (and an older
    report of the same name untouched).

    Returns:
        The report's path (:func:`file_name` in ``out_dir``).

    Raises:
        ValueError: unknown format.
        OSError: the folder cannot be created or written.
    """
    if fmt not in RENDERERS:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {sorted(RENDERERS)}")
    text = RENDERERS[fmt](report)
    path = Path(out_dir) / file_name(report, fmt)
    _atomic_write(path, text.encode("utf-8"))
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, mode 0644 less the umask, ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o644 & ~umask)  # mkstemp makes 0600; reports are for readers
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: Where the per-slice part of a JSON report begins (:func:`render_json`'s layout).
_SLICES_KEY = b'\n "slices": ['


def report_head(path: str | os.PathLike[str], chunk: int = 1 << 16) -> dict[str, Any]:
    """A JSON report's top-level fields without its ``slices`` (set to ``[]``).

    Reads only up to where the slices begin (a few KB; the slices of a 20-region
    fleet are tens of MB), so listing an archive stays cheap.  A file not in
    :func:`render_json`'s layout is parsed whole.

    Raises:
        OSError: the file cannot be read.
        ValueError: not JSON.
    """
    head = b""
    with open(path, "rb") as fh:
        while _SLICES_KEY not in head:
            block = fh.read(chunk)
            if not block:
                return dict(json.loads(head))
            head += block
    cut = head.index(_SLICES_KEY) + len(_SLICES_KEY)
    return dict(json.loads(head[:cut] + b"]}"))


def list_reports(out_dir: str | Path) -> list[dict[str, Any]]:
    """The archive: reports in ``out_dir``, newest first.

    Returns:
        ``{"path", "name", "format", "window_end", "window", "verdict", "summary",
        "bytes"}`` per file; verdict and summary are read from a JSON report of the same
        run when there is one.  Temporary files are not listed.
    """
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = NAME_RE.match(p.name)
        if not m or not p.is_file():
            continue
        end = datetime.strptime(f"{m.group(1)}T{m.group(2)}", "%Y-%m-%dT%H%M")
        out.append(
            {
                "path": p,
                "name": p.name,
                "format": m.group(4),
                "window_end": end,
                "window": m.group(3),
                "verdict": "",
                "summary": "",
                "bytes": p.stat().st_size,
            }
        )
    for row in out:
        sibling = folder / re.sub(r"\.(html|md|json)$", ".json", str(row["name"]))
        if sibling.exists():
            try:
                data = report_head(sibling)
                row["verdict"] = data.get("verdict", "")
                row["summary"] = data.get("summary", "")
            except (OSError, ValueError):
                pass
    return sorted(out, key=lambda r: (r["window_end"], r["name"]), reverse=True)
