"""API keys: one per integration (a hotline vendor, a department's system, an operator desk, a screen),
each with scopes, kept hashed in a JSON file the api re-reads when it changes.

    intake                 POST reports (hotline tickets, grid reports, sensor readings, whistles)
    department:<unit>      read and act on that unit's tasks, and no other unit's
    operator               the operator queue: read it, dispatch, close
    read                   figures, tasks and the queue (screens, reporting); changes nothing

A key is shown once, when it is issued: `co_<key id>_<secret>`. The file keeps the key id, the scopes
and the SHA-256 of the secret.

A key may also sign its requests (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, five minutes' tolerance): then
a request with the key but without a valid signature is refused, so a leaked bearer token alone is
not enough. Signing secrets must be readable to check a signature, so they are kept as issued (the
file is the owner's alone); a key holds at most two at once, so a vendor can roll to a new one
(`cityops keys rotate`) while its requests still carry the old. The secret is 32 random bytes, so a plain hash is enough (a slow hash
such as argon2 is for guessable passwords; it would only add latency to every request here).
`cityops keys issue|list|revoke` edit the file; a running api picks up the change on its next request.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Annotated, NamedTuple

from pydantic import AfterValidator, BaseModel, Field

PREFIX = "co"
# callback: the hotline's call-back team (回访), who may score any task's result besides the key that sent it.
_SCOPE = re.compile(r"^(intake|operator|read|callback|department:[A-Za-z0-9_\-.]{1,64})$")


def _valid_scope(scope: str) -> str:
    if not _SCOPE.match(scope):
        raise ValueError("a scope is intake, operator, read, callback or department:<unit code>")
    return scope


Scope = Annotated[str, AfterValidator(_valid_scope)]


class ApiKey(BaseModel):
    key_id: str
    name: str = Field(min_length=1, max_length=64, description="who holds it, e.g. the vendor or the desk")
    scopes: list[Scope] = Field(min_length=1)
    secret_sha256: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    signing_secrets: list[str] = Field(default_factory=list, max_length=2,
                                       description="whsec_…: when set, every request must be signed with one")

    @property
    def units(self) -> set[str]:
        """The units whose tasks this key may act on."""
        return {s.split(":", 1)[1] for s in self.scopes if s.startswith("department:")}

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class KeyFile(BaseModel):
    keys: list[ApiKey] = Field(default_factory=list)


class KeyRing:
    """The keys in `path`, re-read whenever the file changes (inode, mtime, size)."""

    def __init__(self, path: Path):
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._by_id: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._by_id = None, {}
            return
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            with self._lock:
                keys = KeyFile.model_validate_json(self.path.read_bytes()).keys
                self._by_id, self._seen = {k.key_id: k for k in keys}, seen

    def find(self, token: str) -> ApiKey | None:
        """The live key `token` is, or None (unknown, malformed, wrong secret or revoked)."""
        parts = token.split("_")
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        self._reload()
        key = self._by_id.get(parts[1])
        if key is None or key.revoked_at is not None:
            return None
        if not hmac.compare_digest(_digest(parts[2]), key.secret_sha256):
            return None
        return key


class Issued(NamedTuple):
    key: ApiKey
    token: str  # shown once; the file keeps its hash
    signing_secret: str | None  # whsec_…, when the key signs its requests


def issue(path: Path, name: str, scopes: list[str], *, replace: bool = False, signed: bool = False) -> Issued:
    """Add a key to the file. `replace`: revoke the live keys of the same name first (a demo issuing
    its key on each run). `signed`: its requests must carry a signature made with the secret returned."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
    now = dt.datetime.now(dt.timezone.utc)
    signing = [_signing_secret()] if signed else []
    key = ApiKey(key_id=key_id, name=name, scopes=scopes, secret_sha256=_digest(secret), created_at=now,
                 signing_secrets=signing)
    file = read(path)
    if replace:
        file.keys = [k.model_copy(update={"revoked_at": now}) if k.name == name and k.revoked_at is None else k
                     for k in file.keys]
    file.keys.append(key)
    _write(path, file)
    return Issued(key, f"{PREFIX}_{key_id}_{secret}", signing[0] if signing else None)


def revoke(path: Path, key_id: str) -> ApiKey:
    return _change(path, key_id, lambda key: key if key.revoked_at else key.model_copy(
        update={"revoked_at": dt.datetime.now(dt.timezone.utc)}))


def rotate_signing_secret(path: Path, key_id: str) -> str:
    """A new signing secret for the key; the newest earlier one stays valid beside it until the next
    rotation, so the vendor can switch without a refused request."""
    secret = _signing_secret()
    _change(path, key_id, lambda key: key.model_copy(update={"signing_secrets": [*key.signing_secrets[-1:], secret]}))
    return secret


def _change(path: Path, key_id: str, change) -> ApiKey:
    file = read(path)
    for n, key in enumerate(file.keys):
        if key.key_id == key_id:
            file.keys[n] = changed = change(key)
            if changed != key:
                _write(path, file)
            return changed
    raise KeyError(f"no key with id {key_id} in {path}")


def _signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def read(path: Path) -> KeyFile:
    return KeyFile.model_validate_json(path.read_bytes()) if path.exists() else KeyFile()


def _write(path: Path, file: KeyFile) -> None:
    """Whole file at once (a reader never sees half of it), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(file.model_dump(mode="json"), f, ensure_ascii=False, indent=1)
    os.replace(temp, path)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
