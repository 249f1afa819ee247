"""The Messenger client against a fake Graph API that checks requests the way the real one does."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.base import Recipient
from bot.channels.errors import (
    ConfigurationError,
    PermanentError,
    RateLimitedError,
    RecipientUnavailableError,
    RetryPolicy,
    TokenError,
    TransientError,
    WindowClosedError,
)
from bot.channels.messenger import (
    MAX_TEXT,
    GraphError,
    MessengerClient,
    error_for,
    parse_graph_error,
    recipient_field,
    split_text,
)
from bot.replies import Button, Buttons, Card, Image, QuickReplies, QuickReply, Reply, RequestPhone, Text
from bot.types import Channel, Message
from tests.fakes.graph import FakeGraph

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PSID = "24000000000000001"
CLIENT_TIMEOUT = 0.5
FAST = RetryPolicy(attempts=3, base=0.0, cap=0.0)
PAGE_ID = FakeGraph.page_id
TO = Recipient(channel="messenger", account_id=PAGE_ID, user_id=PSID)


async def no_sleep(_seconds: float) -> None:
    return None


class Interactions:
    """An in-memory interaction log (the app's real one lives in storage)."""

    def __init__(self, last: dict[str, datetime] | None = None) -> None:
        self.last = last or {}
        self.asked: list[Recipient] = []

    async def last_interaction(self, to: Recipient) -> datetime | None:
        self.asked.append(to)
        return self.last.get(to.user_id)


def update(age: timedelta) -> Message:
    return Message(
        channel=Channel.MESSENGER,
        account_id=PAGE_ID,
        user_id=PSID,
        event_id="mid.1",
        timestamp=NOW - age,
        text="hi",
    )


FRESH = update(timedelta(minutes=1))  # received a minute ago: the window is open


@pytest.fixture
def graph() -> FakeGraph:
    return FakeGraph(hang_seconds=CLIENT_TIMEOUT * 3)


@pytest.fixture
async def graph_base(aiohttp_server: ServerFactory, graph: FakeGraph) -> str:
    server = await aiohttp_server(graph.app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        yield client


@pytest.fixture
def interactions() -> Interactions:
    return Interactions()


@pytest.fixture
def client(
    http: httpx.AsyncClient, graph_base: str, graph: FakeGraph, interactions: Interactions
) -> MessengerClient:
    return MessengerClient(
        http,
        graph_base=graph_base,
        graph_version=graph.version,
        page_id=graph.page_id,
        page_access_token=graph.token,
        policy=FAST,
        interactions=interactions,
        clock=lambda: NOW,
        sleep=no_sleep,
    )


def _template(payload: dict[str, Any]) -> dict[str, Any]:
    return {"attachment": {"type": "template", "payload": payload}}


RENDERINGS: list[tuple[str, Reply, list[dict[str, Any]]]] = [
    ("text", Text("Xin chào"), [{"text": "Xin chào"}]),
    (
        "buttons",
        Buttons(
            "What next?",
            (
                Button.postback("Points", "POINTS"),
                Button.link("Site", "https://x.vn"),
                Button.call("Call", "+8490"),
            ),
        ),
        [
            _template(
                {
                    "template_type": "button",
                    "text": "What next?",
                    "buttons": [
                        {"type": "postback", "title": "Points", "payload": "POINTS"},
                        {"type": "web_url", "url": "https://x.vn", "title": "Site"},
                        {"type": "phone_number", "title": "Call", "payload": "+8490"},
                    ],
                }
            )
        ],
    ),
    (
        "quick_replies",
        QuickReplies("Size?", (QuickReply("S", "SIZE_S"), QuickReply("M", "SIZE_M"))),
        [
            {
                "text": "Size?",
                "quick_replies": [
                    {"content_type": "text", "title": "S", "payload": "SIZE_S"},
                    {"content_type": "text", "title": "M", "payload": "SIZE_M"},
                ],
            }
        ],
    ),
    (
        "request_phone",
        RequestPhone("Your phone number?", title="ignored on Messenger"),
        [{"text": "Your phone number?", "quick_replies": [{"content_type": "user_phone_number"}]}],
    ),
    (
        "card",
        Card("Voucher 50k", "Until Friday", "https://x.vn/v.png", (Button.postback("Use it", "USE:1"),)),
        [
            _template(
                {
                    "template_type": "generic",
                    "elements": [
                        {
                            "title": "Voucher 50k",
                            "subtitle": "Until Friday",
                            "image_url": "https://x.vn/v.png",
                            "buttons": [{"type": "postback", "title": "Use it", "payload": "USE:1"}],
                        }
                    ],
                }
            )
        ],
    ),
    (
        "card_bare",
        Card("Just a title"),
        [_template({"template_type": "generic", "elements": [{"title": "Just a title"}]})],
    ),
    (
        "image_url",
        Image(url="https://x.vn/qr.png"),
        [{"attachment": {"type": "image", "payload": {"url": "https://x.vn/qr.png", "is_reusable": True}}}],
    ),
    (
        "image_caption",
        Image(url="https://x.vn/qr.png", caption="Show this at the till"),
        [
            {"attachment": {"type": "image", "payload": {"url": "https://x.vn/qr.png", "is_reusable": True}}},
            {"text": "Show this at the till"},
        ],
    ),
    (
        "four_buttons_numbered",
        Buttons("Pick one", tuple(Button.postback(f"Option {n}", f"P{n}") for n in range(1, 5))),
        [{"text": "Pick one\n1. Option 1\n2. Option 2\n3. Option 3\n4. Option 4"}],
    ),
    (
        "long_titles_shortened",
        QuickReplies("Which?", (QuickReply("A title much longer than twenty", "LONG"),)),
        [
            {
                "text": "Which?",
                "quick_replies": [{"content_type": "text", "title": "A title much…", "payload": "LONG"}],
            }
        ],
    ),
]


@pytest.mark.parametrize(
    ("reply", "expected"), [(r, e) for _, r, e in RENDERINGS], ids=[f"{c}_case" for c, _, _ in RENDERINGS]
)
async def test_each_reply_kind_renders_to_the_documented_shape(
    client: MessengerClient,
    graph: FakeGraph,
    reply: Reply,
    expected: list[dict[str, Any]],
) -> None:
    await client.send(TO, [reply], in_reply_to=FRESH)

    assert graph.messages == expected
    assert all(body["recipient"] == {"id": PSID} for body in graph.sent)


async def test_the_token_goes_as_the_access_token_query_parameter_to_the_page_messages_path(
    client: MessengerClient, graph: FakeGraph
) -> None:
    await client.send(TO, [Text("hi")], in_reply_to=FRESH)

    (request,) = graph.requests
    assert request.method == "POST"
    assert request.path == f"/{graph.version}/{graph.page_id}/messages"
    assert request.query == {"access_token": graph.token}


async def test_a_long_text_is_split_at_whitespace_into_messages_within_the_limit(
    client: MessengerClient, graph: FakeGraph
) -> None:
    text = " ".join(f"word{n}" for n in range(900))  # about 6,000 characters

    await client.send(TO, [Text(text)], in_reply_to=FRESH)

    pieces = [m["text"] for m in graph.messages]
    assert len(pieces) == math.ceil(len(text) / MAX_TEXT)
    assert all(len(p) <= MAX_TEXT for p in pieces)
    assert " ".join(pieces) == text


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, ["short"]),
        ("aaaa bbbb cccc", 9, ["aaaa bbbb", "cccc"]),
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("line one\nline two", 10, ["line one", "line two"]),
        ("", 10, [""]),
    ],
    ids=["fits_case", "at_space_case", "no_space_case", "at_newline_case", "empty_case"],
)
def test_split_text(text: str, limit: int, expected: list[str]) -> None:
    assert split_text(text, limit) == expected


async def test_a_button_text_over_640_characters_goes_first_as_text(
    client: MessengerClient, graph: FakeGraph
) -> None:
    text = "x " * 500  # 1,000 characters

    await client.send(TO, [Buttons(text, (Button.postback("Ok", "OK"),))], in_reply_to=FRESH)

    first, second = graph.messages
    assert "text" in first
    template = second["attachment"]["payload"]
    assert template["template_type"] == "button" and len(template["text"]) <= 640


async def test_an_image_as_bytes_is_refused_before_anything_is_sent(
    client: MessengerClient, graph: FakeGraph
) -> None:
    with pytest.raises(PermanentError, match="URL"):
        await client.send(TO, [Text("Your QR:"), Image(data=b"\x89PNG")], in_reply_to=FRESH)

    assert graph.requests == []


async def test_replies_of_one_send_arrive_in_order(client: MessengerClient, graph: FakeGraph) -> None:
    await client.send(TO, [Text("one"), Text("two"), Card("three"), Text("four")], in_reply_to=FRESH)

    assert [m.get("text") or m["attachment"]["payload"]["elements"][0]["title"] for m in graph.messages] == [
        "one",
        "two",
        "three",
        "four",
    ]


# --------------------------------------------------------------------------- the 24 h window


async def test_a_reply_to_a_recent_update_is_a_response(
    client: MessengerClient, graph: FakeGraph, interactions: Interactions
) -> None:
    await client.send(TO, [Text("hi")], in_reply_to=FRESH)

    assert graph.sent[0]["messaging_type"] == "RESPONSE"
    assert "tag" not in graph.sent[0]
    assert interactions.asked == []


@pytest.mark.parametrize("log", [False, True], ids=["without_log_case", "old_log_case"])
async def test_outside_the_window_nothing_is_sent(
    client: MessengerClient, graph: FakeGraph, interactions: Interactions, log: bool
) -> None:
    if log:
        interactions.last[PSID] = NOW - timedelta(hours=30)

    with pytest.raises(WindowClosedError, match="24 h window closed"):
        await client.send(TO, [Text("hi")], in_reply_to=update(timedelta(hours=25)))

    assert graph.requests == []


async def test_without_an_update_the_interaction_log_opens_the_window_for_an_update_message(
    client: MessengerClient, graph: FakeGraph, interactions: Interactions
) -> None:
    interactions.last[PSID] = NOW - timedelta(hours=23)

    await client.send(TO, [Text("Your points arrived")])

    assert graph.sent[0]["messaging_type"] == "UPDATE"
    assert interactions.asked == [TO]


@pytest.mark.parametrize(
    "last", [None, NOW - timedelta(hours=24)], ids=["never_wrote_case", "exactly_24h_case"]
)
async def test_without_an_update_an_old_or_missing_interaction_closes_the_window(
    client: MessengerClient,
    graph: FakeGraph,
    interactions: Interactions,
    last: datetime | None,
) -> None:
    if last is not None:
        interactions.last[PSID] = last

    with pytest.raises(WindowClosedError):
        await client.send(TO, [Text("hi")])

    assert graph.requests == []


async def test_a_tagged_send_goes_outside_the_window(client: MessengerClient, graph: FakeGraph) -> None:
    await client.send_tagged(TO, [Text("A staff member answered you")], "HUMAN_AGENT")

    (body,) = graph.sent
    assert body["messaging_type"] == "MESSAGE_TAG"
    assert body["tag"] == "HUMAN_AGENT"
    assert body["message"] == {"text": "A staff member answered you"}


@pytest.mark.parametrize(
    "tag", ["PROMOTION", "human_agent", ""], ids=["unknown_case", "lowercase_case", "empty_case"]
)
async def test_a_tag_the_doc_does_not_list_is_refused(
    client: MessengerClient, graph: FakeGraph, tag: str
) -> None:
    with pytest.raises(ValueError, match="message tag"):
        await client.send_tagged(TO, [Text("hi")], tag)

    assert graph.requests == []


async def test_a_deprecated_tag_is_sent_with_a_warning(
    client: MessengerClient, graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="loyalty.bot.channels.messenger"):
        await client.send_tagged(TO, [Text("Your order shipped")], "POST_PURCHASE_UPDATE")

    assert graph.sent[0]["tag"] == "POST_PURCHASE_UPDATE"
    assert "POST_PURCHASE_UPDATE" in caplog.text


async def test_a_recipient_of_another_page_is_refused(client: MessengerClient, graph: FakeGraph) -> None:
    with pytest.raises(ConfigurationError, match="Page"):
        await client.send(Recipient("messenger", "another-page", PSID), [Text("hi")], in_reply_to=FRESH)

    assert graph.requests == []


# --------------------------------------------------------------------------- typing, profile


async def test_typing_on_is_a_sender_action_alone(client: MessengerClient, graph: FakeGraph) -> None:
    await client.typing_on(TO)

    assert graph.sent == [{"recipient": {"id": PSID}, "sender_action": "typing_on"}]


async def test_profile_returns_the_granted_fields(client: MessengerClient, graph: FakeGraph) -> None:
    graph.profiles[PSID] = {
        "id": PSID,
        "first_name": "Lan",
        "last_name": "Nguyễn",
        "profile_pic": "https://cdn/x.jpg",
        "locale": "vi_VN",
    }

    assert await client.profile(PSID) == {
        "first_name": "Lan",
        "last_name": "Nguyễn",
        "profile_pic": "https://cdn/x.jpg",
    }
    (request,) = graph.requests
    assert request.path == f"/{graph.version}/{PSID}"
    assert request.query["fields"] == "first_name,last_name,profile_pic"


async def test_profile_with_locale_when_granted(client: MessengerClient, graph: FakeGraph) -> None:
    graph.granted_fields.add("locale")
    graph.profiles[PSID] = {"id": PSID, "first_name": "Lan", "locale": "vi_VN"}

    assert await client.profile(PSID, fields=("first_name", "locale")) == {
        "first_name": "Lan",
        "locale": "vi_VN",
    }


async def test_profile_is_empty_when_the_api_returns_an_empty_object(client: MessengerClient) -> None:
    assert await client.profile("unknown-psid") == {}


async def test_profile_fields_without_permission_are_a_configuration_error(
    client: MessengerClient, graph: FakeGraph
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await client.profile(PSID, fields=("first_name", "locale"))

    assert caught.value.code == "100"
    assert getattr(caught.value, "subcode", None) == 2018247
    assert len(graph.requests) == 1


# --------------------------------------------------------------------------- failures and retries


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("5xx", TransientError), ("timeout", TransientError), ("rate_limited", RateLimitedError)],
    ids=["5xx_case", "timeout_case", "rate_limited_case"],
)
async def test_a_transient_failure_is_retried_and_the_message_delivered_once(
    client: MessengerClient,
    graph: FakeGraph,
    kind: Any,
    expected: type[Exception],
) -> None:
    graph.fail_next(1, kind)

    await client.send(TO, [Text("hi")], in_reply_to=FRESH)

    assert len(graph.requests) == 2
    assert graph.messages == [{"text": "hi"}]


async def test_transient_failures_become_final_when_the_attempts_are_used_up(
    client: MessengerClient, graph: FakeGraph
) -> None:
    graph.fail_next(FAST.attempts, "5xx")

    with pytest.raises(TransientError) as caught:
        await client.send(TO, [Text("hi")], in_reply_to=FRESH)

    assert len(graph.requests) == FAST.attempts
    assert graph.sent == []
    assert caught.value.code == "2"  # type: ignore[attr-defined]


async def test_a_connection_failure_is_transient(http: httpx.AsyncClient, graph: FakeGraph) -> None:
    client = MessengerClient(
        http,
        graph_base="http://127.0.0.1:9",  # discard port: nothing listens
        graph_version=graph.version,
        page_id=graph.page_id,
        page_access_token=graph.token,
        policy=FAST,
        sleep=no_sleep,
    )

    with pytest.raises(TransientError):
        await client.typing_on(TO)


@pytest.mark.parametrize(
    ("kind", "expected", "graph_ids"),
    [
        ("outside_window", WindowClosedError, ("10", 2018278)),
        ("blocked", RecipientUnavailableError, ("551", 1545041)),
        ("token", TokenError, ("190", None)),
    ],
    ids=["outside_window_case", "blocked_case", "token_case"],
)
async def test_a_permanent_error_is_typed_and_not_retried(
    client: MessengerClient,
    graph: FakeGraph,
    kind: Any,
    expected: type[PermanentError],
    graph_ids: tuple[str, int | None],
) -> None:
    graph.fail_next(1, kind)

    with pytest.raises(expected) as caught:
        await client.send(TO, [Text("hi")], in_reply_to=FRESH)

    assert len(graph.requests) == 1
    assert (caught.value.code, getattr(caught.value, "subcode", None)) == graph_ids


async def test_a_token_error_is_logged_with_a_hint_and_never_shows_the_token(
    http: httpx.AsyncClient,
    graph_base: str,
    graph: FakeGraph,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "EAAwrong-token-that-must-stay-secret"
    client = MessengerClient(
        http,
        graph_base=graph_base,
        graph_version=graph.version,
        page_id=graph.page_id,
        page_access_token=wrong,
        policy=FAST,
        clock=lambda: NOW,
        sleep=no_sleep,
    )

    with caplog.at_level(logging.DEBUG, logger="loyalty"), pytest.raises(TokenError) as caught:
        await client.send(TO, [Text("hi")], in_reply_to=FRESH)

    assert len(graph.requests) == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "FACEBOOK_PAGE_ACCESS_TOKEN" in errors[0].getMessage()
    # our loggers only: the fake Graph server's own access log prints request URLs, and is not ours
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("loyalty"))
    assert wrong not in ours
    assert wrong not in str(caught.value)
    assert wrong not in repr(client)


async def test_a_permanent_failure_mid_call_stops_the_rest(client: MessengerClient, graph: FakeGraph) -> None:
    graph.fail_next(1, "blocked", after=1)

    with pytest.raises(RecipientUnavailableError):
        await client.send(TO, [Text("one"), Text("two"), Text("three")], in_reply_to=FRESH)

    assert graph.messages == [{"text": "one"}]
    assert len(graph.requests) == 2


async def test_a_retried_reply_does_not_resend_the_ones_before_it(
    client: MessengerClient, graph: FakeGraph
) -> None:
    graph.fail_next(1, "5xx", after=1)

    await client.send(TO, [Text("one"), Text("two")], in_reply_to=FRESH)

    assert graph.messages == [{"text": "one"}, {"text": "two"}]
    assert len(graph.requests) == 3


ERROR_TABLE: list[tuple[int, int | None, int | None, type[Exception]]] = [
    (500, 2, None, TransientError),
    (400, 4, None, RateLimitedError),
    (400, 4, 2018354, RateLimitedError),
    (400, 613, 2534040, RateLimitedError),
    (400, 10, 2018278, WindowClosedError),
    (400, 10, 2534022, WindowClosedError),
    (400, 10, 2018065, WindowClosedError),
    (400, 10, 2018108, RecipientUnavailableError),
    (400, 551, None, RecipientUnavailableError),
    (400, 551, 1545041, RecipientUnavailableError),
    (400, 200, 1545041, RecipientUnavailableError),
    (400, 100, 2018001, RecipientUnavailableError),
    (400, 190, None, TokenError),
    (400, 200, None, ConfigurationError),
    (400, 10, None, ConfigurationError),
    (400, 10, 1893063, ConfigurationError),
    (400, 100, 2018247, ConfigurationError),
    (400, 100, None, PermanentError),
    (400, 100, 2018008, PermanentError),
    (400, 2018300, None, PermanentError),
    (502, None, None, TransientError),
    (429, None, None, RateLimitedError),
    (400, None, None, PermanentError),
]
# The most specific class each case must not be mistaken for.
_NARROWER: dict[type[Exception], tuple[type[Exception], ...]] = {
    TransientError: (RateLimitedError,),
    PermanentError: (RecipientUnavailableError, WindowClosedError, ConfigurationError, TokenError),
}


@pytest.mark.parametrize(
    ("status", "code", "subcode", "expected"),
    ERROR_TABLE,
    ids=[f"{code}_{subcode}_http{status}_case" for status, code, subcode, _ in ERROR_TABLE],
)
def test_graph_error_codes_map_to_typed_errors(
    status: int, code: int | None, subcode: int | None, expected: type[Exception]
) -> None:
    error = error_for(GraphError(status=status, message="m", code=code, subcode=subcode))

    assert isinstance(error, expected)
    assert not isinstance(error, _NARROWER.get(expected, ()))
    assert getattr(error, "code", None) == (str(code) if code is not None else None)
    assert getattr(error, "subcode", None) == subcode


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "error": {
                    "message": "x",
                    "type": "OAuthException",
                    "code": 190,
                    "error_subcode": 460,
                    "fbtrace_id": "T",
                }
            },
            GraphError(400, "x", 190, 460, "OAuthException", "T"),
        ),
        ({"error": {"code": "613", "is_transient": True}}, GraphError(400, "", 613, None, None, None, True)),
        ("<html>bad gateway</html>", GraphError(400, "HTTP 400 without a Graph error body")),
        (None, GraphError(400, "HTTP 400 without a Graph error body")),
    ],
    ids=["full_case", "string_code_case", "html_case", "empty_case"],
)
def test_parse_graph_error_tolerates_any_body(body: object, expected: GraphError) -> None:
    assert parse_graph_error(400, body) == expected


# --------------------------------------------------------------------------- the fake itself

BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("no_recipient", {"messaging_type": "RESPONSE", "message": {"text": "hi"}}),
    ("no_messaging_type", {"recipient": {"id": PSID}, "message": {"text": "hi"}}),
    ("bad_messaging_type", {"recipient": {"id": PSID}, "messaging_type": "PUSH", "message": {"text": "hi"}}),
    (
        "message_and_action",
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {"text": "hi"},
            "sender_action": "typing_on",
        },
    ),
    (
        "text_too_long",
        {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "x" * 2001}},
    ),
    (
        "four_buttons",
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": _template(
                {
                    "template_type": "button",
                    "text": "t",
                    "buttons": [{"type": "postback", "title": f"b{n}", "payload": "p"} for n in range(4)],
                }
            ),
        },
    ),
    (
        "button_text_too_long",
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": _template(
                {
                    "template_type": "button",
                    "text": "x" * 641,
                    "buttons": [{"type": "postback", "title": "b", "payload": "p"}],
                }
            ),
        },
    ),
    (
        "fourteen_quick_replies",
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "text": "t",
                "quick_replies": [
                    {"content_type": "text", "title": f"q{n}", "payload": "p"} for n in range(14)
                ],
            },
        },
    ),
    (
        "tag_without_message_tag",
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "tag": "HUMAN_AGENT",
            "message": {"text": "hi"},
        },
    ),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[f"{c}_case" for c, _ in BAD_BODIES])
async def test_the_fake_refuses_what_the_real_api_refuses(
    http: httpx.AsyncClient, graph_base: str, graph: FakeGraph, body: dict[str, Any]
) -> None:
    response = await http.post(
        f"{graph_base}/{graph.version}/me/messages", params={"access_token": graph.token}, json=body
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert graph.sent == []


@pytest.mark.parametrize("params", [{}, {"access_token": "wrong"}], ids=["missing_case", "wrong_case"])
async def test_the_fake_refuses_a_missing_or_wrong_token(
    http: httpx.AsyncClient, graph_base: str, graph: FakeGraph, params: dict[str, str]
) -> None:
    response = await http.post(
        f"{graph_base}/{graph.version}/me/messages",
        params=params,
        json={"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "hi"}},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 190


@pytest.mark.parametrize(
    ("_case", "user_id", "field"),
    [
        ("a psid", "24000000000000001", {"id": "24000000000000001"}),
        ("a checkbox opt-in", "user_ref:ref-abc-123", {"user_ref": "ref-abc-123"}),
    ],
)
def test_the_recipient_is_a_psid_or_a_user_ref(_case: str, user_id: str, field: dict[str, str]) -> None:
    assert recipient_field(user_id) == field
