"""Property tests: random sequences of ledger operations, with duplicates and concurrent batches, run
against the real database; after each sequence the ledger's invariants must hold."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.customers import CustomerService, Identity
from loyalty.errors import IdempotencyConflict, InsufficientPoints
from loyalty.ledger import LedgerService
from loyalty.program import Program
from storage.clients import Document
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository
from tests.loyalty.conftest import START

_users = itertools.count()


@dataclass(frozen=True)
class Op:
    kind: str  # earn | spend | reverse | expire | tick
    points: int
    key: int  # which key (small range: duplicates are frequent)


ops = st.builds(
    Op,
    kind=st.sampled_from(["earn", "earn", "spend", "spend", "reverse", "expire", "tick"]),
    points=st.integers(min_value=1, max_value=60),
    key=st.integers(min_value=0, max_value=12),
)
# a step is one operation or a concurrent batch of them
steps = st.lists(st.lists(ops, min_size=1, max_size=4), min_size=1, max_size=10)


async def run(ledger: LedgerService, clock: FrozenClock, cid: str, op: Op) -> None:
    try:
        if op.kind == "earn":
            expires = clock.now() + timedelta(days=5 + op.points)
            await ledger.earn(cid, op.points, key=f"{cid}:e{op.key}", reason="order", expires_at=expires)
        elif op.kind == "spend":
            await ledger.spend(cid, op.points, key=f"{cid}:s{op.key}", reason="reward")
        elif op.kind == "reverse":
            original = f"{cid}:{'e' if op.points % 2 else 's'}{op.key}"
            await ledger.reverse(original, key=f"{cid}:r{op.key}", reason="refund")
        elif op.kind == "expire":
            await ledger.expire_due()
        else:
            clock.advance(timedelta(days=op.points % 20))
    except (InsufficientPoints, IdempotencyConflict):
        pass  # fair refusals: not enough points, or a key reused for another amount


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=steps)
async def test_random_operations_keep_the_ledger_consistent(
    db: AsyncDatabase[Document], program: Program, sequence: list[list[Op]]
) -> None:
    clock = FrozenClock(START)
    ledger = LedgerService(MongoLedgerRepository(db), program, clock)
    customers = CustomerService(MongoCustomerRepository(db), program, clock)
    cid = (await customers.get_or_create(Identity(channel="zalo", user_id=f"p{next(_users)}")))[0].id

    for batch in sequence:
        # each batch twice over, concurrently: duplicates and races at once
        await asyncio.gather(*(run(ledger, clock, cid, op) for op in batch + batch))

    wallet = await ledger.wallet(cid)
    entries = [e for e in await ledger.history(cid, limit=100) if e.state != "void"]
    assert wallet.balance >= 0
    assert sum(lot.remaining for lot in wallet.lots) == wallet.balance
    assert all(lot.remaining > 0 for lot in wallet.lots)
    assert sum(e.points for e in entries) == wallet.balance
    assert len({e.key for e in entries}) == len(entries)
    assert sum(wallet.qualifying_by_month.values()) >= 0
