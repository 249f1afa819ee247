"""Zalo Official Account: OA tokens (OAuth v4) and the consultation-message client (OpenAPI v3).

The contracts come from ``shared/platforms/zalo.md`` (sections 2 to 4). In short:

- every OA call carries a bare ``access_token: <token>`` header (not ``Authorization: Bearer``), and a
  failure usually comes back as HTTP 200 with a non-zero ``error``: the body is always checked;
- access tokens live 25 hours, refresh tokens 3 months and are **single-use**: each refresh answers a
  new pair whose refresh token is stored durably *before* anything else, by one refresher at a time
  (a cross-process lock of the :class:`TokenStore`);
- Zalo has no postback and no quick replies: buttons send their payload back as a (hidden) user text,
  prefixed by :func:`bot.channels.zalo_payload.encode`; quick replies become buttons.

Token values are never logged, never put in exception messages, and hidden from the ``repr`` of
:class:`OATokens`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar
from urllib.parse import urlencode

import httpx

from bot.channels.base import ChannelError, Recipient
from bot.channels.errors import (
    DEFAULT_POLICY,
    ConfigurationError,
    PermanentError,
    RateLimitedError,
    RecipientUnavailableError,
    RetryPolicy,
    TokenError,
    TransientError,
    WindowClosedError,
    with_retries,
)
from bot.channels.zalo_payload import encode
from bot.render import ZALO, NumberedOptions, fit
from bot.replies import Button, Buttons, Card, Image, QuickReplies, Reply, Text
from bot.timeutil import EPOCH, utc_now

if TYPE_CHECKING:
    from bot.types import BaseUpdate

log = logging.getLogger("loyalty.bot.channels.zalo")

ResultT = TypeVar("ResultT")
Clock = Callable[[], datetime]

#: How long Zalo says its tokens live (section 3): 25 hours and 3 months.
ACCESS_TOKEN_LIFETIME: Final = timedelta(hours=25)
REFRESH_TOKEN_LIFETIME: Final = timedelta(days=90)
#: An access token expiring within this margin is refreshed before use.
REFRESH_MARGIN: Final = timedelta(minutes=10)
#: The longest text of one consultation message (section 2).
MAX_TEXT_LENGTH: Final = 2000
MESSAGE_PATH: Final = "/v3.0/oa/message/cs"
USER_DETAIL_PATH: Final = "/v3.0/oa/user/detail"
TOKEN_PATH: Final = "/v4/oa/access_token"  # noqa: S105 - a path, not a secret
#: The OA admin's consent page (section 3), on ``ZALO_OAUTH_BASE`` like the token endpoint.
PERMISSION_PATH: Final = "/v4/oa/permission"
#: An authorization code is single-use and valid for 10 minutes (section 3).
AUTHORIZATION_CODE_LIFETIME: Final = timedelta(minutes=10)


# --------------------------------------------------------------------------------------------- errors


class ReauthorizationRequired(TokenError):
    """Zalo refused our refresh token (used, expired or revoked), or there is none.

    Nothing automatic can fix it: an OA admin must authorize the app again (the consent link of
    ``shared/platforms/zalo.md`` section 3) and the new tokens must reach the settings
    (``ZALO_OA_ACCESS_TOKEN`` / ``ZALO_OA_REFRESH_TOKEN``), which :class:`ZaloTokens` then adopts.
    """


class AuthorizationRefused(PermanentError):
    """Zalo refused to exchange an authorization code (wrong, used, expired, or a verifier that does not
    match its challenge): the admin must open a new consent link. Nothing was stored."""


class RetryLaterError(PermanentError):
    """Refused for now, not for good: trying again in seconds is useless (a daily quota, a quiet period).

    Not retried by :func:`~bot.channels.errors.with_retries`; the caller reschedules, after
    ``retry_after`` seconds when it is known.
    """

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class QuotaExhaustedError(RetryLaterError):
    """The OA (or app) used up a message quota (OA ``-211`` / ``-218``, ZNS daily quotas).

    A quota resets per day or per messaging window, so the in-call retry loop would only burn attempts:
    campaigns stop and try again later (or switch to ZNS); a conversation reply is dropped.
    """


class ZaloTransientError(TransientError):
    """A timeout, a transport failure or a 5xx, with ``code`` (``timeout``, ``connect``, ``http_502``...)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ZaloRateLimitedError(RateLimitedError):
    """Zalo's ``-32`` (4,000 requests per minute per app) or an HTTP 429, with ``code``."""

    def __init__(self, message: str, retry_after: float | None = None, *, code: str | None = None) -> None:
        super().__init__(message, retry_after)
        self.code = code


@dataclass(frozen=True, slots=True)
class ErrorTable:
    """Which Zalo error codes mean what (section 2 for the OA API, section 5 for ZNS)."""

    rate_limited: frozenset[int] = frozenset()
    token: frozenset[int] = frozenset()
    recipient: frozenset[int] = frozenset()
    window: frozenset[int] = frozenset()
    quota: frozenset[int] = frozenset()
    later: frozenset[int] = frozenset()
    configuration: frozenset[int] = frozenset()
    permanent: frozenset[int] = frozenset()


# The OA error table of zalo.md section 2. -211/-218 ("out of quota: stop, retry later") are a
# QuotaExhaustedError: final for this call (the with_retries loop would retry within seconds, and a quota
# does not come back that fast), the caller reschedules or falls back to ZNS.
OA_ERRORS: Final = ErrorTable(
    rate_limited=frozenset({-32}),
    token=frozenset({-216, -220, -124}),
    recipient=frozenset({-213, -227}),
    window=frozenset({-230, -232, -305, -311}),
    quota=frozenset({-211, -218}),
    configuration=frozenset({-209, -212, -221, -224, -242}),
    permanent=frozenset({-201, -233, -240}),
)


def zalo_error(
    code: int, message: str, table: ErrorTable, *, retry_after: float | None = None
) -> ChannelError:
    """The typed exception for Zalo's ``error`` ``code``; unknown codes are permanent."""
    text = f"Zalo error {code}: {message}" if message else f"Zalo error {code}"
    key = str(code)
    if code in table.rate_limited:
        return ZaloRateLimitedError(text, retry_after, code=key)
    if code in table.token:
        return TokenError(text, code=key)
    if code in table.recipient:
        return RecipientUnavailableError(text, code=key)
    if code in table.window:
        return WindowClosedError(text, code=key)
    if code in table.quota:
        return QuotaExhaustedError(text, code=key)
    if code in table.later:
        return RetryLaterError(text, code=key)
    if code in table.configuration:
        return ConfigurationError(text, code=key)
    return PermanentError(text, code=key)


def _retry_after(response: httpx.Response) -> float | None:
    # Zalo documents `X-RateLimit-*` headers without their exact names (unconfirmed): read the standard
    # Retry-After when present, else let the retry policy back off.
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_code(value: Any) -> int | None:
    """Zalo's ``error`` as an int: documented as a number, accepted as a numeric string too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def check_response(response: httpx.Response, table: ErrorTable, what: str) -> dict[str, Any]:
    """The JSON body of a Zalo answer, or the typed exception its status and ``error`` field mean.

    :raises ZaloRateLimitedError: HTTP 429 or a rate-limit code.
    :raises ZaloTransientError: HTTP 5xx, or a success status whose body is not a JSON object.
    :raises ChannelError: the mapped exception of a non-zero ``error`` (see :func:`zalo_error`).
    """
    status = response.status_code
    if status == 429:
        raise ZaloRateLimitedError(f"{what}: HTTP 429", _retry_after(response), code="http_429")
    if status >= 500:
        raise ZaloTransientError(f"{what}: HTTP {status}", code=f"http_{status}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if status >= 400:
            raise PermanentError(f"{what}: HTTP {status} without a Zalo error body", code=f"http_{status}")
        raise ZaloTransientError(f"{what}: HTTP {status} with a body that is not a JSON object", code="body")
    raw_code = body.get("error", 0)
    code = _error_code(raw_code)
    if code is None:
        raise PermanentError(f"{what}: unreadable Zalo error {raw_code!r}", code="body")
    if code != 0:
        message = body.get("message")
        raise zalo_error(
            code, message[:200] if isinstance(message, str) else "", table, retry_after=_retry_after(response)
        )
    if status >= 400:
        raise PermanentError(f"{what}: HTTP {status}", code=f"http_{status}")
    return body


async def send_request(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    table: ErrorTable,
    headers: Mapping[str, str],
    json_body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One HTTP call to Zalo, with transport failures and timeouts as :class:`ZaloTransientError`.

    Its ``code`` tells whether the request may have reached Zalo: ``connect`` and ``pool_timeout`` (see
    :data:`NOT_SENT_CODES`) mean it did not; ``timeout``, ``transport``, ``http_5xx`` and ``body`` mean
    Zalo may have acted on it.
    """
    try:
        response = await http.request(method, url, headers=dict(headers), json=json_body, params=params)
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise ZaloTransientError(
            f"{what}: could not connect ({type(error).__name__})", code="connect"
        ) from error
    except httpx.PoolTimeout as error:
        raise ZaloTransientError(f"{what}: no free connection", code="pool_timeout") from error
    except httpx.TimeoutException as error:
        raise ZaloTransientError(f"{what}: timed out ({type(error).__name__})", code="timeout") from error
    except httpx.TransportError as error:
        raise ZaloTransientError(f"{what}: {type(error).__name__}", code="transport") from error
    return check_response(response, table, what)


#: Transient codes of :func:`send_request` after which the request surely never reached Zalo.
NOT_SENT_CODES: Final = frozenset({"connect", "pool_timeout"})


# --------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class OATokens:
    """One OA token pair, as stored. ``version`` grows by one on each refresh (a compare-and-set key).

    ``seeds`` are fingerprints (SHA-256, never the values) of the settings tokens this store has adopted,
    so a worker restarted with newly authorized tokens adopts them, and an older worker still configured
    with the previous ones does not put those back.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime
    version: int
    seeds: tuple[str, ...] = ()

    def to_document(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "access_expires_at": self.access_expires_at,
            "refresh_expires_at": self.refresh_expires_at,
            "version": self.version,
            "seeds": list(self.seeds),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> OATokens:
        """Tokens from a stored document; tolerant of naive datetimes (read as UTC) and missing seeds."""
        try:
            access, refresh, version = (
                document["access_token"],
                document["refresh_token"],
                document["version"],
            )
            access_expires, refresh_expires = document["access_expires_at"], document["refresh_expires_at"]
        except KeyError as error:
            raise ConfigurationError(f"stored Zalo tokens lack {error}", code="token_store") from error
        if not (isinstance(access, str) and isinstance(refresh, str) and isinstance(version, int)):
            raise ConfigurationError("stored Zalo tokens have fields of the wrong type", code="token_store")
        if not (isinstance(access_expires, datetime) and isinstance(refresh_expires, datetime)):
            raise ConfigurationError("stored Zalo token expiries are not datetimes", code="token_store")
        seeds = document.get("seeds") or ()
        return cls(
            access,
            refresh,
            _aware(access_expires),
            _aware(refresh_expires),
            version,
            tuple(str(seed) for seed in seeds),
        )


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class TokenStore(Protocol):
    """Durable token storage shared by every worker process (``storage.platform_tokens.MongoTokenStore``).

    Tokens travel as plain mappings (:meth:`OATokens.to_document`), because ``storage`` must not import
    ``bot``.
    """

    async def load(self, account_id: str) -> dict[str, Any] | None:
        """The stored tokens of ``account_id``, or ``None``."""
        ...

    async def save(self, account_id: str, tokens: Mapping[str, Any]) -> bool:
        """Store ``tokens`` durably if ``tokens["version"]`` follows the stored version (or none is stored).

        :return: whether ours is now the stored version (``False``: another writer was first).
        """
        ...

    def refresh_lock(self, account_id: str) -> AbstractAsyncContextManager[None]:
        """A lock held by one process at a time, across processes; a ``TimeoutError`` when it never frees."""
        ...


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``(code_verifier, code_challenge)`` (S256), as section 3 says: the verifier is base64url of
    32 random bytes, the challenge base64url of the verifier's SHA-256, both without ``=`` padding."""
    verifier = _b64url(secrets.token_bytes(32))
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def consent_url(oauth_base: str, *, app_id: str, redirect_uri: str, code_challenge: str, state: str) -> str:
    """The link an OA admin opens to authorize the app for the OA (section 3); Zalo then redirects the
    browser to ``redirect_uri?code=...&oa_id=...&state=...``. ``redirect_uri`` must be the callback URL
    registered in the Zalo app's settings."""
    query = urlencode(
        {"app_id": app_id, "redirect_uri": redirect_uri, "code_challenge": code_challenge, "state": state}
    )
    return f"{oauth_base.rstrip('/')}{PERMISSION_PATH}?{query}"


class ZaloTokens:
    """The OA access token of one account: loaded from the store, seeded from settings, refreshed.

    :param http: the HTTP client (its timeout applies to the token call too).
    :param store: shared, durable storage with a cross-process refresh lock.
    :param oauth_base: ``ZALO_OAUTH_BASE`` (``https://oauth.zaloapp.com``).
    :param app_id: ``ZALO_APP_ID``.
    :param app_secret: ``ZALO_APP_SECRET`` (the ``secret_key`` header of the token call).
    :param account_id: the OA id (the store key).
    :param seed_access_token: ``ZALO_OA_ACCESS_TOKEN``: adopted when the store has no tokens yet, or
        when the settings carry tokens the store has never adopted (an admin authorized again).
    :param seed_refresh_token: ``ZALO_OA_REFRESH_TOKEN``, likewise.
    :param clock: the current aware UTC time.
    :param cache_seconds: how long a process uses tokens it loaded before it reads the store again (a
        refresh by another worker is also noticed at once when Zalo refuses the old token).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        store: TokenStore,
        *,
        oauth_base: str,
        app_id: str,
        app_secret: str,
        account_id: str,
        seed_access_token: str | None = None,
        seed_refresh_token: str | None = None,
        clock: Clock = utc_now,
        cache_seconds: float = 60.0,
    ) -> None:
        self.http = http
        self.store = store
        self.oauth_base = oauth_base.rstrip("/")
        self.app_id = app_id
        self._app_secret = app_secret
        self.account_id = account_id
        self._seed_access = seed_access_token or ""
        self._seed_refresh = seed_refresh_token or ""
        self._seed_fingerprint = (
            hashlib.sha256(f"{self._seed_access}\0{self._seed_refresh}".encode()).hexdigest()
            if self._seed_access or self._seed_refresh
            else None
        )
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cached: OATokens | None = None
        self._cached_at = 0.0
        self._local = asyncio.Lock()  # one refresher per process (the store's lock: per deployment)

    def __repr__(self) -> str:
        return f"ZaloTokens(account_id={self.account_id!r}, app_id={self.app_id!r})"

    def appsecret_proof(self, access_token: str) -> str:
        """``hex(HMAC-SHA256(key=app secret, msg=access_token))``: the optional ``appsecret_proof`` header."""
        return hmac.new(self._app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()

    async def access_token(self) -> str:
        """A valid access token: loaded, seeded or refreshed as needed (see :meth:`current`)."""
        return (await self.current()).access_token

    async def current(self) -> OATokens:
        """The tokens to use now, refreshed first when the access token expires within 10 minutes.

        :raises ReauthorizationRequired: no tokens anywhere, or Zalo refused the refresh token.
        :raises TransientError: the token endpoint or the refresh lock was unavailable.
        """
        loop = asyncio.get_running_loop()
        tokens = self._cached
        if tokens is None or self._expiring(tokens) or loop.time() - self._cached_at > self.cache_seconds:
            tokens = await self._load_or_seed()
            self._remember(tokens)
        if self._expiring(tokens):
            tokens = await self.refresh(tokens)
        return tokens

    async def refresh(self, stale: OATokens | None) -> OATokens:
        """New tokens in place of ``stale`` (the ones Zalo refused or that are about to expire).

        Under the store's lock it reads the store again: when the stored version is newer than
        ``stale``, another worker (or coroutine) refreshed while we waited, and the stored tokens are
        returned without calling Zalo. Otherwise it calls the token endpoint with the stored refresh
        token, saves the new pair (durably, before anything uses it) and returns it. ``stale=None``
        always refreshes.

        :raises ReauthorizationRequired: Zalo answered without an ``access_token`` (logged at ERROR).
        :raises TransientError: a timeout, 5xx or transport failure of the token call, or the lock stayed
            taken; nothing was stored and the refresh token is unchanged.
        """
        async with self._local:
            cached = self._cached
            if stale is not None and cached is not None and cached.version > stale.version:
                return cached
            try:
                async with self.store.refresh_lock(self.account_id):
                    return await self._refresh_locked(stale)
            except TimeoutError as error:  # the store's lock wait ran out: another refresher hangs
                raise ZaloTransientError(
                    f"the Zalo token refresh lock of {self.account_id} stayed taken", code="token_lock"
                ) from error

    async def authorize(self, code: str, code_verifier: str) -> OATokens:
        """Exchange an OA admin's authorization ``code`` (PKCE ``code_verifier``) for a new token pair and
        store it, durably, as the next version before returning it (the flow that ends a
        :class:`ReauthorizationRequired`).

        The configured seed tokens (``ZALO_OA_ACCESS_TOKEN`` / ``ZALO_OA_REFRESH_TOKEN``) are marked as
        seen, so they are never adopted over the authorized pair; every worker picks the new pair up from
        the store (at once when Zalo refuses its old access token).

        :raises AuthorizationRefused: Zalo answered without an ``access_token`` (nothing stored).
        :raises TransientError: a timeout, 5xx or transport failure of the call, or the lock stayed taken.
        """
        form = {
            "app_id": self.app_id,
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
        }
        async with self._local:
            try:
                async with self.store.refresh_lock(self.account_id):
                    status, body = await self._token_request(form, "Zalo authorization code exchange")
                    if not _has_access_token(body):
                        detail = _token_error_detail(body, status)
                        log.warning("Zalo refused the authorization code of %s (%s)", self.account_id, detail)
                        raise AuthorizationRefused(
                            f"Zalo refused the authorization code ({detail}): open a new consent link",
                            code="authorization_refused",
                        )
                    document = await self.store.load(self.account_id)
                    stored = OATokens.from_document(document) if document is not None else None
                    seeds = stored.seeds if stored is not None else ()
                    if self._seed_fingerprint is not None and self._seed_fingerprint not in seeds:
                        seeds = (*seeds, self._seed_fingerprint)
                    fresh = self._tokens_from(
                        body, version=(stored.version if stored else 0) + 1, seeds=seeds, previous=None
                    )
                    saved = await self._save_first(fresh)
            except TimeoutError as error:
                raise ZaloTransientError(
                    f"the Zalo token refresh lock of {self.account_id} stayed taken", code="token_lock"
                ) from error
            self._remember(saved)
        log.warning(
            "Zalo OA %s authorized again: new tokens stored (version %d)", self.account_id, saved.version
        )
        return saved

    # ----------------------------------------------------------------------------------------- internals

    def _expiring(self, tokens: OATokens) -> bool:
        return tokens.access_expires_at - self.clock() <= REFRESH_MARGIN

    def _remember(self, tokens: OATokens) -> None:
        self._cached = tokens
        self._cached_at = asyncio.get_running_loop().time()

    def _seeded(self, version: int, seeds: tuple[str, ...]) -> OATokens:
        # The age of settings tokens is unknown: assume they are fresh. A stale access token is refused
        # by Zalo (-216) and refreshed once; an access token without a refresh token cannot be refreshed.
        now = self.clock()
        assert self._seed_fingerprint is not None
        return OATokens(
            access_token=self._seed_access,
            refresh_token=self._seed_refresh,
            access_expires_at=now + ACCESS_TOKEN_LIFETIME if self._seed_access else EPOCH,
            refresh_expires_at=now + REFRESH_TOKEN_LIFETIME if self._seed_refresh else EPOCH,
            version=version,
            seeds=(*seeds, self._seed_fingerprint),
        )

    async def _load_or_seed(self) -> OATokens:
        for _ in range(5):
            document = await self.store.load(self.account_id)
            stored = OATokens.from_document(document) if document is not None else None
            fingerprint = self._seed_fingerprint
            if stored is not None and (fingerprint is None or fingerprint in stored.seeds):
                return stored
            if stored is None and fingerprint is None:
                raise self._reauthorization("no Zalo OA tokens are stored and none are configured")
            seeded = self._seeded(stored.version + 1 if stored else 1, stored.seeds if stored else ())
            if await self.store.save(self.account_id, seeded.to_document()):
                if stored is None:
                    log.info("stored the configured Zalo OA tokens of %s (first use)", self.account_id)
                else:
                    log.warning(
                        "adopted newly configured Zalo OA tokens for %s (version %d): authorized again",
                        self.account_id,
                        seeded.version,
                    )
                return seeded
            # another worker seeded or refreshed at the same moment: read what it stored
        raise ZaloTransientError(
            f"the Zalo token store of {self.account_id} kept changing", code="token_store"
        )

    async def _refresh_locked(self, stale: OATokens | None) -> OATokens:
        stored = await self._load_or_seed()
        if stale is not None and stored.version > stale.version:
            log.info(
                "Zalo OA tokens of %s were refreshed by another worker (version %d)",
                self.account_id,
                stored.version,
            )
            self._remember(stored)
            return stored
        if not stored.refresh_token:
            raise self._reauthorization("there is no refresh token to renew the access token with")
        fresh = await self._call_token_endpoint(stored)
        saved = await self._save_first(fresh)
        self._remember(saved)
        log.info(
            "refreshed the Zalo OA tokens of %s (version %d, access token valid until %s)",
            self.account_id,
            saved.version,
            saved.access_expires_at.isoformat(timespec="seconds"),
        )
        return saved

    async def _call_token_endpoint(self, stored: OATokens) -> OATokens:
        form = {"app_id": self.app_id, "grant_type": "refresh_token", "refresh_token": stored.refresh_token}
        # If Zalo handled the call before a timeout, the refresh token we sent is spent and the new one is
        # lost: the next attempt then ends in ReauthorizationRequired. Nothing can prevent that on our
        # side; the error log of that one tells the operator.
        status, body = await self._token_request(form, "Zalo token refresh")
        if not _has_access_token(body):
            # The error body differs from OpenAPI's and is unconfirmed (e.g. {"error": -14014,
            # "error_name": "Invalid refresh token"}): any answer without an access_token is a refusal.
            detail = _token_error_detail(body, status)
            raise self._reauthorization(f"Zalo refused to refresh the OA tokens ({detail})")
        return self._tokens_from(body, version=stored.version + 1, seeds=stored.seeds, previous=stored)

    async def _token_request(self, form: dict[str, str], what: str) -> tuple[int, Any]:
        """POST ``form`` to the token endpoint; the HTTP status and the JSON body (``None`` if not JSON).

        :raises ZaloTransientError: a timeout, transport failure, 5xx or 429.
        """
        url = f"{self.oauth_base}{TOKEN_PATH}"
        try:
            response = await self.http.post(url, headers={"secret_key": self._app_secret}, data=form)
        except httpx.TimeoutException as error:
            raise ZaloTransientError(f"{what} timed out", code="timeout") from error
        except httpx.TransportError as error:
            raise ZaloTransientError(f"{what}: {type(error).__name__}", code="transport") from error
        if response.status_code >= 500 or response.status_code == 429:
            raise ZaloTransientError(
                f"{what}: HTTP {response.status_code}", code=f"http_{response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    def _tokens_from(
        self, body: dict[str, Any], *, version: int, seeds: tuple[str, ...], previous: OATokens | None
    ) -> OATokens:
        """The pair of a successful token answer (``previous``: the pair it replaces, for a refresh)."""
        now = self.clock()
        new_refresh = body.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh:
            refresh_expires = now + _seconds(body.get("refresh_token_expires_in"), REFRESH_TOKEN_LIFETIME)
        elif previous is not None:
            # Documented as always present; if not, the old one may still work (unconfirmed): keep it.
            log.warning("Zalo refreshed the tokens of %s without a new refresh token", self.account_id)
            new_refresh, refresh_expires = previous.refresh_token, previous.refresh_expires_at
        else:
            # An authorization answer without a refresh token (unconfirmed that it can happen): the access
            # token works until it expires, then ReauthorizationRequired asks for a new consent.
            log.warning("Zalo authorized %s without a refresh token", self.account_id)
            new_refresh, refresh_expires = "", EPOCH
        return OATokens(
            access_token=body["access_token"],
            refresh_token=new_refresh,
            # expires_in is a string of seconds ("90000"); an int is accepted too.
            access_expires_at=now + _seconds(body.get("expires_in"), ACCESS_TOKEN_LIFETIME),
            refresh_expires_at=refresh_expires,
            version=version,
            seeds=seeds,
        )

    async def _save_first(self, fresh: OATokens) -> OATokens:
        """Store the new pair before anyone uses it: the refresh token we sent is spent."""
        delay = 0.1
        for attempt in range(6):
            try:
                if await self.store.save(self.account_id, fresh.to_document()):
                    return fresh
            except Exception as error:  # any store failure: try again, the pair must be kept
                if attempt == 5:
                    log.critical(
                        "could not store the new Zalo OA tokens of %s (%s): they are lost, an OA admin "
                        "will have to authorize the app again",
                        self.account_id,
                        type(error).__name__,
                    )
                    raise ZaloTransientError(
                        "could not store refreshed Zalo tokens", code="token_store"
                    ) from error
                log.warning("storing refreshed Zalo tokens failed (%s), retrying", type(error).__name__)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            # Another writer stored this version while we held the lock (our lock expired?). The pair we
            # hold was just minted with the stored refresh token, which Zalo has now spent: ours must win.
            document = await self.store.load(self.account_id)
            current = OATokens.from_document(document) if document is not None else None
            log.error(
                "Zalo tokens of %s changed during our refresh (version %s): storing ours as the next version",
                self.account_id,
                current.version if current else None,
            )
            fresh = replace(fresh, version=(current.version if current else 0) + 1)
        raise ZaloTransientError("the Zalo token store kept changing during a refresh", code="token_store")

    def _reauthorization(self, reason: str) -> ReauthorizationRequired:
        message = (
            f"{reason}: an OA admin must authorize the Zalo app {self.app_id} again "
            f"for OA {self.account_id}, "
            "then set ZALO_OA_ACCESS_TOKEN / ZALO_OA_REFRESH_TOKEN to the new tokens"
        )
        log.error("Zalo OA re-authorization required: %s", message)
        return ReauthorizationRequired(message, code="reauthorize")


def _has_access_token(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("access_token"), str) and bool(body["access_token"])


def _token_error_detail(body: Any, status: int) -> str:
    """Zalo's error code and name from a token answer, never the rest of the body (it may echo input)."""
    if not isinstance(body, dict):
        return f"HTTP {status}, not a JSON object"
    parts = [f"HTTP {status}"]
    code = body.get("error")
    if isinstance(code, int | str) and not isinstance(code, bool):
        parts.append(f"error {str(code)[:20]}")
    for key in ("error_name", "error_reason", "message"):
        value = body.get(key)
        if isinstance(value, str) and value:
            parts.append(value[:120])
            break
    return ", ".join(parts)


def _seconds(value: Any, default: timedelta) -> timedelta:
    if isinstance(value, bool):
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return timedelta(seconds=seconds) if seconds > 0 else default


async def call_with_token(
    tokens: ZaloTokens,
    do: Callable[[OATokens], Awaitable[ResultT]],
    *,
    policy: RetryPolicy,
    what: str,
) -> ResultT:
    """Run ``do(tokens)`` with retries; when Zalo refuses the token, refresh it once and run it again.

    ``do`` raises :class:`~bot.channels.errors.TokenError` for the token codes; the refresh is told which
    tokens were refused, so concurrent callers share one refresh.
    """
    current = await with_retries(tokens.current, policy=policy, what=f"{what} (token)")
    try:
        return await with_retries(lambda: do(current), policy=policy, what=what)
    except TokenError as error:
        if isinstance(error, ReauthorizationRequired):
            raise
        log.warning("%s: Zalo refused the access token (error %s), refreshing it once", what, error.code)
    fresh = await with_retries(lambda: tokens.refresh(current), policy=policy, what=f"{what} (token refresh)")
    return await with_retries(lambda: do(fresh), policy=policy, what=what)


# ------------------------------------------------------------------------------------------ rendering

_PHONE_JUNK: Final = re.compile(r"[\s.\-()]")
_VN_PHONE: Final = re.compile(r"84[0-9]{9,10}")  # mobiles: 84 + 9 digits; landlines: 84 + 10


def normalize_phone(phone: str) -> str:
    """A Vietnamese phone number in Zalo's ``84…`` form: ``+84 98 765 43 21`` → ``84987654321``.

    :raises ValueError: not a Vietnamese number in the ``0…``, ``84…``, ``+84…`` or ``0084…`` forms.
    """
    digits = _PHONE_JUNK.sub("", phone)
    if digits.startswith("+84"):
        digits = digits[1:]
    elif digits.startswith("0084"):
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = "84" + digits[1:]
    if not _VN_PHONE.fullmatch(digits):
        raise ValueError("not a Vietnamese phone number in the 84…, +84… or 0… form")
    return digits


def split_text(text: str, limit: int = MAX_TEXT_LENGTH) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a line break or space when there is one.

    Blank text gives no piece (Zalo refuses an empty message).
    """
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        head = rest[:limit]
        cut = max(head.rfind("\n"), head.rfind(" "))
        if cut < limit // 2:
            cut = limit  # no break in the second half: cut the word
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    pieces.append(rest)
    return [piece for piece in pieces if piece.strip()]


def render_button(button: Button) -> dict[str, Any]:
    """A Zalo button: postback → ``oa.query.hide`` with the prefixed payload, url, phone."""
    if button.payload is not None:
        try:
            payload = encode(button.payload)
        except ValueError as error:
            raise PermanentError(f"button {button.title!r}: {error}", code="payload") from error
        return {"title": button.title, "type": "oa.query.hide", "payload": payload}
    if button.url is not None:
        return {"title": button.title, "type": "oa.open.url", "payload": {"url": button.url}}
    assert button.phone is not None
    try:
        phone = normalize_phone(button.phone)
    except ValueError:
        phone = _PHONE_JUNK.sub("", button.phone)  # a foreign or short number: as written
    return {"title": button.title, "type": "oa.open.phone", "payload": {"phone_code": phone}}


def _template(payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "template", "payload": payload}


def _with_text(text: str | None, last: dict[str, Any]) -> list[dict[str, Any]]:
    """Text too long for one message goes first as plain texts; the last piece rides with ``last``."""
    pieces = split_text(text or "")
    if not pieces:
        return [last]
    *head, tail = pieces
    return [{"text": piece} for piece in head] + [{"text": tail, **last}]


def render(reply: Reply | NumberedOptions) -> list[dict[str, Any]]:
    """The ``message`` objects of ``/v3.0/oa/message/cs`` for one fitted reply (usually one).

    :raises PermanentError: the reply cannot be shown on Zalo (an image given as bytes, a bad payload).
    """
    if isinstance(reply, NumberedOptions):
        return [{"text": piece} for piece in split_text(reply.rendered_text())]
    if isinstance(reply, Text):
        return [{"text": piece} for piece in split_text(reply.text)]
    if isinstance(reply, QuickReplies):  # fit() already turns them into buttons; kept for direct callers
        return render(fit(reply, ZALO))
    if isinstance(reply, Buttons):
        buttons = [render_button(button) for button in reply.buttons]
        return _with_text(reply.text, {"attachment": _template({"buttons": buttons})})
    if isinstance(reply, Image):
        if reply.url is None:
            # zalo.md names an upload API (attachment_id) without documenting it: only public URLs for now.
            raise PermanentError(
                "Zalo images must be sent by public URL: uploading image bytes is not implemented "
                "(the upload API is not documented in shared/platforms/zalo.md)",
                code="image_bytes",
            )
        media = _template({"template_type": "media", "elements": [{"media_type": "image", "url": reply.url}]})
        return _with_text(reply.caption, {"attachment": media})
    if isinstance(reply, Card):
        element: dict[str, Any] = {"title": reply.title}
        if reply.subtitle:
            element["subtitle"] = reply.subtitle
        if reply.image_url:
            element["image_url"] = reply.image_url
        payload = {
            "template_type": "list",
            "elements": [element],
            "buttons": [render_button(button) for button in reply.buttons],
        }
        return [{"attachment": _template(payload)}]
    # RequestPhone: the request_user_info form. Whether image_url is required is unconfirmed: it is sent
    # only when given. The prompt text is the title unless a title is given (then it is the subtitle).
    title = reply.title or reply.text
    subtitle = reply.subtitle or (reply.text if reply.title else None)
    form: dict[str, Any] = {"title": title}
    if subtitle:
        form["subtitle"] = subtitle
    if reply.image_url:
        form["image_url"] = reply.image_url
    return [{"attachment": _template({"template_type": "request_user_info", "elements": [form]})}]


# ------------------------------------------------------------------------------------------ the client


class ZaloOAClient:
    """Consultation messages (``/v3.0/oa/message/cs``) and user details of one OA.

    Implements :class:`~bot.channels.base.ChannelClient`. Each message is retried on timeouts, 5xx,
    transport failures and ``-32`` (with :func:`~bot.channels.errors.with_retries`); a refused token is
    refreshed once and the message sent again. A timeout after Zalo took the message can make a retry
    deliver it twice: accepted for chat replies (ZNS sends are guarded, see :mod:`bot.channels.zns`).

    :param http: the HTTP client (with a timeout).
    :param tokens: the OA's tokens.
    :param api_base: ``ZALO_OA_API_BASE`` (``https://openapi.zalo.me``).
    :param policy: retries of each call.
    :param appsecret_proof: also send the optional ``appsecret_proof`` header (an app can require it;
        ``-242`` when it is wrong).
    """

    channel: Final = "zalo"

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: ZaloTokens,
        *,
        api_base: str,
        policy: RetryPolicy = DEFAULT_POLICY,
        appsecret_proof: bool = False,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.api_base = api_base.rstrip("/")
        self.policy = policy
        self.appsecret_proof = appsecret_proof

    async def send(
        self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: BaseUpdate | None = None
    ) -> None:
        """Render every reply first (so nothing is sent when one cannot be), then send them in order.

        :raises ChannelError: the first message that failed (after retries and one token refresh); the
            messages after it are not sent.
        """
        if to.account_id != self.tokens.account_id:
            raise ConfigurationError(
                f"recipient of OA {to.account_id} sent through the client of OA {self.tokens.account_id}"
            )
        messages = [message for reply in replies for message in render(fit(reply, ZALO))]
        for message in messages:
            await self.send_message(to.user_id, message)

    async def _call(self, method: str, path: str, what: str, **request: Any) -> dict[str, Any]:
        """One OA API call with the current token (refreshed once if refused), retried when transient;
        Zalo's ``data`` object."""

        async def attempt(tokens: OATokens) -> dict[str, Any]:
            answer = await send_request(
                self.http,
                method,
                f"{self.api_base}{path}",
                what=what,
                table=OA_ERRORS,
                headers=self._headers(tokens),
                **request,
            )
            data = answer.get("data")
            return data if isinstance(data, dict) else {}

        return await call_with_token(self.tokens, attempt, policy=self.policy, what=what)

    async def send_message(self, user_id: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """Send one rendered ``message`` object; return Zalo's ``data`` (``message_id``, ``quota``...)."""
        body = {"recipient": {"user_id": user_id}, "message": dict(message)}
        data = await self._call("POST", MESSAGE_PATH, "zalo message", json_body=body)
        log.debug("zalo message %s sent to %s", data.get("message_id"), user_id)
        return data

    async def profile(self, user_id: str) -> dict[str, Any]:
        """Zalo's details of a user (``/v3.0/oa/user/detail``), with the phone normalised.

        :return: Zalo's ``data`` (``display_name``, ``avatar``, ``user_is_follower`` as a bool...) plus
            ``phone``: the shared phone as an ``84…`` string, or ``None``; ``shared_info.phone`` likewise.
        :raises RecipientUnavailableError: ``-213``, an unknown id or not a follower.
        """
        params = {"data": json.dumps({"user_id": user_id}, separators=(",", ":"))}
        data = await self._call("GET", USER_DETAIL_PATH, "zalo user detail", params=params)
        profile = dict(data)
        shared = data.get("shared_info")
        shared_info = dict(shared) if isinstance(shared, dict) else {}
        phone = shared_phone(shared_info.get("phone"))
        shared_info["phone"] = phone
        profile["shared_info"] = shared_info
        profile["phone"] = phone
        follower = data.get("user_is_follower")
        profile["user_is_follower"] = follower is True or (isinstance(follower, str) and follower == "true")
        return profile

    def _headers(self, tokens: OATokens) -> dict[str, str]:
        headers = {"access_token": tokens.access_token}
        if self.appsecret_proof:
            headers["appsecret_proof"] = self.tokens.appsecret_proof(tokens.access_token)
        return headers


def shared_phone(value: Any) -> str | None:
    """``shared_info.phone`` as a string: Zalo may send a number, and ``0`` or ``""`` when there is none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not value:
            return None
        text = str(int(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text or text == "0":
            return None
    else:
        return None
    try:
        return normalize_phone(text)
    except ValueError:
        return text  # not Vietnamese-shaped: kept as Zalo gave it
