"""Messenger end to end: a signed webhook, the queue, the worker, the dispatcher, the Send API (a fake).

The acceptance test of the channel: the same delivery posted three times is handled once and the
customer gets exactly one reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
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
from tests.fakes.graph import FakeGraph

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
APP_SECRET = "messenger-app-secret-e2e"


@pytest.fixture
async def graph(aiohttp_server: ServerFactory) -> tuple[FakeGraph, str]:
    fake = FakeGraph()
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, settings: Settings, redis: Redis, graph: tuple[FakeGraph, str]
) -> TestClient[web.Request, web.Application]:
    fake, base = graph
    configured = settings.model_copy(
        update={
            "facebook_app_secret": SecretStr(APP_SECRET),
            "facebook_verify_token": SecretStr("verify-token-e2e"),
            "facebook_page_id": fake.page_id,
            "facebook_page_access_token": SecretStr(fake.token),
            "facebook_graph_base": base,
            "facebook_graph_version": fake.version,
        }
    )
    return await aiohttp_client(create_app(configured))


def delivery(fake: FakeGraph, text: str, mid: str) -> tuple[bytes, dict[str, str]]:
    now = int(time.time() * 1000)
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": fake.page_id,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": "24000000000000001"},
                            "recipient": {"id": fake.page_id},
                            "timestamp": now,
                            "message": {"mid": mid, "text": text},
                        }
                    ],
                }
            ],
        }
    ).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


async def wait_for_messages(fake: FakeGraph, count: int, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(fake.messages) < count and loop.time() < deadline:  # noqa: ASYNC110 - polling a fake
        await asyncio.sleep(0.05)


async def test_a_delivery_posted_three_times_gets_one_reply(
    client: TestClient[web.Request, web.Application], graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    body, headers = delivery(fake, "trợ giúp", "m_e2e_1")

    answers = [await client.post("/webhooks/messenger", data=body, headers=headers) for _ in range(3)]

    assert [a.status for a in answers] == [200, 200, 200]
    await wait_for_messages(fake, 1)
    await asyncio.sleep(1.0)  # time enough for a wrong second reply to arrive
    assert len(fake.messages) == 1
    assert fake.messages[0]["text"].startswith("Bạn có thể nhắn cho Demo Café")
    (sent,) = fake.sent
    assert sent["recipient"] == {"id": "24000000000000001"}
    assert sent["messaging_type"] == "RESPONSE"


async def test_a_forged_delivery_is_refused_and_nothing_is_sent(
    client: TestClient[web.Request, web.Application], graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    body, headers = delivery(fake, "trợ giúp", "m_e2e_2")
    headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64

    answer = await client.post("/webhooks/messenger", data=body, headers=headers)

    assert answer.status == 401
    await asyncio.sleep(1.0)
    assert fake.requests == []


async def test_a_send_api_outage_is_retried(
    client: TestClient[web.Request, web.Application], graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    fake.fail_next(2, "5xx")
    body, headers = delivery(fake, "help", "m_e2e_3")

    await client.post("/webhooks/messenger", data=body, headers=headers)

    await wait_for_messages(fake, 1)
    assert len(fake.messages) == 1
    assert len(fake.requests) == 3
