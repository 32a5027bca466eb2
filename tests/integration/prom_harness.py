"""Real Prometheus servers for integration tests and benchmarks.

Shared by ``tests/integration/conftest.py`` and ``bench/collect_backfill.py``:

- :func:`build_fleet`: the demo fleet as OpenMetrics text (``observatory demo
  --openmetrics``), backfilled with ``promtool tsdb create-blocks-from openmetrics``;
- :class:`PromServer`: one ``prometheus`` process on a free loopback port, started,
  waited for (``/-/ready``), killed and restarted on the same TSDB folder and port;
- :func:`write_config`: an Observatory configuration file pointing at servers;
- :func:`run_cli`: the ``observatory`` command as a subprocess;
- :func:`serve_http_error`: a fake API answering every request with HTTP 500.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from collectors import demo_fleet

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
REPO = Path(__file__).resolve().parents[2]

#: Coordinates of the demo regions (the config requires them).
COORDS = {
    "us-east-1": (38.95, -77.45),
    "us-west-2": (45.84, -119.70),
    "eu-west-1": (53.35, -6.26),
    "eu-central-1": (50.11, 8.68),
    "ap-northeast-1": (35.68, 139.69),
    "ap-south-1": (19.08, 72.88),
    "sa-east-1": (-23.55, -46.63),
}
#: The presets the demo fleet exports (late-arriving labels included).
DEMO_PRESETS = list(demo_fleet.DEMO_PRESETS)
#: A Prometheus that only serves backfilled blocks: no scrape targets.
BACKFILL_PROM_CONFIG = "global:\n  scrape_interval: 1m\n"


def missing_binaries() -> str | None:
    """Why real-Prometheus tests cannot run here, or None when they can."""
    missing = [str(p) for p in (PROMETHEUS, PROMTOOL) if not p.exists()]
    if missing:
        return (
            f"{', '.join(missing)} absent: install the Debian package 'prometheus' "
            "(scripts/setup.sh --test does)"
        )
    return None


def observatory_cmd() -> list[str]:
    """The ``observatory`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("observatory")
    return [str(script)] if script.exists() else [sys.executable, "-m", "observatory.cli"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM when the process that started it dies (no orphans)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def hour_floor(t: datetime) -> datetime:
    """``t`` floored to the hour, UTC."""
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def run_cli(
    args: Sequence[str],
    timeout: float = 300,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``observatory ARGS``; stdout and stderr captured as text."""
    return subprocess.run(
        [*observatory_cmd(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        env=env,
        check=False,
    )


# --------------------------------------------------------------------------- fleet
@dataclass
class Fleet:
    """The demo fleet as OpenMetrics files and promtool blocks.

    ``blocks[region]`` is a pristine TSDB folder made by promtool; servers run on
    copies (:meth:`tsdb_copy`), because a running Prometheus writes into its folder.
    """

    root: Path
    start: datetime
    end: datetime
    truth: dict[str, Any]
    regions: list[str]
    blocks: dict[str, Path] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def tsdb_copy(self, region: str, dest: Path) -> Path:
        """A fresh TSDB folder for a server of ``region`` (a copy of its blocks)."""
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(self.blocks[region], dest)
        return dest


def build_fleet(
    root: Path,
    regions: Sequence[str],
    days: float,
    end: datetime,
    seed: int = 7,
    keep_openmetrics: bool = False,
) -> Fleet:
    """Write the demo fleet as OpenMetrics (``observatory demo``) and backfill it.

    Raises:
        RuntimeError: ``observatory demo`` or ``promtool`` failed (their output quoted).
    """
    root.mkdir(parents=True, exist_ok=True)
    om_dir = root / "openmetrics"
    timings: dict[str, float] = {}
    began = time.monotonic()
    args = [
        "demo",
        "--openmetrics",
        str(om_dir),
        "--days",
        f"{days:g}",
        "--seed",
        str(seed),
        "--end",
        end.astimezone(UTC).isoformat(),
    ]
    for r in regions:
        args += ["--region", r]
    done = run_cli(args, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"observatory demo failed ({done.returncode}): {done.stderr[-2000:]}")
    timings["openmetrics_s"] = time.monotonic() - began
    truth = json.loads((om_dir / "ground_truth.json").read_text(encoding="utf-8"))
    fleet = Fleet(
        root=root,
        start=datetime.fromisoformat(truth["start_utc"]),
        end=datetime.fromisoformat(truth["end_utc"]),
        truth=truth,
        regions=list(regions),
    )
    began = time.monotonic()
    for r in regions:
        om = om_dir / f"{r}.om"
        with open(om, encoding="utf-8") as fh:
            fleet.samples[r] = sum(1 for line in fh if line[:1] not in ("#", ""))
        out = root / "blocks" / r
        if out.exists():
            shutil.rmtree(out)
        # promtool re-reads the whole file once per block it writes (2 h by default:
        # 168 passes for 14 days); --max-block-duration (accepted by 2.42, listed
        # only by later versions) makes blocks as long as the history allows.
        max_block = f"--max-block-duration={max(2, math.ceil(days * 24))}h"
        proc = subprocess.run(
            [
                str(PROMTOOL),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--quiet",
                max_block,
                str(om),
                str(out),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"promtool failed on {om} ({proc.returncode}): {proc.stderr[-2000:]}"
            )
        fleet.blocks[r] = out
        if not keep_openmetrics:
            om.unlink()
    timings["promtool_s"] = time.monotonic() - began
    fleet.timings = timings
    return fleet


# --------------------------------------------------------------------------- servers
class _Process:
    """A server process on 127.0.0.1: started, waited for, stopped (its log in a file)."""

    def __init__(self, name: str, workdir: Path, port: int | None, scheme: str = "http"):
        self.name = name
        self.port = port or free_port()
        self.scheme = scheme
        self.log_path = workdir / f"{name}.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _spawn(self, cmd: list[str], ready_url: str, timeout: float, **probe: Any) -> None:
        """Start ``cmd`` and wait until ``ready_url`` answers 200.

        Raises:
            RuntimeError: it exited or was not ready in time (its log's tail quoted).
        """
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(ready_url, timeout=1, **probe).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} not ready on {ready_url} after {timeout}s: {self.log_tail()}"
        )

    def stop(self, kill: bool = False, timeout: float = 20) -> None:
        """Terminate it (SIGTERM, then SIGKILL after ``timeout``), or kill it at once."""
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self.proc is not None:
            self._log.close()
        self.proc = None

    @property
    def running(self) -> bool:
        """True while its process lives."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of its log."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"


class PromServer(_Process):
    """One real Prometheus on 127.0.0.1.

    Args:
        tsdb: its storage folder (backfilled blocks, or empty).
        workdir: where its configuration file and log go.
        port: the port (default: a free one); kept across :meth:`restart`.
        config_text: prometheus.yml; ``{port}`` is replaced by the port (for a
            Prometheus that scrapes itself).
        extra_args: further command-line flags (``--query.max-samples=2000``,
            ``--web.config.file=...``).
        scheme: ``https`` for a server with a TLS web config (:attr:`url`, readiness).
        ready_kwargs: keyword arguments of the readiness probe's ``requests.get``
            (``verify``, ``cert``, ``auth`` for a TLS or basic-auth server).
    """

    def __init__(
        self,
        tsdb: Path,
        workdir: Path,
        port: int | None = None,
        config_text: str = BACKFILL_PROM_CONFIG,
        name: str = "prometheus",
        extra_args: Sequence[str] = (),
        scheme: str = "http",
        ready_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(name, workdir, port, scheme)
        self.tsdb = tsdb
        self.extra_args = list(extra_args)
        self.ready_kwargs = dict(ready_kwargs or {})
        self.workdir = workdir
        self.config_path = workdir / f"{name}.yml"
        self.config_path.write_text(config_text.replace("{port}", str(self.port)), encoding="utf-8")

    def start(self, timeout: float = 60) -> PromServer:
        """Start it and wait for ``/-/ready``.

        Raises:
            RuntimeError: it exited or was not ready in time (its log's tail quoted).
        """
        cmd = [
            str(PROMETHEUS),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tsdb}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self.extra_args,
        ]
        self._spawn(cmd, f"{self.url}/-/ready", timeout, **self.ready_kwargs)
        return self

    def restart(self, timeout: float = 60) -> PromServer:
        """Start it again on the same TSDB folder and port."""
        self.stop()
        return self.start(timeout)

    def query(self, expr: str, at: datetime | float) -> list[dict[str, Any]]:
        """``/api/v1/query`` at ``at``; the result vector.

        Raises:
            AssertionError: the answer is not a success.
        """
        t = at.timestamp() if isinstance(at, datetime) else at
        answer = requests.get(
            f"{self.url}/api/v1/query",
            params={"query": expr, "time": f"{t:.3f}"},
            timeout=30,
            **self.ready_kwargs,
        ).json()
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def scalar(self, expr: str, at: datetime | float) -> float:
        """The single value ``expr`` evaluates to at ``at``."""
        result = self.query(expr, at)
        assert len(result) == 1, f"{expr}: expected one series, got {result}"
        return float(result[0]["value"][1])


@contextlib.contextmanager
def serve_http_error(status: int = 500, body: str = "injected failure") -> Iterator[str]:
    """A fake HTTP API on 127.0.0.1 answering every request with ``status`` and ``body``.

    Yields its base URL.
    """
    payload = json.dumps({"status": "error", "errorType": "internal", "error": body}).encode()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class ServedFleet:
    """The fleet plus its running servers (``servers[region]``)."""

    fleet: Fleet
    servers: dict[str, PromServer]

    @property
    def urls(self) -> dict[str, str]:
        """Region name -> base URL."""
        return {r: s.url for r, s in self.servers.items()}


@dataclass
class Collected:
    """One ``observatory collect`` of the whole fleet window."""

    store: Path
    config: Path
    result: subprocess.CompletedProcess[str]


# --------------------------------------------------------------------------- config
def write_config(
    path: Path,
    store: Path,
    regions: dict[str, str],
    presets: Sequence[str] = DEMO_PRESETS,
    region_extra: dict[str, dict[str, Any]] | None = None,
    **collection: Any,
) -> Path:
    """Write an Observatory config: ``regions`` maps name -> base URL.

    ``collection`` keys (step, chunk, lookback, settle, timeout, counter_lookback, ...)
    go to the ``collection`` section as given; ``region_extra[name]`` adds keys to a
    region (backend, tenant, dedup_label, signals, prices, ...).
    """
    body = {
        "store": str(store),
        "collection": {"step": "60s", "chunk": "6h", **collection},
        "regions": [
            {
                "name": name,
                "url": url,
                "latitude": COORDS.get(name, (0.0, 0.0))[0],
                "longitude": COORDS.get(name, (0.0, 0.0))[1],
                "presets": list(presets),
                **(region_extra or {}).get(name, {}),
            }
            for name, url in regions.items()
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


def iso(t: datetime) -> str:
    """ISO 8601, UTC."""
    return t.astimezone(UTC).isoformat()


def default_fleet_end(now: datetime | None = None) -> datetime:
    """The fleet's end for tests: now floored to the hour, minus 2 hours."""
    return hour_floor(now or datetime.now(UTC)) - timedelta(hours=2)


def store_totals(
    store_path: Path, signals: Sequence[str] = ("requests", "errors", "energy")
) -> dict[str, dict[str, float]]:
    """``{region: {signal: SUM(value)}}`` of counter signals in a store."""
    from observatory.store import Store

    placeholders = ", ".join(f"'{s}'" for s in signals)
    frame = Store(store_path).query(
        f"SELECT region, signal, SUM(value) AS v FROM counters WHERE signal IN ({placeholders}) "
        "GROUP BY region, signal"
    )
    out: dict[str, dict[str, float]] = {}
    for row in frame.itertuples(index=False):
        out.setdefault(str(row.region), {})[str(row.signal)] = float(row.v)
    return out


def truth_totals(truth: dict[str, Any], region: str) -> dict[str, float]:
    """Ground-truth totals of a region under the store's signal names."""
    t = truth["totals"][region]
    return {"requests": t["requests"], "errors": t["errors"], "energy": t["energy_joules"]}


# --------------------------------------------------------------------------- extras
def om_labels(labels: dict[str, str]) -> str:
    """``{a="x",b="y"}`` (empty for no labels), values written as given."""
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""


def om_lines(name: str, labels: dict[str, str], points: Iterable[tuple[float, Any]]) -> list[str]:
    """OpenMetrics sample lines of one series: ``(unix seconds, value)`` in time order."""
    lab = om_labels(labels)
    return [f"{name}{lab} {v} {t}" for t, v in points]


def backfill_openmetrics(
    text: str, root: Path, name: str = "custom", into: Path | None = None
) -> Path:
    """Backfill OpenMetrics ``text`` (ending in ``# EOF``) into a fresh TSDB folder, or
    (``into``) add its blocks to an existing one (late data: restart its server).

    Raises:
        RuntimeError: promtool refused it (its output quoted).
    """
    root.mkdir(parents=True, exist_ok=True)
    om = root / f"{name}.om"
    om.write_text(text, encoding="utf-8")
    out = into or root / f"tsdb-{name}"
    if into is None and out.exists():
        shutil.rmtree(out)
    proc = subprocess.run(
        [str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(om), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"promtool failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return out


@contextlib.contextmanager
def serve_proxy(
    target: str,
    delay_s: float = 0.0,
    prefix: str = "",
    require_headers: dict[str, str] | None = None,
) -> Iterator[str]:
    """A small reverse proxy on 127.0.0.1 in front of a real Prometheus at ``target``.

    ``delay_s``: sleep before forwarding (a slow Prometheus).  ``prefix``: the proxy
    serves the API under this path prefix (Mimir's ``/prometheus``) and strips it.
    ``require_headers``: answer 401 with a plain-text body unless every header has the
    given value (Mimir's ``X-Scope-OrgID``).  Yields the proxy's base URL (with prefix).
    """
    needed = require_headers or {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if delay_s:
                time.sleep(delay_s)
            for key, value in needed.items():
                if self.headers.get(key) != value:
                    body = b"no org id\n"
                    self.send_response(401)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
            path = self.path
            if prefix:
                if not path.startswith(prefix + "/"):
                    self.send_error(404)
                    return
                path = path[len(prefix) :]
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length else None
            headers = {"Content-Type": self.headers.get("Content-Type", "")} if data else {}
            try:
                resp = requests.request(
                    self.command, target + path, data=data, headers=headers, timeout=120
                )
            except requests.RequestException:
                self.send_error(502)
                return
            try:
                self.send_response(resp.status_code)
                self.send_header("Content-Type", resp.headers.get("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- VictoriaMetrics
VICTORIA_METRICS = Path("/usr/bin/victoria-metrics")


class VMServer(_Process):
    """One real single-node VictoriaMetrics (Debian's ``victoria-metrics``) on 127.0.0.1.

    Started with ``-search.latencyOffset=0s`` (it hides the last 30 s by default) and
    ``-search.disableCache`` (a test imports data, then queries it at once).
    """

    def __init__(self, storage: Path, workdir: Path, name: str = "victoria-metrics"):
        super().__init__(name, workdir, None)
        self.storage = storage

    def start(self, timeout: float = 60) -> VMServer:
        """Start it and wait for ``/health``.

        Raises:
            RuntimeError: it exited or was not ready in time (its log's tail quoted).
        """
        cmd = [
            str(VICTORIA_METRICS),
            f"-storageDataPath={self.storage}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
        ]
        self._spawn(cmd, f"{self.url}/health", timeout)
        return self

    def import_openmetrics(self, path: Path, batch_lines: int = 200_000) -> int:
        """POST an OpenMetrics file (seconds timestamps) to ``/api/v1/import/prometheus``
        (milliseconds timestamps), then flush it to searchable storage.  Returns the
        number of samples sent.

        Raises:
            RuntimeError: VictoriaMetrics refused a batch (its answer quoted).
        """
        sent = 0
        batch: list[str] = []

        def post() -> None:
            resp = requests.post(
                f"{self.url}/api/v1/import/prometheus",
                data="\n".join(batch).encode() + b"\n",
                timeout=120,
            )
            if resp.status_code >= 300:
                raise RuntimeError(f"import refused ({resp.status_code}): {resp.text[:500]}")
            batch.clear()

        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line[:1] in ("#", "\n", ""):
                    continue
                head, _, ts = line.rstrip("\n").rpartition(" ")
                batch.append(f"{head} {round(float(ts) * 1000)}")
                sent += 1
                if len(batch) >= batch_lines:
                    post()
        if batch:
            post()
        requests.get(f"{self.url}/internal/force_flush", timeout=60)
        return sent
