"""The emulator's JSON API: what it queues, and what it refuses (with nothing queued)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from app import keys
from app.factory import create_app
from app.settings import Settings
from bot import UPDATE_ADAPTER, ContactShared, Follow, Message, Postback, Referral, Unfollow
from bot.channels.base import Recipient
from bot.channels.emulator import EmulatorOutbox
from storage.queue import EventQueue

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings, redis: Redis) -> Client:
    # no in-process worker: these tests look at what is queued
    return await aiohttp_client(create_app(settings, worker=False))


async def queued(client: Client) -> list[object]:
    queue: EventQueue = client.app[keys.QUEUE]
    deliveries = await queue.read("inspector", count=100, block_ms=10)
    return [UPDATE_ADAPTER.validate_python(d.data) for d in deliveries]


@pytest.mark.parametrize(
    ("_case", "body", "kind", "fields"),
    [
        ("text", {"type": "text", "text": "điểm"}, Message, {"text": "điểm"}),
        (
            "postback",
            {"type": "postback", "payload": "menu:points", "title": "Điểm"},
            Postback,
            {"payload": "menu:points"},
        ),
        ("follow", {"type": "follow"}, Follow, {"ref": None}),
        ("unfollow", {"type": "unfollow"}, Unfollow, {}),
        (
            "contact",
            {"type": "contact", "phone": "0912345678", "name": "Lan"},
            ContactShared,
            {"phone": "0912345678"},
        ),
        (
            "scan",
            {"type": "referral", "ref": "checkin.abc"},
            Referral,
            {"ref": "checkin.abc", "source": "QR"},
        ),
    ],
)
async def test_each_action_is_queued_as_its_update(
    _case: str, body: dict[str, str], kind: type, fields: dict[str, object], client: Client
) -> None:
    response = await client.post(
        "/emulator/api/events", json={"user_id": "u1", "flavor": "messenger", **body}
    )

    assert response.status == 202
    (update,) = await queued(client)
    assert isinstance(update, kind)
    assert (update.channel, update.account_id, update.user_id) == ("emulator", "emulator-messenger", "u1")
    for name, value in fields.items():
        assert getattr(update, name) == value


async def test_an_image_becomes_a_message_with_an_attachment(client: Client) -> None:
    await client.post("/emulator/api/events", json={"user_id": "u1", "type": "image"})

    (update,) = await queued(client)
    assert isinstance(update, Message)
    assert update.text is None
    assert update.attachments[0].type == "image"


async def test_a_double_tap_is_queued_once(client: Client) -> None:
    body = {"user_id": "u1", "type": "text", "text": "hi", "event_id": "tap-0123456789"}

    first = await client.post("/emulator/api/events", json=body)
    second = await client.post("/emulator/api/events", json=body)

    assert (await first.json())["queued"] is True
    assert (await second.json())["queued"] is False
    assert len(await queued(client)) == 1


@pytest.mark.parametrize(
    ("_case", "body", "field"),
    [
        ("operator injection in text", {"user_id": "u1", "type": "text", "text": {"$ne": ""}}, "text"),
        ("operator injection in user", {"user_id": {"$gt": ""}, "type": "follow"}, "user_id"),
        ("number for text", {"user_id": "u1", "type": "text", "text": 12}, "text"),
        ("missing text", {"user_id": "u1", "type": "text"}, "body"),
        ("missing phone", {"user_id": "u1", "type": "contact"}, "body"),
        ("unknown type", {"user_id": "u1", "type": "payment"}, "type"),
        ("unknown field", {"user_id": "u1", "type": "follow", "admin": True}, "admin"),
        ("bad user id", {"user_id": "u 1/../x", "type": "follow"}, "user_id"),
        ("text too long", {"user_id": "u1", "type": "text", "text": "x" * 2001}, "text"),
        ("unknown flavor", {"user_id": "u1", "flavor": "telegram", "type": "follow"}, "flavor"),
        ("short event id", {"user_id": "u1", "type": "follow", "event_id": "1"}, "event_id"),
        ("not an object", ["follow"], "body"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_nothing_is_queued(
    _case: str, body: object, field: str, client: Client
) -> None:
    response = await client.post("/emulator/api/events", json=body)

    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_request"
    assert any(detail["field"] == field for detail in error["details"]), error
    assert await queued(client) == []


async def test_malformed_json_is_refused(client: Client) -> None:
    response = await client.post(
        "/emulator/api/events",
        data=b'{"user_id": "u1", "type":',
        headers={"Content-Type": "application/json"},
    )

    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_json"
    assert await queued(client) == []


async def test_a_form_body_is_refused(client: Client) -> None:
    response = await client.post("/emulator/api/events", data={"user_id": "u1", "type": "follow"})

    assert response.status == 415
    assert await queued(client) == []


async def test_an_unavailable_queue_is_a_503(client: Client) -> None:
    # given a queue whose stream key cannot take entries
    queue: EventQueue = client.app[keys.QUEUE]
    await queue.redis.set(queue.stream, "not a stream")

    response = await client.post("/emulator/api/events", json={"user_id": "u1", "type": "follow"})

    assert response.status == 503
    assert (await response.json())["error"]["code"] == "queue_unavailable"


async def test_messages_are_read_after_an_id(client: Client) -> None:
    box = EmulatorOutbox(client.app[keys.REDIS])
    first, second = await box.append(
        Recipient("emulator", "emulator-zalo", "u1"),
        [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    )

    response = await client.get("/emulator/api/messages", params={"user_id": "u1", "after": first})

    body = await response.json()
    assert body == {"messages": [{"id": second, "reply": {"type": "text", "text": "b"}}], "last_id": second}


@pytest.mark.parametrize(
    ("_case", "params"),
    [
        ("no user", {}),
        ("bad after", {"user_id": "u1", "after": "$gt"}),
        ("wait too long", {"user_id": "u1", "wait": "999"}),
        ("unknown parameter", {"user_id": "u1", "admin": "1"}),
    ],
)
async def test_bad_message_queries_are_400(_case: str, params: dict[str, str], client: Client) -> None:
    response = await client.get("/emulator/api/messages", params=params)

    assert response.status == 400


async def test_the_page_is_served(client: Client) -> None:
    response = await client.get("/emulator")

    assert response.status == 200
    text = await response.text()
    assert "Chat emulator" in text
    assert "/static/emulator.js" in text


async def test_the_emulator_is_off_once_a_real_channel_is_configured(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    app = create_app(settings.model_copy(update={"zalo_oa_id": "123"}), worker=False)
    client = await aiohttp_client(app)

    assert (await client.get("/emulator")).status == 404
    assert (await client.post("/emulator/api/events", data=json.dumps({}))).status == 404


async def test_metrics_count_queued_and_duplicate_updates(client: Client) -> None:
    body = {"user_id": "u1", "type": "text", "text": "hi", "event_id": "metric-0000001"}
    await client.post("/emulator/api/events", json=body)
    await client.post("/emulator/api/events", json=body)

    text = await (await client.get("/metrics")).text()

    assert 'loyalty_webhook_updates_total{outcome="queued",source="emulator"} 1' in text
    assert 'loyalty_webhook_updates_total{outcome="duplicate",source="emulator"} 1' in text
    assert "loyalty_queue_backlog 1" in text
