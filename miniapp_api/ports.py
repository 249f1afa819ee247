"""What the Mini App API needs from outside, as small interfaces the composition root fills in.

``miniapp_api`` may import only ``loyalty`` and aiohttp (import-linter), so the Zalo Graph client
(httpx, in ``app.zalo_graph``), the Redis rate limiter and idempotency store (``storage.api_support``)
and the API key repository (``storage.api_keys``) are handed in through these protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


# ------------------------------------------------------------ Zalo Graph API (shared/platforms/zalo.md §6)
class ZaloUser(BaseModel):
    """Who a Mini App user access token belongs to. Name and avatar need ``scope.userInfo``."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None = None
    avatar: str | None = None


class GraphTokenInvalid(Exception):
    """Zalo refused the user access token (wrong, expired, or a wrong ``appsecret_proof``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Zalo error {code}: {message}")
        self.code = code


class GraphPhoneRefused(Exception):
    """Zalo refused the phone code (used, expired, or the phone permission is not granted)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Zalo error {code}: {message}")
        self.code = code


class GraphUnavailable(Exception):
    """Zalo could not be reached or answered something we cannot read (a 5xx, a timeout)."""


class ZaloGraph(Protocol):
    async def me(self, access_token: str) -> ZaloUser:
        """``GET /v2.0/me`` with ``appsecret_proof``. Raises GraphTokenInvalid or GraphUnavailable."""
        ...

    async def phone_number(self, access_token: str, code: str) -> str:
        """``GET /v2.0/me/info`` with the getPhoneNumber ``code``: the number as Zalo writes it
        (``84912345678``). Raises GraphPhoneRefused, GraphTokenInvalid or GraphUnavailable."""
        ...


# ---------------------------------------------------------------- Redis-backed helpers
# Plain types only: storage implements these without importing miniapp_api.
@dataclass(frozen=True, slots=True)
class RateRule:
    key: str  # "ip:<address>", "customer:<id>", "apikey:<id>"
    limit: int
    window_seconds: int


class RateLimiter(Protocol):
    async def hit(self, rules: Sequence[tuple[str, int, int]]) -> float:
        """Count one request against every ``(key, limit, window_seconds)`` rule (fixed windows).
        Returns 0 when allowed, else the seconds until the window that refused resets."""
        ...


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: bytes
    fingerprint: str  # what the first request was (method, path, body hash): a different one conflicts


class IdempotencyStore(Protocol):
    async def begin(self, key: str, fingerprint: str, *, lease_seconds: int) -> tuple[int, bytes, str] | bool:
        """Reserve ``key``: ``True`` when this call reserved it, ``(status, body, fingerprint)`` when an
        answer is stored, ``False`` when another request holds the key right now (still running)."""
        ...

    async def finish(
        self, key: str, status: int, body: bytes, fingerprint: str, *, keep_seconds: int
    ) -> None:
        """Store the answer to replay for ``keep_seconds``."""
        ...

    async def abandon(self, key: str) -> None:
        """Drop the reservation (the request failed in a way the client should retry)."""
        ...

    async def use_once(self, key: str, *, ttl_seconds: int) -> bool:
        """True the first time ``key`` is used within ``ttl_seconds`` (single-use refresh tokens)."""
        ...


# ---------------------------------------------------------------- API keys of the integrations API
class ApiKeyRecord(BaseModel):
    """An integration's API key as stored: only the SHA-256 of the secret, never the secret."""

    model_config = ConfigDict(frozen=True)

    id: str  # the public part of the key, also shown in `loyalty apikey list`
    name: str
    secret_hash: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


class ApiKeyRepository(Protocol):
    """Records as plain mappings (the fields of :class:`ApiKeyRecord`)."""

    async def insert(self, record: Mapping[str, Any]) -> None: ...
    async def get(self, key_id: str) -> Mapping[str, Any] | None: ...
    async def list_all(self) -> list[Mapping[str, Any]]: ...
    async def revoke(self, key_id: str, at: datetime) -> bool: ...
