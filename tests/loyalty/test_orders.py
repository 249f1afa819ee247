"""OrderService through the real repositories: pricing, completion once, crashes, vouchers, refunds."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.customers import CustomerService, Identity
from loyalty.errors import (
    IdempotencyConflict,
    InvalidAmount,
    InvalidQuantity,
    OrderEmpty,
    OrderNotFound,
    OrderNotPending,
    UnknownProduct,
    VoucherUsed,
)
from loyalty.ledger import LedgerEntry, LedgerService
from loyalty.orders import Order, OrderItemIn, OrderService
from loyalty.privacy import PersonalDataHolder
from loyalty.program import Program
from loyalty.tiers import TierService
from loyalty.vouchers import VoucherService
from storage.clients import Document
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository
from storage.orders import MongoOrderRepository
from storage.tiers import MongoTierRepository
from storage.vouchers import MongoVoucherRepository


@dataclass
class World:
    db: AsyncDatabase[Document]
    customers: CustomerService
    ledger: LedgerService
    vouchers: VoucherService
    repo: MongoOrderRepository
    orders: OrderService
    clock: FrozenClock
    tiers: TierService

    async def customer(self, user: str = "u1") -> str:
        customer, _ = await self.customers.get_or_create(Identity(channel="zalo", user_id=user))
        return customer.id

    async def earns(self, customer_id: str) -> list[LedgerEntry]:
        return [e for e in await self.ledger.history(customer_id) if e.kind == "earn"]


def build_world(
    db: AsyncDatabase[Document], program: Program, clock: FrozenClock, ledger: LedgerService | None = None
) -> World:
    ledger = ledger or LedgerService(MongoLedgerRepository(db), program, clock)
    customers = CustomerService(MongoCustomerRepository(db), program, clock)
    vouchers = VoucherService(MongoVoucherRepository(db), program, clock)
    repo = MongoOrderRepository(db)
    tiers = TierService(
        repo=MongoTierRepository(db),
        customers=customers,
        ledger=ledger,
        program=program,
        clock=clock,
        vouchers=vouchers,
    )
    orders = OrderService(repo, ledger, tiers, vouchers, customers, program, clock)
    return World(db, customers, ledger, vouchers, repo, orders, clock, tiers)


@pytest.fixture
def world(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> World:
    return build_world(db, program, clock)


def items(*lines: tuple[str, int]) -> list[OrderItemIn]:
    return [OrderItemIn(product_id=product, qty=qty) for product, qty in lines]


# ------------------------------------------------------------------------------------------ create
async def test_items_are_priced_from_the_catalog(world: World, clock: FrozenClock) -> None:
    cid = await world.customer()
    order = await world.orders.create(
        cid, source="miniapp", items=items(("tra-dao", 2), ("banh-mi", 1), ("tra-dao", 1)), note=" ít đá "
    )

    assert order.status == "pending" and order.customer_id == cid and order.created_at == clock.now()
    assert [(i.product_id, i.qty, i.unit_price, i.line_total) for i in order.items] == [
        ("tra-dao", 3, 45000, 135000),
        ("banh-mi", 1, 25000, 25000),
    ]
    assert (order.subtotal, order.discount, order.total) == (160000, 0, 160000)
    assert order.note == "ít đá" and order.created_by == "miniapp"
    assert await world.orders.get(order.id) == order


async def test_pos_orders_may_report_a_total(world: World) -> None:
    cid = await world.customer()
    order = await world.orders.create(cid, source="pos", amount=87000, store="q1", by="staff:an")

    assert (order.items, order.subtotal, order.total, order.store, order.created_by) == (
        (),
        87000,
        87000,
        "q1",
        "staff:an",
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"source": "miniapp", "items": items(("khong-co", 1))}, UnknownProduct),
        ({"source": "miniapp", "items": items(("tra-dao", 0))}, InvalidQuantity),
        ({"source": "miniapp", "items": items(("tra-dao", 100))}, InvalidQuantity),
        ({"source": "miniapp", "items": items(("tra-dao", 60), ("tra-dao", 40))}, InvalidQuantity),
        ({"source": "miniapp", "items": []}, OrderEmpty),
        ({"source": "pos"}, OrderEmpty),
        ({"source": "miniapp", "amount": 10000}, InvalidAmount),  # a client never sets its own price
        ({"source": "pos", "amount": 0}, InvalidAmount),
        ({"source": "pos", "amount": -5}, InvalidAmount),
        ({"source": "pos", "amount": 5000, "items": items(("tra-dao", 1))}, InvalidAmount),
    ],
)
async def test_invalid_orders_are_refused_with_a_code(
    world: World, kwargs: dict[str, object], error: type[Exception]
) -> None:
    cid = await world.customer()
    with pytest.raises(error):
        await world.orders.create(cid, **kwargs)  # type: ignore[arg-type]
    assert await world.db["orders"].count_documents({}) == 0


async def test_an_inactive_product_is_unknown(db: AsyncDatabase[Document], clock: FrozenClock) -> None:
    data = Program.model_validate(build_program_data(inactive="bac-xiu"))
    local = build_world(db, data, clock)
    cid = await local.customer()
    with pytest.raises(UnknownProduct):
        await local.orders.create(cid, source="miniapp", items=items(("bac-xiu", 1)))


def build_program_data(*, inactive: str) -> dict[str, object]:
    from loyalty.program import load_program  # noqa: PLC0415 - the demo program, as a dict to change

    data = load_program().model_dump(mode="json")
    for product in data["products"]:
        if product["id"] == inactive:
            product["active"] = False
    return data


async def test_the_same_external_id_gives_one_order_under_concurrency(world: World) -> None:
    cid = await world.customer()
    created = await asyncio.gather(
        *(
            world.orders.create(cid, source="integration", amount=120000, external_id="KIOT-77")
            for _ in range(5)
        )
    )

    assert len({order.id for order in created}) == 1
    assert await world.db["orders"].count_documents({}) == 1
    found = await world.orders.by_external_id("integration", " KIOT-77 ")
    assert found is not None and found.id == created[0].id
    # the same external id from another source is another order
    other = await world.orders.create(cid, source="pos", amount=5000, external_id="KIOT-77")
    assert other.id != created[0].id
    # and for another customer it is a mistake of the integration, not a replay
    with pytest.raises(IdempotencyConflict):
        await world.orders.create(
            await world.customer("u2"), source="pos", amount=5000, external_id="KIOT-77"
        )


# ------------------------------------------------------------------------------------------ complete
async def test_complete_earns_points_records_the_order_and_reevaluates_the_tier(
    world: World, clock: FrozenClock
) -> None:
    cid = await world.customer()
    order = await world.orders.create(cid, source="miniapp", items=items(("tra-dao", 3)))  # 135,000 VND
    clock.advance(timedelta(minutes=5))
    done = await world.orders.complete(order.id, by="staff:an")

    assert done.status == "completed" and done.points == 13 and done.effects_done
    assert done.completed_at == clock.now() and done.completed_by == "staff:an"
    earns = await world.earns(cid)
    assert [(e.key, e.points, e.reason, e.ref) for e in earns] == [
        (f"order:{order.id}", 13, "order", {"order_id": order.id})
    ]
    customer = await world.customers.get(cid)
    assert customer.last_order_at == clock.now() and customer.balance == 13
    stored = await world.orders.get(order.id)
    assert stored.status == "completed" and stored.effects_done and stored.points == 13


async def test_a_completed_order_upgrades_the_tier_at_once(world: World) -> None:
    cid = await world.customer()
    order = await world.orders.create(cid, source="pos", amount=5_200_000)  # 520 points: Silver
    await world.orders.complete(order.id, by="staff")

    customer = await world.customers.get(cid)
    assert customer.tier == "silver" and customer.balance == 520
    assert [v.template_id for v in await world.vouchers.list_for(cid)] == ["tier_silver"]
    later = await world.orders.create(cid, source="pos", amount=100000)
    done = await world.orders.complete(later.id, by="staff")
    assert done.points == 11  # the Silver multiplier (1.1) from now on


async def test_the_same_order_completed_in_parallel_earns_once(world: World) -> None:
    cid = await world.customer()
    order = await world.orders.create(cid, source="pos", amount=250000)
    pair = await asyncio.gather(*(world.orders.complete(order.id, by="staff") for _ in range(2)))
    assert {o.status for o in pair} == {"completed"}

    other = await world.orders.create(cid, source="pos", amount=100000)
    ten = await asyncio.gather(*(world.orders.complete(other.id, by="staff") for _ in range(10)))
    assert {(o.status, o.points) for o in ten} == {("completed", 10)}

    assert sorted(e.points for e in await world.earns(cid)) == [10, 25]
    assert await world.ledger.balance(cid) == 35


async def test_earning_uses_the_tier_multiplier_at_completion(world: World) -> None:
    cid = await world.customer()
    await world.db["customers"].update_one({"_id": cid}, {"$set": {"tier": "gold"}})  # multiplier 1.25
    order = await world.orders.create(cid, source="pos", amount=100000)
    done = await world.orders.complete(order.id, by="staff")

    assert done.points == 12  # 10 points x 1.25 = 12.5, rounded down
    assert await world.ledger.balance(cid) == 12


async def test_complete_after_a_crash_between_the_flip_and_the_earn_finishes_the_job(
    world: World, clock: FrozenClock
) -> None:
    cid = await world.customer()
    order = await world.orders.create(cid, source="pos", amount=300000)
    # What a process that died right after the status flip leaves behind:
    flipped = await world.repo.transition(
        order.id, "pending", "completed", {"completed_at": clock.now(), "completed_by": "staff", "points": 30}
    )
    assert flipped and await world.ledger.balance(cid) == 0

    clock.advance(timedelta(minutes=1))
    done = await world.orders.complete(order.id, by="staff:retry")

    assert done.status == "completed" and done.effects_done and done.completed_by == "staff"
    assert [e.points for e in await world.earns(cid)] == [30]
    assert (await world.customers.get(cid)).last_order_at == order.created_at
    await world.orders.complete(order.id, by="staff:again")
    assert await world.ledger.balance(cid) == 30


async def test_only_pending_orders_complete(world: World) -> None:
    cid = await world.customer()
    order = await world.orders.create(cid, source="pos", amount=50000)
    await world.orders.cancel(order.id, by="staff", reason="khách đổi ý")
    with pytest.raises(OrderNotPending):
        await world.orders.complete(order.id, by="staff")
    with pytest.raises(OrderNotFound):
        await world.orders.complete("nope", by="staff")
    assert await world.ledger.balance(cid) == 0


async def test_an_order_below_one_point_completes_without_an_earn(world: World) -> None:
    cid = await world.customer()
    order = await world.orders.create(cid, source="pos", amount=9999)
    done = await world.orders.complete(order.id, by="staff")

    assert done.points == 0 and done.effects_done
    assert await world.earns(cid) == []
    assert (await world.customers.get(cid)).last_order_at is not None


# ------------------------------------------------------------------------------------------ vouchers
async def test_a_voucher_is_redeemed_at_create_and_released_on_cancel(world: World) -> None:
    cid = await world.customer()
    voucher = await world.vouchers.issue(cid, "welcome_20k", key="welcome:1", source="welcome")
    typed = voucher.code.lower()[:4] + " " + voucher.code.lower()[4:]  # people type codes loosely
    order = await world.orders.create(cid, source="miniapp", items=items(("tra-dao", 2)), voucher_code=typed)

    assert (order.subtotal, order.discount, order.total) == (90000, 20000, 70000)
    assert order.voucher_code == voucher.code and order.voucher_redeemed
    used = await world.vouchers.get(voucher.code)
    assert used.status == "redeemed" and used.order_id == order.id

    cancelled = await world.orders.cancel(order.id, by="miniapp", reason="khách huỷ")
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "khách huỷ"
    assert (await world.vouchers.get(voucher.code)).status == "issued"
    again = await world.orders.cancel(order.id, by="miniapp", reason="khách huỷ")
    assert again.status == "cancelled"
    assert (await world.vouchers.get(voucher.code)).status == "issued"


async def test_a_voucher_used_meanwhile_leaves_no_order(world: World) -> None:
    cid = await world.customer()
    voucher = await world.vouchers.issue(cid, "free_drink", key="gift:1", source="staff")
    first = await world.orders.create(
        cid, source="miniapp", items=items(("bac-xiu", 2)), voucher_code=voucher.code
    )
    await world.orders.complete(first.id, by="miniapp")

    with pytest.raises(VoucherUsed):
        await world.orders.create(
            cid, source="miniapp", items=items(("bac-xiu", 2)), voucher_code=voucher.code
        )
    assert await world.db["orders"].count_documents({}) == 1


async def test_concurrent_orders_with_one_voucher_redeem_it_once(world: World) -> None:
    cid = await world.customer()
    voucher = await world.vouchers.issue(cid, "free_drink", key="gift:2", source="staff")
    results = await asyncio.gather(
        *(
            world.orders.create(cid, source="miniapp", items=items(("bac-xiu", 2)), voucher_code=voucher.code)
            for _ in range(5)
        ),
        return_exceptions=True,
    )

    made = [r for r in results if isinstance(r, Order)]
    assert len(made) == 1 and all(isinstance(r, VoucherUsed) for r in results if r not in made)
    assert await world.db["orders"].count_documents({}) == 1
    assert (await world.vouchers.get(voucher.code)).order_id == made[0].id


async def test_complete_redeems_a_voucher_a_crash_left_unredeemed(world: World, clock: FrozenClock) -> None:
    cid = await world.customer()
    voucher = await world.vouchers.issue(cid, "discount_50k", key="gift:3", source="staff")
    order = Order(
        id="crashed-order",
        customer_id=cid,
        source="miniapp",
        subtotal=200000,
        discount=50000,
        total=150000,
        voucher_code=voucher.code,
        created_at=clock.now(),
        created_by="miniapp",
    )
    await world.repo.insert(order)  # written, then the process died before the redemption

    done = await world.orders.complete(order.id, by="miniapp")

    assert done.status == "completed" and done.points == 15
    assert (await world.vouchers.get(voucher.code)).order_id == order.id
    assert (await world.orders.get(order.id)).voucher_redeemed


# ------------------------------------------------------------------------------------------ refunds
async def test_a_refund_reverses_the_points_and_keeps_the_voucher_used(world: World) -> None:
    cid = await world.customer()
    voucher = await world.vouchers.issue(cid, "welcome_20k", key="welcome:2", source="welcome")
    order = await world.orders.create(
        cid, source="miniapp", items=items(("tra-sua", 5)), voucher_code=voucher.code
    )
    await world.orders.complete(order.id, by="staff")  # 210,000 - 20,000 = 190,000 VND: 19 points
    assert await world.ledger.balance(cid) == 19

    with pytest.raises(OrderNotPending):
        await world.orders.cancel(order.id, by="staff", reason="nhầm")  # completed: refund=True needed
    refunded = await world.orders.cancel(order.id, refund=True, by="staff:an", reason="hàng lỗi")

    assert refunded.status == "refunded" and refunded.reversal_done and refunded.refunded_at is not None
    assert await world.ledger.balance(cid) == 0
    reversal = await world.ledger.entry(f"order:{order.id}:reverse")
    assert reversal is not None and reversal.kind == "reverse" and reversal.reason == "order_refunded"
    assert (await world.vouchers.get(voucher.code)).status == "redeemed"
    await world.orders.cancel(order.id, refund=True, by="staff:an", reason="hàng lỗi")
    assert await world.ledger.balance(cid) == 0
    with pytest.raises(OrderNotPending):
        await world.orders.complete(order.id, by="staff")


async def test_refunding_a_half_completed_order_never_earns(world: World, clock: FrozenClock) -> None:
    cid = await world.customer()
    order = await world.orders.create(cid, source="pos", amount=400000)
    await world.repo.transition(
        order.id, "pending", "completed", {"completed_at": clock.now(), "completed_by": "staff", "points": 40}
    )
    await world.orders.cancel(order.id, refund=True, by="staff", reason="huỷ")
    with pytest.raises(OrderNotPending):
        await world.orders.complete(order.id, by="staff")
    assert await world.ledger.balance(cid) == 0


class RefundDuringEarn(LedgerService):
    """A ledger whose first order earn is preceded by a refund of that order: the race where the
    refund's reversal runs before the completing call's earn."""

    orders: OrderService | None = None

    async def earn(
        self,
        customer_id: str,
        points: int,
        *,
        key: str,
        reason: str,
        ref: Mapping[str, str] | None = None,
        qualifying: bool = True,
        expires_at: datetime | None = None,
    ) -> LedgerEntry:
        if self.orders is not None and ref and "order_id" in ref:
            orders, self.orders = self.orders, None
            await orders.cancel(ref["order_id"], refund=True, by="staff", reason="huỷ gấp")
        return await super().earn(
            customer_id, points, key=key, reason=reason, ref=ref, qualifying=qualifying, expires_at=expires_at
        )


async def test_a_refund_racing_the_earn_still_reverses_the_points(
    db: AsyncDatabase[Document], program: Program, clock: FrozenClock
) -> None:
    ledger = RefundDuringEarn(MongoLedgerRepository(db), program, clock)
    local = build_world(db, program, clock, ledger=ledger)
    ledger.orders = local.orders
    cid = await local.customer()
    order = await local.orders.create(cid, source="pos", amount=500000)

    result = await local.orders.complete(order.id, by="staff")

    assert result.status == "refunded"
    assert [e.points for e in await local.earns(cid)] == [50]
    assert await local.ledger.balance(cid) == 0


# ------------------------------------------------------------------------------------------ look-ups
async def test_list_for_pages_newest_first(world: World, clock: FrozenClock) -> None:
    cid = await world.customer()
    other = await world.customer("u2")
    made = []
    for amount in (10000, 20000, 30000, 40000, 50000):
        made.append(await world.orders.create(cid, source="pos", amount=amount))
        clock.advance(timedelta(seconds=1))
    await world.orders.create(other, source="pos", amount=99000)

    first = await world.orders.list_for(cid, limit=2)
    second = await world.orders.list_for(cid, limit=2, before=first[-1].id)
    third = await world.orders.list_for(cid, limit=2, before=second[-1].id)

    assert [o.total for o in first + second + third] == [50000, 40000, 30000, 20000, 10000]
    assert await world.orders.list_for(cid, limit=2, before=third[-1].id) == []
    with pytest.raises(OrderNotFound):
        await world.orders.list_for(other, limit=2, before=first[0].id)  # someone else's cursor


async def test_a_merge_moves_the_orders(world: World) -> None:
    older = await world.customer("u1")
    newer = await world.customer("u2")
    order = await world.orders.create(newer, source="pos", amount=60000)

    assert await world.orders.reassign_customer(newer, older) == 1
    assert await world.orders.reassign_customer(newer, older) == 0
    assert (await world.orders.get(order.id)).customer_id == older
    assert [o.id for o in await world.orders.list_for(older)] == [order.id]


async def test_orders_are_exported_and_their_notes_erased(world: World) -> None:
    holder: PersonalDataHolder = world.repo
    cid = await world.customer()
    order = await world.orders.create(
        cid, source="miniapp", items=items(("tra-dao", 1)), note="giao cho chị Lan"
    )
    await world.orders.create(await world.customer("u2"), source="pos", amount=5000, note="khác")

    exported = await holder.export_customer(cid)
    assert isinstance(exported, list) and [o["id"] for o in exported] == [order.id]
    assert exported[0]["note"] == "giao cho chị Lan" and exported[0]["total"] == 45000

    assert await holder.erase_customer(cid) == 1
    assert await holder.erase_customer(cid) == 0
    erased = await world.orders.get(order.id)
    assert erased.note is None and erased.total == 45000  # the amounts stay for accounting
