"""The Zalo OA webhook: one test per fixture (what it queues, exactly), then every way a delivery is refused.

Fixtures are the payload shapes of ``zalo.md`` section 1, posted byte for byte with a signature made by
Zalo's formula; the clock is set to each fixture's own ``timestamp`` so old examples are not replays.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from app import keys
from app.factory import create_app
from app.settings import Settings
from bot import UPDATE_ADAPTER
from bot.channels import zalo_payload
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
from loyalty.clock import FrozenClock
from storage.queue import EventQueue
from tests.webhooks.zalo_helpers import (
    APP_ID,
    DELETE,
    OA_ID,
    OA_SECRET_KEY,
    PATH,
    USER_ID,
    RecordingRecorder,
    compact,
    event_at,
    fixture_names,
    from_ms,
    load_fixture,
    mac,
    signed_headers,
    to_ms,
)
from webhooks.common import COUNTERS, Counters
from webhooks.zalo import (
    ALL_EVENT_TYPES,
    IGNORED_EVENTS,
    ZNS_EVENT_MAP,
    ZNS_STATUS,
    ZaloWebhookConfig,
    ZnsDeliveryStatus,
    ZnsStatus,
    register,
)

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONFIG = ZaloWebhookConfig(app_id=APP_ID, oa_secret_key=OA_SECRET_KEY)


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def recorder() -> RecordingRecorder:
    return RecordingRecorder()


async def make_client(
    aiohttp_client: ClientFactory,
    settings: Settings,
    clock: FrozenClock,
    recorder: RecordingRecorder | None,
) -> Client:
    # no in-process worker: these tests look at what is queued
    app = create_app(settings, worker=False)
    register(app, CONFIG, clock=clock.now)
    if recorder is not None:
        app[ZNS_STATUS] = recorder
    return await aiohttp_client(app)


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory,
    settings: Settings,
    redis: Redis,
    clock: FrozenClock,
    recorder: RecordingRecorder,
) -> Client:
    return await make_client(aiohttp_client, settings, clock, recorder)


async def queued(client: Client) -> list[BaseUpdate]:
    queue: EventQueue = client.app[keys.QUEUE]
    deliveries = await queue.read("inspector", count=100, block_ms=10)
    return [UPDATE_ADAPTER.validate_python(d.data) for d in deliveries]


async def post_event(
    client: Client,
    event: dict[str, Any],
    *,
    secret: str = OA_SECRET_KEY,
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    body = compact(event)
    return await client.post(
        PATH, data=body, headers=signed_headers(body, str(event["timestamp"]), secret=secret, extra=headers)
    )


def counter(client: Client, name: str, **labels: str) -> int:
    return client.app[COUNTERS].get(name, source="zalo", **labels)


# ---------------------------------------------------------------------------------------- expectations
@dataclass(frozen=True)
class Expect:
    updates: tuple[BaseUpdate, ...] = ()
    zns: tuple[ZnsDeliveryStatus, ...] = ()
    ignored: bool = False


def hashed_id(event_name: str, user_id: str, timestamp: str) -> str:
    return hashlib.sha256(f"{event_name}:{user_id}:{timestamp}".encode()).hexdigest()[:32]


def update(
    fixture_name: str, kind: type[BaseUpdate], /, *, event_id: str | None = None, **fields: Any
) -> BaseUpdate:
    """The update fixture ``name`` must become: from the user to the OA, stamped with its timestamp."""
    fixture = load_fixture(fixture_name)
    data = fixture.data
    return kind(
        channel=Channel.ZALO,
        account_id=OA_ID,
        user_id=USER_ID,
        event_id=event_id or data["message"]["msg_id"],
        timestamp=fixture.sent_at,
        raw=data,
        **fields,
    )


def message(name: str, text: str | None, *attachments: Attachment) -> Expect:
    return Expect(updates=(update(name, Message, text=text, attachments=attachments),))


EXPECTED: dict[str, Expect] = {
    "follow__oa_profile": Expect(
        updates=(
            update("follow__oa_profile", Follow, event_id=hashed_id("follow", USER_ID, "1725608725618")),
        )
    ),
    "unfollow__basic": Expect(
        updates=(
            update("unfollow__basic", Unfollow, event_id=hashed_id("unfollow", USER_ID, "1787296217225")),
        )
    ),
    "user_send_text__plain": message("user_send_text__plain", "điểm"),
    "user_send_text__vietnamese": message(
        "user_send_text__vietnamese", "Cho mình hỏi còn bao nhiêu điểm ạ? Cảm ơn shop nhiều 😊"
    ),
    "user_send_text__postback_payload": Expect(
        updates=(update("user_send_text__postback_payload", Postback, payload="points"),)
    ),
    "user_send_image__with_caption": message(
        "user_send_image__with_caption",
        "Hoá đơn hôm nay",
        Attachment(
            type=AttachmentType.IMAGE,
            url="https://s240-ava-talk.zadn.vn/5/e/0/4/1/240/3f8a1c2b9d7e4f60a1b2c3d4e5f60718.jpg",
        ),
    ),
    "user_send_gif__basic": message(
        "user_send_gif__basic",
        None,  # an empty caption is no text
        Attachment(type=AttachmentType.IMAGE, url="https://zalo-api.zadn.vn/gif/2b6e4f1a.gif"),
    ),
    "user_send_sticker__basic": message(
        "user_send_sticker__basic",
        None,
        Attachment(
            type=AttachmentType.STICKER,
            sticker_id="bd2ba8b1c9f420aa79e5",
            url="https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid=46991&size=130",
        ),
    ),
    "user_send_location__basic": message(
        "user_send_location__basic",
        None,
        Attachment(type=AttachmentType.LOCATION, latitude=10.7642473, longitude=106.6564314),
    ),
    "user_send_link__basic": message(
        "user_send_link__basic",
        "https://shop.example/menu",
        Attachment(type=AttachmentType.LINK, url="https://shop.example/menu"),
    ),
    "user_send_video__basic": message(
        "user_send_video__basic",
        None,
        Attachment(type=AttachmentType.VIDEO, url="https://video-talk.zadn.vn/7c1e.mp4"),
    ),
    "user_send_audio__basic": message(
        "user_send_audio__basic",
        None,
        Attachment(type=AttachmentType.AUDIO, url="https://voice-talk.zadn.vn/3a9f.aac"),
    ),
    "user_send_file__basic": message(
        "user_send_file__basic",
        None,
        Attachment(
            type=AttachmentType.FILE,
            url="https://f21-zpc.zdn.vn/6d2b/hoa-don-0711.pdf",
            name="hoa-don-0711.pdf",
        ),
    ),
    "user_submit_info__flat": Expect(
        updates=(
            update(
                "user_submit_info__flat",
                ContactShared,
                event_id=hashed_id("user_submit_info", USER_ID, "1787211017225"),
                phone="84912345678",
                name="Nguyễn Văn An",
            ),
        )
    ),
    "user_submit_info__full_address": Expect(
        updates=(
            update(
                "user_submit_info__full_address",
                ContactShared,
                event_id=hashed_id("user_submit_info", USER_ID, "1787211117225"),
                phone="0912345678",  # as received: the loyalty core normalises
                name="Nguyễn Văn An",
            ),
        )
    ),
    "user_received_message__zns": Expect(
        zns=(
            ZnsDeliveryStatus(
                msg_id="a4d0243feee163bd3af2",
                tracking_id="campaign:winback-45:2026-11-23:cus_8f2a",
                status=ZnsStatus.RECEIVED,
                delivered_at=from_ms("1602960467432"),
            ),
        )
    ),
} | {
    name: Expect(ignored=True)
    for name in fixture_names()
    if load_fixture(name).event_name in IGNORED_EVENTS and not load_fixture(name).is_zns
}


# ---------------------------------------------------------------------------------------- one per fixture
@pytest.mark.parametrize("fixture_name", fixture_names())
async def test_each_fixture_queues_exactly_its_updates(
    fixture_name: str, client: Client, clock: FrozenClock, recorder: RecordingRecorder
) -> None:
    # given a delivery exactly as Zalo would send it, just after its own timestamp
    fixture = load_fixture(fixture_name)
    expect = EXPECTED[fixture_name]
    clock.set(fixture.sent_at + timedelta(seconds=1))

    # when it is posted, signed
    response = await client.post(
        PATH,
        data=fixture.body,
        headers={**fixture.headers, "X-ZEvent-Signature": f"mac={mac(fixture.body, fixture.timestamp)}"},
    )

    # then it is acknowledged, and exactly the expected updates (or statuses) came out of it
    assert response.status == 200, await response.text()
    assert await response.json() == {"ok": True}
    assert await queued(client) == list(expect.updates)
    assert recorder.calls == ([list(expect.zns)] if expect.zns else [])
    assert counter(client, "webhook_ignored_events_total", event=fixture.event_name) == int(expect.ignored)
    assert counter(client, "webhook_unknown_events_total", event=fixture.event_name) == 0


def test_every_event_type_has_a_fixture_and_every_fixture_a_known_event() -> None:
    fixtures = [load_fixture(name) for name in fixture_names()]
    oa_events = {f.event_name for f in fixtures if not f.is_zns}
    zns_events = {f.event_name for f in fixtures if f.is_zns}

    assert sorted(ALL_EVENT_TYPES - oa_events) == [], "event types without a fixture"
    assert sorted(oa_events - ALL_EVENT_TYPES) == [], "fixtures of events the webhook does not declare"
    assert sorted(set(ZNS_EVENT_MAP) ^ zns_events) == [], "ZNS events and ZNS fixtures differ"
    for fixture in fixtures:
        assert fixture.name.split("__")[0] == fixture.event_name, (
            f"{fixture.name} is named after another event"
        )
        assert "__" in fixture.name, f"{fixture.name} is not named <event>__<variant>"
    assert sorted(EXPECTED) == fixture_names(), "every fixture needs an expectation, and only fixtures"


# ---------------------------------------------------------------------------------------- signature
def _tamper(body: bytes) -> bytes:
    return body.replace("điểm".encode(), b"diem")


@pytest.mark.parametrize(
    ("_case", "headers"),
    [
        ("missing", lambda body, ts: {}),
        ("wrong mac", lambda body, ts: {"X-ZEvent-Signature": "mac=" + "0" * 64}),
        (
            "other secret",
            lambda body, ts: {"X-ZEvent-Signature": "mac=" + mac(body, ts, secret="another-secret")},
        ),
        ("other app id", lambda body, ts: {"X-ZEvent-Signature": "mac=" + mac(body, ts, app_id="1")}),
        ("no mac= prefix", lambda body, ts: {"X-ZEvent-Signature": mac(body, ts)}),
        (
            "body altered after signing",
            lambda body, ts: {"X-ZEvent-Signature": "mac=" + mac(_tamper(body), ts)},
        ),
        ("other timestamp", lambda body, ts: {"X-ZEvent-Signature": "mac=" + mac(body, str(int(ts) + 1))}),
        ("hmac instead of plain sha256", lambda body, ts: {"X-ZEvent-Signature": "mac=" + _hmac(body, ts)}),
        ("empty", lambda body, ts: {"X-ZEvent-Signature": ""}),
        ("not ascii", lambda body, ts: {"X-ZEvent-Signature": "mac=é" + "0" * 63}),
    ],
)
async def test_a_bad_signature_is_a_401_and_nothing_is_queued(
    _case: str, headers: Callable[[bytes, str], dict[str, str]], client: Client
) -> None:
    body = compact(event_at("user_send_text__plain", NOW))
    timestamp = to_ms(NOW)

    response = await client.post(
        PATH, data=body, headers={"Content-Type": "application/json", **headers(body, timestamp)}
    )

    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_signature"
    assert await queued(client) == []
    assert counter(client, "webhook_rejected_total", reason="invalid_signature") == 1


def _hmac(body: bytes, timestamp: str) -> str:
    return hmac.new(OA_SECRET_KEY.encode(), APP_ID.encode() + body + timestamp.encode(), "sha256").hexdigest()


async def test_the_signature_is_over_the_raw_bytes_and_may_be_upper_case(client: Client) -> None:
    # given the same event with other spacing than a re-serialisation would give
    body = compact(event_at("user_send_text__plain", NOW)).replace(b'","', b'", "')
    signature = mac(body, to_ms(NOW)).upper()

    response = await client.post(PATH, data=body, headers={"X-ZEvent-Signature": f"mac={signature}"})

    assert response.status == 200
    assert len(await queued(client)) == 1


async def test_a_timestamp_sent_as_a_number_is_signed_as_its_digits(client: Client) -> None:
    event = event_at("user_send_text__plain", NOW)
    event["timestamp"] = int(event["timestamp"])

    response = await post_event(client, event)

    assert response.status == 200
    (queued_update,) = await queued(client)
    assert queued_update.timestamp == NOW


# ---------------------------------------------------------------------------------------- body
@pytest.mark.parametrize(
    ("_case", "body", "code"),
    [
        ("truncated", b'{"timestamp": "1", "event_name":', "invalid_json"),
        ("not utf-8", b"\xff\xfe{}", "invalid_json"),
        ("empty", b"", "invalid_json"),
        ("nested too deep", b"[" * 200_000 + b"]" * 200_000, "invalid_json"),
        ("a list", b"[]", "invalid_request"),
        ("a string", b'"follow"', "invalid_request"),
        ("no timestamp", b'{"event_name": "follow"}', "invalid_request"),
        ("null timestamp", b'{"timestamp": null}', "invalid_request"),
        ("float timestamp", b'{"timestamp": 1787209817225.5}', "invalid_request"),
        ("boolean timestamp", b'{"timestamp": true}', "invalid_request"),
        ("negative timestamp", b'{"timestamp": -1}', "invalid_request"),
        ("words for timestamp", b'{"timestamp": "yesterday"}', "invalid_request"),
        ("operator for timestamp", b'{"timestamp": {"$gt": ""}}', "invalid_request"),
        ("timestamp past year 9999", b'{"timestamp": "999999999999999"}', "invalid_request"),
    ],
)
async def test_a_body_without_a_usable_timestamp_is_a_400_before_anything_else(
    _case: str, body: bytes, code: str, client: Client
) -> None:
    # even correctly "signed": the timestamp is needed to check the signature at all
    response = await client.post(PATH, data=body, headers={"X-ZEvent-Signature": "mac=" + mac(body, "1")})

    assert response.status == 400
    assert (await response.json())["error"]["code"] == code
    assert await queued(client) == []
    assert counter(client, "webhook_rejected_total", reason=code) == 1


async def test_an_oversized_body_is_a_413(client: Client) -> None:
    body = b'{"timestamp":"' + to_ms(NOW).encode() + b'","pad":"' + b"x" * (1024 * 1024) + b'"}'

    response = await client.post(
        PATH, data=body, headers={"X-ZEvent-Signature": "mac=" + mac(body, to_ms(NOW))}
    )

    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
    assert await queued(client) == []


async def test_an_event_without_a_name_is_a_400(client: Client) -> None:
    response = await post_event(client, event_at("user_send_text__plain", NOW, event_name=DELETE))

    assert response.status == 400
    assert (await response.json())["error"]["details"][0]["field"] == "event_name"
    assert await queued(client) == []


# ---------------------------------------------------------------------------------------- replays
@pytest.mark.parametrize(
    ("_case", "offset", "status"),
    [
        ("just now", timedelta(0), 200),
        ("23 hours minus a second ago", -timedelta(hours=23) + timedelta(seconds=1), 200),
        ("23 hours and a second ago", -timedelta(hours=23, seconds=1), 401),
        ("two days ago", -timedelta(days=2), 401),
        ("ten minutes ahead", timedelta(minutes=10), 200),
        ("ten minutes and a second ahead", timedelta(minutes=10, seconds=1), 401),
        ("a year ahead", timedelta(days=365), 401),
    ],
)
async def test_old_and_future_deliveries_are_refused_as_replays(
    _case: str, offset: timedelta, status: int, client: Client
) -> None:
    response = await post_event(client, event_at("user_send_text__plain", NOW + offset))

    assert response.status == status
    if status == 401:
        assert (await response.json())["error"]["code"] == "stale_event"
        assert await queued(client) == []
        assert counter(client, "webhook_rejected_total", reason="stale_event") == 1
    else:
        assert len(await queued(client)) == 1


# ---------------------------------------------------------------------------------------- malformed events
@pytest.mark.parametrize(
    ("_case", "fixture_name", "changes", "field"),
    [
        (
            "operator injection in sender id",
            "user_send_text__plain",
            {"sender__id": {"$ne": ""}},
            "sender.id",
        ),
        (
            "operator injection in OA id",
            "user_send_text__plain",
            {"recipient__id": {"$gt": ""}},
            "recipient.id",
        ),
        (
            "operator injection in follower id",
            "follow__oa_profile",
            {"follower__id": {"$ne": ""}},
            "follower.id",
        ),
        (
            "operator injection in msg_id",
            "user_send_text__plain",
            {"message__msg_id": {"$ne": ""}},
            "message.msg_id",
        ),
        ("number for sender id", "user_send_text__plain", {"sender__id": 6618469916374226710}, "sender.id"),
        ("empty sender id", "user_send_text__plain", {"sender__id": ""}, "sender.id"),
        ("id with spaces", "user_send_text__plain", {"sender__id": "66 18"}, "sender.id"),
        ("no sender", "user_send_text__plain", {"sender": DELETE}, "sender.id"),
        ("sender is a string", "user_send_text__plain", {"sender": "6618469916374226710"}, "sender"),
        ("no oa_id on a follow", "follow__oa_profile", {"oa_id": DELETE}, "oa_id"),
        ("no text", "user_send_text__plain", {"message__text": DELETE}, "message.text"),
        ("text is an object", "user_send_text__plain", {"message__text": {"$ne": ""}}, "message.text"),
        ("text over the limit", "user_send_text__plain", {"message__text": "x" * 5000}, "text"),
        (
            "attachments not a list",
            "user_send_image__with_caption",
            {"message__attachments": {}},
            "message.attachments",
        ),
        (
            "no attachments",
            "user_send_image__with_caption",
            {"message__attachments": []},
            "message.attachments",
        ),
        (
            "attachment without payload",
            "user_send_image__with_caption",
            {"message__attachments__0__payload": DELETE},
            "message.attachments[0].payload",
        ),
        (
            "url is a number",
            "user_send_image__with_caption",
            {"message__attachments__0__payload__url": 12},
            "message.attachments[0].payload.url",
        ),
        (
            "latitude is words",
            "user_send_location__basic",
            {"message__attachments__0__payload__coordinates__latitude": "north"},
            "message.attachments[0].payload.coordinates.latitude",
        ),
        (
            "latitude out of range",
            "user_send_location__basic",
            {"message__attachments__0__payload__coordinates__latitude": "91"},
            "message.attachments[0].payload.coordinates.latitude",
        ),
        (
            "longitude not finite",
            "user_send_location__basic",
            {"message__attachments__0__payload__coordinates__longitude": "nan"},
            "message.attachments[0].payload.coordinates.longitude",
        ),
        ("no info", "user_submit_info__flat", {"info": DELETE}, "info"),
        ("phone is an object", "user_submit_info__flat", {"info__phone": {"$ne": ""}}, "info.phone"),
        ("phone too short", "user_submit_info__flat", {"info__phone": "84"}, "phone"),
        ("name is a list", "user_submit_info__flat", {"info__name": ["An"]}, "info.name"),
    ],
)
async def test_a_malformed_known_event_is_a_400_naming_it_and_nothing_is_queued(
    _case: str, fixture_name: str, changes: dict[str, Any], field: str, client: Client
) -> None:
    event = event_at(fixture_name, NOW, **changes)

    response = await post_event(client, event)

    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_request"
    assert event["event_name"] in error["message"]
    assert error["details"] == [
        {"event": event["event_name"], "field": field, "problem": error["details"][0]["problem"]}
    ]
    assert await queued(client) == []
    assert counter(client, "webhook_rejected_total", reason="invalid_request") == 1


# ---------------------------------------------------------------------------------------- event table edges
async def test_an_unknown_event_is_acknowledged_logged_and_counted(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    event = event_at("user_send_text__plain", NOW, event_name="user_send_business_card")

    with caplog.at_level(logging.WARNING, logger="loyalty.webhooks.zalo"):
        response = await post_event(client, event)

    assert response.status == 200
    assert await queued(client) == []
    assert counter(client, "webhook_unknown_events_total", event="user_send_business_card") == 1
    assert any(
        "user_send_business_card" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )
    metrics = await (await client.get("/metrics")).text()
    assert 'loyalty_webhook_unknown_events_total{event="user_send_business_card",source="zalo"} 1' in metrics


async def test_an_unknown_event_with_an_odd_name_is_counted_under_other(client: Client) -> None:
    response = await post_event(client, event_at("user_send_text__plain", NOW, event_name='x"} 9\nevil 1'))

    assert response.status == 200
    assert counter(client, "webhook_unknown_events_total", event="other") == 1


async def test_an_ignored_event_is_not_parsed_at_all(client: Client) -> None:
    # an echo with a shape we never read is still just acknowledged
    response = await post_event(client, event_at("oa_send_text__echo", NOW, message="anything"))

    assert response.status == 200
    assert await queued(client) == []
    assert counter(client, "webhook_ignored_events_total", event="oa_send_text") == 1


@pytest.mark.parametrize(
    ("_case", "info"),
    [
        ("no phone key", {"name": "An"}),
        ("empty phone", {"name": "An", "phone": ""}),
        ("null phone", {"name": "An", "phone": None}),
        ("zero, as shared_info shows none", {"name": "An", "phone": 0}),
    ],
)
async def test_shared_info_without_a_phone_queues_nothing(
    _case: str, info: dict[str, Any], client: Client
) -> None:
    response = await post_event(client, event_at("user_submit_info__flat", NOW, info=info))

    assert response.status == 200
    assert await queued(client) == []


async def test_a_phone_sent_as_a_number_is_passed_on_as_its_digits(client: Client) -> None:
    await post_event(client, event_at("user_submit_info__flat", NOW, info__phone=84912345678, info__name=""))

    (shared,) = await queued(client)
    assert isinstance(shared, ContactShared)
    assert (shared.phone, shared.name) == ("84912345678", None)


@pytest.mark.parametrize(
    ("_case", "text", "kind", "value"),
    [
        ("payload", "#pl:checkin:K7P2", Postback, "checkin:K7P2"),
        ("prefix alone", "#pl:", Message, "#pl:"),
        ("prefix not at the start", "xem #pl:points", Message, "xem #pl:points"),
        ("a code typed in chat", "#K7P2", Message, "#K7P2"),
    ],
)
async def test_only_texts_starting_with_the_payload_prefix_are_postbacks(
    _case: str, text: str, kind: type[BaseUpdate], value: str, client: Client
) -> None:
    await post_event(client, event_at("user_send_text__plain", NOW, message__text=text))

    (received,) = await queued(client)
    assert isinstance(received, kind)
    assert (received.payload if isinstance(received, Postback) else received.text) == value  # type: ignore[attr-defined]


async def test_an_event_without_msg_id_gets_a_stable_hashed_id(client: Client) -> None:
    event = event_at("user_send_text__plain", NOW, message__msg_id=DELETE)

    await post_event(client, event)
    await post_event(client, event)

    (received,) = await queued(client)
    assert received.event_id == hashed_id("user_send_text", USER_ID, to_ms(NOW))


# ---------------------------------------------------------------------------------------- queue
async def test_the_same_delivery_three_times_is_queued_once(client: Client) -> None:
    event = event_at("user_send_text__plain", NOW)

    statuses = [(await post_event(client, event)).status for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert len(await queued(client)) == 1
    assert counter(client, "webhook_updates_total", outcome="queued") == 1
    assert counter(client, "webhook_updates_total", outcome="duplicate") == 2


async def test_an_unavailable_queue_is_a_503_so_zalo_retries(client: Client) -> None:
    # given a queue whose stream key cannot take entries
    queue: EventQueue = client.app[keys.QUEUE]
    await queue.redis.set(queue.stream, "not a stream")

    response = await post_event(client, event_at("user_send_text__plain", NOW))

    assert response.status == 503
    assert (await response.json())["error"]["code"] == "queue_unavailable"
    assert counter(client, "webhook_queue_failures_total") == 1


# ---------------------------------------------------------------------------------------- ZNS
ZNS = {"X-ZEvent-Server": "ZNS"}


async def test_a_zns_delivery_goes_to_the_recorder_not_the_queue(
    client: Client, recorder: RecordingRecorder
) -> None:
    event = event_at("user_received_message__zns", NOW)

    response = await post_event(client, event, headers=ZNS)

    assert response.status == 200
    assert recorder.calls == [
        [
            ZnsDeliveryStatus(
                msg_id="a4d0243feee163bd3af2",
                tracking_id="campaign:winback-45:2026-11-23:cus_8f2a",
                status=ZnsStatus.RECEIVED,
                delivered_at=from_ms("1602960467432"),
            )
        ]
    ]
    assert await queued(client) == []
    assert counter(client, "webhook_zns_statuses_total", outcome="recorded") == 1


async def test_a_zns_delivery_without_tracking_or_delivery_time_is_still_recorded(
    client: Client, recorder: RecordingRecorder
) -> None:
    event = event_at(
        "user_received_message__zns", NOW, message__tracking_id=DELETE, message__delivery_time=DELETE
    )

    response = await post_event(client, event, headers=ZNS)

    assert response.status == 200
    ((status,),) = recorder.calls
    assert (status.tracking_id, status.delivered_at) == (None, NOW)


async def test_a_failing_zns_recorder_is_a_503_so_zalo_retries(
    client: Client, recorder: RecordingRecorder
) -> None:
    recorder.fail = True

    response = await post_event(client, event_at("user_received_message__zns", NOW), headers=ZNS)

    assert response.status == 503
    assert (await response.json())["error"]["code"] == "recorder_unavailable"
    assert counter(client, "webhook_zns_statuses_total", outcome="failed") == 1


async def test_a_zns_delivery_without_a_recorder_is_acknowledged_and_counted(
    aiohttp_client: ClientFactory, clock: FrozenClock
) -> None:
    # the package on its own, as another app might mount it: no recorder (the service always has one)
    app = web.Application()
    app[COUNTERS] = Counters()
    register(app, CONFIG, clock=clock.now)
    client = await aiohttp_client(app)

    response = await post_event(client, event_at("user_received_message__zns", NOW), headers=ZNS)

    assert response.status == 200
    assert counter(client, "webhook_zns_statuses_total", outcome="unrecorded") == 1


async def test_a_malformed_zns_delivery_is_a_400(client: Client, recorder: RecordingRecorder) -> None:
    event = event_at("user_received_message__zns", NOW, message__msg_id={"$ne": ""})

    response = await post_event(client, event, headers=ZNS)

    assert response.status == 400
    assert (await response.json())["error"]["details"][0]["field"] == "message.msg_id"
    assert recorder.calls == []


async def test_an_unknown_zns_event_is_acknowledged_and_counted(
    client: Client, recorder: RecordingRecorder
) -> None:
    response = await post_event(
        client, event_at("user_received_message__zns", NOW, event_name="user_seen_message"), headers=ZNS
    )

    assert response.status == 200
    assert recorder.calls == []
    assert counter(client, "webhook_unknown_events_total", event="zns.user_seen_message") == 1


async def test_a_zns_delivery_needs_a_valid_signature_too(
    client: Client, recorder: RecordingRecorder
) -> None:
    response = await post_event(
        client, event_at("user_received_message__zns", NOW), secret="other", headers=ZNS
    )

    assert response.status == 401
    assert recorder.calls == []


# ---------------------------------------------------------------------------------------- config, payloads
def test_the_config_keeps_its_secret_out_of_repr_and_refuses_blanks() -> None:
    assert OA_SECRET_KEY not in repr(CONFIG)
    with pytest.raises(ValueError, match="OA secret key"):
        ZaloWebhookConfig(app_id=APP_ID, oa_secret_key="")


@pytest.mark.parametrize(
    ("_case", "payload"),
    [("simple", "points"), ("with separators", "checkin:K7P2:store-1"), ("vietnamese", "quà:cà phê")],
)
def test_a_payload_survives_encode_then_decode(_case: str, payload: str) -> None:
    text = zalo_payload.encode(payload)

    assert text.startswith(zalo_payload.PREFIX)
    assert zalo_payload.decode(text) == payload


@pytest.mark.parametrize(("_case", "payload"), [("empty", ""), ("too long", "x" * 1001)])
def test_a_payload_that_cannot_round_trip_is_refused(_case: str, payload: str) -> None:
    with pytest.raises(ValueError, match="payload"):
        zalo_payload.encode(payload)


@pytest.mark.parametrize(
    ("_case", "text"), [("plain text", "điểm"), ("prefix alone", "#pl:"), ("too long", "#pl:" + "x" * 1001)]
)
def test_ordinary_text_decodes_to_nothing(_case: str, text: str) -> None:
    assert zalo_payload.decode(text) is None
