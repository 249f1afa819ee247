"""Messenger webhook items → ``bot`` updates, through one table.

An item's kind is the key it carries besides ``sender``/``recipient``/``timestamp`` (``message``,
``postback``, ``referral``...), looked up in :data:`ALL_EVENT_TYPES` order. :data:`EVENT_MAP` says how a
handled kind becomes updates, :data:`IGNORED_EVENTS` lists the kinds we know and drop on purpose, and
anything else is an unknown kind: logged, counted and skipped, while the rest of the delivery goes on
(an error would make Meta resend the whole delivery for an hour, then unsubscribe the app).

:func:`parse_body` applies the table to a whole delivery and raises :class:`InvalidPayload` (a 400,
nothing queued) if any item the table handles is malformed, so a delivery is queued whole or not at all.

This is the webhook's hot path, so no update model is built here: a parser writes the update as the JSON
object :data:`bot.UPDATE_ADAPTER` reads (a ``dict``), serialised once into a
:class:`~webhooks.common.Prepared`, and the worker builds the model. That is safe because every value
put in such an object passed :mod:`.wire`'s validation, which is at least as strict as the update's
fields (ids of at most 100 characters for 128, mids of 240 for 256, payloads of 1,000, texts cut to
4,096, refs over 1,000 dropped); ``tests/webhooks/test_messenger.py`` builds the model from every
fixture's and from boundary items' JSON to hold that.

The view tries :func:`webhooks.messenger.fast.parse_bytes` first, which runs these same parsers on items
decoded by msgspec (their ``raw`` is then the item's own JSON text, a :class:`msgspec.Raw`); whatever it
cannot decide comes here.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple

import msgspec
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from bot.channels.messenger import USER_REF_PREFIX as MESSENGER_USER_REF_PREFIX
from bot.timeutil import from_millis
from bot.types import AttachmentType, Channel, UpdateKind
from webhooks.common import Prepared
from webhooks.messenger.wire import (
    BODY_ADAPTER,
    HANDLED_KINDS,
    OTHER,
    MessageItem,
    OptinItem,
    PostbackItem,
    ReferralItem,
    WireAttachment,
    WireEntry,
    WireItem,
    WireMessage,
    error_details,
    item_kind,
)

log = logging.getLogger("loyalty.webhooks.messenger")

#: ``user_id`` of people known only by a plugin's ``user_ref`` (no PSID yet): kept apart from PSIDs; the
#: Send API client addresses them with ``recipient.user_ref`` (one constant for both sides).
USER_REF_PREFIX: Final = MESSENGER_USER_REF_PREFIX
#: Suffix of the ``Referral`` that a postback carrying ``referral`` also yields (a distinct event id).
REFERRAL_SUFFIX: Final = ":ref"
#: ``bot.types.Message.text`` holds at most this; longer text is cut (``raw`` keeps all of it).
MAX_TEXT_LENGTH: Final = 4096
#: ``bot.types.Referral.ref`` holds at most this; Meta allows 2,083. Our own refs (QR codes, links) are far
#: shorter, so a longer one is not ours: dropped and counted (``oversized_ref``), never a 400.
MAX_QUEUED_REF_LENGTH: Final = 1000
_ENVELOPE_KEYS: Final = frozenset({"sender", "recipient", "timestamp"})
_PHONE: Final = re.compile(r"\+?[0-9][0-9 .()\-]{4,28}[0-9]")
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_LABEL: Final = re.compile(r"[^a-z0-9_]")


class InvalidPayload(Exception):
    """A handled item does not have the documented shape; ``details`` name the fields
    (``entry.0.messaging.1.sender.id``)."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        super().__init__(details)
        self.details = details

    @classmethod
    def problem(cls, field: str, problem: str) -> InvalidPayload:
        return cls([{"field": field, "problem": problem}])

    @classmethod
    def from_validation(cls, error: ValidationError) -> InvalidPayload:
        return cls(error_details(error))

    def within(self, where: str) -> InvalidPayload:
        """The same problems, with field paths prefixed by the item's place in the body."""
        return InvalidPayload([{**d, "field": f"{where}.{d['field']}"} for d in self.details])


#: An update as the JSON object :data:`bot.UPDATE_ADAPTER` reads (``kind``, ``channel``, ``account_id``,
#: ``user_id``, ``event_id``, ``timestamp``, ``raw`` and the kind's fields).
Document = dict[str, Any]
#: An item as received, kept as its updates' ``raw``: the parsed JSON object, or (on the fast path) the
#: item's JSON text, which the fast path's encoder writes into the update verbatim.
RawItem = dict[str, Any] | msgspec.Raw
_CHANNEL: Final = Channel.MESSENGER.value


class Outcome(NamedTuple):
    """What one item became: updates to queue (with who and when they are, for the page and age checks),
    and labels counted as ignored (an echo, an unusable ref)."""

    updates: tuple[Document, ...] = ()
    ignored: tuple[str, ...] = ()
    origin: _Origin | None = None


#: A handled kind's parser: the item as validated (:data:`~webhooks.messenger.wire.BODY_ADAPTER` checked
#: it against its kind's shape, or the fast path's msgspec shapes did), the same item as received (kept as
#: the updates' ``raw``) and its entry → an :class:`Outcome`. It may raise :class:`InvalidPayload` for what
#: the shape cannot say.
Parser = Callable[[Any, RawItem, WireEntry], Outcome]


@dataclass(slots=True)
class _Origin:
    """Who and when, shared by every update an item yields."""

    account_id: str
    user_id: str
    millis: int
    raw: RawItem

    def stable_id(self, kind: str, discriminator: str) -> str:
        """For items without a ``mid``: the same item always gets the same id, so a resend is a duplicate."""
        text = "\x1f".join((kind, self.user_id, self.account_id, str(self.millis), discriminator))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def document(self, kind: UpdateKind, event_id: str) -> Document:
        """The fields every update has, with ``kind`` (the union's discriminator)."""
        return {
            "kind": kind.value,
            "channel": _CHANNEL,
            "account_id": self.account_id,
            "user_id": self.user_id,
            "event_id": event_id,
            "timestamp": iso_millis(self.millis),
            "raw": self.raw,
        }


def iso_millis(millis: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC (``2026-05-05T03:00:01.250Z``), exact to the millisecond.

    The second's text is cached: items of one delivery, and of the deliveries of one busy second, share
    it, and formatting a datetime costs several times more than this (this runs for every event).
    """
    return _iso_second(millis // 1000) + _MILLIS_SUFFIXES[millis % 1000]


_MILLIS_SUFFIXES: Final = tuple(f".{millis:03d}Z" for millis in range(1000))  # formatting costs more


@functools.lru_cache(maxsize=1024)
def _iso_second(seconds: int) -> str:
    return from_millis(seconds * 1000).strftime("%Y-%m-%dT%H:%M:%S")


def _origin(item: WireItem, raw: RawItem, entry: WireEntry, user_ref: str | None = None) -> _Origin:
    # account_id: the Page, which is the recipient of a user→page item; the entry's id says the same
    # and is the fallback if an item ever comes without recipient.id (unconfirmed that it can).
    recipient = item.get("recipient")
    account_id = (recipient.get("id") if recipient is not None else None) or entry["id"]
    sender = item.get("sender") or {}
    if (sender_id := sender.get("id")) is not None:
        user_id = sender_id
    elif (sender_ref := sender.get("user_ref")) is not None:
        user_id = USER_REF_PREFIX + sender_ref
    elif user_ref is not None:
        user_id = USER_REF_PREFIX + user_ref
    else:
        raise InvalidPayload.problem("sender.id", "an item from a user needs sender.id (or sender.user_ref)")
    # Every messaging item has a timestamp (messenger.md A.1); the entry's time is a defensive fallback.
    millis = item.get("timestamp")
    if millis is None:
        millis = entry.get("time")
    if millis is None:
        raise InvalidPayload.problem("timestamp", "an item from a user needs a timestamp")
    return _Origin(account_id, user_id, millis, raw)


# --------------------------------------------------------------------------- messages


def _shared_phone(message: WireMessage) -> str | None:
    """The phone of a ``user_phone_number`` quick reply, else None.

    The doc: the number comes as ``quick_reply.payload`` *and* as ``text``, with no developer payload. So a
    quick reply whose payload equals its text and looks like a phone number is one; our own quick replies
    carry payloads such as ``menu:points`` that never look like that.
    """
    quick_reply, text = message.get("quick_reply"), message.get("text")
    if quick_reply is None or text is None:
        return None
    phone = quick_reply["payload"].strip()
    if phone != text.strip() or not _PHONE.fullmatch(phone):
        return None
    digits = sum(c.isdigit() for c in phone)
    return phone if 6 <= digits <= 15 else None


def _shared_email(message: WireMessage) -> bool:
    """A ``user_email`` quick reply: user data, not a routing key, so it is queued as the message text."""
    quick_reply, text = message.get("quick_reply"), message.get("text")
    if quick_reply is None or text is None:
        return False
    email = quick_reply["payload"].strip()
    return email == text.strip() and _EMAIL.fullmatch(email) is not None


def _attachment(attachment: WireAttachment) -> Document | None:
    """An ``Attachment`` as its JSON object, or None for a type nothing routes on."""
    payload = attachment.get("payload") or {}
    url = payload.get("url") or attachment.get("url")
    kind = attachment["type"]
    match kind:
        case "image" if (sticker_id := payload.get("sticker_id")) is not None:
            return {"type": AttachmentType.STICKER.value, "url": url, "sticker_id": sticker_id}
        case "image" | "video" | "audio" | "file":
            return {"type": AttachmentType(kind).value, "url": url}
        case "reel" | "ig_reel":
            return {"type": AttachmentType.VIDEO.value, "url": url}
        case "location":
            coordinates = payload.get("coordinates")
            return {
                "type": AttachmentType.LOCATION.value,
                "url": url,
                "name": attachment.get("title") or payload.get("title"),
                "latitude": coordinates["lat"] if coordinates else None,
                "longitude": coordinates["long"] if coordinates else None,
            }
        case "fallback":
            name = attachment.get("title") or payload.get("title")
            return {"type": AttachmentType.LINK.value, "url": url, "name": name}
    return None


def _attachments(message: WireMessage) -> list[Document]:
    converted: list[Document] = []
    for attachment in message.get("attachments", ()):
        if (one := _attachment(attachment)) is not None:
            converted.append(one)
        else:
            # e.g. "template" or "share": nothing to route on; the message is still queued, raw has it all
            log.info("messenger: attachment type %r kept in raw only", attachment["type"][:32])
    sticker_id = message.get("sticker_id")
    if sticker_id is not None and not any(a["type"] == AttachmentType.STICKER.value for a in converted):
        converted.append({"type": AttachmentType.STICKER.value, "sticker_id": sticker_id})
    return converted


def parse_message(item: MessageItem, raw: RawItem, entry: WireEntry) -> Outcome:
    """``messages``: text, attachments, a quick reply (→ ``Postback``), a shared phone (→ ``ContactShared``).

    Echoes (``is_echo``: the Page's own messages, ``message_echoes``) are dropped first, so the bot never
    answers itself.
    """
    message = item["message"]
    if message.get("is_echo"):
        return Outcome(ignored=("message_echo",))
    origin = _origin(item, raw, entry)
    text = message.get("text")
    event_id = message.get("mid") or origin.stable_id("message", text or "")
    if (phone := _shared_phone(message)) is not None:
        contact = origin.document(UpdateKind.CONTACT, event_id)
        contact["phone"] = phone
        return Outcome((contact,), origin=origin)
    quick_reply = message.get("quick_reply")
    if quick_reply is not None and not _shared_email(message):
        postback = origin.document(UpdateKind.POSTBACK, event_id)
        postback["payload"] = quick_reply["payload"]
        postback["title"] = text
        return Outcome((postback,), origin=origin)
    if text is not None and len(text) > MAX_TEXT_LENGTH:
        log.warning("messenger: text of %s cut to %d characters (raw keeps it)", event_id, MAX_TEXT_LENGTH)
        text = text[:MAX_TEXT_LENGTH]
    update = origin.document(UpdateKind.MESSAGE, event_id)
    update["text"] = text
    if "attachments" in message or "sticker_id" in message:
        update["attachments"] = _attachments(message)
    return Outcome((update,), origin=origin)


# --------------------------------------------------------------------------- postbacks, referrals, opt-ins


def _usable_ref(ref: str | None) -> str | None:
    if ref is not None and len(ref) > MAX_QUEUED_REF_LENGTH:
        log.warning("messenger: a %d-character ref is not one of ours; dropped", len(ref))
        return None
    return ref


def parse_postback(item: PostbackItem, raw: RawItem, entry: WireEntry) -> Outcome:
    """``messaging_postbacks``: a button, the persistent menu, Get Started → ``Postback``.

    A postback carrying ``referral`` (Get Started pressed by someone who came through an m.me link or QR
    code) also yields a ``Referral`` with the same ref, so the ref is handled the same way whether it
    arrives here or in ``messaging_referrals`` (the "lost ref" of fbsamples/original-coast-clothing#17).
    Get Started yields no ``Follow``: its payload is ours to choose, so handlers route on it (README).
    """
    postback = item["postback"]
    origin = _origin(item, raw, entry)
    payload = postback["payload"]
    event_id = postback.get("mid") or origin.stable_id("postback", payload)
    referral = postback.get("referral")
    ref = _usable_ref(referral.get("ref")) if referral is not None else None
    update = origin.document(UpdateKind.POSTBACK, event_id)
    update["payload"] = payload
    update["title"] = postback.get("title")
    update["ref"] = ref
    if referral is None:
        return Outcome((update,), origin=origin)
    if referral.get("ref") is not None and ref is None:
        return Outcome((update,), ignored=("oversized_ref",), origin=origin)
    also = origin.document(UpdateKind.REFERRAL, event_id + REFERRAL_SUFFIX)
    also["ref"] = ref or ""
    also["source"] = referral.get("source")
    return Outcome((update, also), origin=origin)


def parse_referral(item: ReferralItem, raw: RawItem, entry: WireEntry) -> Outcome:
    """``messaging_referrals``: an m.me link or QR code opened in an existing thread → ``Referral``.

    A missing ref (an ad without one; "referrals ... might not work") is queued as ``ref=""`` so the
    handlers' fallback path runs.
    """
    referral = item["referral"]
    origin = _origin(item, raw, entry)
    ref = _usable_ref(referral.get("ref"))
    if referral.get("ref") is not None and ref is None:
        return Outcome(ignored=("oversized_ref",))
    source = referral.get("source")
    event_id = origin.stable_id("referral", f"{ref or ''}\x1f{source or ''}")
    update = origin.document(UpdateKind.REFERRAL, event_id)
    update["ref"] = ref or ""
    update["source"] = source
    return Outcome((update,), origin=origin)


def parse_optin(item: OptinItem, raw: RawItem, entry: WireEntry) -> Outcome:
    """``messaging_optins`` → ``OptIn(ref, topic, token)``.

    - notification messages: ``ref`` = ``optin.ref`` (m.me/rn links) or ``optin.payload``, ``topic`` =
      ``notification_messages_topic`` or ``title``, ``token`` = ``notification_messages_token``;
    - legacy one-time notification: ``token`` = ``one_time_notif_token``;
    - checkbox plugin: no ``sender``; the person is ``user_ref:<optin.user_ref>`` until they get a PSID.

    The same webhook also reports "stop"/"resume" of notification messages; the status values are
    unconfirmed, so they are not interpreted here: handlers read
    ``raw["optin"]["notification_messages_status"]``.
    """
    optin = item["optin"]
    origin = _origin(item, raw, entry, user_ref=optin.get("user_ref"))
    ref = optin.get("ref")
    if ref is None:
        ref = optin.get("payload")
    token = optin.get("notification_messages_token") or optin.get("one_time_notif_token")
    parts = (
        optin.get("type"),
        ref,
        token,
        optin.get("notification_messages_status"),
        optin.get("user_token_status"),
    )
    event_id = origin.stable_id("optin", "\x1f".join(p or "" for p in parts))
    update = origin.document(UpdateKind.OPTIN, event_id)
    update["ref"] = ref
    update["topic"] = optin.get("notification_messages_topic") or optin.get("title")
    update["token"] = token
    return Outcome((update,), origin=origin)


# --------------------------------------------------------------------------- the table

#: Handled kinds, in the order an item's keys are looked at (``message`` first: a message item may carry
#: more keys than ``message``, never the reverse).
EVENT_MAP: Final[Mapping[str, Parser]] = MappingProxyType(
    {
        "message": parse_message,
        "postback": parse_postback,
        "referral": parse_referral,
        "optin": parse_optin,
    }
)
if tuple(EVENT_MAP) != HANDLED_KINDS:  # the single validation pass picks each item's shape by these keys
    raise RuntimeError("EVENT_MAP and wire.HANDLED_KINDS must list the same kinds in the same order")
#: Known kinds dropped on purpose (counted as ``webhook_ignored_events_total``): receipts, reactions, edits
#: (an edited message is not handled again), policy notices and the handover protocol's control events.
IGNORED_EVENTS: Final[tuple[str, ...]] = (
    "delivery",
    "read",
    "reaction",
    "message_edit",
    "policy_enforcement",
    # older spelling, still read by public bots (unconfirmed which one Meta sends today)
    "policy-enforcement",
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "app_roles",
)
ALL_EVENT_TYPES: Final[tuple[str, ...]] = (*EVENT_MAP, *IGNORED_EVENTS)
#: The dashboard's webhook field that brings each kind (also the ``<field>__<variant>.json`` fixture names).
WEBHOOK_FIELDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "message": "messages",  # also message_echoes (is_echo), dropped
        "postback": "messaging_postbacks",
        "referral": "messaging_referrals",
        "optin": "messaging_optins",
        "delivery": "message_deliveries",
        "read": "message_reads",
        "reaction": "message_reactions",
        "message_edit": "message_edits",
        "policy_enforcement": "messaging_policy_enforcement",
        "policy-enforcement": "messaging_policy_enforcement",
        "pass_thread_control": "messaging_handovers",
        "take_thread_control": "messaging_handovers",
        "request_thread_control": "messaging_handovers",
        "app_roles": "messaging_handovers",
    }
)


def kind_of(item: Mapping[str, Any]) -> str | None:
    """The item's kind from the table, or None if it has none of the known keys."""
    return next((kind for kind in ALL_EVENT_TYPES if kind in item), None)


def label(value: str) -> str:
    """A metric label from platform text: lower-case ``[a-z0-9_]``, at most 40 characters."""
    return _LABEL.sub("_", value.lower())[:40] or "empty"


def unknown_kind(item: Mapping[str, Any]) -> str:
    """A label for an item of no known kind: its first key other than sender/recipient/timestamp."""
    return label(next((key for key in item if key not in _ENVELOPE_KEYS), ""))


# --------------------------------------------------------------------------- a whole delivery


def _bump(counts: dict[str, int], key: str, amount: int = 1) -> None:
    counts[key] = counts.get(key, 0) + amount


class Batch:
    """What one delivery became. Counts are applied only once the whole delivery is known to be valid.

    (A plain class: a dataclass's ``__init__`` with default factories costs ~2 µs, once per delivery.)
    """

    __slots__ = ("ignored", "ignored_object", "stale", "unknown", "updates")

    def __init__(self, ignored_object: str | None = None) -> None:
        self.updates: list[Prepared] = []
        self.ignored: dict[str, int] = {}
        self.unknown: dict[str, int] = {}
        self.stale: dict[str, int] = {}
        self.ignored_object = ignored_object


def parse_body(data: object, *, oldest: int, page_id: str | None = None) -> Batch:
    """Turn a parsed webhook body into updates, every item of every entry, in the body's order.

    The whole body is validated in one pass first (:data:`~webhooks.messenger.wire.BODY_ADAPTER`: every
    handled item against its kind's shape), so a malformed item anywhere refuses the delivery before any
    update is built.

    :param data: the JSON body.
    :param oldest: items whose timestamp (epoch milliseconds) is older than this are skipped as stale.
    :param page_id: when set, items for another Page are skipped (counted as ``other_page``).
    :return: the updates and the counts of what was skipped.
    :raises InvalidPayload: if the body or any handled item is malformed (nothing may be queued then).
    """
    if not isinstance(data, dict):
        raise InvalidPayload.problem("body", "must be a JSON object")
    obj = data.get("object")
    if not isinstance(obj, str):
        raise InvalidPayload.problem("object", "must be a string")
    if obj != "page":
        # Instagram ("instagram") and other Graph objects are not ours. A 4xx would make Meta retry a
        # correctly signed delivery for an hour and then unsubscribe the app, so: 200, counted, logged.
        return Batch(ignored_object=label(obj))
    try:
        body = BODY_ADAPTER.validate_python(data)
    except ValidationError as error:
        raise InvalidPayload.from_validation(error) from None
    batch = Batch()
    raw_entries: list[dict[str, Any]] = data["entry"]  # validated: a list of objects, index for index
    for i, entry in enumerate(body["entry"]):
        if entry.get("changes") is not None:
            _bump(batch.ignored, "changes")
        for array, items in (("messaging", entry.get("messaging")), ("standby", entry.get("standby"))):
            if items:
                raw_items = raw_entries[i][array]
                _parse_items(batch, entry, items, raw_items, (i, array), oldest=oldest, page_id=page_id)
    return batch


def _parse_items(
    batch: Batch,
    entry: WireEntry,
    items: list[Any],
    raw_items: list[dict[str, Any]],
    where: tuple[int, str],
    *,
    oldest: int,
    page_id: str | None,
) -> None:
    """One ``messaging``/``standby`` array: ``items`` as validated, ``raw_items`` as received; items
    older than ``oldest`` (epoch milliseconds) are skipped."""
    for j, item in enumerate(items):
        raw = raw_items[j]
        kind = item_kind(raw)  # a handled kind, as the validation pass saw it, or OTHER
        if kind == OTHER:
            kind = kind_of(raw)
        if kind is None:
            _bump(batch.unknown, unknown_kind(raw))
            continue
        parser = EVENT_MAP.get(kind)
        if parser is None:
            # Ignored kinds are not validated: we read nothing of them, and a 400 for a field
            # we never use would only make Meta resend the delivery.
            _bump(batch.ignored, kind)
            continue
        try:
            outcome = parser(item, raw, entry)
        except InvalidPayload as error:
            raise error.within(f"entry.{where[0]}.{where[1]}.{j}") from None
        for ignored in outcome.ignored:
            _bump(batch.ignored, ignored)
        if outcome.updates:
            try:
                _keep(batch, kind, outcome, oldest=oldest, page_id=page_id)
            except PydanticSerializationError:
                # json.loads' fallback admits lone surrogate escapes ("\ud800"), which no UTF-8 text holds
                field = f"entry.{where[0]}.{where[1]}.{j}"
                raise InvalidPayload.problem(field, "holds text that is not valid Unicode") from None


def _keep(
    batch: Batch,
    kind: str,
    outcome: Outcome,
    *,
    oldest: int,
    page_id: str | None,
    prepare: Callable[[Document], Prepared] | None = None,
) -> None:
    """Queue ``outcome``'s updates (``prepare``: how an update becomes its JSON, :func:`_prepared` by
    default), or count them as for another Page or stale."""
    origin = outcome.origin
    assert origin is not None  # every parser that yields updates says whose they are
    if page_id is not None and origin.account_id != page_id:
        _bump(batch.ignored, "other_page")
    elif origin.millis < oldest:
        # Older than the queue's dedupe window allows: a replayed (even correctly signed) old body
        # must not be handled a second time.
        _bump(batch.stale, kind)
    else:
        batch.updates += [(prepare or _prepared)(update) for update in outcome.updates]


def _prepared(update: Document) -> Prepared:
    # NaN and infinities (only json.loads' fallback admits them, in fields we do not read) become null, as a
    # model's serializer writes them
    data = to_json(update, inf_nan_mode="null")
    return Prepared(_CHANNEL, update["account_id"], update["user_id"], update["event_id"], data)
