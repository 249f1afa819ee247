"""The minigames in the chat, through a real dispatcher, the real copy and the real loyalty core (SecantusDB,
Redis for the play rate limit): the list, each kind's play screen, prizes delivered, every refusal, the
quiz one question at a time, and double taps and retried deliveries that play once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from app.loyalty import build_loyalty
from app.paths import MESSAGES_DIR
from bot import Buttons, ContactShared, Dispatcher, Follow, Message, Postback, QuickReplies
from bot.fsm.storage import StorageKey
from bot.i18n import Messages
from bot.replies import Card, Reply, RequestPhone
from handlers.games import GameQuiz
from loyalty.clock import FrozenClock
from loyalty.core import Loyalty
from loyalty.customers import Customer, Identity, ProfileUpdate
from loyalty.program import Program, load_program
from storage.clients import Document
from tests.handlers.conftest import SECRET, START, Outbox, make
from tests.handlers.test_flows import texts


@pytest.fixture
def program() -> Program:
    """The demo program without its games: each test saves the campaigns it plays."""
    return Program.model_validate({**load_program().model_dump(), "games": []})


@pytest.fixture
def loyalty(db: AsyncDatabase[Document], program: Program, clock: FrozenClock, redis: Redis) -> Loyalty:
    return build_loyalty(db, program, clock, secret_key=SECRET, redis=redis)


def campaign(cid: str, kind: str, *prizes: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": cid,
        "kind": kind,
        "name": f"Trò {cid}",
        "starts_at": START - timedelta(days=1),
        "ends_at": START + timedelta(days=10),
        "cost": {"free_turns_per_day": 1, "points": 0},
        "prizes": list(prizes)
        or [{"id": "p", "name": "10 điểm", "reward": "points", "points": 10, "weight": 1}],
    }
    data.update(overrides)
    return data


VOUCHER = {
    "id": "ly",
    "name": "Một ly miễn phí",
    "reward": "voucher",
    "voucher_template": "free_drink",
    "weight": 1,
}
NOTHING = {"id": "hut", "name": "Chúc may mắn", "reward": "nothing", "weight": 1}
QUIZ = campaign(
    "do-vui",
    "quiz",
    {"id": "ly", "name": "Một ly miễn phí", "reward": "voucher", "voucher_template": "free_drink"},
    {"id": "diem", "name": "10 điểm", "reward": "points", "points": 10},
    questions=[
        {"id": "q1", "text": "Cà phê sữa đá có gì?", "choices": ["Sữa đặc", "Muối"], "answer": 0},
        {"id": "q2", "text": "Bạc xỉu là gì?", "choices": ["Trà", "Cà phê nhiều sữa", "Bánh"], "answer": 1},
        {
            "id": "q3",
            "text": "Quán mở cửa lúc mấy giờ?",
            "choices": ["5 giờ", "6 giờ", "7 giờ", "8 giờ", "9 giờ", "10 giờ"],
            "answer": 5,
        },
    ],
    score_prizes=[{"min_score": 3, "prize": "ly"}, {"min_score": 2, "prize": "diem"}],
)


async def save(loyalty: Loyalty, *campaigns: dict[str, Any]) -> None:
    for data in campaigns:
        await loyalty.games.save_campaign(data)


async def customer_of(dp: Dispatcher, user: str = "u1") -> Customer:
    loyalty: Loyalty = dp["loyalty"]
    customer = await loyalty.customers.by_identity(Identity(channel="zalo", user_id=user))
    assert customer is not None
    return customer


async def onboard(dp: Dispatcher, outbox: Outbox, user: str = "u1", phone: str = "0912345678") -> Customer:
    await dp.feed_update(make(Follow, user=user))
    await dp.feed_update(make(ContactShared, user=user, phone=phone))
    outbox.take()
    return await customer_of(dp, user)


def buttons_of(replies: list[Reply]) -> list[tuple[str, str]]:
    out = []
    for reply in replies:
        for button in [*getattr(reply, "buttons", ()), *getattr(reply, "options", ())]:
            if button.payload:
                out.append((button.title, button.payload))
    return out


def payload(replies: list[Reply], title_part: str) -> str:
    for title, value in buttons_of(replies):
        if title_part in title:
            return value
    raise AssertionError(f"no button {title_part!r} in {replies}")


async def press(dp: Dispatcher, outbox: Outbox, value: str, **kw: Any) -> list[Reply]:
    await dp.feed_update(make(Postback, payload=value, **kw))
    return outbox.take()


async def open_screen(dp: Dispatcher, outbox: Outbox, cid: str, **kw: Any) -> list[Reply]:
    return await press(dp, outbox, f"sl:game:{cid}", **kw)


async def plays_of(db: AsyncDatabase[Document], customer: Customer) -> list[Document]:
    return await db["game_plays"].find({"customer_id": customer.id}).to_list()


# ------------------------------------------------------------------ the list
@pytest.mark.parametrize("word", ["chơi game", "choi game", "game", "GAMES", "trò chơi", "tro choi"])
async def test_the_words_list_the_live_games_with_their_turns(
    word: str, dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await save(
        loyalty,
        campaign("vong-quay", "wheel", cost={"free_turns_per_day": 2, "points": 20}),
        campaign("mua", "scratch", cost={"free_turns_per_day": 0, "points": 15}),
        campaign("cu", "wheel", ends_at=START - timedelta(hours=1), starts_at=START - timedelta(days=3)),
    )
    await onboard(dispatcher, outbox)

    await dispatcher.feed_update(make(Message, text=word))

    intro, *cards = outbox.take()
    assert "Đang có 2 trò chơi có quà" in texts([intro])
    assert [c.title for c in cards if isinstance(c, Card)] == ["Trò mua", "Trò vong-quay"]  # stored: by id
    assert "Còn 2 lượt miễn phí hôm nay" in texts(cards)
    assert "15 điểm một lượt" in texts(cards)
    assert [p for _, p in buttons_of(cards)] == ["sl:game:mua", "sl:game:vong-quay"]


async def test_the_games_button_lists_them_too_and_no_game_is_said_plainly(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    (none,) = await press(dispatcher, outbox, "sl:games")
    assert isinstance(none, QuickReplies) and "chưa có trò chơi nào" in none.text

    await save(loyalty, campaign("vong-quay", "wheel"))
    replies = await press(dispatcher, outbox, "sl:games")
    assert "Đang có 1 trò chơi" in texts(replies)


# ------------------------------------------------------------------ playing each kind
async def test_a_gift_box_needs_the_phone_first_then_plays_once_for_a_double_tap(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, db: AsyncDatabase[Document]
) -> None:
    await save(loyalty, campaign("hop-qua", "open_gift", VOUCHER, eligibility={"phone_verified": True}))
    await dispatcher.feed_update(make(Message, text="chơi game"))
    listed = outbox.take()
    assert "Chia sẻ số điện thoại để chơi" in texts(listed)

    (ask,) = await press(dispatcher, outbox, payload(listed, "Chơi ngay"))
    assert isinstance(ask, RequestPhone) and ask.text.startswith("Để chơi game có quà")
    await dispatcher.feed_update(make(ContactShared, phone="0912345678"))
    after_phone = outbox.take()
    assert "+84912***678" in texts(after_phone)
    assert "Còn 1 lượt miễn phí hôm nay" in texts(after_phone)  # the list, once the phone is known

    (screen,) = await open_screen(dispatcher, outbox, "hop-qua")
    assert isinstance(screen, Buttons) and "chọn một trong ba hộp quà" in screen.text
    assert [b.title for b in screen.buttons] == ["🎁 Hộp 1", "🎁 Hộp 2", "🎁 Hộp 3"]
    assert len({(b.payload or "").rsplit(":", 1)[0] for b in screen.buttons}) == 1  # one nonce
    box2 = make(Postback, payload=payload([screen], "Hộp 2"))
    await dispatcher.feed_update(box2)
    first = outbox.take()
    await dispatcher.feed_update(box2)  # a retried delivery of the same event
    await dispatcher.feed_update(make(Postback, payload=payload([screen], "Hộp 3")))  # a second tap
    again = outbox.take()

    assert "Bạn mở hộp quà số 2" in texts(first)
    assert 'Chúc mừng! Bạn trúng "Một ly miễn phí"' in texts(first)
    (card,) = [r for r in first if isinstance(r, Card)]
    assert card.title == "Một ly đồ uống size M miễn phí"
    assert "Bạn mở hộp quà số 3" in texts(again) and 'trúng "Một ly miễn phí"' in texts(again)
    customer = await customer_of(dispatcher)
    assert len(await plays_of(db, customer)) == 1
    assert len([v for v in await loyalty.vouchers.list_for(customer.id) if v.source == "game"]) == 1
    last = first[-1]
    assert isinstance(last, QuickReplies)  # what next: no turn left today, so no "play again"
    assert [o.payload for o in last.options] == ["sl:games", "sl:help"]


async def test_the_wheel_gives_points_then_a_turn_bought_with_points_then_the_daily_limit(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, db: AsyncDatabase[Document]
) -> None:
    prize = {"id": "d30", "name": "30 điểm", "reward": "points", "points": 30, "weight": 1}
    await save(
        loyalty,
        campaign(
            "vong-quay", "wheel", prize, cost={"free_turns_per_day": 1, "points": 20}, limits={"per_day": 2}
        ),
    )
    customer = await onboard(dispatcher, outbox)

    (screen,) = await open_screen(dispatcher, outbox, "vong-quay")
    assert isinstance(screen, Buttons) and [b.title for b in screen.buttons] == ["🎡 Quay"]
    assert "Lượt này miễn phí" in screen.text
    result = await press(dispatcher, outbox, payload([screen], "Quay"))
    assert "Vòng quay dừng lại" in texts(result)
    assert "Bạn nhận được 30 điểm. Bạn đang có 30 điểm." in texts(result)
    assert payload(result, "Chơi lượt nữa") == "sl:game:vong-quay"

    (bought,) = await press(dispatcher, outbox, payload(result, "Chơi lượt nữa"))
    assert "Lượt này dùng 20 điểm (bạn đang có 30 điểm)" in texts([bought])
    result = await press(dispatcher, outbox, payload([bought], "Quay"))
    assert "Bạn đang có 40 điểm" in texts(result) and "Lượt này đã dùng 20 điểm" in texts(result)
    assert await loyalty.ledger.balance(customer.id) == 40

    (limit,) = await open_screen(dispatcher, outbox, "vong-quay")
    assert 'Hôm nay bạn đã chơi "Trò vong-quay" đủ 2 lượt' in texts([limit])
    assert len(await plays_of(db, customer)) == 2


async def test_not_enough_points_for_a_bought_turn_is_said_before_playing(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await save(loyalty, campaign("mua", "shake_tree", cost={"free_turns_per_day": 0, "points": 25}))
    await onboard(dispatcher, outbox)
    (answer,) = await open_screen(dispatcher, outbox, "mua")
    assert 'Mỗi lượt "Trò mua" cần 25 điểm, bạn đang có 0 điểm' in texts([answer])


@pytest.mark.parametrize(
    ("kind", "button", "words"),
    [
        ("scratch", "🪙 Cào", "Bạn cào lớp phủ"),
        ("shake_tree", "🌳 Lắc", "Bạn lắc cây"),
        ("flip_card", "🃏 Lá 1", "lật lá bài số 1"),
    ],
)
async def test_each_kind_has_its_buttons_and_nothing_won_says_better_luck(
    *, kind: str, button: str, words: str, dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await save(loyalty, campaign("tro", kind, NOTHING))
    await onboard(dispatcher, outbox)
    screen = await open_screen(dispatcher, outbox, "tro")
    result = await press(dispatcher, outbox, payload(screen, button))
    assert words in texts(result)
    assert "Chúc bạn may mắn lần sau" in texts(result)
    assert not any(isinstance(r, Card) for r in result)


# ------------------------------------------------------------------ refusals
async def test_no_turns_left_says_how_to_get_more(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    await save(
        loyalty,
        campaign("quay", "wheel", cost={"free_turns_per_day": 1, "points": 0}, turns={"per_checkin": 1}),
    )
    await onboard(dispatcher, outbox)
    await press(dispatcher, outbox, payload(await open_screen(dispatcher, outbox, "quay"), "Quay"))

    (answer,) = await open_screen(dispatcher, outbox, "quay")
    assert 'Bạn đã hết lượt chơi "Trò quay". Check-in tại cửa hàng để nhận thêm lượt.' in texts([answer])
    assert "Ngày mai bạn lại có lượt miễn phí" in texts([answer])

    clock.advance(timedelta(days=1))
    (screen,) = await open_screen(dispatcher, outbox, "quay")
    assert isinstance(screen, Buttons) and "Lượt này miễn phí" in screen.text


async def test_a_check_in_from_the_chat_grants_a_turn(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    await save(
        loyalty,
        campaign(
            "mo-qua", "open_gift", cost={"free_turns_per_day": 0, "points": 0}, turns={"per_checkin": 1}
        ),
    )
    await onboard(dispatcher, outbox)
    (before,) = await open_screen(dispatcher, outbox, "mo-qua")
    assert "Bạn đã hết lượt" in texts([before])
    issued = await loyalty.checkin.create_code(
        points=10, voucher_template=None, max_uses=10, expires_at=clock.now() + timedelta(days=1),
        store="q1", created_by="staff:t",
    )  # fmt: skip
    await dispatcher.feed_update(make(Message, text=f"#{issued.short_code}"))
    assert "Check-in thành công" in texts(outbox.take())

    (screen,) = await open_screen(dispatcher, outbox, "mo-qua")
    assert isinstance(screen, Buttons)
    assert "Lượt này dùng 1 lượt được tặng (bạn đang có 1 lượt được tặng)" in screen.text


async def test_a_tier_or_followers_only_game_says_who_it_is_for(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await save(
        loyalty,
        campaign("vang", "wheel", eligibility={"min_tier": "gold"}),
        campaign("fan", "wheel", eligibility={"followers_only": True}),
    )
    await onboard(dispatcher, outbox)
    (tier,) = await open_screen(dispatcher, outbox, "vang")
    assert '"Trò vang" dành cho thành viên hạng Gold trở lên' in texts([tier])

    await dispatcher.feed_update(make(Message, user="stranger", text="0912000009"))  # never followed
    outbox.take()
    (fan,) = await open_screen(dispatcher, outbox, "fan", user="stranger")
    assert '"Trò fan" dành cho người đang theo dõi Cà Phê Sữa' in texts([fan])


async def test_a_sold_out_game_says_so_and_takes_no_turn(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    prize = {"id": "p", "name": "10 điểm", "reward": "points", "points": 10, "weight": 1, "stock": 1}
    await save(loyalty, campaign("cay", "shake_tree", prize))
    await onboard(dispatcher, outbox, user="a", phone="0912000001")
    await press(
        dispatcher, outbox, payload(await open_screen(dispatcher, outbox, "cay", user="a"), "Lắc"), user="a"
    )
    b = await onboard(dispatcher, outbox, user="b", phone="0912000002")

    screen = await open_screen(dispatcher, outbox, "cay", user="b")
    answer = await press(dispatcher, outbox, payload(screen, "Lắc"), user="b")

    assert 'quà của "Trò cay" đã được trao hết' in texts(answer)
    assert (await loyalty.games.status(b.id, "cay")).free_turns_left == 1
    assert await loyalty.ledger.balance(b.id) == 0


async def test_an_ended_game_and_an_old_button_after_the_end(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, clock: FrozenClock
) -> None:
    await save(loyalty, campaign("ngan", "wheel", ends_at=START + timedelta(hours=1)))
    await onboard(dispatcher, outbox)
    screen = await open_screen(dispatcher, outbox, "ngan")
    clock.advance(timedelta(hours=2))

    assert '"Trò ngan" đã kết thúc' in texts(await press(dispatcher, outbox, payload(screen, "Quay")))
    assert '"Trò ngan" đã kết thúc' in texts(await open_screen(dispatcher, outbox, "ngan"))
    assert "chưa có trò chơi nào" in texts(await press(dispatcher, outbox, "sl:games"))


async def test_plays_too_fast_are_rate_limited(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, db: AsyncDatabase[Document]
) -> None:
    await save(
        loyalty,
        campaign(
            "nhanh",
            "wheel",
            cost={"free_turns_per_day": 5, "points": 0},
            rate_limit={"plays": 1, "seconds": 60},
        ),
    )
    customer = await onboard(dispatcher, outbox)
    await press(dispatcher, outbox, payload(await open_screen(dispatcher, outbox, "nhanh"), "Quay"))
    second = await press(dispatcher, outbox, payload(await open_screen(dispatcher, outbox, "nhanh"), "Quay"))
    assert "Bạn chơi nhanh quá! Đợi vài giây rồi thử lại nhé." in texts(second)
    assert len(await plays_of(db, customer)) == 1


@pytest.mark.parametrize(
    "forged",
    [
        'sl:play:{"$ne": ""}:0123456789abcdef01234567:1',
        "sl:play:quay:not-a-nonce:1",
        "sl:play:quay:0123456789abcdef01234567:9",
        "sl:play:quay:0123456789abcdef01234567",
        "sl:play:do-vui:0123456789abcdef01234567:1",
        'sl:game:{"$ne": ""}',
        "sl:game:khong-co",
        "sl:game:" + "x" * 500,
        'sl:quiz:do-vui:0123456789abcdef01234567:0:{"$gt": 0}',
        "sl:quiz:do-vui:0123456789abcdef01234567:0",
    ],
)
async def test_forged_payloads_play_nothing(
    forged: str, dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, db: AsyncDatabase[Document]
) -> None:
    await save(loyalty, campaign("quay", "wheel"), QUIZ)
    await onboard(dispatcher, outbox)
    answer = await press(dispatcher, outbox, forged)
    assert "Không tìm thấy trò chơi này" in texts(answer)
    assert await db["game_plays"].count_documents({}) == 0


# ------------------------------------------------------------------ the quiz
async def test_a_quiz_one_question_at_a_time_then_the_score_and_the_prize(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, db: AsyncDatabase[Document]
) -> None:
    await save(loyalty, QUIZ)
    customer = await onboard(dispatcher, outbox)

    intro, q1 = await open_screen(dispatcher, outbox, "do-vui")
    assert "3 câu hỏi, trả lời hết để nhận quà" in texts([intro])
    assert isinstance(q1, QuickReplies) and q1.text == "❓ Câu 1/3: Cà phê sữa đá có gì?"
    assert [o.title for o in q1.options] == ["Sữa đặc", "Muối"]
    tap = make(Postback, payload=payload([q1], "Sữa đặc"))
    await dispatcher.feed_update(tap)
    (q2,) = outbox.take()
    await dispatcher.feed_update(make(Postback, payload=payload([q1], "Muối")))  # late second tap: ignored
    (q2_again,) = outbox.take()
    assert isinstance(q2, QuickReplies) and q2.text.startswith("❓ Câu 2/3: Bạc xỉu là gì?")
    assert q2_again == q2
    (q3,) = await press(dispatcher, outbox, payload([q2], "Cà phê nhiều sữa"))
    assert isinstance(q3, QuickReplies) and len(q3.options) == 6
    everything_before = texts([intro, q1, q2, q3])
    assert "đáp án" not in everything_before and "đúng" not in everything_before  # never revealed before
    assert await db["game_plays"].count_documents({}) == 0  # nothing sent to the core before the last answer

    await dispatcher.feed_update(make(Message, text="6"))  # typed: Zalo shows six choices as numbered text
    result = outbox.take()
    await press(dispatcher, outbox, payload([q3], "10 giờ"))  # the last answer tapped again

    assert "Bạn trả lời đúng 3/3 câu." in texts(result)
    assert "✅ Câu 1: đúng" in texts(result) and "✅ Câu 3: đúng" in texts(result)
    assert 'Bạn nhận được "Một ly miễn phí"' in texts(result)
    assert any(isinstance(r, Card) for r in result)
    assert len(await plays_of(db, customer)) == 1
    assert len([v for v in await loyalty.vouchers.list_for(customer.id) if v.source == "game"]) == 1
    state = await dispatcher.storage.get_state(StorageKey("zalo", "oa-1", "u1"))
    assert state != GameQuiz.answering.state

    (again,) = await open_screen(dispatcher, outbox, "do-vui")
    assert 'Bạn đã làm bài đố "Trò do-vui" rồi' in texts([again])


async def test_a_quiz_with_wrong_answers_shows_the_right_ones_after(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await save(loyalty, QUIZ)
    customer = await onboard(dispatcher, outbox)
    _intro, q1 = await open_screen(dispatcher, outbox, "do-vui")
    (q2,) = await press(dispatcher, outbox, payload([q1], "Sữa đặc"))
    (q3,) = await press(dispatcher, outbox, payload([q2], "Trà"))
    result = await press(dispatcher, outbox, payload([q3], "5 giờ"))

    assert "Bạn trả lời đúng 1/3 câu." in texts(result)
    assert '❌ Câu 2: đáp án đúng là "Cà phê nhiều sữa"' in texts(result)
    assert "Lần này chưa có quà" in texts(result)
    assert await loyalty.ledger.balance(customer.id) == 0


async def test_an_old_quiz_button_is_stale(dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty) -> None:
    await save(loyalty, QUIZ)
    await onboard(dispatcher, outbox)
    _intro, old = await open_screen(dispatcher, outbox, "do-vui")
    await open_screen(dispatcher, outbox, "do-vui")  # started again: a new attempt
    answer = await press(dispatcher, outbox, payload([old], "Sữa đặc"))
    assert "thuộc một lượt đố cũ" in texts(answer)


async def test_english_customers_play_in_english(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await save(loyalty, campaign("hop", "open_gift", NOTHING))
    customer = await onboard(dispatcher, outbox)
    await loyalty.customers.update_profile(customer.id, ProfileUpdate(locale="en"))
    await dispatcher.feed_update(make(Message, text="games"))
    listed = outbox.take()
    assert "1 game with prizes running now" in texts(listed)
    screen = await press(dispatcher, outbox, payload(listed, "Play now"))
    assert "pick one of the three gift boxes" in texts(screen)
    result = await press(dispatcher, outbox, payload(screen, "Box 1"))
    assert "You open box 1" in texts(result) and "Better luck next time" in texts(result)


async def test_points_spent_elsewhere_after_the_screen_are_a_refusal_at_the_press(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty, db: AsyncDatabase[Document]
) -> None:
    await save(loyalty, campaign("mua", "wheel", cost={"free_turns_per_day": 0, "points": 25}))
    customer = await onboard(dispatcher, outbox)
    await loyalty.ledger.earn(customer.id, 30, key="order:g1", reason="order")
    screen = await open_screen(dispatcher, outbox, "mua")
    await loyalty.ledger.spend(customer.id, 10, key="pos:g1", reason="reward")

    answer = await press(dispatcher, outbox, payload(screen, "Quay"))

    assert 'Mỗi lượt "Trò mua" cần 25 điểm, bạn đang có 20 điểm' in texts(answer)
    assert await loyalty.ledger.balance(customer.id) == 20
    assert [p["state"] for p in await plays_of(db, customer)] == ["rolled_back"]


async def test_a_game_not_started_yet_says_when(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    await save(loyalty, campaign("sap", "wheel", starts_at=START + timedelta(days=2)))
    await onboard(dispatcher, outbox)
    assert "chưa có trò chơi nào" in texts(await press(dispatcher, outbox, "sl:games"))
    (answer,) = await open_screen(dispatcher, outbox, "sap")
    assert '"Trò sap" sẽ bắt đầu lúc 10:00 03/12/2026' in texts([answer])


REFUSALS = (
    "game_not_eligible", "game_no_turns", "game_daily_limit", "game_limit_reached", "game_sold_out",
    "game_ended", "game_not_started", "game_rate_limited", "insufficient_points", "limit_reached",
    "game_not_found",
)  # fmt: skip


@pytest.mark.parametrize("locale", ["vi", "en"])
def test_every_refusal_has_its_own_message_in_both_locales(locale: str) -> None:
    copy = Messages([MESSAGES_DIR])
    values: dict[str, Any] = {
        "brand": "Cà Phê Sữa", "name": "Vòng quay", "kind": "wheel", "cost": 20, "balance": 5,
        "min_tier": None, "followers_only": False, "per_day": 3, "free_per_day": 1, "per_checkin": 1,
        "per_order": 1, "starts": "10:00 03/12/2026",
    }  # fmt: skip
    generic = copy("game_refused", locale, code="customer_inactive", **values)
    shown = [copy("game_refused", locale, code=code, **values) for code in REFUSALS]
    assert generic not in shown
    assert len(set(shown)) == len(REFUSALS)
    assert all(text.strip() for text in shown)


async def test_long_quiz_choices_are_listed_in_the_question_and_numbered_on_the_buttons(
    dispatcher: Dispatcher, outbox: Outbox, loyalty: Loyalty
) -> None:
    long_choices = ["Cà phê phin pha với sữa đặc", "Trà sen ướp hoa lài buổi sáng"]
    quiz = QUIZ | {
        "id": "dai",
        "questions": [{"id": "q1", "text": "Món nào?", "choices": long_choices, "answer": 0}],
    }
    await save(loyalty, quiz | {"score_prizes": [{"min_score": 1, "prize": "diem"}]})
    await onboard(dispatcher, outbox)

    _intro, q1 = await open_screen(dispatcher, outbox, "dai")

    assert isinstance(q1, QuickReplies)
    assert q1.text == "❓ Câu 1/1: Món nào?\n1. Cà phê phin pha với sữa đặc\n2. Trà sen ướp hoa lài buổi sáng"
    assert [o.title for o in q1.options] == [
        "1. Cà phê phin pha với sữa đặc",
        "2. Trà sen ướp hoa lài buổi sáng",
    ]
    result = await press(dispatcher, outbox, q1.options[0].payload)
    assert "Bạn trả lời đúng 1/1 câu." in texts(result) and "Bạn nhận được 10 điểm" in texts(result)
