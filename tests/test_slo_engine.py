"""The SLO engine over a small synthetic store: SQL windows, methods, data quality."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics import slo as slomath
from observatory.slo_engine import Maintenance, SloEngine, status_table
from observatory.slo_specs import CalendarWindow, Indicator, SignalRef, SloDefinition
from observatory.store import Store

DAY = datetime(2024, 3, 1)
M = timedelta(minutes=1)
D30 = timedelta(days=30)


def _counters(
    region: str, start: datetime, requests: np.ndarray, errors: np.ndarray, model: str = "m"
) -> pd.DataFrame:
    ts = pd.date_range(start + M, periods=len(requests), freq="1min")
    rows = []
    for signal, values in (("requests", requests), ("errors", errors)):
        rows.append(
            pd.DataFrame(
                {
                    "ts_utc": ts,
                    "model": model,
                    "arm": "v1",
                    "instance": "",
                    "value": np.asarray(values, dtype=float),
                    "signal": signal,
                    "unit": "requests",
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _store(tmp_path: Path, frames: dict[str, pd.DataFrame], table: str = "counters") -> Store:
    store = Store(tmp_path / "store")
    with store.writer():
        for region, frame in frames.items():
            start = frame["ts_utc"].min() - M
            end = frame["ts_utc"].max()
            store.replace_window(table, region, sorted(frame["signal"].unique()), start, end, frame)
    return store


def _ratio_slo(target: float = 0.999, **kw: object) -> SloDefinition:
    args: dict[str, object] = {
        "name": "avail",
        "display_name": "Availability",
        "service": "api",
        "description": "",
        "source": "test",
        "indicator": Indicator("ratio", numerator=SignalRef("errors"), total=SignalRef("requests")),
        "target": target,
        "tiers": tuple(slomath.alert_tiers(D30)),
    }
    args.update(kw)
    return SloDefinition(**args)  # type: ignore[arg-type]


def _row(st: pd.DataFrame, region: str = "*") -> pd.Series:
    return st[st["region"] == region].iloc[0]


# ---------------------------------------------------------------- windows
def test_window_is_right_closed_on_step_ends(tmp_path: Path) -> None:
    n = 10
    req = np.arange(1, n + 1) * 100.0  # the step ending at 00:k holds k*100 requests
    err = np.arange(1, n + 1, dtype=float)
    store = _store(tmp_path, {"r1": _counters("r1", DAY, req, err)})
    engine = SloEngine(store, step=M)
    sums = engine.window_sums(_ratio_slo(), at=DAY + 10 * M).set_index(["region", "window"])
    five = sums.loc[("r1", "5m")]
    # (00:05, 00:10]: steps ending 00:06 .. 00:10; the step ending exactly at t - w is out.
    assert five["total"] == 100 * (6 + 7 + 8 + 9 + 10) and five["bad"] == 6 + 7 + 8 + 9 + 10
    assert five["slices"] == 5 and five["expected"] == 5
    # A window longer than the data holds all of it; coverage shows the gap.
    hour = sums.loc[("r1", "1h")]
    assert hour["total"] == req.sum() and hour["slices"] == 10 and hour["expected"] == 60


def test_history_windows_equal_rolling_sums(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 600
    req = rng.poisson(50, n).astype(float)
    err = rng.binomial(req.astype(int), 0.01).astype(float)
    store = _store(tmp_path, {"r1": _counters("r1", DAY, req, err)})
    engine = SloEngine(store, step=M, min_coverage=0)
    slo = _ratio_slo()
    h = engine.history(slo, start=DAY, end=DAY + n * M)
    g = h[h["region"] == "r1"].reset_index(drop=True)
    assert len(g) == n
    for name, w in slo.windows.items():
        steps = int(w / M)
        np.testing.assert_array_equal(g[f"total_{name}"], slomath.rolling_sums(req, steps))
        np.testing.assert_array_equal(g[f"bad_{name}"], slomath.rolling_sums(err, steps))
    # The status at any time equals the history row at that time.
    at = DAY + 321 * M
    st = _row(engine.status(slo, at=at), "r1")
    hist = g[g["ts_utc"] == at].iloc[0]
    for name in slo.windows:
        assert st[f"burn_{name}"] == pytest.approx(hist[f"burn_{name}"], nan_ok=True)
    assert st["remaining"] == pytest.approx(hist["remaining"])


# ---------------------------------------------------------------- roll-up, methods
def test_global_rollup_sums_events_not_ratios(tmp_path: Path) -> None:
    a = _counters("a", DAY, np.full(60, 1000.0), np.full(60, 10.0))
    b = _counters("b", DAY, np.full(60, 10.0), np.full(60, 5.0))
    store = _store(tmp_path, {"a": a, "b": b})
    st = SloEngine(store, step=M).status(_ratio_slo(), at=DAY + 60 * M)
    assert _row(st)["error_ratio"] == pytest.approx(15 / 1010)  # not (1 % + 50 %) / 2
    assert _row(st, "a")["error_ratio"] == pytest.approx(0.01)
    assert _row(st, "b")["error_ratio"] == pytest.approx(0.5)
    assert st.iloc[0]["region"] == "*"  # the roll-up first, then groups by remaining budget
    assert list(st["region"]) == ["*", "b", "a"]


def _day_night() -> tuple[np.ndarray, np.ndarray]:
    """24 h of minutes: 12 h day at 13,300 requests/min without errors; 12 h night at
    300/min with 51 errors in the first minute of every 5 (3.4 % per 5-minute slice)."""
    day_req = np.full(720, 13_300.0)
    night_req = np.full(720, 300.0)
    night_err = np.where(np.arange(720) % 5 == 0, 51.0, 0.0)
    return np.concatenate([day_req, night_req]), np.concatenate([np.zeros(720), night_err])


@pytest.mark.parametrize(
    ("method", "expected"), [("Occurrences", 0.00075), ("RatioTimeslices", 0.017)]
)
def test_day_night_occurrences_vs_ratio_timeslices_in_sql(
    tmp_path: Path, method: str, expected: float
) -> None:
    req, err = _day_night()
    store = _store(tmp_path, {"r1": _counters("r1", DAY, req, err)})
    slo = _ratio_slo(
        method=method,
        slice_window=timedelta(minutes=5),
        period=timedelta(days=1),
        tiers=tuple(slomath.alert_tiers(timedelta(days=1))),
    )
    st = SloEngine(store, step=M).status(slo, at=DAY + timedelta(days=1))
    assert _row(st, "r1")["error_ratio"] == pytest.approx(expected)
    assert _row(st, "r1")["coverage"] == 1.0


def test_timeslices_in_sql(tmp_path: Path) -> None:
    req, err = _day_night()
    store = _store(tmp_path, {"r1": _counters("r1", DAY, req, err)})
    slo = _ratio_slo(
        method="Timeslices",
        slice_window=timedelta(minutes=5),
        slice_target=0.99,
        period=timedelta(days=1),
        target=0.4,
    )
    st = SloEngine(store, step=M).status(slo, at=DAY + timedelta(days=1))
    r = _row(st, "r1")
    assert r["total"] == 288 and r["bad"] == 144 and r["sli"] == 0.5  # nights miss 99 %


# ---------------------------------------------------------------- data quality
def test_zero_traffic_step_does_not_poison_longer_windows(tmp_path: Path) -> None:
    req = np.full(120, 100.0)
    err = np.full(120, 1.0)
    req[100:110] = 0.0  # ten minutes without traffic
    err[100:110] = 0.0
    store = _store(tmp_path, {"r1": _counters("r1", DAY, req, err)})
    engine = SloEngine(store, step=M)
    st = _row(engine.status(_ratio_slo(), at=DAY + 110 * M), "r1")
    assert math.isnan(st["burn_5m"])  # no events: no SLI, not 0 % and not 100 %
    assert st["burn_1h"] == pytest.approx(0.01 / 0.001)
    assert not math.isnan(st["remaining"])
    h = engine.history(_ratio_slo(), start=DAY, end=DAY + 120 * M)
    h = h[h["region"] == "r1"]
    # Only the 5m windows ending at minutes 105 .. 110 hold no events at all.
    assert h["burn_5m"].isna().sum() == 6
    assert h["burn_1h"].notna().all()


def test_maintenance_is_excluded_from_numerator_denominator_and_coverage(tmp_path: Path) -> None:
    req = np.full(60, 100.0)
    err = np.zeros(60)
    err[20:30] = 100.0  # an outage during announced maintenance
    store = _store(tmp_path, {"r1": _counters("r1", DAY, req, err)})
    maint = ((DAY + 20 * M, DAY + 30 * M),)  # steps ending 00:21 .. 00:30
    at = DAY + 60 * M
    plain = _row(SloEngine(store, step=M).status(_ratio_slo(), at=at), "r1")
    assert plain["bad"] == 1000
    excluded = _row(SloEngine(store, step=M).status(_ratio_slo(maintenance=maint), at=at), "r1")
    assert excluded["bad"] == 0 and excluded["total"] == 5000
    sums = SloEngine(store, step=M).window_sums(_ratio_slo(maintenance=maint), at=at)
    hour = sums[(sums["region"] == "r1") & (sums["window"] == "1h")].iloc[0]
    assert hour["slices"] == 50 and hour["expected"] == 50  # coverage 100 %
    engine_wide = SloEngine(store, step=M, maintenance=maint)
    assert _row(engine_wide.status(_ratio_slo(), at=at), "r1")["bad"] == 0


def test_min_events_guard_and_no_data_and_no_budget(tmp_path: Path) -> None:
    store = _store(tmp_path, {"r1": _counters("r1", DAY, np.full(60, 1.0), np.full(60, 1.0))})
    engine = SloEngine(store, step=M)
    at = DAY + 60 * M
    st = _row(engine.status(_ratio_slo(min_events=100), at=at), "r1")
    assert st["data_state"] == slomath.INSUFFICIENT and math.isnan(st["burn_1h"])
    assert st["state"] == slomath.INSUFFICIENT and st["firing"] == ""
    st = _row(engine.status(_ratio_slo(target=1.0), at=at), "r1")
    assert st["state"] == slomath.NO_BUDGET and math.isnan(st["remaining"])
    empty = SloEngine(Store(tmp_path / "empty"), step=M)
    st = empty.status(_ratio_slo())
    assert list(st["state"]) == [slomath.NO_DATA]


def test_tiers_fire_only_on_covered_windows(tmp_path: Path) -> None:
    req = np.full(180, 100.0)
    err = np.full(180, 5.0)  # 5 % errors from the first minute: burn 50
    store = _store(tmp_path, {"r1": _counters("r1", DAY, req, err)})
    slo = _ratio_slo()
    h = SloEngine(store, step=M).history(slo, start=DAY, end=DAY + 180 * M)
    first = h.loc[h["page-1h"], "ts_utc"].min()
    assert first == DAY + 30 * M  # the 1h window is half covered after 30 minutes
    h0 = SloEngine(store, step=M, min_coverage=0).history(slo, start=DAY, end=DAY + 180 * M)
    assert h0.loc[h0["page-1h"], "ts_utc"].min() == DAY + M  # as Prometheus would
    timeline = SloEngine(store, step=M).alert_timeline(slo, h)
    page = timeline[(timeline["region"] == "r1") & (timeline["tier"] == "page-1h")]
    assert len(page) == 1 and pd.isna(page["recovered"].iloc[0])
    assert page["peak_burn"].iloc[0] == pytest.approx(50)


# ---------------------------------------------------------------- other SLI kinds
def _histogram(region: str, n: int, counts: list[float], les: list[float]) -> pd.DataFrame:
    ts = pd.date_range(DAY + M, periods=n, freq="1min")
    cum = np.cumsum(counts)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "ts_utc": ts,
                    "model": "m",
                    "arm": "v1",
                    "le": le,
                    "value": c,
                    "signal": "latency",
                    "unit": "seconds",
                }
            )
            for le, c in zip(les, cum, strict=True)
        ],
        ignore_index=True,
    )


@pytest.mark.parametrize(
    ("threshold", "good", "approximate"), [(1.0, 80, False), (1.5, 87.5, True), (0.15, 5, True)]
)
def test_latency_threshold_exact_or_interpolated(
    tmp_path: Path, threshold: float, good: float, approximate: bool
) -> None:
    les = [0.3, 0.5, 1.0, 2.0, math.inf]
    store = _store(tmp_path, {"r1": _histogram("r1", 10, [10, 20, 50, 15, 5], les)}, "histograms")
    slo = _ratio_slo(
        indicator=Indicator(
            "latency",
            numerator=SignalRef("latency", threshold=threshold),
            numerator_is_bad=False,
            total=SignalRef("latency"),
        ),
        target=0.5,
    )
    engine = SloEngine(store, step=M)
    st = _row(engine.status(slo, at=DAY + 10 * M), "r1")
    assert st["total"] == 1000 and st["bad"] == pytest.approx(1000 - 10 * good)
    assert bool(st["approximate"]) is approximate


def test_percentile_timeslices_match_histogram_quantile(tmp_path: Path) -> None:
    from analytics.histogram import histogram_quantile

    les = [0.5, 1.0, 2.0, 5.0, math.inf]
    rng = np.random.default_rng(3)
    frames = []
    for i in range(30):  # 30 minutes, slow tails in some
        counts = rng.multinomial(200, [0.6, 0.3, 0.08 - 0.002 * i, 0.02 + 0.002 * i, 0.0])
        f = _histogram("r1", 1, list(counts.astype(float)), les)
        f["ts_utc"] = DAY + (i + 1) * M
        frames.append(f)
    frame = pd.concat(frames, ignore_index=True)
    store = _store(tmp_path, {"r1": frame}, "histograms")
    slo = _ratio_slo(
        indicator=Indicator(
            "percentile", total=SignalRef("latency", quantile=0.95), op="lte", value=2.0
        ),
        method="Timeslices",
        slice_window=timedelta(minutes=5),
        slice_target=0.95,
        target=0.5,
    )
    st = _row(SloEngine(store, step=M).status(slo, at=DAY + 30 * M), "r1")
    piv = frame.pivot_table(index="ts_utc", columns="le", values="value")
    slices = piv.groupby(np.arange(30) // 5).sum()
    p95 = histogram_quantile(0.95, slices.columns.to_numpy(), slices.to_numpy())
    assert st["total"] == 6 and st["bad"] == int((p95 > 2.0).sum())
    assert 0 < st["bad"] < 6


def test_gauge_threshold_and_spend_budget(tmp_path: Path) -> None:
    ts = pd.date_range(DAY + M, periods=60, freq="1min")
    util = np.where(np.arange(60) < 6, 0.0, 0.5)  # one GPU idle for 6 minutes
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "ts_utc": ts,
                    "model": "m",
                    "arm": "v1",
                    "instance": inst,
                    "mean": u,
                    "max": u,
                    "last": u,
                    "samples": 1,
                    "step_s": 60,
                    "signal": "gpu_utilization",
                    "unit": "ratio",
                }
            )
            for inst, u in (("g0", util), ("g1", np.full(60, 0.5)))
        ]
        + [
            pd.DataFrame(
                {
                    "ts_utc": ts,
                    "model": "m",
                    "arm": "v1",
                    "instance": "node",
                    "mean": 36.0,
                    "max": 36.0,
                    "last": 36.0,
                    "samples": 1,
                    "step_s": 60,
                    "signal": "cost",
                    "unit": "usd_per_hour",
                }
            )
        ],
        ignore_index=True,
    )
    store = _store(tmp_path, {"r1": frame}, "gauges")
    engine = SloEngine(store)
    gpu = _ratio_slo(
        indicator=Indicator(
            "gauge", total=SignalRef("gpu_utilization", stat="last"), op="gt", value=0.0
        ),
        target=0.9,
    )
    st = _row(engine.status(gpu, at=DAY + 60 * M), "r1")
    assert st["total"] == 120 and st["bad"] == 6 and st["sli"] == pytest.approx(0.95)
    cost = _ratio_slo(
        indicator=Indicator(
            "budget", numerator=SignalRef("cost"), allowance=720.0 * 30, allowance_per=D30
        ),
        target=0.0,
    )
    st = _row(engine.status(cost, at=DAY + 60 * M), "r1")
    # 36 USD/h for an hour is 36 USD against an allowance of 720 USD/day = 30 USD/h.
    assert st["bad"] == pytest.approx(36) and st["total"] == pytest.approx(30)
    assert st["burn_1h"] == pytest.approx(1.2) and st["remaining"] == pytest.approx(-0.2)
    assert st["state"] == slomath.EXHAUSTED


def test_calendar_period_budget(tmp_path: Path) -> None:
    start = datetime(2024, 2, 29, 23, 0)  # an hour before March in UTC
    req = np.full(120, 100.0)
    err = np.concatenate([np.full(60, 10.0), np.full(60, 1.0)])
    store = _store(tmp_path, {"r1": _counters("r1", start, req, err)})
    slo = _ratio_slo(calendar=CalendarWindow("1M", datetime(2024, 1, 1), "UTC"), period=D30)
    engine = SloEngine(store, step=M)
    at = start + 120 * M
    st = _row(engine.status(slo, at=at), "r1")
    assert st["total"] == 6000 and st["bad"] == 60  # only March's hour counts
    h = engine.history(slo, start=start, end=at)
    g = h[h["region"] == "r1"].set_index("ts_utc")
    assert g.loc[datetime(2024, 3, 1), "total_period"] == 6000  # February's hour, complete
    assert g.loc[datetime(2024, 3, 1, 0, 1), "total_period"] == 100  # a new period began
    assert g.loc[at, "remaining"] == pytest.approx(st["remaining"])


def test_status_table_orders_worst_first(tmp_path: Path) -> None:
    store = _store(tmp_path, {"r1": _counters("r1", DAY, np.full(60, 100.0), np.full(60, 1.0))})
    engine = SloEngine(store, step=M)
    table = status_table(
        engine, [_ratio_slo(target=0.9, name="loose"), _ratio_slo(target=0.999, name="tight")]
    )
    assert table.iloc[0]["slo"] == "tight" and table.iloc[0]["state"] == slomath.EXHAUSTED
    assert {"service", "display_name", "method"} <= set(table.columns)


def _mixed_store(tmp_path: Path) -> tuple[Store, list[SloDefinition]]:
    """Two regions x two models of counters and latency buckets over 10 hours; 5 SLOs."""
    rng = np.random.default_rng(5)
    frames = {}
    for region in ("r1", "r2"):
        parts = []
        for model in ("m1", "m2"):
            req = rng.poisson(80, 600).astype(float)
            err = rng.binomial(req.astype(int), 0.01).astype(float)
            parts.append(_counters(region, DAY, req, err, model=model))
        frames[region] = pd.concat(parts, ignore_index=True)
    store = _store(tmp_path, frames)
    les = [0.5, 1.0, 2.0, math.inf]
    hist = {r: _histogram(r, 600, [40, 30, 20, 10], les) for r in ("r1", "r2")}
    with store.writer():
        for region, frame in hist.items():
            store.replace_window("histograms", region, ["latency"], DAY, DAY + 600 * M, frame)
    store.refresh()
    where = (("model", ("m2",)),)
    slos = [
        _ratio_slo(name="a"),
        _ratio_slo(name="b", group_by=("region", "model"), target=0.99),
        _ratio_slo(
            name="c",
            group_by=("model",),
            indicator=Indicator(
                "ratio", numerator=SignalRef("errors", where), total=SignalRef("requests", where)
            ),
        ),
        _ratio_slo(
            name="d",
            target=0.7,
            indicator=Indicator(
                "latency",
                numerator=SignalRef("latency", threshold=1.5),
                numerator_is_bad=False,
                total=SignalRef("latency"),
            ),
        ),
        _ratio_slo(name="e", method="RatioTimeslices", slice_window=timedelta(minutes=5)),
    ]
    return store, slos


def _assert_many_equals_one(engine: SloEngine, slos: list[SloDefinition], at: datetime) -> None:
    key = ["region", "model", "arm"]
    for slo, many in zip(slos, engine.status_many(slos, at), strict=True):
        one = engine.status(slo, at)
        a = many.sort_values(key).reset_index(drop=True)
        b = one.sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_status_many_equals_one_query_per_slo(tmp_path: Path) -> None:
    store, slos = _mixed_store(tmp_path)
    engine = SloEngine(store, step=M)
    assert [engine.batchable(s) for s in slos] == [True, True, True, True, False]
    _assert_many_equals_one(engine, slos, DAY + 600 * M)


def test_status_table_of_batched_slos_equals_the_per_slo_frames(tmp_path: Path) -> None:
    """status_table builds one frame from the batched SLOs' column arrays: the same
    table (columns, their order and dtypes, rows, values) as concatenating each SLO's
    own status frame, also when SLOs have different windows (a tier on 4h/20m adds
    burn_4h and burn_20m to one SLO only; the others' rows hold NaN there)."""
    store, slos = _mixed_store(tmp_path)
    extra = slomath.AlertTier("page-4h", "page", timedelta(hours=4), timedelta(minutes=20), 3, 0.1)
    slos = [*slos[:2], _ratio_slo(name="f", tiers=(extra,)), *slos[2:4]]
    engine = SloEngine(store, step=M)
    assert all(engine.batchable(s) for s in slos)
    at = DAY + 437 * M
    table = status_table(engine, slos, at)
    frames = []
    for slo in slos:
        st = engine.status(slo, at)
        st.insert(1, "service", slo.service)
        st.insert(2, "display_name", slo.display_name)
        st["method"] = slo.method
        frames.append(st)
    want = pd.concat(frames, ignore_index=True)
    assert list(table.columns) == list(want.columns)
    assert {"burn_4h", "burn_20m"} <= set(table.columns)
    assert table.loc[table["slo"] == "a", "burn_4h"].isna().all()
    assert table.loc[table["slo"] == "f", "burn_4h"].notna().all()
    key = ["slo", "region", "model", "arm"]
    a = table.sort_values(key).reset_index(drop=True)
    b = want.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("minutes", [437, 481, 599])
def test_hourly_rollup_gives_the_step_sums_at_any_time_and_with_maintenance(
    tmp_path: Path, minutes: int
) -> None:
    """status_many reads whole hours from the roll-up and cut hours step by step:
    at times off the hour, with maintenance edges inside hours (one of every region,
    one of r2 only) the figures equal the per-SLO step queries."""
    store, slos = _mixed_store(tmp_path)
    maint = [
        Maintenance(DAY + 100 * M + timedelta(seconds=30), DAY + 171 * M),
        Maintenance(DAY + 241 * M, DAY + 300 * M, regions=("r2",), reason="upgrade"),
    ]
    engine = SloEngine(store, step=M, maintenance=maint)
    at = DAY + minutes * M
    _assert_many_equals_one(engine, slos, at)
    plan = store.hourly_plan("counters", ["requests"], at - timedelta(days=30), at)
    assert len(plan.hourly) == 2 and not plan.minutes_all  # both regions' roll-ups are fresh
    # The regional window changes r2's figures only.
    plain = SloEngine(store, step=M, maintenance=maint[:1]).status(slos[1], at)
    scoped = engine.status(slos[1], at)
    for region, changed in (("r1", False), ("r2", True)):
        a = plain[plain["region"] == region]["total"].sum()
        b = scoped[scoped["region"] == region]["total"].sum()
        assert bool(a != b) is changed


def test_stale_or_missing_rollup_is_not_used_and_is_rebuilt(tmp_path: Path) -> None:
    """A writer killed between the data file and its roll-up (a fake: the data file is
    rewritten without its roll-up, which a real crash at that instant leaves) makes
    that roll-up stale; readers then use the steps, and housekeeping rebuilds it."""
    store, slos = _mixed_store(tmp_path)
    engine = SloEngine(store, step=M)
    at = DAY + 481 * M
    before = engine.status_many(slos, at)
    data = store.partition_dir("counters", "errors", DAY.date(), "r1")
    recent_rows = 0
    for path in store.partition_files("counters", "errors", DAY.date(), "r1"):
        table = pq.read_table(path)
        errors = table["value"].to_numpy().copy()
        ts = table["ts_utc"].to_pandas()
        recent = ((ts > at - 30 * M) & (ts <= at)).to_numpy()
        errors[recent] += 5.0  # new errors in the last half hour before at
        recent_rows += int(recent.sum())
        more = table.set_column(table.schema.get_field_index("value"), "value", pa.array(errors))
        pq.write_table(more, path.with_suffix(".tmp"))  # a new file renamed over it, as
        path.with_suffix(".tmp").replace(path)  # writers do; the roll-up left as it was
    plan = store.hourly_plan("counters", ["errors"], at - timedelta(hours=24), at)
    assert set(store.partition_files("counters", "errors", DAY.date(), "r1")) <= set(
        plan.minutes_all
    )
    assert store.rollup_path("counters", data) not in plan.hourly
    after = engine.status_many(slos, at)
    _assert_many_equals_one(engine, slos, at)
    r1 = before[0]["bad"].iloc[0], after[0]["bad"].iloc[0]
    assert r1[1] - r1[0] == 5.0 * recent_rows == 300.0  # 30 min x 2 models, from the steps
    store.rollup_path(
        "counters", store.partition_dir("counters", "requests", DAY.date(), "r2")
    ).unlink()
    done = store.housekeeping()
    assert done.rollups_rebuilt == 2
    plan = store.hourly_plan("counters", ["errors", "requests"], at - timedelta(hours=24), at)
    assert not plan.minutes_all and len(plan.hourly) == 4
    _assert_many_equals_one(engine, slos, at)


def test_latency_threshold_per_bucket_layout_of_each_series(tmp_path: Path) -> None:
    """Two exporters in one fleet with different buckets (vLLM has a 10 s bound,
    Prometheus's own histogram 8 s and 20 s): each series is read with its own bounds.
    Before, the bounds were chosen from the union of every series' buckets (10 s, exact
    for r1) and r2, without a 10 s bucket, counted every request as bad."""
    vllm = _histogram("r1", 30, [70, 20, 10], [5.0, 10.0, math.inf])
    prom = _histogram("r2", 30, [60, 30, 6, 4], [3.0, 8.0, 20.0, math.inf])
    prom["model"] = "prometheus"
    store = _store(tmp_path, {"r1": vllm, "r2": prom}, "histograms")
    slo = _ratio_slo(
        group_by=("region", "model"),
        indicator=Indicator(
            "latency",
            numerator=SignalRef("latency", threshold=10.0),
            numerator_is_bad=False,
            total=SignalRef("latency"),
        ),
        target=0.5,
    )
    engine = SloEngine(store, step=M)
    at = DAY + 30 * M
    # r1: 90 of 100 per step at <= 10 s, exactly; r2: 90 at <= 8 s, 96 at <= 20 s,
    # interpolated at 10 s: 90 + (10 - 8) / (20 - 8) * 6 = 91 (histogram_fraction).
    want_bad = {"r1": 30 * (100 - 90), "r2": 30 * (100 - 91)}
    for frame in (engine.status(slo, at), engine.status_many([slo], at)[0]):
        rows = frame.set_index("region")
        for region, bad in want_bad.items():
            assert rows.loc[region, "total"] == 30 * 100
            assert rows.loc[region, "bad"] == pytest.approx(bad, rel=1e-12), region
        assert rows.loc["*", "bad"] == pytest.approx(sum(want_bad.values()), rel=1e-12)
        assert bool(rows.loc["r2", "approximate"])  # one series interpolates
    # The burn-down (history) reads the same per-series bounds.
    hist = engine.history(slo, DAY + 10 * M, at, every=timedelta(minutes=10))
    last = hist[hist["ts_utc"] == hist["ts_utc"].max()].set_index("region")
    assert last.loc["r2", "cum_bad"] == pytest.approx(want_bad["r2"], rel=1e-12)
