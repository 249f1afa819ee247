"""The conversations end to end, on each channel: signed Zalo and Messenger webhooks (and the emulator's
API) → the queue → the worker → the handlers and the loyalty core (real Redis, real SecantusDB) → the
fake platform servers, which check the request shapes. Duplicate deliveries are posted on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from redis.asyncio import Redis

from app import keys
from app.factory import create_app
from app.settings import Settings
from loyalty.core import Loyalty
from loyalty.customers import Identity
from tests.app.conversations import (
    APP_SECRET,
    OA_SECRET_KEY,
    Emulator,
    Messenger,
    Zalo,
    message_text,
    wait_for,
)
from tests.fakes.graph import FakeGraph
from tests.fakes.zalo import OAUTH_PREFIX, FakeZalo

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Client = TestClient[web.Request, web.Application]
ZALO_USER = "6618469916374226710"
PSID = "24000000000000077"


@pytest.fixture
async def fakes(aiohttp_server: ServerFactory) -> tuple[FakeZalo, str, FakeGraph, str]:
    zalo, graph = FakeZalo(), FakeGraph()
    zalo.users[ZALO_USER] = {"user_id": ZALO_USER, "display_name": "Minh", "user_is_follower": True}
    graph.profiles[PSID] = {"id": PSID, "first_name": "Lan", "last_name": "Trần"}
    zalo_server, graph_server = await aiohttp_server(zalo.app()), await aiohttp_server(graph.app())
    return zalo, str(zalo_server.make_url("")).rstrip("/"), graph, str(graph_server.make_url("")).rstrip("/")


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory,
    settings: Settings,
    redis: Redis,
    fakes: tuple[FakeZalo, str, FakeGraph, str],
) -> Client:
    zalo, zalo_base, graph, graph_base = fakes
    configured = settings.model_copy(
        update={
            "zalo_app_id": zalo.app_id,
            "zalo_app_secret": SecretStr(zalo.app_secret),
            "zalo_oa_id": zalo.oa_id,
            "zalo_oa_secret_key": SecretStr(OA_SECRET_KEY),
            "zalo_oa_access_token": SecretStr(zalo.access_token or ""),
            "zalo_oa_refresh_token": SecretStr(zalo.refresh_token),
            "zalo_oa_api_base": zalo_base,
            "zalo_oauth_base": zalo_base + OAUTH_PREFIX,
            "facebook_app_secret": SecretStr(APP_SECRET),
            "facebook_verify_token": SecretStr("verify-token-conversations"),
            "facebook_page_id": graph.page_id,
            "facebook_page_access_token": SecretStr(graph.token),
            "facebook_graph_base": graph_base,
            "facebook_graph_version": graph.version,
            "emulator_enabled": True,
        }
    )
    return await aiohttp_client(create_app(configured))


def loyalty_of(client: Client) -> Loyalty:
    resources = client.app[keys.RESOURCES]
    assert resources.loyalty is not None
    return resources.loyalty


async def settle() -> None:
    await asyncio.sleep(1.0)  # time enough for a wrong extra reply to arrive


async def test_zalo_follow_phone_and_points_with_duplicate_deliveries(
    client: Client, fakes: tuple[FakeZalo, str, FakeGraph, str]
) -> None:
    fake = fakes[0]
    zalo = Zalo(client, fake, ZALO_USER)

    await zalo.follow(times=3)
    await wait_for(lambda: len(fake.messages) >= 2)
    await settle()
    welcome, ask = fake.messages
    assert welcome["message"]["text"].startswith("Chào Minh! Cảm ơn bạn đã quan tâm Demo Café")
    assert ask["message"]["attachment"]["payload"]["template_type"] == "request_user_info"
    assert len(fake.messages) == 2

    await zalo.share_phone("84912345678", times=2)
    await wait_for(lambda: len(fake.messages) >= 5)
    await settle()
    sent = [message_text(m["message"]) for m in fake.messages[2:]]
    assert len(sent) == 4  # saved, gift, the voucher card, the menu
    assert "+84912***678 đã được lưu" in sent[0]
    assert "Giảm 20.000đ cho đơn đầu tiên" in sent[2]
    loyalty = loyalty_of(client)
    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id=ZALO_USER))
    assert customer is not None and customer.name == "Minh"
    assert len(await loyalty.vouchers.list_for(customer.id)) == 1

    await zalo.text("điểm", times=2)
    await wait_for(lambda: len(fake.messages) >= 7)
    await settle()
    assert len(fake.messages) == 7
    points = fake.messages[6]["message"]
    assert points["text"].startswith("⭐ Demo Café: bạn có 0 điểm, hạng Member")
    assert len(points["attachment"]["payload"]["buttons"]) == 5  # the menu, as Zalo buttons

    await zalo.unfollow()
    await zalo.follow()
    await wait_for(lambda: len(fake.messages) >= 8)
    await settle()
    assert "mừng bạn quay lại Demo Café! Bạn đang có 0 điểm" in fake.messages[7]["message"]["text"]
    assert len(await loyalty.vouchers.list_for(customer.id)) == 1  # no second welcome voucher


async def test_messenger_qr_check_in_for_a_first_time_customer(
    client: Client, fakes: tuple[FakeZalo, str, FakeGraph, str]
) -> None:
    graph = fakes[2]
    loyalty = loyalty_of(client)
    issued = await loyalty.checkin.create_code(
        points=10, voucher_template=None, max_uses=10, expires_at=loyalty.clock.now() + timedelta(days=1),
        store="q1", created_by="staff:e2e",
    )  # fmt: skip
    messenger = Messenger(client, graph, PSID)

    await messenger.get_started(ref=f"checkin.{issued.token}", times=2)
    await wait_for(lambda: len(graph.messages) >= 3)
    await settle()
    assert len(graph.messages) == 3
    assert graph.messages[0]["text"].startswith("Chào Lan!")
    assert graph.messages[1]["quick_replies"] == [{"content_type": "user_phone_number"}]
    assert "giữ mã check-in" in graph.messages[2]["text"]

    await messenger.share_phone("+84912345679", times=2)
    await wait_for(lambda: len(graph.messages) >= 7)
    await settle()
    texts = [message_text(m) for m in graph.messages[3:]]
    assert any("Check-in thành công tại q1! +10 điểm. Bạn đang có 10 điểm." in t for t in texts)
    customer = await loyalty.customers.by_identity(Identity(channel="messenger", user_id=PSID))
    assert customer is not None and customer.balance == 10
    assert len(await loyalty.checkin.history(customer.id)) == 1
    assert all(body["recipient"] == {"id": PSID} for body in graph.sent)


async def test_started_on_messenger_then_the_same_phone_on_zalo_is_one_customer(
    client: Client, fakes: tuple[FakeZalo, str, FakeGraph, str]
) -> None:
    zalo_fake, _, graph, _ = fakes
    loyalty = loyalty_of(client)
    messenger = Messenger(client, graph, PSID)
    await messenger.get_started()
    await messenger.share_phone("+84912345670")
    await wait_for(lambda: len(graph.messages) >= 6)
    first = await loyalty.customers.by_identity(Identity(channel="messenger", user_id=PSID))
    assert first is not None
    await loyalty.ledger.earn(first.id, 70, key="order:e2e-1", reason="order")

    zalo = Zalo(client, zalo_fake, ZALO_USER)
    await zalo.follow()
    await zalo.text("0912 345 670")
    await wait_for(lambda: len(zalo_fake.messages) >= 4)
    await settle()

    texts = [message_text(m["message"]) for m in zalo_fake.messages]
    assert any("đã gộp lại thành một. Bạn đang có 70 điểm" in t for t in texts)
    on_zalo = await loyalty.customers.by_identity(Identity(channel="zalo", user_id=ZALO_USER))
    assert on_zalo is not None and on_zalo.id == first.id and on_zalo.balance == 70
    assert len(await loyalty.vouchers.list_for(first.id)) == 1


async def test_emulator_referral_and_a_reward_redeemed_once(client: Client) -> None:
    loyalty = loyalty_of(client)
    referrer = Emulator(client, "lan")
    await referrer.send({"type": "follow"})
    await referrer.replies(2)
    await referrer.send({"type": "contact", "phone": "0912000001", "name": "Lan"})
    await referrer.replies(4)
    await referrer.send({"type": "text", "text": "giới thiệu"})
    (info, _menu) = await referrer.replies(2)
    code = next(w for w in str(info["text"]).split() if w.isupper() and len(w) == 6)

    friend = Emulator(client, "minh", flavor="messenger")
    await friend.send({"type": "referral", "ref": f"ref.{code}"}, times=2)
    noted = await friend.replies(2)
    assert "ghi nhận mã giới thiệu" in str(noted[0]["text"])
    await friend.send({"type": "contact", "phone": "0912000002"})
    got = await friend.replies(5)
    assert any("Bạn được cộng 20 điểm và một ưu đãi" in str(r.get("text")) for r in got)

    customer = await loyalty.customers.by_identity(Identity(channel="emulator", user_id="emulator-zalo:lan"))
    assert customer is not None and customer.balance == 50
    await referrer.send({"type": "postback", "payload": "sl:rewards"})
    _intro, card = await referrer.replies(2)
    assert card["type"] == "card"
    await referrer.send({"type": "postback", "payload": card["buttons"][0]["payload"]})
    (confirm,) = await referrer.replies(1)
    press = {"type": "postback", "payload": confirm["buttons"][0]["payload"]}
    await referrer.send(press)
    await referrer.send(press)  # pressed twice
    done = await referrer.replies(6)
    assert sum("Đổi quà thành công" in str(r.get("text")) for r in done) == 2  # the same redemption shown
    assert await loyalty.ledger.balance(customer.id) == 0
    assert len([v for v in await loyalty.vouchers.list_for(customer.id) if v.source == "reward"]) == 1


async def test_zalo_typed_check_in_code_and_a_sticker(
    client: Client, fakes: tuple[FakeZalo, str, FakeGraph, str]
) -> None:
    fake = fakes[0]
    loyalty = loyalty_of(client)
    issued = await loyalty.checkin.create_code(
        points=15, voucher_template=None, max_uses=10, expires_at=loyalty.clock.now() + timedelta(days=1),
        store="q3", created_by="staff:e2e",
    )  # fmt: skip
    zalo = Zalo(client, fake, ZALO_USER)
    await zalo.text(f"#{issued.short_code.lower()}")
    await wait_for(lambda: len(fake.messages) >= 1)
    assert "Để nhận điểm" in message_text(fake.messages[0]["message"])
    await zalo.share_phone("84912345671")
    await wait_for(lambda: len(fake.messages) >= 5)
    await zalo.sticker()
    await wait_for(lambda: len(fake.messages) >= 6)
    await settle()

    texts = [message_text(m["message"]) for m in fake.messages]
    assert any("Check-in thành công tại q3! +15 điểm" in t for t in texts)
    assert "Sticker dễ thương quá" in texts[-1]
