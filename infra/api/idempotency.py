"""`Idempotency-Key` (the IETF httpapi draft, as Stripe and others use it): a client that retries a
POST with the same key gets the first answer again and nothing is created twice. The same key with
another body is a client bug (422); a retry while the first is still running gets 409.

Kept in this process for `ttl` (bounded in size). Several api replicas behind a balancer each keep
their own; a retry that reaches another replica is still harmless, because what a POST creates has
a deterministic id (the ticket number makes the incident id, the task and kind make the event id).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse

from infra.api.problems import Problem

REPLAYED_HEADER = "Idempotent-Replayed"


class Replays:
    def __init__(self, ttl_seconds: float = 24 * 3600, max_entries: int = 100_000):
        self.ttl, self.max_entries = ttl_seconds, max_entries
        # (api key id, Idempotency-Key) → (body fingerprint, stored at, status, body) or None while running
        self._answers: OrderedDict[tuple[str, str], tuple[str, float, int, object] | None] = OrderedDict()

    async def answer(self, scope: tuple[str, str] | None, fingerprint: str,
                     run: Callable[[], Awaitable[tuple[int, object]]]) -> JSONResponse:
        """Run the request once per scope; a 2xx answer is kept and replayed, any other is not."""
        if scope is None:
            status, body = await run()
            return JSONResponse(body, status_code=status)
        self._expire()
        if scope in self._answers:
            kept = self._answers[scope]
            if kept is None:
                raise Problem(409, "Conflict", "a request with this Idempotency-Key is still being processed")
            if kept[0] != fingerprint:
                raise Problem(422, "Unprocessable Content", "this Idempotency-Key was used with another request body")
            return JSONResponse(kept[3], status_code=kept[2], headers={REPLAYED_HEADER: "true"})
        self._answers[scope] = None
        try:
            status, body = await run()
        except BaseException:
            self._answers.pop(scope, None)
            raise
        if 200 <= status < 300:
            self._answers[scope] = (fingerprint, time.monotonic(), status, body)
        else:
            self._answers.pop(scope, None)
        return JSONResponse(body, status_code=status)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._answers:
            scope, kept = next(iter(self._answers.items()))
            if len(self._answers) <= self.max_entries and (kept is None or now - kept[1] < self.ttl):
                break
            self._answers.popitem(last=False)

