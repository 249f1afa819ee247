"""The public fairness page and ``loyalty games`` against the test servers."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient
from pymongo.asynchronous.database import AsyncDatabase

from app import keys
from app.cli import main
from app.factory import create_app
from app.loyalty import build_loyalty
from app.settings import Settings
from loyalty.clock import FrozenClock
from loyalty.customers import Identity
from loyalty.program import load_program
from storage.clients import Document
from tests.conftest import TEST_SECRET_KEY
from tests.loyalty.conftest import START
from tests.loyalty.test_games import campaign

Client = TestClient[web.Request, web.Application]


def short_campaign(**overrides: Any) -> dict[str, Any]:
    """A wheel that ran for one hour on the test day (over in real time too)."""
    data = campaign(
        starts_at=START - timedelta(hours=1),
        ends_at=START + timedelta(hours=1),
        cost={"free_turns_per_day": 20},
    ).model_dump()
    data.update(overrides)
    return data


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, clock: FrozenClock) -> Client:
    return await aiohttp_client(create_app(settings, clock=clock, worker=False))  # type: ignore[no-any-return]


async def test_the_page_publishes_odds_and_commitment_then_the_verified_seed(
    client: Client, clock: FrozenClock
) -> None:
    loyalty = client.app[keys.RESOURCES].loyalty
    games = loyalty.games
    await games.save_campaign(short_campaign())
    before = await client.get("/games/wheel/fairness")
    text = await before.text()
    assert before.status == 200
    commitment = await games.commitment("wheel")
    assert commitment in text and "Tỉ lệ trúng thưởng công bố" in text and "10.00%" in text
    seed_record = await games.repo.seed("wheel")
    assert seed_record is not None and seed_record.seed not in text  # the seed stays hidden
    assert (await (await client.get("/games/wheel/fairness.json")).json())["seed"] is None

    customer, _ = await loyalty.customers.get_or_create(Identity(channel="zalo", user_id="page"))
    plays = [await games.play(customer.id, "wheel", key=f"k{n}") for n in range(5)]
    clock.advance(timedelta(hours=2))
    after = await client.get("/games/wheel/fairness")
    text = await after.text()
    assert seed_record.seed in text and "tất cả đều khớp" in text
    assert all(play.play_id in text for play in plays)
    assert plays[0].customer_id not in text  # no customer id is published
    body = await (await client.get("/games/wheel/fairness.json")).json()
    assert hashlib.sha256(bytes.fromhex(body["seed"])).hexdigest() == body["commitment"] == commitment
    assert body["verified"] is True and len(body["plays"]) == 5


@pytest.mark.parametrize("name", ["nope", "%24ne", "a" * 80, "WHEEL"])
async def test_unknown_campaigns_are_404(client: Client, name: str) -> None:
    response = await client.get(f"/games/{name}/fairness")
    assert response.status == 404


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


async def loyalty_cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_loyalty_games_save_odds_report_export_and_verify(
    environment: Path, db: AsyncDatabase[Document], capsys: pytest.CaptureFixture[str]
) -> None:
    file = environment / "wheel.yaml"
    file.write_text(yaml.safe_dump(short_campaign(), allow_unicode=True), encoding="utf-8")
    assert await loyalty_cli("games", "save", str(file)) == 0
    assert "saved wheel" in capsys.readouterr().out

    # plays happened during the campaign (the test day); it is over now
    core = build_loyalty(db, load_program(), FrozenClock(START), secret_key=TEST_SECRET_KEY)
    customer, _ = await core.customers.get_or_create(Identity(channel="zalo", user_id="cli"))
    for n in range(6):
        await core.games.play(customer.id, "wheel", key=f"k{n}")

    assert await loyalty_cli("games", "list") == 0
    assert "wheel\twheel\ton" in capsys.readouterr().out
    assert await loyalty_cli("games", "odds", "wheel") == 0
    out = capsys.readouterr().out
    assert "top\t10.0000%" in out and "commitment" in out
    assert await loyalty_cli("games", "report", "wheel") == 0
    assert "6 completed plays" in capsys.readouterr().out
    csv_file = environment / "plays.csv"
    assert await loyalty_cli("games", "export", "wheel", "--out", str(csv_file)) == 0
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 6 and {row["state"] for row in rows} == {"completed"}
    assert await loyalty_cli("games", "verify", "wheel") == 0
    assert "plays recomputed: 6, mismatches: 0" in capsys.readouterr().out

    play = await db["game_plays"].find_one({})
    assert play is not None
    other = next(line["prize_id"] for line in play["table"] if line["prize_id"] != play["prize"]["id"])
    await db["game_plays"].update_one({"_id": play["_id"]}, {"$set": {"prize.id": other}})
    assert await loyalty_cli("games", "verify", "wheel") == 1
    assert "mismatches: 1" in capsys.readouterr().out


async def test_loyalty_games_refusals(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await loyalty_cli("games", "verify", "vong-quay-tet") == 2  # the demo wheel has not ended
    assert "game_seed_hidden" in capsys.readouterr().err
    assert await loyalty_cli("games", "odds", "nope") == 2
    bad = environment / "bad.yaml"
    bad.write_text("id: {$ne: ''}\nkind: wheel\n", encoding="utf-8")
    assert await loyalty_cli("games", "save", str(bad)) == 2
    assert "game_invalid" in capsys.readouterr().err
    (environment / "list.json").write_text("[1, 2]", encoding="utf-8")
    assert await loyalty_cli("games", "save", str(environment / "list.json")) == 2
