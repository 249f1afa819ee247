"""VoucherService through the real Mongo repository: codes, limits, quotes, redeem once, release, expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.errors import (
    IdempotencyConflict,
    InvalidAmount,
    LimitReached,
    LoyaltyError,
    MinSpendNotMet,
    VoucherExpired,
    VoucherNotFound,
    VoucherNotYours,
    VoucherTemplateNotFound,
    VoucherUsed,
    VoucherVoid,
)
from loyalty.program import Program
from loyalty.vouchers import CODE_ALPHABET, CODE_LENGTH, Voucher, VoucherService, normalize_code
from storage.clients import Document
from storage.vouchers import MongoVoucherRepository


def with_templates(program: Program, *templates: dict[str, Any]) -> Program:
    data = program.model_dump(mode="json")
    data["voucher_templates"] = [*data["voucher_templates"], *templates]
    return Program.model_validate(data)


@pytest.fixture
def repo(db: AsyncDatabase[Document]) -> MongoVoucherRepository:
    return MongoVoucherRepository(db)


@pytest.fixture
def limited_program(program: Program) -> Program:
    return with_templates(
        program,
        {"id": "launch", "name": "Khai trương", "kind": "fixed", "value": 10000, "total_limit": 5},
        {"id": "twice", "name": "Hai lần", "kind": "percent", "value": 10, "per_customer_limit": 2},
        {
            "id": "both",
            "name": "Giới hạn kép",
            "kind": "fixed",
            "value": 5000,
            "total_limit": 3,
            "per_customer_limit": 1,
        },
    )


@pytest.fixture
def service(repo: MongoVoucherRepository, limited_program: Program, clock: FrozenClock) -> VoucherService:
    return VoucherService(repo, limited_program, clock)


# ---------------------------------------------------------------------------------------------- issue
async def test_issue_snapshots_the_template(service: VoucherService, clock: FrozenClock) -> None:
    voucher = await service.issue("c1", "discount_50k", key="k1", source="staff")
    assert len(voucher.code) == CODE_LENGTH and set(voucher.code) <= set(CODE_ALPHABET)
    assert not set(voucher.code) & set("0O1IL")
    assert (voucher.name, voucher.kind, voucher.value, voucher.min_spend) == (
        "Giảm 50.000đ",
        "fixed",
        50000,
        150000,
    )
    assert voucher.status == "issued" and voucher.customer_id == "c1" and voucher.source == "staff"
    assert voucher.issued_at == clock.now()
    assert voucher.expires_at == clock.now() + timedelta(days=30)
    assert await service.get(voucher.code) == voucher


async def test_issue_is_idempotent_on_key(service: VoucherService) -> None:
    first = await service.issue("c1", "free_drink", key="same", source="reward")
    again = await service.issue("c1", "free_drink", key="same", source="reward")
    assert again == first
    concurrent = await asyncio.gather(
        *(service.issue("c2", "free_drink", key="k2", source="x") for _ in range(8))
    )
    assert len({v.code for v in concurrent}) == 1
    assert len(await service.list_for("c2")) == 1


async def test_same_key_for_another_customer_or_template_conflicts(service: VoucherService) -> None:
    await service.issue("c1", "free_drink", key="k", source="x")
    with pytest.raises(IdempotencyConflict) as other_customer:
        await service.issue("c2", "free_drink", key="k", source="x")
    assert other_customer.value.code == "idempotency_conflict"
    with pytest.raises(IdempotencyConflict):
        await service.issue("c1", "discount_50k", key="k", source="x")


async def test_unknown_template(service: VoucherService) -> None:
    with pytest.raises(VoucherTemplateNotFound) as error:
        await service.issue("c1", "nope", key="k", source="x")
    assert error.value.code == "voucher_template_not_found"


async def test_codes_are_unique_and_random(service: VoucherService) -> None:
    vouchers = [await service.issue("c1", "free_drink", key=f"k{i}", source="x") for i in range(50)]
    assert len({v.code for v in vouchers}) == 50


async def test_total_limit_under_concurrency(service: VoucherService, repo: MongoVoucherRepository) -> None:
    results = await asyncio.gather(
        *(service.issue(f"c{i}", "launch", key=f"launch:{i}", source="campaign") for i in range(30)),
        return_exceptions=True,
    )
    issued = [r for r in results if isinstance(r, Voucher)]
    refused = [r for r in results if isinstance(r, LimitReached)]
    assert len(issued) == 5 and len(refused) == 25, results
    assert all(v.status == "issued" for v in issued)
    assert await repo.count("total:launch") == 5
    assert await repo.vouchers.count_documents({"template_id": "launch", "status": "issued"}) == 5
    assert refused[0].code == "limit_reached"
    # A refused key keeps its answer; an issued key keeps its voucher.
    with pytest.raises(LimitReached):
        await service.issue(refused_customer(results), "launch", key=refused_key(results), source="campaign")
    assert await repo.count("total:launch") == 5


def refused_customer(results: list[Any]) -> str:
    return f"c{next(i for i, r in enumerate(results) if isinstance(r, LimitReached))}"


def refused_key(results: list[Any]) -> str:
    return f"launch:{next(i for i, r in enumerate(results) if isinstance(r, LimitReached))}"


async def test_per_customer_limit(service: VoucherService, repo: MongoVoucherRepository) -> None:
    results = await asyncio.gather(
        *(service.issue("c1", "twice", key=f"t{i}", source="x") for i in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, Voucher) for r in results) == 2
    assert sum(isinstance(r, LimitReached) for r in results) == 4
    assert await repo.count("customer:twice:c1") == 2
    # Another customer has their own allowance.
    assert (await service.issue("c2", "twice", key="other", source="x")).customer_id == "c2"


async def test_a_refused_per_customer_issue_gives_its_total_slot_back(
    service: VoucherService, repo: MongoVoucherRepository
) -> None:
    await service.issue("c1", "both", key="b1", source="x")
    with pytest.raises(LimitReached):
        await service.issue("c1", "both", key="b2", source="x")
    assert await repo.count("total:both") == 1  # b2 took a total slot, then gave it back
    await service.issue("c2", "both", key="b3", source="x")
    await service.issue("c3", "both", key="b4", source="x")
    with pytest.raises(LimitReached):
        await service.issue("c4", "both", key="b5", source="x")
    assert await repo.count("total:both") == 3


async def test_a_pending_issue_left_by_a_crash_is_completed_by_a_retry(
    service: VoucherService, repo: MongoVoucherRepository
) -> None:
    # The crash: the voucher was inserted pending and the total slot taken, then the process died.
    first = await service.issue("c1", "launch", key="crash", source="x")
    await repo.vouchers.update_one({"_id": first.code}, {"$set": {"status": "pending"}})
    retried = await service.issue("c1", "launch", key="crash", source="x")
    assert retried.code == first.code and retried.status == "issued"
    assert await repo.count("total:launch") == 1  # the key's slot was not taken twice


async def test_the_welcome_voucher_is_once_per_customer(service: VoucherService) -> None:
    await service.issue("c1", "welcome_20k", key="welcome:c1", source="welcome")
    with pytest.raises(LimitReached):
        await service.issue("c1", "welcome_20k", key="welcome:c1:again", source="welcome")


# ---------------------------------------------------------------------------------------------- codes
@pytest.mark.parametrize("bad", [{"$ne": ""}, {"$gt": ""}, ["ABCDEFGHJK"], 12345, None, b"ABCDEFGHJK"])
async def test_non_string_codes_never_reach_a_query(service: VoucherService, bad: object) -> None:
    await service.issue("c1", "free_drink", key="k", source="x")
    for call in (
        service.get(bad),
        service.quote(bad, customer_id="c1", order_total=100000),
        service.redeem(bad, customer_id=None, order_total=100000, by="staff:s1"),
        service.release(bad, order_id="o1"),
    ):
        with pytest.raises(VoucherNotFound) as error:
            await call
        assert error.value.code == "voucher_not_found"


async def test_operators_as_ids_or_keys_are_refused(service: VoucherService) -> None:
    operator: Any = {"$ne": ""}
    v = await service.issue("c1", "free_drink", key="k", source="x")
    calls = [
        service.issue(operator, "free_drink", key="k2", source="x"),
        service.issue("c1", "free_drink", key=operator, source="x"),
        service.quote(v.code, customer_id=operator, order_total=50000),
        service.quote(v.code, customer_id=None, order_total=50000),  # type: ignore[arg-type]
        service.redeem(v.code, customer_id=operator, order_total=50000, by="staff:s1"),
        service.redeem(v.code, customer_id=None, order_total=50000, order_id=operator, by="miniapp"),
        service.release(v.code, order_id=operator),
        service.list_for(operator),
    ]
    for call in calls:
        with pytest.raises(InvalidAmount):
            await call
    with pytest.raises(VoucherTemplateNotFound):
        await service.issue("c1", operator, key="k3", source="x")
    assert (await service.get(v.code)).status == "issued"


async def test_codes_are_typed_loosely(service: VoucherService) -> None:
    voucher = await service.issue("c1", "free_drink", key="k", source="x")
    loose = f" {voucher.code[:5].lower()} - {voucher.code[5:]} "
    assert normalize_code(loose) == voucher.code
    assert (await service.get(loose)).code == voucher.code
    assert (await service.get(voucher.display_code)).code == voucher.code
    with pytest.raises(VoucherNotFound):
        await service.get("ZZZZZZZZZZ")  # well-formed, unknown
    with pytest.raises(VoucherNotFound):
        await service.get(voucher.code + "A")


# ---------------------------------------------------------------------------------------------- quote
async def test_quote_every_error_code(service: VoucherService, clock: FrozenClock) -> None:
    v = await service.issue("c1", "discount_50k", key="k", source="x")  # 50,000 off, min spend 150,000
    quote = await service.quote(v.code, customer_id="c1", order_total=200000)
    assert quote.discount == 50000 and quote.voucher.code == v.code

    expectations: list[tuple[type[LoyaltyError], str, dict[str, Any]]] = [
        (VoucherNotYours, "voucher_not_yours", {"customer_id": "c2", "order_total": 200000}),
        (MinSpendNotMet, "min_spend_not_met", {"customer_id": "c1", "order_total": 149999}),
        (InvalidAmount, "invalid_amount", {"customer_id": "c1", "order_total": -1}),
    ]
    for error_type, code, kwargs in expectations:
        with pytest.raises(error_type) as caught:
            await service.quote(v.code, **kwargs)
        assert caught.value.code == code

    with pytest.raises(VoucherNotFound):
        await service.quote("ABCDEFGHJK", customer_id="c1", order_total=200000)

    used = await service.issue("c1", "free_drink", key="used", source="x")
    await service.redeem(used.code, customer_id=None, order_total=50000, by="staff:s1")
    with pytest.raises(VoucherUsed) as caught_used:
        await service.quote(used.code, customer_id="c1", order_total=50000)
    assert caught_used.value.code == "voucher_used"

    void = await service.issue("c1", "free_drink", key="void", source="x")
    assert await service.void(void.code, reason="mistake", by="staff:s1")
    assert not await service.void(void.code, reason="mistake", by="staff:s1")
    with pytest.raises(VoucherVoid) as caught_void:
        await service.quote(void.code, customer_id="c1", order_total=50000)
    assert caught_void.value.code == "voucher_void"

    clock.advance(timedelta(days=30))
    with pytest.raises(VoucherExpired) as caught_expired:
        await service.quote(v.code, customer_id="c1", order_total=200000)
    assert caught_expired.value.code == "voucher_expired"


async def test_percent_discount_is_capped(service: VoucherService) -> None:
    v = await service.issue("c1", "tier_silver", key="k", source="tier")  # 10%, max 30,000
    assert (await service.quote(v.code, customer_id="c1", order_total=100000)).discount == 10000
    assert (await service.quote(v.code, customer_id="c1", order_total=900000)).discount == 30000
    fixed = await service.issue("c1", "free_drink", key="f", source="x")  # 45,000 off, no min spend
    assert (await service.quote(fixed.code, customer_id="c1", order_total=30000)).discount == 30000


# ---------------------------------------------------------------------------------------------- redeem
async def test_redeem_at_the_counter_and_at_checkout(service: VoucherService, clock: FrozenClock) -> None:
    counter = await service.issue("c1", "free_drink", key="a", source="x")
    result = await service.redeem(counter.code.lower(), customer_id=None, order_total=60000, by="staff:s1")
    assert result.discount == 45000
    assert result.voucher.status == "redeemed" and result.voucher.redeemed_by == "staff:s1"
    assert result.voucher.redeemed_at == clock.now() and result.voucher.order_id is None

    checkout = await service.issue("c1", "discount_50k", key="b", source="x")
    with pytest.raises(VoucherNotYours):
        await service.redeem(checkout.code, customer_id="c2", order_total=200000, order_id="o1", by="miniapp")
    done = await service.redeem(
        checkout.code, customer_id="c1", order_total=200000, order_id="o1", by="miniapp"
    )
    assert done.voucher.order_id == "o1" and done.voucher.order_total == 200000 and done.discount == 50000
    # The same checkout retried gets the same answer; another order cannot use it.
    again = await service.redeem(
        checkout.code, customer_id="c1", order_total=200000, order_id="o1", by="miniapp"
    )
    assert again == done
    with pytest.raises(VoucherUsed):
        await service.redeem(checkout.code, customer_id="c1", order_total=200000, order_id="o2", by="miniapp")
    other = await service.issue("c1", "discount_50k", key="c", source="x")
    with pytest.raises(MinSpendNotMet):
        await service.redeem(other.code, customer_id=None, order_total=1000, by="staff:s1")


async def test_redeem_twice_concurrently_succeeds_once(service: VoucherService) -> None:
    v = await service.issue("c1", "free_drink", key="k", source="x")
    results = await asyncio.gather(
        *(service.redeem(v.code, customer_id=None, order_total=50000, by=f"staff:{i}") for i in range(10)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, VoucherUsed) for r in results) == 9


async def test_release_then_redeem_again(service: VoucherService) -> None:
    v = await service.issue("c1", "free_drink", key="k", source="x")
    await service.redeem(v.code, customer_id="c1", order_total=50000, order_id="o1", by="miniapp")
    assert not await service.release(v.code, order_id="o2")  # another order cannot give it back
    assert (await service.get(v.code)).status == "redeemed"
    assert await service.release(v.code, order_id="o1")
    assert not await service.release(v.code, order_id="o1")  # idempotent
    released = await service.get(v.code)
    assert released.status == "issued" and released.order_id is None and released.redeemed_at is None
    again = await service.redeem(v.code, customer_id="c1", order_total=50000, order_id="o3", by="miniapp")
    assert again.voucher.order_id == "o3"
    with pytest.raises(VoucherNotFound):
        await service.release("ABCDEFGHJK", order_id="o1")


# ---------------------------------------------------------------------------------------------- expiry
async def test_expiry_with_the_clock(service: VoucherService, clock: FrozenClock) -> None:
    short = await service.issue("c1", "free_drink", key="short", source="x")  # 14 days
    long = await service.issue("c1", "discount_50k", key="long", source="x")  # 30 days
    clock.advance(timedelta(days=14) - timedelta(seconds=1))
    assert (await service.get(short.code)).status == "issued"
    clock.advance(timedelta(seconds=1))
    assert (await service.get(short.code)).status == "expired"  # before any sweep
    with pytest.raises(VoucherExpired):
        await service.redeem(short.code, customer_id=None, order_total=50000, by="staff:s1")
    assert [v.code for v in await service.list_for("c1", "expired")] == [short.code]
    assert [v.code for v in await service.list_for("c1", "issued")] == [long.code]
    assert await service.expire_due() == 1
    assert await service.expire_due() == 0
    assert [v.code for v in await service.list_for("c1", "expired")] == [short.code]
    clock.advance(timedelta(days=30))
    assert await service.expire_due() == 1
    assert {v.status for v in await service.list_for("c1")} == {"expired"}


async def test_a_redeemed_voucher_is_never_swept(service: VoucherService, clock: FrozenClock) -> None:
    v = await service.issue("c1", "free_drink", key="k", source="x")
    await service.redeem(v.code, customer_id=None, order_total=50000, by="staff:s1")
    clock.advance(timedelta(days=365))
    assert await service.expire_due() == 0
    assert (await service.get(v.code)).status == "redeemed"


# ---------------------------------------------------------------------------------------------- lists
async def test_list_for_is_newest_first_and_filters(service: VoucherService, clock: FrozenClock) -> None:
    codes = []
    for i in range(3):
        codes.append((await service.issue("c1", "free_drink", key=f"k{i}", source="x")).code)
        clock.advance(timedelta(minutes=1))
    await service.issue("c2", "free_drink", key="other", source="x")
    await service.redeem(codes[0], customer_id="c1", order_total=50000, by="miniapp")
    assert [v.code for v in await service.list_for("c1")] == codes[::-1]
    assert [v.code for v in await service.list_for("c1", "redeemed")] == [codes[0]]
    assert [v.code for v in await service.list_for("c1", "issued")] == codes[:0:-1]
    assert await service.list_for("c1", "void") == []
    assert await service.list_for("nobody") == []


# ---------------------------------------------------------------------------------------------- merges
async def test_reassign_customer_moves_vouchers_and_adds_counts(
    service: VoucherService, repo: MongoVoucherRepository
) -> None:
    await service.issue("old", "twice", key="o1", source="x")
    await service.issue("new", "twice", key="n1", source="x")
    await service.issue("old", "free_drink", key="o2", source="x")
    assert await repo.reassign_customer("old", "new") == 2
    assert await repo.reassign_customer("old", "new") == 0  # idempotent
    assert len(await service.list_for("new")) == 3 and await service.list_for("old") == []
    assert await repo.count("customer:twice:new") == 2
    with pytest.raises(LimitReached):  # the survivor used both allowances between the two accounts
        await service.issue("new", "twice", key="n2", source="x")


async def test_reassign_is_idempotent_after_a_crash_between_its_writes(
    service: VoucherService, repo: MongoVoucherRepository
) -> None:
    await service.issue("old", "twice", key="o1", source="x")
    # The survivor's counter was already credited but the merged one not yet deleted (a crash).
    await repo.counters.update_one(
        {"_id": "customer:twice:new"},
        {
            "$inc": {"count": 1},
            "$addToSet": {"keys": "o1", "merged_from": "old"},
            "$setOnInsert": {"template_id": "twice", "customer_id": "new"},
        },
        upsert=True,
    )
    await service.reassign_customer("old", "new")
    assert await repo.count("customer:twice:new") == 1
    assert await repo.count("customer:twice:old") == 0
