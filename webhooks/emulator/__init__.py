"""The chat emulator: a web page and a JSON API through which a person chats with the bot, no platform needed.

Updates posted here take the same road as real webhooks (the update sink: the durable queue, then
the worker and the dispatcher); the bot's replies come back through the emulator channel's outbox.

- ``GET  /emulator``                       the page (Jinja2 + ``static/assets/emulator.js``)
- ``POST /emulator/api/events``            one user action → 202 ``{"event_id", "queued"}``
- ``GET  /emulator/api/messages``          replies after ``after``, waiting up to ``wait`` seconds
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from bot.channels.emulator import FLAVORS, EmulatorOutbox, emulator_account
from bot.types import (
    Attachment,
    AttachmentType,
    BaseUpdate,
    Channel,
    ContactShared,
    Follow,
    Message,
    Postback,
    Referral,
    Unfollow,
)
from webhooks.common import enqueue, parse_json_body, validate

OUTBOX: Final = web.AppKey("emulator_outbox", EmulatorOutbox)

UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{8,64}$")]
Flavor = Literal["zalo", "messenger"]
MAX_WAIT_SECONDS: Final = 20

_NEEDS: Final = {"text": "text", "postback": "payload", "contact": "phone", "referral": "ref"}


class EmulatorEvent(BaseModel):
    """One thing the emulated user does. Strict: wrong types are refused, never coerced."""

    model_config = ConfigDict(strict=True, extra="forbid")

    user_id: UserId
    flavor: Flavor = "zalo"
    type: Literal[
        "text", "postback", "follow", "unfollow", "contact", "referral", "image", "sticker", "location"
    ]
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None
    payload: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    title: Annotated[str, StringConstraints(max_length=100)] | None = None
    phone: Annotated[str, StringConstraints(min_length=3, max_length=32)] | None = None
    name: Annotated[str, StringConstraints(max_length=100)] | None = None
    ref: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    # chosen by the page per action, so a double click (or a retried request) is queued once
    event_id: EventId | None = None

    @model_validator(mode="after")
    def _required_field(self) -> EmulatorEvent:
        needed = _NEEDS.get(self.type)
        if needed is not None and getattr(self, needed) is None:
            raise ValueError(f"a {self.type} event needs {needed!r}")
        return self


class MessagesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    flavor: Flavor = "zalo"
    after: Annotated[str, StringConstraints(pattern=r"^\d+-\d+$")] = "0-0"
    wait: Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)] = 0


def to_update(event: EmulatorEvent, now: datetime) -> BaseUpdate:
    """The channel-agnostic update a real platform would have produced for this action."""
    common = {
        "channel": Channel.EMULATOR,
        "account_id": emulator_account(event.flavor),
        "user_id": event.user_id,
        "event_id": event.event_id or uuid.uuid4().hex,
        "timestamp": now,
        "raw": event.model_dump(exclude_none=True),
    }
    match event.type:
        case "text":
            return Message(text=event.text, **common)
        case "postback":
            return Postback(payload=event.payload or "", title=event.title, **common)
        case "follow":
            return Follow(ref=event.ref, **common)
        case "unfollow":
            return Unfollow(**common)
        case "contact":
            return ContactShared(phone=event.phone or "", name=event.name, **common)
        case "referral":
            return Referral(ref=event.ref or "", source="QR", **common)
        case "image" | "sticker" | "location":
            attachment = Attachment(
                type=AttachmentType(event.type),
                latitude=10.7769 if event.type == "location" else None,
                longitude=106.7009 if event.type == "location" else None,
            )
            return Message(text=None, attachments=(attachment,), **common)
    raise AssertionError(event.type)  # pragma: no cover - Literal is exhaustive


async def page(request: web.Request) -> web.Response:
    response: web.Response = aiohttp_jinja2.render_template(
        "emulator/index.html", request, {"flavors": FLAVORS, "max_wait": MAX_WAIT_SECONDS}
    )
    return response


async def post_event(request: web.Request) -> web.Response:
    event = await parse_json_body(request, EmulatorEvent)
    update = to_update(event, datetime.now(UTC))
    queued = await enqueue(request, [update], source="emulator")
    return web.json_response({"event_id": update.event_id, "queued": bool(queued)}, status=202)


async def get_messages(request: web.Request) -> web.Response:
    query = validate(MessagesQuery, dict(request.query))
    messages = await request.app[OUTBOX].read(
        emulator_account(query.flavor), query.user_id, after=query.after, wait_ms=int(query.wait * 1000)
    )
    last = messages[-1][0] if messages else query.after
    return web.json_response({"messages": [{"id": i, "reply": r} for i, r in messages], "last_id": last})


def register(app: web.Application) -> None:
    """Add the emulator's routes. The app sets ``app[common.SINK]`` and ``app[OUTBOX]`` once Redis is open."""
    app.router.add_get("/emulator", page)
    app.router.add_post("/emulator/api/events", post_event)
    app.router.add_get("/emulator/api/messages", get_messages)
