"""The Messenger webhook's fast path (``webhooks.messenger.fast``) against the usual one.

The fast path decodes the raw body with msgspec and may decline (None): the view then takes the usual
path (``parse_json`` + ``parse_body``). What must hold, for any body: it never takes a body the usual path
refuses; what it takes becomes the same updates (compared as parsed JSON) and the same counts; a problem
only a parser sees raises the same ``InvalidPayload``. Valid and mutated deliveries are generated; the
fixtures must all be taken.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import UPDATE_ADAPTER
from webhooks.messenger import fast as fast_shapes
from webhooks.messenger import wire as wire_shapes
from webhooks.messenger.events import MAX_TEXT_LENGTH, Batch, InvalidPayload, parse_body
from webhooks.messenger.fast import _plain, _texts, parse_bytes
from webhooks.messenger.view import parse_json
from webhooks.messenger.wire import MAX_ID_LENGTH, MAX_MID_LENGTH

FIXTURES = Path(__file__).parents[2] / "webhooks" / "messenger" / "fixtures"
PAGE = "682498171943165"
NOW_MS = int(time.time() * 1000)
DAY_MS = 24 * 3600 * 1000
OLDEST = NOW_MS - DAY_MS
FIXTURES_OLDEST = 1777950000000 - DAY_MS  # the fixtures' items are 2026-05-05T03:00:00Z + a few seconds


# --------------------------------------------------------------------------- the two paths


def usual(body: bytes, *, oldest: int = OLDEST, page_id: str | None = None) -> Batch | InvalidPayload | str:
    """What the view gets from the usual path: a batch, the 400 ``invalid_request`` (its exception) or
    ``"invalid_json"``."""
    try:
        data = parse_json(body)
    except (ValueError, RecursionError):
        return "invalid_json"
    try:
        return parse_body(data, oldest=oldest, page_id=page_id)
    except InvalidPayload as error:
        return error


def fast(body: bytes, *, oldest: int = OLDEST, page_id: str | None = None) -> Batch | InvalidPayload | None:
    try:
        return parse_bytes(body, oldest=oldest, page_id=page_id)
    except InvalidPayload as error:
        return error


def summary(batch: Batch) -> tuple[Any, ...]:
    """A batch as comparable values: each update's identity and its JSON parsed, and the counts."""
    updates = [(p.channel, p.account_id, p.user_id, p.event_id, json.loads(p.json)) for p in batch.updates]
    return updates, batch.ignored, batch.unknown, batch.stale, batch.ignored_object


def assert_agrees(body: bytes, **options: Any) -> Batch | InvalidPayload | None:
    """The fast path declines, or answers exactly as the usual path does."""
    mine, theirs = fast(body, **options), usual(body, **options)
    if isinstance(mine, Batch):
        assert isinstance(theirs, Batch), f"the fast path took a body the usual path refuses: {theirs}"
        assert summary(mine) == summary(theirs)
    elif isinstance(mine, InvalidPayload):
        assert isinstance(theirs, InvalidPayload), theirs
        assert mine.details == theirs.details
    return mine


# --------------------------------------------------------------------------- generated deliveries

printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
string_ids = st.text(printable, min_size=1, max_size=MAX_ID_LENGTH)
mids = st.text(printable, min_size=1, max_size=MAX_MID_LENGTH)
millis = st.integers(min_value=NOW_MS - DAY_MS // 2, max_value=NOW_MS + DAY_MS)
shorts = st.text(max_size=200)
coordinates = st.fixed_dictionaries(
    {"lat": st.floats(min_value=-90, max_value=90), "long": st.floats(min_value=-180, max_value=180)}
)
attachments = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["image", "video", "audio", "file", "reel", "ig_reel", "template", "share"]
            )
        },
        optional={
            "payload": st.fixed_dictionaries(
                {},
                optional={
                    "url": st.one_of(st.none(), st.text()),
                    "sticker_id": st.one_of(string_ids, st.integers(-(2**63), 2**63 - 1)),
                },
            )
        },
    ),
    st.fixed_dictionaries(
        {"type": st.just("location")},
        optional={
            "title": st.text(),
            "payload": st.fixed_dictionaries({}, optional={"coordinates": coordinates, "url": st.text()}),
        },
    ),
    st.fixed_dictionaries({"type": st.just("fallback")}, optional={"title": st.text(), "url": st.text()}),
)
phones = st.from_regex(r"\+?84[0-9]{8,10}", fullmatch=True)
messages = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "mid": mids,
            "text": st.text(max_size=5000),
            "is_echo": st.booleans(),
            "attachments": st.lists(attachments, max_size=3),
            "sticker_id": st.one_of(string_ids, st.integers(0, 2**63 - 1)),
            "quick_reply": st.fixed_dictionaries({"payload": st.text(max_size=1000)}),
        },
    ),
    phones.map(lambda phone: {"mid": "m_phone", "text": phone, "quick_reply": {"payload": phone}}),
    st.emails().map(lambda email: {"mid": "m_email", "text": email, "quick_reply": {"payload": email}}),
)
referrals = st.fixed_dictionaries(
    {}, optional={"ref": st.text(max_size=2083), "source": shorts, "type": shorts}
)
postbacks = st.fixed_dictionaries(
    {"payload": st.text(max_size=1000)},
    optional={"mid": mids, "title": st.one_of(st.none(), st.text()), "referral": referrals},
)
optins = st.fixed_dictionaries(
    {},
    optional={
        "type": shorts,
        "payload": st.text(max_size=1000),
        "ref": st.text(max_size=2083),
        "title": st.text(),
        "notification_messages_topic": st.text(),
        "notification_messages_token": st.text(max_size=4096),
        "one_time_notif_token": st.text(max_size=4096),
        "notification_messages_status": shorts,
        "user_token_status": shorts,
    },
)
CONTENTS = {
    "message": messages,
    "postback": postbacks,
    "referral": referrals,
    "optin": optins,
    # kinds that are ignored or unknown: their content is not read
    "read": st.fixed_dictionaries({"watermark": millis}),
    "delivery": st.fixed_dictionaries({"mids": st.lists(mids, max_size=2), "watermark": millis}),
    "policy-enforcement": st.fixed_dictionaries({"action": st.just("block"), "reason": st.text()}),
    "game_play": st.fixed_dictionaries({"score": st.integers()}),
}


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(CONTENTS)))
    content = draw(CONTENTS[kind])
    item: dict[str, Any] = {"recipient": {"id": draw(st.sampled_from([PAGE, "1000000000001"]))}}
    if draw(st.integers(0, 9)):
        item["timestamp"] = draw(millis)
    if kind == "optin" and draw(st.booleans()):
        content["user_ref"] = draw(string_ids)  # the checkbox plugin: no sender
    else:
        item["sender"] = {draw(st.sampled_from(["id", "user_ref"])): draw(string_ids)}
    item[kind] = content
    return item


@st.composite
def deliveries(draw: st.DrawFn) -> dict[str, Any]:
    entries = []
    for _ in range(draw(st.integers(1, 2))):
        entry: dict[str, Any] = {"id": PAGE, "messaging": draw(st.lists(items(), max_size=3))}
        if draw(st.booleans()):
            entry["time"] = draw(millis)
        if draw(st.integers(0, 4)) == 0:
            entry["standby"] = draw(st.lists(items(), max_size=2))
        if draw(st.integers(0, 9)) == 0:
            entry["changes"] = draw(st.sampled_from([None, [{"field": "feed", "value": {}}]]))
        entries.append(entry)
    return {"object": draw(st.sampled_from(["page", "page", "page", "instagram"])), "entry": entries}


#: Values put in place of any value of a valid delivery (or added under a new key): wrong types, operator
#: objects, ids just outside the wire's limits or with characters it refuses, boundary numbers.
ODD_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "a b",
        "id\n",
        "\tid",
        "\u00e9",
        "\u00a0",
        "x" * (MAX_ID_LENGTH + 1),
        "x" * (MAX_MID_LENGTH + 1),
        "x" * 201,
        "x" * 1001,
        "9" * MAX_ID_LENGTH,
        str(NOW_MS),
        "yesterday",
    ]
)
ODD_VALUES = st.one_of(
    st.sampled_from(
        [
            {"$ne": ""},
            {"$gt": ""},
            {"$exists": True},
            True,
            False,
            0,
            -1,
            42,
            2**63,
            10**30,
            10**14,
            1.5,
            -0.0,
            [],
            ["x"],
            {},
            None,
        ]
    ).map(copy.deepcopy),  # a fresh object each time: mutations may add keys to it
    ODD_STRINGS,
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
KEYS = st.sampled_from(
    ["extra", "game_play", "message", "postback", "referral", "optin", "delivery", "read", "sender",
     "recipient", "timestamp", "id", "user_ref", "mid", "text", "payload", "sticker_id", "attachments",
     "quick_reply", "is_echo", "coordinates", "policy-enforcement", "object", "entry", "messaging",
     "standby", "changes", "time"]
)  # fmt: skip


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value inside ``value`` (every key of every object, every index of every array)."""
    found: list[tuple[Any, ...]] = []
    pairs = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in pairs:
        found.append((*path, key))
        found += _places(inner, (*path, key))
    return found


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated_deliveries(draw: st.DrawFn) -> dict[str, Any]:
    """A valid delivery with one to three values replaced or removed, or keys (other kinds too) added."""
    delivery = draw(deliveries())
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([(), *_places(delivery)]))
        action = draw(st.sampled_from(["replace", "replace", "remove", "add", "add_kind"]))
        target = _at(delivery, path[:-1]) if path else None
        if action == "replace" and path:
            target[path[-1]] = draw(
                st.one_of(ODD_VALUES, items()) if isinstance(target, list) else ODD_VALUES
            )
        elif action == "remove" and path:
            del target[path[-1]]
        elif isinstance(inner := _at(delivery, path), dict):
            kind = draw(KEYS) if action == "add" else draw(st.sampled_from(sorted(CONTENTS)))
            inner[kind] = draw(ODD_VALUES if action == "add" else st.one_of(CONTENTS[kind], ODD_VALUES))
    return delivery


ID_KEYS = {"id", "user_ref", "mid", "sticker_id", "timestamp", "time"}


@st.composite
def deliveries_with_an_odd_id(draw: st.DrawFn) -> dict[str, Any]:
    """A valid delivery with one id or timestamp (of the envelope, an entry or an item) replaced."""
    delivery = draw(deliveries())
    places = [path for path in _places(delivery) if path[-1] in ID_KEYS]
    if places:
        path = draw(st.sampled_from(places))
        _at(delivery, path[:-1])[path[-1]] = draw(st.one_of(ODD_STRINGS, ODD_VALUES))
    return delivery


def encoded(delivery: dict[str, Any], style: str) -> bytes:
    if style == "ascii":
        return json.dumps(delivery).encode()
    if style == "utf-8":
        return json.dumps(delivery, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(delivery, indent=2, separators=(",", " :  ")).encode()


styles = st.sampled_from(["ascii", "utf-8", "indented"])
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(deliveries(), styles, st.sampled_from([None, PAGE]))
def test_a_valid_delivery_is_taken_with_the_same_updates_and_counts(
    delivery: dict[str, Any], style: str, page_id: str | None
) -> None:
    body = encoded(delivery, style)

    taken = assert_agrees(body, page_id=page_id)

    # declined only when a text merely looks like a number the usual path would change ("3e123")
    assert taken is not None or not _plain(body)


@SETTINGS
@given(mutated_deliveries(), styles)
def test_a_mutated_delivery_is_declined_or_answered_as_the_usual_path_does(
    delivery: dict[str, Any], style: str
) -> None:
    assert_agrees(encoded(delivery, style))


@SETTINGS
@given(deliveries_with_an_odd_id(), styles)
def test_a_delivery_with_an_odd_id_is_declined_or_answered_as_the_usual_path_does(
    delivery: dict[str, Any], style: str
) -> None:
    assert_agrees(encoded(delivery, style))


# Text-level changes a dict cannot express: duplicate keys (the last one wins, in both orders), number
# forms, escapes, nesting. Each replaces every occurrence.
TEXT_EDITS = [
    ('"recipient": ', '"sender": {"id": {"$ne": ""}}, "recipient": '),
    ('"recipient": ', '"extra": 1e400, "recipient": '),
    ('"recipient": ', '"extra": -1E+309, "recipient": '),
    ('"recipient": ', '"extra": 1.5e308, "recipient": '),
    ('"recipient": ', '"extra": 1e-400, "recipient": '),
    ('"recipient": ', '"extra": ' + "9" * 400 + '.5, "recipient": '),
    ('"recipient": ', '"extra": 1' + "0" * 5000 + ', "recipient": '),
    ('"recipient": ', '"extra": 12345678901234567890123456789, "recipient": '),
    ('"recipient": ', '"extra": NaN, "recipient": '),
    ('"recipient": ', '"extra": Infinity, "recipient": '),
    ('"recipient": ', '"extra": "\\ud800", "recipient": '),
    ('"recipient": ', '"extra": "\\ud83d\\ude00 \\u0000 \\/", "recipient": '),
    ('"recipient": ', '"extra": ' + "[" * 150 + "]" * 150 + ', "recipient": '),
    ('"recipient": ', '"extra": ' + "[" * 250 + "]" * 250 + ', "recipient": '),
    ('"recipient": ', '"extra": ' + "[" * 1200 + "]" * 1200 + ', "recipient": '),
    ('"timestamp": ', '"timestamp": 1.0, "timestamp": '),
    ('"sender": ', '"timestamp": "1777950001000", "sender": '),  # after the item's own timestamp
    ('"recipient": ', '"recipient": {"id": {"$ne": ""}}, "recipient": '),
    ('"timestamp": ', '"recipient": {"id": {"$ne": ""}}, "timestamp": '),  # after the item's own recipient
    ('"id": ', '"id": 1254459154682919, "id": '),
    ('"entry": ', '"entry": 1, "entry": '),
]


@SETTINGS
@given(deliveries(), st.sampled_from(TEXT_EDITS))
def test_a_textually_edited_delivery_is_declined_or_answered_as_the_usual_path_does(
    delivery: dict[str, Any], edit: tuple[str, str]
) -> None:
    assert_agrees(json.dumps(delivery).replace(*edit).encode())


@pytest.mark.parametrize(
    ("_case", "old", "new"),
    [
        ("bytes that are not UTF-8", b'"hi"', b'"h\xffi"'),
        ("a surrogate encoded in UTF-8", b'"hi"', b'"h\xed\xa0\x80i"'),
        ("a byte order mark", b'{"object"', b'\xef\xbb\xbf{"object"'),
        ("a lone surrogate escape", b'"hi"', b'"h\\ud800i"'),
    ],
)
def test_text_that_is_not_plain_utf_8_is_declined(_case: str, old: bytes, new: bytes) -> None:
    body = json.dumps(_text_delivery()).encode()
    assert old in body

    assert fast(body.replace(old, new, 1)) is None


def _text_delivery(**message: Any) -> dict[str, Any]:
    item = {
        "sender": {"id": "1254459154682919"},
        "recipient": {"id": PAGE},
        "timestamp": NOW_MS,
        "message": {"mid": "m_1", "text": "hi", **message},
    }
    return {"object": "page", "entry": [{"id": PAGE, "time": NOW_MS, "messaging": [item]}]}


def _with(path: tuple[Any, ...], value: Any) -> bytes:
    delivery = _text_delivery()
    target: Any = delivery
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return json.dumps(delivery).encode()


ITEM = ("entry", 0, "messaging", 0)


@pytest.mark.parametrize(
    ("_case", "body", "usual_answer"),
    [
        ("an operator object as sender id", _with((*ITEM, "sender", "id"), {"$ne": ""}), InvalidPayload),
        ("an id with a trailing newline", _with((*ITEM, "sender", "id"), "1254\n"), InvalidPayload),
        ("an id one character too long", _with((*ITEM, "sender", "id"), "1" * 101), InvalidPayload),
        ("a mid with a space", _with((*ITEM, "message", "mid"), "m 1"), InvalidPayload),
        ("a boolean timestamp", _with((*ITEM, "timestamp"), True), InvalidPayload),
        ("an item that is not an object", _with(ITEM, "message"), InvalidPayload),
        ("a sender id sent as a number", _with((*ITEM, "sender", "id"), 1254459154682919), Batch),
        ("a timestamp sent as a string of digits", _with((*ITEM, "timestamp"), str(NOW_MS)), Batch),
        ("a sticker id beyond 64 bits", _with((*ITEM, "message", "sticker_id"), 10**30), Batch),
        ("an exponent of three digits", _with((*ITEM, "extra"), 1e300), Batch),
    ],
)
def test_what_the_fast_path_cannot_tell_goes_the_usual_way(
    _case: str, body: bytes, usual_answer: type[Any]
) -> None:
    assert fast(body) is None
    assert isinstance(usual(body), usual_answer)


def test_an_item_without_sender_raises_what_the_usual_path_raises() -> None:
    delivery = _text_delivery()
    del delivery["entry"][0]["messaging"][0]["sender"]
    body = json.dumps(delivery).encode()

    with pytest.raises(InvalidPayload) as refused:
        parse_bytes(body, oldest=OLDEST)

    theirs = usual(body)
    assert isinstance(theirs, InvalidPayload)
    assert refused.value.details == theirs.details
    assert [d["field"] for d in theirs.details] == ["entry.0.messaging.0.sender.id"]


def test_the_raw_item_is_queued_as_it_came() -> None:
    # the update's raw is the item's own JSON text, not a re-serialisation of it
    item = b'{"sender" : {"id":"2"},"recipient":{"id":"1"},"timestamp":1777950001000,'
    item += b'"message":{"mid":"m","text":"\\u0111"}}'
    body = b'{"object":"page","entry":[{"id":"1","messaging":[' + item + b"]}]}"

    batch = parse_bytes(body, oldest=0)

    assert batch is not None
    assert b'"raw":' + item in batch.updates[0].json


# --------------------------------------------------------------------------- the express lane
# ``_texts`` takes deliveries made only of plain text messages in Meta's exact shape: it must take every
# one of them, with the usual path's batch, and answer nothing it cannot answer as the usual path does.


@st.composite
def text_deliveries(draw: st.DrawFn) -> dict[str, Any]:
    entries = []
    for _ in range(draw(st.integers(1, 2))):
        items = [
            {
                "sender": {"id": draw(string_ids)},
                "recipient": {"id": draw(st.sampled_from([PAGE, "1000000000001"]))},
                "timestamp": draw(st.integers(min_value=NOW_MS - 2 * DAY_MS, max_value=NOW_MS + DAY_MS)),
                "message": {
                    "mid": draw(mids),
                    "text": draw(
                        st.one_of(st.text(max_size=50), st.text(min_size=4000, max_size=MAX_TEXT_LENGTH))
                    ),
                },
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        entries.append(
            {"id": draw(st.sampled_from([PAGE, "1000000000001"])), "time": draw(millis), "messaging": items}
        )
    return {"object": "page", "entry": entries}


@SETTINGS
@given(text_deliveries(), styles, st.sampled_from([None, PAGE]))
def test_the_express_lane_takes_every_plain_text_delivery_with_the_usual_paths_batch(
    delivery: dict[str, Any], style: str, page_id: str | None
) -> None:
    body = encoded(delivery, style)

    taken = _texts(body, oldest=OLDEST, page_id=page_id)

    assert taken is not None
    theirs = usual(body, page_id=page_id)
    assert isinstance(theirs, Batch)
    assert summary(taken) == summary(theirs)


@st.composite
def altered_text_deliveries(draw: st.DrawFn) -> dict[str, Any]:
    """A plain text delivery with one value replaced (odd values, operator objects), one key removed, or
    one key added."""
    delivery = draw(text_deliveries())
    places = _places(delivery)
    path = draw(st.sampled_from(places))
    parent = _at(delivery, path[:-1])
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(st.one_of(ODD_STRINGS, ODD_VALUES))
    elif action == "remove" and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(KEYS)] = draw(st.one_of(ODD_VALUES, st.just({"mid": "m_2", "text": "x"})))
    return delivery


@SETTINGS
@given(altered_text_deliveries(), styles)
def test_the_express_lane_declines_or_answers_an_altered_delivery_as_the_usual_path_does(
    delivery: dict[str, Any], style: str
) -> None:
    body = encoded(delivery, style)

    taken = _texts(body, oldest=OLDEST, page_id=None)

    if taken is not None:
        theirs = usual(body)
        assert isinstance(theirs, Batch), f"the express lane took a body the usual path refuses: {theirs}"
        assert summary(taken) == summary(theirs)


@pytest.mark.parametrize(
    ("_case", "body"),
    [
        (
            "a text longer than an update holds",
            _with((*ITEM, "message", "text"), "x" * (MAX_TEXT_LENGTH + 1)),
        ),
        ("a quick reply", _with((*ITEM, "message", "quick_reply"), {"payload": "menu:points"})),
        ("an echo", _with((*ITEM, "message", "is_echo"), True)),
        ("a message without mid", json.dumps(_text_delivery()).replace('"mid": "m_1", ', "").encode()),
        ("an entry without time", json.dumps(_text_delivery()).replace(f'"time": {NOW_MS}, ', "").encode()),
        ("an unknown field", _with((*ITEM, "message", "nlp"), {"entities": {}})),
        ("a standby array", _with(("entry", 0, "standby"), [])),
        ("another object", _with(("object",), "instagram")),
        ("a sender id sent as a number", _with((*ITEM, "sender", "id"), 1254459154682919)),
        ("a timestamp sent as a string", _with((*ITEM, "timestamp"), str(NOW_MS))),
        ("an entry id with a space", _with(("entry", 0, "id"), "68 24")),
        ("a mid with a control character", _with((*ITEM, "message", "mid"), "m\x7f1")),
        ("no entry at all", b'{"object": "page", "entry": []}'),
        ("bytes that are not UTF-8", json.dumps(_text_delivery()).encode().replace(b'"hi"', b'"h\xffi"')),
    ],
)
def test_the_express_lane_leaves_anything_else_to_the_general_path(_case: str, body: bytes) -> None:
    assert _texts(body, oldest=OLDEST, page_id=None) is None

    assert_agrees(body)


def test_a_text_fixture_takes_the_express_lane() -> None:
    body = (FIXTURES / "messages__text.json").read_bytes()

    taken = _texts(body, oldest=FIXTURES_OLDEST, page_id=None)

    assert taken is not None and len(taken.updates) == 1
    assert summary(taken) == summary(parse_body(parse_json(body), oldest=FIXTURES_OLDEST))


# --------------------------------------------------------------------------- the fixtures


FIXTURE_NAMES = sorted(path.stem for path in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_is_taken_with_the_usual_paths_batch(name: str) -> None:
    # (messages__text's mid, "mid.1457764197618:41d102a3e1ae206a38", merely looks like an exponent)
    body = (FIXTURES / f"{name}.json").read_bytes()

    taken = fast(body, oldest=FIXTURES_OLDEST)

    assert isinstance(taken, Batch)
    theirs = usual(body, oldest=FIXTURES_OLDEST)
    assert isinstance(theirs, Batch)
    assert summary(taken) == summary(theirs)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_update_the_fast_path_queues_from_a_fixture_becomes_the_same_model(name: str) -> None:
    body = (FIXTURES / f"{name}.json").read_bytes()
    taken, theirs = fast(body, oldest=FIXTURES_OLDEST), usual(body, oldest=FIXTURES_OLDEST)
    assert isinstance(taken, Batch) and isinstance(theirs, Batch)

    models = [UPDATE_ADAPTER.validate_json(p.json) for p in taken.updates]  # what the worker does

    assert models == [UPDATE_ADAPTER.validate_json(p.json) for p in theirs.updates]


# The fast path's shapes restate wire.py's in msgspec's terms (the two libraries' constraints cannot share
# one class). A field added to one and not the other would be dropped on one path only: the generators
# above would catch it only if they produced that field.
MIRRORED_SHAPES = [
    (fast_shapes.Party, wire_shapes.WireParty),
    (fast_shapes.QuickReply, wire_shapes.WireQuickReply),
    (fast_shapes.Coordinates, wire_shapes.WireCoordinates),
    (fast_shapes.AttachmentPayload, wire_shapes.WireAttachmentPayload),
    (fast_shapes.Attachment, wire_shapes.WireAttachment),
    (fast_shapes.Message, wire_shapes.WireMessage),
    (fast_shapes.Referral, wire_shapes.WireReferral),
    (fast_shapes.Postback, wire_shapes.WirePostback),
    (fast_shapes.Optin, wire_shapes.WireOptin),
    (fast_shapes.Entry, wire_shapes.WireEntry),
    (fast_shapes.Body, wire_shapes.WireBody),
]


@pytest.mark.parametrize(("shape", "twin"), MIRRORED_SHAPES, ids=lambda shape: shape.__name__)
def test_a_fast_shape_has_the_fields_of_its_wire_twin(shape: Any, twin: Any) -> None:
    assert (shape.__required_keys__, shape.__optional_keys__) == (
        twin.__required_keys__,
        twin.__optional_keys__,
    )


def test_the_fast_item_shape_has_the_envelope_and_every_handled_kind() -> None:
    envelope = wire_shapes.WireItem.__optional_keys__
    assert fast_shapes.Item.__optional_keys__ == envelope | set(wire_shapes.HANDLED_KINDS)
