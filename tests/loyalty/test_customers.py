"""Customers, identities, phones and merges against the real database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.customers import CustomerService, Identity, MergeRecord, ProfileUpdate
from loyalty.errors import CustomerInactive, CustomerNotFound, InvalidPhone
from loyalty.ledger import LedgerService
from loyalty.program import Program
from storage.clients import Document
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository

ZALO = Identity(channel="zalo", user_id="1234567890123456789")
MESSENGER = Identity(channel="messenger", user_id="7654321098765432")
MINIAPP = Identity(channel="miniapp", user_id="5555555555555555555")


@pytest.fixture
def repo(db: AsyncDatabase[Document]) -> MongoCustomerRepository:
    return MongoCustomerRepository(db)


@pytest.fixture
def ledger(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> LedgerService:
    return LedgerService(MongoLedgerRepository(db), program, clock)


@pytest.fixture
def customers(
    repo: MongoCustomerRepository, db: AsyncDatabase[Document], program: Program, clock: FrozenClock
) -> CustomerService:
    return CustomerService(repo, program, clock, ledger_owner=MongoLedgerRepository(db))


async def test_a_new_identity_creates_a_customer_once(customers: CustomerService) -> None:
    created, is_new = await customers.get_or_create(ZALO, name="Lan")
    again, is_new_again = await customers.get_or_create(ZALO)

    assert is_new and not is_new_again and again.id == created.id
    assert created.name == "Lan" and created.tier == "member" and created.identities == (ZALO,)
    assert len(created.referral_code) == 6 and not set(created.referral_code) & set("0O1IL")


async def test_concurrent_first_messages_create_one_customer(
    customers: CustomerService, db: AsyncDatabase[Document]
) -> None:
    results = await asyncio.gather(*(customers.get_or_create(ZALO) for _ in range(20)))

    assert len({customer.id for customer, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await db["customers"].count_documents({}) == 1


async def test_an_identity_whose_customer_was_never_written_is_completed(
    customers: CustomerService, repo: MongoCustomerRepository, clock: FrozenClock
) -> None:
    await repo.claim_identity(ZALO.key, "c0ffee0000000000000000aa", clock.now())  # crash after this

    customer, created = await customers.get_or_create(ZALO)

    assert created and customer.id == "c0ffee0000000000000000aa"


@pytest.mark.parametrize("raw", ["0912 345 678", "84912345678", "+84 912.345.678", "(+84) 912-345-678"])
async def test_phones_are_stored_in_e164(customers: CustomerService, raw: str) -> None:
    customer, _ = await customers.get_or_create(ZALO)
    attached = await customers.attach_phone(customer.id, raw, source="zalo")

    assert attached.customer.phone == "+84912345678" and attached.merged_from == ()
    assert attached.customer.masked_phone == "+84912***678"
    assert (await customers.by_phone("0912345678")) is not None


@pytest.mark.parametrize("raw", ["024 3825 1234", "12345", "", "not a phone"])
async def test_invalid_and_landline_numbers_are_refused(customers: CustomerService, raw: str) -> None:
    customer, _ = await customers.get_or_create(ZALO)
    with pytest.raises(InvalidPhone):
        await customers.attach_phone(customer.id, raw, source="zalo")
    assert (await customers.get(customer.id)).phone is None


async def test_sharing_a_known_phone_merges_into_the_older_customer(
    customers: CustomerService, ledger: LedgerService, clock: FrozenClock, db: AsyncDatabase[Document]
) -> None:
    older, _ = await customers.get_or_create(MESSENGER, name="Lan")
    await customers.attach_phone(older.id, "0912345678", source="messenger")
    await ledger.earn(older.id, 120, key="order:m1", reason="order")
    clock.advance(timedelta(days=3))
    newer, _ = await customers.get_or_create(ZALO)
    await ledger.earn(newer.id, 30, key="checkin:z1", reason="checkin")

    result = await customers.attach_phone(newer.id, "+84 912 345 678", source="zalo")

    assert result.customer.id == older.id and result.merged_from == (newer.id,)
    survivor = await customers.get(newer.id)  # the old id resolves to the survivor
    assert survivor.id == older.id and survivor.balance == 150 and survivor.lifetime_earned == 150
    assert {i.key for i in survivor.identities} == {MESSENGER.key, ZALO.key}
    assert (await customers.by_identity(ZALO)) is not None
    assert (await customers.by_identity(ZALO)).id == older.id  # type: ignore[union-attr]
    assert {e.key for e in await ledger.history(older.id)} == {"order:m1", "checkin:z1"}
    assert (await ledger.wallet(newer.id)).balance == 0
    # a retried earn for the merged customer applies nowhere twice
    await ledger.earn(older.id, 30, key="checkin:z1", reason="checkin")
    assert await ledger.balance(older.id) == 150
    assert (await ledger.reconcile()).ok
    record = await db["merges"].find_one({"from_id": newer.id})
    assert record is not None and record["into_id"] == older.id and record["finished_at"] is not None
    assert record["moved"]["wallet"] == 30 and record["moved"]["ledger"] == 1


async def test_the_phone_moves_to_the_older_customer_when_the_newer_one_had_it(
    customers: CustomerService, clock: FrozenClock
) -> None:
    older, _ = await customers.get_or_create(ZALO)
    clock.advance(timedelta(hours=1))
    newer, _ = await customers.get_or_create(MINIAPP)
    await customers.attach_phone(newer.id, "0987654321", source="miniapp")

    result = await customers.attach_phone(older.id, "0987654321", source="zalo")

    assert result.customer.id == older.id and result.customer.phone == "+84987654321"
    assert (await customers.by_phone("0987654321")).id == older.id  # type: ignore[union-attr]


async def test_an_interrupted_merge_is_finished_by_resume(
    customers: CustomerService, repo: MongoCustomerRepository, ledger: LedgerService, clock: FrozenClock
) -> None:
    older, _ = await customers.get_or_create(MESSENGER)
    await ledger.earn(older.id, 10, key="a", reason="order")
    clock.advance(timedelta(minutes=1))
    newer, _ = await customers.get_or_create(ZALO)
    await ledger.earn(newer.id, 25, key="b", reason="order")
    # a merge that died after moving the wallet
    record = MergeRecord(
        id=f"{newer.id}>{older.id}", from_id=newer.id, into_id=older.id, reason="test", started_at=clock.now()
    )
    await repo.start_merge(record)
    await repo.freeze(newer.id, older.id)
    await repo.merge_step_done(record.id, "freeze", 1)
    await repo.move_wallet(newer.id, older.id)  # crash before recording the step

    assert await customers.resume_merges() == 1

    survivor = await customers.get(newer.id)
    assert survivor.id == older.id and survivor.balance == 35
    assert (await ledger.reconcile()).ok
    assert await customers.resume_merges() == 0


async def test_a_merged_customer_cannot_earn_under_the_old_id(
    customers: CustomerService, ledger: LedgerService, clock: FrozenClock
) -> None:
    older, _ = await customers.get_or_create(MESSENGER)
    clock.advance(timedelta(minutes=1))
    newer, _ = await customers.get_or_create(ZALO)
    await customers.merge(newer.id, older.id, reason="test")

    with pytest.raises(CustomerInactive):
        await ledger.earn(newer.id, 5, key="late", reason="order")
    # the key was given back: the caller retries on the survivor
    await ledger.earn(older.id, 5, key="late", reason="order")
    assert await ledger.balance(older.id) == 5


async def test_profile_updates_and_activity(customers: CustomerService, clock: FrozenClock) -> None:
    customer, _ = await customers.get_or_create(ZALO)
    updated = await customers.update_profile(
        customer.id,
        ProfileUpdate(name=" Minh ", birthday="1995-04-30", gender="male"),  # type: ignore[arg-type]
    )
    await customers.set_following(ZALO, following=False)
    clock.advance(timedelta(minutes=5))
    await customers.touch(customer.id, "zalo")
    await customers.add_tags(customer.id, ["vip", "vip", " "])

    fresh = await customers.get(customer.id)
    assert updated.name == "Minh" and str(fresh.birthday) == "1995-04-30" and fresh.gender == "male"
    assert fresh.following == {"zalo": False} and fresh.last_interaction["zalo"] == clock.now()
    assert fresh.tags == ("vip",)


async def test_unknown_and_malformed_ids_are_not_found(customers: CustomerService) -> None:
    with pytest.raises(CustomerNotFound):
        await customers.get("nope")
    with pytest.raises(CustomerNotFound):
        await customers.get({"$ne": ""})  # type: ignore[arg-type]
    assert await customers.by_referral_code({"$gt": ""}) is None  # type: ignore[arg-type]
    assert await customers.by_phone({"$ne": None}) is None  # type: ignore[arg-type]


async def test_referral_codes_are_found_loosely(customers: CustomerService) -> None:
    customer, _ = await customers.get_or_create(ZALO)
    code = customer.referral_code
    found = await customers.by_referral_code(f" {code[:3].lower()}-{code[3:]} ")
    assert found is not None and found.id == customer.id
