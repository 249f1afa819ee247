"""The webhook's fast path: the raw body decoded by msgspec straight into strict shapes, or no answer.

:func:`parse_bytes` decodes the body's bytes with msgspec into ``TypedDict`` shapes that mirror
:mod:`.wire`'s field for field and are at least as strict on every field the parsers read: the same
maximum lengths, ids matching the same pattern (``\\A[\\x21-\\x7e]+\\Z``), epoch milliseconds as a JSON
integer in ``(0, 10**14)``, no coercion. The items of ``messaging``/``standby`` are first cut out as
:class:`msgspec.Raw` (their exact JSON text) and then decoded into the item shape, so the update's ``raw``
is that text, written into the queued JSON verbatim instead of being parsed into a dict and serialised
again. The parsers, the page and age checks and the counts are :mod:`.events`' own.

Before that, an express lane (:func:`_texts`) takes the commonest delivery, text messages in exactly the
shape Meta sends them (``mid`` and ``text``, no other field anywhere), and writes their updates in a few
lines, as ``parse_message`` would: a third of the general path's cost. Any other body, even one field
more, goes the general way. There each item is decoded once, into its ``Struct``, and that ``Struct`` is
the update's ``raw``: every field of it being known, msgspec encodes it back to the same JSON object
(its bytes may differ from the body's: escapes and spacing are msgspec's; the signature was checked on
the body as received).

It answers only when msgspec takes the whole body. Anything unusual makes it return None and the view
goes the usual way (:func:`~webhooks.messenger.view.parse_json`, then
:func:`~webhooks.messenger.events.parse_body`), which answers exactly as before: invalid JSON, a type or
constraint error (an operator object for an id, an id too long), ids sent as JSON numbers (only
``sticker_id`` is taken as a number here, as the usual path does), timestamps as strings, a multi-kind
item whose other kinds do not have their shapes, bodies that are not UTF-8, nested deeper than
:data:`MAX_OPENERS` brackets, or holding numbers whose parsed value could differ (``1e400`` is infinite
for the usual path, which queues it as null; a 5,000-digit integer is invalid JSON for :func:`json.loads`).
So it never accepts a body the usual path refuses, and what it accepts becomes the same updates (the same
JSON objects) and the same counts: ``tests/webhooks/test_messenger_fast.py`` holds both.

A problem only a parser sees (an item with no sender, or no timestamp) raises the same
:class:`~webhooks.messenger.events.InvalidPayload` as :func:`~webhooks.messenger.events.parse_body`
(msgspec having taken the body, the usual path's validation would too, and it would reach the same
parser on the same item), rather than returning None: that way nothing is parsed, or logged, twice.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Required, TypedDict, cast

import msgspec

from bot.types import UpdateKind
from webhooks.common import Prepared
from webhooks.messenger.events import (
    _CHANNEL,
    EVENT_MAP,
    MAX_TEXT_LENGTH,
    Batch,
    Document,
    InvalidPayload,
    _bump,
    _keep,
    iso_millis,
    kind_of,
    label,
    unknown_kind,
)
from webhooks.messenger.wire import (
    MAX_ID_LENGTH,
    MAX_MID_LENGTH,
    MAX_MILLIS,
    MAX_PAYLOAD_LENGTH,
    MAX_REF_LENGTH,
    OTHER,
    WireEntry,
    is_opaque,
    item_kind,
)

#: More ``{`` and ``[`` than this in a body (inside strings too) and it goes the usual way: up to this
#: depth pydantic-core's parser reads any body, so no nesting limit can tell the two paths apart.
MAX_OPENERS: Final = 200
# Ids: their lengths are checked by msgspec, their characters by :func:`_opaque_ids` after decoding
# (``wire.is_opaque``; a msgspec ``pattern`` costs about 1 µs an id, five times more).
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Mid = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MID_LENGTH)]
#: Sticker ids come as JSON numbers, which ``wire`` takes as their text: any int64's is a valid id
#: (at most 20 characters); a larger number goes the usual way.
NumericId = Id | Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Millis = Annotated[int, msgspec.Meta(gt=0, lt=MAX_MILLIS)]
Payload = Annotated[str, msgspec.Meta(max_length=MAX_PAYLOAD_LENGTH)]
Ref = Annotated[str, msgspec.Meta(max_length=MAX_REF_LENGTH)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Token = Annotated[str, msgspec.Meta(max_length=4096)]


class Party(TypedDict, total=False):
    id: Id | None
    user_ref: Id | None


class QuickReply(TypedDict):
    payload: Payload


class Coordinates(TypedDict):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    long: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class AttachmentPayload(TypedDict, total=False):
    url: str | None
    title: str | None
    sticker_id: NumericId | None
    coordinates: Coordinates | None


class Attachment(TypedDict, total=False):
    type: Required[Short]
    payload: AttachmentPayload | None
    title: str | None
    url: str | None


class Message(TypedDict, total=False):
    mid: Mid | None
    text: str | None
    is_echo: bool
    quick_reply: QuickReply | None
    attachments: list[Attachment]
    sticker_id: NumericId | None


class Referral(TypedDict, total=False):
    ref: Ref | None
    source: Short | None
    type: Short | None


class Postback(TypedDict, total=False):
    mid: Mid | None
    title: str | None
    payload: Required[Payload]
    referral: Referral | None


class Optin(TypedDict, total=False):
    type: Short | None
    payload: Payload | None
    ref: Ref | None
    user_ref: Id | None
    title: str | None
    notification_messages_topic: str | None
    notification_messages_token: Token | None
    one_time_notif_token: Token | None
    notification_messages_status: Short | None
    user_token_status: Short | None


class Item(TypedDict, total=False):
    """Every handled kind's shape in one: an item carrying several kinds is read as the first of
    :data:`~webhooks.messenger.wire.HANDLED_KINDS`, as on the usual path, but all of them must have their
    shapes here (stricter: otherwise it goes the usual way). Items of other kinds have no field here
    besides the envelope."""

    sender: Party | None
    recipient: Party | None
    timestamp: Millis | None
    message: Message
    postback: Postback
    referral: Referral
    optin: Optin


class Entry(TypedDict, total=False):
    id: Required[Id]
    time: Millis | None
    messaging: list[msgspec.Raw]
    standby: list[msgspec.Raw]
    changes: msgspec.Raw


class Body(TypedDict):
    object: Short
    entry: list[Entry]


_BODY: Final = msgspec.json.Decoder(Body)
_ITEM: Final = msgspec.json.Decoder(Item)
_KEYS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODER: Final = msgspec.json.Encoder()
_NULL: Final = msgspec.Raw(b"null")
# digits → "0" and "E" → "e": long digit runs and 3-digit exponents are then found by substring searches
_NUMBERS: Final = bytes.maketrans(b"123456789E", b"000000000e")
_LONG_RUN: Final = b"0" * 200


# --------------------------------------------------------------------------- the express lane
# Most deliveries are one person's text message, and Meta sends those in one exact shape. These shapes
# take that shape and nothing else (``forbid_unknown_fields``: any other field, kind or array, and the
# body goes the general way below), so a text message is mapped here in a few lines instead of through
# the table: about a third of the general fast path's cost. What it makes is what ``parse_message``
# makes of the same item; ``tests/webhooks/test_messenger_fast.py`` holds both paths to that.


# (gc=False: these hold strings, ints and each other, never a cycle; the collector need not track them)
class _TextParty(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: Id


class _TextMessage(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    mid: Mid
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LENGTH)]  # longer: cut and logged, elsewhere


class _TextItem(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    sender: _TextParty
    recipient: _TextParty
    timestamp: Millis
    message: _TextMessage


class _TextEntry(msgspec.Struct, forbid_unknown_fields=True):
    id: Id
    time: Millis
    messaging: list[_TextItem]


class _TextBody(msgspec.Struct, forbid_unknown_fields=True):
    object: Literal["page"]
    entry: list[_TextEntry]


class _TextUpdate(msgspec.Struct, gc=False):
    """A text message's update, as :func:`~webhooks.messenger.events.parse_message` writes it: the same
    keys in the same order (a ``Struct`` is built and encoded in C, a dict key by key)."""

    kind: str
    channel: str
    account_id: str
    user_id: str
    event_id: str
    timestamp: str
    raw: _TextItem  # every field of the item is known: encoded again, it is the same JSON
    text: str


_TEXT_BODY: Final = msgspec.json.Decoder(_TextBody)
_MESSAGE: Final = UpdateKind.MESSAGE.value


def _texts(body: bytes, *, oldest: int, page_id: str | None) -> Batch | None:
    """The batch of a delivery made only of plain text messages (``mid`` and ``text``, nothing else), as
    :func:`~webhooks.messenger.events.parse_message` would make it, or None for any other body.

    msgspec checks UTF-8 in every string it decodes, and with every field known nothing is skipped, so
    :func:`_plain`'s checks have nothing left to find here (the two numbers are bounded integers).
    """
    try:
        data = _TEXT_BODY.decode(body)
    except (msgspec.DecodeError, RecursionError):  # msgspec.ValidationError is a DecodeError
        return None
    if not data.entry:
        return None  # the general path answers
    batch = Batch()
    updates = batch.updates
    for entry in data.entry:
        for item in entry.messaging:
            account_id, user_id, mid = item.recipient.id, item.sender.id, item.message.mid
            # every id is at least one character (msgspec checked): all four are opaque when their
            # concatenation is, one check instead of four
            if not is_opaque(entry.id + account_id + user_id + mid):
                return None  # (nothing was counted or logged yet: the general path starts afresh)
            millis = item.timestamp
            if page_id is not None and account_id != page_id:
                _bump(batch.ignored, "other_page")
            elif millis < oldest:
                _bump(batch.stale, "message")
            else:
                update = _TextUpdate(
                    _MESSAGE, _CHANNEL, account_id, user_id, mid, iso_millis(millis), item, item.message.text
                )
                updates.append(Prepared(_CHANNEL, account_id, user_id, mid, _ENCODER.encode(update)))
        if not entry.messaging and not is_opaque(entry.id):
            return None
    return batch


def parse_bytes(body: bytes, *, oldest: int, page_id: str | None = None) -> Batch | None:
    """The updates of a raw webhook body, as :func:`~webhooks.messenger.events.parse_body` would make
    them from its parsed JSON, or None when this path cannot tell (then use that one).

    :param body: the request's body, as signed.
    :param oldest: items whose timestamp (epoch milliseconds) is older than this are skipped as stale.
    :param page_id: when set, items for another Page are skipped (counted as ``other_page``).
    :raises InvalidPayload: a handled item without sender or timestamp (what ``parse_body`` raises too).
    """
    texts = _texts(body, oldest=oldest, page_id=page_id)
    if texts is not None:
        return texts
    if not _plain(body):
        return None
    try:
        data = _BODY.decode(body)
    except (msgspec.DecodeError, RecursionError):  # msgspec.ValidationError is a DecodeError
        return None
    obj = data["object"]
    if obj != "page":
        return Batch(ignored_object=label(obj))
    if not all(is_opaque(entry["id"]) for entry in data["entry"]):
        return None
    try:
        decoded = _decode_items(data["entry"])
    except (msgspec.DecodeError, RecursionError):
        return None
    # Only now, with the whole body decoded, the parsers run (they may log): nothing is done twice when
    # this path gives up.
    batch = Batch()
    for entry, changed, items in decoded:
        if changed:
            _bump(batch.ignored, "changes")
        for item in items:
            _parse_item(batch, entry, item, oldest=oldest, page_id=page_id)
    return batch


def _plain(body: bytes) -> bool:
    """Whether the body is one both paths read alike: valid UTF-8 (msgspec does not check the text it
    skips), at most :data:`MAX_OPENERS` brackets, no number whose value the usual path changes (an
    exponent of three digits or more may overflow to infinity; a run of 200 digits may be an overflowing
    float or an integer too long for :func:`json.loads`). Strings that merely look like that (``"3e123"``)
    go the usual way too; that only costs time."""
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return False
    # (valid JSON closes what it opens: a shorter body cannot hold too many)
    if len(body) > 2 * MAX_OPENERS and body.count(b"{") + body.count(b"[") > MAX_OPENERS:
        return False
    numbers = body.translate(_NUMBERS)
    return _LONG_RUN not in numbers and b"0e000" not in numbers and b"0e+000" not in numbers


#: One item: its kind (handled, or :data:`~webhooks.messenger.wire.OTHER`), where it is (entry, array,
#: index: for error paths), its JSON text, and its decoded form (an :class:`Item` for a handled kind, the
#: keys of any other).
_Decoded = tuple[str, tuple[int, str, int], msgspec.Raw, Item | dict[str, msgspec.Raw]]


def _decode_items(entries: list[Entry]) -> list[tuple[WireEntry, bool, list[_Decoded]]]:
    """Every item of every entry decoded (msgspec errors propagate): per entry, whether it carries
    ``changes`` and its items in the body's order."""
    decoded = []
    for i, entry in enumerate(entries):
        changes = entry.get("changes")
        items: list[_Decoded] = []
        arrays = (("messaging", entry.get("messaging", ())), ("standby", entry.get("standby", ())))
        for array, raws in arrays:
            for j, raw in enumerate(raws):
                item = _ITEM.decode(raw)
                kind = item_kind(item)
                if kind == OTHER:  # read only for its kind's name
                    items.append((OTHER, (i, array, j), raw, _KEYS.decode(raw)))
                    continue
                if not _opaque_ids(cast(str, kind), item):
                    raise msgspec.ValidationError("an id is not printable ASCII without spaces")
                items.append((cast(str, kind), (i, array, j), raw, item))
        # the parsers read only the entry's id and time
        decoded.append((cast(WireEntry, entry), changes is not None and changes != _NULL, items))
    return decoded


def _parse_item(
    batch: Batch,
    entry: WireEntry,
    decoded: _Decoded,
    *,
    oldest: int,
    page_id: str | None,
) -> None:
    """``events._parse_items`` for one item cut out as :class:`msgspec.Raw`."""
    kind, where, raw, item = decoded
    if kind == OTHER:  # ``item`` is the item's keys
        other = kind_of(item)
        if other is None:
            _bump(batch.unknown, unknown_kind(item))
        else:
            _bump(batch.ignored, other)
        return
    try:
        outcome = EVENT_MAP[kind](item, raw, entry)
    except InvalidPayload as error:
        raise error.within(".".join(("entry", *map(str, where)))) from None
    for ignored in outcome.ignored:
        _bump(batch.ignored, ignored)
    if outcome.updates:
        _keep(batch, kind, outcome, oldest=oldest, page_id=page_id, prepare=_prepared)


def _opaque_ids(kind: str, item: Item) -> bool:
    """Whether every id that ``wire`` checks in an item of ``kind`` is opaque (:func:`~.wire.is_opaque`:
    msgspec checked their types and lengths). Sticker ids that came as JSON numbers become their text
    first, as ``wire``'s id check makes them."""
    ids: list[str | None] = []
    for party in (item.get("sender"), item.get("recipient")):
        if party is not None:
            ids += (party.get("id"), party.get("user_ref"))
    if kind == "message":
        message = item["message"]
        if message.get("sticker_id").__class__ is int:
            message["sticker_id"] = str(message["sticker_id"])
        ids += (message.get("mid"), cast(str | None, message.get("sticker_id")))
        for attachment in message.get("attachments", ()):
            payload = attachment.get("payload")
            if payload is not None:
                if payload.get("sticker_id").__class__ is int:
                    payload["sticker_id"] = str(payload["sticker_id"])
                ids.append(cast(str | None, payload.get("sticker_id")))
    elif kind == "postback":
        ids.append(item["postback"].get("mid"))
    elif kind == "optin":
        ids.append(item["optin"].get("user_ref"))
    return all(text is None or is_opaque(text) for text in ids)


def _prepared(update: Document) -> Prepared:
    # ``raw`` is a msgspec.Raw: written as it came
    data = _ENCODER.encode(update)
    return Prepared(_CHANNEL, update["account_id"], update["user_id"], update["event_id"], data)
