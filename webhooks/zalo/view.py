"""``POST /webhooks/zalo``: verify a Zalo delivery, turn it into updates, queue them, answer 200.

In this order, each step refusing with nothing queued:

1. read the raw bytes (the app caps bodies at 1 MiB: 413);
2. parse the JSON, only to read ``timestamp``, which the signature covers (400 ``invalid_json`` /
   ``invalid_request``);
3. check ``X-ZEvent-Signature: mac=<hex>`` = sha256(app_id + raw body + timestamp + OA secret key),
   in constant time (401 ``invalid_signature``);
4. refuse replays: a ``timestamp`` older than the queue's dedupe window allows, or too far in the future
   (401 ``stale_event``);
5. parse the event through the table (400 ``invalid_request`` for a malformed known event; 200 and a
   count for an ignored or unknown one);
6. queue the updates (503 when the queue cannot take them, so Zalo delivers again) and answer
   ``{"ok": true}``. Zalo wants the 200 within about 2 seconds: nothing else is awaited, except the
   ZNS status recorder for ``X-ZEvent-Server: ZNS`` deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import timedelta
from typing import Any, Final

from aiohttp import web

from bot.timeutil import from_millis
from webhooks.common import COUNTERS, ApiError, Counters, enqueue, read_body
from webhooks.zalo.config import CLOCK, CONFIG, ZaloWebhookConfig
from webhooks.zalo.events import EVENT_MAP, IGNORED_EVENTS, parse_event
from webhooks.zalo.fields import MalformedEvent, parse_epoch_ms
from webhooks.zalo.zns import ZNS_EVENT_MAP, ZNS_SERVER, ZNS_STATUS

log = logging.getLogger("loyalty.webhooks.zalo")

SOURCE: Final = "zalo"
SIGNATURE_HEADER: Final = "X-ZEvent-Signature"
SERVER_HEADER: Final = "X-ZEvent-Server"
MAC_PREFIX: Final = "mac="
# event names become metric labels: anything else is counted under "other"
_LABEL: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_OK: Final = {"ok": True}


def expected_mac(config: ZaloWebhookConfig, body: bytes, timestamp: str) -> str:
    """``sha256(app_id + raw_body + timestamp + oa_secret_key)``, lowercase hex: plain SHA-256, not HMAC
    (confirmed, recomputed on a real delivery)."""
    digest = hashlib.sha256()
    digest.update(config.app_id.encode())
    digest.update(body)
    digest.update(timestamp.encode())
    digest.update(config.oa_secret_key.encode())
    return digest.hexdigest()


def signature_matches(header: str | None, expected: str) -> bool:
    """Whether ``X-ZEvent-Signature`` carries ``expected``, compared in constant time."""
    if header is None:
        return False
    value = header.strip()
    if not value.lower().startswith(MAC_PREFIX):
        return False
    provided = value[len(MAC_PREFIX) :].strip().lower()
    return hmac.compare_digest(provided.encode("utf-8", "surrogateescape"), expected.encode())


def _label(event_name: str) -> str:
    return event_name if _LABEL.fullmatch(event_name) else "other"


def _refuse(counters: Counters, status: int, code: str, message: str, details: Any = None) -> ApiError:
    counters.inc("webhook_rejected_total", source=SOURCE, reason=code)
    return ApiError(status, code, message, details)


def _envelope(body: bytes, counters: Counters) -> tuple[dict[str, Any], str, int]:
    """The parsed body, its ``timestamp`` as signed (the string received) and as milliseconds."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _refuse(counters, 400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(event, dict):
        raise _refuse(counters, 400, "invalid_request", "the body must be a JSON object")
    raw_timestamp = event.get("timestamp")
    ms = parse_epoch_ms(raw_timestamp)
    if ms is None:
        raise _refuse(
            counters,
            400,
            "invalid_request",
            "the body needs a timestamp: epoch milliseconds, as a string of digits",
            [{"field": "timestamp", "problem": "missing or not epoch milliseconds"}],
        )
    return event, raw_timestamp if isinstance(raw_timestamp, str) else str(raw_timestamp), ms


async def receive(request: web.Request) -> web.Response:
    """Handle one Zalo delivery (OA chat events and ZNS delivery events share the URL)."""
    app = request.app
    config = app[CONFIG]
    counters = app[COUNTERS]
    body = await read_body(request)
    event, timestamp, ms = _envelope(body, counters)

    if not signature_matches(request.headers.get(SIGNATURE_HEADER), expected_mac(config, body, timestamp)):
        log.warning(
            "zalo: refused a delivery with a %s signature",
            "missing" if SIGNATURE_HEADER not in request.headers else "wrong",
        )
        raise _refuse(counters, 401, "invalid_signature", "the X-ZEvent-Signature does not match")

    now = app[CLOCK]()
    sent_at = from_millis(ms)
    if sent_at < now - timedelta(seconds=config.max_age_seconds) or sent_at > now + timedelta(
        seconds=config.max_skew_seconds
    ):
        log.warning("zalo: refused a delivery stamped %s (now %s)", sent_at.isoformat(), now.isoformat())
        raise _refuse(counters, 401, "stale_event", "the event's timestamp is too old or in the future")

    event_name = event.get("event_name")
    if not isinstance(event_name, str) or not event_name:
        raise _refuse(
            counters,
            400,
            "invalid_request",
            "the body needs an event_name",
            [{"field": "event_name", "problem": "missing or not a string"}],
        )
    if request.headers.get(SERVER_HEADER, "").strip().upper() == ZNS_SERVER:
        return await _zns(request, event, event_name)

    if event_name in IGNORED_EVENTS:
        counters.inc("webhook_ignored_events_total", source=SOURCE, event=event_name)
        return web.json_response(_OK)
    if event_name not in EVENT_MAP:
        counters.inc("webhook_unknown_events_total", source=SOURCE, event=_label(event_name))
        log.warning("zalo: unknown event %r acknowledged and dropped", event_name[:64])
        return web.json_response(_OK)
    try:
        updates = parse_event(event, event_name)
    except MalformedEvent as error:
        raise _malformed(counters, event_name, error) from None
    await enqueue(request, updates, source=SOURCE)
    return web.json_response(_OK)


def _malformed(
    counters: Counters, what: str, error: MalformedEvent, *, event_name: str | None = None
) -> ApiError:
    """A 400 naming the event and the field, counted and logged (nothing is queued)."""
    log.warning("zalo: malformed %s event: %s: %s", what, error.field, error.problem)
    return _refuse(
        counters,
        400,
        "invalid_request",
        f"malformed {what} event: {error.field}: {error.problem}",
        [{"event": event_name or what, "field": error.field, "problem": error.problem}],
    )


async def _zns(request: web.Request, event: dict[str, Any], event_name: str) -> web.Response:
    """A ZNS delivery event: parse it and hand it to the recorder the app registered, if any."""
    counters = request.app[COUNTERS]
    parse = ZNS_EVENT_MAP.get(event_name)
    if parse is None:
        counters.inc("webhook_unknown_events_total", source=SOURCE, event=f"zns.{_label(event_name)}")
        log.warning("zalo: unknown ZNS event %r acknowledged and dropped", event_name[:64])
        return web.json_response(_OK)
    try:
        statuses = parse(event, event_name)
    except MalformedEvent as error:
        raise _malformed(counters, f"ZNS {event_name}", error, event_name=event_name) from None
    recorder = request.app.get(ZNS_STATUS)
    if recorder is None:
        counters.inc("webhook_zns_statuses_total", len(statuses), source=SOURCE, outcome="unrecorded")
        log.info("zalo: %d ZNS status(es) dropped: no recorder is registered", len(statuses))
        return web.json_response(_OK)
    try:
        await recorder.record(statuses)
    except Exception as error:
        counters.inc("webhook_zns_statuses_total", len(statuses), source=SOURCE, outcome="failed")
        log.error("zalo: cannot record %d ZNS status(es): %s: %s", len(statuses), type(error).__name__, error)
        raise ApiError(503, "recorder_unavailable", "the status could not be recorded; try again") from error
    counters.inc("webhook_zns_statuses_total", len(statuses), source=SOURCE, outcome="recorded")
    return web.json_response(_OK)
