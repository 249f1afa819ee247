"""Chat end to end: the emulator API, the queue, the in-process worker, the dispatcher, the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from app import keys
from app.chat import QueuedUpdates, brand_name, chat_update_handler, message_directories
from app.factory import create_app
from app.settings import Settings, load_settings
from bot import Dispatcher, Message, Router
from bot.i18n import Messages
from loyalty.program import load_program
from storage.queue import Delivery, EventQueue
from tests.conftest import TEST_SECRET_KEY

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings, redis: Redis) -> Client:
    return await aiohttp_client(create_app(settings))


async def replies(client: Client, user: str, count: int, within: float = 10.0) -> list[dict[str, object]]:
    """Wait until the bot has sent ``count`` replies to ``user``; return them."""
    got: list[dict[str, object]] = []
    after = "0-0"
    deadline = asyncio.get_running_loop().time() + within
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        response = await client.get(
            "/emulator/api/messages", params={"user_id": user, "after": after, "wait": "1"}
        )
        body = await response.json()
        got += [m["reply"] for m in body["messages"]]
        after = body["last_id"]
    return got


async def test_a_follow_is_answered_with_the_welcome(client: Client) -> None:
    await client.post("/emulator/api/events", json={"user_id": "u1", "type": "follow"})

    welcome, ask_phone = await replies(client, "u1", 2)

    assert welcome["type"] == "text"
    assert "Demo Café" in str(welcome["text"])
    assert ask_phone["type"] == "request_phone"


async def test_keywords_match_with_or_without_diacritics(client: Client) -> None:
    for text in ("trợ giúp", "TRO GIUP", "  Trợ   Giúp "):
        await client.post("/emulator/api/events", json={"user_id": "u2", "type": "text", "text": text})

    answers = await replies(client, "u2", 3)

    assert [a["text"] for a in answers] == [answers[0]["text"]] * 3
    assert str(answers[0]["text"]).startswith("Bạn có thể nhắn")


async def test_the_same_event_delivered_three_times_is_answered_once(client: Client) -> None:
    body = {"user_id": "u3", "type": "text", "text": "help", "event_id": "same-event-0001"}
    for _ in range(3):
        await client.post("/emulator/api/events", json=body)

    got = await replies(client, "u3", 2, within=3.0)

    assert len(got) == 1


async def test_a_users_messages_are_answered_in_the_order_sent(client: Client) -> None:
    for n in range(10):
        await client.post("/emulator/api/events", json={"user_id": "u4", "type": "text", "text": f"msg {n}"})

    got = await replies(client, "u4", 10)

    assert [str(r["text"]).split('"')[1] for r in got] == [f"msg {n}" for n in range(10)]


async def test_messenger_flavor_fits_replies_to_messenger(client: Client) -> None:
    # the main menu: five quick replies, which Messenger shows and Zalo (without any) turns into buttons
    for flavor in ("messenger", "zalo"):
        await client.post(
            "/emulator/api/events", json={"user_id": "u5", "flavor": flavor, "type": "text", "text": "menu"}
        )

    shown = {}
    for flavor in ("messenger", "zalo"):
        got = await client.get(
            "/emulator/api/messages", params={"user_id": "u5", "flavor": flavor, "wait": "5"}
        )
        shown[flavor] = (await got.json())["messages"][0]["reply"]["type"]

    assert shown == {"messenger": "quick_replies", "zalo": "buttons"}


async def test_a_transient_failure_is_retried_and_a_bug_is_not(settings: Settings, redis: Redis) -> None:
    # given a dispatcher whose handler fails once with an outage, and another that always has a bug
    dispatcher = Dispatcher()
    router = Router()
    calls: list[str] = []

    @router.message()
    async def flaky(message: Message) -> None:
        calls.append(message.text or "")
        if message.text == "outage" and calls.count("outage") == 1:
            raise ConnectionError("database unreachable")
        if message.text == "bug":
            raise KeyError("oops")

    dispatcher.include_router(router)
    handle = chat_update_handler(dispatcher)

    def delivery(text: str) -> Delivery:
        update = Message(
            channel="emulator",
            account_id="a",
            user_id="u",
            event_id=text,
            timestamp=datetime.now(UTC),
            text=text,
        )
        return Delivery("1-0", "chat.update", "k", update.model_dump(mode="json"), 0)

    # then the outage propagates (the worker keeps the event pending and retries it) ...
    with pytest.raises(ConnectionError):
        await handle(delivery("outage"))
    await handle(delivery("outage"))
    # ... while a bug is logged and the event acknowledged (retrying would only repeat it)
    await handle(delivery("bug"))
    assert calls == ["outage", "outage", "bug"]


async def test_queued_updates_report_duplicates(redis: Redis) -> None:
    sink = QueuedUpdates(EventQueue(redis))
    update = Message(
        channel="zalo", account_id="oa", user_id="u", event_id="m1", timestamp=datetime.now(UTC), text="x"
    )

    assert await sink.publish([update, update]) == [True, False]


async def test_the_dispatcher_is_built_with_the_apps_services(client: Client) -> None:
    dispatcher = client.app[keys.DISPATCHER]

    assert dispatcher["brand"] == "Demo Café"
    assert {"copy", "brand", "clock"} <= dispatcher.services.keys()


def test_the_brand_name_comes_from_the_program_unless_brand_name_is_set(settings: Settings) -> None:
    program = load_program()
    renamed = program.model_copy(update={"brand": program.brand.model_copy(update={"name": "Trà Chiều"})})
    assert brand_name(settings, renamed) == "Trà Chiều"
    explicit = load_settings(env_file=None, brand_name="Cà Phê Sữa", secret_key=TEST_SECRET_KEY)
    assert brand_name(explicit, renamed) == "Cà Phê Sữa"


def test_a_brand_overrides_copy_from_the_program_s_templates_dir(settings: Settings, tmp_path: Path) -> None:
    own = tmp_path / "brand"
    (own / "messages" / "vi").mkdir(parents=True)
    (own / "messages" / "vi" / "fallback.j2").write_text("Chưa rõ ý bạn, nhắn Menu nhé.", encoding="utf-8")
    program = load_program()
    program = program.model_copy(update={"brand": program.brand.model_copy(update={"templates_dir": own})})

    copy = Messages(message_directories(settings, program))

    assert copy("fallback", text="x") == "Chưa rõ ý bạn, nhắn Menu nhé."
    assert "Cảm ơn bạn đã quan tâm" in copy("welcome", name=None, brand="B", vnd_per_point=10_000)
