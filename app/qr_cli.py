"""``loyalty qr``: make, list and revoke QR check-in codes from a terminal (until the staff console does).

``loyalty qr create --points 10 --uses 100 --expires 7d [--store S] [--voucher T] [--png FILE]`` prints
the signed token and what a customer scans or types: the Zalo Mini App link, the Messenger m.me link and
the short code for the Zalo OA chat, with the Vietnamese line to print under the QR. ``--png`` writes the
QR image; it encodes the Mini App link when the program has ``brand.miniapp_link`` (inside Zalo the Mini
App logs the customer in and posts the token: no typing), else the m.me link (Messenger carries the
``ref``). A bare Zalo OA link is never encoded: a follow carries no parameter, which is what the printed
short code is for.

The command talks to the same database as ``loyalty serve``. With embedded defaults it starts the
embedded servers on ``DATA_DIR`` for the duration of the command, which only works while ``serve`` is
stopped (``DATA_DIR`` is locked by whoever runs them): then it says so and names the running servers'
URLs to pass as ``MONGODB_URI`` / ``REDIS_URL`` instead. It opens MongoDB only (no Redis, no instance
"start" recorded): making a code is not a start of the service.

Exit codes: 0 done, 2 a request the program cannot satisfy (no such code, zero uses, an unknown voucher
template), 69 the servers are unavailable or ``DATA_DIR`` is in use, 78 invalid settings or program.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import re
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Final

import segno

from app.offline import data_dir_in_use, open_loyalty
from app.runtime import storage_servers
from app.settings import Settings
from loyalty.checkin import CheckinCode, CheckinService
from loyalty.clock import LOCAL_TZ, SystemClock
from loyalty.errors import LoyaltyError
from loyalty.program import Program

EX_OK: Final = 0
EX_REFUSED: Final = 2
EX_UNAVAILABLE: Final = 69

_DURATION: Final = re.compile(r"(?P<amount>[1-9][0-9]{0,4})(?P<unit>[dhm])")
_UNITS: Final = {"d": "days", "h": "hours", "m": "minutes"}


def duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m`` → a :class:`timedelta` (an ``argparse`` type)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 7d, 12h or 30m")
    return timedelta(**{_UNITS[match["unit"]]: int(match["amount"])})


def add_qr_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``loyalty qr create|list|revoke`` on the CLI's subcommands."""
    qr = commands.add_parser(
        "qr",
        help="make, list and revoke QR check-in codes",
        description="QR check-in codes for the counter. Works against the same DATA_DIR as `loyalty serve` "
        "while it is stopped, or against MONGODB_URI/REDIS_URL while it runs.",
    )
    actions = qr.add_subparsers(dest="qr_action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="make a check-in code and print its links and short code",
        description="Make a check-in code. Prints the signed token, the Zalo Mini App link, the Messenger "
        "m.me link and the short code customers send in the Zalo OA chat. The QR image (--png) encodes the "
        "Mini App link, or the m.me link when the program has no brand.miniapp_link.",
    )
    create.add_argument(
        "--points", type=int, help="points per scan (default: the program's checkin.points_per_scan)"
    )
    create.add_argument(
        "--uses", type=int, default=1, help="how many customers may scan it (default 1: one-time)"
    )
    create.add_argument(
        "--expires", type=duration, default=timedelta(days=7), help="valid for 7d, 12h, 30m... (default 7d)"
    )
    create.add_argument("--store", help="the store it is printed for (shown in reports)")
    create.add_argument("--voucher", metavar="TEMPLATE", help="also issue a voucher of this template")
    create.add_argument("--png", type=Path, metavar="FILE", help="write the QR image to FILE")
    create.add_argument("--created-by", default=None, help="who made it (default: your login name)")

    listing = actions.add_parser("list", help="list check-in codes, newest first")
    listing.add_argument("--all", action="store_true", help="also revoked and expired codes")
    listing.add_argument("--store", help="only codes of this store")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")

    revoke = actions.add_parser("revoke", help="disable a check-in code at once")
    revoke.add_argument("code_id", metavar="CODE_ID", help="the code's id (as `loyalty qr list` shows it)")

    qr.set_defaults(run=run_qr, pass_args=True)


def run_qr(settings: Settings, *, args: argparse.Namespace) -> int:
    if busy := data_dir_in_use(settings, "loyalty qr"):
        print(busy, file=sys.stderr)  # noqa: T201 - the command's answer
        return EX_UNAVAILABLE
    with storage_servers(settings) as effective:
        return asyncio.run(_run(effective, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    async with _checkin_service(settings) as (service, program):
        try:
            if args.qr_action == "create":
                return await _create(service, program, args)
            if args.qr_action == "list":
                return await _list(service, args)
            return await _revoke(service, args.code_id)
        except LoyaltyError as error:
            print(f"loyalty qr {args.qr_action}: {error.message} ({error.code})", file=sys.stderr)  # noqa: T201
            return EX_REFUSED


@contextlib.asynccontextmanager
async def _checkin_service(settings: Settings) -> AsyncIterator[tuple[CheckinService, Program]]:
    async with open_loyalty(settings) as loyalty:
        yield loyalty.checkin, loyalty.program


async def _create(service: CheckinService, program: Program, args: argparse.Namespace) -> int:
    if args.png is not None and not (program.brand.miniapp_link or program.brand.messenger_link):
        print(  # noqa: T201
            "loyalty qr create: no QR image without a link to put in it: "
            "set brand.miniapp_link or brand.messenger_link in the program",
            file=sys.stderr,
        )
        return EX_REFUSED
    now = SystemClock().now()
    issued = await service.create_code(
        points=args.points,
        voucher_template=args.voucher,
        max_uses=args.uses,
        expires_at=now + args.expires,
        store=args.store,
        created_by=args.created_by or _login_name(),
    )
    code = issued.code
    links = service.links(code)
    reward = _reward(code)
    rows = [
        ("check-in code", f"{code.id} ({reward}, {code.max_uses} use(s), expires {_local(code)})"),
        ("token", issued.token),
        ("mini app", links.miniapp or "(no brand.miniapp_link in the program)"),
        ("messenger", links.messenger or "(no brand.messenger_link in the program)"),
        ("short code", f"{links.chat_code} (customers send it in the Zalo OA chat)"),
        ("instruction", links.instruction),
    ]
    if code.store:
        rows.insert(1, ("store", code.store))
    if args.png is not None and links.qr_target is not None:
        segno.make(links.qr_target, error="m").save(str(args.png), kind="png", scale=10, border=4)
        encoded = "the Mini App link" if links.qr_target == links.miniapp else "the m.me link"
        rows.append(("qr image", f"{args.png} (encodes {encoded})"))
    _print_rows(rows)
    return EX_OK


async def _list(service: CheckinService, args: argparse.Namespace) -> int:
    codes = await service.list_codes(include_inactive=args.all, store=args.store, limit=args.limit)
    if not codes:
        print("no check-in codes" + ("" if args.all else " in use (--all shows revoked and expired ones)"))  # noqa: T201
        return EX_OK
    now = SystemClock().now()
    header = ("ID", "SHORT", "REWARD", "USES", "EXPIRES", "STORE", "STATE")
    table = [header] + [
        (
            code.id,
            code.short_code,
            _reward(code),
            f"{code.uses}/{code.max_uses}",
            _local(code),
            code.store or "-",
            code.state(now),
        )
        for code in codes
    ]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())  # noqa: T201
    return EX_OK


async def _revoke(service: CheckinService, code_id: str) -> int:
    code = await service.revoke(code_id)
    print(f"revoked {code.id} (#{code.short_code}): {code.uses} of {code.max_uses} use(s) were taken")  # noqa: T201
    return EX_OK


def _reward(code: CheckinCode) -> str:
    parts = [f"{code.points} points"] if code.points else []
    if code.voucher_template:
        parts.append(f"voucher {code.voucher_template}")
    return " + ".join(parts)


def _local(code: CheckinCode) -> str:
    return code.expires_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")  # noqa: T201


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "cli"
