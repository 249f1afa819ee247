"""The Messenger webhook: what each fixture queues (zulip's ``check_webhook`` idea), and what is refused.

Bodies are signed with the real formula (HMAC-SHA256 of the exact bytes, key: the app secret) and
posted to a real app; what was queued is read back from the real queue.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from app import keys
from app.factory import create_app
from app.settings import Settings
from bot import UPDATE_ADAPTER, Attachment, BaseUpdate, ContactShared, Message, OptIn, Postback, Referral
from storage.queue import EventQueue
from webhooks.common import COUNTERS
from webhooks.messenger import CONFIG, PATH, MessengerWebhookConfig, register
from webhooks.messenger.events import ALL_EVENT_TYPES, EVENT_MAP, IGNORED_EVENTS, WEBHOOK_FIELDS, kind_of
from webhooks.messenger.view import hmac_sha256, signature_problem

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

FIXTURES = Path(__file__).parents[2] / "webhooks" / "messenger" / "fixtures"
APP_SECRET = "test-app-secret-0123456789abcdef"
VERIFY_TOKEN = "verify-token-for-tests"
PAGE = "682498171943165"
PSID = "1254459154682919"
PSID2 = "2210339062411467"
T0 = datetime(2026, 5, 5, 3, 0, tzinfo=UTC)  # the fixtures' items are T0 + a few seconds
NOW = datetime(2026, 5, 5, 4, 0, tzinfo=UTC)
# fixture prefixes that are not a kind's webhook field
GROUP_PREFIXES = {"standby", "batch"}


# --------------------------------------------------------------------------- helpers


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_bytes(name))
    return data


def encode(data: object) -> bytes:
    return json.dumps(data).encode()


def stable_id(kind: str, user: str, millis: int, discriminator: str, account: str = PAGE) -> str:
    text = "\x1f".join((kind, user, account, str(millis), discriminator))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def millis(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp() * 1000)


async def post(client: Client, body: bytes, headers: dict[str, str] | None = None) -> ClientResponse:
    """POST ``body`` signed like Meta does, unless ``headers`` say otherwise."""
    sent = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)}
    sent.update(headers or {})
    return await client.post(PATH, data=body, headers=sent)


async def queued(client: Client) -> list[BaseUpdate]:
    queue: EventQueue = client.app[keys.QUEUE]
    deliveries = await queue.read("inspector", count=100, block_ms=10)
    return [UPDATE_ADAPTER.validate_python(d.data) for d in deliveries]


def counter(client: Client, name: str, **labels: str) -> int:
    return client.app[COUNTERS].get(name, source="messenger", **labels)


@pytest.fixture
async def make_client(aiohttp_client: ClientFactory, settings: Settings, redis: Redis) -> MakeClient:
    async def make(**config: Any) -> Client:
        app = create_app(settings, worker=False)  # no worker: these tests look at what is queued
        options: dict[str, Any] = {"now": lambda: NOW, **config}
        register(app, MessengerWebhookConfig(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, **options))
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


# --------------------------------------------------------------------------- one test per fixture


@dataclass(frozen=True)
class Expected:
    """One update a fixture must queue; ``raw`` is the fixture's item at ``item`` (entry, array, index)."""

    cls: type[BaseUpdate]
    seconds: float
    event_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    user: str = PSID
    item: tuple[int, str, int] = (0, "messaging", 0)

    def build(self, body: dict[str, Any]) -> BaseUpdate:
        entry, array, index = self.item
        return self.cls(
            channel="messenger",
            account_id=PAGE,
            user_id=self.user,
            event_id=self.event_id,
            timestamp=T0 + timedelta(seconds=self.seconds),
            raw=body["entry"][entry][array][index],
            **self.fields,
        )


REF = "checkin.shop-q1.7f3a9c"
EXPECTED: dict[str, list[Expected]] = {
    "messages__text": [
        Expected(Message, 1, "mid.1457764197618:41d102a3e1ae206a38", {"text": "hello, world!"}),
    ],
    "messages__vietnamese_text": [
        Expected(
            Message,
            2,
            "m_vT3nE8x0QmJp2Lk7rYw9sA-ViEtNaMeSeTeXt_00001",
            {"text": "Cho mình xem điểm tích lũy nhé 🎁"},
        ),
    ],
    "messages__image": [
        Expected(
            Message,
            3,
            "m_imageAttachment_0000000000000000000000000001",
            {
                "text": None,
                "attachments": (
                    Attachment(
                        type="image",
                        url="https://scontent.xx.fbcdn.net/v/t1.15752-9/receipt.jpg?_nc_cat=1&oh=abc&oe=6A0B1C2D",
                    ),
                ),
            },
        ),
    ],
    "messages__location": [
        Expected(
            Message,
            4,
            "m_locationAttachment_00000000000000000000000001",
            {
                "attachments": (
                    Attachment(
                        type="location",
                        url="https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.bing.com%2Fmaps%2F%3Flat%3D10.7798%26lng%3D106.699",
                        name="Nhà thờ Đức Bà",
                        latitude=10.7798,
                        longitude=106.699,
                    ),
                )
            },
        ),
    ],
    "messages__sticker": [
        Expected(
            Message,
            5,
            "m_stickerLike_000000000000000000000000000000001",
            {
                "attachments": (
                    Attachment(
                        type="sticker",
                        url="https://scontent.xx.fbcdn.net/v/t39.1997-6/851557_369239266556155_759568595_n.png",
                        sticker_id="369239263222822",
                    ),
                )
            },
        ),
    ],
    "messages__fallback": [
        Expected(
            Message,
            6,
            "m_fallbackLink_0000000000000000000000000000001",
            {
                "text": "https://example.vn/khuyen-mai",
                "attachments": (
                    Attachment(type="link", url="https://example.vn/khuyen-mai", name="Khuyến mãi tháng 5"),
                ),
            },
        ),
    ],
    "messages__quick_reply": [
        Expected(
            Postback,
            7,
            "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P",
            {"payload": "DEVELOPER_DEFINED_PAYLOAD_FOR_PICKING_GREEN", "title": "Green", "ref": None},
        ),
    ],
    "messages__user_phone_number": [
        Expected(
            ContactShared,
            8,
            "m_phoneQuickReply_000000000000000000000000000001",
            {"phone": "+84912345678", "name": None},
        ),
    ],
    "messages__user_email": [
        Expected(
            Message, 9, "m_emailQuickReply_000000000000000000000000000001", {"text": "lan.nguyen@example.vn"}
        ),
    ],
    "messages__echo": [],
    "messaging_postbacks__get_started": [
        Expected(
            Postback,
            11,
            "m_postbackGetStarted_0000000000000000000000000001",
            {"payload": "GET_STARTED", "title": "Get Started", "ref": None},
        ),
    ],
    "messaging_postbacks__with_referral": [
        Expected(
            Postback,
            12,
            stable_id("postback", PSID, millis(12), "GET_STARTED"),
            {"payload": "GET_STARTED", "title": None, "ref": REF},
        ),
        Expected(
            Referral,
            12,
            stable_id("postback", PSID, millis(12), "GET_STARTED") + ":ref",
            {"ref": REF, "source": "SHORTLINK"},
        ),
    ],
    "messaging_postbacks__button": [
        Expected(
            Postback,
            13,
            "m_postbackButton_00000000000000000000000000000001",
            {"payload": "menu:points", "title": "Điểm của tôi"},
        ),
    ],
    "messaging_referrals__m_me_link": [
        Expected(
            Referral,
            14,
            stable_id("referral", PSID, millis(14), f"{REF}\x1fSHORTLINK"),
            {"ref": REF, "source": "SHORTLINK"},
        ),
    ],
    "messaging_optins__checkbox": [
        Expected(
            OptIn,
            15,
            stable_id("optin", "user_ref:chk-5b1e0c3d9f2a4e6b", millis(15), "\x1fsignup-form\x1f\x1f\x1f"),
            {"ref": "signup-form", "topic": None, "token": None},
            user="user_ref:chk-5b1e0c3d9f2a4e6b",
        ),
    ],
    "messaging_optins__notification_messages": [
        Expected(
            OptIn,
            16,
            stable_id(
                "optin",
                PSID,
                millis(16),
                "notification_messages\x1fpromo-weekly\x1f6542876184538761234\x1fRESUME_NOTIFICATIONS\x1fNOT_REFRESHED",
            ),
            {"ref": "promo-weekly", "topic": "Ưu đãi hàng tuần", "token": "6542876184538761234"},
        ),
    ],
    "messaging_optins__notification_messages_m_me_link": [
        Expected(
            OptIn,
            17,
            stable_id(
                "optin",
                PSID,
                millis(17),
                "notification_messages\x1fqr-counter\x1f6542876184538769999\x1f\x1fNOT_REFRESHED",
            ),
            {"ref": "qr-counter", "topic": "Ưu đãi", "token": "6542876184538769999"},
        ),
    ],
    "message_deliveries__basic": [],
    "message_reads__basic": [],
    "message_reactions__basic": [],
    "message_edits__basic": [],
    "messaging_policy_enforcement__block": [],
    "messaging_policy_enforcement__block_hyphenated_key": [],
    "messaging_handovers__pass_thread_control": [],
    "messaging_handovers__take_thread_control": [],
    "messaging_handovers__request_thread_control": [],
    "messaging_handovers__app_roles": [],
    "standby__text": [
        Expected(
            Message,
            27,
            "m_standbyText_0000000000000000000000000000000001",
            {"text": "Cửa hàng mở cửa mấy giờ?"},
            item=(0, "standby", 0),
        ),
    ],
    "standby__echo": [],
    "batch__two_entries_three_items": [
        Expected(Message, 29, "m_batchText_0000000000000000000000000000000001", {"text": "điểm"}),
        Expected(
            Postback,
            30,
            "m_batchQuickReply_000000000000000000000000000001",
            {"payload": "menu:vouchers", "title": "Ưu đãi"},
            user=PSID2,
            item=(0, "messaging", 1),
        ),
        Expected(
            Postback,
            31.5,
            "m_batchPostback_00000000000000000000000000000001",
            {"payload": "GET_STARTED", "title": "Get Started", "ref": "checkin.shop-q3.11aa22"},
            user=PSID2,
            item=(1, "messaging", 0),
        ),
        Expected(
            Referral,
            31.5,
            "m_batchPostback_00000000000000000000000000000001:ref",
            {"ref": "checkin.shop-q3.11aa22", "source": "SHORTLINK"},
            user=PSID2,
            item=(1, "messaging", 0),
        ),
    ],
}
# fixtures that queue nothing, and the label they are counted under in webhook_ignored_events_total
IGNORED: dict[str, str] = {
    "messages__echo": "message_echo",
    "standby__echo": "message_echo",
    "message_deliveries__basic": "delivery",
    "message_reads__basic": "read",
    "message_reactions__basic": "reaction",
    "message_edits__basic": "message_edit",
    "messaging_policy_enforcement__block": "policy_enforcement",
    "messaging_policy_enforcement__block_hyphenated_key": "policy-enforcement",
    "messaging_handovers__pass_thread_control": "pass_thread_control",
    "messaging_handovers__take_thread_control": "take_thread_control",
    "messaging_handovers__request_thread_control": "request_thread_control",
    "messaging_handovers__app_roles": "app_roles",
}


@pytest.mark.parametrize(("_case", "expected"), list(EXPECTED.items()), ids=list(EXPECTED))
async def test_each_fixture_queues_exactly_its_updates(
    _case: str, expected: list[Expected], client: Client
) -> None:
    # given a fixture exactly as Meta sends it, signed over its exact bytes
    body = fixture_bytes(_case)

    # when it is delivered
    response = await post(client, body)

    # then it is acknowledged and exactly its updates are queued, in order
    assert response.status == 200
    assert await response.json() == {"ok": True}
    assert await queued(client) == [e.build(json.loads(body)) for e in expected]
    if _case in IGNORED:
        assert counter(client, "webhook_ignored_events_total", event=IGNORED[_case]) == 1


def test_every_fixture_has_a_test_and_every_kind_a_fixture() -> None:
    names = {path.stem for path in FIXTURES.glob("*.json")}
    kinds_in_fixtures: set[str | None] = set()
    for name in sorted(names):
        prefix, sep, variant = name.partition("__")
        assert sep and variant, f"{name}: fixtures are named <field>__<variant>.json"
        assert prefix in {*WEBHOOK_FIELDS.values(), *GROUP_PREFIXES}, (
            f"{name}: unknown webhook field {prefix!r}"
        )
        body = fixture(name)
        for entry in body["entry"]:
            for item in [*entry.get("messaging", []), *entry.get("standby", [])]:
                kind = kind_of(item)
                assert kind in ALL_EVENT_TYPES, f"{name}: an item of a kind the table does not know"
                assert prefix in GROUP_PREFIXES or WEBHOOK_FIELDS[kind] == prefix, f"{name}: holds a {kind}"
                kinds_in_fixtures.add(kind)

    assert names == set(EXPECTED), "every fixture needs an expectation (and every expectation a fixture)"
    assert set(IGNORED) <= names
    assert set(EVENT_MAP) | set(IGNORED_EVENTS) == set(ALL_EVENT_TYPES) == set(WEBHOOK_FIELDS)
    missing = set(ALL_EVENT_TYPES) - kinds_in_fixtures
    assert not missing, f"handled or ignored kinds without a fixture: {sorted(missing)}"


# --------------------------------------------------------------------------- verification (GET)


async def test_verification_echoes_the_challenge(client: Client) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}

    response = await client.get(PATH, params=params)

    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == "1158201444"


@pytest.mark.parametrize(
    ("_case", "params", "status"),
    [
        ("wrong token", {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}, 403),
        ("no token", {"hub.mode": "subscribe", "hub.challenge": "1"}, 403),
        (
            "wrong mode",
            {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
            403,
        ),
        ("no mode", {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, 403),
        (
            "non-numeric challenge",
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "<script>"},
            400,
        ),
        (
            "challenge too long",
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1" * 65},
            400,
        ),
        ("no challenge", {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, 400),
    ],
)
async def test_verification_is_refused(
    _case: str, params: dict[str, str], status: int, client: Client
) -> None:
    response = await client.get(PATH, params=params)

    assert response.status == status
    body = await response.json()
    assert body["error"]["code"] == ("verification_failed" if status == 403 else "invalid_challenge")


# --------------------------------------------------------------------------- signature (POST)


@pytest.mark.parametrize(
    ("_case", "headers", "reason"),
    [
        ("empty header", {"X-Hub-Signature-256": ""}, "malformed"),
        (
            "wrong secret",
            {"X-Hub-Signature-256": sign(fixture_bytes("messages__text"), "other-secret")},
            "mismatch",
        ),
        ("not hex", {"X-Hub-Signature-256": "sha256=" + "z" * 64}, "malformed"),
        ("sha1 in the sha256 header", {"X-Hub-Signature-256": "sha1=" + "0" * 40}, "malformed"),
    ],
)
async def test_a_bad_signature_is_401_and_nothing_is_queued(
    _case: str, headers: dict[str, str], reason: str, client: Client
) -> None:
    response = await post(client, fixture_bytes("messages__text"), headers)

    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_signature"
    assert await queued(client) == []
    assert counter(client, "webhook_signature_failures_total", reason=reason) == 1


_BODY = b'{"object":"page","entry":[]}'
_DIGEST = hmac.new(APP_SECRET.encode(), _BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("_case", "header", "problem"),
    [
        ("Meta's form: lowercase hex", "sha256=" + _DIGEST, None),
        ("uppercase hex", "sha256=" + _DIGEST.upper(), None),
        ("surrounding spaces", f" sha256={_DIGEST} ", None),
        ("one digit changed", "sha256=" + _DIGEST[:-1] + ("0" if _DIGEST[-1] != "0" else "1"), "mismatch"),
        ("non-ASCII at the right length", "sha256=" + _DIGEST[:-1] + "é", "malformed"),
        ("another prefix at the right length", "sha512=" + _DIGEST, "malformed"),
    ],
)
def test_signature_forms(_case: str, header: str, problem: str | None) -> None:
    # the usual form is compared as text, every other form through the regex: both must agree
    assert signature_problem(APP_SECRET, _BODY, header, None) == problem


async def test_no_signature_header_is_401(client: Client) -> None:
    response = await client.post(PATH, data=fixture_bytes("messages__text"))

    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_signature"
    assert await queued(client) == []
    assert counter(client, "webhook_signature_failures_total", reason="missing") == 1


async def test_a_body_altered_after_signing_is_401(client: Client) -> None:
    # given a signature of the original body, and one byte changed afterwards
    original = fixture_bytes("messages__text")
    altered = original.replace(b"hello, world!", b"hello, world?")

    response = await client.post(PATH, data=altered, headers={"X-Hub-Signature-256": sign(original)})

    assert response.status == 401
    assert await queued(client) == []


async def test_only_the_legacy_sha1_signature_is_401(client: Client) -> None:
    body = fixture_bytes("messages__text")
    legacy = "sha1=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()

    response = await client.post(PATH, data=body, headers={"X-Hub-Signature": legacy})

    assert response.status == 401
    assert await queued(client) == []
    assert counter(client, "webhook_signature_failures_total", reason="legacy_only") == 1


async def test_the_signature_covers_the_exact_bytes_not_the_parsed_json(client: Client) -> None:
    # given the Vietnamese fixture as sent (\u-escaped) and the same JSON re-serialized as UTF-8
    escaped = fixture_bytes("messages__vietnamese_text")
    reserialized = json.dumps(json.loads(escaped), ensure_ascii=False).encode()

    # when the re-serialized body carries the signature of the original bytes
    refused = await client.post(PATH, data=reserialized, headers={"X-Hub-Signature-256": sign(escaped)})
    accepted = await post(client, escaped)

    # then only the exact bytes pass
    assert refused.status == 401
    assert accepted.status == 200


# --------------------------------------------------------------------------- bad bodies


async def test_malformed_json_is_400(client: Client) -> None:
    response = await post(client, b'{"object": "page", "entry": [')

    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_json"
    assert await queued(client) == []


async def test_deeply_nested_json_is_400_not_500(client: Client) -> None:
    response = await post(client, b"[" * 100_000 + b"]" * 100_000)

    assert response.status == 400
    assert await queued(client) == []


def _batch_with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """The batch fixture (whose other items are fine) with one value replaced."""
    body = copy.deepcopy(fixture("batch__two_entries_three_items"))
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("_case", "body", "field"),
    [
        (
            "operator in sender id",
            _batch_with(("entry", 0, "messaging", 1, "sender", "id"), {"$ne": ""}),
            "entry.0.messaging.1.sender.id",
        ),
        (
            "operator in recipient id",
            _batch_with(("entry", 1, "messaging", 0, "recipient", "id"), {"$gt": ""}),
            "entry.1.messaging.0.recipient.id",
        ),
        ("operator in entry id", _batch_with(("entry", 1, "id"), {"$ne": None}), "entry.1.id"),
        (
            "operator in mid",
            _batch_with(("entry", 0, "messaging", 0, "message", "mid"), {"$exists": True}),
            "entry.0.messaging.0.message.mid",
        ),
        (
            "text not a string",
            _batch_with(("entry", 0, "messaging", 0, "message", "text"), 42),
            "entry.0.messaging.0.message.text",
        ),
        (
            "payload not a string",
            _batch_with(("entry", 1, "messaging", 0, "postback", "payload"), ["GET_STARTED"]),
            "entry.1.messaging.0.postback.payload",
        ),
        (
            "timestamp not a number",
            _batch_with(("entry", 0, "messaging", 0, "timestamp"), "yesterday"),
            "entry.0.messaging.0.timestamp",
        ),
        (
            "boolean id",
            _batch_with(("entry", 0, "messaging", 0, "sender", "id"), True),
            "entry.0.messaging.0.sender.id",
        ),
        (
            "id with spaces",
            _batch_with(("entry", 0, "messaging", 0, "sender", "id"), "1 OR 1=1"),
            "entry.0.messaging.0.sender.id",
        ),
        (
            "no sender",
            _batch_with(("entry", 0, "messaging", 0, "sender"), {}),
            "entry.0.messaging.0.sender.id",
        ),
        ("item not an object", _batch_with(("entry", 0, "messaging", 1), "message"), "entry.0.messaging.1"),
        ("entry not a list", _batch_with(("entry",), {"id": PAGE}), "entry"),
        ("object not a string", _batch_with(("object",), ["page"]), "object"),
        ("body not an object", ["page"], "body"),
    ],
)
async def test_a_malformed_delivery_is_400_and_nothing_of_it_is_queued(
    _case: str, body: object, field: str, client: Client
) -> None:
    # given a delivery in which every other item is fine
    response = await post(client, encode(body))

    # then the whole delivery is refused, naming the problem
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_request"
    fields = [detail["field"] for detail in error["details"]]
    assert field in fields, fields
    assert await queued(client) == []


async def test_a_body_over_1_mib_is_413(client: Client) -> None:
    body = encode({"object": "page", "entry": [], "padding": "x" * (1024 * 1024)})

    response = await post(client, body)

    assert response.status == 413
    assert await queued(client) == []


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    """``body`` sent chunked, ``size`` bytes at a time, the loop turning between pieces (the server's
    handler starts before the body has arrived whole)."""
    for start in range(0, len(body), size):
        await asyncio.sleep(0.005)
        yield body[start : start + size]


async def test_a_delivery_arriving_in_pieces_is_read_whole(client: Client) -> None:
    body = fixture_bytes("messages__text")
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)}

    response = await client.post(PATH, data=pieces(body, 40), headers=headers)

    assert response.status == 200
    assert [update.event_id for update in await queued(client)] == [
        fixture("messages__text")["entry"][0]["messaging"][0]["message"]["mid"]
    ]


async def test_a_body_over_1_mib_arriving_in_pieces_is_413(client: Client) -> None:
    body = encode({"object": "page", "entry": [], "padding": "x" * (1024 * 1024)})
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)}

    response = await client.post(PATH, data=pieces(body, 256 * 1024), headers=headers)

    assert response.status == 413
    assert await queued(client) == []


# --------------------------------------------------------------------------- delivery semantics


@pytest.mark.parametrize(
    ("_case", "name"),
    [
        ("with a mid", "messages__text"),
        ("without a mid (stable id)", "messaging_postbacks__with_referral"),
        ("opt-in without sender", "messaging_optins__checkbox"),
    ],
)
async def test_the_same_delivery_three_times_is_queued_once(_case: str, name: str, client: Client) -> None:
    body = fixture_bytes(name)

    statuses = [(await post(client, body)).status for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert len(await queued(client)) == len(EXPECTED[name])
    assert counter(client, "webhook_updates_total", outcome="duplicate") == 2 * len(EXPECTED[name])


async def test_a_batch_queues_every_item_of_every_entry_in_order(client: Client) -> None:
    response = await post(client, fixture_bytes("batch__two_entries_three_items"))

    assert response.status == 200
    updates = await queued(client)
    assert [(type(u).__name__, u.user_id) for u in updates] == [
        ("Message", PSID),
        ("Postback", PSID2),
        ("Postback", PSID2),
        ("Referral", PSID2),
    ]


async def test_a_stale_item_is_skipped_and_counted(client: Client) -> None:
    # given a delivery with one item from 25 hours ago (beyond the dedupe window) and one fresh
    body = fixture("batch__two_entries_three_items")
    body["entry"][0]["messaging"][0]["timestamp"] = int((NOW - timedelta(hours=25)).timestamp() * 1000)

    response = await post(client, encode(body))

    assert response.status == 200
    assert [u.event_id for u in await queued(client)] == [
        "m_batchQuickReply_000000000000000000000000000001",
        "m_batchPostback_00000000000000000000000000000001",
        "m_batchPostback_00000000000000000000000000000001:ref",
    ]
    assert counter(client, "webhook_stale_events_total", event="message") == 1


async def test_a_replayed_old_delivery_is_skipped(make_client: MakeClient) -> None:
    # given a correctly signed body replayed two days later
    client = await make_client(now=lambda: NOW + timedelta(days=2))

    response = await post(client, fixture_bytes("messaging_postbacks__with_referral"))

    assert response.status == 200
    assert await queued(client) == []
    assert counter(client, "webhook_stale_events_total", event="postback") == 1


async def test_an_unavailable_queue_is_503_and_the_resend_is_queued(client: Client) -> None:
    # given a queue whose stream key cannot take entries
    queue: EventQueue = client.app[keys.QUEUE]
    await queue.redis.set(queue.stream, "not a stream")
    body = fixture_bytes("batch__two_entries_three_items")

    refused = await post(client, body)
    await queue.redis.delete(queue.stream)
    resent = await post(client, body)

    assert refused.status == 503
    assert (await refused.json())["error"]["code"] == "queue_unavailable"
    assert resent.status == 200
    assert len(await queued(client)) == 4


async def test_an_unknown_kind_is_counted_and_the_rest_is_queued(client: Client) -> None:
    body = fixture("batch__two_entries_three_items")
    unknown = {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": millis(30), "game_play": {}}
    body["entry"][0]["messaging"].insert(1, unknown)

    response = await post(client, encode(body))

    assert response.status == 200
    assert len(await queued(client)) == 4
    assert counter(client, "webhook_unknown_events_total", event="game_play") == 1


async def test_another_object_is_acknowledged_and_ignored(client: Client) -> None:
    # Instagram's webhooks are not ours; a 4xx would only make Meta retry, then unsubscribe the app
    body = {"object": "instagram", "entry": [{"id": "17841400000000000", "time": millis(1), "messaging": []}]}

    response = await post(client, encode(body))

    assert response.status == 200
    assert await queued(client) == []
    assert counter(client, "webhook_ignored_events_total", event="object_instagram") == 1


async def test_page_feed_changes_are_acknowledged_and_ignored(client: Client) -> None:
    change = {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "1_2"}}
    body = {"object": "page", "entry": [{"id": PAGE, "time": millis(1), "changes": [change]}]}

    response = await post(client, encode(body))

    assert response.status == 200
    assert await queued(client) == []
    assert counter(client, "webhook_ignored_events_total", event="changes") == 1


async def test_items_of_another_page_are_skipped_when_a_page_is_configured(make_client: MakeClient) -> None:
    client = await make_client(page_id="999999999999999")

    response = await post(client, fixture_bytes("messages__text"))

    assert response.status == 200
    assert await queued(client) == []
    assert counter(client, "webhook_ignored_events_total", event="other_page") == 1
    assert client.app[CONFIG].page_id == "999999999999999"


async def test_a_ref_longer_than_ours_is_dropped_but_the_postback_is_kept(client: Client) -> None:
    body = fixture("messaging_postbacks__with_referral")
    body["entry"][0]["messaging"][0]["postback"]["referral"]["ref"] = "r" * 2000

    response = await post(client, encode(body))

    assert response.status == 200
    (update,) = await queued(client)
    assert isinstance(update, Postback)
    assert update.ref is None
    assert counter(client, "webhook_ignored_events_total", event="oversized_ref") == 1


async def test_a_text_longer_than_an_update_holds_is_cut_and_kept_whole_in_raw(client: Client) -> None:
    body = fixture("messages__text")
    body["entry"][0]["messaging"][0]["message"]["text"] = "đ" * 5000

    response = await post(client, encode(body))

    assert response.status == 200
    (update,) = await queued(client)
    assert isinstance(update, Message)
    assert update.text == "đ" * 4096
    assert update.raw["message"]["text"] == "đ" * 5000


async def test_a_quick_reply_titled_like_its_payload_but_not_a_phone_stays_a_postback(client: Client) -> None:
    body = fixture("messages__quick_reply")
    body["entry"][0]["messaging"][0]["message"]["text"] = "OK"
    body["entry"][0]["messaging"][0]["message"]["quick_reply"]["payload"] = "OK"

    response = await post(client, encode(body))

    assert response.status == 200
    (update,) = await queued(client)
    assert isinstance(update, Postback)
    assert (update.payload, update.title) == ("OK", "OK")


@given(st.text(min_size=1, max_size=200), st.binary(max_size=2000))
def test_the_signature_is_the_standard_hmac_sha256(key: str, message: bytes) -> None:
    # keys shorter and longer than SHA-256's 64-byte block, any body
    assert hmac_sha256(key, message) == hmac.new(key.encode(), message, hashlib.sha256).digest()


def test_the_oldest_item_taken_follows_the_configured_clock() -> None:
    pinned = datetime(2026, 5, 5, 3, 0, tzinfo=UTC)
    config = MessengerWebhookConfig(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, now=lambda: pinned)

    assert config.oldest_millis() == int(pinned.timestamp() * 1000) - config.max_age_seconds * 1000


def test_the_default_clock_is_the_wall_clock() -> None:
    config = MessengerWebhookConfig(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)

    assert abs(config.oldest_millis() + config.max_age_seconds * 1000 - now_ms) < 5_000


def test_the_config_refuses_empty_secrets() -> None:
    with pytest.raises(ValueError, match="FACEBOOK_APP_SECRET"):
        MessengerWebhookConfig(app_secret="", verify_token=VERIFY_TOKEN)
    with pytest.raises(ValueError, match="FACEBOOK_VERIFY_TOKEN"):
        MessengerWebhookConfig(app_secret=APP_SECRET, verify_token="")


async def test_a_lone_surrogate_escape_is_400_and_nothing_is_queued(client: Client) -> None:
    # json.loads admits "\ud800" (pydantic-core's parser does not), but no UTF-8 text can hold it: the
    # update could never be written to the queue, so the delivery is refused before the ack
    body = fixture_bytes("messages__text").replace(b'"text": "', b'"text": "\\ud800', 1)
    assert b"\\ud800" in body

    response = await post(client, body)

    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_request"
    assert await queued(client) == []


async def test_nan_in_a_field_we_do_not_read_is_queued_as_null(client: Client) -> None:
    body = fixture_bytes("messages__text").replace(b'"message": {', b'"extra": NaN, "message": {', 1)
    assert b"NaN" in body

    response = await post(client, body)

    assert response.status == 200
    (update,) = await queued(client)
    assert update.raw["extra"] is None


async def test_ids_at_the_wires_limits_are_queued_and_become_updates(client: Client) -> None:
    # the longest ids, mid and payload the wire admits still fit the update models the worker builds
    body = fixture("messaging_postbacks__with_referral")
    item = body["entry"][0]["messaging"][0]
    item["sender"] = {"user_ref": "u" * 100}
    item["recipient"]["id"] = body["entry"][0]["id"] = "9" * 100
    item["postback"].update(mid="m" * 240, payload="p" * 1000)
    item["postback"]["referral"]["ref"] = "r" * 1000

    response = await post(client, encode(body))

    assert response.status == 200
    postback, referral = await queued(client)
    assert isinstance(postback, Postback) and isinstance(referral, Referral)
    assert postback.user_id == "user_ref:" + "u" * 100
    assert referral.event_id == "m" * 240 + ":ref"
    assert (postback.payload, referral.ref) == ("p" * 1000, "r" * 1000)
