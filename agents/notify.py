"""The notify stage: each alert to the webhooks configured for its unit (and the catch-all).

    alerts ──► notify ──► unit webhooks (HMAC-signed, retried with backoff: infra/webhooks.py)
                  └──► webhook-attempts (every try, delivered or not; the sink stores them)

Deliveries within a batch run concurrently; the batch is acknowledged once every delivery has
succeeded or given up.
"""

from __future__ import annotations

import asyncio

import aiohttp
from pydantic import ValidationError

from agents.wiring import Wiring
from infra import metrics
from infra.webhooks import WebhookConfig, deliver
from schemas import Alert


def add_notify_stage(wiring: Wiring) -> None:
    webhooks = WebhookConfig.load(wiring.settings.webhooks_file)
    clock = wiring.settings.clock()

    @wiring.app.agent(wiring.topic(wiring.names.alerts), name="notify", concurrency=1)
    async def notify(stream):
        # The session is opened inside the loop: an agent starts iterating at once (Wiring.each_batch).
        session: aiohttp.ClientSession | None = None
        try:
            async for events in stream.take_events(100, within=1.0):
                session = session or aiohttp.ClientSession()
                deliveries = []
                for event in events:
                    try:
                        alert = Alert.model_validate_json(event.value)
                    except ValidationError:
                        continue  # the sink dead-letters unreadable alerts
                    for unit, endpoint in webhooks.endpoints_for(alert):
                        deliveries.append(deliver(session, alert, unit, endpoint, record_attempt, clock.now))
                for delivered in await asyncio.gather(*deliveries):
                    if not delivered:
                        metrics.WEBHOOK_GAVE_UP.inc()
        finally:
            if session is not None:
                await session.close()

    async def record_attempt(attempt) -> None:
        metrics.WEBHOOK_ATTEMPTS.labels(str(attempt.delivered).lower()).inc()
        wiring.send(wiring.names.webhook_attempts, attempt.alert_id, attempt)
