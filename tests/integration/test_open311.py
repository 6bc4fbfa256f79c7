"""Open311 GeoReport v2, tested with clients written from the spec (wiki.open311.org/GeoReport_v2),
not from cityops's code: form-encoded POSTs, `api_key` as a parameter, `.json` paths, JSON lists
back, errors as `[{"code", "description"}]`; and reads with `georeport` (PyPI), written by others,
which sends no key at all (the spec: "api_key: not required")."""

from __future__ import annotations

from pathlib import Path

import httpx
from georeport import GeoReport

from devtools.processes import poll_until
from infra.api import keys

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
    public = GeoReport(f"{deployment.api.url}/open311/v2")  # no key, as such apps read
    assert [s["service_code"] for s in public.get_service_list()] == [s["service_code"] for s in services]

    nowhere = app.post_request(service_code=lamps["service_code"], description="路灯坏了")
    assert nowhere.status_code == 400 and "address_string" in nowhere.json()[0]["description"]
    hostile = "<img src=x onerror=alert(1)>"
    unknown = app.post_request(service_code=hostile, address_string="A7县泉塘街道", description="x")
    assert unknown.status_code == 400 and unknown.json()[0]["code"] == 400 and "onerror" not in unknown.text
    too_large = app.post_request(service_code=lamps["service_code"], address_string="A7县泉塘街道",
                                 description="灯" * 2_000_000)
    assert too_large.status_code == 413 and too_large.json()[0]["code"] == 413  # the spec's format, not RFC 9457
    bad_phone = app.post_request(service_code=lamps["service_code"], address_string="A7县泉塘街道",
                                 description="路灯坏了", phone="12345")
    assert bad_phone.status_code == 400 and "caller_phone" in bad_phone.json()[0]["description"]
    assert "12345" not in bad_phone.text
    unauthorised = httpx.post(f"{deployment.api.url}/open311/v2/requests.json",
                              data={"service_code": lamps["service_code"], "address_string": "A7县泉塘街道"})
    assert unauthorised.status_code == 401 and unauthorised.json()[0]["code"] == 401

    created = app.post_request(service_code=lamps["service_code"], address_string="A7县泉塘街道5栋",
                               description="主干道路灯坏了一个星期，王五先生说电话138 1234 5678", first_name="六",
                               last_name="赵", phone="13812345678", media_url="https://img.example/lamp.jpg",
                               lat="28.1958", long="113.0889")
    assert created.status_code == 201, created.text
    [receipt] = created.json()
    request_id = receipt["service_request_id"]

    [open_] = poll_until(lambda: app.request(request_id).json(),
                          lambda r: r and isinstance(r, list) and r[0].get("agency_responsible"))
    assert set(open_) <= REQUEST_FIELDS and open_["status"] == "open"
    assert open_["service_code"] == lamps["service_code"] and open_["expected_datetime"]
    assert open_["media_url"] == "https://img.example/lamp.jpg" and open_["address"] == "A7县泉塘街道5栋"
    assert "13812345678" not in str(open_) and "1234 5678" not in str(open_) and "王五" not in str(open_)
    # Without a key, the public view: status, service, agency, times, the place to about 100 m, the
    # description masked; no address, no notes.
    seen = public.get_service_request(request_id)
    assert {k: seen[k] for k in ("status", "service_code", "agency_responsible", "requested_datetime",
                                 "expected_datetime", "description", "media_url")} == {
        k: open_[k] for k in ("status", "service_code", "agency_responsible", "requested_datetime",
                              "expected_datetime", "description", "media_url")}
    assert seen["address"] is None and seen["status_notes"] is None
    assert (seen["lat"], seen["long"]) == (28.196, 113.089)
    assert [r["service_request_id"] for r in public.get_service_requests(service_request_id=request_id)] == [request_id]
    # The spec's date filters, on the time the request was made.
    made = open_["requested_datetime"]
    assert [r["service_request_id"] for r in app.requests(start_date=made).json()] == [request_id]
    assert app.requests(end_date="2020-01-01T00:00:00Z").json() == []
    assert app.requests(start_date="2099-01-01T00:00:00Z").json() == []

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
