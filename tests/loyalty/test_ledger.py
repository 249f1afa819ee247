"""The points ledger against the real database: lots, exactly-once keys, crashes and reconcile."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.customers import CustomerService, Identity
from loyalty.errors import CustomerNotFound, IdempotencyConflict, InsufficientPoints, InvalidAmount
from loyalty.ledger import COMPACT_AFTER, STALE_AFTER, LedgerEntry, LedgerService
from loyalty.program import Program
from storage.clients import Document
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository


@pytest.fixture
def ledger_repo(db: AsyncDatabase[Document]) -> MongoLedgerRepository:
    return MongoLedgerRepository(db)


@pytest.fixture
def ledger(ledger_repo: MongoLedgerRepository, program: Program, clock: FrozenClock) -> LedgerService:
    return LedgerService(ledger_repo, program, clock)


@pytest.fixture
def customers(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> CustomerService:
    return CustomerService(MongoCustomerRepository(db), program, clock)


async def new_customer(customers: CustomerService, user: str = "u1") -> str:
    customer, _ = await customers.get_or_create(Identity(channel="zalo", user_id=user))
    return customer.id


async def test_earn_adds_a_lot_and_the_totals(ledger: LedgerService, customers: CustomerService) -> None:
    cid = await new_customer(customers)
    entry = await ledger.earn(cid, 120, key="order:1", reason="order", ref={"order_id": "1"})

    wallet = await ledger.wallet(cid)
    assert entry.points == 120 and entry.kind == "earn" and entry.ref == {"order_id": "1"}
    assert wallet.balance == 120 and wallet.lifetime_earned == 120
    assert wallet.qualifying_by_month == {"2026-12": 120}
    assert [(lot.key, lot.remaining) for lot in wallet.lots] == [("order:1", 120)]
    assert wallet.lots[0].expires_at is not None and wallet.lots[0].expires_at.year == 2027


async def test_the_same_key_earns_once(ledger: LedgerService, customers: CustomerService) -> None:
    cid = await new_customer(customers)
    first = await ledger.earn(cid, 50, key="checkin:a", reason="checkin")
    again = await ledger.earn(cid, 50, key="checkin:a", reason="checkin")

    assert again.key == first.key
    assert await ledger.balance(cid) == 50


async def test_concurrent_duplicates_earn_once(ledger: LedgerService, customers: CustomerService) -> None:
    cid = await new_customer(customers)
    await asyncio.gather(*(ledger.earn(cid, 10, key="order:dup", reason="order") for _ in range(20)))

    assert await ledger.balance(cid) == 10
    assert len(await ledger.history(cid)) == 1


async def test_a_key_reused_for_another_amount_is_a_conflict(
    ledger: LedgerService, customers: CustomerService
) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 10, key="k", reason="order")
    with pytest.raises(IdempotencyConflict):
        await ledger.earn(cid, 11, key="k", reason="order")
    with pytest.raises(IdempotencyConflict):
        await ledger.spend(cid, 10, key="k", reason="reward")


@pytest.mark.parametrize("points", [0, -5, 1.5, True, "10", 10**12])
async def test_amounts_must_be_positive_whole_numbers(
    ledger: LedgerService, customers: CustomerService, points: object
) -> None:
    cid = await new_customer(customers)
    with pytest.raises(InvalidAmount):
        await ledger.earn(cid, points, key="k", reason="x")  # type: ignore[arg-type]
    assert await ledger.history(cid) == []


async def test_an_operator_as_key_is_refused(ledger: LedgerService, customers: CustomerService) -> None:
    cid = await new_customer(customers)
    with pytest.raises(InvalidAmount):
        await ledger.earn(cid, 5, key={"$ne": ""}, reason="x")  # type: ignore[arg-type]


async def test_earning_for_an_unknown_customer_is_refused_and_leaves_nothing(
    ledger: LedgerService, ledger_repo: MongoLedgerRepository
) -> None:
    with pytest.raises(CustomerNotFound):
        await ledger.earn("nobody", 5, key="k1", reason="x")
    assert await ledger_repo.entry("k1") is None


async def test_spend_draws_from_the_lot_that_expires_first(
    ledger: LedgerService, customers: CustomerService, clock: FrozenClock
) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 30, key="late", reason="gift", expires_at=clock.now() + timedelta(days=300))
    await ledger.earn(cid, 30, key="soon", reason="gift", expires_at=clock.now() + timedelta(days=10))

    await ledger.spend(cid, 40, key="spend:1", reason="reward")

    wallet = await ledger.wallet(cid)
    assert wallet.balance == 20
    assert [(lot.key, lot.remaining) for lot in wallet.lots] == [("late", 20)]


async def test_a_spend_never_makes_the_balance_negative(
    ledger: LedgerService, customers: CustomerService
) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 30, key="e", reason="order")
    with pytest.raises(InsufficientPoints):
        await ledger.spend(cid, 31, key="s", reason="reward")
    # the refusal is remembered for the key, and nothing changed
    with pytest.raises(InsufficientPoints):
        await ledger.spend(cid, 31, key="s", reason="reward")
    assert await ledger.balance(cid) == 30


async def test_concurrent_spends_stop_at_zero(ledger: LedgerService, customers: CustomerService) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 100, key="e", reason="order")

    results = await asyncio.gather(
        *(ledger.spend(cid, 10, key=f"s{i}", reason="reward") for i in range(25)), return_exceptions=True
    )

    assert sum(isinstance(r, LedgerEntry) for r in results) == 10
    assert sum(isinstance(r, InsufficientPoints) for r in results) == 15
    wallet = await ledger.wallet(cid)
    assert wallet.balance == 0 and wallet.lots == ()


async def test_expiry_removes_only_the_unspent_remainder(
    ledger: LedgerService, customers: CustomerService, clock: FrozenClock
) -> None:
    """The peers' 'balance collapse' bug: expiring an old credit must not take points already spent."""
    cid = await new_customer(customers)
    await ledger.earn(cid, 100, key="old", reason="order")  # expires in 12 months
    clock.advance(timedelta(days=200))
    await ledger.earn(cid, 50, key="new", reason="order")
    await ledger.spend(cid, 60, key="spend", reason="reward")  # 60 from "old"

    clock.advance(timedelta(days=170))  # "old" is past its 12 months, "new" is not
    assert await ledger.expire_due() == 1

    wallet = await ledger.wallet(cid)
    assert wallet.balance == 50
    assert [(lot.key, lot.remaining) for lot in wallet.lots] == [("new", 50)]
    expired = await ledger.entry("expire:old")
    assert expired is not None and expired.points == -40
    assert await ledger.expire_due() == 0  # running the job again changes nothing


async def test_expiring_points_are_reported(
    ledger: LedgerService, customers: CustomerService, clock: FrozenClock
) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 25, key="a", reason="gift", expires_at=clock.now() + timedelta(days=20))
    await ledger.earn(cid, 40, key="b", reason="gift", expires_at=clock.now() + timedelta(days=90))

    assert await ledger.expiring(cid) == 25


async def test_adjustments_need_a_reason_and_respect_the_balance(
    ledger: LedgerService, customers: CustomerService
) -> None:
    cid = await new_customer(customers)
    await ledger.adjust(cid, 15, key="adj:1", reason="goodwill", staff_id="staff1")
    with pytest.raises(InvalidAmount):
        await ledger.adjust(cid, 5, key="adj:2", reason="  ", staff_id="staff1")
    with pytest.raises(InsufficientPoints):
        await ledger.adjust(cid, -16, key="adj:3", reason="typo", staff_id="staff1")
    await ledger.adjust(cid, -5, key="adj:4", reason="typo", staff_id="staff1")

    wallet = await ledger.wallet(cid)
    assert wallet.balance == 10
    assert wallet.qualifying_by_month == {}  # an adjustment does not qualify for tiers
    entry = await ledger.entry("adj:1")
    assert entry is not None and entry.staff_id == "staff1" and entry.reason == "goodwill"


async def test_reversing_an_earn_takes_its_points_and_qualifying_points_back(
    ledger: LedgerService, customers: CustomerService
) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 70, key="order:1", reason="order")
    await ledger.earn(cid, 20, key="order:2", reason="order")

    reversal = await ledger.reverse("order:1", key="order:1:reverse", reason="order_refunded")
    again = await ledger.reverse("order:1", key="order:1:reverse", reason="order_refunded")

    assert reversal is not None and reversal.points == -70 and again is not None
    wallet = await ledger.wallet(cid)
    assert wallet.balance == 20 and wallet.lifetime_earned == 20
    assert wallet.qualifying_by_month == {"2026-12": 20}
    assert [(lot.key, lot.remaining) for lot in wallet.lots] == [("order:2", 20)]


async def test_reversing_an_earn_already_spent_stops_at_zero(
    ledger: LedgerService, customers: CustomerService
) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 70, key="order:1", reason="order")
    await ledger.spend(cid, 50, key="reward:1", reason="reward")

    reversal = await ledger.reverse("order:1", key="order:1:reverse", reason="order_refunded")

    assert reversal is not None and reversal.points == -20
    wallet = await ledger.wallet(cid)
    assert wallet.balance == 0 and wallet.qualifying_by_month == {"2026-12": 0}
    assert (await ledger.reconcile()).ok


async def test_reversing_a_spend_gives_the_points_back(
    ledger: LedgerService, customers: CustomerService
) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 70, key="e", reason="order")
    await ledger.spend(cid, 50, key="reward:1", reason="reward")

    await ledger.reverse("reward:1", key="reward:1:refund", reason="reward_failed")

    assert await ledger.balance(cid) == 70
    assert await ledger.reverse("missing", key="x", reason="nothing") is None


async def test_a_crash_between_claim_and_apply_is_finished_by_the_retry(
    ledger: LedgerService,
    ledger_repo: MongoLedgerRepository,
    customers: CustomerService,
    clock: FrozenClock,
) -> None:
    cid = await new_customer(customers)
    half_written = LedgerEntry(
        key="order:9", customer_id=cid, kind="earn", points=40, reason="order", created_at=clock.now()
    )
    assert await ledger_repo.claim(half_written) is None  # the process died right after this write
    assert await ledger.balance(cid) == 0

    clock.advance(STALE_AFTER + timedelta(seconds=1))
    await ledger.earn(cid, 40, key="order:9", reason="order")  # the platform's retry

    assert await ledger.balance(cid) == 40
    await ledger.earn(cid, 40, key="order:9", reason="order")
    assert await ledger.balance(cid) == 40


async def test_reconcile_repairs_half_written_entries_and_finds_tampering(
    ledger: LedgerService,
    ledger_repo: MongoLedgerRepository,
    customers: CustomerService,
    clock: FrozenClock,
    db: AsyncDatabase[Document],
) -> None:
    cid = await new_customer(customers)
    await ledger.earn(cid, 10, key="a", reason="order")
    await ledger_repo.claim(
        LedgerEntry(key="b", customer_id=cid, kind="earn", points=5, reason="order", created_at=clock.now())
    )
    clock.advance(timedelta(minutes=1))

    report = await ledger.reconcile()
    assert report.repaired_entries == 1 and report.ok and report.customers == 1
    assert await ledger.balance(cid) == 15

    await db["customers"].update_one({"_id": cid}, {"$inc": {"wallet.balance": 7}})
    report = await ledger.reconcile()
    assert report.mismatched == ((cid, 22, 15),)
    assert (await ledger.reconcile(fix=True)).fixed
    assert (await ledger.reconcile()).ok and await ledger.balance(cid) == 15


async def test_compacted_keys_still_apply_once(
    ledger: LedgerService, customers: CustomerService, clock: FrozenClock
) -> None:
    cid = await new_customer(customers)
    for i in range(5):
        await ledger.earn(cid, 1, key=f"k{i}", reason="order")
    clock.advance(COMPACT_AFTER + timedelta(minutes=1))

    result = await ledger.maintain()
    assert result["compacted"] == 5
    assert (await ledger.wallet(cid)).journal == ()

    for i in range(5):  # late retries of every key
        await ledger.earn(cid, 1, key=f"k{i}", reason="order")
    assert await ledger.balance(cid) == 5
    assert (await ledger.reconcile()).ok


async def test_history_is_newest_first_with_a_cursor(
    ledger: LedgerService, customers: CustomerService, clock: FrozenClock
) -> None:
    cid = await new_customer(customers)
    for i in range(5):
        await ledger.earn(cid, i + 1, key=f"e{i}", reason="order")
        clock.advance(timedelta(seconds=1))

    first = await ledger.history(cid, limit=2)
    rest = await ledger.history(cid, limit=10, before=(first[-1].created_at, first[-1].key))

    assert [e.key for e in first] == ["e4", "e3"]
    assert [e.key for e in rest] == ["e2", "e1", "e0"]
