"""Alert webhooks: the signature a receiver checks, and who gets which alert."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from infra.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookConfig, sign, verify
from schemas import Alert

SECRET = b"s3cret"
BODY = b'{"alert_id": "a1", "kind": "overdue"}'


def headers(timestamp: int, body: bytes = BODY, secret: bytes = SECRET) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def test_a_receiver_accepts_a_fresh_signed_body_and_nothing_else():
    now = int(time.time())
    assert verify(SECRET, headers(now), BODY)
    assert not verify(SECRET, headers(now), BODY.replace(b"overdue", b"hotspot"))  # tampered body
    assert not verify(SECRET, headers(now, secret=b"other"), BODY)  # wrong secret
    assert not verify(SECRET, headers(now - 3600), BODY)  # a captured request replayed an hour later
    assert not verify(SECRET, {SIGNATURE_HEADER: sign(SECRET, now, BODY)}, BODY)  # no timestamp
    stolen = headers(now)
    stolen[TIMESTAMP_HEADER] = str(now + 1)  # the timestamp is signed too
    assert not verify(SECRET, stolen, BODY)


def test_the_unit_that_must_act_and_the_catch_all_get_an_alert(tmp_path, monkeypatch):
    path = tmp_path / "webhooks.yaml"
    path.write_text('units:\n  cgj: {url: "https://cgj.example/hook", secret_env: CGJ}\n'
                    '  "*": {url: "https://ops.example/hook", secret_env: OPS}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="secrets not set in the environment: CGJ, OPS"):
        WebhookConfig.load(path)
    monkeypatch.setenv("CGJ", "a")
    monkeypatch.setenv("OPS", "b")
    config = WebhookConfig.load(path)
    now = dt.datetime.now(dt.timezone.utc)
    overdue = Alert(alert_id="a", kind="overdue", item_no="CJ-029", to_unit="cgj", raised_at=now)
    escalation = Alert(alert_id="b", kind="escalation", item_no="CJ-029", to_unit="ccc", raised_at=now)
    assert [u for u, _ in config.endpoints_for(overdue)] == ["cgj", "*"]
    assert [u for u, _ in config.endpoints_for(escalation)] == ["*"]
    assert WebhookConfig.load(None).endpoints_for(overdue) == []
