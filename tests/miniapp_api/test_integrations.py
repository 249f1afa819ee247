"""The integrations API: a key made by `loyalty apikey create`, orders reported, completed and refunded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from app.cli import main
from loyalty.customers import Identity
from storage.clients import Document, MongoClient
from tests.conftest import TEST_SECRET_KEY
from tests.miniapp_api.conftest import Client, loyalty_of

INT = "/api/integrations/v1"


async def make_key(capsys: pytest.CaptureFixture[str], name: str = "KiotViet Q1") -> str:
    code = await asyncio.to_thread(main, ["apikey", "create", name, "--created-by", "owner"])
    assert code == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.fixture
def cli_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mongo_url: str, redis_url: str, db_name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("MONGODB_URI", mongo_url)
    monkeypatch.setenv("MONGODB_DB", db_name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)


@pytest.mark.usefixtures("cli_environment")
async def test_the_key_is_stored_hashed_and_listed_and_revoked(
    capsys: pytest.CaptureFixture[str], mongo_client: MongoClient, db_name: str
) -> None:
    key = await make_key(capsys)
    assert key.startswith("slk_") and len(key) == 4 + 12 + 1 + 64
    db: AsyncDatabase[Document] = mongo_client[db_name]
    stored = await db["api_keys"].find_one({})
    assert stored is not None and key.rsplit("_", 1)[1] not in str(stored)  # only the hash
    assert await asyncio.to_thread(main, ["apikey", "list"]) == 0
    listed = capsys.readouterr().out
    assert stored["_id"] in listed and "active" in listed and key not in listed
    assert await asyncio.to_thread(main, ["apikey", "revoke", stored["_id"]]) == 0
    assert await asyncio.to_thread(main, ["apikey", "revoke", "000000000000"]) == 2
    assert await asyncio.to_thread(main, ["apikey", "create", "{$ne: 1}"]) == 2


@pytest.mark.usefixtures("cli_environment")
async def test_a_pos_reports_completes_and_refunds_an_order(
    api: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    key = await make_key(capsys)
    auth = {"Authorization": f"Bearer {key}"}
    loyalty = loyalty_of(api)
    customer, _ = await loyalty.customers.get_or_create(
        Identity(channel="zalo", user_id="6618469916374226710")
    )
    await loyalty.verify_phone(customer.id, "0912345678", source="chat")

    report = {
        "external_id": "KIOT-77",
        "customer": {"phone": "0912 345 678"},
        "amount": 87_000,
        "store": "q1",
    }
    created = await api.post(f"{INT}/orders", json=report, headers=auth)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["order"]["status"] == "pending" and body["order"]["source"] == "integration"
    assert body["customer_id"] == customer.id
    again = await api.post(f"{INT}/orders", json=report, headers=auth)
    assert (await again.json())["order"]["id"] == body["order"]["id"]  # the same external id is one order

    order_id = body["order"]["id"]
    completed = await api.post(f"{INT}/orders/{order_id}/complete", headers=auth)
    assert completed.status == 200
    done = await completed.json()
    assert (
        done["order"]["status"] == "completed"
        and done["order"]["points"] == 8
        and done["points_balance"] == 8
    )
    twice = await api.post(f"{INT}/orders/{order_id}/complete", headers=auth)
    assert (await twice.json())["points_balance"] == 8  # earned once

    not_refund = await api.post(f"{INT}/orders/{order_id}/cancel", json={}, headers=auth)
    assert not_refund.status == 409 and (await not_refund.json())["error"]["code"] == "order_not_pending"
    refunded = await api.post(
        f"{INT}/orders/{order_id}/cancel", json={"refund": True, "reason": "returned"}, headers=auth
    )
    assert refunded.status == 200
    assert (await refunded.json())["order"]["status"] == "refunded"
    assert await loyalty.ledger.balance(customer.id) == 0

    at_once = {
        "external_id": "KIOT-78",
        "customer": {"customer_id": customer.id},
        "amount": 50_000,
        "complete": True,
    }
    quick = await (await api.post(f"{INT}/orders", json=at_once, headers=auth)).json()
    assert quick["order"]["status"] == "completed" and quick["points_balance"] == 5


@pytest.mark.usefixtures("cli_environment")
async def test_keys_and_bodies_are_checked(
    api: Client, capsys: pytest.CaptureFixture[str], mongo_client: MongoClient, db_name: str
) -> None:
    key = await make_key(capsys)
    wrong = key[:-1] + ("1" if key.endswith("0") else "0")  # the right id, a wrong secret
    report = {"external_id": "KIOT-1", "customer": {"phone": "0912345678"}, "amount": 10_000}
    for header in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {wrong}"}):
        refused = await api.post(f"{INT}/orders", json=report, headers=header)
        assert refused.status == 401 and (await refused.json())["error"]["code"] == "invalid_api_key"
    auth = {"Authorization": f"Bearer {key}"}
    unknown = await api.post(f"{INT}/orders", json=report, headers=auth)
    assert unknown.status == 404 and (await unknown.json())["error"]["code"] == "customer_not_found"
    for bad in (
        {**report, "customer": {"phone": {"$ne": ""}}},
        {**report, "customer": {}},
        {**report, "amount": -5},
        {**report, "external_id": {"$gt": ""}},
    ):
        response = await api.post(f"{INT}/orders", json=bad, headers=auth)
        assert response.status == 422, bad
    missing = await api.post(f"{INT}/orders/0123456789abcdef01234567/complete", headers=auth)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "order_not_found"

    key_id = key.split("_")[1]
    assert await asyncio.to_thread(main, ["apikey", "revoke", key_id]) == 0
    revoked = await api.post(f"{INT}/orders", json=report, headers=auth)
    assert revoked.status == 401
    assert await mongo_client[db_name]["orders"].count_documents({}) == 0
