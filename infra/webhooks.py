"""Alert webhooks: each unit may have an HTTPS endpoint that receives its alerts as JSON.

Signing (the scheme Stripe and GitHub use): the body is the alert JSON; the headers are
    X-Cityops-Alert-Id:   the alert id (deliveries are at least once: de-duplicate on it)
    X-Cityops-Timestamp:  Unix seconds when this attempt was signed
    X-Cityops-Signature:  sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the unit's secret>
A receiver recomputes the HMAC with `verify()` (or the same three lines in its own language) and
rejects a timestamp older than a few minutes, so a captured request cannot be replayed later.

Configuration (`CITYOPS_WEBHOOKS_FILE`), YAML:
    units:
      cgj: {url: "https://cgj.example.gov.cn/cityops", secret_env: CGJ_WEBHOOK_SECRET}
      "*": {url: "https://ops.example.gov.cn/alerts", secret_env: OPS_WEBHOOK_SECRET}  # every alert
Secrets come from the environment variable named, never from the file itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from pydantic import BaseModel, Field

from infra.settings import redact_url
from pipeline import ids
from schemas import Alert, WebhookAttempt

SIGNATURE_HEADER = "X-Cityops-Signature"
TIMESTAMP_HEADER = "X-Cityops-Timestamp"
ALERT_ID_HEADER = "X-Cityops-Alert-Id"
EVERY_ALERT = "*"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, headers: dict[str, str], body: bytes, *, now: float | None = None,
           tolerance_seconds: float = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), headers.get(SIGNATURE_HEADER, ""))


class Endpoint(BaseModel):
    url: str = Field(pattern=r"^https?://")
    secret_env: str = Field(min_length=1, description="environment variable holding the HMAC secret")


class WebhookConfig(BaseModel):
    units: dict[str, Endpoint] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> WebhookConfig:
        if path is None:
            return cls()
        config = cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        missing = sorted({e.secret_env for e in config.units.values() if not os.environ.get(e.secret_env)})
        if missing:
            raise ValueError(f"{path}: webhook secrets not set in the environment: {', '.join(missing)}")
        return config

    def endpoints_for(self, alert: Alert) -> list[tuple[str, Endpoint]]:
        """(unit, endpoint) pairs that get this alert: the unit that must act, and the catch-all."""
        return [(unit, self.units[unit]) for unit in dict.fromkeys([alert.to_unit, EVERY_ALERT]) if unit in self.units]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    first_delay: float = 0.5  # seconds; doubles after each failure
    max_delay: float = 30.0
    timeout: float = 10.0


async def deliver(session: aiohttp.ClientSession, alert: Alert, unit: str, endpoint: Endpoint,
                  record: Callable[[WebhookAttempt], Awaitable[None]], now: Callable,
                  policy: RetryPolicy = RetryPolicy()) -> bool:
    """POST the alert until a 2xx answer or the attempts run out; every attempt is `record`ed.
    4xx other than 408/429 is the receiver refusing it: retrying would not help."""
    body = alert.model_dump_json().encode()
    secret = os.environ[endpoint.secret_env].encode()
    delay = policy.first_delay
    for attempt in range(1, policy.attempts + 1):
        started = time.monotonic()
        timestamp = int(time.time())
        status, error = None, ""
        try:
            async with session.post(endpoint.url, data=body, timeout=aiohttp.ClientTimeout(total=policy.timeout),
                                    headers={"Content-Type": "application/json", ALERT_ID_HEADER: alert.alert_id,
                                             TIMESTAMP_HEADER: str(timestamp),
                                             SIGNATURE_HEADER: sign(secret, timestamp, body)}) as response:
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        delivered = status is not None and 200 <= status < 300
        await record(WebhookAttempt(
            attempt_id=ids.stable_id("webhook", alert.alert_id, unit, attempt, timestamp), alert_id=alert.alert_id, to_unit=unit,
            url=redact_url(endpoint.url), attempt=attempt, at=now(), status=status, error=error, delivered=delivered,
            seconds=round(time.monotonic() - started, 3)))
        if delivered:
            return True
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            return False
        if attempt < policy.attempts:
            await asyncio.sleep(delay)
            delay = min(delay * 2, policy.max_delay)
    return False
