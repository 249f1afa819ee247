"""The minigames in the chat end to end, on each channel: signed Zalo and Messenger webhooks (and the
emulator's API) → the queue → the worker → the games flow and the loyalty core (real Redis, real
SecantusDB) → the fake platform servers, which check the request shapes. Button presses are posted twice
(a retried delivery) and again as a second tap: one play, one prize."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from app import keys
from app.factory import create_app
from app.settings import Settings
from bot.channels.zalo_payload import PREFIX
from loyalty.core import Loyalty
from loyalty.customers import Customer, Identity
from storage.clients import Document
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
Fakes = tuple[FakeZalo, str, FakeGraph, str]
ZALO_USER = "6618469916374226711"
PSID = "24000000000000078"


@pytest.fixture
async def fakes(aiohttp_server: ServerFactory) -> Fakes:
    zalo, graph = FakeZalo(), FakeGraph()
    zalo.users[ZALO_USER] = {"user_id": ZALO_USER, "display_name": "Minh", "user_is_follower": True}
    graph.profiles[PSID] = {"id": PSID, "first_name": "Lan", "last_name": "Trần"}
    zalo_server, graph_server = await aiohttp_server(zalo.app()), await aiohttp_server(graph.app())
    return zalo, str(zalo_server.make_url("")).rstrip("/"), graph, str(graph_server.make_url("")).rstrip("/")


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings, redis: Redis, fakes: Fakes) -> Client:
    """One app with the Zalo OA, the Messenger Page and the emulator, against the fake platforms."""
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


def live(cid: str, kind: str, *prizes: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": cid,
        "kind": kind,
        "name": f"Trò {cid}",
        "starts_at": now - timedelta(days=1),
        "ends_at": now + timedelta(days=10),
        "cost": {"free_turns_per_day": 1, "points": 0},
        "prizes": list(prizes),
        **overrides,
    }


GIFT = live(
    "hop-qua-e2e",
    "open_gift",
    {
        "id": "ly",
        "name": "Một ly miễn phí",
        "reward": "voucher",
        "voucher_template": "free_drink",
        "weight": 1,
    },
    eligibility={"phone_verified": True},
)
WHEEL = live(
    "quay-e2e", "wheel", {"id": "d25", "name": "25 điểm", "reward": "points", "points": 25, "weight": 1}
)
QUIZ = live(
    "do-vui-e2e",
    "quiz",
    {"id": "diem", "name": "40 điểm", "reward": "points", "points": 40},
    questions=[
        {"id": "q1", "text": "Cà phê sữa đá có gì?", "choices": ["Sữa đặc", "Muối"], "answer": 0},
        {"id": "q2", "text": "Bạc xỉu là gì?", "choices": ["Trà", "Cà phê nhiều sữa"], "answer": 1},
    ],
    score_prizes=[{"min_score": 2, "prize": "diem"}],
)


def loyalty_of(client: Client) -> Loyalty:
    resources = client.app[keys.RESOURCES]
    assert resources.loyalty is not None
    return resources.loyalty


def db_of(client: Client) -> AsyncDatabase[Document]:
    db: AsyncDatabase[Document] = client.app[keys.RESOURCES].db
    return db


async def settle() -> None:
    await asyncio.sleep(1.0)  # time enough for a wrong extra reply to arrive


async def customer(loyalty: Loyalty, channel: str, user_id: str) -> Customer:
    found = await loyalty.customers.by_identity(Identity(channel=channel, user_id=user_id))
    assert found is not None
    return found


def zalo_buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, payload) of the buttons of one Zalo message, the payload as the handler sees it."""
    payload = (message.get("attachment") or {}).get("payload") or {}
    out = []
    for button in payload.get("buttons") or []:
        assert button["type"] == "oa.query.hide" and button["payload"].startswith(PREFIX)
        out.append((button["title"], button["payload"].removeprefix(PREFIX)))
    return out


def find_zalo_button(messages: list[dict[str, Any]], title_part: str) -> str:
    for sent in reversed(messages):
        for title, payload in zalo_buttons(sent["message"]):
            if title_part in title:
                return payload
    raise AssertionError(f"no button {title_part!r}")


async def zalo_press(zalo: Zalo, payload: str, *, times: int = 1) -> None:
    await zalo.text(PREFIX + payload, times=times)  # what Zalo posts back for an oa.query.hide button


async def test_zalo_a_gift_box_after_the_phone_with_a_retried_delivery_and_a_double_tap(
    client: Client, fakes: Fakes
) -> None:
    fake = fakes[0]
    loyalty = loyalty_of(client)
    await loyalty.games.save_campaign(GIFT)
    zalo = Zalo(client, fake, ZALO_USER)
    await zalo.follow()
    await wait_for(lambda: len(fake.messages) >= 2)

    await zalo_press(
        zalo, "sl:games"
    )  # the OA menu's Games entry (typed text would answer the phone question)
    await wait_for(lambda: any("Trò hop-qua-e2e" in message_text(m["message"]) for m in fake.messages))
    await settle()
    listed = [message_text(m["message"]) for m in fake.messages]
    assert any("Chia sẻ số điện thoại để chơi" in t for t in listed)
    seen = len(fake.messages)
    await zalo_press(zalo, "sl:game:hop-qua-e2e")
    await wait_for(lambda: len(fake.messages) > seen)
    ask = fake.messages[seen]["message"]
    assert ask["attachment"]["payload"]["template_type"] == "request_user_info"

    await zalo.share_phone("84912345672")
    await wait_for(lambda: any("đã được lưu" in message_text(m["message"]) for m in fake.messages[seen:]))
    await settle()
    seen = len(fake.messages)
    await zalo_press(zalo, "sl:game:hop-qua-e2e")
    await wait_for(lambda: len(fake.messages) > seen)
    await settle()
    (screen,) = fake.messages[seen:]
    assert [t for t, _ in zalo_buttons(screen["message"])] == ["🎁 Hộp 1", "🎁 Hộp 2", "🎁 Hộp 3"]

    seen = len(fake.messages)
    await zalo_press(zalo, find_zalo_button(fake.messages, "Hộp 2"), times=2)  # a retried delivery
    await zalo_press(zalo, find_zalo_button(fake.messages, "Hộp 3"))  # and a second tap
    await wait_for(lambda: sum("Chúc mừng" in message_text(m["message"]) for m in fake.messages[seen:]) >= 2)
    await settle()

    results = [message_text(m["message"]) for m in fake.messages[seen:]]
    assert sum('Chúc mừng! Bạn trúng "Một ly miễn phí"' in t for t in results) == 2  # the same play shown
    assert sum("Một ly đồ uống size M miễn phí" in t for t in results) == 2  # the voucher card, twice
    found = await customer(loyalty, "zalo", ZALO_USER)
    assert await db_of(client)["game_plays"].count_documents({"customer_id": found.id}) == 1
    assert len([v for v in await loyalty.vouchers.list_for(found.id) if v.source == "game"]) == 1


async def test_messenger_a_quiz_as_quick_replies_with_the_last_answer_posted_twice(
    client: Client, fakes: Fakes
) -> None:
    graph = fakes[2]
    loyalty = loyalty_of(client)
    await loyalty.games.save_campaign(QUIZ)
    messenger = Messenger(client, graph, PSID)
    await messenger.get_started()
    await messenger.share_phone("+84912345673")
    await wait_for(lambda: len(graph.messages) >= 6)
    await settle()

    seen = len(graph.messages)
    await messenger.text("game")
    await wait_for(lambda: any("Trò do-vui-e2e" in message_text(m) for m in graph.messages[seen:]))
    await settle()
    card = next(m for m in graph.messages[seen:] if "Trò do-vui-e2e" in message_text(m))
    element = card["attachment"]["payload"]["elements"][0]
    assert element["buttons"][0]["payload"] == "sl:game:do-vui-e2e"

    seen = len(graph.messages)
    await messenger.press("sl:game:do-vui-e2e", "Chơi ngay")
    await wait_for(lambda: len(graph.messages) >= seen + 2)
    await settle()
    intro, q1 = graph.messages[seen:]
    assert "2 câu hỏi" in intro["text"]
    assert q1["text"] == "❓ Câu 1/2: Cà phê sữa đá có gì?"
    assert [o["title"] for o in q1["quick_replies"]] == ["Sữa đặc", "Muối"]

    taps = itertools.count(1)

    async def answer(message: dict[str, Any], title: str, *, times: int = 1) -> None:
        option = next(o for o in message["quick_replies"] if o["title"] == title)
        mid = f"m_quiz_{next(taps)}"
        body = {"mid": mid, "text": title, "quick_reply": {"payload": option["payload"]}}
        await messenger.post({"message": body}, times=times)

    seen = len(graph.messages)
    await answer(q1, "Sữa đặc")
    await wait_for(lambda: len(graph.messages) > seen)
    q2 = graph.messages[seen]
    assert q2["text"].startswith("❓ Câu 2/2")
    seen = len(graph.messages)
    await answer(q2, "Cà phê nhiều sữa", times=2)  # a retried delivery
    await answer(q2, "Cà phê nhiều sữa")  # a second tap
    await wait_for(lambda: sum("Bạn trả lời đúng 2/2" in message_text(m) for m in graph.messages[seen:]) >= 2)
    await settle()

    texts = [message_text(m) for m in graph.messages[seen:]]
    assert sum("Bạn trả lời đúng 2/2 câu" in t for t in texts) == 2
    assert any("Bạn nhận được 40 điểm. Bạn đang có 40 điểm." in t for t in texts)
    found = await customer(loyalty, "messenger", PSID)
    assert await loyalty.ledger.balance(found.id) == 40
    assert await db_of(client)["game_plays"].count_documents({"customer_id": found.id}) == 1
    assert all(body["recipient"] == {"id": PSID} for body in graph.sent)


async def test_emulator_the_wheel_pressed_twice_gives_one_prize(client: Client) -> None:
    loyalty = loyalty_of(client)
    await loyalty.games.save_campaign(WHEEL)
    emulator = Emulator(client, "an", flavor="messenger")
    await emulator.send({"type": "follow"})
    await emulator.replies(2)
    await emulator.send({"type": "contact", "phone": "0912000011"})
    await emulator.replies(4)

    await emulator.send({"type": "text", "text": "choi game"}, times=2)  # no diacritics, sent twice
    listed = await emulator.replies(4)
    card = next(r for r in listed if r.get("title") == "Trò quay-e2e")
    await emulator.send({"type": "postback", "payload": card["buttons"][0]["payload"]})
    (screen,) = await emulator.replies(1)
    assert [b["title"] for b in screen["buttons"]] == ["🎡 Quay"]
    spin = {"type": "postback", "payload": screen["buttons"][0]["payload"]}
    await emulator.send(spin, times=2)  # a retried request
    await emulator.send(spin)  # a double tap
    done = await emulator.replies(4)

    assert sum("Bạn nhận được 25 điểm. Bạn đang có 25 điểm." in str(r.get("text")) for r in done) == 2
    found = await customer(loyalty, "emulator", "emulator-messenger:an")
    assert await loyalty.ledger.balance(found.id) == 25
    assert await db_of(client)["game_plays"].count_documents({"customer_id": found.id}) == 1
