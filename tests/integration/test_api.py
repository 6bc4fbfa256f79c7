"""`cityops api` on a real chDB store (no broker: no sink): the read key guards citizens' reports,
and the figures screens poll come from a snapshot, not a query per request."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import SecretStr

from infra.api import create_api
from infra.settings import Settings


def test_citizens_reports_need_the_read_key_and_figures_come_from_a_snapshot(store, tmp_path):
    settings = Settings(data_dir=tmp_path, api_read_key=SecretStr("right-key"), stats_refresh_seconds=60)
    client = TestClient(create_api(settings, store, sink=None))

    assert client.get("/health").json()["ready"] is True
    for path in ("/queue/", "/tasks/"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert "right-key" not in client.get(path).text
        assert client.get(path, headers={"Authorization": "Bearer right-key"}).json() == []

    queries = []
    real_query = store.query
    store.query = lambda sql, parameters=None: queries.append(sql) or real_query(sql, parameters)
    first = client.get("/stats/").json()
    asked = len(queries)
    second = client.get("/stats/").json()
    assert asked > 0 and len(queries) == asked  # the second request ran no query
    assert second["clickhouse_incidents"] == first["clickhouse_incidents"] == 0
    assert second["figures_age_seconds"] >= first["figures_age_seconds"]
    assert client.get("/sla/?by=caller_phone").status_code == 400
