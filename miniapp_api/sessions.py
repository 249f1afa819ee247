"""Session tokens of ours, given to the Mini App after a Zalo login.

A token is ``v1.<payload>.<signature>``: the payload is compact JSON in base64url (no padding), the
signature HMAC-SHA256 over ``v1.<payload>`` with a key derived from ``SECRET_KEY`` for this purpose
alone (so it is never another HMAC of the secret), compared in constant time. Claims:

- ``t``: ``"a"`` (access, short-lived, sent as ``Authorization: Bearer``) or ``"r"`` (refresh);
- ``c``: our customer id, ``u``: the Zalo user id (app-scoped), ``p``: the avatar URL Zalo gave at
  login (not stored anywhere else: it is Zalo's to show);
- ``iat``, ``exp``: Unix seconds; ``j``: a random id (refresh tokens are single-use by it).

Tokens are stateless: any web process checks them with the shared ``SECRET_KEY``. An erased customer's
tokens stop working because every request loads the customer; changing ``SECRET_KEY`` logs everyone out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

from loyalty.clock import Clock
from miniapp_api.errors import ApiError

TokenKind = Literal["a", "r"]
_VERSION: Final = "v1"
_CONTEXT: Final = b"social-loyalty/miniapp-session/v1"
_MAX_TOKEN: Final = 2048


@dataclass(frozen=True, slots=True)
class Session:
    kind: TokenKind
    customer_id: str
    zalo_user_id: str
    avatar: str | None
    issued_at: int
    expires_at: int
    jti: str


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    access_expires_at: int
    refresh_token: str
    refresh_expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, secret: bytes, clock: Clock, *, access_ttl: int, refresh_ttl: int) -> None:
        self._key = hmac.new(secret, _CONTEXT, hashlib.sha256).digest()
        self._clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    def _sign(self, signed_part: str) -> str:
        return _b64(hmac.new(self._key, signed_part.encode("ascii"), hashlib.sha256).digest())

    def issue(self, customer_id: str, zalo_user_id: str, avatar: str | None) -> IssuedTokens:
        now = self._now()
        access = self._token("a", customer_id, zalo_user_id, avatar, now, now + self.access_ttl)
        refresh = self._token("r", customer_id, zalo_user_id, avatar, now, now + self.refresh_ttl)
        return IssuedTokens(access, now + self.access_ttl, refresh, now + self.refresh_ttl)

    def _token(  # noqa: PLR0917 - the claims, in order
        self, kind: TokenKind, customer_id: str, user: str, avatar: str | None, iat: int, exp: int
    ) -> str:
        claims: dict[str, Any] = {"t": kind, "c": customer_id, "u": user, "iat": iat, "exp": exp}
        claims["j"] = secrets.token_urlsafe(12)
        if avatar:
            claims["p"] = avatar
        payload = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
        signed = f"{_VERSION}.{payload}"
        return f"{signed}.{self._sign(signed)}"

    def verify(self, token: object, kind: TokenKind) -> Session:
        """The session of a token of ``kind``; 401 ``invalid_token`` or ``token_expired`` otherwise."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN or not token.isascii():
            raise ApiError(401, "invalid_token", "the session token is not valid")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            raise ApiError(401, "invalid_token", "the session token is not valid")
        expected = self._sign(f"{parts[0]}.{parts[1]}")
        if not hmac.compare_digest(expected, parts[2]):
            raise ApiError(401, "invalid_token", "the session token is not valid")
        try:
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            raise ApiError(401, "invalid_token", "the session token is not valid") from None
        session = _session(claims)
        if session is None or session.kind != kind:
            raise ApiError(401, "invalid_token", "the session token is not valid")
        if session.expires_at <= self._now():
            raise ApiError(401, "token_expired", "the session expired: refresh it or log in again")
        return session


def _session(claims: Any) -> Session | None:
    if not isinstance(claims, dict):
        return None
    kind, customer, user = claims.get("t"), claims.get("c"), claims.get("u")
    iat, exp, jti, avatar = claims.get("iat"), claims.get("exp"), claims.get("j"), claims.get("p")
    if kind not in ("a", "r") or not isinstance(customer, str) or not isinstance(user, str):
        return None
    if not isinstance(iat, int) or not isinstance(exp, int) or not isinstance(jti, str):
        return None
    if avatar is not None and not isinstance(avatar, str):
        return None
    return Session(kind, customer, user, avatar, iat, exp, jti)
