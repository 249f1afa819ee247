"""``/webhooks/messenger``: the verification handshake (GET) and the event deliveries (POST).

POST, in this order: the raw bytes (the app refuses bodies over 1 MiB with 413), the signature over
exactly those bytes, JSON, the table of :mod:`.events` over every item of every entry (updates prepared
as JSON, not built: the worker builds them), one ``submit`` to the sink for the whole delivery, 200. The
bytes go to :func:`.fast.parse_bytes` first (msgspec); when it cannot tell, :func:`parse_json` and
:func:`~.events.parse_body` answer, with the same 400s as ever. A
delivery is queued whole or not at all: a 400 or 503 queues nothing, and Meta resends after a 503 (the
queue's dedupe makes the resend safe).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
from typing import Final

from aiohttp import web
from pydantic_core import from_json

from webhooks.common import COUNTERS, SINK, ApiError, Counters, count_queued, queue_failure, read_body
from webhooks.messenger.config import MessengerWebhookConfig
from webhooks.messenger.events import Batch, InvalidPayload, parse_body
from webhooks.messenger.fast import parse_bytes

log = logging.getLogger("loyalty.webhooks.messenger")

SOURCE: Final = "messenger"
SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER: Final = "X-Hub-Signature"  # sha1; older docs only, never accepted
# The doc calls hub.challenge "an int"; digits only, so nothing else is ever echoed back.
_CHALLENGE: Final = re.compile(r"[0-9]{1,64}")
_SIGNATURE: Final = re.compile(r"sha256=([0-9a-fA-F]{64})")
_SIGNED_LENGTH: Final = len("sha256=") + 64

CONFIG: Final = web.AppKey("messenger_webhook_config", MessengerWebhookConfig)


async def verify(request: web.Request) -> web.Response:
    """The subscription handshake: the dashboard's Verify Token must match; the challenge is echoed."""
    config = request.app[CONFIG]
    counters = request.app[COUNTERS]
    mode = request.query.get("hub.mode")
    token = request.query.get("hub.verify_token", "")
    token_ok = hmac.compare_digest(token.encode(), config.verify_token.encode())
    if mode != "subscribe" or not token_ok:
        counters.inc("webhook_verifications_total", source=SOURCE, outcome="refused")
        log.warning(
            "messenger: verification refused (mode %r, token %s)", mode, "ok" if token_ok else "wrong"
        )
        raise ApiError(403, "verification_failed", "hub.mode or hub.verify_token is wrong")
    challenge = request.query.get("hub.challenge", "")
    if not _CHALLENGE.fullmatch(challenge):
        counters.inc("webhook_verifications_total", source=SOURCE, outcome="bad_challenge")
        raise ApiError(400, "invalid_challenge", "hub.challenge must be 1-64 digits")
    counters.inc("webhook_verifications_total", source=SOURCE, outcome="ok")
    log.info("messenger: webhook verified")
    return web.Response(text=challenge, content_type="text/plain")


def signature_problem(app_secret: str, body: bytes, header: str | None, legacy: str | None) -> str | None:
    """Why ``header`` does not sign ``body`` (``"missing"``, ``"legacy_only"``, ``"malformed"``,
    ``"mismatch"``), or None when it does. ``legacy`` (the legacy header) only matters without ``header``.

    Meta signs the exact bytes it sends (HMAC-SHA256, key: the App Secret), so ``body`` must be the raw
    request body: re-serialized JSON would hash differently (the doc's "escaped unicode" remark).
    """
    if header is None:
        return "legacy_only" if legacy is not None else "missing"
    # Meta's own form first ("sha256=" and 64 lowercase hex digits), compared as text: no regex, no
    # bytes.fromhex (~0.5 µs a request). Anything else, a mismatch included, is classified below.
    if (
        len(header) == _SIGNED_LENGTH
        and header.startswith("sha256=")
        and header.isascii()
        and hmac.compare_digest(hmac_sha256(app_secret, body).hex(), header[7:])
    ):
        return None
    match = _SIGNATURE.fullmatch(header.strip())
    if match is None:
        return "malformed"
    if not hmac.compare_digest(hmac_sha256(app_secret, body), bytes.fromhex(match.group(1))):
        return "mismatch"
    return None


def hmac_sha256(key: str, message: bytes) -> bytes:
    """``hmac.new(key.encode(), message, hashlib.sha256).digest()``, from the two SHA-256 states keyed
    once per key (RFC 2104: H(K ^ opad, H(K ^ ipad, message))), copied per call. About half the time of
    copying a keyed :class:`hmac.HMAC`, whose methods are Python wrappers around the same C calls."""
    inner, outer = _pads(key)
    digest = inner.copy()
    digest.update(message)
    mac = outer.copy()
    mac.update(digest.digest())
    return mac.digest()


_BLOCK_SIZE: Final = 64  # SHA-256's


@functools.lru_cache(maxsize=8)
def _pads(key: str) -> tuple[hashlib._Hash, hashlib._Hash]:
    secret = key.encode()
    if len(secret) > _BLOCK_SIZE:  # RFC 2104: longer keys are hashed first
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK_SIZE, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in secret))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in secret))
    return inner, outer


def parse_json(body: bytes) -> object:
    """The JSON value of ``body``; ``ValueError`` (or ``RecursionError``) if it is not JSON.

    pydantic-core's parser first (about 3x faster than :func:`json.loads`: this is the hot path). It
    refuses a few bodies :func:`json.loads` takes (lone surrogate escapes such as ``"\\ud800"``, ``NaN``,
    nesting deeper than 200), which then go through :func:`json.loads`, so what is accepted stays what it
    was; whether Meta ever sends such a body is unconfirmed.
    """
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError:
        return json.loads(body)


OK_BODY: Final = b'{"ok": true}'


async def receive(request: web.Request) -> web.Response:
    """One delivery: any number of entries, each with any number of ``messaging``/``standby`` items."""
    app = request.app
    config = app[CONFIG]
    body = await read_body(request)  # over the app's client_max_size: 413, before anything else
    header = request.headers.get(SIGNATURE_HEADER)
    legacy = request.headers.get(LEGACY_SIGNATURE_HEADER) if header is None else None  # read only if needed
    problem = signature_problem(config.app_secret, body, header, legacy)
    if problem is not None:
        app[COUNTERS].inc("webhook_signature_failures_total", source=SOURCE, reason=problem)
        log.warning("messenger: refused a delivery of %d bytes: signature %s", len(body), problem)
        raise ApiError(401, "invalid_signature", f"{SIGNATURE_HEADER} is {problem.replace('_', ' ')}")
    oldest = config.oldest_millis()
    try:
        batch = parse_bytes(body, oldest=oldest, page_id=config.page_id)
        if batch is None:  # the fast path cannot tell: the usual one answers, 400s included
            batch = parse_body(_json(app, body), oldest=oldest, page_id=config.page_id)
    except InvalidPayload as error:
        app[COUNTERS].inc("webhook_invalid_requests_total", source=SOURCE, code="invalid_request")
        log.warning("messenger: refused a malformed delivery: %s", error.details[:3])
        raise ApiError(400, "invalid_request", "the delivery is invalid", error.details) from None
    if batch.ignored or batch.unknown or batch.stale or batch.ignored_object is not None:
        _count(app[COUNTERS], batch)
    if batch.updates:
        # Awaited here rather than in a helper: one coroutine less to create and resume per request.
        try:
            results = await app[SINK].submit(batch.updates)
        except Exception as error:  # 503 if the queue cannot take them all: Meta delivers them again
            raise queue_failure(app, len(batch.updates), error, source=SOURCE) from error
        count_queued(app, results, source=SOURCE)
    return web.Response(body=OK_BODY, content_type="application/json")


def _json(app: web.Application, body: bytes) -> object:
    try:
        return parse_json(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
        app[COUNTERS].inc("webhook_invalid_requests_total", source=SOURCE, code="invalid_json")
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def _count(counters: Counters, batch: Batch) -> None:
    if batch.ignored_object is not None:
        counters.inc("webhook_ignored_events_total", source=SOURCE, event=f"object_{batch.ignored_object}")
        log.warning("messenger: ignored a delivery for object %r (not a Page)", batch.ignored_object)
    for event, count in batch.ignored.items():
        counters.inc("webhook_ignored_events_total", count, source=SOURCE, event=event)
    for event, count in batch.unknown.items():
        counters.inc("webhook_unknown_events_total", count, source=SOURCE, event=event)
        log.warning("messenger: skipped %d item(s) of unknown kind %r", count, event)
    for event, count in batch.stale.items():
        counters.inc("webhook_stale_events_total", count, source=SOURCE, event=event)
        log.warning("messenger: skipped %d stale %r item(s) (older than the dedupe window)", count, event)
