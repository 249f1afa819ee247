"""``loyalty reconcile`` and ``loyalty jobs`` against the test servers, and the periodic job runner."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from app.cli import main
from app.jobs import LOCK_KEY, JobRunner
from app.loyalty import build_loyalty
from loyalty.clock import FrozenClock, SystemClock
from loyalty.core import Loyalty
from loyalty.customers import Identity
from loyalty.ledger import LedgerEntry
from loyalty.program import load_program
from storage.clients import Document, MongoClient
from storage.indexes import ensure_indexes
from storage.ledger import MongoLedgerRepository
from tests.conftest import TEST_SECRET_KEY
from tests.loyalty.conftest import START


@pytest.fixture
def environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mongo_url: str, redis_url: str, db_name: str
) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MONGODB_URI", mongo_url)
    monkeypatch.setenv("MONGODB_DB", db_name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    return tmp_path


@pytest.fixture
async def database(mongo_client: MongoClient, db_name: str) -> AsyncDatabase[Document]:
    db = mongo_client[db_name]
    await ensure_indexes(db)
    return db


async def loyalty(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_reconcile_repairs_and_reports(
    environment: Path, database: AsyncDatabase[Document], capsys: pytest.CaptureFixture[str]
) -> None:
    core = build_loyalty(database, load_program(), SystemClock(), secret_key=TEST_SECRET_KEY)
    customer, _ = await core.customers.get_or_create(Identity(channel="zalo", user_id="r1"))
    await core.ledger.earn(customer.id, 30, key="order:1", reason="order")
    # a half-written entry, claimed a minute ago by a process that died
    await MongoLedgerRepository(database).claim(
        LedgerEntry(
            key="order:2",
            customer_id=customer.id,
            kind="earn",
            points=12,
            reason="order",
            created_at=SystemClock().now() - timedelta(minutes=1),
        )
    )

    assert await loyalty("reconcile") == 0
    assert "1 half-written entries repaired, 0 mismatched: consistent" in capsys.readouterr().out
    assert await core.ledger.balance(customer.id) == 42

    await database["customers"].update_one({"_id": customer.id}, {"$inc": {"wallet.balance": 5}})
    assert await loyalty("reconcile") == 1
    out = capsys.readouterr().out
    assert f"mismatch: customer {customer.id}: balance 47, ledger 42" in out and "MISMATCHED" in out
    assert await loyalty("reconcile", "--fix") == 0
    assert await core.ledger.balance(customer.id) == 42


async def test_jobs_print_what_they_did(
    environment: Path, database: AsyncDatabase[Document], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await loyalty("jobs") == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ledger"] == {"repaired": 0, "expired": 0, "compacted": 0}
    assert report["tiers_downgraded"] == 0


@pytest.fixture
async def core(database: AsyncDatabase[Document]) -> Loyalty:
    return build_loyalty(database, load_program(), FrozenClock(START), secret_key=TEST_SECRET_KEY)


async def test_one_process_runs_the_jobs_per_turn(core: Loyalty, redis: Redis) -> None:
    first = JobRunner(core, redis, interval=60)
    second = JobRunner(core, redis, interval=60)

    results = await asyncio.gather(first.run_once(), second.run_once())

    assert sorted(results) == [False, True]
    assert await redis.pttl(LOCK_KEY) > 0
    await redis.delete(LOCK_KEY)
    assert await second.run_once()


async def test_the_runner_stops_when_told(core: Loyalty, redis: Redis) -> None:
    runner = JobRunner(core, redis, interval=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    for _ in range(100):
        if runner.runs:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert runner.runs == 1
