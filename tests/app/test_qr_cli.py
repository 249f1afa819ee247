"""``loyalty qr`` end to end: the command against the test servers (or embedded ones it starts), and the
codes it makes scanned through the real service."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pymongo.asynchronous.database import AsyncDatabase

from app.cli import main
from app.embedded import DataDirLock
from app.qr_cli import duration
from loyalty.checkin import CheckinService
from loyalty.clock import LOCAL_TZ, SystemClock
from loyalty.customers import CustomerService, Identity
from loyalty.errors import CheckinDisabled
from loyalty.ledger import LedgerService
from loyalty.program import DEMO_PROGRAM, load_program
from storage.checkins import MongoCheckinRepository
from storage.clients import Document, MongoClient
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository
from tests.conftest import TEST_SECRET_KEY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mongo_url: str, redis_url: str, db_name: str
) -> Path:
    """The test servers, the test's own database and secret: what an operator's .env would hold."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MONGODB_URI", mongo_url)
    monkeypatch.setenv("MONGODB_DB", db_name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    return tmp_path


@pytest.fixture
async def database(mongo_client: MongoClient, db_name: str) -> AsyncDatabase[Document]:
    return mongo_client[db_name]


async def loyalty(*argv: str) -> int:
    """Run the command as the console script does (it calls asyncio.run, so off this test's loop)."""
    return await asyncio.to_thread(main, list(argv))


def printed(out: str) -> dict[str, str]:
    """``label  value`` lines of ``qr create`` as a dict."""
    rows: dict[str, str] = {}
    for line in out.splitlines():
        label, _, value = line.partition("  ")
        rows[label.strip()] = value.strip()
    return rows


def checkin_service(db: AsyncDatabase[Document]) -> CheckinService:
    program, clock = load_program(), SystemClock()
    ledger = LedgerService(MongoLedgerRepository(db), program, clock)
    return CheckinService(
        MongoCheckinRepository(db), ledger, None, program, clock, TEST_SECRET_KEY.encode("utf-8")
    )


async def test_create_prints_the_links_and_writes_the_qr_image(
    environment: Path, database: AsyncDatabase[Document], capsys: pytest.CaptureFixture[str]
) -> None:
    png = environment / "counter.png"

    code = await loyalty("qr", "create", "--points", "10", "--uses", "100", "--expires", "7d",
                         "--store", "q1", "--png", str(png))  # fmt: skip

    assert code == 0
    rows = printed(capsys.readouterr().out)
    token = rows["token"]
    assert re.fullmatch(r"[0-9a-f]{24}\.[0-9a-z]+\.[A-Za-z0-9_-]{24}", token)
    code_id = token.split(".")[0]
    assert rows["check-in code"].startswith(f"{code_id} (10 points, 100 use(s), expires ")
    assert rows["store"] == "q1"
    assert rows["mini app"] == f"https://zalo.me/s/0000000000000000000/?checkin={token}"
    assert rows["messenger"] == f"https://m.me/democafe?ref=checkin.{token}"
    short = re.fullmatch(
        r"#([2-9A-HJKMNP-Z]{8}) \(customers send it in the Zalo OA chat\)", rows["short code"]
    )
    assert short is not None
    assert f"#{short[1]}" in rows["instruction"]
    assert rows["qr image"] == f"{png} (encodes the Mini App link)"
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 500

    # the printed token and short code are what the service accepts
    service = checkin_service(database)
    stored = await service.get(code_id)
    assert (stored.points, stored.max_uses, stored.store, stored.short_code) == (10, 100, "q1", short[1])
    assert stored.expires_at - SystemClock().now() > timedelta(days=6, hours=23)
    customers = CustomerService(MongoCustomerRepository(database), load_program(), SystemClock())
    first, _ = await customers.get_or_create(Identity(channel="miniapp", user_id="m1"))
    second, _ = await customers.get_or_create(Identity(channel="zalo", user_id="z1"))
    assert (await service.scan(first.id, token, channel="miniapp")).balance == 10
    assert (await service.scan(second.id, f"#{short[1]}", channel="zalo")).balance == 10


async def test_list_and_revoke(
    environment: Path, database: AsyncDatabase[Document], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await loyalty("qr", "list") == 0
    assert capsys.readouterr().out.startswith("no check-in codes in use")
    assert await loyalty("qr", "create", "--uses", "5", "--expires", "12h") == 0
    code_id = printed(capsys.readouterr().out)["token"].split(".")[0]
    assert await loyalty("qr", "create", "--expires", "30m", "--store", "q2") == 0
    other_id = printed(capsys.readouterr().out)["token"].split(".")[0]

    assert await loyalty("qr", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "SHORT", "REWARD", "USES", "EXPIRES", "STORE", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == [other_id, code_id]  # newest first
    assert lines[2].split()[2:5] == ["10", "points", "0/5"]
    assert lines[2].split()[-2:] == ["-", "active"]

    assert await loyalty("qr", "revoke", code_id) == 0
    assert capsys.readouterr().out.startswith(f"revoked {code_id} (#")
    assert await loyalty("qr", "list") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [other_id]
    assert await loyalty("qr", "list", "--all") == 0
    assert capsys.readouterr().out.splitlines()[2].split()[-1] == "revoked"

    service = checkin_service(database)
    stored = await service.get(code_id)
    customers = CustomerService(MongoCustomerRepository(database), load_program(), SystemClock())
    customer, _ = await customers.get_or_create(Identity(channel="zalo", user_id="z1"))
    with pytest.raises(CheckinDisabled):
        await service.scan(customer.id, service.token_for(stored), channel="zalo")


async def test_impossible_requests_exit_2_with_the_reason(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await loyalty("qr", "create", "--uses", "0") == 2
    assert "max_uses must be from 1 (checkin_invalid)" in capsys.readouterr().err.replace(" to 1,000,000", "")
    assert await loyalty("qr", "create", "--voucher", "no_such_template") == 2
    assert "no voucher template 'no_such_template'" in capsys.readouterr().err
    assert await loyalty("qr", "revoke", "0" * 24) == 2
    assert "(checkin_not_found)" in capsys.readouterr().err


def program_file(directory: Path, **brand: str | None) -> Path:
    """The demo program with some of the brand's links changed (``None``: removed)."""
    data = yaml.safe_load(DEMO_PROGRAM.read_text(encoding="utf-8"))
    for name, value in brand.items():
        if value is None:
            data["brand"].pop(name, None)
        else:
            data["brand"][name] = value
    path = directory / "program.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


async def test_without_a_mini_app_the_qr_encodes_the_messenger_link(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROGRAM_FILE", str(program_file(environment, miniapp_link=None)))
    png = environment / "qr.png"

    assert await loyalty("qr", "create", "--png", str(png)) == 0

    rows = printed(capsys.readouterr().out)
    assert rows["mini app"] == "(no brand.miniapp_link in the program)"
    assert rows["messenger"] == f"https://m.me/democafe?ref=checkin.{rows['token']}"
    assert rows["qr image"] == f"{png} (encodes the m.me link)"
    assert png.read_bytes().startswith(PNG_MAGIC)


async def test_without_any_link_no_qr_image_is_promised(
    environment: Path,
    database: AsyncDatabase[Document],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = program_file(environment, miniapp_link=None, messenger_link=None)
    monkeypatch.setenv("PROGRAM_FILE", str(path))

    assert await loyalty("qr", "create", "--png", str(environment / "qr.png")) == 2
    assert "set brand.miniapp_link or brand.messenger_link" in capsys.readouterr().err
    assert not (environment / "qr.png").exists()
    assert await checkin_service(database).list_codes(include_inactive=True) == []  # nothing was made

    assert await loyalty("qr", "create") == 0  # the short code alone still works
    rows = printed(capsys.readouterr().out)
    assert rows["mini app"].startswith("(no ") and rows["messenger"].startswith("(no ")
    assert rows["short code"].startswith("#")


@pytest.mark.parametrize("text", ["7", "d", "0d", "7w", "-1h", "1.5h", ""])
def test_a_bad_duration_is_a_usage_error(
    text: str, environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["qr", "create", f"--expires={text}"])

    assert caught.value.code == 2
    assert "not a duration like 7d, 12h or 30m" in capsys.readouterr().err


def test_durations() -> None:
    assert duration("7d") == timedelta(days=7)
    assert duration("12H") == timedelta(hours=12)
    assert duration(" 30m ") == timedelta(minutes=30)


def test_a_running_serve_is_named_with_its_servers_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    # what a running `loyalty serve` holds: the DATA_DIR lock and its servers' pid files
    for name, port in (("mongodb", 27999), ("redis", 6999)):
        (tmp_path / name).mkdir()
        record = {"pid": os.getpid(), "port": port, "executable": sys.executable}
        (tmp_path / name / "server.pid").write_text(json.dumps(record), encoding="utf-8")
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        code = main(["qr", "list"])
    finally:
        lock.release()

    err = capsys.readouterr().err
    assert code == 69
    assert "Is `loyalty serve` running? Stop it, or run this command against its servers" in err
    assert "MONGODB_URI='mongodb://127.0.0.1:27999/?directConnection=true&retryWrites=false'" in err
    assert "REDIS_URL='redis://127.0.0.1:6999/0' loyalty qr ..." in err


@pytest.mark.slow
def test_with_embedded_defaults_it_starts_the_servers_on_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No MONGODB_URI / REDIS_URL: the command runs the embedded servers on DATA_DIR, as serve would,
    so the codes it makes are in the database serve uses next."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    command = [sys.executable, "-m", "app.cli", "qr"]
    env = {**os.environ}

    made = subprocess.run(
        [*command, "create", "--uses", "3"], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    listed = subprocess.run(
        [*command, "list"], capture_output=True, text=True, timeout=120, check=False, env=env
    )

    assert made.returncode == 0, made.stderr
    code_id = printed(made.stdout)["token"].split(".")[0]
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[0] == code_id
    lock = DataDirLock(tmp_path / "data")  # the command let go of DATA_DIR: serve can start
    lock.acquire()
    lock.release()


async def test_the_printed_expiry_is_local_time(
    environment: Path, database: AsyncDatabase[Document], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await loyalty("qr", "create", "--expires", "1h") == 0
    rows = printed(capsys.readouterr().out)
    stored = await checkin_service(database).get(rows["token"].split(".")[0])

    expected = stored.expires_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
    assert rows["check-in code"].endswith(f"expires {expected})")
