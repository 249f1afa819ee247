"""The points ledger: earns per second through ``LedgerService.earn`` against the raw writes it needs.

An earn is two writes: the entry is inserted (its key claims it), then one conditional ``update_one``
applies it to the wallet (balance, totals, the new lot, the journal of keys). The raw side does the same
number of ``insert_one`` + ``update_one`` calls on the same server, on documents of the same shape but
(same fields, same indexes) without any condition, so the ratio shows what the service adds: the
validation, the models and the conditions that make an earn exactly-once.

Both sides run the same concurrency (``--customers`` customers earning at once, each one earn after
the other, as a worker handles one user at a time) on the embedded SecantusDB (``--sync-on-commit``,
as ``loyalty serve`` runs it), in rounds whose order alternates (ABBA); each round's ratio compares two runs
seconds apart, and the median of the rounds' ratios is the result (fsync speed swings by 2x). A last
check proves every balance equals the sum of its ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from app.embedded import EmbeddedMongo
from bench import ServerCpu, descendants, paired_round
from loyalty.clock import SystemClock
from loyalty.customers import CustomerService, Identity
from loyalty.ledger import LedgerService
from loyalty.program import load_program
from storage.clients import Document, create_mongo_client
from storage.customers import MongoCustomerRepository
from storage.indexes import INDEXES, ensure_indexes
from storage.ledger import MongoLedgerRepository


class _MovingClock:
    """The system clock, moved on between rounds so journal items come of age for compaction."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def _customers(db: AsyncDatabase[Document], count: int) -> list[str]:
    program = load_program()
    service = CustomerService(MongoCustomerRepository(db), program, SystemClock())
    ids = []
    for n in range(count):
        customer, _ = await service.get_or_create(Identity(channel="zalo", user_id=f"bench{n}"))
        ids.append(customer.id)
    return ids


async def _ours(ledger: LedgerService, customers: list[str], per_customer: int, round_no: int) -> float:
    async def one(cid: str) -> None:
        for n in range(per_customer):
            await ledger.earn(cid, 5, key=f"bench:{round_no}:{cid}:{n}", reason="order", ref={"n": str(n)})

    started = time.perf_counter()
    await asyncio.gather(*(one(cid) for cid in customers))
    return len(customers) * per_customer / (time.perf_counter() - started)


async def _raw(db: AsyncDatabase[Document], customers: list[str], per_customer: int, round_no: int) -> float:
    entries, wallets = db["raw_ledger"], db["raw_customers"]

    async def one(cid: str) -> None:
        for n in range(per_customer):
            now = datetime.now(UTC)
            # Each lot expires a year after its own earn, as the service's do: one expiry shared by a
            # round's lots would give the multikey index on `wallet.lots.x` one key where the service
            # writes twelve, and every update rewrites all of a document's index keys.
            expires = now + timedelta(days=365)
            key = f"raw:{round_no}:{cid}:{n}"
            await entries.insert_one(
                {
                    "_id": key,
                    "customer_id": cid,
                    "kind": "earn",
                    "points": 5,
                    "reason": "order",
                    "ref": {"n": str(n)},
                    "created_at": now,
                    "expires_at": expires,
                    "lifetime_delta": 5,
                    "qualifying_delta": 5,
                    "month": "2026-12",
                    "reverses": None,
                    "staff_id": None,
                    "state": "pending",
                    "void_code": None,
                    "applied": False,
                }
            )
            await wallets.update_one(
                {"_id": cid},
                {
                    "$inc": {"wallet.balance": 5, "wallet.lifetime": 5, "wallet.v": 1, "wallet.q.2026-12": 5},
                    "$push": {
                        "wallet.journal": {"k": key, "at": now, "n": 5},
                        "wallet.lots": {"k": key, "n": 5, "x": expires, "t": now},
                    },
                },
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(cid) for cid in customers))
    return len(customers) * per_customer / (time.perf_counter() - started)


async def _run(url: str, customers_count: int, per_customer: int, rounds: int, server: ServerCpu) -> None:
    client = create_mongo_client(url)
    db = client["bench_ledger"]
    await ensure_indexes(db)
    customers = await _customers(db, customers_count)
    # The raw side gets the same indexes: they are the data model's, not the service's overhead.
    for spec in INDEXES:
        if spec.collection in ("ledger", "customers"):
            raw = replace(spec, collection=f"raw_{spec.collection}")
            await db[raw.collection].create_indexes([raw.model()])
    # the raw side updates copies of the same customer documents (same size, same indexed fields)
    await db["raw_customers"].insert_many([doc async for doc in db["customers"].find({})])
    clock = _MovingClock()
    ledger = LedgerService(MongoLedgerRepository(db), load_program(), clock)
    pairs: list[tuple[float, float]] = []
    for round_no in range(rounds):
        ours, raw = await paired_round(
            round_no,
            partial(server.measure, "ours", partial(_ours, ledger, customers, per_customer, round_no)),
            partial(server.measure, "raw", partial(_raw, db, customers, per_customer, round_no)),
        )
        pairs.append((ours, raw))
        print(
            f"round {round_no}: ours {ours:6,.0f} earns/s   raw {raw:6,.0f} earns/s   ratio {ours / raw:.2f}"
        )
        # Between rounds, as the periodic job does in production: the ledger compacts journal items
        # older than 10 minutes (the clock is moved on 11), the raw side empties its journal alike.
        # Without it the journal's `k != key` check would grow with the rounds on our side only.
        # Lots stay on both sides.
        clock.offset += timedelta(minutes=11)
        for cid in customers:
            await ledger.compact(cid)
        await db["raw_customers"].update_many({}, {"$set": {"wallet.journal": []}})
    report = await ledger.reconcile()
    assert report.ok, f"ledger inconsistent after the benchmark: {report.mismatched[:3]}"
    total = customers_count * per_customer
    # Every write is fsynced (--sync-on-commit), so the disk's speed swings both sides by up to 2x from
    # one round to the next: the ratio of each round's two runs, taken seconds apart, is the figure, and
    # the median of those ratios the result.
    ratios = sorted(ours / raw for ours, raw in pairs)
    median = statistics.median(ratios)
    raw_median = statistics.median(r for _, r in pairs)
    ours_median = statistics.median(o for o, _ in pairs)
    print(f"raw insert_one + update_one  {raw_median:8,.0f} earns/s  (median of {rounds} rounds)")
    print(f"LedgerService.earn           {ours_median:8,.0f} earns/s  ({total} earns a round, reconciled)")
    earns = rounds * total
    print(
        f"server CPU per earn: raw {1e6 * server.seconds['raw'] / earns:,.0f} us, "
        f"ours {1e6 * server.seconds['ours'] / earns:,.0f} us"
    )
    print(f"ratio_vs_raw={median:.2f}")
    await client.drop_database("bench_ledger")
    await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=50, help="customers earning at once")
    parser.add_argument("--earns", type=int, default=12, help="earns per customer per round")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv or [])
    with tempfile.TemporaryDirectory() as tmp, EmbeddedMongo(Path(tmp)) as mongo:
        assert mongo.pid is not None
        server = ServerCpu(descendants(mongo.pid)[0])
        asyncio.run(_run(mongo.url, args.customers, args.earns, args.rounds, server))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
