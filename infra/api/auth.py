"""Who is calling: the API key in `Authorization: Bearer co_…` (and, for keys that sign, a valid
Standard Webhooks signature over the body),
its scopes, and its rate limit. Handlers declare what they need as a dependency
(`Depends(scoped("intake"))`); the key itself is found in the `KeyRing` (infra/api/keys.py)."""

from __future__ import annotations

import math
import time

from fastapi import Depends, Header, Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from standardwebhooks.webhooks import Webhook

from infra.api.keys import ApiKey, KeyRing
from infra.api.problems import Problem

SIGNATURE_TOLERANCE_SECONDS = 300  # the standardwebhooks library's window


class Gate:
    """The key ring, signatures, the per-key rate limit ("600/minute": the `limits` notation), and the
    per-address limit of requests without a key."""

    def __init__(self, keys: KeyRing, rate_limit: str, public_rate_limit: str = "600/minute",
                 lookup_rate_limit: str = "10/minute"):
        self.keys = keys
        self.rate = parse(rate_limit)
        self.public_rate = parse(public_rate_limit)
        self.lookup_rate = parse(lookup_rate_limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self._seen_ids: dict[tuple[str, str], float] = {}  # (key id, webhook-id) → when seen

    async def admit_request(self, request: Request, token: str) -> ApiKey:
        key = self.admit(token)
        if key.signing_secrets:
            self.check_signature(key, dict(request.headers), await request.body())
        return key

    def check_signature(self, key: ApiKey, headers: dict[str, str], body: bytes) -> None:
        """Standard Webhooks: any of the key's secrets (two during a rotation) verifies any of the
        signatures sent; the timestamp within five minutes; each webhook-id once."""
        for secret in key.signing_secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                break
            except Exception:  # wrong secret, malformed header, stale timestamp: try the next secret
                continue
        else:
            raise Problem(401, "Unauthorized", "this key signs its requests: send webhook-id, webhook-timestamp "
                          "(within five minutes) and webhook-signature (v1,<base64 HMAC-SHA256 of id.timestamp.body>)")
        now = time.time()
        seen = (key.key_id, headers.get("webhook-id", ""))
        if seen in self._seen_ids:
            raise Problem(409, "Conflict", "this webhook-id was used already: a replayed request")
        self._seen_ids[seen] = now
        if len(self._seen_ids) > 100_000:
            self._seen_ids = {k: t for k, t in self._seen_ids.items() if now - t < SIGNATURE_TOLERANCE_SECONDS * 2}

    def admit(self, token: str) -> ApiKey:
        key = self.keys.find(token)
        if key is None:
            raise Problem(401, "Unauthorized", "send a valid API key: Authorization: Bearer co_…",
                          headers={"WWW-Authenticate": "Bearer"})
        self._limit(self.rate, key.key_id, "this key")
        return key

    def admit_public(self, request: Request) -> ApiKey | None:
        """A request to a route anyone may read: limited per key when it brings a valid one, else per
        client address (a bogus key is no way around the limit)."""
        token = bearer_token(request.headers.get("authorization")) or request.query_params.get("api_key")
        key = self.keys.find(token) if token else None
        if key is not None:
            self._limit(self.rate, key.key_id, "this key")
        else:
            self._limit(self.public_rate, f"address:{request.client.host if request.client else ''}",
                        "a client without a key")
        return key

    def admit_lookup(self, request: Request) -> None:
        """A reporter's lookup (ticket number and phone): its own, tighter limit per client address."""
        self._limit(self.lookup_rate, f"lookup:{request.client.host if request.client else ''}",
                    "a reporter's lookup from one address")

    def _limit(self, rate, identity: str, who: str) -> None:
        if not self.limiter.hit(rate, identity):
            reset, _ = self.limiter.get_window_stats(rate, identity)
            raise Problem(429, "Too Many Requests", f"{who} may make {rate} requests",
                          headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))})


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def require_scope(key: ApiKey, scopes: tuple[str, ...]) -> ApiKey:
    """`key` if it holds any of `scopes` (`department` matches every `department:<unit>`), else 403."""
    if any(key.allows(s) or (s == "department" and key.units) for s in scopes):
        return key
    raise Problem(403, "Forbidden", f"this key lacks the scope for this: one of {', '.join(scopes)}")


async def current_key(request: Request,
                      authorization: str | None = Header(default=None, description="Bearer <API key>")) -> ApiKey:
    return await request.app.state.gate.admit_request(request, bearer_token(authorization) or "")


async def public_client(request: Request) -> ApiKey | None:
    """A dependency of the routes anyone may read: the rate limit, and the key if one came."""
    return request.app.state.gate.admit_public(request)


async def reporter_lookup(request: Request) -> None:
    """A dependency of the reporter's lookup routes (no key; the ticket's phone number is the proof)."""
    request.app.state.gate.admit_lookup(request)


def scoped(*scopes: str):
    """A dependency: a key holding any of `scopes`."""

    def check(key: ApiKey = Depends(current_key)) -> ApiKey:
        return require_scope(key, scopes)

    return check
