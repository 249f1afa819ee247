"""The loyalty core as the app builds it: flows that span services, the jobs, reconcile."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from app.loyalty import build_loyalty
from loyalty.clock import FrozenClock
from loyalty.core import Loyalty
from loyalty.customers import Identity
from loyalty.orders import OrderItemIn
from loyalty.program import load_program
from storage.clients import Document, MongoClient
from storage.indexes import ensure_indexes
from tests.conftest import TEST_SECRET_KEY
from tests.loyalty.conftest import START


@pytest.fixture
async def core(mongo_client: MongoClient, db_name: str) -> Loyalty:
    db: AsyncDatabase[Document] = mongo_client[db_name]
    await ensure_indexes(db)
    return build_loyalty(db, load_program(), FrozenClock(START), secret_key=TEST_SECRET_KEY)


def clock_of(core: Loyalty) -> FrozenClock:
    assert isinstance(core.clock, FrozenClock)
    return core.clock


async def test_a_messenger_customer_who_shares_the_phone_on_zalo_is_one_customer(core: Loyalty) -> None:
    messenger, _ = await core.customers.get_or_create(Identity(channel="messenger", user_id="psid-1"))
    await core.verify_phone(messenger.id, "0912345678", source="messenger")
    order = await core.orders.create(
        messenger.id, source="miniapp", items=[OrderItemIn(product_id="tra-dao", qty=4)]
    )
    await core.orders.complete(order.id, by="staff")
    voucher = await core.welcome_voucher(messenger.id)
    clock_of(core).advance(timedelta(days=2))
    zalo, _ = await core.customers.get_or_create(Identity(channel="zalo", user_id="z-1"))
    await core.ledger.earn(zalo.id, 10, key="checkin:zalo", reason="checkin")

    verified = await core.verify_phone(zalo.id, "+84 912 345 678", source="zalo")

    assert verified.customer.id == messenger.id and verified.merged_from == (zalo.id,)
    assert verified.customer.balance == 18 + 10
    assert voucher is not None
    assert [v.code for v in await core.vouchers.list_for(messenger.id)] == [voucher.code]
    again = await core.welcome_voucher(zalo.id)  # the merged id: the survivor's voucher, not a new one
    assert again is not None and again.code == voucher.code
    assert len(await core.vouchers.list_for(messenger.id)) == 1
    assert (await core.reconcile()).ok


async def test_the_welcome_voucher_is_issued_once_under_concurrency(core: Loyalty) -> None:
    customer, _ = await core.customers.get_or_create(Identity(channel="zalo", user_id="z-2"))
    assert await core.welcome_voucher(customer.id) is None  # no phone yet
    await core.verify_phone(customer.id, "0987654321", source="zalo")

    results = await asyncio.gather(*(core.welcome_voucher(customer.id) for _ in range(8)))

    assert len({v.code for v in results if v is not None}) == 1
    assert len(await core.vouchers.list_for(customer.id)) == 1


async def test_the_jobs_expire_points_and_review_tiers(core: Loyalty) -> None:
    customer, _ = await core.customers.get_or_create(Identity(channel="zalo", user_id="z-3"))
    await core.ledger.earn(customer.id, 600, key="order:big", reason="order")
    await core.tiers.after_earn(customer.id)
    assert (await core.customers.get(customer.id)).tier == "silver"

    clock_of(core).advance(timedelta(days=400))
    report = await core.run_jobs()

    assert report["ledger"]["expired"] == 1 and report["tiers_downgraded"] == 1
    fresh = await core.customers.get(customer.id)
    assert fresh.balance == 0 and fresh.tier == "member"
    again = await core.run_jobs()
    assert again["ledger"]["expired"] == 0 and again["tiers_downgraded"] == 0
