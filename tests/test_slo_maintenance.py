"""Maintenance windows of the main configuration (``maintenance:``) in every SLO.

Validation errors name file:line and the key path; a window takes its steps out of
numerator and denominator exactly, in its regions only; ``observatory slo status
--config`` applies them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analytics import slo as slomath
from observatory.cli import main
from observatory.config import ConfigError, load_config
from observatory.slo_engine import SloEngine, maintenance_from_config
from observatory.slo_specs import Indicator, SignalRef, SloDefinition
from observatory.store import Store

DAY = datetime(2024, 3, 1)
M = timedelta(minutes=1)
REGIONS = """\
regions:
  - name: eu-west-1
    url: http://eu.example:9090
    latitude: 53.3
    longitude: -6.3
  - name: us-east-1
    url: http://us.example:9090
    latitude: 38.9
    longitude: -77.0
"""


def _config(tmp_path: Path, maintenance: str, store: Path | None = None) -> Path:
    path = tmp_path / "observatory.yaml"
    head = f"store: {store}\n" if store else ""
    path.write_text(head + REGIONS + maintenance, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("maintenance", "expected"),
    [
        (
            "maintenance:\n  - start: 2024-03-01T02:00:00Z\n    end: 2024-03-01T01:00:00Z\n",
            ":12: maintenance[0].end: end 2024-03-01T01:00:00Z is not after start "
            "2024-03-01T02:00:00Z",
        ),
        (
            "maintenance:\n  - start: 2024-03-01T02:00:00Z\n    end: 2024-03-01T03:00:00Z\n"
            "    regions: [eu-west-1, eu-west-9]\n",
            ":13: maintenance[0].regions[1]: unknown region 'eu-west-9'; the configured "
            "regions are eu-west-1, us-east-1",
        ),
        (
            "maintenance:\n  - start: yesterday\n    end: 2024-03-01T03:00:00Z\n",
            ":11: maintenance[0].start: Input should be a valid datetime",
        ),
        (  # an impossible date: PyYAML would raise a bare ValueError with no line
            "maintenance:\n  - start: 2024-02-30T02:00:00Z\n    end: 2024-03-01T03:00:00Z\n",
            ":11: maintenance[0].start: Input should be a valid datetime or date, day value "
            "is outside expected range",
        ),
        (  # a bare number: pydantic alone would read it as Unix seconds (1970)
            "maintenance:\n  - start: 12345\n    end: 2024-03-01T03:00:00Z\n",
            ":11: maintenance[0].start: 12345 is a number, not a time; give an "
            "ISO 8601 time such as 2026-03-01T02:00:00Z",
        ),
        (
            "maintenance:\n  - start: 2024-03-01T02:00:00Z\n    end: 2024-03-01T03:00:00Z\n"
            "    why: upgrade\n",
            ":13: maintenance[0].why: unknown key (check the spelling; see docs/configuration.md)",
        ),
    ],
)
def test_bad_windows_are_refused_with_file_and_line(
    tmp_path: Path, maintenance: str, expected: str
) -> None:
    path = _config(tmp_path, maintenance)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (message,) = exc.value.messages
    assert message.startswith(str(path) + expected), message


def test_times_with_a_zone_become_utc_and_regions_default_to_all(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "maintenance:\n"
        "  - start: 2024-03-01T04:00:00+02:00\n    end: '2024-03-01 03:00'\n"
        "    reason: database upgrade\n"
        "  - start: 2024-03-01T05:00:00Z\n    end: 2024-03-01T06:00:00Z\n"
        "    regions: [us-east-1]\n",
    )
    windows = maintenance_from_config(load_config(path).settings.maintenance)
    assert windows[0].start == DAY + timedelta(hours=2) and windows[0].end == DAY + timedelta(
        hours=3
    )
    assert windows[0].regions is None and windows[0].reason == "database upgrade"
    assert windows[1].regions == ("us-east-1",)
    assert windows[1].applies_to("us-east-1") and not windows[1].applies_to("eu-west-1")


def _store(root: Path) -> tuple[Store, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Two regions, two hours of 1-minute steps; errors in both during 00:31 .. 01:00."""
    rng = np.random.default_rng(11)
    store = Store(root)
    data = {}
    with store.writer():
        for region in ("eu-west-1", "us-east-1"):
            req = rng.poisson(200, 120).astype(float)
            err = rng.binomial(req.astype(int), 0.001).astype(float)
            err[30:60] = np.floor(req[30:60] * 0.2)  # an outage: steps ending 00:31 .. 01:00
            ts = pd.date_range(DAY + M, periods=120, freq="1min")
            frame = pd.concat(
                [
                    pd.DataFrame(
                        {
                            "ts_utc": ts,
                            "model": "m",
                            "arm": "",
                            "instance": "",
                            "value": v,
                            "signal": s,
                            "unit": "requests",
                        }
                    )
                    for s, v in (("requests", req), ("errors", err))
                ]
            )
            store.replace_window(
                "counters", region, ["errors", "requests"], DAY, DAY + 120 * M, frame
            )
            data[region] = (req, err)
    return store, data


def _slo() -> SloDefinition:
    return SloDefinition(
        name="availability",
        display_name="Availability",
        service="api",
        description="",
        source="test",
        indicator=Indicator("ratio", numerator=SignalRef("errors"), total=SignalRef("requests")),
        target=0.999,
        tiers=tuple(slomath.alert_tiers(timedelta(days=30))),
        group_by=("region",),
    )


def test_a_window_leaves_its_steps_out_of_the_budget_exactly(tmp_path: Path) -> None:
    store, data = _store(tmp_path / "store")
    path = _config(
        tmp_path,
        "maintenance:\n"
        "  - start: 2024-03-01T00:30:00Z\n    end: 2024-03-01T01:00:00Z\n"
        "    regions: [us-east-1]\n    reason: announced upgrade\n",
    )
    windows = maintenance_from_config(load_config(path).settings.maintenance)
    at = DAY + 120 * M
    slo = _slo()
    plain = SloEngine(store, step=M).status(slo, at).set_index("region")
    excluded = SloEngine(store, step=M, maintenance=windows).status(slo, at).set_index("region")
    inside = np.zeros(120, dtype=bool)
    inside[30:60] = True  # steps ending in (00:30, 01:00]
    budget = slomath.error_budget_fraction(0.999)
    for region, (req, err) in data.items():
        keep = ~inside if region == "us-east-1" else np.ones(120, dtype=bool)
        bad, total = err[keep].sum(), req[keep].sum()
        row = excluded.loc[region]
        assert row["bad"] == bad and row["total"] == total
        assert row["remaining"] == pytest.approx(1 - (bad / total) / budget, rel=1e-12)
        # Coverage: steps with data over the period's steps outside the region's windows.
        expected = 30 * 1440 - (~keep).sum()
        assert row["coverage"] == pytest.approx(keep.sum() / expected, rel=1e-12)
    assert excluded.loc["eu-west-1", "bad"] == plain.loc["eu-west-1", "bad"]
    assert excluded.loc["us-east-1", "bad"] < plain.loc["us-east-1", "bad"]
    # The global roll-up adds the groups' events (us-east-1 without its window).
    assert excluded.loc["*", "bad"] == sum(excluded.loc[r, "bad"] for r in data)
    # status_many (the hourly roll-up path) gives the same figures.
    (many,) = SloEngine(store, step=M, maintenance=windows).status_many([slo], at)
    pd.testing.assert_frame_equal(
        many.set_index("region").sort_index(), excluded.sort_index(), check_exact=False, rtol=1e-12
    )


def test_slo_status_command_applies_the_configured_windows(tmp_path: Path) -> None:
    _, data = _store(tmp_path / "store")
    path = _config(
        tmp_path,
        "maintenance:\n  - start: 2024-03-01T00:30:00Z\n    end: 2024-03-01T01:00:00Z\n",
        store=tmp_path / "store",
    )
    specs = tmp_path / "slo.yaml"
    specs.write_text(
        "version: prometheus/v1\nservice: api\nslos:\n  - name: availability\n"
        "    objective: 99.9\n    sli:\n      events:\n"
        '        error_query: sum(rate(vllm:request_success_total{finished_reason="error"}'
        "[{{.window}}]))\n"
        "        total_query: sum(rate(vllm:request_success_total[{{.window}}]))\n"
        "    alerting:\n      page_alert: {disable: true}\n      ticket_alert: {disable: true}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    args = [
        "slo",
        "status",
        "--specs",
        str(specs),
        "--at",
        "2024-03-01T02:00:00",
        "--format",
        "json",
    ]
    with_config = runner.invoke(main, [*args, "--config", str(path)])
    without = runner.invoke(main, [*args, "--store", str(tmp_path / "store")])
    assert with_config.exit_code == 0, with_config.output
    assert without.exit_code == 0, without.output
    rows = {r["region"]: r for r in json.loads(with_config.stdout)}
    plain = {r["region"]: r for r in json.loads(without.stdout)}
    assert with_config.stderr == (
        "maintenance excluded: steps in (2024-03-01T00:30:00Z, 2024-03-01T01:00:00Z], "
        "every region\n"
    )
    assert without.stderr == ""
    total = sum(req.sum() for req, _ in data.values())
    inside = sum(req[30:60].sum() for req, _ in data.values())
    assert plain["*"]["total"] == total and rows["*"]["total"] == total - inside
