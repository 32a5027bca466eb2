"""Fetching raw samples from one region's Prometheus-compatible API.

Uses prometheus-api-client's :class:`PrometheusConnect`.  Raw samples come from an
instant query of a range selector (``selector[Ns]`` at time ``t``), which returns the
stored samples themselves, not values re-evaluated at steps (sources.md): the only
way to compute exact counter increases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from observatory.config import Region, resolve_basic_auth, resolve_headers

#: Statuses retried with exponential backoff (urllib3's Retry): overload and gateways.
RETRY_STATUSES = (429, 502, 503, 504)


class QueryError(RuntimeError):
    """A query failed.  ``region`` and ``query`` say where; ``unreachable`` is True when
    the server could not be reached at all (connection refused, DNS, timeout), as
    opposed to answering with an error.
    """

    def __init__(self, region: str, query: str, message: str, unreachable: bool = False):
        self.region = region
        self.query = query
        self.message = message
        self.unreachable = unreachable
        super().__init__(f"region {region}: query {query!r}: {message}")


@dataclass
class RegionSource:
    """A client for one region.

    Args:
        region: the region's configuration (URL, auth, headers, TLS).
        timeout_s: per HTTP request, seconds.
        retries: how often a connection error or a retryable status is retried.

    Raises:
        ConfigError: an environment variable named by the region's auth is missing.
    """

    region: Region
    timeout_s: float = 30.0
    retries: int = 2

    def __post_init__(self) -> None:
        retry = Retry(
            total=self.retries,
            backoff_factor=0.5,
            backoff_jitter=0.25,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,
            raise_on_status=False,  # keep Prometheus's error body for the report
        )
        self.client = PrometheusConnect(
            url=self.region.url.rstrip("/"),
            headers=resolve_headers(self.region),
            auth=resolve_basic_auth(self.region),
            disable_ssl=not self.region.verify_tls,
            retry=retry,
            timeout=self.timeout_s,
        )

    def raw_samples(self, selector: str, at_ms: int, range_s: int) -> list[dict[str, Any]]:
        """Raw samples of ``selector`` in ``[at - range, at]`` (Prometheus 2.x closes both ends).

        Returns:
            The API's ``data.result``: ``[{"metric": {...}, "values": [[t, "v"], ...]}]``.

        Raises:
            QueryError: the server could not be reached, or answered with an error.
        """
        query = f"{selector}[{int(range_s)}s]"
        params = {"time": f"{at_ms / 1000:.3f}"}
        try:
            result = self.client.custom_query(query, params=params)
        except PrometheusApiClientException as exc:
            raise QueryError(self.region.name, query, str(exc)) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise QueryError(
                self.region.name, query, f"unreachable: {exc}", unreachable=True
            ) from exc
        except requests.RequestException as exc:
            raise QueryError(self.region.name, query, f"request failed: {exc}") from exc
        except ValueError as exc:  # not JSON
            raise QueryError(
                self.region.name, query, f"answer is not Prometheus JSON: {exc}"
            ) from exc
        if not isinstance(result, list):
            raise QueryError(self.region.name, query, "answer is not a matrix")
        return result

    def close(self) -> None:
        """Release the HTTP session."""
        self.client.close()
