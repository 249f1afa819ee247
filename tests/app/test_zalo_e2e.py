"""Zalo OA end to end: a signed webhook, the queue, the worker, the dispatcher, the OA API (a fake).

Includes the token story of issue 5: the access token expires mid-conversation, the reply is sent
after exactly one refresh, and our own buttons come back as texts that become postbacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from redis.asyncio import Redis

from app.factory import create_app
from app.settings import Settings
from loyalty.clock import FrozenClock
from storage.clients import MongoClient
from tests.fakes.zalo import OAUTH_PREFIX, FakeZalo
from tests.webhooks import zalo_helpers

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
OA_SECRET_KEY = "oa-secret-key-e2e"
USER = "6618469916374226710"


@pytest.fixture
async def zalo(aiohttp_server: ServerFactory) -> tuple[FakeZalo, str]:
    fake = FakeZalo()
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, settings: Settings, redis: Redis, zalo: tuple[FakeZalo, str]
) -> TestClient[web.Request, web.Application]:
    fake, base = zalo
    configured = settings.model_copy(
        update={
            "zalo_app_id": fake.app_id,
            "zalo_app_secret": SecretStr(fake.app_secret),
            "zalo_oa_id": fake.oa_id,
            "zalo_oa_secret_key": SecretStr(OA_SECRET_KEY),
            "zalo_oa_access_token": SecretStr(fake.access_token or ""),
            "zalo_oa_refresh_token": SecretStr(fake.refresh_token),
            "zalo_oa_api_base": base,
            "zalo_oauth_base": base + OAUTH_PREFIX,
        }
    )
    return await aiohttp_client(create_app(configured))


def user_text(fake: FakeZalo, text: str, msg_id: str) -> tuple[bytes, dict[str, str]]:
    timestamp = str(int(time.time() * 1000))
    body = json.dumps(
        {
            "app_id": fake.app_id,
            "sender": {"id": USER},
            "user_id_by_app": "5521772797175877",
            "recipient": {"id": fake.oa_id},
            "event_name": "user_send_text",
            "message": {"text": text, "msg_id": msg_id},
            "timestamp": timestamp,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    mac = hashlib.sha256(
        fake.app_id.encode() + body + timestamp.encode() + OA_SECRET_KEY.encode()
    ).hexdigest()
    return body, {"Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac}"}


async def wait_for_messages(fake: FakeZalo, count: int, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(fake.messages) < count and loop.time() < deadline:  # noqa: ASYNC110 - polling a fake
        await asyncio.sleep(0.05)


async def test_a_message_is_answered_once_through_the_oa_api(
    client: TestClient[web.Request, web.Application], zalo: tuple[FakeZalo, str]
) -> None:
    fake, _ = zalo
    body, headers = user_text(fake, "Trợ giúp", "b2db3895fe26797f2030")

    answers = [await client.post("/webhooks/zalo", data=body, headers=headers) for _ in range(3)]

    assert [a.status for a in answers] == [200, 200, 200]
    await wait_for_messages(fake, 1)
    await asyncio.sleep(1.0)
    assert len(fake.messages) == 1
    sent = fake.messages[0]
    assert sent["recipient"] == {"user_id": USER}
    assert sent["message"]["text"].startswith("Bạn có thể nhắn cho Demo Café")


async def test_an_expired_token_is_refreshed_once_and_the_reply_still_goes(
    client: TestClient[web.Request, web.Application], zalo: tuple[FakeZalo, str]
) -> None:
    fake, _ = zalo
    first, headers = user_text(fake, "help", "msg-before-expiry")
    await client.post("/webhooks/zalo", data=first, headers=headers)
    await wait_for_messages(fake, 1)

    # when the access token expires mid-conversation
    fake.expire_access_token()
    second, headers = user_text(fake, "help", "msg-after-expiry")
    await client.post("/webhooks/zalo", data=second, headers=headers)

    # then the next reply is sent after exactly one refresh
    await wait_for_messages(fake, 2)
    assert len(fake.messages) == 2
    assert fake.refresh_calls == 1


async def test_our_buttons_come_back_as_postbacks(
    client: TestClient[web.Request, web.Application], zalo: tuple[FakeZalo, str]
) -> None:
    fake, _ = zalo
    body, headers = user_text(fake, "không hiểu gì cả", "msg-unknown-1")
    await client.post("/webhooks/zalo", data=body, headers=headers)
    await wait_for_messages(fake, 1)
    (button,) = fake.messages[0]["message"]["attachment"]["payload"]["buttons"]
    assert button["type"] == "oa.query.hide"

    # when the customer presses it, Zalo sends the payload back as the user's text
    pressed, headers = user_text(fake, button["payload"], "msg-press-1")
    await client.post("/webhooks/zalo", data=pressed, headers=headers)

    await wait_for_messages(fake, 2)
    assert fake.messages[1]["message"]["text"].startswith("Bạn có thể nhắn cho Demo Café")


async def test_a_zns_receipt_is_kept_and_settles_the_send(
    aiohttp_client: ClientFactory, settings: Settings, redis: Redis, mongo_client: MongoClient, db_name: str
) -> None:
    # given the app at the time of the fixture, and a ZNS send whose outcome we did not know
    fixture = zalo_helpers.load_fixture("user_received_message__zns")
    event = fixture.data
    clock = FrozenClock(zalo_helpers.from_ms(event["timestamp"]))
    configured = settings.model_copy(
        update={
            "zalo_app_id": zalo_helpers.APP_ID,
            "zalo_oa_secret_key": SecretStr(zalo_helpers.OA_SECRET_KEY),
        }
    )
    client = await aiohttp_client(create_app(configured, clock=clock, worker=False))
    tracking_id = event["message"]["tracking_id"]
    await redis.set(f"zns:sent:{tracking_id}", "pending")

    # when Zalo reports its delivery
    answer = await client.post(
        "/webhooks/zalo",
        data=fixture.body,
        headers=zalo_helpers.signed_headers(fixture.body, event["timestamp"], extra=fixture.headers),
    )

    # then the receipt is kept and the send is known to have gone out
    assert answer.status == 200
    receipt = await mongo_client[db_name].zns_deliveries.find_one({"_id": event["message"]["msg_id"]})
    assert receipt is not None
    assert receipt["tracking_id"] == tracking_id
    assert receipt["status"] == "received"
    assert await redis.get(f"zns:sent:{tracking_id}") == f"sent:{event['message']['msg_id']}"
