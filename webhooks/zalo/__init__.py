"""The Zalo OA webhook: ``POST /webhooks/zalo`` (chat events and ZNS delivery events).

The app calls :func:`register` when ``ZALO_APP_ID`` and ``ZALO_OA_SECRET_KEY`` are set. Setup in the
Zalo developer console, the postback convention and how to replay a fixture: ``README.md`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from webhooks.zalo.config import CLOCK, CONFIG, ZaloWebhookConfig
from webhooks.zalo.events import ALL_EVENT_TYPES, EVENT_MAP, IGNORED_EVENTS
from webhooks.zalo.view import receive
from webhooks.zalo.zns import ZNS_EVENT_MAP, ZNS_STATUS, ZnsDeliveryStatus, ZnsStatus, ZnsStatusRecorder

PATH = "/webhooks/zalo"

__all__ = [
    "ALL_EVENT_TYPES",
    "CONFIG",
    "EVENT_MAP",
    "IGNORED_EVENTS",
    "PATH",
    "ZNS_EVENT_MAP",
    "ZNS_STATUS",
    "ZaloWebhookConfig",
    "ZnsDeliveryStatus",
    "ZnsStatus",
    "ZnsStatusRecorder",
    "register",
]


def _system_now() -> datetime:
    return datetime.now(UTC)


def register(
    app: web.Application, config: ZaloWebhookConfig, *, clock: Callable[[], datetime] | None = None
) -> None:
    """Add ``POST /webhooks/zalo`` and its settings to ``app``.

    The app must also hold ``webhooks.common.SINK`` and ``COUNTERS`` (``create_app`` sets them), and may
    hold a :class:`ZnsStatusRecorder` under :data:`ZNS_STATUS`.

    :param config: the app id and OA secret key the signatures are checked with.
    :param clock: "now", timezone-aware (pass the app clock's ``now``); the system clock by default.
        Only the replay check reads it.
    """
    app[CONFIG] = config
    app[CLOCK] = clock or _system_now
    app.router.add_post(PATH, receive, name="zalo_webhook")
