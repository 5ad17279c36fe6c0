from __future__ import annotations

import httpx

from tests.conftest import Api


async def test_health_ready_and_metrics(api: Api, owner: httpx.AsyncClient) -> None:
    async with api.client() as anon:
        assert (await anon.get("/healthz")).json() == {"status": "ok"}
        ready = (await anon.get("/readyz")).json()
        assert ready["status"] == "ok"
        assert ready["database"] in {"sqlite", "postgresql"}
        await owner.get("/v1/teams")
        metrics = (await anon.get("/metrics")).text
        assert 'musubi_http_requests_total{method="GET",route="/v1/teams",status="200"}' in metrics
        assert "musubi_http_request_duration_seconds_bucket" in metrics


async def test_openapi_and_offline_docs(api: Api) -> None:
    async with api.client() as anon:
        spec = (await anon.get("/openapi.json")).json()
        assert "/v1/teams" in spec["paths"]
        page = (await anon.get("/docs")).text
        assert "/docs/static/swagger-ui-bundle.js" in page
        assert "cdn" not in page.lower()  # no asset from the internet
        js = await anon.get("/docs/static/swagger-ui-bundle.js")
        assert js.status_code == 200 and len(js.content) > 100_000


async def test_request_id_is_echoed_or_generated(owner: httpx.AsyncClient) -> None:
    r = await owner.get("/v1/me", headers={"X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    r = await owner.get("/v1/me", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"
    assert len(r.headers["x-request-id"]) == 32
