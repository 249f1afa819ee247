"""``docs/conversations.md`` is generated here: each flow is played through the real dispatcher, handlers
and loyalty core (SecantusDB, a frozen clock), and the transcript written as the customer would see it.

The test fails when the committed document differs from what the flows say now. Regenerate it with
``UPDATE_CONVERSATIONS=1 .venv/bin/pytest tests/handlers/test_conversations_doc.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot import Buttons, ContactShared, Dispatcher, Follow, Message, Postback, QuickReplies, Referral
from bot.replies import Card, Reply, RequestPhone
from bot.types import Attachment, BaseUpdate
from handlers.games import nonce_of, play_key
from loyalty.clock import FrozenClock
from loyalty.core import Loyalty
from loyalty.customers import Identity
from loyalty.games import SeedRecord, TableLine, commitment_of, draw_value, pick, play_id_for
from tests.handlers.conftest import Outbox, make

DOC = Path(__file__).resolve().parents[2] / "docs" / "conversations.md"
Step = Callable[[], Awaitable[BaseUpdate | None]]

HEADER = """# Conversations

What customers and the bot say to each other, flow by flow. **Generated** by
`tests/handlers/test_conversations_doc.py` from the real handlers, copy and loyalty core (do not edit by
hand: `UPDATE_CONVERSATIONS=1 .venv/bin/pytest tests/handlers/test_conversations_doc.py`). The brand is
"Cà Phê Sữa" with the demo program. Random codes are shown as `ABCDE-FGHJK` (vouchers), `LAN234`
(referral) and `K7P2MXRT` (check-in). Buttons are in [brackets]: Zalo shows them as buttons, Messenger as
buttons or quick replies (the framework fits them, `bot/render.py`).
"""


def render_reply(reply: Reply) -> list[str]:
    if isinstance(reply, Card):
        lines = [f"🃏 **{reply.title}** — {reply.subtitle or ''}".rstrip(" —")]
        if reply.buttons:
            lines.append(" ".join(f"[{b.title}]" for b in reply.buttons))
        return lines
    if isinstance(reply, RequestPhone):
        return [*reply.text.splitlines(), "[📱 share phone number]"]
    lines = getattr(reply, "text", "").splitlines()
    if isinstance(reply, Buttons):
        lines.append(" ".join(f"[{b.title}]" for b in reply.buttons))
    if isinstance(reply, QuickReplies):
        lines.append(" ".join(f"[{o.title}]" for o in reply.options))
    return lines


def describe(update: BaseUpdate) -> str:
    if isinstance(update, Follow):
        return "*(follows the OA / presses Get Started)*"
    if isinstance(update, Postback):
        return f"*(presses [{update.title or update.payload}])*"
    if isinstance(update, ContactShared):
        return f"*(shares the phone number {update.phone})*"
    if isinstance(update, Referral):
        return f"*(scans a QR / opens a link: ref `{update.ref}`)*"
    if isinstance(update, Message) and update.attachments:
        return f"*(sends a {update.attachments[0].type.value})*"
    assert isinstance(update, Message)
    return str(update.text)


class Transcript:
    def __init__(self, dp: Dispatcher, outbox: Outbox, channel: str, user: str) -> None:
        self.dp, self.outbox, self.channel, self.user = dp, outbox, channel, user
        self.lines: list[str] = []
        self.last: list[Reply] = []

    async def say(self, kind: type[BaseUpdate], *, event_id: str | None = None, **fields: Any) -> list[Reply]:
        update = make(kind, user=self.user, channel=self.channel, **fields)
        if event_id is not None:  # a known event id: the nonce of the screen it shows is known in advance
            update = update.model_copy(update={"event_id": event_id})
        await self.dp.feed_update(update)
        self.last = self.outbox.take()
        self.lines.append(f"> 🧑 {describe(update)}")
        self.lines.append(">")
        for reply in self.last:
            for line in render_reply(reply):
                self.lines.append(f"> 🤖 {line}" if line else ">")
        self.lines.append("")
        return self.last

    def button(self, title_part: str, card: str | None = None) -> tuple[str, str]:
        for reply in self.last:
            if card is not None and not (isinstance(reply, Card) and reply.title == card):
                continue
            for button in [*getattr(reply, "buttons", ()), *getattr(reply, "options", ())]:
                if title_part in button.title and button.payload:
                    return button.title, button.payload
        raise AssertionError(f"no button {title_part!r} in {self.last}")

    async def press(
        self, title_part: str, *, event_id: str | None = None, card: str | None = None
    ) -> list[Reply]:
        title, payload = self.button(title_part, card)
        return await self.say(Postback, payload=payload, title=title, event_id=event_id)


async def flows(
    dp: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> list[tuple[str, str, Transcript]]:
    out: list[tuple[str, str, Transcript]] = []

    outbox.profiles["zalo-an"] = {"display_name": "An"}
    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Follow)
    await t.say(Message, text="0912 34")
    await t.say(Message, text="0912 345 678")
    out.append(("1. Follow, phone number, welcome voucher (Zalo)",
                "Greeting by the profile's name, a wrong number corrected, the number typed in a common "
                "format, the welcome voucher as a card, the main menu.", t))  # fmt: skip

    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="zalo-an"))
    assert customer is not None
    await loyalty.ledger.earn(customer.id, 120, key="doc:order-1", reason="order")
    clock.advance(timedelta(days=2))
    await loyalty.ledger.earn(customer.id, 10, key="doc:checkin-1", reason="checkin")
    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Message, text="diem")
    await t.say(Message, text="ưu đãi")
    await t.say(Message, text="đổi quà")
    await t.press("Đổi quà này")
    await t.press("Xác nhận")
    out.append(("2. Points, my vouchers, rewards (Zalo)",
                "\"diem\" without diacritics works; rewards the customer can afford, a confirm step, the "
                "voucher in the chat.", t))  # fmt: skip

    issued = await loyalty.checkin.create_code(
        points=10, voucher_template=None, max_uses=100, expires_at=clock.now() + timedelta(days=7),
        store="Quận 1", created_by="staff:doc",
    )  # fmt: skip
    outbox.profiles["psid-lan"] = {"first_name": "Lan"}
    t = Transcript(dp, outbox, "messenger", "psid-lan")
    await t.say(Postback, payload="sl:get_started", title="Bắt đầu")
    await t.say(Referral, ref=f"checkin.{issued.token}", source="SHORTLINK")
    await t.say(ContactShared, phone="+84987654321")
    await t.say(Referral, ref=f"checkin.{issued.token}", source="SHORTLINK")
    out.append(("3. QR check-in of a first-time customer (Messenger)",
                "The m.me link of the QR carries `checkin.<token>`: kept while the phone is asked, then "
                "rewarded; the same QR again is refused with its own message.", t))  # fmt: skip

    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Message, text=f"#{issued.short_code}")
    await t.say(Message, text="#ABCD2345")
    out.append(("4. Check-in by the short code (Zalo)",
                "A Zalo follow carries no ref, so the code printed under the QR is typed; then a wrong one.",
                t))  # fmt: skip

    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Message, text="giới thiệu")
    referrer = t.lines[:]
    friend = Transcript(dp, outbox, "messenger", "psid-minh")
    friend.lines = referrer
    await friend.say(Postback, payload="sl:get_started", title="Bắt đầu")
    await friend.say(Referral, ref=f"ref.{customer.referral_code}", source="SHORTLINK")
    await friend.say(ContactShared, phone="+84901234567")
    out.append(("5. Referral",
                "The referrer asks for their code (Zalo); a friend opens the m.me link with "
                "`ref.<code>` (Messenger) and is credited when the phone is verified. The referrer is not "
                "messaged proactively (see handlers/referral.py).", friend))  # fmt: skip

    t = Transcript(dp, outbox, "messenger", "psid-lan")
    await t.say(Message, text="menu")
    await t.say(Message, text="cho mình hỏi giờ mở cửa")
    await t.say(Message, attachments=(Attachment(type="sticker"),))
    out.append(
        (
            "6. Menu, help and fallback (Messenger)",
            "Unknown text and stickers are answered, never silence.",
            t,
        )
    )

    # The draws are made by the engine from the campaign's seed; the doc fixes the seeds so that the
    # transcript stays the same from run to run (the play ids come from the screens' event ids).
    await fix_seed(
        loyalty, "vong-quay-tet", customer.id, {"doc-wheel-1": "giam-50k", "doc-wheel-2": "diem-20"}
    )
    await fix_seed(loyalty, "mo-qua", customer.id, {"doc-gift-1": "diem-50"})
    t = Transcript(dp, outbox, "zalo", "zalo-an")
    await t.say(Message, text="choi game")
    await t.press("Chơi ngay", event_id="doc-wheel-1")
    await t.press("Quay")
    await t.press("Chơi lượt nữa", event_id="doc-wheel-2")
    await t.press("Quay")
    await t.press("Trò chơi khác")
    boxes = await t.press("Chơi ngay", event_id="doc-gift-1", card="Mở hộp quà")
    await t.press("Hộp 2")
    t.last = boxes  # a second tap on the same screen
    await t.press("Hộp 3")
    out.append(("7. Minigames (Zalo)",
                "\"choi game\" lists the live games with the turns left; the wheel's free turn of the day "
                "wins a voucher, the next turn is bought with 20 points; the gift boxes' turn was granted by "
                "the check-in of flow 4. The prize is drawn on the server: the box chosen changes the words "
                "only, and a second tap (box 3) shows the same play. (This document fixes the campaigns' "
                "seeds so that the draws do not change from one generation to the next.)", t))  # fmt: skip

    await loyalty.games.save_campaign(DOC_QUIZ | {"starts_at": clock.now() - timedelta(days=1),
                                                  "ends_at": clock.now() + timedelta(days=30)})  # fmt: skip
    t = Transcript(dp, outbox, "messenger", "psid-lan")
    await t.say(Message, text="trò chơi")
    await t.press("Chơi ngay", card="Đố vui cà phê")
    await t.press("Sữa đặc")
    await t.press("Trà")
    await t.press("7 giờ")
    out.append(("8. A quiz (Messenger)",
                "A quiz saved at runtime (`loyalty.games.save_campaign`): one question at a time as quick "
                "replies, the answers checked by the core after the last one, and only then the right ones "
                "shown.", t))  # fmt: skip
    return out


DOC_QUIZ: dict[str, Any] = {
    "id": "do-vui",
    "kind": "quiz",
    "name": "Đố vui cà phê",
    "description": "Đúng cả ba câu: một phiếu giảm 50.000đ.",
    "prizes": [
        {
            "id": "giam-50k",
            "name": "Phiếu giảm 50.000đ",
            "reward": "voucher",
            "voucher_template": "discount_50k",
        },
        {"id": "diem-10", "name": "10 điểm thưởng", "reward": "points", "points": 10},
    ],
    "questions": [
        {
            "id": "q1",
            "text": "Cà phê sữa đá pha với gì?",
            "choices": ["Sữa đặc", "Sữa tươi", "Kem"],
            "answer": 0,
        },
        {"id": "q2", "text": "Bạc xỉu có nhiều gì hơn?", "choices": ["Cà phê", "Sữa", "Trà"], "answer": 1},
        {"id": "q3", "text": "Quán mở cửa lúc mấy giờ?", "choices": ["6 giờ", "7 giờ", "8 giờ"], "answer": 1},
    ],
    "score_prizes": [{"min_score": 3, "prize": "giam-50k"}, {"min_score": 2, "prize": "diem-10"}],
}


async def fix_seed(loyalty: Loyalty, campaign_id: str, customer_id: str, wanted: dict[str, str]) -> None:
    """Store a seed for the campaign under which the plays of the screens shown by these event ids draw
    the wanted prizes (first rounds, every prize in stock)."""
    campaign = await loyalty.games.campaign(campaign_id)
    table = tuple(TableLine(prize_id=p.id, weight=p.weight) for p in campaign.prizes if p.weight > 0)
    play_ids = {
        play_id_for(campaign.id, customer_id, play_key(nonce_of(e))): prize for e, prize in wanted.items()
    }
    for n in itertools.count():
        seed = hashlib.sha256(f"doc:{campaign_id}:{n}".encode()).digest()
        if all(pick(draw_value(seed, pid, 0), table) == prize for pid, prize in play_ids.items()):
            break
    record = SeedRecord(
        campaign_id=campaign.id,
        seed=seed.hex(),
        commitment=commitment_of(seed),
        created_at=loyalty.clock.now(),
    )
    assert (await loyalty.games.repo.create_seed(record)).seed == seed.hex(), (
        "the campaign had a seed already"
    )


def render_doc(played: list[tuple[str, str, Transcript]], secrets: dict[str, str]) -> str:
    parts = [HEADER]
    for title, note, transcript in played:
        parts += [f"## {title}", "", note, "", *transcript.lines]
    text = "\n".join(parts).rstrip() + "\n"
    for secret, shown in secrets.items():
        text = text.replace(secret, shown)
    return re.sub(r"\b[A-HJ-NP-Z2-9]{5}-[A-HJ-NP-Z2-9]{5}\b", "ABCDE-FGHJK", text)


async def test_the_conversations_doc_is_up_to_date(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    played = await flows(dispatcher, outbox, loyalty, clock)
    an = await loyalty.customers.by_identity(Identity(channel="zalo", user_id="zalo-an"))
    codes = await loyalty.checkin.list_codes()
    assert an is not None and codes
    secrets = {an.referral_code: "LAN234", codes[0].short_code: "K7P2MXRT"}
    secrets[loyalty.checkin.token_for(codes[0])] = "<token>"
    text = render_doc(played, secrets)

    if os.environ.get("UPDATE_CONVERSATIONS") == "1":
        DOC.write_text(text, encoding="utf-8")
    assert DOC.exists(), "run with UPDATE_CONVERSATIONS=1 to write docs/conversations.md"
    assert DOC.read_text(encoding="utf-8") == text, (
        "docs/conversations.md is stale; regenerate it with "
        "UPDATE_CONVERSATIONS=1 .venv/bin/pytest tests/handlers/test_conversations_doc.py"
    )
