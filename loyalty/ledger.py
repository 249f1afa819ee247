"""The points ledger: earn, spend, expire, adjust and reverse, by lots, exactly once per key.

**Shape.** Every change is an append-only entry in ``ledger`` keyed by its idempotency key. The
customer's *wallet* (on the customer document) caches what the entries add up to: the balance, the
lifetime and qualifying totals, and the *lots*: one per earn (remaining points and expiry). A spend
draws from the lots that expire first, so an expiry removes only what is left of a lot: points already
spent are never expired again (the "balance collapse" bug of some peers).

**Two writes, exactly once, no transactions.** An operation is

1. *claim*: insert the entry (``_id`` = key). A duplicate key means the operation was claimed before;
2. *apply*: one conditional ``update_one`` on the wallet that changes the totals and lots **and** pushes
   the key on the wallet's *journal*, with the filter ``journal.k != key``.

So an entry is applied at most once: the second apply of a key finds it in the journal. An applied
entry is one whose key is in its customer's journal, or, after the journal was compacted, whose
``applied`` flag is set. Compaction (:meth:`LedgerService.compact`) first flags the entries, then pulls
their keys and raises the wallet's ``compacted_before`` watermark; every apply also requires
``compacted_before <= entry.created_at``, so an apply that raced a compaction is refused rather than
repeated. Compaction only takes journal items older than :data:`COMPACT_AFTER`.

A crash between claim and apply leaves a *pending* entry. The next call with the same key (the
platform's retry, the customer's second tap) finds it and, once it is older than :data:`STALE_AFTER`
(so a slow first caller is not raced), applies it; ``loyalty reconcile`` applies every such entry and
then proves ``balance == sum(applied entries)`` for every customer. A business refusal (not enough
points) *voids* the claimed entry: replays of the key get the same refusal.

Spends, expiries, negative adjustments and reversals replace the lots array and are guarded by the
wallet's ``version`` as well (optimistic concurrency, retried); earns only push a lot and need no read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from loyalty.clock import LOCAL_TZ, Clock
from loyalty.errors import (
    CustomerInactive,
    CustomerNotFound,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    LoyaltyError,
)
from loyalty.program import Program

log = logging.getLogger("loyalty.ledger")

EntryKind = Literal["earn", "spend", "expire", "adjust", "reverse"]
# "pending": claimed; it is applied once its key is in the wallet's journal (or `applied` is flagged).
# "void": refused (not enough points); replays of its key get the same refusal.
EntryState = Literal["pending", "void"]

MAX_POINTS: Final = 100_000_000
STALE_AFTER: Final = timedelta(seconds=30)
COMPACT_AFTER: Final = timedelta(minutes=10)
COMPACT_AT_LENGTH: Final = 64  # journal items before a wallet read triggers a compaction
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The watermark of a frozen wallet (a customer being merged, merged or erased): every apply is refused.
FROZEN: Final = datetime(9999, 12, 31, tzinfo=UTC)
_VERSION_RETRIES: Final = 50
_KEY_MAX: Final = 200


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    customer_id: str
    kind: EntryKind
    points: int  # signed: + earn, - spend
    reason: str
    ref: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    expires_at: datetime | None = None  # earns: when the lot expires
    # What the entry adds to the lifetime total and to the qualifying points of local month `month`
    # (an earn: its points; the reversal of an earn: minus the earn's points, even if fewer could be taken).
    lifetime_delta: int = 0
    qualifying_delta: int = 0
    month: str | None = None
    reverses: str | None = None  # reversals: the key of the entry they undo
    staff_id: str | None = None
    state: EntryState = "pending"
    void_code: str | None = None
    applied: bool = False  # set by compaction once the key left the journal


class Lot(BaseModel):
    """Points earned together, spent and expired together."""

    model_config = ConfigDict(frozen=True)

    key: str  # the earn's key
    remaining: int
    expires_at: datetime | None
    earned_at: datetime


class JournalItem(BaseModel):
    """A key the wallet has settled: applied with ``points``, or refused (``void``)."""

    model_config = ConfigDict(frozen=True)

    key: str
    at: datetime
    points: int = 0
    void: bool = False


class Wallet(BaseModel):
    """A customer's points as the wallet caches them."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    status: str = "active"
    balance: int = 0
    lifetime_earned: int = 0
    qualifying_by_month: dict[str, int] = Field(default_factory=dict)
    lots: tuple[Lot, ...] = ()
    journal: tuple[JournalItem, ...] = ()
    version: int = 0
    compacted_before: datetime = EPOCH

    def journaled(self, key: str) -> bool:
        """The wallet settled ``key`` (applied or refused)."""
        return any(item.key == key for item in self.journal)

    def journal_item(self, key: str) -> JournalItem | None:
        return next((item for item in self.journal if item.key == key), None)

    def expiring_before(self, moment: datetime) -> int:
        return sum(
            lot.remaining for lot in self.lots if lot.expires_at is not None and lot.expires_at <= moment
        )


@dataclass(frozen=True, slots=True)
class WalletChange:
    """What one entry does to a wallet. ``lots`` replaces the array; ``new_lot`` appends to it."""

    balance: int = 0
    lifetime: int = 0
    qualifying: Mapping[str, int] = field(default_factory=dict)
    new_lot: Lot | None = None
    lots: tuple[Lot, ...] | None = None


class LedgerRepository(Protocol):
    async def claim(self, entry: LedgerEntry) -> LedgerEntry | None:
        """Insert the entry; when its key exists, return the existing entry instead (None: inserted)."""
        ...

    async def entry(self, key: str) -> LedgerEntry | None: ...
    async def set_points(self, key: str, points: int) -> None: ...
    async def refuse(self, entry: LedgerEntry, code: str) -> bool:
        """Settle the entry as refused on the wallet (conditional, like apply), then mark it void.
        False when the wallet had settled the key already (someone else applied it)."""
        ...

    async def release(self, key: str) -> None:
        """Delete a claimed entry that was not applied (its customer was not there to take it)."""
        ...

    async def rebase(self, key: str, created_at: datetime, now: datetime) -> LedgerEntry | None:
        """Move a pending, unflagged entry created at ``created_at`` to ``now``; None if it changed."""
        ...

    async def wallet(self, customer_id: str) -> Wallet | None: ...
    async def apply(self, entry: LedgerEntry, change: WalletChange, *, version: int | None) -> bool:
        """The conditional wallet update (see the module docstring); False when it did not match."""
        ...

    async def compact(self, customer_id: str, items: Sequence[JournalItem], watermark: datetime) -> None:
        """Write each item's outcome onto its entry (applied with its points, or void), then drop the
        items from the journal and raise the watermark."""
        ...

    async def entries(
        self, customer_id: str, *, limit: int, before: tuple[datetime, str] | None
    ) -> list[LedgerEntry]: ...
    async def all_entries(self, customer_id: str) -> list[LedgerEntry]: ...
    async def customers_with_expired_lots(self, now: datetime, limit: int) -> list[str]: ...
    async def customers_with_old_journal(self, before: datetime, limit: int) -> list[str]: ...
    async def pending_entries(self, older_than: datetime, limit: int) -> list[LedgerEntry]: ...
    async def customer_ids(self, after: str | None, limit: int) -> list[str]: ...
    async def set_totals(self, customer_id: str, balance: int, lifetime: int) -> None: ...
    async def reassign_customer(self, from_id: str, into_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    customers: int = 0
    repaired_entries: int = 0
    mismatched: tuple[tuple[str, int, int], ...] = ()  # (customer, balance, sum) before a fix
    fixed: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatched


class LedgerService:
    def __init__(self, repo: LedgerRepository, program: Program, clock: Clock) -> None:
        self._repo = repo
        self._program = program
        self._clock = clock

    # ================================================================ operations
    async def earn(
        self,
        customer_id: str,
        points: int,
        *,
        key: str,
        reason: str,
        ref: Mapping[str, str] | None = None,
        qualifying: bool = True,
        expires_at: datetime | None = None,
    ) -> LedgerEntry:
        """Add ``points`` as a new lot. Expiry: ``expires_at``, else the program's points expiry.

        :param qualifying: the points count toward tiers (purchases do; a goodwill gift may not).
        """
        _check(points, key)
        now = self._clock.now()
        entry = LedgerEntry(
            key=key,
            customer_id=customer_id,
            kind="earn",
            points=points,
            reason=reason,
            ref=dict(ref or {}),
            created_at=now,
            expires_at=expires_at or self._default_expiry(now),
            lifetime_delta=points,
            qualifying_delta=points if qualifying else 0,
            month=local_month(now) if qualifying else None,
        )
        return await self._run(entry)

    async def spend(
        self, customer_id: str, points: int, *, key: str, reason: str, ref: Mapping[str, str] | None = None
    ) -> LedgerEntry:
        """Take ``points`` from the lots that expire first; :class:`InsufficientPoints` if not enough."""
        _check(points, key)
        entry = LedgerEntry(
            key=key,
            customer_id=customer_id,
            kind="spend",
            points=-points,
            reason=reason,
            ref=dict(ref or {}),
            created_at=self._clock.now(),
        )
        return await self._run(entry)

    async def adjust(
        self, customer_id: str, points: int, *, key: str, reason: str, staff_id: str
    ) -> LedgerEntry:
        """A staff correction with a reason: positive adds a lot (not qualifying), negative draws lots."""
        if not isinstance(points, int) or points == 0:
            raise InvalidAmount("an adjustment must change the balance")
        _check(abs(points), key)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidAmount("an adjustment needs a reason")
        now = self._clock.now()
        entry = LedgerEntry(
            key=key,
            customer_id=customer_id,
            kind="adjust",
            points=points,
            reason=reason.strip()[:200],
            created_at=now,
            expires_at=self._default_expiry(now) if points > 0 else None,
            staff_id=staff_id,
        )
        return await self._run(entry)

    async def reverse(self, original_key: str, *, key: str, reason: str) -> LedgerEntry | None:
        """Undo an earn or a positive adjustment (that lot first, then the others, never below zero)
        or a spend (the points come back as a new lot). ``None`` when the original does not exist, was
        refused, or is itself a reversal or an expiry."""
        _check(1, key)
        original = await self._repo.entry(original_key)
        if original is None or original.state == "void" or original.kind in ("reverse", "expire"):
            return None
        await self._settle(original)
        now = self._clock.now()
        if original.points < 0:
            entry = LedgerEntry(
                key=key,
                customer_id=original.customer_id,
                kind="reverse",
                points=-original.points,
                reason=reason,
                ref={"reverses": original_key},
                created_at=now,
                expires_at=self._default_expiry(now),
                reverses=original_key,
            )
            return await self._run(entry)
        entry = LedgerEntry(
            key=key,
            customer_id=original.customer_id,
            kind="reverse",
            points=-original.points,  # what is taken is settled against the balance when applied
            reason=reason,
            ref={"reverses": original_key},
            created_at=now,
            lifetime_delta=-original.lifetime_delta,
            qualifying_delta=-original.qualifying_delta,
            month=original.month,
            reverses=original_key,
        )
        return await self._run(entry)

    # ================================================================ the protocol
    async def _run(self, entry: LedgerEntry) -> LedgerEntry:
        existing = await self._repo.claim(entry)
        if existing is not None:
            return await self._replay(existing, entry)
        try:
            applied = await self._apply(entry)
        except InsufficientPoints:
            if await self._repo.refuse(entry, InsufficientPoints.code):
                raise
            # someone settled the entry first (a caller that took it for abandoned): theirs is the result
            applied = None
        except (CustomerNotFound, CustomerInactive):
            # Not applied anywhere: give the key back, so the caller can retry on the right customer
            # (the survivor of a merge that was in progress).
            await self._repo.release(entry.key)
            raise
        return applied if applied is not None else await self._result(entry)

    async def _replay(self, existing: LedgerEntry, wanted: LedgerEntry) -> LedgerEntry:
        """A key seen before: the same result, or the same refusal. A different operation: conflict."""
        same = existing.kind == wanted.kind and (
            existing.points == wanted.points or existing.kind in ("reverse", "expire")
        )
        if not same:
            raise IdempotencyConflict(f"key {existing.key!r} was used for another operation")
        if existing.state == "void":
            raise _refusal(existing.void_code)
        await self._settle(existing)
        return await self._result(existing)

    async def _result(self, entry: LedgerEntry) -> LedgerEntry:
        """The entry as settled: its applied points, or its refusal raised."""
        fresh = await self._repo.entry(entry.key) or entry
        wallet = await self._repo.wallet(fresh.customer_id)
        item = wallet.journal_item(fresh.key) if wallet is not None else None
        if fresh.state == "void" or (item is not None and item.void):
            raise _refusal(fresh.void_code or InsufficientPoints.code)
        if item is not None and item.points != fresh.points:
            return fresh.model_copy(update={"points": item.points})
        return fresh

    async def _settle(self, entry: LedgerEntry) -> None:
        """Make sure a claimed entry gets settled: wait briefly for its first caller, and once it is
        older than :data:`STALE_AFTER` (the first caller died), settle it here. Whoever settles it
        first on the wallet wins; the journal makes the other's attempt a no-op."""
        for _ in range(40):
            fresh = await self._repo.entry(entry.key)
            if fresh is None or fresh.state != "pending" or fresh.applied:
                return
            wallet = await self._repo.wallet(fresh.customer_id)
            if wallet is None or wallet.journaled(fresh.key):
                return
            if self._clock.now() >= fresh.created_at + STALE_AFTER:
                break
            await asyncio.sleep(0.05)
        else:
            return  # its first caller is still within its time: it settles the entry
        log.warning("completing ledger entry %s left half-written", fresh.key)
        try:
            await self._apply(fresh)
        except InsufficientPoints:
            await self._repo.refuse(fresh, InsufficientPoints.code)
        except (CustomerNotFound, CustomerInactive) as error:
            log.warning("ledger entry %s cannot be applied: %s", fresh.key, error.code)

    async def _apply(self, entry: LedgerEntry) -> LedgerEntry | None:
        """Apply the entry to its wallet: the entry as applied, or ``None`` if another caller settled
        it first. An earn's first attempt reads nothing: one conditional update."""
        for attempt in range(_VERSION_RETRIES):
            if entry.points > 0 and attempt == 0:
                if await self._repo.apply(entry, self._credit(entry), version=None):
                    return entry
                continue
            wallet = await self._wallet_or_raise(entry.customer_id)
            if wallet.journaled(entry.key):
                return None
            if entry.created_at < wallet.compacted_before:
                # Claimed before the journal's watermark and never applied (a crash long ago): give it
                # a new time, so the watermark guard protects it from here on, as any new entry.
                rebased = await self._repo.rebase(entry.key, entry.created_at, self._clock.now())
                if rebased is None:
                    return None  # applied (flagged) or settled by someone else meanwhile
                entry = rebased
            if entry.points > 0:
                if await self._repo.apply(entry, self._credit(entry), version=None):
                    return entry
                continue
            amount = _debit_amount(entry, wallet)
            change = WalletChange(
                balance=-amount,
                lifetime=entry.lifetime_delta,
                qualifying={entry.month: entry.qualifying_delta} if entry.month else {},
                lots=_draw(wallet.lots, amount, first=entry.reverses),
            )
            if await self._repo.apply(entry, change, version=wallet.version):
                if amount != -entry.points:
                    # Only the winner writes what was taken (the journal item has it too, and
                    # compaction copies it onto the entry should we die before this line).
                    await self._repo.set_points(entry.key, -amount)
                if len(wallet.journal) >= COMPACT_AT_LENGTH:
                    await self.compact(entry.customer_id)
                return entry.model_copy(update={"points": -amount})
        raise LoyaltyError(f"could not apply {entry.key}: the wallet kept changing")

    @staticmethod
    def _credit(entry: LedgerEntry) -> WalletChange:
        lot = Lot(
            key=entry.key, remaining=entry.points, expires_at=entry.expires_at, earned_at=entry.created_at
        )
        return WalletChange(
            balance=entry.points,
            lifetime=entry.lifetime_delta,
            qualifying={entry.month: entry.qualifying_delta} if entry.month else {},
            new_lot=lot,
        )

    async def _wallet_or_raise(self, customer_id: str) -> Wallet:
        wallet = await self._repo.wallet(customer_id)
        if wallet is None:
            raise CustomerNotFound("no such customer")
        if wallet.status != "active":
            raise CustomerInactive(f"customer is {wallet.status}")
        return wallet

    def _default_expiry(self, now: datetime) -> datetime | None:
        months = self._program.points_expiry.months
        return add_months(now, months) if months else None

    # ================================================================ reads
    async def balance(self, customer_id: str) -> int:
        wallet = await self._repo.wallet(customer_id)
        return wallet.balance if wallet is not None else 0

    async def wallet(self, customer_id: str) -> Wallet:
        wallet = await self._repo.wallet(customer_id)
        if wallet is None:
            raise CustomerNotFound("no such customer")
        return wallet

    async def expiring(self, customer_id: str, *, within: timedelta = timedelta(days=30)) -> int:
        """Points that expire within ``within`` from now (what the customer is warned about)."""
        wallet = await self.wallet(customer_id)
        return wallet.expiring_before(self._clock.now() + within)

    async def history(
        self, customer_id: str, *, limit: int = 20, before: tuple[datetime, str] | None = None
    ) -> list[LedgerEntry]:
        """Entries newest first, void ones left out; ``before`` is the (created_at, key) cursor."""
        return await self._repo.entries(customer_id, limit=max(1, min(limit, 100)), before=before)

    async def entry(self, key: str) -> LedgerEntry | None:
        return await self._repo.entry(key)

    # ================================================================ jobs
    async def expire_due(self, *, batch: int = 200) -> int:
        """Expire what is left of every lot past its expiry, one ``expire`` entry per lot."""
        now = self._clock.now()
        expired = 0
        for customer_id in await self._repo.customers_with_expired_lots(now, batch):
            wallet = await self._repo.wallet(customer_id)
            if wallet is None or wallet.status != "active":
                continue
            for lot in wallet.lots:
                if lot.expires_at is None or lot.expires_at > now or lot.remaining <= 0:
                    continue
                entry = LedgerEntry(
                    key=f"expire:{lot.key}",
                    customer_id=customer_id,
                    kind="expire",
                    points=-lot.remaining,
                    reason="points_expired",
                    ref={"lot": lot.key},
                    created_at=now,
                    reverses=lot.key,
                )
                try:
                    await self._run(entry)
                    expired += 1
                except (InsufficientPoints, IdempotencyConflict) as error:
                    log.warning("could not expire lot %s of %s: %s", lot.key, customer_id, error.code)
        return expired

    async def compact(self, customer_id: str) -> int:
        """Flag entries whose keys are older than :data:`COMPACT_AFTER` as applied, then drop them from
        the journal and raise the watermark (the order keeps every key's applied state knowable)."""
        wallet = await self._repo.wallet(customer_id)
        if wallet is None:
            return 0
        cutoff = self._clock.now() - COMPACT_AFTER
        old = [item for item in wallet.journal if item.at < cutoff]
        if not old:
            return 0
        # Entries are created before they are applied, so every dropped key's entry was created before
        # the watermark: an apply of one of them that raced this compaction is refused by the filter.
        watermark = max(item.at for item in old) + timedelta(microseconds=1)
        await self._repo.compact(customer_id, old, watermark)
        return len(old)

    async def repair_pending(self, *, older_than: timedelta = STALE_AFTER, batch: int = 500) -> int:
        """Apply every entry that a crash left claimed but not applied; returns how many were."""
        repaired = 0
        cutoff = self._clock.now() - older_than
        for entry in await self._repo.pending_entries(cutoff, batch):
            wallet = await self._repo.wallet(entry.customer_id)
            if wallet is None or wallet.journaled(entry.key):
                continue
            await self._settle(entry)
            repaired += 1
        return repaired

    async def maintain(self) -> dict[str, int]:
        """The periodic job: repair half-written entries, expire due lots, compact old journal items."""
        repaired = await self.repair_pending()
        expired = await self.expire_due()
        compacted = 0
        cutoff = self._clock.now() - COMPACT_AFTER
        for customer_id in await self._repo.customers_with_old_journal(cutoff, 500):
            compacted += await self.compact(customer_id)
        return {"repaired": repaired, "expired": expired, "compacted": compacted}

    async def reconcile(self, *, fix: bool = False) -> ReconcileReport:
        """Repair half-written entries, then prove ``balance == sum(applied entries)`` (and the same for
        the lifetime total) for every customer.

        :param fix: set a mismatched cached total to what the ledger says (the ledger is the truth).
        """
        repaired = await self.repair_pending()
        mismatched: list[tuple[str, int, int]] = []
        count = 0
        after: str | None = None
        while ids := await self._repo.customer_ids(after, 500):
            for customer_id in ids:
                count += 1
                wallet = await self._repo.wallet(customer_id)
                if wallet is None or wallet.status == "merging":
                    continue  # a merge in progress: `resume_merges` finishes it first
                journal = {item.key: item for item in wallet.journal}
                total = lifetime = 0
                for e in await self._repo.all_entries(customer_id):
                    item = journal.get(e.key)
                    if item is not None and not item.void:
                        total += item.points
                        lifetime += e.lifetime_delta
                    elif item is None and e.applied and e.state != "void":
                        total += e.points
                        lifetime += e.lifetime_delta
                if total != wallet.balance or lifetime != wallet.lifetime_earned:
                    mismatched.append((customer_id, wallet.balance, total))
                    if fix:
                        await self._repo.set_totals(customer_id, total, lifetime)
            after = ids[-1]
        return ReconcileReport(count, repaired, tuple(mismatched), fixed=fix and bool(mismatched))


def _check(points: int, key: str) -> None:
    if not isinstance(points, int) or isinstance(points, bool) or not 0 < points <= MAX_POINTS:
        raise InvalidAmount(f"points must be a whole number from 1 to {MAX_POINTS}")
    if not isinstance(key, str) or not key or len(key) > _KEY_MAX:
        raise InvalidAmount("an idempotency key is a non-empty string")


def _debit_amount(entry: LedgerEntry, wallet: Wallet) -> int:
    """What a debit takes now: an expiry what is left of its lot, a reversal what the balance still
    holds (points already spent cannot be taken back), anything else all of it or nothing."""
    amount = -entry.points
    if entry.kind == "expire":
        lot_left = next((lot.remaining for lot in wallet.lots if lot.key == entry.reverses), 0)
        return min(lot_left, wallet.balance)
    if entry.kind == "reverse":
        return min(amount, wallet.balance)
    if wallet.balance < amount:
        raise InsufficientPoints(f"balance {wallet.balance} < {amount}")
    return amount


def _refusal(code: str | None) -> LoyaltyError:
    if code == CustomerNotFound.code:
        return CustomerNotFound("no such customer")
    if code == CustomerInactive.code:
        return CustomerInactive("customer is not active")
    return InsufficientPoints("not enough points")


def _draw(lots: Sequence[Lot], amount: int, *, first: str | None = None) -> tuple[Lot, ...]:
    """Take ``amount`` from the lots: lot ``first`` (a reversed earn) first, then soonest expiry first
    (lots that never expire last). Emptied lots are dropped."""
    never = datetime.max.replace(tzinfo=UTC)
    order = sorted(lots, key=lambda lot: (lot.key != first, lot.expires_at or never, lot.earned_at, lot.key))
    left = amount
    kept: list[Lot] = []
    for lot in order:
        take = min(lot.remaining, left)
        left -= take
        if lot.remaining - take > 0:
            kept.append(lot.model_copy(update={"remaining": lot.remaining - take}))
    if left:
        raise InsufficientPoints("the lots do not cover the amount")
    kept.sort(key=lambda lot: (lot.expires_at or never, lot.earned_at, lot.key))
    return tuple(kept)


def local_month(moment: datetime) -> str:
    """The local (Hồ Chí Minh City) month of ``moment``, as ``YYYY-MM``: the qualifying points bucket."""
    return moment.astimezone(LOCAL_TZ).strftime("%Y-%m")


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year = moment.year + month // 12
    month = month % 12 + 1
    day = min(moment.day, [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
    return moment.replace(year=year, month=month, day=day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
