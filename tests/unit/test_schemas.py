"""The intake contracts reject what a hotline integration gets wrong, naming the field."""

import pytest
from pydantic import ValidationError

from schemas import GridReport, HotlineTicket, SensorReading, Whistle, describe_validation_error

TICKET = {
    "ticket_no": "12345-2026-0001", "received_at": "2026-11-02T08:30:00+08:00", "caller_name": "张先生",
    "caller_phone": "13812345678", "title": "路灯不亮", "text": "星沙街道主干道路灯坏了一周。", "address": "A市星沙街道",
}


def error_of(model, payload) -> str:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(payload)
    return describe_validation_error(exc.value)


def test_a_valid_ticket_parses_with_its_zone():
    ticket = HotlineTicket.model_validate(TICKET)
    assert ticket.received_at.utcoffset().total_seconds() == 8 * 3600
    assert ticket.source == "hotline"


@pytest.mark.parametrize(("change", "field"), [
    ({"received_at": "2026-11-02T08:30:00"}, "received_at"),      # no zone: ambiguous instant
    ({"caller_phone": "12345"}, "caller_phone"),
    ({"text": ""}, "text"),
    ({"ticket_no": "有空格 的编号"}, "ticket_no"),
    ({"location": {"lat": 128.2, "lon": 112.9}}, "location.lat"),
    ({"channel": "fax"}, "channel"),
    ({"unexpected": 1}, "(unknown field)"),  # its name is the sender's text: not repeated
])
def test_validation_errors_name_the_field(change, field):
    message = error_of(HotlineTicket, {**TICKET, **change})
    assert message.startswith(f"{field}: ")


def test_missing_fields_are_each_named():
    message = error_of(HotlineTicket, {"ticket_no": "x1"})
    assert "received_at: Field required" in message
    assert "text: Field required" in message


def test_errors_never_echo_the_input_values():
    # Validation reasons go to logs and dead-letter reasons: they must not carry a phone number.
    message = error_of(HotlineTicket, {**TICKET, "caller_phone": "138123456789"})
    assert "138123456789" not in message


def test_grid_report_needs_gps_and_a_grid_code():
    message = error_of(GridReport, {"report_id": "g1", "worker_id": "w1", "reported_at": "2026-11-02T08:30:00+08:00",
                                    "text": "路面破损"})
    assert "grid_code" in message and "location" in message


def test_sensor_kind_is_a_closed_set():
    message = error_of(SensorReading, {"sensor_id": "s1", "kind": "ufo", "value": 1, "unit": "x",
                                       "measured_at": "2026-11-02T08:30:00+08:00", "location": {"lat": 28, "lon": 112}})
    assert message.startswith("kind: ")


def test_whistle_must_summon_someone():
    message = error_of(Whistle, {"whistle_id": "w1", "unit": "jd-xingsha", "blown_at": "2026-11-02T08:30:00+08:00",
                                 "text": "联合执法", "summoned_units": []})
    assert message.startswith("summoned_units: ")


def test_a_dead_letter_of_any_size_fits_the_producers_limit_and_says_what_it_cut():
    import datetime as dt
    import hashlib

    from schemas import DeadLetter

    for value in ("路" * 1_000_000).encode(), b"\x00" * 200_000, b"\xff" * 2_000_000:
        letter = DeadLetter.of(value, dead_letter_id="d", topic="t", partition=0, offset=1, stage="intake",
                               reason="text: too long", failed_at=dt.datetime.now(dt.timezone.utc))
        assert len(letter.model_dump_json().encode()) < 1_000_000  # Kafka's default max message size
        assert letter.payload_truncated and letter.payload_bytes == len(value)
        assert letter.payload_sha256 == hashlib.sha256(value).hexdigest()
    small = DeadLetter.of(b'{"a": 1}', dead_letter_id="d", topic="t", partition=0, offset=1, stage="s", reason="r",
                          failed_at=dt.datetime.now(dt.timezone.utc))
    assert small.payload == '{"a": 1}' and not small.payload_truncated
