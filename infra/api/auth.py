"""Who is calling: the API key in `Authorization: Bearer co_…`,
its scopes, and its rate limit. Handlers declare what they need as a dependency
(`Depends(scoped("intake"))`); the key itself is found in the `KeyRing` (infra/api/keys.py)."""

from __future__ import annotations

import math
import time

from fastapi import Depends, Header, Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from infra.api.keys import ApiKey, KeyRing
from infra.api.problems import Problem


class Gate:
    """The key ring and the per-key rate limit ("600/minute": the `limits` notation)."""

    def __init__(self, keys: KeyRing, rate_limit: str):
        self.keys = keys
        self.rate = parse(rate_limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def admit(self, token: str) -> ApiKey:
        key = self.keys.find(token)
        if key is None:
            raise Problem(401, "Unauthorized", "send a valid API key: Authorization: Bearer co_…",
                          headers={"WWW-Authenticate": "Bearer"})
        if not self.limiter.hit(self.rate, key.key_id):
            reset, _ = self.limiter.get_window_stats(self.rate, key.key_id)
            raise Problem(429, "Too Many Requests", f"this key may make {self.rate} requests",
                          headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))})
        return key


def current_key(request: Request,
                authorization: str | None = Header(default=None, description="Bearer <API key>")) -> ApiKey:
    scheme, _, token = (authorization or "").partition(" ")
    return request.app.state.gate.admit(token.strip() if scheme.lower() == "bearer" else "")


def scoped(*scopes: str):
    """A dependency: a key holding any of `scopes` (`department` matches every `department:<unit>`)."""

    def check(key: ApiKey = Depends(current_key)) -> ApiKey:
        if any(key.allows(s) or (s == "department" and key.units) for s in scopes):
            return key
        raise Problem(403, "Forbidden", f"this key lacks the scope for this: one of {', '.join(scopes)}")

    return check
