"""Intake bytes → Incident: deterministic ids, no PII in clear, clear errors for bad input."""

import datetime as dt
import json

import pytest

from pipeline import ids
from pipeline.dutylists import load_registry
from pipeline.locate import Locator
from pipeline.normalize import IntakeError, conflicting_fields, content_fingerprint, parse_intake, to_incident
from pipeline.pii import hash_contact, redact_text
from schemas import HotlineTicket

NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)
LOCATOR = Locator(load_registry())
TICKET = {
    "ticket_no": "12345-2026-0001", "received_at": "2026-11-02T08:30:00+08:00", "caller_name": "张先生",
    "caller_phone": "13812345678", "title": "噪音", "text": "夜间施工噪音扰民，请回电13987654321，身份证430121199001011234。",
}


def raw(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def test_hotline_ticket_becomes_an_incident_without_pii():
    incident = to_incident(parse_intake("hotline", raw(TICKET)), salt="s", now=NOW, locator=LOCATOR)
    dumped = incident.model_dump_json()
    assert incident.incident_id == ids.incident_id("hotline", "12345-2026-0001")
    for secret in ("13812345678", "13987654321", "430121199001011234", "张先生"):
        assert secret not in dumped
    assert "[电话]" in incident.text and "[身份证号]" in incident.text
    assert incident.reporter_hash == hash_contact("13812345678", "s")


def test_the_same_message_always_gets_the_same_id():
    first = to_incident(parse_intake("hotline", raw(TICKET)), salt="s", now=NOW, locator=LOCATOR)
    again = to_incident(parse_intake("hotline", raw(TICKET)), salt="s", now=NOW + dt.timedelta(hours=1), locator=LOCATOR)
    assert first.incident_id == again.incident_id


def test_ids_differ_by_source():
    assert ids.incident_id("hotline", "1") != ids.incident_id("grid", "1")


def test_sensor_readings_of_one_sensor_differ_by_time():
    base = {"sensor_id": "wl-7", "kind": "water_level", "value": 42.5, "unit": "cm",
            "location": {"lat": 28.2, "lon": 112.9}}
    a = to_incident(parse_intake("sensor", raw({**base, "measured_at": "2026-11-02T08:30:00+08:00"})), salt="s", now=NOW, locator=LOCATOR)
    b = to_incident(parse_intake("sensor", raw({**base, "measured_at": "2026-11-02T08:31:00+08:00"})), salt="s", now=NOW, locator=LOCATOR)
    assert a.incident_id != b.incident_id
    assert a.sensor_kind == "water_level" and a.sensor_value == 42.5


def test_whistle_keeps_the_units_it_summons():
    whistle = {"whistle_id": "w-1", "unit": "a7-s02", "blown_at": "2026-11-02T08:30:00+08:00",
               "text": "渣土车夜间偷倒，街道多次处置未果。", "summoned_units": ["cgj", "gaj-jj"]}
    incident = to_incident(parse_intake("whistle", raw(whistle)), salt="s", now=NOW, locator=LOCATOR)
    assert incident.summoned_units == ["cgj", "gaj-jj"]
    assert (incident.whistle_unit, incident.street, incident.district) == ("a7-s02", "a7-s02", "a7")


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"ticket_no": "x', "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (raw({**TICKET, "source": "grid"}), "source: not 'hotline', the source of the intake topic"),
    (raw({k: v for k, v in TICKET.items() if k != "text"}), "text: Field required"),
])
def test_bad_input_raises_a_clear_intake_error(payload, reason):
    with pytest.raises(IntakeError, match=reason.replace("(", r"\(")):
        parse_intake("hotline", payload)


def test_redaction_masks_landlines_but_keeps_ordinary_numbers():
    assert redact_text("电话0731-84567890，3栋2单元") == "电话[电话]，3栋2单元"
    assert redact_text("拖欠工资20000元") == "拖欠工资20000元"


def test_names_typed_in_text_are_masked():
    assert redact_text("我叫王小明，住3栋", ("王小明",)) == "我叫[姓名]，住3栋"
    assert redact_text("王小明反映楼道堵塞，王小明多次投诉", ("王小明",)) == "[姓名]反映楼道堵塞，[姓名]多次投诉"
    assert redact_text("联系人：李四，请回电") == "联系人：[姓名]，请回电"
    assert redact_text("张先生说物业不管，刘阿姨也反映过") == "某先生说物业不管，某阿姨也反映过"
    # words that merely start with a surname stay as they are
    assert redact_text("高温天气，黄色预警，马路上积水") == "高温天气，黄色预警，马路上积水"


def test_contact_hash_ignores_formatting_and_depends_on_the_salt():
    assert hash_contact("0731-84567890", "a") == hash_contact("073184567890", "a")
    assert hash_contact("13812345678", "a") != hash_contact("13812345678", "b")
    assert hash_contact(None, "a") is None


def test_incidents_are_stamped_with_the_list_in_force():
    incident = to_incident(parse_intake("hotline", raw(TICKET)), salt="s", now=NOW, locator=LOCATOR,
                           dutylist_version="A市-2026.2")
    assert incident.dutylist_version == "A市-2026.2"


def test_hotline_location_comes_from_the_address_when_there_is_no_gps():
    ticket = {**TICKET, "address": "A7县泉塘街道某小区"}
    incident = to_incident(parse_intake("hotline", raw(ticket)), salt="s", now=NOW, locator=LOCATOR)
    assert (incident.street, incident.district, incident.location_method) == ("a7-s01", "a7", "address")


def test_hostile_values_are_refused_naming_the_field_never_echoing_it():
    import json as _json

    import pytest as _pytest

    from pipeline.normalize import IntakeError, parse_intake, to_incident

    base = {"ticket_no": "H-1", "received_at": "2026-11-02T09:00:00+08:00", "text": "路灯坏了"}
    now = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.timezone.utc)
    for year, field in ((1, "received_at"), (1899, "received_at"), (2400, "received_at"), (9999, "received_at")):
        with _pytest.raises(IntakeError, match=f"^{field}: "):  # years the schema refuses, or the future
            message = parse_intake("hotline", _json.dumps(base | {"received_at": f"{year:04d}-11-02T09:00:00+08:00"}
                                                          ).encode())
            to_incident(message, salt="s", now=now, locator=LOCATOR)
    reading = {"sensor_id": "S1", "kind": "water_level", "unit": "cm", "measured_at": "2026-11-02T09:00:00+08:00",
               "location": {"lat": 28.2, "lon": 112.9}}
    for value in ("1e308", "NaN", "Infinity", "-1e9"):
        with _pytest.raises(IntakeError, match="^value: ") as refused:
            parse_intake("sensor", (_json.dumps(reading)[:-1] + f', "value": {value}}}').encode())
        assert value not in str(refused.value)
    with _pytest.raises(IntakeError, match="^category: "):
        parse_intake("grid", _json.dumps({"report_id": "G1", "worker_id": "w", "grid_code": "430102001001001",
                                          "reported_at": "2026-11-02T09:00:00+08:00", "text": "x", "category": "类" * 510_000,
                                          "location": {"lat": 28.2, "lon": 112.9}}).encode())
    with _pytest.raises(IntakeError, match="nested too deeply"):
        parse_intake("hotline", b"[" * 100_000 + b"]" * 100_000)
    with _pytest.raises(IntakeError, match="^source: ") as misrouted:
        parse_intake("hotline", _json.dumps(base | {"source": "<script>"}).encode())
    assert "<script>" not in str(misrouted.value)


def test_a_reused_id_is_compared_field_by_field_on_hashes_never_values():
    first = HotlineTicket(ticket_no="T-1", received_at="2026-11-02T09:00:00+08:00", text="路面破损，坑很深",
                          caller_phone="13800138000")
    again = HotlineTicket.model_validate_json(first.model_dump_json())
    changed = first.model_copy(update={"text": "燃气泄漏，气味很大", "street": "北街"})
    fingerprint = content_fingerprint(first)
    assert conflicting_fields(fingerprint, content_fingerprint(again)) == []  # a redelivery is no conflict
    assert conflicting_fields(fingerprint, content_fingerprint(changed)) == ["street", "text"]
    kept = json.dumps(fingerprint, ensure_ascii=False)
    assert "路面" not in kept and "13800138000" not in kept


def test_an_unknown_fields_name_is_not_repeated_either():
    with pytest.raises(IntakeError) as refused:
        parse_intake("hotline", json.dumps({"ticket_no": "H-1", "received_at": "2026-11-02T09:00:00+08:00",
                                            "text": "路灯坏了", "<img src=x>": 1, "电话13800138000": 2}).encode())
    assert str(refused.value) == "(unknown field): Extra inputs are not permitted"
