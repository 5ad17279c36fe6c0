"""The server's Prometheus metrics: requests and their latency, in the text format 0.0.4.

Two families, kept in plain dicts and rendered on ``GET /metrics``. The middleware updates
them from the event loop only, so there are no locks. (``prometheus_client`` did this
before; with its exposition server, WSGI and urllib imports it cost ~1 MB of every
worker's memory for two families.)
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the latency histogram; a last ``+Inf`` bucket is implied."""

_REQUESTS = "musubi_http_requests_total"
_LATENCY = "musubi_http_request_duration_seconds"


class Metrics:
    """Requests by method, route template and status; latency by method and route."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self._requests: dict[tuple[str, str, int], int] = {}
        # per (method, route): a count per bucket (not cumulative; the last is +Inf), then
        # the sum of the observed seconds
        self._latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request. Bounded: routes are templates, methods and statuses few."""
        key = (method, route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        series = self._latency.get((method, route))
        if series is None:
            series = self._latency[(method, route)] = [0.0] * (len(self.buckets) + 2)
        series[bisect_left(self.buckets, seconds)] += 1  # the first bound >= seconds
        series[-1] += seconds

    def render(self) -> bytes:
        lines = [
            f"# HELP {_REQUESTS} HTTP requests",
            f"# TYPE {_REQUESTS} counter",
        ]
        for (method, route, status), count in self._requests.items():
            labels = f'method="{_esc(method)}",route="{_esc(route)}",status="{status}"'
            lines.append(f"{_REQUESTS}{{{labels}}} {float(count)}")
        lines += [
            f"# HELP {_LATENCY} HTTP request latency",
            f"# TYPE {_LATENCY} histogram",
        ]
        bounds = [repr(float(b)) for b in self.buckets] + ["+Inf"]
        for (method, route), series in self._latency.items():
            labels = f'method="{_esc(method)}",route="{_esc(route)}"'
            cumulative = 0.0
            for bound, in_bucket in zip(bounds, series, strict=False):
                cumulative += in_bucket
                lines.append(f'{_LATENCY}_bucket{{{labels},le="{bound}"}} {cumulative}')
            lines.append(f"{_LATENCY}_count{{{labels}}} {cumulative}")
            lines.append(f"{_LATENCY}_sum{{{labels}}} {series[-1]!r}")
        return ("\n".join(lines) + "\n").encode()


def _esc(value: str) -> str:
    """A label value as the text format quotes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
