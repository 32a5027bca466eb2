"""An experiment's report as JSON, Markdown or HTML (``observatory experiment report``).

The three formats carry the same content, in the dashboard's order: the sample-ratio
check first (a failed check marks every result untrustworthy), the verdict, warnings,
the metrics table (lift, interval, p-value and corrected p-value, chance to win, the
always-valid interval), the per-region breakdown, the cumulative effect over time and
the efficiency frontier (quality against cost and energy per arm).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from analytics.experiment_metrics import ALL_REGIONS, MetricDef, MetricResult
from analytics.experiment_metrics import metric as metric_def
from analytics.experiments import Comparison
from observatory.experiment_engine import Report

METHOD_NOTES = [
    "Units treated as independent: per-minute replicates (one arm, one region, one "
    "minute). Requests inside a minute share batches, GPUs, load and incidents, so "
    "they are not independent; Prometheus only exposes per-step aggregates anyway. "
    "Ratio metrics (error ratio, mean latency, cost, energy, carbon, tokens per joule) "
    "are ratios of sums over replicates with delta-method variances.",
    "Percentiles come from latency histogram buckets (linear interpolation inside a "
    "bucket, as Prometheus's histogram_quantile); their intervals are Deng-Knoblich-Lu "
    "rank intervals with per-minute histograms as clusters. Interpolation inside wide "
    "buckets biases percentile lifts and is not part of the interval.",
    "Fixed-horizon p-values and intervals are valid once, at a horizon fixed in "
    "advance; the sequential (always-valid) interval may be looked at every day.",
    "Carbon: energy (kWh) x PUE x grid factor per region (Cloud Carbon Footprint's "
    "published yearly factors unless overridden in the experiments file).",
]


# ---------------------------------------------------------------- formatting
def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def fmt_value(m: MetricDef, v: float) -> str:
    """A metric value in its unit (``—`` when undefined)."""
    if not _finite(v):
        return "—"
    if m.unit == "ratio":
        return f"{100 * v:.3f}%" if abs(v) < 0.1 else f"{100 * v:.2f}%"
    if m.unit == "s":
        return f"{v:.3f} s"
    if m.unit == "USD":
        return f"${v:,.4f}" if abs(v) < 1 else f"${v:,.2f}"
    if m.unit == "J":
        return f"{v:,.0f} J"
    if m.unit == "g":
        return f"{v:,.1f} g"
    return f"{v:.4g} {m.unit}"


def fmt_lift(r: Comparison | None) -> str:
    """``+1.75%`` for a relative result."""
    if r is None or not _finite(r.estimate):
        return "—"
    return f"{100 * r.estimate:+.2f}%"


def fmt_ci(r: Comparison | None) -> str:
    """``[+1.70%, +1.80%]`` for a relative result."""
    if r is None or not (_finite(r.ci_low) or _finite(r.ci_high)):
        return "—"
    lo = f"{100 * r.ci_low:+.2f}%" if _finite(r.ci_low) else "-inf"
    hi = f"{100 * r.ci_high:+.2f}%" if _finite(r.ci_high) else "+inf"
    return f"[{lo}, {hi}]"


def fmt_p(p: float) -> str:
    """A p-value: ``<0.0001`` below 1e-4."""
    if not _finite(p):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt_pct(x: float) -> str:
    """A probability as a percentage."""
    return "—" if not _finite(x) else f"{100 * x:.1f}%"


# ---------------------------------------------------------------- JSON
def _num(x: Any) -> Any:
    if isinstance(x, float | int) and not isinstance(x, bool):
        return float(x) if math.isfinite(x) else None
    return x


def _cmp(r: Comparison | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "estimate": _num(r.estimate),
        "se": _num(r.se),
        "ci_low": _num(r.ci_low),
        "ci_high": _num(r.ci_high),
        "p_value": _num(r.p_value),
        "relative": r.relative,
        "engine": r.engine,
        "chance_to_win": _num(r.chance_to_win),
        "risk_control": _num(r.risk_control),
        "risk_treatment": _num(r.risk_treatment),
    }


def _result_dict(r: MetricResult) -> dict[str, Any]:
    return {
        "metric": r.metric.name,
        "label": r.metric.label,
        "unit": r.metric.unit,
        "role": r.role,
        "region": r.region,
        "treatment": r.treatment,
        "higher_is_better": r.metric.higher_is_better,
        "independent_unit": r.metric.independence,
        "control": {
            "arm": r.control_value.arm,
            "value": _num(r.control_value.value),
            "ci_low": _num(r.control_value.ci_low),
            "ci_high": _num(r.control_value.ci_high),
            "replicates": _num(r.control_value.units),
            "observations": _num(r.control_value.observations),
        },
        "treatment_value": {
            "arm": r.treatment_value.arm,
            "value": _num(r.treatment_value.value),
            "ci_low": _num(r.treatment_value.ci_low),
            "ci_high": _num(r.treatment_value.ci_high),
            "replicates": _num(r.treatment_value.units),
            "observations": _num(r.treatment_value.observations),
        },
        "relative": _cmp(r.fixed),
        "absolute": _cmp(r.absolute),
        "sequential": _cmp(r.sequential),
        "bayesian": _cmp(r.bayesian),
        "adjusted_p": _num(r.adjusted_p),
        "guard": r.guard,
    }


def to_dict(rep: Report) -> dict[str, Any]:
    """The report as JSON-ready data (NaN and infinities become null)."""
    a = rep.analysis
    spec = rep.data.listed.spec
    s = a.settings
    srm = a.srm

    def srm_dict(x: Any) -> dict[str, Any] | None:
        if x is None:
            return None
        return {
            "arms": list(x.arms),
            "observed": [_num(v) for v in x.observed],
            "expected": [_num(v) for v in x.expected],
            "weights": [_num(v) for v in x.weights],
            "chi2": _num(x.chi2),
            "p_value": _num(x.p_value),
            "threshold": x.threshold,
            "flagged": x.flagged,
        }

    return {
        "experiment": {
            "name": spec.name,
            "description": spec.description,
            "source": rep.data.listed.source,
            "model": spec.model,
            "arms": list(spec.arms),
            "control": s.control,
            "weights": dict(s.weights) or {a_: 1 / len(spec.arms) for a_ in spec.arms},
            "unit_of_randomisation": spec.unit,
            "window_start_utc": rep.data.start.isoformat(),
            "window_end_utc": rep.data.end.isoformat(),
            "regions": a.regions,
            "engine": s.engine,
            "alpha": s.alpha,
            "correction": s.correction,
            "sequential_tuning": s.tuning,
            "min_replicates": s.guards.min_units,
            "min_requests": s.guards.min_observations,
            "latency_slo_seconds": s.latency_slo_seconds,
        },
        "srm": srm_dict(srm),
        "srm_by_region": {k: srm_dict(v) for k, v in a.srm_by_region.items()},
        "verdicts": {t: {"decision": d, "text": txt} for t, (d, txt) in a.verdicts.items()},
        "warnings": list(a.warnings),
        "metrics": [_result_dict(r) for r in a.results]
        + [_result_dict(r) for rows in a.by_region.values() for r in rows],
        "cumulative": {
            "metric": rep.cumulative_metric,
            "rows": json.loads(rep.cumulative.to_json(orient="records", date_format="iso"))
            if len(rep.cumulative)
            else [],
        },
        "frontier": json.loads(rep.frontier.to_json(orient="records")),
        "notes": METHOD_NOTES,
    }


def to_json(rep: Report) -> str:
    """The report as indented JSON."""
    return json.dumps(to_dict(rep), indent=2, default=str)


# ---------------------------------------------------------------- tables (shared by md/html)
def metrics_table(results: list[MetricResult], engine: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the metrics table."""
    header = [
        "Metric", "Role", "Control", "Treatment", "Lift", "95% CI", "Abs. diff", "p",
        "Corrected p", "Chance to win", "Always-valid CI",
    ]  # fmt: skip
    rows = []
    for r in results:
        m = r.metric
        name = f"{m.label} ({r.treatment})"
        ctl = fmt_value(m, r.control_value.value)
        trt = fmt_value(m, r.treatment_value.value)
        if r.guard:
            rows.append([name, r.role, ctl, trt, r.guard, "", "", "", "", "", ""])
            continue
        ab = r.absolute
        diff = "—" if ab is None or not _finite(ab.estimate) else f"{ab.estimate:+.4g}"
        ctw = r.bayesian.chance_to_win if r.bayesian else math.nan
        rows.append(
            [
                name, r.role, ctl, trt, fmt_lift(r.fixed), fmt_ci(r.fixed), diff,
                fmt_p(r.fixed.p_value if r.fixed else math.nan), fmt_p(r.adjusted_p),
                fmt_pct(ctw), fmt_ci(r.sequential),
            ]
        )  # fmt: skip
    return header, rows


def region_table(rep: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-region breakdown (primary and guardrail metrics)."""
    a = rep.analysis
    header = ["Region", "Metric", "Control", "Treatment", "Lift", "95% CI", "Corrected p", "SRM p"]
    rows = []
    keep = {a.settings.primary, *a.settings.guardrails}
    for region in [ALL_REGIONS, *a.regions]:
        results = a.results if region == ALL_REGIONS else a.by_region[region]
        srm = a.srm if region == ALL_REGIONS else a.srm_by_region.get(region)
        for r in results:
            if r.metric.name not in keep:
                continue
            rows.append(
                [
                    region,
                    f"{r.metric.label} ({r.treatment})",
                    fmt_value(r.metric, r.control_value.value),
                    fmt_value(r.metric, r.treatment_value.value),
                    r.guard or fmt_lift(r.fixed),
                    "" if r.guard else fmt_ci(r.fixed),
                    fmt_p(r.adjusted_p),
                    fmt_p(srm.p_value) if srm else "—",
                ]
            )
    return header, rows


def frontier_table(rep: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the efficiency frontier (per arm, value and interval)."""
    header = ["Arm", "Accuracy", "Cost per 1k requests", "Energy per request"]
    f = rep.frontier
    rows = []
    for arm in rep.data.listed.spec.arms:
        cells = [arm]
        for name in ("accuracy", "cost_per_1k", "energy_per_request"):
            sub = f[(f["arm"] == arm) & (f["metric"] == name)]
            if sub.empty:
                cells.append("—")
                continue
            m = metric_def(name)
            row = sub.iloc[0]
            cells.append(
                f"{fmt_value(m, row['value'])} "
                f"[{fmt_value(m, row['ci_low'])}, {fmt_value(m, row['ci_high'])}]"
            )
        rows.append(cells)
    return header, rows


def cumulative_table(rep: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the cumulative effect (one row per checkpoint)."""
    header = ["Checkpoint (UTC)", "Replicates", "Lift", "Fixed-horizon CI", "Always-valid CI"]
    rows = []
    for _, c in rep.cumulative.iterrows():
        rows.append(
            [
                f"{c['ts_utc']:%Y-%m-%d %H:%M}",
                f"{int(c['n_control'] + c['n_treatment']):,}",
                f"{100 * c['estimate']:+.2f}%" if _finite(c["estimate"]) else "—",
                f"[{100 * c['fixed_low']:+.2f}%, {100 * c['fixed_high']:+.2f}%]",
                f"[{100 * c['seq_low']:+.2f}%, {100 * c['seq_high']:+.2f}%]",
            ]
        )
    return header, rows


def srm_text(rep: Report) -> tuple[bool, str]:
    """(flagged, sentence) of the pooled sample-ratio check."""
    srm = rep.analysis.srm
    if srm is None:
        return False, "Sample ratio check: no requests in the window."
    shares = ", ".join(
        f"{a} {100 * s:.2f}% (configured {100 * w:.1f}%)"
        for a, s, w in zip(srm.arms, srm.observed_shares, srm.weights, strict=True)
    )
    unit = rep.data.listed.spec.unit
    proxy = {
        "request": "",
        "unknown": " (the unit of randomisation is unknown; requests are counted)",
    }.get(unit, f" (requests stand in for the {unit}s randomised)")
    if srm.flagged:
        return True, (
            f"SAMPLE RATIO MISMATCH: p = {srm.p_value:.3g} < {srm.threshold}. Requests per "
            f"arm{proxy}: {shares}. The split is not the configured one: every result "
            "below is untrustworthy until the cause is found."
        )
    return False, (
        f"Sample ratio check passed: p = {srm.p_value:.3g} (flag below {srm.threshold}). "
        f"Requests per arm{proxy}: {shares}."
    )


# ---------------------------------------------------------------- Markdown
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def meta_lines(rep: Report) -> list[str]:
    d = to_dict(rep)["experiment"]
    weights = ", ".join(f"{k} {v:g}" for k, v in d["weights"].items())
    return [
        f"Model {d['model']}; arms {', '.join(d['arms'])} (control {d['control']}); "
        f"configured weights {weights}; unit of randomisation: {d['unit_of_randomisation']}.",
        f"Window ({d['window_start_utc']}, {d['window_end_utc']}] UTC; regions: "
        f"{', '.join(d['regions'])}.",
        f"Deciding engine: {d['engine']}; alpha {d['alpha']}; correction {d['correction']} "
        f"across metrics x arms; sequential tuning N* = {d['sequential_tuning']:g} replicates; "
        f"at least {d['min_replicates']} replicates and {d['min_requests']:g} requests per arm.",
    ]


def to_markdown(rep: Report) -> str:
    """The report as Markdown."""
    a = rep.analysis
    spec = rep.data.listed.spec
    flagged, srm = srm_text(rep)
    out = [f"# Experiment {spec.name}", ""]
    if spec.description:
        out += [spec.description.strip(), ""]
    out += [*meta_lines(rep), ""]
    out += [("> **" + srm + "**") if flagged else ("> " + srm), ""]
    out += ["## Verdict", ""]
    for t, (decision, text) in a.verdicts.items():
        out.append(f"- **{t}: {decision}.** {text}")
    out.append("")
    if a.warnings:
        out += ["## Warnings", ""] + [f"- {w}" for w in a.warnings] + [""]
    out += ["## Metrics (all regions)", "", _md_table(*metrics_table(a.results, a.settings.engine))]
    out += ["", "## Per region", "", _md_table(*region_table(rep))]
    if len(rep.cumulative):
        out += ["", f"## Cumulative effect: {rep.cumulative_metric}", ""]
        out += [_md_table(*cumulative_table(rep))]
    out += ["", "## Efficiency frontier", "", _md_table(*frontier_table(rep))]
    out += ["", "## Method", ""] + [f"- {n}" for n in METHOD_NOTES]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- HTML
def _html_table(header: list[str], rows: list[list[str]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}"
    ".srm-bad{background:#fde2e1;border:2px solid #d62728;padding:1em;font-weight:bold}"
    ".srm-ok{background:#e6f4ea;border:1px solid #2e9e5b;padding:1em}"
)


def to_html(rep: Report) -> str:
    """The report as a self-contained HTML page (every value escaped)."""
    esc = html.escape
    a = rep.analysis
    spec = rep.data.listed.spec
    flagged, srm = srm_text(rep)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Experiment {esc(spec.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Experiment {esc(spec.name)}</h1>",
    ]
    if spec.description:
        parts.append(f"<p>{esc(spec.description.strip())}</p>")
    parts += [f"<p>{esc(line)}</p>" for line in meta_lines(rep)]
    parts.append(f"<div class='{'srm-bad' if flagged else 'srm-ok'}'>{esc(srm)}</div>")
    parts.append("<h2>Verdict</h2><ul>")
    for t, (decision, text) in a.verdicts.items():
        parts.append(f"<li><b>{esc(t)}: {esc(decision)}.</b> {esc(text)}</li>")
    parts.append("</ul>")
    if a.warnings:
        parts.append("<h2>Warnings</h2><ul>")
        parts += [f"<li>{esc(w)}</li>" for w in a.warnings]
        parts.append("</ul>")
    parts.append("<h2>Metrics (all regions)</h2>")
    parts.append(_html_table(*metrics_table(a.results, a.settings.engine)))
    parts.append("<h2>Per region</h2>" + _html_table(*region_table(rep)))
    if len(rep.cumulative):
        parts.append(f"<h2>Cumulative effect: {esc(str(rep.cumulative_metric))}</h2>")
        parts.append(_html_table(*cumulative_table(rep)))
    parts.append("<h2>Efficiency frontier</h2>" + _html_table(*frontier_table(rep)))
    parts.append("<h2>Method</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in METHOD_NOTES))
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"


def render(rep: Report, fmt: str) -> str:
    """The report in ``md``, ``html`` or ``json``."""
    if fmt == "md":
        return to_markdown(rep)
    if fmt == "html":
        return to_html(rep)
    if fmt == "json":
        return to_json(rep)
    raise ValueError(f"unknown format {fmt!r}; expected md, html or json")
