"""Tiers from qualifying points: upgrades on earning, vouchers once per period, reviews, repair."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.customers import CustomerService, Identity
from loyalty.ledger import LedgerService
from loyalty.program import Program, TierPolicy, TierWindow
from loyalty.tiers import TierChange, TierService
from loyalty.vouchers import VoucherService
from storage.clients import Document
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository
from storage.tiers import MongoTierRepository
from storage.vouchers import MongoVoucherRepository


class World:
    def __init__(self, db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> None:
        self.clock = clock
        self.customers = CustomerService(MongoCustomerRepository(db), program, clock)
        self.ledger = LedgerService(MongoLedgerRepository(db), program, clock)
        self.vouchers = VoucherService(MongoVoucherRepository(db), program, clock)
        self.repo = MongoTierRepository(db)
        self.tiers = TierService(
            repo=self.repo,
            customers=self.customers,
            ledger=self.ledger,
            program=program,
            clock=clock,
            vouchers=self.vouchers,
        )

    async def customer(self, user: str = "u1") -> str:
        customer, _ = await self.customers.get_or_create(Identity(channel="zalo", user_id=user))
        return customer.id

    async def earn(self, cid: str, points: int, key: str) -> None:
        await self.ledger.earn(cid, points, key=key, reason="order")
        await self.tiers.after_earn(cid)

    async def tier(self, cid: str) -> str:
        return (await self.customers.get(cid)).tier

    async def voucher_templates(self, cid: str) -> list[str]:
        return sorted(v.template_id for v in await self.vouchers.list_for(cid))


def with_policy(program: Program, **changes: object) -> Program:
    tiers = program.tiers.model_copy(update=changes)
    return program.model_copy(update={"tiers": TierPolicy.model_validate(tiers.model_dump())})


@pytest.fixture
def world(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> World:
    return World(db, program, clock)


async def test_earning_past_a_threshold_upgrades_at_once_with_its_voucher(world: World) -> None:
    cid = await world.customer()
    await world.earn(cid, 499, "o1")
    assert await world.tier(cid) == "member"

    await world.earn(cid, 1, "o2")

    assert await world.tier(cid) == "silver"
    assert await world.voucher_templates(cid) == ["tier_silver"]
    status = await world.tiers.status(cid)
    assert status.qualifying_points == 500 and status.next_tier is not None
    assert status.next_tier.id == "gold" and status.points_to_next == 500
    [change] = await world.tiers.history(cid)
    assert (change.from_tier, change.to_tier, change.reason, change.policy_version) == (
        "member",
        "silver",
        "earned",
        1,
    )


async def test_jumping_two_tiers_gives_both_vouchers(world: World) -> None:
    cid = await world.customer()
    await world.earn(cid, 1200, "big-order")

    assert await world.tier(cid) == "gold"
    assert await world.voucher_templates(cid) == ["tier_gold", "tier_silver"]


async def test_spending_points_never_lowers_the_tier(world: World) -> None:
    cid = await world.customer()
    await world.earn(cid, 600, "o1")
    await world.ledger.spend(cid, 600, key="reward", reason="reward")

    assert await world.tier(cid) == "silver"
    assert (await world.tiers.review()).downgraded == 0
    assert await world.tier(cid) == "silver"


async def test_concurrent_evaluations_upgrade_once(world: World) -> None:
    cid = await world.customer()
    await world.ledger.earn(cid, 700, key="o1", reason="order")

    changes = await asyncio.gather(*(world.tiers.after_earn(cid) for _ in range(10)))

    assert sum(change is not None for change in changes) == 1
    assert await world.voucher_templates(cid) == ["tier_silver"]
    assert len(await world.tiers.history(cid)) == 1


async def test_a_review_downgrades_when_the_window_moved_on(world: World, clock: FrozenClock) -> None:
    cid = await world.customer()
    await world.earn(cid, 1500, "o1")
    clock.advance(timedelta(days=200))
    assert (await world.tiers.review()).downgraded == 0  # still inside the 12 months

    clock.advance(timedelta(days=200))
    report = await world.tiers.review()

    assert report.downgraded == 1 and await world.tier(cid) == "member"
    assert [c.to_tier for c in await world.tiers.history(cid)] == ["gold", "member"]
    assert (await world.tiers.review()).downgraded == 0


async def test_one_level_rule_drops_one_level_per_review_period(
    db: AsyncDatabase[Document], program: Program, clock: FrozenClock
) -> None:
    world = World(db, with_policy(program, downgrade="one_level"), clock)
    cid = await world.customer()
    await world.earn(cid, 2500, "o1")
    clock.advance(timedelta(days=400))

    await world.tiers.review()
    await world.tiers.review(force=True)  # the same month: not again
    assert await world.tier(cid) == "gold"

    clock.advance(timedelta(days=31))
    await world.tiers.review()
    assert await world.tier(cid) == "silver"


async def test_reaching_a_tier_again_in_the_same_period_gives_no_second_voucher(
    db: AsyncDatabase[Document], program: Program, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 2, 1, 3, 0, tzinfo=UTC))
    world = World(db, with_policy(program, window=TierWindow(kind="calendar_year")), clock)
    cid = await world.customer()
    await world.earn(cid, 600, "o1")
    await world.ledger.reverse("o1", key="o1:refund", reason="order_refunded")
    clock.advance(timedelta(days=31))
    await world.tiers.review()
    assert await world.tier(cid) == "member"

    await world.earn(cid, 600, "o2")

    assert await world.tier(cid) == "silver"
    assert await world.voucher_templates(cid) == ["tier_silver"]  # one, not two


async def test_windows_are_whole_local_months(
    world: World, db: AsyncDatabase[Document], program: Program, clock: FrozenClock
) -> None:
    assert world.tiers.window_months(datetime(2026, 3, 15, tzinfo=UTC))[:2] == ("2025-04", "2025-05")
    assert len(world.tiers.window_months()) == 12
    calendar = World(db, with_policy(program, window=TierWindow(kind="calendar_year", anchor="04-01")), clock)
    # 18:00 UTC on 31 March is already 1 April in Hồ Chí Minh City: a new year of the program
    assert calendar.tiers.window_months(datetime(2026, 5, 2, tzinfo=UTC)) == ("2026-04", "2026-05")
    assert calendar.tiers.window_months(datetime(2026, 3, 31, 18, 0, tzinfo=UTC)) == ("2026-04",)
    assert calendar.tiers.period(datetime(2026, 3, 1, tzinfo=UTC)) == "2025-04"


async def test_a_change_left_half_done_is_repaired(world: World, clock: FrozenClock) -> None:
    cid = await world.customer()
    await world.ledger.earn(cid, 800, key="o1", reason="order")
    # what a process killed right after setting the tier leaves: no history, no voucher yet
    change = TierChange(
        id=f"{cid}:member>silver:x",
        customer_id=cid,
        from_tier="member",
        to_tier="silver",
        at=clock.now(),
        reason="earned",
        qualifying_points=800,
        period="review-2026-12",
        policy_version=1,
        vouchers=(("silver", "tier_silver"),),
    )
    assert await world.repo.change_tier(change, expected="member", review_period=None)
    assert await world.tier(cid) == "silver" and await world.voucher_templates(cid) == []

    assert await world.tiers.repair() == 1

    assert await world.voucher_templates(cid) == ["tier_silver"]
    assert len(await world.tiers.history(cid)) == 1
    assert await world.tiers.repair() == 0
    assert await world.tiers.after_earn(cid) is None  # already silver
