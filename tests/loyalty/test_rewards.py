"""RewardService against the real database: points, stock and voucher together or not at all."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.customers import CustomerService, Identity
from loyalty.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    LimitReached,
    LoyaltyError,
    RewardNotFound,
    RewardUnavailable,
    SoldOut,
)
from loyalty.ledger import LedgerService
from loyalty.program import Program
from loyalty.rewards import Redemption, RedemptionRecord, RewardService, refusal
from loyalty.vouchers import VoucherService
from storage.clients import Document
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository
from storage.rewards import MongoRewardRepository
from storage.vouchers import MongoVoucherRepository


def rewards_program(program: Program) -> Program:
    data = program.model_dump(mode="json")
    data["voucher_templates"].append(
        {"id": "one_only", "name": "Chỉ một", "kind": "fixed", "value": 10000, "total_limit": 1}
    )
    data["rewards"] += [
        {
            "id": "limited",
            "name": "Mười phần",
            "points_cost": 50,
            "voucher_template": "free_drink",
            "stock": 10,
        },
        {"id": "gone", "name": "Hết", "points_cost": 10, "voucher_template": "free_drink", "stock": 0},
        {
            "id": "off",
            "name": "Tạm ngưng",
            "points_cost": 10,
            "voucher_template": "free_drink",
            "active": False,
        },
        {"id": "capped", "name": "Giới hạn", "points_cost": 30, "voucher_template": "one_only", "stock": 5},
    ]
    return Program.model_validate(data)


class World:
    def __init__(self, db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> None:
        self.program = rewards_program(program)
        self.clock = clock
        self.customers = CustomerService(MongoCustomerRepository(db), self.program, clock)
        self.ledger_repo = MongoLedgerRepository(db)
        self.ledger = LedgerService(self.ledger_repo, self.program, clock)
        self.voucher_repo = MongoVoucherRepository(db)
        self.vouchers = VoucherService(self.voucher_repo, self.program, clock)
        self.repo = MongoRewardRepository(db)
        self.rewards = RewardService(self.vouchers, self.ledger, self.repo, self.program, clock)
        self.db = db

    async def customer(self, user: str, points: int = 0) -> str:
        customer, _ = await self.customers.get_or_create(Identity(channel="zalo", user_id=user))
        if points:
            await self.ledger.earn(customer.id, points, key=f"seed:{user}", reason="test")
        return customer.id

    async def remaining(self, reward_id: str) -> int:
        return (await self.repo.remaining([reward_id]))[reward_id]

    async def spends(self, customer_id: str | None = None) -> int:
        query: dict[str, Any] = {"kind": "spend", "state": {"$ne": "void"}}
        if customer_id is not None:
            query["customer_id"] = customer_id
        return await self.db["ledger"].count_documents(query)


@pytest.fixture
def world(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> World:
    return World(db, program, clock)


# ---------------------------------------------------------------------------------------------- redeem
async def test_redeem_spends_takes_stock_and_issues(world: World) -> None:
    cid = await world.customer("u1", 100)
    redemption = await world.rewards.redeem(cid, "limited", key="k1")
    assert redemption.reward_id == "limited" and redemption.points_spent == 50
    assert redemption.voucher.template_id == "free_drink" and redemption.voucher.source == "reward"
    assert redemption.voucher.customer_id == cid and redemption.voucher.status == "issued"
    assert await world.ledger.balance(cid) == 50
    assert await world.remaining("limited") == 9
    # Unlimited rewards take no stock at all.
    unlimited = await world.rewards.redeem(cid, "free-drink", key="k2")
    assert unlimited.points_spent == 50 and await world.ledger.balance(cid) == 0
    assert "free-drink" not in await world.repo.remaining(["free-drink"])


async def test_the_same_key_answers_the_same_redemption(world: World) -> None:
    cid = await world.customer("u1", 200)
    first = await world.rewards.redeem(cid, "limited", key="same")
    again = await world.rewards.redeem(cid, "limited", key="same")
    assert again == first
    assert await world.ledger.balance(cid) == 150
    assert await world.remaining("limited") == 9
    assert len(await world.vouchers.list_for(cid)) == 1


async def test_the_same_key_five_times_concurrently_charges_once(world: World) -> None:
    cid = await world.customer("u1", 200)
    results = await asyncio.gather(*(world.rewards.redeem(cid, "limited", key="tap") for _ in range(5)))
    assert len({r.voucher.code for r in results}) == 1
    assert await world.ledger.balance(cid) == 150
    assert await world.spends(cid) == 1
    assert await world.remaining("limited") == 9
    assert len(await world.vouchers.list_for(cid)) == 1


async def test_100_concurrent_redemptions_of_a_stock_of_10(world: World) -> None:
    users = [f"u{i}" for i in range(100)]
    ids = []
    for chunk in range(0, 100, 25):
        ids += await asyncio.gather(*(world.customer(u, 60) for u in users[chunk : chunk + 25]))
    results = await asyncio.gather(
        *(world.rewards.redeem(cid, "limited", key=f"r{i}") for i, cid in enumerate(ids)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Redemption)]
    sold_out = [r for r in results if isinstance(r, SoldOut)]
    assert len(won) == 10 and len(sold_out) == 90, [
        r for r in results if not isinstance(r, Redemption | SoldOut)
    ]
    assert sold_out[0].code == "sold_out"
    assert await world.remaining("limited") == 0
    assert await world.spends() == 10
    assert await world.db["vouchers"].count_documents({"source": "reward", "status": "issued"}) == 10
    balances = await asyncio.gather(*(world.ledger.balance(cid) for cid in ids))
    winners = {r.customer_id for r in won}
    assert all(balance == (10 if cid in winners else 60) for cid, balance in zip(ids, balances, strict=True))
    # Sold out is also what the catalog shows: the reward is no longer offered.
    assert "limited" not in {offer.reward.id for offer in await world.rewards.catalog(ids[0])}


async def test_not_enough_points_leaves_everything_as_it_was(world: World) -> None:
    cid = await world.customer("u1", 40)
    with pytest.raises(InsufficientPoints) as error:
        await world.rewards.redeem(cid, "limited", key="k")
    assert error.value.code == "insufficient_points"
    assert await world.ledger.balance(cid) == 40
    assert await world.repo.remaining(["limited"]) == {}
    assert await world.vouchers.list_for(cid) == []


async def test_two_keys_racing_for_the_last_points_roll_the_loser_back(world: World) -> None:
    cid = await world.customer("u1", 60)  # enough for one of them, and both pass the early balance check
    results = await asyncio.gather(
        *(world.rewards.redeem(cid, "limited", key=f"race{i}") for i in range(2)), return_exceptions=True
    )
    assert sum(isinstance(r, Redemption) for r in results) == 1
    assert sum(isinstance(r, InsufficientPoints) for r in results) == 1
    assert await world.ledger.balance(cid) == 10
    assert await world.remaining("limited") == 9  # the loser's unit was given back
    loser = next(f"race{i}" for i, r in enumerate(results) if isinstance(r, InsufficientPoints))
    record = await world.repo.get(loser)
    assert record is not None and record.state == "rolled_back" and record.error_code == "insufficient_points"
    # The same key keeps its refusal, even once the customer could pay.
    await world.ledger.earn(cid, 100, key="more", reason="test")
    with pytest.raises(InsufficientPoints):
        await world.rewards.redeem(cid, "limited", key=loser)
    assert await world.remaining("limited") == 9


async def test_a_voucher_limit_rolls_back_points_and_stock(world: World) -> None:
    first = await world.customer("u1", 100)
    second = await world.customer("u2", 100)
    await world.rewards.redeem(first, "capped", key="c1")  # takes the template's only voucher
    with pytest.raises(LimitReached) as error:
        await world.rewards.redeem(second, "capped", key="c2")
    assert error.value.code == "limit_reached"
    assert await world.ledger.balance(second) == 100  # spent, then reversed
    assert await world.remaining("capped") == 4
    with pytest.raises(LimitReached):  # a retry of the key: same refusal, nothing reversed twice
        await world.rewards.redeem(second, "capped", key="c2")
    assert await world.ledger.balance(second) == 100
    assert await world.remaining("capped") == 4
    assert await world.vouchers.list_for(second) == []


async def test_every_refusal_code(world: World) -> None:
    cid = await world.customer("u1", 100)
    other = await world.customer("u2", 100)
    cases: list[tuple[type[LoyaltyError], str, str, str]] = [
        (RewardNotFound, "reward_not_found", "nope", "a"),
        (RewardUnavailable, "reward_unavailable", "off", "b"),
        (SoldOut, "sold_out", "gone", "c"),
    ]
    for error_type, code, reward_id, key in cases:
        with pytest.raises(error_type) as caught:
            await world.rewards.redeem(cid, reward_id, key=key)
        assert caught.value.code == code
    for bad_key in ["", "has:colon", "x" * 101, {"$ne": ""}]:
        with pytest.raises(InvalidAmount):
            await world.rewards.redeem(cid, "limited", key=bad_key)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        await world.rewards.redeem({"$ne": ""}, "limited", key="inject")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        await world.rewards.catalog({"$ne": ""})  # type: ignore[arg-type]
    with pytest.raises(RewardNotFound):
        await world.rewards.redeem(cid, {"$ne": ""}, key="inject")  # type: ignore[arg-type]
    await world.rewards.redeem(cid, "limited", key="mine")
    with pytest.raises(IdempotencyConflict) as conflict:
        await world.rewards.redeem(other, "limited", key="mine")
    assert conflict.value.code == "idempotency_conflict"
    with pytest.raises(IdempotencyConflict):
        await world.rewards.redeem(cid, "free-drink", key="mine")
    assert await world.ledger.balance(cid) == 50 and await world.ledger.balance(other) == 100


# ---------------------------------------------------------------------------------------------- crashes
async def test_a_crash_after_the_spend_is_completed_by_a_retry(world: World) -> None:
    cid = await world.customer("u1", 100)
    record = RedemptionRecord(
        key="crash",
        customer_id=cid,
        reward_id="limited",
        points_cost=50,
        voucher_template="free_drink",
        created_at=world.clock.now(),
    )
    # What a process did before it died: record, stock, spend; no voucher, still pending.
    await world.repo.create(record)
    await world.repo.take_stock("limited", "crash", stock=10)
    await world.ledger.spend(cid, 50, key=record.spend_key, reason="reward")
    redemption = await world.rewards.redeem(cid, "limited", key="crash")
    assert redemption.voucher.status == "issued"
    assert await world.ledger.balance(cid) == 50  # charged once
    assert await world.remaining("limited") == 9  # one unit
    stored = await world.repo.get("crash")
    assert (
        stored is not None and stored.state == "completed" and stored.voucher_code == redemption.voucher.code
    )


async def test_a_crash_between_rollback_and_compensation_is_finished_by_a_retry(world: World) -> None:
    cid = await world.customer("u1", 100)
    record = RedemptionRecord(
        key="half",
        customer_id=cid,
        reward_id="limited",
        points_cost=50,
        voucher_template="free_drink",
        created_at=world.clock.now(),
    )
    await world.repo.create(record)
    await world.repo.take_stock("limited", "half", stock=10)
    await world.ledger.spend(cid, 50, key=record.spend_key, reason="reward")
    voucher = await world.vouchers.issue(cid, "free_drink", key=record.voucher_key, source="reward")
    await world.repo.finish(
        "half", "rolled_back", at=world.clock.now(), error_code="sold_out", error_message="x"
    )
    with pytest.raises(SoldOut):
        await world.rewards.redeem(cid, "limited", key="half")
    assert await world.ledger.balance(cid) == 100
    assert await world.remaining("limited") == 10
    assert (await world.vouchers.get(voucher.code)).status == "void"
    with pytest.raises(SoldOut):  # compensations are idempotent
        await world.rewards.redeem(cid, "limited", key="half")
    assert await world.ledger.balance(cid) == 100 and await world.remaining("limited") == 10


async def test_resume_pending_finishes_what_no_client_retried(world: World) -> None:
    cid = await world.customer("u1", 100)
    await world.repo.create(
        RedemptionRecord(
            key="orphan",
            customer_id=cid,
            reward_id="limited",
            points_cost=50,
            voucher_template="free_drink",
            created_at=world.clock.now(),
        )
    )
    await world.repo.take_stock("limited", "orphan", stock=10)
    assert await world.rewards.resume_pending() == 0  # too recent: its client may still be at it
    world.clock.advance(timedelta(minutes=6))
    assert await world.rewards.resume_pending() == 1
    stored = await world.repo.get("orphan")
    assert stored is not None and stored.state == "completed"
    assert await world.ledger.balance(cid) == 50 and await world.remaining("limited") == 9
    assert await world.rewards.resume_pending() == 0


# ---------------------------------------------------------------------------------------------- catalog
async def test_catalog_shows_active_rewards_with_stock_and_affordability(world: World) -> None:
    cid = await world.customer("u1", 60)
    offers = {offer.reward.id: offer for offer in await world.rewards.catalog(cid)}
    assert set(offers) == {"free-drink", "discount-50k", "limited", "capped"}  # not "off", not "gone"
    assert offers["free-drink"].affordable and offers["free-drink"].remaining is None
    assert not offers["discount-50k"].affordable and offers["discount-50k"].points_missing == 20
    assert offers["limited"].remaining == 10 and offers["limited"].points_missing == 0
    await world.rewards.redeem(cid, "limited", key="k")
    offers = {offer.reward.id: offer for offer in await world.rewards.catalog(cid)}
    assert offers["limited"].remaining == 9 and not offers["limited"].affordable


async def test_sync_stock_applies_a_changed_program(world: World, clock: FrozenClock) -> None:
    cid = await world.customer("u1", 100)
    await world.rewards.redeem(cid, "limited", key="k")
    data = world.program.model_dump(mode="json")
    for reward in data["rewards"]:
        if reward["id"] == "limited":
            reward["stock"] = 15
    changed = RewardService(world.vouchers, world.ledger, world.repo, Program.model_validate(data), clock)
    assert await changed.sync_stock() == 1
    assert await world.remaining("limited") == 14
    assert await changed.sync_stock() == 0


async def test_reassign_customer_moves_redemptions(world: World) -> None:
    cid = await world.customer("u1", 100)
    await world.rewards.redeem(cid, "limited", key="k")
    assert await world.repo.reassign_customer(cid, "survivor") == 1
    assert [r.key for r in await world.repo.for_customer("survivor")] == ["k"]
    assert await world.repo.reassign_customer(cid, "survivor") == 0


def test_refusals_are_rebuilt_from_their_codes() -> None:
    assert isinstance(refusal("sold_out", "m"), SoldOut)
    assert isinstance(refusal("limit_reached", "m"), LimitReached)
    error = refusal("something_else", "kept")
    assert type(error) is LoyaltyError and error.message == "kept"


async def test_a_phone_merge_moves_vouchers_redemptions_and_issue_counts(
    world: World, db: AsyncDatabase[Document], clock: FrozenClock
) -> None:
    customers = CustomerService(
        MongoCustomerRepository(db),
        world.program,
        clock,
        ledger_owner=world.ledger_repo,
        owned=[world.voucher_repo, world.repo],
    )
    older = await world.customer("messenger-user", 100)
    await customers.attach_phone(older, "0912345678", source="messenger")
    await world.vouchers.issue(older, "welcome_20k", key=f"welcome:{older}", source="welcome")
    clock.advance(timedelta(days=1))
    newer = await world.customer("zalo-user", 100)
    await world.vouchers.issue(newer, "welcome_20k", key=f"welcome:{newer}", source="welcome")
    redemption = await world.rewards.redeem(newer, "limited", key="before-merge")

    merged = await customers.attach_phone(newer, "+84 912 345 678", source="zalo")

    assert merged.customer.id == older and merged.merged_from == (newer,)
    assert {v.template_id for v in await world.vouchers.list_for(older)} == {"welcome_20k", "free_drink"}
    assert len(await world.vouchers.list_for(older)) == 3 and await world.vouchers.list_for(newer) == []
    assert [r.key for r in await world.repo.for_customer(older)] == ["before-merge"]
    assert await world.voucher_repo.count(f"customer:welcome_20k:{older}") == 2
    assert await world.ledger.balance(older) == 150
    # The survivor can use the merged voucher; a retry of the old redemption still answers the same.
    quote = await world.vouchers.quote(redemption.voucher.code, customer_id=older, order_total=50000)
    assert quote.discount == 45000
    assert (await world.rewards.redeem(older, "limited", key="before-merge")).voucher == quote.voucher
