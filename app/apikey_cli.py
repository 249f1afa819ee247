"""``loyalty apikey``: API keys of the integrations API (``/api/integrations/v1``), for a POS or a shop
system that reports orders.

``loyalty apikey create NAME`` prints a new key once (``slk_<id>_<secret>``); only the SHA-256 of its
secret is stored, so a lost key is revoked and replaced, never shown again. ``loyalty apikey list``
shows ids, names and states; ``loyalty apikey revoke KEY_ID`` disables one at once.

Like ``loyalty qr``, the command works on ``DATA_DIR`` while ``loyalty serve`` is stopped, or against
``MONGODB_URI`` while it runs. Exit codes: 0 done, 2 refused (a bad name, an unknown id), 69 servers
unavailable or ``DATA_DIR`` in use, 78 invalid settings.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Final

from app.offline import data_dir_in_use
from app.runtime import storage_servers
from app.settings import Settings
from loyalty.clock import LOCAL_TZ, SystemClock
from miniapp_api.apikeys import new_api_key
from miniapp_api.ports import ApiKeyRecord
from storage.api_keys import MongoApiKeyRepository
from storage.clients import create_mongo_client

EX_OK: Final = 0
EX_REFUSED: Final = 2
EX_UNAVAILABLE: Final = 69


def add_apikey_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apikey = commands.add_parser(
        "apikey",
        help="create, list and revoke API keys of the integrations API",
        description="API keys for /api/integrations/v1 (a POS or shop system reporting orders). A new key "
        "is printed once; only its hash is stored.",
    )
    actions = apikey.add_subparsers(dest="apikey_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key and print it (once)")
    create.add_argument("name", help="who uses it, e.g. 'KiotViet Q1'")
    create.add_argument("--created-by", default=None, help="who made it (default: your login name)")
    actions.add_parser("list", help="list the keys (ids, names, states; never the secrets)")
    revoke = actions.add_parser("revoke", help="disable a key at once")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (12 hex digits, as `list` shows)")
    apikey.set_defaults(run=run_apikey, pass_args=True)


def run_apikey(settings: Settings, *, args: argparse.Namespace) -> int:
    if busy := data_dir_in_use(settings, "loyalty apikey"):
        print(busy, file=sys.stderr)  # noqa: T201 - the command's answer
        return EX_UNAVAILABLE
    with storage_servers(settings) as effective:
        return asyncio.run(_run(effective, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    assert settings.mongodb_uri is not None
    mongo = create_mongo_client(settings.mongodb_uri.get_secret_value())
    try:
        repo = MongoApiKeyRepository(mongo[settings.mongodb_db])
        if args.apikey_action == "create":
            return await _create(repo, args)
        if args.apikey_action == "list":
            return await _list(repo)
        return await _revoke(repo, args.key_id)
    finally:
        await mongo.close()


async def _create(repo: MongoApiKeyRepository, args: argparse.Namespace) -> int:
    created_by = args.created_by or _login_name()
    try:
        key, record = new_api_key(args.name, created_by=created_by, now=SystemClock().now())
    except ValueError as error:
        print(f"loyalty apikey create: {error}", file=sys.stderr)  # noqa: T201
        return EX_REFUSED
    await repo.insert(record.model_dump())
    print(f"API key {record.id} ({record.name}) created. Copy it now: it is not shown again.")  # noqa: T201
    print(key)  # noqa: T201
    return EX_OK


async def _list(repo: MongoApiKeyRepository) -> int:
    records = [ApiKeyRecord.model_validate(found) for found in await repo.list_all()]
    if not records:
        print("no API keys (loyalty apikey create NAME makes one)")  # noqa: T201
    for record in records:
        created = record.created_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
        state = "active" if record.revoked_at is None else "revoked"
        print(f"{record.id}  {state:<7}  {created}  {record.name}  (by {record.created_by})")  # noqa: T201
    return EX_OK


async def _revoke(repo: MongoApiKeyRepository, key_id: str) -> int:
    if await repo.revoke(key_id, SystemClock().now()):
        print(f"API key {key_id} revoked")  # noqa: T201
        return EX_OK
    found = await repo.get(key_id)
    if found is not None:
        print(f"API key {key_id} was already revoked")  # noqa: T201
        return EX_OK
    print(f"loyalty apikey revoke: no API key {key_id!r}", file=sys.stderr)  # noqa: T201
    return EX_REFUSED


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"
