"""``loyalty games``: minigame campaigns from a terminal — list, published odds, the observed-vs-configured
report, the CSV export of plays (for promotion reports, Decree 81/2018), the provably-fair verification,
and saving a campaign at runtime.

``loyalty games verify CAMPAIGN`` recomputes every completed play of an ended campaign from its revealed
server seed: the seed's SHA-256 must be the commitment published before the start, each play's draw
value ``HMAC-SHA256(seed, "<play_id>:<round>")`` must pick the recorded prize in the recorded table, and
every weight in a table must be the configured one. It exits 1 when anything does not match.

Like ``loyalty qr`` it works against ``DATA_DIR`` while ``loyalty serve`` is stopped, or against
``MONGODB_URI``/``REDIS_URL`` while it runs. Exit codes: 0 done, 1 verification failed, 2 refused (no such
campaign, the seed is still hidden, an invalid campaign file), 69 servers unavailable or ``DATA_DIR`` in use.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any, Final, TextIO

import yaml

from app.offline import data_dir_in_use, open_loyalty
from app.runtime import storage_servers
from app.settings import Settings
from loyalty.clock import LOCAL_TZ
from loyalty.errors import GameInvalid, LoyaltyError
from loyalty.games import GameService

EX_OK: Final = 0
EX_MISMATCH: Final = 1
EX_REFUSED: Final = 2
EX_UNAVAILABLE: Final = 69
MAX_CAMPAIGN_FILE: Final = 1_000_000
EXPORT_FIELDS: Final = (
    "play_id",
    "time_local",
    "customer_id",
    "state",
    "paid",
    "points_spent",
    "round",
    "weights",
    "prize_id",
    "prize_name",
    "reward",
    "points",
    "voucher_code",
    "value_vnd",
    "score",
    "error_code",
)


def add_games_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``loyalty games list|odds|report|export|verify|save`` on the CLI's subcommands."""
    games = commands.add_parser(
        "games",
        help="minigame campaigns: odds, report, CSV export, fairness verification",
        description="Minigame campaigns. Works against the same DATA_DIR as `loyalty serve` while it is "
        "stopped, or against MONGODB_URI/REDIS_URL while it runs.",
    )
    actions = games.add_subparsers(dest="games_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every campaign (the program's and those saved at runtime)")
    for name, text in (
        ("odds", "the published odds of a campaign: each prize's chance and stock"),
        ("report", "configured odds against observed frequencies"),
        ("verify", "recompute every outcome of an ended campaign from its revealed seed"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("campaign", metavar="CAMPAIGN")
    export = actions.add_parser("export", help="every play of a campaign as CSV (promotion reports)")
    export.add_argument("campaign", metavar="CAMPAIGN")
    export.add_argument("--out", type=Path, metavar="FILE", help="write to FILE (default: standard output)")
    save = actions.add_parser("save", help="add or replace a campaign at runtime from a YAML or JSON file")
    save.add_argument("file", type=Path, metavar="FILE")
    games.set_defaults(run=run_games, pass_args=True)


def run_games(settings: Settings, *, args: argparse.Namespace) -> int:
    if busy := data_dir_in_use(settings, "loyalty games"):
        print(busy, file=sys.stderr)  # noqa: T201 - the command's answer
        return EX_UNAVAILABLE
    with storage_servers(settings) as effective:
        return asyncio.run(_run(effective, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    async with open_loyalty(settings) as loyalty:
        games = loyalty.games
        try:
            action = args.games_action
            if action == "list":
                return await _list(games)
            if action == "odds":
                return await _odds(games, args.campaign)
            if action == "report":
                return await _report(games, args.campaign)
            if action == "export":
                return await _export(games, args.campaign, args.out)
            if action == "verify":
                return await _verify(games, args.campaign)
            return await _save(games, args.file)
        except LoyaltyError as error:
            print(f"loyalty games {args.games_action}: {error.message} ({error.code})", file=sys.stderr)  # noqa: T201
            return EX_REFUSED


def _out(text: str = "") -> None:
    print(text)  # noqa: T201 - the command's answer


async def _list(games: GameService) -> int:
    for campaign in await games.campaigns():
        starts = campaign.starts_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
        ends = campaign.ends_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
        state = "on" if campaign.active else "off"
        _out(f"{campaign.id}\t{campaign.kind}\t{state}\t{starts} → {ends}\t{campaign.name}")
    return EX_OK


async def _odds(games: GameService, campaign_id: str) -> int:
    campaign = await games.campaign(campaign_id)
    _out(f"{campaign.name} ({campaign.id}, {campaign.kind})")
    _out(f"commitment (SHA-256 of the server seed): {await games.commitment(campaign.id)}")
    if campaign.kind == "quiz":
        for line in campaign.score_prizes:
            _out(f"  score >= {line.min_score}: {line.prize}")
    for odds in await games.odds(campaign.id):
        stock = "unlimited" if odds.stock is None else f"{odds.remaining}/{odds.stock} left"
        daily = "" if odds.daily_stock is None else f", {odds.daily_stock} a day"
        _out(f"  {odds.prize_id}\t{odds.probability:.4%}\tweight {odds.weight}\t{stock}{daily}\t{odds.name}")
    _out("Out of stock: a prize whose stock, daily stock or budget ran out leaves the draw; the others keep")
    _out("their weights (renormalised). No other rule changes the odds.")
    return EX_OK


async def _report(games: GameService, campaign_id: str) -> int:
    report = await games.report(campaign_id)
    _out(f"{report.campaign_id}: {report.plays} completed plays, {report.rolled_back} refunded")
    _out("prize\tconfigured\tobserved\tfrequency\texpected (tables in force)")
    for line in report.lines:
        _out(
            f"{line.prize_id}\t{line.configured_probability:.4%}\t{line.observed}\t"
            f"{line.observed_frequency:.4%}\t{line.expected:.1f}"
        )
    _out(f"chi-square {report.chi_square:.2f} with {report.degrees_of_freedom} degrees of freedom")
    if report.budget_vnd is not None:
        _out(f"budget: {report.value_given_vnd:,} of {report.budget_vnd:,} VND given")
    return EX_OK


async def _export(games: GameService, campaign_id: str, out: Path | None) -> int:
    await games.campaign(campaign_id)  # refuse an unknown campaign before creating a file
    if out is None:
        return await _write_csv(games, campaign_id, sys.stdout)
    with out.open("w", encoding="utf-8-sig", newline="") as stream:  # the BOM makes Excel read UTF-8
        return await _write_csv(games, campaign_id, stream)


async def _write_csv(games: GameService, campaign_id: str, stream: TextIO) -> int:
    writer = csv.DictWriter(stream, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    async for row in games.export_rows(campaign_id):
        writer.writerow(row)
    return EX_OK


async def _verify(games: GameService, campaign_id: str) -> int:
    report = await games.verify(campaign_id)
    _out(f"campaign {report.campaign_id}")
    _out(f"commitment {report.commitment}")
    _out(f"seed       {report.seed}")
    _out(f"SHA-256 of the seed matches the commitment: {'yes' if report.commitment_ok else 'NO'}")
    _out(f"plays recomputed: {report.checked}, mismatches: {len(report.mismatches)}")
    for play_id, problem in report.mismatches:
        _out(f"  {play_id}: {problem}")
    return EX_OK if report.ok else EX_MISMATCH


async def _save(games: GameService, file: Path) -> int:
    data = await asyncio.to_thread(_read_campaign, file)
    campaign = await games.save_campaign(data)
    _out(f"saved {campaign.id}; commitment {await games.commitment(campaign.id)}")
    return EX_OK


def _read_campaign(file: Path) -> dict[str, Any]:
    try:
        if file.stat().st_size > MAX_CAMPAIGN_FILE:
            raise GameInvalid(f"{file}: larger than {MAX_CAMPAIGN_FILE} bytes")
        text = file.read_text(encoding="utf-8")
        data: Any = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        raise GameInvalid(f"{file}: cannot read a campaign: {error}") from None
    if not isinstance(data, dict):
        raise GameInvalid(f"{file}: a campaign is a mapping of fields (id, kind, prizes...)")
    return data
