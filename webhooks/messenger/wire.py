"""Pydantic models of the parts of a Messenger webhook body that this package reads.

Strict where we read: a field we use must have the documented type (``{"$ne": ""}`` for an id is a 400,
never coerced). Lenient elsewhere: unknown fields are ignored (``extra="ignore"``), because Meta adds
fields without notice and refusing a signed delivery makes Meta retry it and, after an hour, unsubscribe
the app. Shapes follow ``platforms/messenger.md`` Part A; what it leaves unconfirmed is marked below.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StringConstraints

# Printable ASCII without spaces: PSIDs and Page ids are digits, mids look like ``mid.1457764197618:41d1...``
# or ``m_AG5Hz2...`` (older ones had ``$``). Ids stay opaque strings; nothing does arithmetic on them.
_OPAQUE: Final = re.compile(r"[\x21-\x7e]+")
MAX_ID_LENGTH: Final = 100  # BaseUpdate allows 128 for user_id: room for the "user_ref:" prefix
MAX_MID_LENGTH: Final = 240  # BaseUpdate allows 256 for event_id: room for the ":ref" suffix
MAX_REF_LENGTH: Final = 2083  # the m.me page: "ref must be URL-encoded, max 2,083 characters"
MAX_PAYLOAD_LENGTH: Final = 1000  # postback and quick reply payloads: "payload ≤ 1000 chars"
MAX_MILLIS: Final = 10**14  # about the year 5138: anything larger is not an epoch in milliseconds


def _opaque_id(max_length: int) -> PlainValidator:
    def check(value: object) -> str:
        # Meta sends ids as JSON strings; a few (sticker_id, app_id) as numbers. Either becomes its str();
        # bool is an int subclass in Python and is refused, like objects and arrays (operator injection).
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("must be a string id")
        text = str(value)
        if len(text) > max_length or not _OPAQUE.fullmatch(text):
            raise ValueError(f"must be 1-{max_length} printable characters without spaces")
        return text

    return PlainValidator(check)


def _millis(value: object) -> int:
    # Epoch milliseconds as a JSON number. The "field/value" examples of the reference pages show the
    # timestamp as a string ("TIMESTAMP"); whether real deliveries ever do is unconfirmed, so a string
    # of digits is accepted too, and nothing else.
    if isinstance(value, bool):
        raise ValueError("must be epoch milliseconds")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        number = int(value)
    else:
        raise ValueError("must be epoch milliseconds")
    if not 0 < number < MAX_MILLIS:
        raise ValueError("must be epoch milliseconds")
    return number


Id = Annotated[str, _opaque_id(MAX_ID_LENGTH)]
Mid = Annotated[str, _opaque_id(MAX_MID_LENGTH)]
Millis = Annotated[int, PlainValidator(_millis)]
Payload = Annotated[str, StringConstraints(max_length=MAX_PAYLOAD_LENGTH)]
Ref = Annotated[str, StringConstraints(max_length=MAX_REF_LENGTH)]
Short = Annotated[str, StringConstraints(max_length=200)]
Token = Annotated[str, StringConstraints(max_length=4096)]


class _Wire(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class WireEntry(_Wire):
    """One entry: a Page and its items. ``messaging`` when the app owns the thread, ``standby`` when another
    app does (handover protocol). Items are checked one by one, by kind (see :mod:`.events`)."""

    id: Id
    time: Millis | None = None
    messaging: list[dict[str, Any]] = Field(default_factory=list)
    standby: list[dict[str, Any]] = Field(default_factory=list)
    # Page feed webhooks (``feed`` and other Page fields) arrive as ``changes``: not ours, counted, not read.
    changes: Any = None


class WireBody(_Wire):
    """The envelope: ``{"object": "page", "entry": [...]}``."""

    object: Short
    entry: list[WireEntry]


class WireParty(_Wire):
    """``sender`` / ``recipient``. ``user_ref`` instead of ``id`` for people not yet known by PSID (the
    checkbox plugin, the chat plugin's guests): the postbacks reference shows ``sender.user_ref``."""

    id: Id | None = None
    user_ref: Id | None = None


class WireItem(_Wire):
    """What every ``messaging``/``standby`` item has. Delivery items come without ``timestamp`` (A.1 #8)
    and checkbox opt-ins without ``sender``, hence the optionals; the handled kinds check what they need."""

    sender: WireParty | None = None
    recipient: WireParty | None = None
    timestamp: Millis | None = None


class WireQuickReply(_Wire):
    payload: Payload


class WireCoordinates(_Wire):
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    long: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class WireAttachmentPayload(_Wire):
    url: str | None = None
    title: str | None = None
    # stickers come as image attachments whose payload carries ``sticker_id`` (a JSON number)
    sticker_id: Id | None = None
    # location attachments (legacy "share location"; whether users can still send them: unconfirmed)
    coordinates: WireCoordinates | None = None


class WireAttachment(_Wire):
    type: Short
    payload: WireAttachmentPayload | None = None
    title: str | None = None
    url: str | None = None


class WireMessage(_Wire):
    mid: Mid | None = None
    text: str | None = None
    is_echo: bool = False
    quick_reply: WireQuickReply | None = None
    attachments: list[WireAttachment] = Field(default_factory=list)
    sticker_id: Id | None = None


class WireReferral(_Wire):
    """``referral`` of ``messaging_referrals`` and of a first postback. ``ref`` may be missing ("We do not
    make guarantees that referrals will always work", ads without a ref): the handlers need a fallback."""

    ref: Ref | None = None
    source: Short | None = None
    type: Short | None = None


class WirePostback(_Wire):
    mid: Mid | None = None
    title: str | None = None
    payload: Payload
    referral: WireReferral | None = None


class WireOptin(_Wire):
    """The opt-in shapes: notification messages (``type``, ``payload``, ``notification_messages_token``,
    ``title``; the m.me/rn variant adds ``ref`` and ``notification_messages_topic``), the legacy one-time
    notification (``one_time_notif_token``, unconfirmed as official) and the checkbox plugin (``ref``,
    ``user_ref``, no ``sender``: not in messenger.md; from Meta's older reference as quoted by public
    bots)."""

    type: Short | None = None
    payload: Payload | None = None
    ref: Ref | None = None
    user_ref: Id | None = None
    title: str | None = None
    notification_messages_topic: str | None = None
    notification_messages_token: Token | None = None
    one_time_notif_token: Token | None = None
    # Values of the status fields are unconfirmed (not enumerated anywhere we read): hashed, not interpreted.
    notification_messages_status: Short | None = None
    user_token_status: Short | None = None


class MessageItem(WireItem):
    message: WireMessage


class PostbackItem(WireItem):
    postback: WirePostback


class ReferralItem(WireItem):
    referral: WireReferral


class OptinItem(WireItem):
    optin: WireOptin
