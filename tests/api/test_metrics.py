"""/metrics as Prometheus reads it: checked with the reference parser (prometheus_client's)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from musubi.api.metrics import Metrics


def families(metrics: Metrics) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        samples = out.setdefault(f"{family.name}:{family.type}", {})
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counts_and_cumulative_latency_buckets() -> None:
    m = Metrics(buckets=(0.01, 0.1, 1.0))
    for seconds in (0.005, 0.01, 0.05, 3.0):  # 0.01 falls in le="0.01": bounds are inclusive
        m.observe("POST", "/v1/chat/completions", 200, seconds)
    m.observe("POST", "/v1/chat/completions", 429, 0.002)
    got = families(m)

    requests = got["musubi_http_requests:counter"]
    route = ("method", "POST"), ("route", "/v1/chat/completions")
    assert requests[("musubi_http_requests_total", (*route, ("status", "200")))] == 4
    assert requests[("musubi_http_requests_total", (*route, ("status", "429")))] == 1

    latency = got["musubi_http_request_duration_seconds:histogram"]
    name = "musubi_http_request_duration_seconds"
    buckets = {
        le: latency[(f"{name}_bucket", (("le", le), *route))]
        for le in ("0.01", "0.1", "1.0", "+Inf")
    }
    assert buckets == {"0.01": 3, "0.1": 4, "1.0": 4, "+Inf": 5}
    assert latency[(f"{name}_count", route)] == 5
    assert abs(latency[(f"{name}_sum", route)] - 3.067) < 1e-9


def test_label_values_are_escaped() -> None:
    m = Metrics()
    odd = 'a"b\\c\nd'
    m.observe("GET", odd, 404, 0.001)
    samples = families(m)["musubi_http_requests:counter"]
    [(_, labels)] = samples
    assert dict(labels)["route"] == odd  # the parser reads back exactly what was observed


def test_nothing_observed_still_renders_both_families() -> None:
    assert set(families(Metrics())) == {
        "musubi_http_requests:counter",
        "musubi_http_request_duration_seconds:histogram",
    }
