"""Parity with a real Prometheus: error ratios and alert tier states.

Four days of the demo fleet's ap-south-1 (with the mistral-7b error burst) are
written both into an Observatory store and, as OpenMetrics backfilled by promtool,
into a real Prometheus (Debian's 2.42).  Then:

1. Error ratios: Observatory's window sums for 5m, 1h, 6h, 1d and 3d at a set of
   times equal ``sum(increase(bad[w])) / sum(increase(total[w]))`` from Prometheus.
   The extrapolation difference is zero here, and this is why: samples sit on every
   minute, the evaluation times are whole minutes, and Prometheus 2.x range
   selectors are closed ``[t - w, t]``, so the sample at ``t - w`` is selected and
   both edges hold samples (nothing to extrapolate); where a window reaches before
   the data, the counters start at 0 and Prometheus's zero-point rule stops the
   extrapolation at the first sample.  Observatory's ``(t - w, t]`` over step ends
   adds exactly the same increases.  (With Prometheus 3's left-open ranges, or
   off-grid times, Prometheus extrapolates; ``analytics.slo.prometheus_increase``
   reproduces that, see tests/test_slo_math.py.)
2. Alert states: the exported rules' recording rules are evaluated by
   ``promtool tsdb create-blocks-from rules`` at 1-minute steps, loaded into the
   server, and the exported page and ticket alert expressions are queried over the
   whole history; they fire at exactly the minutes where Observatory's tiers fire
   (with ``min_coverage=0``: Prometheus has no coverage guard).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
from prom_harness import (
    PROMTOOL,
    PromServer,
    build_fleet,
    missing_binaries,
)

from analytics import slo as slomath
from observatory.demo import build_store
from observatory.slo_engine import SloEngine
from observatory.slo_rules import export_rules
from observatory.slo_specs import load_specs
from observatory.store import Store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
REGION = "ap-south-1"
DAYS = 4
END = datetime(2026, 3, 1, tzinfo=UTC)
BAD = 'vllm:request_success_total{finished_reason="error"}'
TOTAL = "vllm:request_success_total"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    why = missing_binaries()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("slo-parity")
    fleet = build_fleet(root / "fleet", [REGION], days=DAYS, end=END)
    build_store(root / "store", days=DAYS, regions=[REGION], end=END)
    (slo,) = [d for d in load_specs([ROOT / "examples" / "slo" / "availability.yaml"])]
    server = PromServer(fleet.tsdb_copy(REGION, root / "tsdb"), root / "server", name=REGION)
    server.start()
    try:
        yield {
            "root": root,
            "fleet": fleet,
            "server": server,
            "slo": slo,
            "engine": SloEngine(Store(root / "store"), min_coverage=0),
            "start": fleet.start.replace(tzinfo=None),
            "end": fleet.end.replace(tzinfo=None),
        }
    finally:
        server.stop()


def _burst(setup: Any) -> datetime:
    (inc,) = [i for i in setup["fleet"].truth["incidents"] if i["kind"] == "error_burst"]
    return datetime.fromisoformat(inc["start"]).replace(tzinfo=None)


def test_error_ratios_equal_prometheus_increase(setup: Any) -> None:
    engine: SloEngine = setup["engine"]
    server: PromServer = setup["server"]
    slo = setup["slo"]
    burst = _burst(setup)
    times = [
        setup["start"] + timedelta(hours=7, minutes=13),
        burst + timedelta(minutes=47),
        burst + timedelta(hours=2, minutes=1),
        setup["end"] - timedelta(minutes=1),
        setup["end"],
    ]
    compared = 0
    for at in times:
        sums = engine.window_sums(slo, at=at)
        for w in ("5m", "1h", "6h", "1d", "3d"):
            for model in ("mistral-7b", "llama-3.1-70b"):
                ours = sums[(sums["window"] == w) & (sums["model"] == model)].iloc[0]
                expr = (
                    f'sum(increase({BAD[:-1]},model_name="{model}"}}[{w}])) / '
                    f'sum(increase({TOTAL}{{model_name="{model}"}}[{w}]))'
                )
                theirs = server.scalar(expr, at.replace(tzinfo=UTC))
                assert ours["bad"] / ours["total"] == pytest.approx(theirs, rel=1e-12, abs=0), (
                    at,
                    w,
                    model,
                )
                compared += 1
    assert compared == len(times) * 5 * 2


def _query_range(server: PromServer, expr: str, start: datetime, end: datetime) -> dict[str, set]:
    """Times (UTC naive) at which ``expr`` had a value, per model_name."""
    out: dict[str, set[datetime]] = {}
    chunk = timedelta(hours=24)
    t = start
    while t <= end:
        stop = min(t + chunk, end)
        answer = requests.get(
            f"{server.url}/api/v1/query_range",
            params={
                "query": expr,
                "start": f"{t.replace(tzinfo=UTC).timestamp():.0f}",
                "end": f"{stop.replace(tzinfo=UTC).timestamp():.0f}",
                "step": "60",
            },
            timeout=120,
        ).json()
        assert answer["status"] == "success", answer
        for series in answer["data"]["result"]:
            model = series["metric"].get("model_name", "*")
            for ts, _ in series["values"]:
                out.setdefault(model, set()).add(
                    datetime.fromtimestamp(float(ts), UTC).replace(tzinfo=None)
                )
        t = stop + timedelta(minutes=1)
    return out


def _inline(alert_expr: str, recording: dict[str, str]) -> str:
    """The alert expression with each recorded SLI replaced by its recording rule's query."""
    return re.sub(
        r"slo:sli_error:ratio_rate(\w+)\{[^}]*\}",
        lambda m: f"({recording[m.group(1)].strip()})",
        alert_expr,
    )


def _compare(
    rows: pd.DataFrame, tiers: list[str], theirs: set[datetime], slo: Any, severity: str
) -> list[datetime]:
    """Minutes where Observatory's tiers and Prometheus's alert disagree, beyond ties."""
    ours = set(rows.loc[rows[tiers].any(axis=1), "ts_utc"])
    out = []
    for t in sorted(ours ^ theirs):
        r = rows[rows["ts_utc"] == t].iloc[0]
        tie = any(
            abs(r[f"burn_{slomath.window_name(w)}"] / tier.factor - 1) < 1e-9
            for tier in slo.tiers
            if tier.severity == severity
            for w in (tier.long, tier.short)
        )
        if not tie:
            out.append(t)
    return out


def test_alert_states_equal_exported_rules_evaluated_by_prometheus(setup: Any) -> None:
    root: Path = setup["root"]
    server: PromServer = setup["server"]
    slo = setup["slo"]
    start, end = setup["start"], setup["end"]
    export = export_rules([slo], [REGION])
    sli_groups = [g for g in export.groups if "sli-recordings" in str(g["name"])]
    recording = {
        str(r["record"]).removeprefix("slo:sli_error:ratio_rate"): str(r["expr"])
        for g in sli_groups
        for r in g["rules"]
    }
    alerts = [r for g in export.groups if "alerts" in str(g["name"]) for r in g["rules"]]
    history = setup["engine"].history(slo, start=start, end=end, every=timedelta(minutes=1))
    rows_by_model = dict(tuple(history[history["region"] == REGION].groupby("model")))

    # 1. The exported rules' PromQL, evaluated by Prometheus at whole minutes: the same
    #    minutes fire, in every group, for both severities.
    for alert in alerts:
        severity = alert["labels"]["sloth_severity"]
        tiers = [t.name for t in slo.tiers if t.severity == severity]
        fired = _query_range(server, _inline(str(alert["expr"]), recording), start, end)
        for model, rows in rows_by_model.items():
            theirs = fired.get(str(model), set())
            assert _compare(rows, tiers, theirs, slo, severity) == [], (severity, model)
            if severity == "page" and model == "mistral-7b":
                assert len(theirs) > 10  # the burst pages in Prometheus too

    # 2. The recording rules backfilled by promtool and the alert queried over them.
    #    Prometheus evaluates a rule group at a fixed offset inside its interval (a hash
    #    of the group's name and file; promtool does the same): at hh:mm:ss.sss the
    #    range [t - 5m, t] holds one sample less than at hh:mm, so its windows cover
    #    one step less (extrapolated).  States then differ only next to a transition.
    rules_file = root / "recording.yaml"
    rules_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": g["name"],
                        "rules": [r for r in g["rules"] if not str(r["record"]).endswith("30d")],
                    }
                    for g in sli_groups
                ]
            },
            sort_keys=False,
        )
    )
    out_dir = root / "rule-blocks"
    proc = subprocess.run(
        [
            str(PROMTOOL),
            "tsdb",
            "create-blocks-from",
            "rules",
            f"--start={int(start.replace(tzinfo=UTC).timestamp())}",
            f"--end={int(end.replace(tzinfo=UTC).timestamp())}",
            f"--url={server.url}",
            "--eval-interval=60s",
            f"--output-dir={out_dir}",
            str(rules_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    server.stop()
    for block in out_dir.iterdir():
        if block.is_dir():
            shutil.copytree(block, server.tsdb / block.name)
    server.start()
    recorded = server.query('slo:sli_error:ratio_rate5m{model_name="mistral-7b"}[3m]', end)
    offset_s = float(recorded[0]["values"][-1][0]) % 60
    disagreements = 0
    for alert in alerts:
        severity = alert["labels"]["sloth_severity"]
        tiers = [t.name for t in slo.tiers if t.severity == severity]
        fired = _query_range(server, str(alert["expr"]), start, end)
        for model, rows in rows_by_model.items():
            theirs = fired.get(str(model), set())
            firing = rows.set_index("ts_utc")[tiers].any(axis=1)
            changes = firing.index[firing.ne(firing.shift()).to_numpy()][1:]
            for t in _compare(rows, tiers, theirs, slo, severity):
                near = min((abs(t - c) for c in changes), default=timedelta(days=1))
                assert near <= timedelta(minutes=5), (severity, model, t, offset_s)
                disagreements += 1
    print(f"rule group offset {offset_s:.3f} s; {disagreements} minutes differ, all at edges")
