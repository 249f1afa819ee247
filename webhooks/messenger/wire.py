"""The parts of a Messenger webhook body that this package reads, validated in one pass.

Strict where we read: a field we use must have the documented type (``{"$ne": ""}`` for an id is a 400,
never coerced). Lenient elsewhere: unknown fields are ignored, because Meta adds fields without notice and
refusing a signed delivery makes Meta retry it and, after an hour, unsubscribe the app. Shapes follow
``platforms/messenger.md`` Part A; what it leaves unconfirmed is marked below.

The shapes are ``TypedDict``s validated by one :data:`BODY_ADAPTER` pass over the whole delivery: each
item of ``messaging``/``standby`` is checked against the shape of its kind (the first of
:data:`HANDLED_KINDS` it carries as a key), items of any other kind are not read and not checked. A
validated ``TypedDict`` is a plain ``dict`` (about three times cheaper to build than a model, and this is
the webhook's hot path); optional fields are absent rather than ``None``, so read them with ``.get``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Required

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    with_config,
)

# pydantic needs typing_extensions' TypedDict before Python 3.12
from typing_extensions import TypedDict

# Printable ASCII without spaces: PSIDs and Page ids are digits, mids look like ``mid.1457764197618:41d1...``
# or ``m_AG5Hz2...`` (older ones had ``$``). Ids stay opaque strings; nothing does arithmetic on them.
_OPAQUE: Final = re.compile(r"[\x21-\x7e]+")
MAX_ID_LENGTH: Final = 100  # BaseUpdate allows 128 for user_id: room for the "user_ref:" prefix
MAX_MID_LENGTH: Final = 240  # BaseUpdate allows 256 for event_id: room for the ":ref" suffix
MAX_REF_LENGTH: Final = 2083  # the m.me page: "ref must be URL-encoded, max 2,083 characters"
MAX_PAYLOAD_LENGTH: Final = 1000  # postback and quick reply payloads: "payload ≤ 1000 chars"
MAX_MILLIS: Final = 10**14  # about the year 5138: anything larger is not an epoch in milliseconds

#: The kinds of item whose fields are read (and so checked), in the order an item's keys are looked at
#: (``message`` first: a message item may carry more keys than ``message``, never the reverse).
HANDLED_KINDS: Final = ("message", "postback", "referral", "optin")
#: The tag of items of any other kind: ignored or unknown, not validated (we read nothing of them).
OTHER: Final = "other"
_STRICT: Final = ConfigDict(strict=True)


def is_opaque(text: str) -> bool:
    """``_OPAQUE.fullmatch(text)``, three times faster (every id of every delivery goes through this):
    printable ASCII (0x20-0x7e) other than the space, at least one character."""
    return text != "" and text.isascii() and text.isprintable() and " " not in text


def _opaque_id(max_length: int) -> PlainValidator:
    def check(value: object) -> str:
        if value.__class__ is str:  # the usual case first: Meta sends ids as JSON strings
            text = value
        # A few (sticker_id, app_id) come as numbers: they become their str(). bool is an int subclass in
        # Python and is refused, like objects and arrays (operator injection).
        elif isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            raise ValueError("must be a string id")
        if not (len(text) <= max_length and is_opaque(text)):
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


@with_config(_STRICT)
class WireParty(TypedDict, total=False):
    """``sender`` / ``recipient``. ``user_ref`` instead of ``id`` for people not yet known by PSID (the
    checkbox plugin, the chat plugin's guests): the postbacks reference shows ``sender.user_ref``."""

    id: Id | None
    user_ref: Id | None


@with_config(_STRICT)
class WireItem(TypedDict, total=False):
    """What every ``messaging``/``standby`` item has. Delivery items come without ``timestamp`` (A.1 #8)
    and checkbox opt-ins without ``sender``, hence the optionals; the handled kinds check what they need."""

    sender: WireParty | None
    recipient: WireParty | None
    timestamp: Millis | None


@with_config(_STRICT)
class WireQuickReply(TypedDict):
    payload: Payload


@with_config(_STRICT)
class WireCoordinates(TypedDict):
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    long: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


@with_config(_STRICT)
class WireAttachmentPayload(TypedDict, total=False):
    url: str | None
    title: str | None
    # stickers come as image attachments whose payload carries ``sticker_id`` (a JSON number)
    sticker_id: Id | None
    # location attachments (legacy "share location"; whether users can still send them: unconfirmed)
    coordinates: WireCoordinates | None


@with_config(_STRICT)
class WireAttachment(TypedDict, total=False):
    type: Required[Short]
    payload: WireAttachmentPayload | None
    title: str | None
    url: str | None


@with_config(_STRICT)
class WireMessage(TypedDict, total=False):
    mid: Mid | None
    text: str | None
    is_echo: bool
    quick_reply: WireQuickReply | None
    attachments: list[WireAttachment]
    sticker_id: Id | None


@with_config(_STRICT)
class WireReferral(TypedDict, total=False):
    """``referral`` of ``messaging_referrals`` and of a first postback. ``ref`` may be missing ("We do not
    make guarantees that referrals will always work", ads without a ref): the handlers need a fallback."""

    ref: Ref | None
    source: Short | None
    type: Short | None


@with_config(_STRICT)
class WirePostback(TypedDict, total=False):
    mid: Mid | None
    title: str | None
    payload: Required[Payload]
    referral: WireReferral | None


@with_config(_STRICT)
class WireOptin(TypedDict, total=False):
    """The opt-in shapes: notification messages (``type``, ``payload``, ``notification_messages_token``,
    ``title``; the m.me/rn variant adds ``ref`` and ``notification_messages_topic``), the legacy one-time
    notification (``one_time_notif_token``, unconfirmed as official) and the checkbox plugin (``ref``,
    ``user_ref``, no ``sender``: not in messenger.md; from Meta's older reference as quoted by public
    bots)."""

    type: Short | None
    payload: Payload | None
    ref: Ref | None
    user_ref: Id | None
    title: str | None
    notification_messages_topic: str | None
    notification_messages_token: Token | None
    one_time_notif_token: Token | None
    # Values of the status fields are unconfirmed (not enumerated anywhere we read): hashed, not interpreted.
    notification_messages_status: Short | None
    user_token_status: Short | None


@with_config(_STRICT)
class MessageItem(WireItem):
    message: Required[WireMessage]


@with_config(_STRICT)
class PostbackItem(WireItem):
    postback: Required[WirePostback]


@with_config(_STRICT)
class ReferralItem(WireItem):
    referral: Required[WireReferral]


@with_config(_STRICT)
class OptinItem(WireItem):
    optin: Required[WireOptin]


def item_kind(item: object) -> str | None:
    """The tag of an item: its handled kind, :data:`OTHER`, or None when it is not a JSON object."""
    if not isinstance(item, dict):
        return None
    for kind in HANDLED_KINDS:
        if kind in item:
            return kind
    return OTHER


AnyItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[PostbackItem, Tag("postback")]
    | Annotated[ReferralItem, Tag("referral")]
    | Annotated[OptinItem, Tag("optin")]
    | Annotated[Any, Tag(OTHER)],
    Discriminator(item_kind, custom_error_type="invalid_item", custom_error_message="must be a JSON object"),
]


@with_config(_STRICT)
class WireEntry(TypedDict, total=False):
    """One entry: a Page and its items. ``messaging`` when the app owns the thread, ``standby`` when another
    app does (handover protocol)."""

    id: Required[Id]
    time: Millis | None
    messaging: list[AnyItem]
    standby: list[AnyItem]
    # Page feed webhooks (``feed`` and other Page fields) arrive as ``changes``: not ours, counted, not read.
    changes: Any


@with_config(_STRICT)
class WireBody(TypedDict):
    """The envelope: ``{"object": "page", "entry": [...]}``."""

    object: Short
    entry: list[WireEntry]


BODY_ADAPTER: Final[TypeAdapter[WireBody]] = TypeAdapter(WireBody)


def error_details(error: ValidationError) -> list[dict[str, str]]:
    """``{"field", "problem"}`` per error, ``field`` the dotted path in the body (``entry.0.messaging.1.
    sender.id``). The item's kind, which pydantic adds to the path after the item's index, is left out."""
    details = []
    for e in error.errors(include_url=False, include_input=False):
        loc = e["loc"]
        if len(loc) > 4 and loc[2] in ("messaging", "standby") and loc[4] in HANDLED_KINDS:
            loc = (*loc[:4], *loc[5:])
        details.append({"field": ".".join(str(p) for p in loc) or "body", "problem": e["msg"]})
    return details
