"""Zalo OA events → channel-agnostic updates: one small parse function per event, in a table.

:data:`EVENT_MAP` holds the events that become updates, :data:`IGNORED_EVENTS` the ones acknowledged and
dropped on purpose, and :data:`ALL_EVENT_TYPES` both (every one has a fixture; a test checks it). Any
other ``event_name`` is unknown: the webhook acknowledges it, logs a warning and counts it.

Shapes follow ``zalo.md`` section 1. Where it marks a shape "unconfirmed", the parser accepts every
reported variant and tolerates missing optional fields; types are always checked (see :mod:`.fields`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, Final

from pydantic import ValidationError

from bot.channels import zalo_payload
from bot.timeutil import from_millis
from bot.types import (
    Attachment,
    AttachmentType,
    BaseUpdate,
    Channel,
    ContactShared,
    Follow,
    Message,
    Postback,
    Unfollow,
)
from webhooks.zalo.fields import Fields, MalformedEvent

log = logging.getLogger("loyalty.webhooks.zalo")

Event = dict[str, Any]
Parser = Callable[[Event, str], list[BaseUpdate]]
PayloadReader = Callable[[Fields], Attachment]

MAX_URL_LENGTH: Final = 4096


def event_id_for(event_name: str, user_id: str, timestamp: str) -> str:
    """The dedupe id of an event without ``message.msg_id``: stable across Zalo's retries.

    :param timestamp: the body's ``timestamp`` as received (a retry carries the same body).
    """
    digest = hashlib.sha256(f"{event_name}:{user_id}:{timestamp}".encode()).hexdigest()
    return digest[:32]


def _common(fields: Fields, event: Event, *, account: str, user: str) -> dict[str, Any]:
    """The fields every update has. ``account`` and ``user`` are the paths of the OA and user ids."""
    account_id = fields.id(account)
    user_id = fields.id(user)
    ms, timestamp = fields.epoch_ms("timestamp")
    msg_id = fields.optional_id("message.msg_id")
    return {
        "channel": Channel.ZALO,
        "account_id": account_id,
        "user_id": user_id,
        "event_id": msg_id or event_id_for(fields.event, user_id, timestamp),
        "timestamp": from_millis(ms),
        "raw": event,
    }


def _from_user(fields: Fields, event: Event) -> dict[str, Any]:
    """User → OA events: ``sender`` is the user's OA-scoped id (the one to reply to), ``recipient`` the OA."""
    return _common(fields, event, account="recipient.id", user="sender.id")


# ---------------------------------------------------------------------- follow / unfollow
def parse_follow(event: Event, event_name: str) -> list[BaseUpdate]:
    """``follow``: ``oa_id`` + ``follower.id``. ``source`` ("oa_profile", "message_invite"...) carries no
    QR or store parameter (zalo.md section 7), so it is not a ``ref``; it stays in ``raw``."""
    fields = Fields(event_name, event)
    return [Follow(**_common(fields, event, account="oa_id", user="follower.id"))]


def parse_unfollow(event: Event, event_name: str) -> list[BaseUpdate]:
    fields = Fields(event_name, event)
    return [Unfollow(**_common(fields, event, account="oa_id", user="follower.id"))]


# ---------------------------------------------------------------------- messages
def parse_text(event: Event, event_name: str) -> list[BaseUpdate]:
    """``user_send_text``: a typed text, or a pressed button whose payload carries our prefix.

    Zalo has no postback event: buttons post their payload as a user text (zalo.md "Buttons come back
    as text"), so a text that :func:`bot.channels.zalo_payload.decode` recognises is a :class:`Postback`.
    """
    fields = Fields(event_name, event)
    common = _from_user(fields, event)
    text = fields.required_text("message.text")
    payload = zalo_payload.decode(text)
    if payload is not None:
        return [Postback(payload=payload, **common)]
    return [Message(text=text, **common)]


def _url(kind: AttachmentType) -> PayloadReader:
    """Image, gif, video, audio and link payloads: only the ``url`` is kept (the rest stays in ``raw``)."""

    def read(payload: Fields) -> Attachment:
        return Attachment(type=kind, url=payload.text("url", max_length=MAX_URL_LENGTH))

    return read


def _sticker(payload: Fields) -> Attachment:
    return Attachment(
        type=AttachmentType.STICKER,
        sticker_id=payload.optional_id("id"),
        url=payload.text("url", max_length=MAX_URL_LENGTH),
    )


def _location(payload: Fields) -> Attachment:
    # coordinates are strings on the wire (confirmed); numbers are accepted too, to be safe
    return Attachment(
        type=AttachmentType.LOCATION,
        latitude=payload.coordinate("coordinates.latitude", 90),
        longitude=payload.coordinate("coordinates.longitude", 180),
    )


def _file(payload: Fields) -> Attachment:
    # payload {url, size, name, checksum, type}: only url and name are kept
    return Attachment(
        type=AttachmentType.FILE,
        url=payload.text("url", max_length=MAX_URL_LENGTH),
        name=payload.text("name", max_length=1000),
    )


def _media(read: PayloadReader) -> Parser:
    """A parser for ``user_send_<media>``: a :class:`Message` with one attachment per item of
    ``message.attachments``, and the optional caption ``message.text`` when it is not empty."""

    def parse(event: Event, event_name: str) -> list[BaseUpdate]:
        fields = Fields(event_name, event)
        common = _from_user(fields, event)
        items = fields.objects("message.attachments")
        if not items:
            raise fields.fail("message.attachments", "must not be empty")
        attachments = tuple(read(item.obj("payload")) for item in items)
        caption = fields.text("message.text") or None
        return [Message(text=caption, attachments=attachments, **common)]

    return parse


# ---------------------------------------------------------------------- shared info
def parse_submit_info(event: Event, event_name: str) -> list[BaseUpdate]:
    """``user_submit_info``: the answer to a ``request_user_info`` form, as a :class:`ContactShared`.

    Two shapes of ``info`` are reported: flat ``{name, phone, address, city, district, ward}``
    (confirmed) and ``{name, phone, user_dob, gender, full_address: {...}}`` (unconfirmed). Both carry
    ``name`` and ``phone``, which is all that is read; the address parts are not required in either.
    The phone comes as ``"84..."``, ``"09..."`` or a JSON number: it is passed on as a string, as
    received (the loyalty core normalises it). Without a phone (absent, empty, or ``0``, as Zalo's
    ``shared_info`` shows an empty one) nothing is produced.
    """
    fields = Fields(event_name, event)
    common = _from_user(fields, event)
    info = fields.obj("info")
    phone = info.text_or_number("phone")
    if phone is None or not phone.strip() or phone == "0":
        log.info("%s from user %s without a phone: nothing to share", event_name, common["user_id"])
        return []
    name = info.text("name", max_length=200) or None
    return [ContactShared(phone=phone, name=name, **common)]


EVENT_MAP: Final[dict[str, Parser]] = {
    "follow": parse_follow,
    "unfollow": parse_unfollow,
    "user_send_text": parse_text,
    "user_send_image": _media(_url(AttachmentType.IMAGE)),
    # there is no GIF attachment type: a gif is an image whose url is animated
    "user_send_gif": _media(_url(AttachmentType.IMAGE)),
    "user_send_sticker": _media(_sticker),
    "user_send_location": _media(_location),
    "user_send_link": _media(_url(AttachmentType.LINK)),
    "user_send_video": _media(_url(AttachmentType.VIDEO)),
    "user_send_audio": _media(_url(AttachmentType.AUDIO)),
    "user_send_file": _media(_file),
    "user_submit_info": parse_submit_info,
}

IGNORED_EVENTS: Final = frozenset(
    {
        # delivery and read receipts of OA messages (a ZNS user_received_message is told apart by the
        # X-ZEvent-Server: ZNS header and handled by webhooks.zalo.zns, not here)
        "user_seen_message",
        "user_received_message",
        # echoes of what the OA sent (by the API or by a person in the OA inbox): answering them
        # would loop the bot
        "oa_send_text",
        "oa_send_image",
        "oa_send_gif",
        "oa_send_list",
        "oa_send_file",
        "oa_send_sticker",
        "oa_reacted_message",
        # OA administration, nothing a customer did
        "add_user_to_tag",
        "remove_user_from_tag",
        "update_user_info",
        "widget_interaction_accepted",
        "change_template_status",
        "change_oa_daily_quota",
        # a reaction to one of our messages; the shape is unconfirmed and no flow needs it yet
        "user_reacted_message",
        # fires once, and only for a user who never chatted before, with flat oa_id + user_id: a first
        # visit to the chat window, not a follow (a follow has its own event) and it carries no ref
        # (zalo.md section 7). Their first message arrives as user_send_text anyway.
        "user_click_chatnow",
    }
)

ALL_EVENT_TYPES: Final = frozenset(EVENT_MAP) | IGNORED_EVENTS


def parse_event(event: Event, event_name: str) -> list[BaseUpdate]:
    """The updates one event of a type in :data:`EVENT_MAP` becomes.

    :raises MalformedEvent: a field is missing or of the wrong type, or the update it would make is
        invalid (a text over the length limit, a phone of 2 characters...).
    """
    try:
        return EVENT_MAP[event_name](event, event_name)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise MalformedEvent(event_name, field, first["msg"]) from None
