"""Minigames on the real database: turns, costs, stock, budget, refunds, quiz, fairness, audit."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from app.loyalty import build_loyalty
from loyalty.clock import FrozenClock
from loyalty.core import Loyalty
from loyalty.customers import Identity
from loyalty.errors import (
    CustomerNotFound,
    GameDailyLimit,
    GameEnded,
    GameInvalid,
    GameLimitReached,
    GameNotEligible,
    GameNotFound,
    GameNotStarted,
    GameNoTurns,
    GameRateLimited,
    GameSeedHidden,
    GameSoldOut,
    GameWrongKind,
    IdempotencyConflict,
    InsufficientPoints,
    LimitReached,
)
from loyalty.games import GameService, PlayRecord, TableLine, draw_value, pick, play_id_for
from loyalty.program import GameCampaign, Program
from storage.clients import Document
from storage.games import MongoGameRepository, RedisRateLimiter
from tests.conftest import TEST_SECRET_KEY
from tests.loyalty.conftest import START


def seeds(campaign_id: str) -> bytes:
    """A fixed seed source for tests (production uses secrets.token_bytes)."""
    return hashlib.sha256(f"test-seed:{campaign_id}".encode()).digest()


def campaign(**overrides: Any) -> GameCampaign:
    data: dict[str, Any] = {
        "id": "wheel",
        "kind": "wheel",
        "name": "Vòng quay",
        "starts_at": START - timedelta(days=1),
        "ends_at": START + timedelta(days=10),
        "cost": {"free_turns_per_day": 1, "points": 0},
        "rate_limit": {"plays": 1000, "seconds": 10},
        "prizes": [
            {"id": "top", "name": "Top", "reward": "points", "points": 100, "weight": 1, "stock": 1},
            {"id": "small", "name": "Small", "reward": "points", "points": 5, "weight": 3},
            {"id": "none", "name": "Chúc may mắn", "reward": "nothing", "weight": 6},
        ],
    }
    data.update(overrides)
    return GameCampaign.model_validate(data)


QUIZ: dict[str, Any] = {
    "id": "quiz",
    "kind": "quiz",
    "name": "Đố vui",
    "starts_at": START - timedelta(days=1),
    "ends_at": START + timedelta(days=10),
    "questions": [
        {"id": "q1", "text": "Cà phê sữa đá có gì?", "choices": ["Sữa", "Muối"], "answer": 0},
        {"id": "q2", "text": "Bạc xỉu là gì?", "choices": ["Trà", "Cà phê sữa", "Bánh"], "answer": 1},
    ],
    "prizes": [
        {
            "id": "perfect",
            "name": "Giảm 50k",
            "reward": "voucher",
            "voucher_template": "discount_50k",
            "stock": 1,
        },
        {"id": "half", "name": "10 điểm", "reward": "points", "points": 10},
    ],
    "score_prizes": [{"min_score": 2, "prize": "perfect"}, {"min_score": 1, "prize": "half"}],
}

Build = Callable[..., GameService]


@pytest.fixture
def core(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> Loyalty:
    return build_loyalty(db, program, clock, secret_key=TEST_SECRET_KEY)


@pytest.fixture
def build(db: AsyncDatabase[Document], program: Program, clock: FrozenClock, core: Loyalty) -> Build:
    def make(*games: GameCampaign, limiter: RedisRateLimiter | None = None) -> GameService:
        configured = program.model_copy(update={"games": games})
        return GameService(
            MongoGameRepository(db),
            core.ledger,
            core.vouchers,
            core.customers,
            configured,
            clock,
            limiter=limiter,
            seed_source=seeds,
            cache_seconds=0,
        )

    return make


async def customer(core: Loyalty, name: str = "a") -> str:
    created, _ = await core.customers.get_or_create(Identity(channel="zalo", user_id=f"user-{name}"))
    return created.id


# ------------------------------------------------------------------------------------------ the draw
def test_pick_maps_the_whole_64_bit_range_by_cumulative_weight() -> None:
    table = [TableLine(prize_id="a", weight=1), TableLine(prize_id="b", weight=3)]
    assert pick(0, table) == "a"
    assert pick((1 << 62) - 1, table) == "a"  # the first quarter
    assert pick(1 << 62, table) == "b"
    assert pick((1 << 64) - 1, table) == "b"
    with pytest.raises(ValueError, match="empty"):
        pick(5, [TableLine(prize_id="a", weight=0)])


def test_draw_values_depend_on_seed_play_and_round() -> None:
    assert draw_value(b"s", "p", 0) == draw_value(b"s", "p", 0)
    assert len({draw_value(b"s", "p", 0), draw_value(b"s", "p", 1), draw_value(b"t", "p", 0)}) == 3
    assert play_id_for("c", "u", "k") != play_id_for("c", "u", "k2")
    assert play_id_for("c", "u", "k") != play_id_for("c", "u2", "k")


def test_chi_square_of_100000_simulated_draws_matches_the_weights() -> None:
    weights = {"jackpot": 1, "voucher": 9, "points": 30, "nothing": 60}
    table = [TableLine(prize_id=k, weight=w) for k, w in weights.items()]
    seed = seeds("chi-square")
    counts = dict.fromkeys(weights, 0)
    n = 100_000
    for i in range(n):
        counts[pick(draw_value(seed, play_id_for("c", f"cust{i % 997}", f"k{i}"), 0), table)] += 1
    total = sum(weights.values())
    chi = sum((counts[k] - n * w / total) ** 2 / (n * w / total) for k, w in weights.items())
    assert chi < 16.27, (chi, counts)  # chi-square, 3 degrees of freedom, p = 0.001
    # and a table whose weights were not honoured would be caught: the same counts against 25/25/25/25
    uniform = sum((counts[k] - n / 4) ** 2 / (n / 4) for k in weights)
    assert uniform > 1000


# ------------------------------------------------------------------------------------------ plays
async def test_a_free_play_draws_once_per_key_and_records_the_table(build: Build, core: Loyalty) -> None:
    games = build(campaign())
    cid = await customer(core)
    first = await games.play(cid, "wheel", key="tap-1")
    again = await games.play(cid, "wheel", key="tap-1")  # a double tap
    assert again == first
    assert first.paid == "free" and first.points_spent == 0
    record = await games.repo.play(first.play_id)
    assert record is not None and record.state == "completed" and record.round == 0
    assert {line.prize_id: line.weight for line in record.table} == {"top": 1, "small": 3, "none": 6}
    assert await core.ledger.balance(cid) == first.points_awarded
    with pytest.raises(GameNoTurns):  # one free turn a day, no points price
        await games.play(cid, "wheel", key="tap-2")
    status = await games.status(cid, "wheel")
    assert status.plays_today == 1 and not status.can_play and status.reason == "game_no_turns"


async def test_bought_turns_spend_points_and_are_refunded_when_refused(build: Build, core: Loyalty) -> None:
    games = build(campaign(cost={"free_turns_per_day": 0, "points": 30}))
    cid = await customer(core)
    with pytest.raises(InsufficientPoints):
        await games.play(cid, "wheel", key="k1")
    with pytest.raises(InsufficientPoints):  # the same key gets the same refusal
        await games.play(cid, "wheel", key="k1")
    assert (await games.status(cid, "wheel")).plays_total == 0  # the turn was given back
    await core.ledger.earn(cid, 50, key="gift", reason="test")
    result = await games.play(cid, "wheel", key="k2")
    assert result.paid == "points" and result.points_spent == 30
    assert await core.ledger.balance(cid) == 20 + result.points_awarded


async def test_granted_turns_are_used_after_the_free_one_and_granted_once_per_key(
    build: Build, core: Loyalty
) -> None:
    games = build(campaign())
    cid = await customer(core)
    assert await games.grant_turns(cid, "wheel", 2, key="order:o1")
    assert not await games.grant_turns(cid, "wheel", 2, key="order:o1")
    assert (await games.play(cid, "wheel", key="a")).paid == "free"
    assert (await games.play(cid, "wheel", key="b")).paid == "bonus"
    assert (await games.play(cid, "wheel", key="c")).paid == "bonus"
    with pytest.raises(GameNoTurns):
        await games.play(cid, "wheel", key="d")


async def test_order_and_checkin_events_grant_turns_through_the_facade(
    core: Loyalty, program: Program, clock: FrozenClock
) -> None:
    cid = await customer(core)
    order = await core.orders.create(cid, source="pos", amount=100_000, by="staff:an")
    await core.complete_order(order.id, by="staff:an")
    await core.complete_order(order.id, by="staff:an")  # a retry grants nothing more
    status = await core.games.status(cid, "vong-quay-tet")  # the demo wheel: +1 turn per order
    assert status.bonus_turns == 1
    issued = await core.checkin.create_code(
        points=10,
        voucher_template=None,
        max_uses=10,
        expires_at=clock.now() + timedelta(days=1),
        created_by="t",
    )
    await core.scan_checkin(cid, issued.token, channel="miniapp")
    assert (await core.games.status(cid, "mo-qua")).bonus_turns == 1  # the demo gift: +1 per check-in


async def test_limits_per_day_and_per_campaign(build: Build, core: Loyalty, clock: FrozenClock) -> None:
    games = build(campaign(cost={"free_turns_per_day": 5}, limits={"per_day": 2, "per_campaign": 3}))
    cid = await customer(core)
    await games.play(cid, "wheel", key="a")
    await games.play(cid, "wheel", key="b")
    with pytest.raises(GameDailyLimit):
        await games.play(cid, "wheel", key="c")
    clock.advance(timedelta(days=1))
    await games.play(cid, "wheel", key="d")
    with pytest.raises(GameLimitReached):
        await games.play(cid, "wheel", key="e")


async def test_concurrent_first_plays_of_a_new_day_share_the_day_s_turns(
    build: Build, core: Loyalty, clock: FrozenClock
) -> None:
    """The day's counters restart once when a new day's plays race (the roll-over is conditional)."""
    games = build(campaign(cost={"free_turns_per_day": 3}))
    cid = await customer(core)
    await games.play(cid, "wheel", key="yesterday")
    clock.advance(timedelta(days=1))
    outcomes = await asyncio.gather(
        *(games.play(cid, "wheel", key=f"today{n}") for n in range(8)), return_exceptions=True
    )
    played = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(played) == 3
    assert all(isinstance(o, GameNoTurns) for o in outcomes if isinstance(o, BaseException))
    status = await games.status(cid, "wheel")
    assert (status.plays_total, status.plays_today, status.free_turns_left) == (4, 3, 0)


async def test_a_sold_out_prize_leaves_the_draw_and_the_weights_renormalise(
    build: Build, core: Loyalty
) -> None:
    games = build(
        campaign(
            cost={"free_turns_per_day": 10},
            prizes=[
                {
                    "id": "top",
                    "name": "Top",
                    "reward": "points",
                    "points": 100,
                    "weight": 1_000_000_000,
                    "stock": 1,
                },
                {"id": "none", "name": "Nothing", "reward": "nothing", "weight": 1},
            ],
        )
    )
    cid = await customer(core)
    results = [await games.play(cid, "wheel", key=f"k{n}") for n in range(4)]
    assert [r.prize.id for r in results if r.prize].count("top") == 1
    later = await games.repo.play(results[-1].play_id)
    assert later is not None and [line.prize_id for line in later.table] == ["none"]
    odds = {line.prize_id: line for line in await games.odds("wheel")}
    assert odds["top"].remaining == 0 and odds["top"].probability == pytest.approx(1 - 1e-9)


async def test_every_prize_sold_out_refuses_before_anything_moves(build: Build, core: Loyalty) -> None:
    games = build(
        campaign(
            cost={"free_turns_per_day": 0, "points": 10},
            prizes=[{"id": "only", "name": "Only", "reward": "points", "points": 1, "weight": 1, "stock": 1}],
        )
    )
    a, b = await customer(core, "a"), await customer(core, "b")
    for cid in (a, b):
        await core.ledger.earn(cid, 10, key=f"gift:{cid}", reason="test")
    await games.play(a, "wheel", key="k")
    with pytest.raises(GameSoldOut):
        await games.play(b, "wheel", key="k")
    assert await core.ledger.balance(b) == 10
    assert await games.repo.play(play_id_for("wheel", b, "k")) is None


async def test_daily_stock_comes_back_the_next_day(build: Build, core: Loyalty, clock: FrozenClock) -> None:
    games = build(
        campaign(
            cost={"free_turns_per_day": 10},
            prizes=[
                {
                    "id": "top",
                    "name": "Top",
                    "reward": "points",
                    "points": 9,
                    "weight": 1_000_000_000,
                    "daily_stock": 1,
                },
                {"id": "none", "name": "Nothing", "reward": "nothing", "weight": 1},
            ],
        )
    )
    cid = await customer(core)
    day_one = [await games.play(cid, "wheel", key=f"d1-{n}") for n in range(3)]
    assert sum(1 for r in day_one if r.prize and r.prize.id == "top") == 1
    clock.advance(timedelta(days=1))
    assert (await games.play(cid, "wheel", key="d2-0")).prize.id == "top"  # type: ignore[union-attr]


async def test_the_budget_caps_the_value_given(build: Build, core: Loyalty) -> None:
    games = build(
        campaign(
            cost={"free_turns_per_day": 10},
            budget_vnd=100_000,
            prizes=[
                {
                    "id": "drink",
                    "name": "Drink",
                    "reward": "voucher",
                    "voucher_template": "free_drink",
                    "weight": 1_000_000_000,
                    "value_vnd": 45_000,
                },
                {"id": "none", "name": "Nothing", "reward": "nothing", "weight": 1},
            ],
        )
    )
    cid = await customer(core)
    results = [await games.play(cid, "wheel", key=f"k{n}") for n in range(4)]
    assert sum(1 for r in results if r.voucher is not None) == 2  # 2 x 45,000 <= 100,000 < 3 x 45,000
    report = await games.report("wheel")
    assert report.value_given_vnd == 90_000 and report.budget_vnd == 100_000


async def test_a_refused_voucher_rolls_the_play_back_with_every_effect(build: Build, core: Loyalty) -> None:
    games = build(
        campaign(
            cost={"free_turns_per_day": 0, "points": 5},
            prizes=[
                {
                    "id": "w",
                    "name": "Welcome",
                    "reward": "voucher",
                    "voucher_template": "welcome_20k",
                    "weight": 1,
                }
            ],
        )
    )
    cid = await customer(core)
    await core.ledger.earn(cid, 10, key="gift", reason="test")
    won = await games.play(cid, "wheel", key="k1")
    assert won.voucher is not None and won.voucher.template_id == "welcome_20k"
    with pytest.raises(LimitReached):  # welcome_20k: one per customer
        await games.play(cid, "wheel", key="k2")
    record = await games.repo.play(play_id_for("wheel", cid, "k2"))
    assert record is not None and record.state == "rolled_back" and record.error_code == "limit_reached"
    assert await core.ledger.balance(cid) == 5  # the second play's points came back
    assert (await games.status(cid, "wheel")).plays_total == 1
    with pytest.raises(LimitReached):
        await games.play(cid, "wheel", key="k2")
    assert await core.ledger.balance(cid) == 5


async def test_a_play_left_pending_by_a_crash_is_finished_by_the_job(
    build: Build, core: Loyalty, clock: FrozenClock
) -> None:
    games = build(campaign())
    cid = await customer(core)
    # a process that died right after inserting the record
    record = PlayRecord(
        play_id=play_id_for("wheel", cid, "lost"),
        key="lost",
        campaign_id="wheel",
        customer_id=cid,
        kind="wheel",
        created_at=clock.now(),
        day="2026-12-01",
    )
    await games.repo.create_play(record)
    clock.advance(timedelta(minutes=5))
    assert await games.resume_pending() == 1
    stored = await games.repo.play(record.play_id)
    assert stored is not None and stored.state == "completed" and stored.prize is not None
    assert (await games.play(cid, "wheel", key="lost")).play_id == record.play_id


# ------------------------------------------------------------------------------------------ admission
async def test_eligibility_followers_phone_and_tier(build: Build, core: Loyalty) -> None:
    games = build(
        campaign(id="fans", eligibility={"followers_only": True}),
        campaign(id="phones", eligibility={"phone_verified": True}),
        campaign(id="gold", eligibility={"min_tier": "gold"}),
    )
    cid = await customer(core)
    for game in ("fans", "phones", "gold"):
        with pytest.raises(GameNotEligible):
            await games.play(cid, game, key="k")
    await core.customers.set_following(Identity(channel="zalo", user_id="user-a"), True)
    await games.play(cid, "fans", key="k")
    await core.verify_phone(cid, "0912345678", source="chat")
    await games.play(cid, "phones", key="k")
    await core.ledger.earn(cid, 1000, key="big-order", reason="order")
    await core.tiers.after_earn(cid)
    await games.play(cid, "gold", key="k")


async def test_the_window_and_unknown_games(build: Build, core: Loyalty, clock: FrozenClock) -> None:
    games = build(campaign(starts_at=START + timedelta(days=1)), campaign(id="off", active=False))
    cid = await customer(core)
    with pytest.raises(GameNotStarted):
        await games.play(cid, "wheel", key="k")
    with pytest.raises(GameEnded):
        await games.play(cid, "off", key="k")
    clock.advance(timedelta(days=1, seconds=1))
    await games.play(cid, "wheel", key="k")
    clock.advance(timedelta(days=20))
    with pytest.raises(GameEnded):
        await games.play(cid, "wheel", key="k2")
    assert (await games.play(cid, "wheel", key="k")).campaign_id == "wheel"  # a replay still answers
    with pytest.raises(GameNotFound):
        await games.play(cid, "nope", key="k")
    with pytest.raises(CustomerNotFound):
        await build(
            campaign(starts_at=clock.now() - timedelta(days=1), ends_at=clock.now() + timedelta(days=1))
        ).play("0" * 24, "wheel", key="k")


@pytest.mark.parametrize(
    ("customer_id", "campaign_id", "key", "error"),
    [
        ({"$ne": ""}, "wheel", "k", GameInvalid),
        ("x" * 65, "wheel", "k", GameInvalid),
        ("cid", {"$gt": ""}, "k", GameNotFound),
        ("cid", "wheel", {"$ne": ""}, GameInvalid),
        ("cid", "wheel", "has:colon", GameInvalid),
        ("cid", "wheel", "", GameInvalid),
        ("cid", "wheel", 7, GameInvalid),
    ],
)
async def test_bad_input_is_refused_before_anything_is_stored(  # noqa: PLR0917 - parametrized
    build: Build, db: AsyncDatabase[Document], customer_id: Any, campaign_id: Any, key: Any, error: type
) -> None:
    games = build(campaign())
    with pytest.raises(error):
        await games.play(customer_id, campaign_id, key=key)
    assert await db["game_plays"].count_documents({}) == 0
    assert await db["game_players"].count_documents({}) == 0


async def test_grant_turns_refuses_bad_input(build: Build, core: Loyalty) -> None:
    games = build(campaign())
    cid = await customer(core)
    for turns in (0, 101, True, "2"):
        with pytest.raises(GameInvalid):
            await games.grant_turns(cid, "wheel", turns, key="order:x")  # type: ignore[arg-type]
    with pytest.raises(GameInvalid):
        await games.grant_turns(cid, "wheel", 1, key={"$ne": ""})  # type: ignore[arg-type]


async def test_plays_are_rate_limited_per_customer(build: Build, core: Loyalty, redis: Redis) -> None:
    games = build(
        campaign(cost={"free_turns_per_day": 10}, rate_limit={"plays": 2, "seconds": 60}),
        limiter=RedisRateLimiter(redis),
    )
    cid, other = await customer(core, "a"), await customer(core, "b")
    await games.play(cid, "wheel", key="a")
    await games.play(cid, "wheel", key="a")  # a replay is not counted
    await games.play(cid, "wheel", key="b")
    with pytest.raises(GameRateLimited):
        await games.play(cid, "wheel", key="c")
    await games.play(other, "wheel", key="c")  # per customer
    assert 0 < await redis.ttl(f"ratelimit:game:wheel:{cid}") <= 60


# ------------------------------------------------------------------------------------------ quiz
async def test_quiz_checks_answers_on_the_server_once_per_customer(build: Build, core: Loyalty) -> None:
    games = build(GameCampaign.model_validate(QUIZ))
    questions = await games.quiz("quiz")
    assert [q.id for q in questions] == ["q1", "q2"]
    assert all("answer" not in q.model_dump() for q in questions)
    a, b, c = [await customer(core, n) for n in "abc"]
    perfect = await games.answer_quiz(a, "quiz", {"q1": 0, "q2": 1}, key="try1")
    assert (
        perfect.score == 2 and perfect.voucher is not None and perfect.correct_answers == {"q1": 0, "q2": 1}
    )
    with pytest.raises(GameLimitReached):  # one attempt per customer
        await games.answer_quiz(a, "quiz", {"q1": 0, "q2": 1}, key="try2")
    with pytest.raises(IdempotencyConflict):
        await games.answer_quiz(a, "quiz", {"q1": 1, "q2": 1}, key="try1")
    # the perfect prize had one unit: the next perfect score gets the lower prize, never nothing
    second = await games.answer_quiz(b, "quiz", {"q1": 0, "q2": 1}, key="t")
    assert second.prize is not None and second.prize.id == "half" and second.points_awarded == 10
    zero = await games.answer_quiz(c, "quiz", {"q1": 1}, key="t")
    assert zero.score == 0 and zero.prize is None and not zero.won
    with pytest.raises(GameWrongKind):
        await games.play(a, "quiz", key="k")


@pytest.mark.parametrize(
    "answers",
    [["q1", 0], {"q1": "0"}, {"q1": True}, {"q1": 5}, {"q9": 0}, {"q1": {"$gt": -1}}, {"q1": -1}, "q1=0"],
)
async def test_malformed_quiz_answers_are_refused(
    build: Build, core: Loyalty, db: AsyncDatabase[Document], answers: Any
) -> None:
    games = build(GameCampaign.model_validate(QUIZ))
    cid = await customer(core)
    with pytest.raises(GameInvalid):
        await games.answer_quiz(cid, "quiz", answers, key="k")
    assert await db["game_plays"].count_documents({}) == 0


# ------------------------------------------------------------------------------------------ fairness, audit
async def test_verify_recomputes_every_play_from_the_revealed_seed(
    build: Build, core: Loyalty, clock: FrozenClock, db: AsyncDatabase[Document]
) -> None:
    games = build(campaign(cost={"free_turns_per_day": 20}))
    commitment = await games.commitment("wheel")
    assert commitment == hashlib.sha256(seeds("wheel")).hexdigest()
    cid = await customer(core)
    for n in range(12):
        await games.play(cid, "wheel", key=f"k{n}")
    with pytest.raises(GameSeedHidden):
        await games.verify("wheel")
    with pytest.raises(GameSeedHidden):
        await games.reveal("wheel")
    clock.advance(timedelta(days=11))
    report = await games.verify("wheel")
    assert report.ok and report.checked == 12 and report.seed == seeds("wheel").hex()
    # a play whose recorded prize the seed does not give, and a table with a weight not configured
    plays = [p async for p in games.repo.plays("wheel")]
    wrong = next(line.prize_id for line in plays[0].table if line.prize_id != plays[0].prize.id)  # type: ignore[union-attr]
    await db["game_plays"].update_one({"_id": plays[0].play_id}, {"$set": {"prize.id": wrong}})
    await db["game_plays"].update_one({"_id": plays[1].play_id}, {"$set": {"table.0.weight": 50}})
    tampered = await games.verify("wheel")
    assert not tampered.ok
    assert {play_id for play_id, _ in tampered.mismatches} == {plays[0].play_id, plays[1].play_id}


async def test_report_and_export(build: Build, core: Loyalty) -> None:
    games = build(campaign(cost={"free_turns_per_day": 50}))
    cid = await customer(core)
    for n in range(40):
        await games.play(cid, "wheel", key=f"k{n}")
    report = await games.report("wheel")
    assert report.plays == 40 and sum(line.observed for line in report.lines) == 40
    assert sum(line.expected for line in report.lines) == pytest.approx(40)
    assert {line.prize_id: line.configured_probability for line in report.lines} == {
        "top": 0.1,
        "small": 0.3,
        "none": 0.6,
    }
    rows = [row async for row in games.export_rows("wheel")]
    assert len(rows) == 40
    # the top prize (stock 1) leaves the table once won
    assert {row["weights"] for row in rows} <= {"top=1 small=3 none=6", "small=3 none=6"}
    assert sum(1 for row in rows if row["prize_id"] == "top") <= 1
    assert rows[0]["time_local"].endswith("+07:00")


async def test_campaigns_edited_at_runtime_override_the_program(build: Build, core: Loyalty) -> None:
    games = build(campaign())
    saved = await games.save_campaign(
        campaign(name="Vòng quay mới", cost={"free_turns_per_day": 3}).model_dump()
    )
    assert (await games.campaign("wheel")).name == "Vòng quay mới" == saved.name
    await games.save_campaign(campaign(id="extra"))
    assert [c.id for c in await games.campaigns()] == ["wheel", "extra"]
    cid = await customer(core)
    for n in range(3):
        await games.play(cid, "wheel", key=f"k{n}")
    with pytest.raises(GameInvalid, match="voucher template"):
        await games.save_campaign(
            campaign(
                prizes=[
                    {"id": "x", "name": "X", "reward": "voucher", "voucher_template": "nope", "weight": 1}
                ]
            )
        )
    with pytest.raises(GameInvalid):
        await games.save_campaign({"id": {"$ne": ""}, "kind": "wheel"})
    assert await games.remove_campaign("wheel")
    assert (await games.campaign("wheel")).name == "Vòng quay"


async def test_merging_customers_moves_plays_and_granted_turns(build: Build, core: Loyalty) -> None:
    games = build(campaign())
    a, b = await customer(core, "a"), await customer(core, "b")
    await games.grant_turns(a, "wheel", 3, key="order:1")
    await games.play(a, "wheel", key="k")
    await games.grant_turns(b, "wheel", 1, key="order:2")
    repo = games.repo
    assert isinstance(repo, MongoGameRepository)
    await repo.reassign_customer(a, b)
    await repo.reassign_customer(a, b)  # idempotent
    state = await repo.player("wheel", b)
    assert state is not None and state.bonus == 4 and state.plays == 1
    assert [p.customer_id async for p in repo.plays("wheel")] == [b]
    exported = await repo.export_customer(b)
    assert len(exported) == 1 and await repo.erase_customer(b) == 0
