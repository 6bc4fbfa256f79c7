"""Open311 GeoReport v2, tested with a client written from the spec (wiki.open311.org/GeoReport_v2),
not from cityops's code: form-encoded POSTs, `api_key` as a parameter, `.json` paths, JSON lists
back, errors as `[{"code", "description"}]`."""

from __future__ import annotations

from pathlib import Path

import httpx

from infra.api import keys
from infra.processes import poll_until

# Fields the spec lists for each response (required ones, and the optional ones a city may omit).
SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"}


class GeoReportClient:
    """What an Open311 app does: nothing here knows cityops."""

    def __init__(self, endpoint: str, api_key: str):
        self.http = httpx.Client(base_url=endpoint, timeout=15)
        self.api_key = api_key

    def services(self) -> httpx.Response:
        return self.http.get("/services.json", params={"jurisdiction_id": "a-city"})

    def service_definition(self, code: str) -> httpx.Response:
        return self.http.get(f"/services/{code}.json")

    def post_request(self, **fields) -> httpx.Response:
        return self.http.post("/requests.json", data={"api_key": self.api_key, **fields})

    def requests(self, **filters) -> httpx.Response:
        return self.http.get("/requests.json", params={"api_key": self.api_key, **filters})

    def request(self, request_id: str) -> httpx.Response:
        return self.http.get(f"/requests/{request_id}.json", params={"api_key": self.api_key})


def test_an_open311_app_reports_and_follows_a_request_to_closed(pipeline_env, start_worker):
    deployment = start_worker(pipeline_env)
    keys_file = Path(pipeline_env["CITYOPS_API_KEYS_FILE"])
    app = GeoReportClient(f"{deployment.api.url}/open311/v2", keys.issue(keys_file, "o311-app", ["intake"])[1])

    services = app.services().json()
    assert services and all(SERVICE_FIELDS <= set(s) for s in services)
    assert all(s["type"] in ("realtime", "batch", "blackbox") and isinstance(s["metadata"], bool) for s in services)
    lamps = next(s for s in services if "路灯" in s["service_name"])
    assert app.service_definition(lamps["service_code"]).json()["service_code"] == lamps["service_code"]
    missing = app.service_definition("NO-SUCH")
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404

    nowhere = app.post_request(service_code=lamps["service_code"], description="路灯坏了")
    assert nowhere.status_code == 400 and "address_string" in nowhere.json()[0]["description"]
    unknown = app.post_request(service_code="NO-SUCH", address_string="A7县泉塘街道", description="x")
    assert unknown.status_code == 400 and unknown.json()[0]["code"] == 400
    bad_phone = app.post_request(service_code=lamps["service_code"], address_string="A7县泉塘街道",
                                 description="路灯坏了", phone="12345")
    assert bad_phone.status_code == 400 and "caller_phone" in bad_phone.json()[0]["description"]
    assert "12345" not in bad_phone.text
    unauthorised = httpx.post(f"{deployment.api.url}/open311/v2/requests.json",
                              data={"service_code": lamps["service_code"], "address_string": "A7县泉塘街道"})
    assert unauthorised.status_code == 401 and unauthorised.json()[0]["code"] == 401

    created = app.post_request(service_code=lamps["service_code"], address_string="A7县泉塘街道",
                               description="主干道路灯坏了一个星期", first_name="六", last_name="赵",
                               phone="13812345678")
    assert created.status_code == 201, created.text
    [receipt] = created.json()
    request_id = receipt["service_request_id"]

    [open_] = poll_until(lambda: app.request(request_id).json(),
                          lambda r: r and isinstance(r, list) and r[0].get("agency_responsible"))
    assert set(open_) <= REQUEST_FIELDS and open_["status"] == "open"
    assert open_["service_code"] == lamps["service_code"] and open_["expected_datetime"]
    assert "13812345678" not in str(open_)

    # The department finishes it through its own API; the Open311 view follows.
    task = deployment.get_json("/tasks/?status=open")[0]
    token = keys.issue(keys_file, "dept", ["department:" + task["unit"]])[1]
    department = httpx.Client(base_url=deployment.api.url, timeout=15, headers={"Authorization": f"Bearer {token}"})
    assert department.post(f"/tasks/{task['task_id']}/accept").status_code == 200
    assert department.post(f"/tasks/{task['task_id']}/complete", json={"result": "已修复"}).status_code == 200
    [closed] = poll_until(lambda: app.request(request_id).json(), lambda r: r[0]["status"] == "closed")
    assert closed["status_notes"] == "已修复"
    assert [r["service_request_id"] for r in app.requests(status="closed").json()] == [request_id]
    assert app.requests(status="open").json() == []
    assert app.requests(service_code="NO-SUCH").json() == []
    assert app.request("O311-unknown").json()[0]["code"] == 404
