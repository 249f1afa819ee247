"""The Messenger webhook queues updates as JSON that it never turned into models: the worker does.

So an acknowledged event must always become its model there. These tests generate valid deliveries of
every handled kind, with values at and around the wire's limits, and build each queued update's model
from its JSON exactly as the worker does (``bot.UPDATE_ADAPTER``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import from_json

from bot import UPDATE_ADAPTER
from webhooks.messenger.events import InvalidPayload, iso_millis, parse_body
from webhooks.messenger.wire import _OPAQUE, MAX_ID_LENGTH, MAX_MID_LENGTH, is_opaque

PAGE = "682498171943165"
NOW_MS = int(time.time() * 1000)
DAY_MS = 24 * 3600 * 1000

ids = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=MAX_ID_LENGTH),
    st.integers(min_value=0, max_value=10**30),
)
mids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=MAX_MID_LENGTH)
texts = st.text(max_size=5000)
payloads = st.text(max_size=1000)
refs = st.text(max_size=2083)
shorts = st.text(max_size=200)
millis = st.integers(min_value=NOW_MS - DAY_MS // 2, max_value=NOW_MS + DAY_MS)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


attachments = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["image", "video", "audio", "file", "reel", "template", "share"])},
        optional={"payload": st.fixed_dictionaries({}, optional={"url": st.text(), "sticker_id": ids})},
    ),
    st.fixed_dictionaries(
        {"type": st.just("location")},
        optional={
            "title": st.text(),
            "payload": st.fixed_dictionaries(
                {},
                optional={
                    "coordinates": st.fixed_dictionaries(
                        {
                            "lat": st.floats(min_value=-90, max_value=90),
                            "long": st.floats(min_value=-180, max_value=180),
                        }
                    ),
                    "url": st.text(),
                },
            ),
        },
    ),
    st.fixed_dictionaries({"type": st.just("fallback")}, optional={"title": st.text(), "url": st.text()}),
)
phone_like = st.from_regex(r"\+?84[0-9]{8,10}", fullmatch=True)
messages = st.one_of(
    st.fixed_dictionaries(
        {"mid": mids},
        optional={
            "text": texts,
            "attachments": st.lists(attachments, max_size=3),
            "sticker_id": ids,
            "quick_reply": st.fixed_dictionaries({"payload": payloads}),
        },
    ),
    # a shared phone: the number as both the quick reply's payload and the text
    phone_like.map(lambda phone: {"mid": "m_phone", "text": phone, "quick_reply": {"payload": phone}}),
)
postbacks = st.fixed_dictionaries(
    {"payload": payloads},
    optional={
        "mid": mids,
        "title": st.text(),
        "referral": st.fixed_dictionaries({}, optional={"ref": refs, "source": shorts, "type": shorts}),
    },
)
referrals = st.fixed_dictionaries({}, optional={"ref": refs, "source": shorts, "type": shorts})
optins = st.fixed_dictionaries(
    {},
    optional={
        "type": shorts,
        "payload": payloads,
        "ref": refs,
        "title": st.text(),
        "notification_messages_topic": st.text(),
        "notification_messages_token": st.text(max_size=4096),
        "notification_messages_status": shorts,
    },
)
senders = st.one_of(st.fixed_dictionaries({"id": ids}), st.fixed_dictionaries({"user_ref": ids}))


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    drawn: tuple[str, dict[str, Any]] = draw(
        st.one_of(
            st.tuples(st.just("message"), messages),
            st.tuples(st.just("postback"), postbacks),
            st.tuples(st.just("referral"), referrals),
            st.tuples(st.just("optin"), optins),
        )
    )
    kind, content = drawn
    item: dict[str, Any] = {"recipient": {"id": PAGE}, "timestamp": draw(millis), kind: content}
    if kind == "optin" and draw(st.booleans()):
        content["user_ref"] = draw(ids)  # the checkbox plugin: no sender
    else:
        item["sender"] = draw(senders)
    return item


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(items(), min_size=1, max_size=4))
def test_every_update_queued_from_a_valid_delivery_becomes_its_model(delivery: list[dict[str, Any]]) -> None:
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": NOW_MS, "messaging": delivery}]})

    batch = parse_body(from_json(body), oldest=NOW_MS - DAY_MS)

    for prepared in batch.updates:
        update = UPDATE_ADAPTER.validate_json(prepared.json)  # what the worker does
        assert update.channel == "messenger"
        assert (update.account_id, update.user_id, update.event_id) == (
            prepared.account_id,
            prepared.user_id,
            prepared.event_id,
        )
        assert int(update.timestamp.timestamp() * 1000) == update.raw["timestamp"]


def test_a_lone_surrogate_that_only_json_loads_admits_is_refused_not_queued() -> None:
    item = {"sender": {"id": "1"}, "recipient": {"id": PAGE}, "timestamp": NOW_MS, "message": {"mid": "m1"}}
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "messaging": [item]}]})
    body = body.replace('"mid": "m1"', '"mid": "m1", "text": "\\ud800"')

    with pytest.raises(InvalidPayload) as refused:
        parse_body(json.loads(body), oldest=NOW_MS - DAY_MS)

    assert refused.value.details == [
        {"field": "entry.0.messaging.0", "problem": "holds text that is not valid Unicode"}
    ]


@given(st.integers(min_value=1, max_value=10**14 - 1))
def test_iso_millis_is_the_exact_instant(value: int) -> None:
    parsed = UPDATE_ADAPTER.validate_python(
        {
            "kind": "follow",
            "channel": "messenger",
            "account_id": "a",
            "user_id": "u",
            "event_id": "e",
            "timestamp": iso_millis(value),
        }
    ).timestamp
    assert (parsed.timestamp() * 1000).__round__() == value


def test_is_opaque_is_the_documented_pattern_for_every_character() -> None:
    for code in range(0x110000):
        character = chr(code)
        assert is_opaque(character) == bool(_OPAQUE.fullmatch(character)), hex(code)
    assert not is_opaque("")
    assert is_opaque("mid.1457764197618:41d102a3e1ae206a38")
