"""Fetching samples from one region's Prometheus-compatible HTTP API.

Raw samples come from an instant query of a range selector (``selector[Ns]`` at time
``t``), which returns the stored samples themselves, not values re-evaluated at steps
(sources.md): the only way to compute exact counter increases.  PromQL expressions
(custom signals) use ``query_range``, split so that no series exceeds 11,000 points.

The client reads the raw answer itself (``requests``; samples decoded from the bytes
by :mod:`collectors.matrix_json`, the rest by ``orjson``) rather than going through
prometheus-api-client, which drops the API's ``warnings`` and loses the error body of
a retried request.  A query refused as too large is split by the caller
(:meth:`collectors.collect.Collector._fetch_raw`: by series via :meth:`RegionSource.series`,
then in time).  Per backend:

- Thanos: ``partial_response=false`` is sent, so a missing store is an error, not a
  silently partial answer; any ``warnings`` are surfaced either way.
- Mimir / Cortex: the URL includes the ``/prometheus`` prefix; ``tenant`` becomes the
  ``X-Scope-OrgID`` header.
- VictoriaMetrics: raw samples of a range selector are returned as stored (NaN
  samples are dropped by VictoriaMetrics at ingestion; nothing is rounded to a step
  for an instant query); it hides the last 30 s, so keep ``collection.settle`` >= 30 s
  (tests/integration/test_collect_victoriametrics.py).

Retries (tenacity): timeouts, connection errors, 429 and 5xx are retried with
exponential backoff and jitter; 4xx errors (bad query, 422 execution errors, 401) and
failed TLS handshakes are not, and are reported with the query and the server's own
error text (a body that is not JSON: its first 200 characters).  ``timeout``
bounds the whole answer, not one socket read, so a server that trickles bytes is cut
off too.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import requests
from prometheus_api_client import PrometheusConnect
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from urllib3.util.retry import Retry

from collectors.matrix_json import samples_from_segments, split_values
from observatory.config import Region, resolve_basic_auth, resolve_headers

#: Statuses retried with exponential backoff: overload, gateways, server errors.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How much of a body that is not Prometheus's JSON an error message quotes.
ERROR_TEXT_CHARS = 200
#: Prometheus's refusal of a query_range with more than 11,000 points per series.
MAX_POINTS = 11_000
_TOO_BIG = (
    "too many samples",
    "exceeded maximum resolution",
    "query processing would load too many samples",
    "response is too large",
    "exceeds the limit",
    "cannot select more than",  # VictoriaMetrics -search.maxSamplesPerQuery
    "maxsamplesperquery",
)


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = True


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while an answer is decoded.

    Decoding creates millions of small lists (no reference cycles); each allocation
    burst would trigger collections that walk every live object, which measured 2-3x
    the decoding itself.  Reference counting still frees everything as usual.
    Thread-safe: the collector is re-enabled when the last decoder finishes.
    """
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


class QueryError(RuntimeError):
    """A query failed.  ``region`` and ``query`` say where; ``unreachable`` is True when
    the server could not be reached at all (connection refused, DNS, timeout), as
    opposed to answering with an error; ``status`` is the HTTP status (0 if none).
    ``too_big`` is True when the server refused the query for its size (split it).
    ``not_api`` is True when the answer was not JSON at all (an HTML login page, a
    proxy's error page, a URL that is not a Prometheus API): every query of the
    region would get the same, so the region stops after the first.
    """

    def __init__(
        self,
        region: str,
        query: str,
        message: str,
        unreachable: bool = False,
        status: int = 0,
        too_big: bool = False,
        not_api: bool = False,
    ):
        self.region = region
        self.query = query
        self.message = message
        self.unreachable = unreachable
        self.status = status
        self.too_big = too_big
        self.not_api = not_api
        super().__init__(f"region {region}: query {query!r}: {message}")


class _Transient(Exception):
    """A retryable answer (429, 5xx); carries the status and body for the final report."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


class _Deadline(requests.Timeout):
    """The whole answer took longer than the timeout."""


@dataclass
class Matrix:
    """A parsed matrix answer: series labels and all their samples, concatenated.

    ``offsets[i]:offsets[i+1]`` are the samples of series ``i`` in ``ts_ms`` (Unix
    milliseconds, ascending within a series) and ``values`` (float64; "NaN", "+Inf"
    and "-Inf" parsed as such).
    """

    labels: list[dict[str, str]]
    offsets: np.ndarray
    ts_ms: np.ndarray
    values: np.ndarray
    warnings: list[str] = field(default_factory=list)
    nbytes: int = 0

    @property
    def samples(self) -> int:
        """How many samples the answer held."""
        return int(self.ts_ms.size)

    @property
    def lengths(self) -> np.ndarray:
        """Samples per series."""
        return np.diff(self.offsets)

    @classmethod
    def empty(cls) -> Matrix:
        """No series."""
        return cls([], np.zeros(1, np.int64), np.empty(0, np.int64), np.empty(0))

    def take(self, series: np.ndarray) -> Matrix:
        """The matrix of the series at positions ``series`` (in that order)."""
        series = np.asarray(series, dtype=np.int64)
        lens = self.lengths[series]
        offsets = np.zeros(series.size + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        if series.size == len(self.labels) and np.array_equal(series, np.arange(series.size)):
            return self
        idx = np.concatenate(
            [np.arange(self.offsets[s], self.offsets[s + 1]) for s in series]
            or [np.empty(0, np.int64)]
        )
        return Matrix(
            [self.labels[s] for s in series],
            offsets,
            self.ts_ms[idx],
            self.values[idx],
            list(self.warnings),
            self.nbytes,
        )


def parse_matrix(result: list[dict[str, Any]]) -> Matrix:
    """A :class:`Matrix` from the API's ``data.result`` of a matrix answer.

    Raises:
        ValueError: a timestamp or value that is not a number.
    """
    labels = [dict(item.get("metric") or {}) for item in result]
    lists = [item.get("values") or () for item in result]
    lens = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    offsets = np.zeros(len(lists) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    n = int(offsets[-1])
    points = [p for v in lists for p in v]
    try:
        ts = np.fromiter((p[0] for p in points), dtype=np.float64, count=n)
        values = np.array([p[1] for p in points], dtype=np.float64)
    except (TypeError, IndexError) as exc:
        raise ValueError(f"malformed sample: {exc}") from None
    ts_ms = np.round(ts * 1000).astype(np.int64)
    return Matrix(labels, offsets, ts_ms, values.reshape(-1))


def merge_matrices(parts: list[Matrix]) -> Matrix:
    """Join answers for consecutive, non-overlapping time ranges (oldest first) by series."""
    if len(parts) == 1:
        return parts[0]
    index: dict[tuple[tuple[str, str], ...], list[tuple[int, int]]] = {}
    for p, part in enumerate(parts):
        for s, labels in enumerate(part.labels):
            index.setdefault(tuple(sorted(labels.items())), []).append((p, s))
    labels_out, ts_parts, val_parts, lens = [], [], [], []
    for key, where in index.items():
        labels_out.append(dict(key))
        n = 0
        for p, s in where:
            a, b = parts[p].offsets[s], parts[p].offsets[s + 1]
            ts_parts.append(parts[p].ts_ms[a:b])
            val_parts.append(parts[p].values[a:b])
            n += int(b - a)
        lens.append(n)
    offsets = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(np.asarray(lens, np.int64), out=offsets[1:])
    warnings = [w for part in parts for w in part.warnings]
    return Matrix(
        labels_out,
        offsets,
        np.concatenate(ts_parts) if ts_parts else np.empty(0, np.int64),
        np.concatenate(val_parts) if val_parts else np.empty(0),
        list(dict.fromkeys(warnings)),
        sum(part.nbytes for part in parts),
    )


def promql_duration(ms: int) -> str:
    """``ms`` milliseconds as a PromQL duration: whole seconds (``28800s``), else ms."""
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass
class RegionSource:
    """A client for one region.

    Args:
        region: the region's configuration (URL, backend, auth, headers, TLS).
        timeout_s: per HTTP request, seconds (the whole answer).
        retries: further attempts after a retryable failure.
        backoff_s, max_backoff_s: exponential backoff (with jitter) between attempts.
        pool: HTTP connections kept open (queries in flight at once).
        compression: ask for gzip-compressed answers (less bandwidth, much more
            server CPU).

    Raises:
        ConfigError: an environment variable named by the region's auth is missing.
    """

    region: Region
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    pool: int = 4
    compression: bool = False
    #: Retries made so far (for the collector's own metrics).
    retried: int = 0

    def __post_init__(self) -> None:
        self.base = self.region.url.rstrip("/")
        self.session = requests.Session()
        # Proxies from the environment are honoured; without any, skip requests' per-call
        # environment and ~/.netrc look-ups (a few ms a query).
        self.session.trust_env = any(
            k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc")
            or k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
            for k in os.environ
        )
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, self.pool), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(resolve_headers(self.region))
        # Prometheus gzips an answer for a client that accepts it, which costs it several
        # times the JSON encoding itself: off by default (collection.compression).
        self.session.headers["Accept-Encoding"] = "gzip" if self.compression else "identity"
        auth = resolve_basic_auth(self.region)
        if auth:
            self.session.auth = auth
        if not self.region.verify_tls:
            self.session.verify = False
        elif self.region.ca_file:
            self.session.verify = self.region.ca_file
        if self.region.cert_file:
            self.session.cert = (
                (self.region.cert_file, self.region.key_file)
                if self.region.key_file
                else self.region.cert_file
            )
        # prometheus-api-client (the product's Prometheus client) holds the region's
        # connection: URL, headers, auth, TLS and this session.  Answers are read raw from
        # that session because the client's query helpers drop the API's ``warnings`` and
        # the error body of a retried request, and parse 2-3x slower (bench/collect_paths.py,
        # docs/architecture.md).  Retries are tenacity's, so the client's own are off.
        self.client = PrometheusConnect(
            url=self.base,
            headers=dict(self.session.headers),
            auth=auth,
            disable_ssl=not self.region.verify_tls,
            session=self.session,
            retry=Retry(total=0, raise_on_status=False),
            timeout=self.timeout_s,
        )
        self.session.mount(self.base, adapter)  # the client mounted its own; keep the pool

    # ----------------------------------------------------------------- HTTP
    def _params(self, params: dict[str, str]) -> dict[str, str]:
        if self.region.backend == "thanos":
            return {**params, "partial_response": "false"}
        return params

    def _once(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        deadline = time.monotonic() + self.timeout_s
        params = self._params(params)
        # GET (one packet); POST form for long expressions that would overflow a URL.
        long = sum(len(v) for v in params.values()) > 4000
        with self.session.request(
            "POST" if long else "GET",
            f"{self.base}{path}",
            params=None if long else params,
            data=params if long else None,
            timeout=(min(self.timeout_s, 10.0), self.timeout_s),
            stream=True,
            # per request: with REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE set, requests would
            # otherwise replace the session's CA bundle (the region's ca_file) by it
            verify=self.session.verify,
        ) as resp:
            chunks = []
            for chunk in resp.iter_content(1 << 20):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise _Deadline(f"no complete answer within {self.timeout_s:g}s")
            body = b"".join(chunks)
            if resp.status_code in RETRY_STATUSES:
                raise _Transient(resp.status_code, _error_text(body))
            return resp.status_code, body

    def _request(
        self, path: str, params: dict[str, str], query: str, matrix: bool = False
    ) -> dict[str, Any]:
        name = self.region.name

        def count_retry(state: RetryCallState) -> None:
            self.retried += 1

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential_jitter(
                multiplier=self.backoff_s, max=self.max_backoff_s, jitter=self.backoff_s
            ),
            retry=retry_if_exception(_retryable),
            before_sleep=count_retry,
            reraise=True,
        )
        tries = self.retries + 1
        attempts = f"{tries} attempt" + ("s" if tries != 1 else "")
        try:
            status, body = retrying(self._once, path, params)
        except _Transient as exc:
            raise QueryError(
                name,
                query,
                f"HTTP {exc.status} after {attempts}: {exc.text}",
                status=exc.status,
                too_big=_is_too_big(exc.text),
            ) from None
        except requests.exceptions.SSLError as exc:
            raise QueryError(
                name,
                query,
                f"TLS handshake failed: {_ssl_reason(exc)} (check the region's ca_file, "
                "cert_file/key_file or verify_tls)",
                unreachable=True,
            ) from None
        except requests.Timeout as exc:
            raise QueryError(
                name,
                query,
                f"unreachable: timed out after {self.timeout_s:g}s ({attempts}): {exc}",
                unreachable=True,
            ) from None
        except requests.ConnectionError as exc:
            raise QueryError(
                name, query, f"unreachable ({attempts}): {exc}", unreachable=True
            ) from None
        except requests.RequestException as exc:
            raise QueryError(name, query, f"request failed: {exc}") from None
        cut = split_values(body) if matrix and status == 200 else None
        try:
            with _no_gc():
                answer = orjson.loads(cut[0] if cut else body)
        except orjson.JSONDecodeError:
            answer = None
        if cut and isinstance(answer, dict):  # samples decoded by _matrix, from the bytes
            answer["_segments"], answer["_body"] = cut[1], body
        if answer is None and status not in (401, 403):
            raise QueryError(
                name,
                query,
                f"HTTP {status}: not a Prometheus API answer (check the url): {_error_text(body)}",
                status=status,
                not_api=True,
            )
        if status != 200 or not isinstance(answer, dict) or answer.get("status") != "success":
            text = _error_text(body)
            raise QueryError(
                name,
                query,
                f"HTTP {status}: {text}",
                status=status,
                too_big=_is_too_big(text),
            )
        answer["_nbytes"] = len(body)
        return answer

    # ----------------------------------------------------------------- queries
    def raw_samples(self, selector: str, at_ms: int, range_ms: int) -> Matrix:
        """Raw samples of ``selector`` in ``[at - range, at]`` (Prometheus 2.x closes both ends).

        Raises:
            QueryError: unreachable, an error answer, or not a matrix.
        """
        query = f"{selector}[{promql_duration(int(range_ms))}]"
        answer = self._request(
            "/api/v1/query", {"query": query, "time": f"{at_ms / 1000:.3f}"}, query, matrix=True
        )
        return self._matrix(answer, query)

    def series(self, selector: str, start_ms: int, end_ms: int) -> list[dict[str, str]]:
        """Label sets of the series ``selector`` matches in ``[start, end]``
        (``/api/v1/series``; may include series without samples there, never omits one).

        Raises:
            QueryError: unreachable, or an error answer.
        """
        params = {
            "match[]": selector,
            "start": f"{start_ms / 1000:.3f}",
            "end": f"{end_ms / 1000:.3f}",
        }
        answer = self._request("/api/v1/series", params, f"series {selector}")
        data = answer.get("data")
        if not isinstance(data, list):
            raise QueryError(self.region.name, selector, "series answer is not a list")
        return [dict(item) for item in data if isinstance(item, dict)]

    def query_range(self, expr: str, start_ms: int, end_ms: int, step_ms: int) -> Matrix:
        """``expr`` evaluated at every step in ``[start, end]``, split into pieces of at
        most 11,000 steps per request (Prometheus refuses more).

        Raises:
            QueryError: unreachable, an error answer, or not a matrix.
        """
        parts = []
        per = MAX_POINTS * step_ms  # 11,001 points per request: accepted
        t = start_ms
        while t <= end_ms:
            stop = min(t + per, end_ms)
            params = {
                "query": expr,
                "start": f"{t / 1000:.3f}",
                "end": f"{stop / 1000:.3f}",
                "step": f"{step_ms / 1000:g}",
            }
            answer = self._request("/api/v1/query_range", params, expr, matrix=True)
            parts.append(self._matrix(answer, expr))
            t = stop + step_ms
        return merge_matrices(parts) if parts else Matrix.empty()

    def instant(self, expr: str, at_ms: int | None = None) -> dict[str, Any]:
        """An instant query's ``data`` (``resultType``, ``result``) and ``warnings``."""
        params = {"query": expr}
        if at_ms is not None:
            params["time"] = f"{at_ms / 1000:.3f}"
        answer = self._request("/api/v1/query", params, expr)
        data = dict(answer.get("data") or {})
        data["warnings"] = list(answer.get("warnings") or [])
        return data

    def build_info(self) -> dict[str, Any]:
        """``/api/v1/status/buildinfo`` (version), or an empty dict where not served."""
        try:
            resp = self.session.get(
                f"{self.base}/api/v1/status/buildinfo",
                timeout=min(self.timeout_s, 10.0),
                verify=self.session.verify,
            )
            if resp.status_code == 200:
                return dict(orjson.loads(resp.content).get("data") or {})
        except (requests.RequestException, orjson.JSONDecodeError, AttributeError):
            pass
        return {}

    def _matrix(self, answer: dict[str, Any], query: str) -> Matrix:
        nbytes = int(answer.get("_nbytes", 0))
        data = answer.get("data") or {}
        if data.get("resultType") != "matrix":
            raise QueryError(
                self.region.name, query, f"answer is not a matrix: {data.get('resultType')!r}"
            )
        result = data.get("result") or []
        try:
            fast = None
            if "_segments" in answer:
                fast = samples_from_segments(result, answer.pop("_segments"))
                body = answer.pop("_body")
                if fast is None:  # not the usual shape: decode everything
                    with _no_gc():
                        answer = orjson.loads(body)
                    result = (answer.get("data") or {}).get("result") or []
            if fast is not None:
                labels = [dict(item.get("metric") or {}) for item in result]
                matrix = Matrix(labels, *fast)
            else:
                with _no_gc():
                    matrix = parse_matrix(result)
        except ValueError as exc:
            raise QueryError(
                self.region.name, query, f"answer is not Prometheus JSON: {exc}"
            ) from None
        warnings = [str(w) for w in answer.get("warnings") or []]
        if answer.get("isPartial"):  # VictoriaMetrics cluster
            warnings.append("partial answer (isPartial=true): some storage nodes did not answer")
        if any("histogram" in item and "values" not in item for item in result) or any(
            "histograms" in item for item in result
        ):
            warnings.append("native histogram samples ignored (classic buckets only)")
        matrix.warnings = warnings
        matrix.nbytes = nbytes
        return matrix

    def close(self) -> None:
        """Release the HTTP session."""
        self.session.close()


def _error_text(body: bytes) -> str:
    """Prometheus's ``errorType: error`` from a JSON error body, else the text itself."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and "error" in answer:
        kind = answer.get("errorType")
        return f"{kind}: {answer['error']}" if kind else str(answer["error"])
    text = " ".join(body[:4096].decode("utf-8", "replace").split())
    if not text:
        return "(empty body)"
    return text if len(text) <= ERROR_TEXT_CHARS else text[:ERROR_TEXT_CHARS] + " ..."


def _retryable(exc: BaseException) -> bool:
    """Timeouts, connection errors, 429 and 5xx; never a failed TLS handshake (a wrong
    CA or a missing client certificate fails the same way every time)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, _Transient))


def _ssl_reason(exc: requests.exceptions.SSLError) -> str:
    """The innermost OpenSSL reason of a TLS failure (``certificate verify failed: ...``)."""
    text = str(exc)
    for marker in ("certificate verify failed", "[SSL: ", "SSLError("):
        if marker in text:
            text = text[text.index(marker) + (7 if marker == "[SSL: " else 0) :]
            break
    return text.rstrip("')\"")[:300]


def _is_too_big(text: str) -> bool:
    low = text.lower()
    return any(p in low for p in _TOO_BIG)
