"""Prometheus recording and alerting rules for SLOs, with Sloth's names.

Operators keep paging from Alertmanager while Observatory does the analysis: for
each SLO and region this writes what Sloth would generate for the same objective
(https://sloth.dev, ``prometheus/v1``):

- ``slo:sli_error:ratio_rate<w>`` for every burn window (5m ... 3d and the tiers'
  windows), labels ``sloth_id``, ``sloth_service``, ``sloth_slo``, ``sloth_window``;
- ``slo:sli_error:ratio_rate<period>``: the period's error ratio.  Sloth records the
  mean of the 5-minute ratios here (a RatioTimeslices figure that over-weights quiet
  hours); Observatory records the ratio of the period's sums instead, the
  Occurrences figure its dashboard shows;
- meta rules ``slo:objective:ratio``, ``slo:error_budget:ratio``,
  ``slo:time_period:days``, ``slo:current_burn_rate:ratio``,
  ``slo:period_burn_rate:ratio``, ``slo:period_error_budget_remaining:ratio``;
- alerts: page = OR of the page tiers, ticket = OR of the ticket tiers, each tier
  ``max(short > factor x budget) without (sloth_window) and max(long > ...) ...``.

Queries are built from the canonical signals through the collector presets'
selectors (``errors`` -> ``vllm:request_success_total{finished_reason="error"}``),
or taken from the spec's own PromQL (Sloth ``{{.window}}`` queries).  Groups per
region carry a static ``region`` label; with ``region_label`` the selectors also
match that label (one global Prometheus, Thanos or Mimir), otherwise each region's
group is meant for that region's own Prometheus.

Exported: ratio SLIs over counters and latency SLIs whose threshold is a bucket
bound.  Interpolated thresholds, percentiles, gauges and spend budgets have no
faithful PromQL rule form; they are listed as skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from analytics import slo as slomath
from collectors.presets import PRESETS
from observatory.slo_specs import SignalRef, SloDefinition

MODEL_LABEL, ARM_LABEL = "model_name", "version"
DEFAULT_PRESETS = ("vllm", "dcgm", "opencost", "quality", "prometheus")


@dataclass(frozen=True)
class Export:
    """The rule file's groups and the SLOs that could not be exported (name, why)."""

    groups: list[dict[str, object]]
    skipped: list[tuple[str, str]]

    def to_yaml(self) -> str:
        """The Prometheus rule file text (multi-line expressions as literal blocks)."""
        return yaml.dump({"groups": self.groups}, Dumper=_BlockDumper, sort_keys=False, width=1000)


class _BlockDumper(yaml.SafeDumper):
    """Writes strings with newlines as ``|`` blocks, as Sloth's output looks."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str)


def _selector(
    ref: SignalRef, presets: Sequence[str], region: str | None, region_label: str | None
) -> str:
    """The PromQL selector of a canonical signal with its filters."""
    base = None
    for p in presets:
        for m in PRESETS.get(p, ()):
            if m.signal == ref.signal:
                base = m.selector
                break
        if base:
            break
    if base is None:
        raise ValueError(f"no preset among {list(presets)} fetches {ref.signal}")
    name, _, body = base.partition("{")
    matchers = [x for x in body.rstrip("}").split(",") if x.strip()]
    labels = {"model": MODEL_LABEL, "arm": ARM_LABEL, "region": region_label or "region"}
    for dim, values in ref.where:
        if dim == "region" and not region_label:
            continue  # a region's own Prometheus has no region label; groups pick regions
        if len(values) == 1:
            matchers.append(f'{labels[dim]}="{values[0]}"')
        else:
            matchers.append(f'{labels[dim]}=~"{_promql_regex(values)}"')
    if region and region_label:
        matchers.append(f'{region_label}="{region}"')
    if name.endswith("_bucket") and ref.threshold is not None:
        t = ref.threshold
        text = f"{t:g}"
        # Prometheus 3 writes le="10.0" where 2.x wrote le="10": match both.
        alt = f"{t:.1f}" if float(t).is_integer() else text
        le = f'le=~"{_promql_regex([text, alt])}"' if alt != text else f'le="{text}"'
        matchers.append(le)
    elif name.endswith("_bucket"):
        name = name[: -len("_bucket")] + "_count"
    return f"{name}{{{','.join(matchers)}}}" if matchers else name


def _promql_regex(values: Iterable[str]) -> str:
    """An alternation of literal values, escaped for a PromQL double-quoted string."""
    return "|".join(re.escape(v) for v in values).replace("\\", "\\\\")


def _by(slo: SloDefinition, region_label: str | None) -> str:
    labels = []
    for dim in slo.group_by:
        if dim == "region":
            if region_label:
                labels.append(region_label)
        else:
            labels.append(MODEL_LABEL if dim == "model" else ARM_LABEL)
    return f" by ({', '.join(labels)})" if labels else ""


def error_ratio_query(
    slo: SloDefinition,
    window: str,
    presets: Sequence[str] = DEFAULT_PRESETS,
    region: str | None = None,
    region_label: str | None = None,
    bounds: Sequence[float] | None = None,
) -> str:
    """PromQL for the SLO's error ratio over ``window`` (e.g. ``5m``).

    ``bounds``: the histogram's bucket bounds, when known (from the store); a
    latency threshold that is not one of them has no exact rule form.  Unknown
    (None): the threshold is taken to be a bound.

    Raises:
        ValueError: the SLO's indicator has no rule form (see the module docstring).
    """
    ind = slo.indicator
    by = _by(slo, region_label)
    if ind.promql is not None and ind.kind == "ratio" and not region_label:
        num_q, tot_q = (q.replace("{{.window}}", window) for q in ind.promql)
        if ind.numerator_is_bad:
            return f"({num_q})\n/\n({tot_q})"
        return f"1 - (({num_q})\n/\n({tot_q}))"
    if ind.kind == "ratio":
        assert ind.numerator is not None and ind.total is not None
        num = f"sum{by}(rate({_selector(ind.numerator, presets, region, region_label)}[{window}]))"
        tot = f"sum{by}(rate({_selector(ind.total, presets, region, region_label)}[{window}]))"
        return f"({num})\n/\n({tot})" if ind.numerator_is_bad else f"1 - (({num})\n/\n({tot}))"
    if ind.kind == "latency":
        assert ind.numerator is not None and ind.total is not None
        t = ind.numerator.threshold
        if t is None or (bounds is not None and not any(math.isclose(t, b) for b in bounds)):
            raise ValueError("the latency threshold is not a bucket bound (interpolated SLI)")
        good = f"sum{by}(rate({_selector(ind.numerator, presets, region, region_label)}[{window}]))"
        tot = f"sum{by}(rate({_selector(ind.total, presets, region, region_label)}[{window}]))"
        if ind.numerator_is_bad:
            return f"({good})\n/\n({tot})"
        return f"1 - (({good})\n/\n({tot}))"
    raise ValueError(f"a {ind.kind} SLI has no faithful PromQL rule form; Observatory computes it")


def _fmt(x: float) -> str:
    return repr(float(x))


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def slo_groups(
    slo: SloDefinition,
    region: str | None = None,
    presets: Sequence[str] = DEFAULT_PRESETS,
    region_label: str | None = None,
    bounds: Sequence[float] | None = None,
) -> list[dict[str, object]]:
    """Sloth's three rule groups (SLI recordings, meta recordings, alerts) for one SLO.

    Raises:
        ValueError: no rule form for the SLO's indicator.
    """
    sloth_id = f"{slo.name}-{region}" if region else slo.name
    base = {"sloth_id": sloth_id, "sloth_service": slo.service, "sloth_slo": slo.name}
    extra = {k: v for k, v in slo.labels.items() if k not in base}
    if region:
        extra["region"] = region
    match = ", ".join(f'{k}="{v}"' for k, v in base.items())
    budget = slomath.error_budget_fraction(slo.target)
    days = slo.period.total_seconds() / 86400
    period = slomath.window_name(slo.period)
    suffix = f"{slo.name}-{region}" if region else slo.name
    sli_rules: list[dict[str, object]] = []
    for name in [*slo.windows, period]:
        sli_rules.append(
            {
                "record": f"slo:sli_error:ratio_rate{name}",
                "expr": error_ratio_query(slo, name, presets, region, region_label, bounds) + "\n",
                "labels": {**extra, **base, "sloth_window": name},
            }
        )
    meta: list[dict[str, Any]] = [
        {"record": "slo:objective:ratio", "expr": f"vector({_fmt(slo.target)})"},
        {"record": "slo:error_budget:ratio", "expr": f"vector({_fmt(budget)})"},
        {"record": "slo:time_period:days", "expr": f"vector({_fmt(days)})"},
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": f"slo:sli_error:ratio_rate5m{{{match}}}\n/ on(sloth_id, sloth_slo, "
            f"sloth_service) group_left\nslo:error_budget:ratio{{{match}}}\n",
        },
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": f"slo:sli_error:ratio_rate{period}{{{match}}}\n/ on(sloth_id, sloth_slo, "
            f"sloth_service) group_left\nslo:error_budget:ratio{{{match}}}\n",
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{{{match}}}",
        },
        {
            "record": "sloth_slo_info",
            "expr": "vector(1)",
            "labels": {
                "sloth_mode": "observatory-export",
                "sloth_objective": f"{slo.target * 100:g}",
            },
        },
    ]
    for rule in meta:
        rule["labels"] = {**extra, **base, **rule.get("labels", {})}
    alerts = []
    name = slo.alert_name or f"{_camel(slo.name)}ErrorBudgetBurn"
    wanted = {"page": slo.page_alert, "ticket": slo.ticket_alert}
    for severity in ("page", "ticket"):
        tiers = [t for t in slo.tiers if t.severity == severity]
        if not tiers or not wanted[severity] or budget == 0:
            continue
        parts = []
        for t in tiers:
            thr = f"({_fmt(t.factor)} * {_fmt(budget)})"
            short = slomath.window_name(t.short)
            long = slomath.window_name(t.long)
            side = "    max(slo:sli_error:ratio_rate{w}{{{m}}} > {t}) without (sloth_window)\n"
            parts.append(
                "(\n"
                + side.format(w=short, m=match, t=thr)
                + "    and\n"
                + side.format(w=long, m=match, t=thr)
                + ")"
            )
        alerts.append(
            {
                "alert": name,
                "expr": "\nor\n".join(parts) + "\n",
                "labels": {**extra, "sloth_severity": severity, "severity": severity},
                "annotations": {
                    "title": f"({severity}) "
                    "{{$labels.sloth_service}} {{$labels.sloth_slo}} "
                    "SLO error budget burn rate is too fast.",
                    "summary": f"{slo.display_name}: error budget burn rate is too fast"
                    + (f" in {region}" if region else ""),
                },
            }
        )
    groups: list[dict[str, object]] = [
        {"name": f"sloth-slo-sli-recordings-{suffix}", "rules": sli_rules},
        {"name": f"sloth-slo-meta-recordings-{suffix}", "rules": meta},
    ]
    if alerts:
        groups.append({"name": f"sloth-slo-alerts-{suffix}", "rules": alerts})
    return groups


def export_rules(
    slos: Iterable[SloDefinition],
    regions: Sequence[str | None] = (None,),
    presets: Sequence[str] = DEFAULT_PRESETS,
    region_label: str | None = None,
    bounds: dict[str, Sequence[float]] | None = None,
) -> Export:
    """Rule groups for every exportable SLO and region.

    Args:
        slos: the SLO definitions.
        regions: one set of groups per region (None: one set without a region); an
            SLO filtered to other regions is not exported for a region.
        presets: which collector presets' metric names to use, first match wins.
        region_label: the label that names the region in a global Prometheus; None
            for per-region Prometheus servers.
        bounds: bucket bounds per histogram signal, when known (from the store).
    """
    groups: list[dict[str, object]] = []
    skipped: list[tuple[str, str]] = []
    for slo in slos:
        wanted = dict(slo.indicator.signal.where).get("region")
        for region in regions:
            if region is not None and wanted is not None and region not in wanted:
                continue
            try:
                sig_bounds = (bounds or {}).get(slo.indicator.signal.signal)
                groups.extend(slo_groups(slo, region, presets, region_label, sig_bounds))
            except ValueError as exc:
                skipped.append((slo.name, str(exc)))
                break
    return Export(groups, skipped)
