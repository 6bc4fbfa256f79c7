"""Two ASGI wrappers around the app: a body-size limit and request metrics by route template (never
by path: ids in paths would make unbounded label values). The limit is ours because uvicorn has none
and FastAPI's own `max_body_size` answers `text/plain`, not a problem document."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra import metrics
from infra.api.problems import Problem


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large().response()(scope, receive, send)
        received = 0

        async def counted() -> Message:  # a chunked body has no length to check up front
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._too_large().body.detail)
            return message

        await self.app(scope, counted, send)

    def _too_large(self) -> Problem:
        return Problem(413, "Content Too Large", f"a request body may have at most {self.max_bytes} bytes")


class RequestMetrics:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.API_REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started)
