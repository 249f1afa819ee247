"""``loyalty reconcile`` and ``loyalty jobs``: the ledger's proof and the periodic work, by hand.

``loyalty reconcile`` finishes interrupted merges, applies ledger entries a crash left half-written,
then proves ``balance == sum(ledger)`` (and the lifetime total) for every customer. It prints each
mismatch and exits 1 when there is one; ``--fix`` sets the cached totals to what the ledger says.

``loyalty jobs`` runs the periodic work once (the service runs it on its own every
``JOBS_INTERVAL_SECONDS``): expiry of points and vouchers, tier reviews, and the repair of anything a
crash left half-done. Both commands are safe to run while the service runs (against its servers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Final

from app.offline import data_dir_in_use, open_loyalty
from app.runtime import storage_servers
from app.settings import Settings

EX_OK: Final = 0
EX_MISMATCH: Final = 1
EX_UNAVAILABLE: Final = 69


def add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reconcile = commands.add_parser(
        "reconcile",
        help="prove balance == sum(ledger) for every customer, repairing half-written entries",
        description="Finish interrupted merges, apply ledger entries a crash left half-written, then check "
        "every customer's cached balance and lifetime total against the ledger. Exit 0: all consistent; 1: "
        "mismatches were found (listed; with --fix they were corrected to the ledger's sums).",
    )
    reconcile.add_argument("--fix", action="store_true", help="set mismatched totals to the ledger's sums")
    reconcile.set_defaults(run=run_reconcile, pass_args=True)

    jobs = commands.add_parser(
        "jobs",
        help="run the periodic jobs once (expiry, tier reviews, repairs)",
        description="Run once what the service runs every JOBS_INTERVAL_SECONDS: finish interrupted merges, "
        "erasures, tier changes and reward redemptions; expire points and vouchers; review tiers when a "
        "review period began. Prints what was done as JSON.",
    )
    jobs.set_defaults(run=run_jobs, pass_args=True)


def run_reconcile(settings: Settings, *, args: argparse.Namespace) -> int:
    if busy := data_dir_in_use(settings, "loyalty reconcile"):
        print(busy, file=sys.stderr)  # noqa: T201 - the command's answer
        return EX_UNAVAILABLE
    with storage_servers(settings) as effective:
        return asyncio.run(_reconcile(effective, fix=args.fix))


async def _reconcile(settings: Settings, *, fix: bool) -> int:
    async with open_loyalty(settings) as loyalty:
        report = await loyalty.reconcile(fix=fix)
    for customer_id, balance, total in report.mismatched:
        print(f"mismatch: customer {customer_id}: balance {balance}, ledger {total}")  # noqa: T201
    verdict = "fixed" if report.fixed else ("consistent" if report.ok else "MISMATCHED")
    print(  # noqa: T201
        f"{report.customers} customers, {report.repaired_entries} half-written entries repaired, "
        f"{len(report.mismatched)} mismatched: {verdict}"
    )
    return EX_OK if report.ok or report.fixed else EX_MISMATCH


def run_jobs(settings: Settings, *, args: argparse.Namespace) -> int:
    if busy := data_dir_in_use(settings, "loyalty jobs"):
        print(busy, file=sys.stderr)  # noqa: T201
        return EX_UNAVAILABLE
    with storage_servers(settings) as effective:
        return asyncio.run(_jobs(effective))


async def _jobs(settings: Settings) -> int:
    async with open_loyalty(settings) as loyalty:
        report = await loyalty.run_jobs()
    print(json.dumps(report, sort_keys=True))  # noqa: T201
    return EX_OK
