"""ZNS delivery events: a template message we sent to a phone number reached the user's Zalo.

They come to the same webhook URL, with the same signature, told apart by the header
``X-ZEvent-Server: ZNS`` (zalo.md section 5). They are not chat updates: they are parsed into
:class:`ZnsDeliveryStatus` and handed to the :class:`ZnsStatusRecorder` the app registers under
:data:`ZNS_STATUS` (the campaigns side, which knows the ``tracking_id`` it sent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from aiohttp import web

from bot.timeutil import from_millis
from webhooks.zalo.fields import Fields

ZNS_SERVER: Final = "ZNS"
# ours, "≤ 48 characters" when sent; a little slack on the way back
MAX_TRACKING_ID_LENGTH: Final = 256


class ZnsStatus(StrEnum):
    RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class ZnsDeliveryStatus:
    """What Zalo told us about one ZNS message.

    :param msg_id: Zalo's id of the message (returned by the send call as ``data.msg_id``).
    :param tracking_id: the ``tracking_id`` we sent it with, when Zalo echoes it back.
    :param status: what happened to it.
    :param delivered_at: when it happened, aware UTC (``message.delivery_time``, else the body's
        ``timestamp``).
    """

    msg_id: str
    tracking_id: str | None
    status: ZnsStatus
    delivered_at: datetime


class ZnsStatusRecorder(Protocol):
    async def record(self, statuses: Sequence[ZnsDeliveryStatus]) -> None:
        """Store ``statuses``. Zalo delivers at least once: recording the same status twice must be
        harmless. Raise when they could not be stored: the webhook answers 503 and Zalo sends them again.
        """
        ...


ZNS_STATUS: Final = web.AppKey("zns_status_recorder", ZnsStatusRecorder)

ZnsParser = Callable[[dict[str, Any], str], list[ZnsDeliveryStatus]]


def parse_received(event: dict[str, Any], event_name: str) -> list[ZnsDeliveryStatus]:
    """``user_received_message`` from ZNS: ``message {delivery_time, msg_id, tracking_id}``.

    Only ``msg_id`` is required; ``tracking_id`` and ``delivery_time`` are read when present.
    ``recipient.id`` is the phone number the message went to and is not needed (it stays out of logs).
    """
    fields = Fields(event_name, event)
    message = fields.obj("message")
    delivered_ms = message.optional_epoch_ms("delivery_time")
    if delivered_ms is None:
        delivered_ms = fields.epoch_ms("timestamp")[0]
    return [
        ZnsDeliveryStatus(
            msg_id=message.id("msg_id"),
            tracking_id=message.text("tracking_id", max_length=MAX_TRACKING_ID_LENGTH) or None,
            status=ZnsStatus.RECEIVED,
            delivered_at=from_millis(delivered_ms),
        )
    ]


ZNS_EVENT_MAP: Final[dict[str, ZnsParser]] = {"user_received_message": parse_received}
