"""OpenSLO v1 and Sloth spec loading: the examples, normalisation and strict errors."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from observatory.slo_specs import SpecError, load_specs, parse_maintenance, promql_to_signal

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "slo"


def _write(tmp_path: Path, text: str, name: str = "slo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _errors(*paths: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_specs(paths)
    return info.value.messages


SLO_HEAD = """
apiVersion: openslo/v1
kind: SLO
metadata:
  name: api
spec:
  service: api
  indicator:
    metadata:
      name: ok-requests
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Observatory
            spec:
              signal: errors
        total:
          metricSource:
            type: Observatory
            spec:
              signal: requests
  timeWindow:
    - duration: 30d
      isRolling: true
  budgetingMethod: Occurrences
"""


# ---------------------------------------------------------------- examples
def test_every_example_loads_with_the_expected_kind() -> None:
    slos = {d.name: d for d in load_specs([EXAMPLES])}
    kinds = {name: d.indicator.kind for name, d in slos.items()}
    assert kinds == {
        "availability": "ratio",
        "latency-10s": "latency",
        "ttft-750ms": "latency",
        "p99-latency": "percentile",
        "gpu-availability": "gauge",
        "qwen-accuracy-floor": "gauge",
        "serving-cost": "budget",
        "gpu-energy": "budget",
        "vllm-requests-availability": "ratio",
    }


def test_availability_example_refs_and_tiers() -> None:
    (av,) = [d for d in load_specs([EXAMPLES / "availability.yaml"]) if d.name == "availability"]
    assert av.target == 0.995 and av.period == timedelta(days=30) and av.method == "Occurrences"
    assert av.indicator.numerator is not None and av.indicator.numerator.signal == "errors"
    assert av.indicator.numerator_is_bad and av.indicator.signal.signal == "requests"
    assert av.group_by == ("region", "model") and av.min_events == 10
    # AlertPolicies -> tiers; the short window is 1/12 of the lookback (SRE Workbook).
    assert [(t.name, t.severity, t.long, t.short, t.factor) for t in av.tiers] == [
        ("page-1h", "page", timedelta(hours=1), timedelta(minutes=5), 14.4),
        ("page-6h", "page", timedelta(hours=6), timedelta(minutes=30), 6.0),
        ("ticket-1d", "ticket", timedelta(days=1), timedelta(hours=2), 3.0),
        ("ticket-3d", "ticket", timedelta(days=3), timedelta(hours=6), 1.0),
    ]
    assert [t.budget_share for t in av.tiers] == pytest.approx([0.02, 0.05, 0.10, 0.10])
    assert "availability.yaml" in av.source and "document 12 (SLO availability)" in av.source


def test_percentile_accuracy_calendar_budget_and_sloth_examples() -> None:
    slos = {d.name: d for d in load_specs([EXAMPLES])}
    p99 = slos["p99-latency"]
    assert p99.method == "Timeslices" and p99.slice_window == timedelta(minutes=5)
    assert p99.slice_target == 0.99  # a slice is good when its p99 <= 20 s
    assert p99.indicator.value == 20 and p99.indicator.signal.quantile == 0.99
    assert [t.factor for t in p99.tiers] == pytest.approx([13.44, 5.6, 2.8, 0.93333333])
    acc = slos["qwen-accuracy-floor"]
    assert acc.indicator.op == "gte" and acc.indicator.value == 0.8
    assert acc.indicator.signal.where == (("model", ("qwen2.5-32b",)),)
    ttft = slos["ttft-750ms"]
    assert ttft.calendar is not None and ttft.calendar.tz == "Asia/Kolkata"
    assert ttft.calendar.duration == "1M" and ttft.calendar.start == datetime(2024, 1, 1)
    assert ttft.indicator.numerator is not None and ttft.indicator.numerator.threshold == 0.75
    cost = slos["serving-cost"]
    assert cost.target == 0 and cost.indicator.allowance == 36000
    assert cost.indicator.allowance_per == timedelta(days=30)
    sloth = slos["vllm-requests-availability"]
    assert sloth.format == "sloth" and sloth.target == 0.995 and sloth.group_by == ("region",)
    assert sloth.alert_name == "VllmHighErrorRate" and sloth.labels == {"owner": "inference"}
    assert sloth.indicator.numerator is not None
    assert (sloth.indicator.numerator.signal, sloth.indicator.signal.signal) == (
        "errors",
        "requests",
    )


# ---------------------------------------------------------------- error messages
def test_error_names_file_line_document_path_and_expectation(tmp_path: Path) -> None:
    path = _write(tmp_path, SLO_HEAD + "  objectives:\n    - target: 1.2\n")
    (msg,) = _errors(path)
    assert msg.startswith(f"{path}:28: document 1 (SLO api): spec.objectives[0].target: ")
    assert "expected a number in [0, 1), got 1.2" in msg


def test_unknown_field_and_missing_field(tmp_path: Path) -> None:
    text = SLO_HEAD.replace("  budgetingMethod: Occurrences\n", "  budgetingMethd: Occurrences\n")
    msgs = _errors(_write(tmp_path, text + "  objectives:\n    - target: 0.99\n"))
    assert any("spec.budgetingMethd: unknown field" in m for m in msgs)
    assert any("spec.budgetingMethod: required field is missing" in m for m in msgs)


def test_target_and_target_percent_are_exclusive(tmp_path: Path) -> None:
    msgs = _errors(
        _write(tmp_path, SLO_HEAD + "  objectives:\n    - target: 0.99\n      targetPercent: 99\n")
    )
    assert any(
        "spec.objectives[0]: expected exactly one of target and targetPercent" in m for m in msgs
    )
    (pct,) = load_specs([_write(tmp_path, SLO_HEAD + "  objectives:\n    - targetPercent: 99.9\n")])
    assert pct.target == pytest.approx(0.999)
    assert _errors(_write(tmp_path, SLO_HEAD + "  objectives:\n    - targetPercent: 100\n"))


def test_ratio_metric_refuses_op_and_value(tmp_path: Path) -> None:
    text = SLO_HEAD + "  objectives:\n    - target: 0.99\n      op: lte\n      value: 3\n"
    (msg,) = _errors(_write(tmp_path, text))
    assert "spec.objectives[0].op: not allowed with a ratioMetric" in msg


def test_exactly_one_time_window(tmp_path: Path) -> None:
    text = SLO_HEAD.replace(
        "    - duration: 30d\n      isRolling: true\n",
        "    - duration: 30d\n      isRolling: true\n    - duration: 7d\n      isRolling: true\n",
    )
    (msg,) = _errors(_write(tmp_path, text + "  objectives:\n    - target: 0.99\n"))
    assert "spec.timeWindow: List should have at most 1 item" in msg


def test_rolling_window_cannot_be_a_month_and_calendar_needs_a_zone(tmp_path: Path) -> None:
    text = SLO_HEAD.replace("duration: 30d", "duration: 1M")
    (msg,) = _errors(_write(tmp_path, text + "  objectives:\n    - target: 0.99\n"))
    assert "spec.timeWindow[0].duration: '1M': months, quarters and years need a calendar" in msg
    text = SLO_HEAD.replace(
        "    - duration: 30d\n      isRolling: true\n",
        "    - duration: 1M\n      calendar:\n        startTime: 2024-01-01 00:00:00\n"
        "        timeZone: Mars/Olympus\n",
    )
    (msg,) = _errors(_write(tmp_path, text + "  objectives:\n    - target: 0.99\n"))
    assert "spec.timeWindow[0].calendar.timeZone: expected an IANA time zone" in msg


def test_timeslices_need_slice_target_and_window(tmp_path: Path) -> None:
    text = SLO_HEAD.replace("budgetingMethod: Occurrences", "budgetingMethod: Timeslices")
    msgs = _errors(_write(tmp_path, text + "  objectives:\n    - target: 0.99\n"))
    assert any(
        "spec.objectives[0].timeSliceTarget: required with budgetingMethod Timeslices" in m
        for m in msgs
    )
    ok = text + (
        "  objectives:\n    - target: 0.99\n      timeSliceTarget: 0.95\n"
        "      timeSliceWindow: 5\n"
    )
    (d,) = load_specs([_write(tmp_path, ok)])
    assert d.slice_window == timedelta(minutes=5) and d.slice_target == 0.95  # a number is minutes
    occ = SLO_HEAD + "  objectives:\n    - target: 0.99\n      timeSliceWindow: 5m\n"
    (msg,) = _errors(_write(tmp_path, occ))
    assert "timeSliceWindow: not used with budgetingMethod Occurrences" in msg


def test_good_and_bad_together_and_raw_without_type(tmp_path: Path) -> None:
    text = SLO_HEAD.replace(
        "        total:\n",
        "        good:\n          metricSource:\n            type: Observatory\n"
        "            spec:\n              signal: requests\n        total:\n",
    )
    (msg,) = _errors(_write(tmp_path, text + "  objectives:\n    - target: 0.99\n"))
    assert "spec.indicator.spec.ratioMetric: give good or bad, not both" in msg


def test_unknown_signal_and_wrong_signal_options(tmp_path: Path) -> None:
    text = SLO_HEAD.replace("signal: errors", "signal: erors")
    (msg,) = _errors(_write(tmp_path, text + "  objectives:\n    - target: 0.99\n"))
    assert "ratioMetric.bad.metricSource.spec.signal: unknown signal 'erors'" in msg
    text = SLO_HEAD.replace("signal: errors", "signal: errors\n              threshold: 2")
    (msg,) = _errors(_write(tmp_path, text + "  objectives:\n    - target: 0.99\n"))
    assert "spec.threshold: only for histogram signals; errors is a counter" in msg


def test_references_resolve_across_files_and_missing_ones_are_named(tmp_path: Path) -> None:
    sli = _write(
        tmp_path,
        """
        apiVersion: openslo/v1
        kind: SLI
        metadata:
          name: fast
        spec:
          ratioMetric:
            counter: true
            good:
              metricSource:
                type: Prometheus
                spec:
                  query: sum(rate(vllm:e2e_request_latency_seconds_bucket{le="2.5"}[5m]))
            total:
              metricSource:
                type: Prometheus
                spec:
                  query: sum(rate(vllm:e2e_request_latency_seconds_count[5m]))
        """,
        "sli.yaml",
    )
    slo = _write(
        tmp_path,
        """
        apiVersion: openslo/v1
        kind: SLO
        metadata:
          name: fast-requests
        spec:
          service: api
          indicatorRef: fast
          timeWindow:
            - duration: 28d
              isRolling: true
          budgetingMethod: Occurrences
          objectives:
            - target: 0.9
          alertPolicies:
            - alertPolicyRef: nowhere
        """,
    )
    (msg,) = _errors(sli, slo)
    assert "spec.alertPolicies[0].alertPolicyRef: no AlertPolicy named 'nowhere'" in msg
    slo.write_text(slo.read_text().split("  alertPolicies:")[0])
    (d,) = load_specs([sli, slo])
    assert d.indicator.kind == "latency" and d.indicator.numerator is not None
    assert d.indicator.numerator.threshold == 2.5
    assert d.tiers[0].factor == pytest.approx(13.44)  # default tiers for 28 days
    (msg,) = _errors(slo)
    assert "spec.indicatorRef: no SLI named 'fast'" in msg


def test_threshold_metric_rules(tmp_path: Path) -> None:
    base = """
    apiVersion: openslo/v1
    kind: SLO
    metadata:
      name: p99
    spec:
      service: api
      indicator:
        metadata:
          name: p99
        spec:
          thresholdMetric:
            metricSource:
              type: Observatory
              spec:
                signal: latency
                quantile: 0.99
      timeWindow:
        - duration: 7d
          isRolling: true
      budgetingMethod: Occurrences
      objectives:
        - target: 0.9
          op: lte
          value: 2
    """
    (msg,) = _errors(_write(tmp_path, base))
    assert "a percentile objective is judged per time slice" in msg
    no_op = base.replace("          op: lte\n", "").replace(
        "budgetingMethod: Occurrences", "budgetingMethod: Occurrences"
    )
    (msg,) = _errors(_write(tmp_path, no_op))
    assert "spec.objectives[0].op: required with a thresholdMetric" in msg


def test_several_mistakes_are_reported_together(tmp_path: Path) -> None:
    a = _write(tmp_path, SLO_HEAD + "  objectives:\n    - target: 1.5\n", "a.yaml")
    b = _write(tmp_path, "apiVersion: openslo/v2\nkind: SLO\n", "b.yaml")
    c = _write(tmp_path, "version: prometheus/v1\nservice: x\nslos: []\n", "c.yaml")
    d = _write(tmp_path, "key: [unclosed\n", "d.yaml")
    msgs = _errors(a, b, c, d)
    assert {Path(m.split(":")[0]).name for m in msgs} == {"a.yaml", "b.yaml", "c.yaml", "d.yaml"}
    assert any("a.yaml" in m and "target" in m for m in msgs)
    assert any(m.startswith(f"{b}:1: document 1") and "openslo/v2" in m for m in msgs)
    assert any("c.yaml" in m and "slos: List should have at least 1 item" in m for m in msgs)
    assert any("d.yaml:2: invalid YAML" in m for m in msgs)


def test_duplicate_names(tmp_path: Path) -> None:
    text = SLO_HEAD + "  objectives:\n    - target: 0.99\n"
    msgs = _errors(_write(tmp_path, text + "---\n" + text))
    assert any("SLO 'api' is defined twice" in m for m in msgs)


def test_annotations(tmp_path: Path) -> None:
    text = SLO_HEAD.replace(
        "  name: api\n",
        "  name: api\n  annotations:\n    observatory/group-by: model,arm\n"
        "    observatory/maintenance: 2024-05-01T02:00Z/2024-05-01T04:00Z\n",
    )
    (d,) = load_specs([_write(tmp_path, text + "  objectives:\n    - target: 0.99\n")])
    assert d.group_by == ("model", "arm")
    assert d.maintenance == ((datetime(2024, 5, 1, 2), datetime(2024, 5, 1, 4)),)
    bad = text.replace("model,arm", "model,pod")
    (msg,) = _errors(_write(tmp_path, bad + "  objectives:\n    - target: 0.99\n"))
    assert "metadata.annotations.observatory/group-by: expected a comma list" in msg
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_maintenance("2024-05-01T04:00Z/2024-05-01T02:00Z")


# ---------------------------------------------------------------- Sloth
SLOTH = """
version: prometheus/v1
service: api
slos:
  - name: availability
    objective: {objective}
    sli:
      events:
        error_query: >-
          sum(rate(vllm:request_success_total{{finished_reason="error",model_name="mistral-7b"}}
          [{{{{.window}}}}]))
        total_query: >-
          sum(rate(vllm:request_success_total{{model_name="mistral-7b"}}[{{{{.window}}}}]))
"""


def test_sloth_objective_range_and_hundred_percent(tmp_path: Path) -> None:
    (msg,) = _errors(_write(tmp_path, SLOTH.format(objective=0)))
    assert "document 1 (Sloth spec api): slos[0].objective: expected a number in (0, 100]" in msg
    assert _errors(_write(tmp_path, SLOTH.format(objective=100.5)))
    (d,) = load_specs([_write(tmp_path, SLOTH.format(objective=100))])
    assert d.target == 1.0 and not d.has_budget
    assert d.indicator.signal.where == (("model", ("mistral-7b",)),)
    assert d.name == "api-availability"


def test_sloth_rejects_raw_ratios_and_missing_window(tmp_path: Path) -> None:
    raw = """
    version: prometheus/v1
    service: api
    slos:
      - name: raw
        objective: 99
        sli:
          raw:
            error_ratio_query: sum(rate(errs[{{.window}}])) / sum(rate(reqs[{{.window}}]))
    """
    (msg,) = _errors(_write(tmp_path, raw))
    assert "slos[0].sli.raw.error_ratio_query: a precomputed error ratio cannot be summed" in msg
    text = SLOTH.format(objective=99).replace("[{{.window}}]))\n", "[5m]))\n", 1)
    (msg,) = _errors(_write(tmp_path, text))
    assert "slos[0].sli.events.error_query: expected a {{.window}} placeholder" in msg


# ---------------------------------------------------------------- PromQL mapping
def test_promql_to_signal() -> None:
    ref, by = promql_to_signal(
        'sum by (region) (rate(vllm:request_success_total{finished_reason="error",'
        'model_name=~"a|b"}[{{.window}}]))'
    )
    assert ref.signal == "errors" and ref.where == (("model", ("a", "b")),) and by == ("region",)
    ref, _ = promql_to_signal('sum(increase(requests{version="v2"}[1h]))')
    assert ref.signal == "requests" and ref.where == (("arm", ("v2",)),)
    ref, _ = promql_to_signal('sum(rate(vllm:e2e_request_latency_seconds_bucket{le="1.0"}[5m]))')
    assert ref.signal == "latency" and ref.threshold == 1.0
    ref, _ = promql_to_signal("sum(rate(vllm:e2e_request_latency_seconds_count[5m]))")
    assert ref.signal == "latency" and ref.threshold is None
    with pytest.raises(ValueError, match="not fetched by any collector preset"):
        promql_to_signal("sum(rate(http_requests_total[5m]))")
    with pytest.raises(ValueError, match="label 'pod' cannot be filtered"):
        promql_to_signal('sum(rate(requests{pod="x"}[5m]))')
    with pytest.raises(ValueError, match="expected sum\\(rate"):
        promql_to_signal("histogram_quantile(0.9, sum(rate(requests[5m])))")
