"""`cityops api` on a real chDB store (no broker: no sink): keys guard citizens' reports, errors are
problem documents, and the figures screens poll come from a snapshot, not a query per request."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from infra.api import keys
from infra.api.app import create_api
from infra.settings import Settings


def _client(store, tmp_path, **settings) -> TestClient:
    return TestClient(create_api(Settings(data_dir=tmp_path, **settings), store, sink=None))


def test_citizens_reports_need_a_read_key_and_figures_come_from_a_snapshot(store, tmp_path):
    client = _client(store, tmp_path, stats_refresh_seconds=60)
    read = keys.issue(tmp_path / "api-keys.json", "screen", ["read"])[1]
    intake = keys.issue(tmp_path / "api-keys.json", "vendor", ["intake"])[1]

    assert client.get("/health").json()["ready"] is True
    for path in ("/operator/queue", "/tasks/"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        assert client.get(path, headers={"Authorization": "Bearer co_0000_wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {read[:-1]}x"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {intake}"}).status_code == 403  # wrong scope
        assert client.get(path, headers={"Authorization": f"Bearer {read}"}).json() in ([], {"total": 0, "items": []})

    queries = []
    real_query = store.query
    store.query = lambda sql, parameters=None: queries.append(sql) or real_query(sql, parameters)
    first = client.get("/stats/").json()
    asked = len(queries)
    second = client.get("/stats/").json()
    assert asked > 0 and len(queries) == asked  # the second request ran no query
    assert second["clickhouse_incidents"] == first["clickhouse_incidents"] == 0
    assert second["figures_age_seconds"] >= first["figures_age_seconds"]
    window = client.get("/sla/?by=street&since=2026-01-01T00:00:00%2B08:00&until=2026-02-01&as_of=0078-03-21").json()
    assert window["total"] is None  # an empty store
    assert dt.datetime.fromisoformat(window["since"]) == dt.datetime(2025, 12, 31, 16, tzinfo=dt.timezone.utc)
    assert dt.datetime.fromisoformat(window["until"]) == dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)  # no offset: UTC
    problem = client.get("/sla/?by=caller_phone").json()
    assert problem["status"] == 422 and problem["errors"][0]["field"] == "by"
    assert client.get("/sla/?by=grid&quantiles=false").json()["rows"] == []  # the map's load
    assert client.get("/sla/?by=grid&quantiles=perhaps").json()["errors"][0]["field"] == "query.quantiles"


def test_a_revoked_key_is_refused_on_its_next_request_and_limits_hold(store, tmp_path):
    client = _client(store, tmp_path, api_rate_limit="3/minute", api_max_body_bytes=100)
    path = tmp_path / "api-keys.json"
    key, token, _ = keys.issue(path, "screen", ["read"])
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/tasks/", headers=auth).status_code == 200
    keys.revoke(path, key.key_id)
    assert client.get("/tasks/", headers=auth).status_code == 401

    token = keys.issue(path, "vendor", ["intake"])[1]
    auth = {"Authorization": f"Bearer {token}"}
    too_large = client.post("/intake/hotline-tickets", headers=auth, content=b"{" + b" " * 200 + b"}")
    assert too_large.status_code == 413 and too_large.json()["title"] == "Content Too Large"
    statuses = [client.get("/tasks/", headers=auth).status_code for _ in range(3)]  # refusals count too
    limited = client.get("/tasks/", headers=auth)
    assert statuses == [403, 403, 403] and limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def _signed(secret: str, msg_id: str, body: bytes = b"", at: dt.datetime | None = None) -> dict[str, str]:
    """What a vendor does with the standardwebhooks library (or 3 lines of HMAC in its own language)."""
    at = at or dt.datetime.now(dt.timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode())}


def test_a_signing_key_needs_a_fresh_signature_per_request_and_rotates_without_a_gap(store, tmp_path):
    client = _client(store, tmp_path)
    path = tmp_path / "api-keys.json"
    key, token, secret = keys.issue(path, "vendor", ["read"], signed=True)
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/tasks/", headers=auth).status_code == 401  # the bearer token alone is not enough
    assert client.get("/tasks/", headers=auth | _signed(secret, "m1")).status_code == 200
    assert client.get("/tasks/", headers=auth | _signed(secret, "m1")).status_code == 409  # replayed
    stale = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    assert client.get("/tasks/", headers=auth | _signed(secret, "m2", at=stale)).status_code == 401
    forged = _signed(keys.issue(path, "other", ["read"], signed=True).signing_secret, "m3")
    assert client.get("/tasks/", headers=auth | forged).status_code == 401

    newer = keys.rotate_signing_secret(path, key.key_id)
    assert client.get("/tasks/", headers=auth | _signed(secret, "m4")).status_code == 200  # the old one still
    assert client.get("/tasks/", headers=auth | _signed(newer, "m5")).status_code == 200
    keys.rotate_signing_secret(path, key.key_id)
    assert client.get("/tasks/", headers=auth | _signed(secret, "m6")).status_code == 401  # two rotations on


def test_public_routes_are_limited_per_client_and_pages_carry_security_headers(store, tmp_path):
    client = _client(store, tmp_path, api_public_rate_limit="5/minute")
    statuses = [client.get("/units/").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert client.get("/units/", headers={"Authorization": "Bearer co_0000_bogus"}).status_code == 429  # no way round
    token = keys.issue(tmp_path / "api-keys.json", "screen", ["read"])[1]
    assert client.get("/units/", headers={"Authorization": f"Bearer {token}"}).status_code == 200  # its own limit

    other = _client(store, tmp_path)
    page = other.get("/screen/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for answer in (page, other.get("/stats/"), other.get("/screen/screen.js")):
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # every script from a file, as the policy demands
    head = other.head("/stats/")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"] == "application/json"
    assert other.head("/screen/").status_code == 200


def test_the_apis_metrics_need_a_key_unless_configured(store, tmp_path):
    token = keys.issue(tmp_path / "api-keys.json", "prometheus", ["read"])[1]
    client = _client(store, tmp_path)
    assert client.get("/metrics").status_code == 401
    assert "cityops_" in client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert _client(store, tmp_path, api_metrics="public").get("/metrics").status_code == 200
    assert _client(store, tmp_path, api_metrics="off").get("/metrics").status_code == 404
