"""ReferralService through the real repositories: apply, refusals, both triggers, caps, merges and re-use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.customers import CustomerService, Identity
from loyalty.errors import (
    ReferralAlreadySet,
    ReferralCodeUnknown,
    ReferralDisabled,
    ReferralLoop,
    ReferralSelf,
    ReferralTooLate,
)
from loyalty.ledger import LedgerService
from loyalty.orders import OrderService
from loyalty.privacy import PersonalDataHolder
from loyalty.program import Program
from loyalty.referral import ReferralService, ReferralStats
from loyalty.tiers import TierService
from loyalty.vouchers import VoucherService
from storage.clients import Document
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository
from storage.orders import MongoOrderRepository
from storage.referrals import MongoReferralRepository
from storage.tiers import MongoTierRepository
from storage.vouchers import MongoVoucherRepository


def with_referral(program: Program, **rules: Any) -> Program:
    data = program.model_dump(mode="json")
    data["referral"] = {**data["referral"], **rules}
    return Program.model_validate(data)


@dataclass
class World:
    db: AsyncDatabase[Document]
    customers: CustomerService
    ledger: LedgerService
    vouchers: VoucherService
    referral: ReferralService
    orders: OrderService
    clock: FrozenClock

    async def customer(self, user: str) -> str:
        """A new customer, one second younger than the previous one (merges keep the older)."""
        self.clock.advance(timedelta(seconds=1))
        customer, _ = await self.customers.get_or_create(Identity(channel="zalo", user_id=user))
        return customer.id

    async def code(self, customer_id: str) -> str:
        return (await self.customers.get(customer_id)).referral_code

    async def verify_phone(self, customer_id: str, phone: str) -> str:
        """Attach a phone and tell referral, as the chat's phone step does; returns the survivor's id."""
        attached = await self.customers.attach_phone(customer_id, phone, source="zalo")
        await self.referral.on_phone_verified(attached.customer.id)
        return attached.customer.id

    async def balance(self, customer_id: str) -> int:
        return await self.ledger.balance(customer_id)


def build_world(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> World:
    ledger_repo = MongoLedgerRepository(db)
    ledger = LedgerService(ledger_repo, program, clock)
    referral_repo = MongoReferralRepository(db)
    vouchers_repo = MongoVoucherRepository(db)
    customers = CustomerService(
        MongoCustomerRepository(db),
        program,
        clock,
        ledger_owner=ledger_repo,
        owned=[vouchers_repo, referral_repo],
    )
    vouchers = VoucherService(vouchers_repo, program, clock)
    referral = ReferralService(referral_repo, customers, ledger, vouchers, program, clock, phone_secret="k")
    tiers = TierService(
        repo=MongoTierRepository(db),
        customers=customers,
        ledger=ledger,
        program=program,
        clock=clock,
        vouchers=vouchers,
    )
    orders = OrderService(
        MongoOrderRepository(db), ledger, tiers, vouchers, customers, program, clock, referral=referral
    )
    return World(db, customers, ledger, vouchers, referral, orders, clock)


@pytest.fixture
def world(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> World:
    return build_world(db, program, clock)


# ------------------------------------------------------------------------------------------ happy paths
async def test_phone_verification_rewards_both_sides_once(world: World) -> None:
    alice, bob = await world.customer("alice"), await world.customer("bob")
    code = await world.code(alice)
    referral = await world.referral.apply_code(bob, f" {code.lower()[:3]}-{code.lower()[3:]} ")

    assert (referral.referrer_id, referral.referee_id, referral.status) == (alice, bob, "pending")
    assert referral.code == code
    assert await world.balance(alice) == 0 and await world.balance(bob) == 0

    await world.customers.attach_phone(bob, "0912 345 678", source="zalo")
    award = await world.referral.on_phone_verified(bob)

    assert award is not None and award.new
    paid = award.referral
    assert (paid.status, paid.referrer_points, paid.referee_points) == ("rewarded", 50, 20)
    assert paid.referrer_voucher is None and paid.referee_voucher is not None  # demo: referral_30k
    assert not paid.referrer_capped and paid.phone_hash == world.referral.phone_hash("+84912345678")
    assert await world.balance(alice) == 50 and await world.balance(bob) == 20
    gift = await world.vouchers.get(paid.referee_voucher)
    assert gift.customer_id == bob and gift.template_id == "referral_30k"
    bob_entry = await world.ledger.entry(f"referral:{paid.id}:referee")
    assert bob_entry is not None and bob_entry.qualifying_delta == 0  # bonus points do not lift tiers

    replay = await world.referral.on_phone_verified(bob)
    assert replay is not None and not replay.new and replay.referral == paid
    assert await world.balance(alice) == 50 and await world.balance(bob) == 20
    assert await world.referral.stats(alice) == ReferralStats(invited=1, rewarded=1)


async def test_concurrent_triggers_pay_once(world: World) -> None:
    alice, bob = await world.customer("alice"), await world.customer("bob")
    await world.referral.apply_code(bob, await world.code(alice))
    await world.customers.attach_phone(bob, "0912345678", source="zalo")

    awards = await asyncio.gather(*(world.referral.on_phone_verified(bob) for _ in range(5)))

    assert all(a is not None for a in awards)
    assert sum(1 for a in awards if a is not None and a.new) == 1
    assert await world.balance(alice) == 50 and await world.balance(bob) == 20
    assert len(await world.vouchers.list_for(bob)) == 1


async def test_a_customer_with_a_phone_already_is_rewarded_when_applying(world: World) -> None:
    alice, bob = await world.customer("alice"), await world.customer("bob")
    await world.customers.attach_phone(bob, "0987654321", source="miniapp")

    referral = await world.referral.apply_code(bob, await world.code(alice))

    assert referral.status == "rewarded" and referral.referee_points == 20
    assert await world.balance(alice) == 50


async def test_first_order_trigger(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> None:
    world = build_world(
        db, with_referral(program, trigger="first_order", referrer_voucher="free_drink"), clock
    )
    alice, bob = await world.customer("alice"), await world.customer("bob")
    await world.referral.apply_code(bob, await world.code(alice))
    await world.verify_phone(bob, "0912345678")  # not the trigger here
    assert await world.balance(alice) == 0

    order = await world.orders.create(bob, source="pos", amount=100000)
    await world.orders.complete(order.id, by="staff")

    referral = await world.referral.referral_of(bob)
    assert referral is not None and referral.status == "rewarded" and referral.referrer_voucher is not None
    assert await world.balance(alice) == 50
    assert await world.balance(bob) == 10 + 20  # the order's points and the referral's
    assert [v.template_id for v in await world.vouchers.list_for(alice)] == ["free_drink"]
    second = await world.orders.create(bob, source="pos", amount=100000)
    await world.orders.complete(second.id, by="staff")
    assert await world.balance(alice) == 50


async def test_no_referral_no_reward(world: World) -> None:
    bob = await world.customer("bob")
    await world.customers.attach_phone(bob, "0912345678", source="zalo")
    assert await world.referral.on_phone_verified(bob) is None
    assert await world.referral.on_first_order(bob) is None


# ------------------------------------------------------------------------------------------ refusals
async def test_unknown_and_own_codes_are_refused(world: World) -> None:
    alice = await world.customer("alice")
    with pytest.raises(ReferralCodeUnknown):
        await world.referral.apply_code(alice, "ZZZZZZ")
    with pytest.raises(ReferralCodeUnknown):
        await world.referral.apply_code(alice, {"$ne": ""})  # type: ignore[arg-type]
    with pytest.raises(ReferralSelf):
        await world.referral.apply_code(alice, await world.code(alice))
    assert await world.db["referrals"].count_documents({}) == 0


async def test_loops_are_refused(world: World) -> None:
    a, b, c = [await world.customer(name) for name in ("a", "b", "c")]
    await world.referral.apply_code(b, await world.code(a))  # a invited b
    with pytest.raises(ReferralLoop):
        await world.referral.apply_code(a, await world.code(b))  # b inviting a back
    await world.referral.apply_code(c, await world.code(b))  # b invited c
    with pytest.raises(ReferralLoop):
        await world.referral.apply_code(a, await world.code(c))  # a → b → c → a
    assert await world.referral.referral_of(a) is None


async def test_crossed_codes_at_the_same_moment_never_make_a_loop(world: World) -> None:
    a, b = await world.customer("a"), await world.customer("b")
    code_a, code_b = await world.code(a), await world.code(b)
    results = await asyncio.gather(
        world.referral.apply_code(a, code_b), world.referral.apply_code(b, code_a), return_exceptions=True
    )

    assert all(not isinstance(r, BaseException) or isinstance(r, ReferralLoop) for r in results)
    active = await world.db["referrals"].count_documents({"active": True})
    assert active <= 1


async def test_a_second_referrer_is_refused_and_the_same_code_is_a_replay(world: World) -> None:
    alice, carol, bob = (
        await world.customer("alice"),
        await world.customer("carol"),
        await world.customer("bob"),
    )
    first = await world.referral.apply_code(bob, await world.code(alice))

    assert (await world.referral.apply_code(bob, await world.code(alice))).id == first.id
    with pytest.raises(ReferralAlreadySet):
        await world.referral.apply_code(bob, await world.code(carol))
    code = await world.code(alice)
    concurrent = await asyncio.gather(
        *(world.referral.apply_code(carol, code) for _ in range(5)), return_exceptions=True
    )
    assert len({r.id for r in concurrent if not isinstance(r, BaseException)}) == 1
    assert await world.db["referrals"].count_documents({"referee_id": carol}) == 1


async def test_a_code_after_the_first_order_is_too_late(world: World) -> None:
    alice, bob = await world.customer("alice"), await world.customer("bob")
    order = await world.orders.create(bob, source="pos", amount=50000)
    await world.orders.complete(order.id, by="staff")
    with pytest.raises(ReferralTooLate):
        await world.referral.apply_code(bob, await world.code(alice))


async def test_disabled_referral(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> None:
    world = build_world(db, with_referral(program, enabled=False), clock)
    alice, bob = await world.customer("alice"), await world.customer("bob")
    with pytest.raises(ReferralDisabled):
        await world.referral.apply_code(bob, await world.code(alice))


# ------------------------------------------------------------------------------------------ the cap
async def test_max_rewarded_per_referrer_holds_under_concurrency(
    db: AsyncDatabase[Document], program: Program, clock: FrozenClock
) -> None:
    world = build_world(db, with_referral(program, max_rewarded_per_referrer=3), clock)
    alice = await world.customer("alice")
    code = await world.code(alice)
    friends = [await world.customer(f"friend{i}") for i in range(10)]
    for index, friend in enumerate(friends):
        await world.referral.apply_code(friend, code)
        await world.customers.attach_phone(friend, f"09123456{index:02d}", source="zalo")

    awards = await asyncio.gather(*(world.referral.on_phone_verified(f) for f in friends))

    assert all(a is not None and a.new for a in awards)
    paid_referrer = [a for a in awards if a is not None and not a.referral.referrer_capped]
    assert len(paid_referrer) == 3
    assert all(
        a.referral.referrer_points == 0 for a in awards if a is not None and a.referral.referrer_capped
    )
    assert await world.balance(alice) == 3 * 50
    assert [await world.balance(f) for f in friends] == [20] * 10  # friends are rewarded past the cap
    stats = await world.referral.stats(alice)
    assert (stats.invited, stats.rewarded) == (10, 3)
    counter = await db["referral_counters"].find_one({"_id": alice})
    assert counter is not None and counter["count"] == 3


# ------------------------------------------------------------------------------------------ merges and re-use
async def test_a_merged_account_is_not_rewarded_twice(world: World) -> None:
    alice, bob = await world.customer("alice"), await world.customer("bob")
    await world.referral.apply_code(bob, await world.code(alice))
    await world.verify_phone(bob, "0912345678")
    assert await world.balance(alice) == 50

    # Bob comes back through Messenger as a "new" customer, enters Alice's code again, and shares the
    # same phone: the new account is merged into Bob and its referral is never paid.
    world.clock.advance(timedelta(days=3))
    again, _ = await world.customers.get_or_create(Identity(channel="messenger", user_id="bob-psid"))
    second = await world.referral.apply_code(again.id, await world.code(alice))
    assert second.status == "pending"
    survivor = await world.verify_phone(again.id, "+84 912 345 678")

    assert survivor == bob
    assert await world.balance(alice) == 50
    assert await world.balance(bob) == 20
    voided = await world.db["referrals"].find_one({"_id": second.id})
    assert voided is not None and voided["status"] == "void" and "active" not in voided
    assert (await world.referral.stats(alice)).rewarded == 1


async def test_two_referred_customers_merged_pay_one_referral(world: World) -> None:
    alice, carol = await world.customer("alice"), await world.customer("carol")
    bob_zalo, bob_messenger = await world.customer("bob"), await world.customer("bob-2")
    await world.referral.apply_code(bob_zalo, await world.code(alice))
    await world.referral.apply_code(bob_messenger, await world.code(carol))

    await world.verify_phone(bob_messenger, "0912345678")  # carol's referral pays
    survivor = await world.verify_phone(bob_zalo, "0912345678")  # same person: merged into bob_zalo

    assert survivor == bob_zalo
    assert await world.balance(carol) == 50 and await world.balance(alice) == 0
    assert await world.balance(bob_zalo) == 20
    kept = await world.referral.referral_of(bob_zalo)
    assert kept is not None and kept.referrer_id == carol and kept.status == "rewarded"
    assert await world.db["referrals"].count_documents({"active": True}) == 1
    # a resumed merge moves nothing twice
    assert await world.referral.reassign_customer(bob_messenger, bob_zalo) == 0


async def test_an_erased_customer_coming_back_with_the_same_phone_cannot_be_referred_again(
    world: World,
) -> None:
    alice, bob = await world.customer("alice"), await world.customer("bob")
    await world.referral.apply_code(bob, await world.code(alice))
    await world.verify_phone(bob, "0912345678")
    # Erasure anonymises the customer (phone gone, status erased); the referral keeps its phone hash.
    await world.db["customers"].update_one(
        {"_id": bob}, {"$set": {"status": "erased"}, "$unset": {"phone": ""}}
    )

    newbob = await world.customer("bob-again")
    pending = await world.referral.apply_code(newbob, await world.code(alice))
    assert await world.verify_phone(newbob, "0912345678") == newbob
    assert await world.referral.referral_of(newbob) is None
    refused = await world.db["referrals"].find_one({"_id": pending.id})
    assert refused is not None and refused["void_reason"] == "phone_already_referred"
    assert await world.balance(alice) == 50 and await world.balance(newbob) == 0

    other = await world.customer("bob-third")
    await world.customers.attach_phone(other, "0912345678", source="zalo")
    with pytest.raises(ReferralAlreadySet):
        await world.referral.apply_code(other, await world.code(alice))


async def test_a_referee_merged_into_the_referrer_is_not_paid(world: World) -> None:
    alice, alice_again = await world.customer("alice"), await world.customer("alice-2")
    await world.referral.apply_code(alice_again, await world.code(alice))
    await world.customers.attach_phone(alice, "0912345678", source="zalo")
    survivor = await world.verify_phone(alice_again, "0912345678")

    assert survivor == alice
    assert await world.balance(alice) == 0
    assert await world.referral.referral_of(alice) is None


async def test_a_referrer_merge_keeps_their_invitations_and_cap(
    db: AsyncDatabase[Document], program: Program, clock: FrozenClock
) -> None:
    world = build_world(db, with_referral(program, max_rewarded_per_referrer=2), clock)
    alice, alice_2 = await world.customer("alice"), await world.customer("alice-2")
    friends = [await world.customer(f"f{i}") for i in range(3)]
    await world.referral.apply_code(friends[0], await world.code(alice))
    await world.referral.apply_code(friends[1], await world.code(alice_2))
    await world.verify_phone(friends[0], "0912345600")
    await world.verify_phone(friends[1], "0912345601")
    await world.customers.attach_phone(alice, "0987654321", source="zalo")
    await world.customers.attach_phone(alice_2, "0987654321", source="zalo")  # merged into alice

    assert (await world.referral.stats(alice)).rewarded == 2
    await world.referral.apply_code(friends[2], await world.code(alice))
    award = await world.referral.on_phone_verified(await world.verify_phone(friends[2], "0912345602"))

    assert award is not None and not award.new  # paid by the verify_phone call just before
    assert award.referral.referrer_capped
    assert await world.balance(alice) == 100  # both slots, now merged, already taken


async def test_referrals_are_exported_without_the_phone_hash(world: World) -> None:
    holder: PersonalDataHolder = MongoReferralRepository(world.db)
    alice, bob, carol = (
        await world.customer("alice"),
        await world.customer("bob"),
        await world.customer("carol"),
    )
    await world.referral.apply_code(bob, await world.code(alice))
    await world.referral.apply_code(carol, await world.code(bob))
    await world.verify_phone(bob, "0912345678")

    exported = await holder.export_customer(bob)
    assert isinstance(exported, list)
    assert sorted((r["referrer_id"], r["referee_id"]) for r in exported) == sorted(
        [(alice, bob), (bob, carol)]
    )
    assert all("phone_hash" not in r for r in exported)
    assert await holder.erase_customer(bob) == 0
    assert (await world.db["referrals"].find_one({"referee_id": bob}) or {}).get("phone_hash")
