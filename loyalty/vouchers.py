"""Vouchers: codes issued from a program template, quoted against an order, redeemed once, released.

A template (``Program.voucher_templates``) holds the rules; an issued :class:`Voucher` is a snapshot of
them (name, kind, value, max discount, min spend, expiry), so changing the program never changes a voucher
a customer already holds. The code is the voucher's identity: 10 characters drawn with :mod:`secrets`
from an alphabet without the look-alikes 0/O/1/I/L (31**10, about 2**49.5 codes).

Every write is one conditional single-document update, so all of it is correct on a standalone MongoDB:

- **Redeem once.** ``issued → redeemed`` is an update whose filter also requires ``expires_at > now``
  (and the owner, when known); of any number of concurrent redeemers exactly one sees
  ``modified_count == 1``.
- **Issue idempotently.** The issue ``key`` has a unique index: concurrent issues with one key insert
  one document; the others read it back.
- **Issue limits** (``per_customer_limit``, ``total_limit``) live in counter documents
  (``voucher_counters``). Taking a slot is ``$inc`` with ``count < limit`` and ``keys != key`` in the
  filter, which also pushes the issue key into ``keys``: the slot belongs *to the key*, so a retried or
  concurrent issue with the same key never takes a second one, and "the key is in ``keys``" is exactly
  "the key's slot is counted" (``keys`` never outgrows the limit). A limited voucher is first inserted as
  ``pending``; once every counter is taken (or one is full) a single conditional update moves it to
  ``issued`` or ``refused``. That transition is the one decision; whoever loses it follows it. A refused
  issue gives its slots back (``$inc: -1`` and ``$pull`` in one update conditional on the key holding
  one, so it happens once). Any attempt with the key, a retry after a crash included, resumes from the
  stored state; a crash leaves at most a slot reserved for a pending key that is never retried.

``pending`` and ``refused`` vouchers are bookkeeping: they are never listed, quoted or redeemed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from loyalty.clock import Clock
from loyalty.errors import (
    IdempotencyConflict,
    InvalidAmount,
    LimitReached,
    MinSpendNotMet,
    VoucherExpired,
    VoucherNotFound,
    VoucherNotYours,
    VoucherTemplateNotFound,
    VoucherUsed,
    VoucherVoid,
)
from loyalty.program import Program, VoucherTemplate

CODE_ALPHABET: Final = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
CODE_LENGTH: Final = 10
_CODE_CHARS: Final = frozenset(CODE_ALPHABET)
_SEPARATORS: Final = str.maketrans("", "", " -_.\t")
# Generating a code that already exists is a one-in-a-billion event; a few retries are plenty.
_CODE_ATTEMPTS: Final = 8
_KEY_MAX: Final = 200

VoucherStatus = Literal["pending", "issued", "redeemed", "expired", "void", "refused"]
# The statuses a customer or a staff member ever sees.
VISIBLE_STATUSES: Final[tuple[VoucherStatus, ...]] = ("issued", "redeemed", "expired", "void")


class Take(StrEnum):
    """The outcome of reserving a slot of a limited counter (voucher limits, reward stock) for a key."""

    FRESH = "fresh"  # this call reserved it
    HELD = "held"  # the key already holds one (a retry, or a concurrent call with the same key)
    FULL = "full"  # no slot left


class Voucher(BaseModel):
    """An issued voucher: the template's rules as they were at issue, and its redemption."""

    model_config = ConfigDict(frozen=True)

    code: str
    customer_id: str
    template_id: str
    name: str
    kind: Literal["fixed", "percent"]
    value: int
    max_discount: int | None
    min_spend: int
    issued_at: datetime
    expires_at: datetime
    status: VoucherStatus
    key: str  # the issue's idempotency key
    source: str  # who issued it: "welcome", "tier", "reward", "referral", "checkin", "staff"...
    redeemed_at: datetime | None = None
    redeemed_by: str | None = None  # "staff:<id>", "miniapp"...
    order_id: str | None = None
    order_total: int | None = None
    discount: int | None = None  # what the redemption took off the order
    void_reason: str | None = None

    def status_at(self, now: datetime) -> VoucherStatus:
        """The status as people see it: an issued voucher past its expiry is expired, swept or not."""
        if self.status == "issued" and self.expires_at <= now:
            return "expired"
        return self.status

    def discount_for(self, order_total: int) -> int:
        """The discount on an order of ``order_total`` VND: never above the total, nor the cap."""
        if self.kind == "fixed":
            discount = self.value
        else:
            discount = order_total * self.value // 100
            if self.max_discount is not None:
                discount = min(discount, self.max_discount)
        return max(0, min(discount, order_total))

    @property
    def display_code(self) -> str:
        """The code as printed for people, in two halves: ``ABCDE-FGHJK`` (input accepts either)."""
        return display_code(self.code)


class VoucherQuote(BaseModel):
    """What a voucher takes off an order (a quote before checkout, or the redemption's result)."""

    model_config = ConfigDict(frozen=True)

    voucher: Voucher
    discount: int


@dataclass(frozen=True, slots=True)
class Counter:
    """One issue-limit counter: a template's total, or a template's count for one customer."""

    id: str
    template_id: str
    limit: int
    customer_id: str | None = None


class VoucherRepository(Protocol):
    """The storage vouchers need (``storage.vouchers.MongoVoucherRepository``)."""

    async def insert(self, voucher: Voucher) -> Voucher | None:
        """Insert a new voucher; ``None`` if its code exists; the stored voucher if its key exists."""
        ...

    async def get(self, code: str) -> Voucher | None: ...

    async def by_key(self, key: str) -> Voucher | None: ...

    async def list_for(
        self, customer_id: str, statuses: tuple[VoucherStatus, ...], *, now: datetime, expired: bool | None
    ) -> list[Voucher]:
        """Newest first; ``expired`` True/False keeps only vouchers whose expiry is past/ahead."""
        ...

    async def decide(self, code: str, status: Literal["issued", "refused"]) -> bool:
        """``pending → status``; True if this call made the transition."""
        ...

    async def redeem(
        self,
        code: str,
        *,
        customer_id: str | None,
        now: datetime,
        by: str,
        order_id: str | None,
        order_total: int,
        discount: int,
    ) -> bool:
        """``issued → redeemed`` if not expired at ``now`` (and owned by ``customer_id`` when given)."""
        ...

    async def release(self, code: str, *, order_id: str) -> bool:
        """``redeemed → issued`` if ``order_id`` redeemed it; True if this call gave it back."""
        ...

    async def void(self, code: str, *, reason: str, now: datetime, by: str) -> bool:
        """``issued → void``; True if this call voided it."""
        ...

    async def expire_due(self, now: datetime) -> int: ...

    async def take(self, counter: Counter, key: str) -> Take: ...

    async def give_back(self, counter: Counter, key: str) -> None:
        """The issue was refused: give the slot the key holds back (nothing if it holds none)."""
        ...

    async def reassign_customer(self, from_id: str, into_id: str) -> int: ...


def normalize_code(raw: object) -> str:
    """The canonical form of a code typed by staff or a customer: upper-case, without spaces or dashes.

    Anything that cannot be a code (not a string, such as an operator document ``{"$ne": ""}`` from a
    JSON body; a wrong length; a character outside the alphabet) raises :class:`VoucherNotFound`
    before any query is built from it.
    """
    if not isinstance(raw, str):
        raise VoucherNotFound("a voucher code is text")
    code = raw.translate(_SEPARATORS).upper()
    if len(code) != CODE_LENGTH or not _CODE_CHARS.issuperset(code):
        raise VoucherNotFound(f"no voucher with code {raw[:40]!r}")
    return code


def require_text(value: object, what: str, *, optional: bool = False, limit: int = _KEY_MAX) -> None:
    """Ids and keys reach queries as values: anything but a short non-empty string is refused here."""
    if optional and value is None:
        return
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidAmount(f"{what} must be a non-empty string of at most {limit} characters")


def display_code(code: str) -> str:
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def counters_for(template: VoucherTemplate, customer_id: str) -> tuple[Counter, ...]:
    """The counters an issue of ``template`` to ``customer_id`` must take, total first."""
    counters: list[Counter] = []
    if template.total_limit is not None:
        counters.append(Counter(f"total:{template.id}", template.id, template.total_limit))
    if template.per_customer_limit is not None:
        counters.append(
            Counter(
                f"customer:{template.id}:{customer_id}",
                template.id,
                template.per_customer_limit,
                customer_id=customer_id,
            )
        )
    return tuple(counters)


class VoucherService:
    def __init__(self, repo: VoucherRepository, program: Program, clock: Clock) -> None:
        self.repo = repo
        self.program = program
        self.clock = clock

    # ------------------------------------------------------------------------------------------ issue
    async def issue(self, customer_id: str, template_id: str, *, key: str, source: str) -> Voucher:
        """Issue a voucher of ``template_id``; the same ``key`` returns the same voucher.

        Raises :class:`VoucherTemplateNotFound`, :class:`LimitReached` (also on a retry of a refused
        key) and :class:`IdempotencyConflict` (the key was used for another customer or template).
        """
        require_text(customer_id, "a customer id")
        require_text(key, "an idempotency key")
        require_text(source, "a source")
        template = self.program.voucher_template(template_id) if isinstance(template_id, str) else None
        if template is None:
            raise VoucherTemplateNotFound(f"no voucher template {template_id!r}")
        existing = await self.repo.by_key(key)
        if existing is None:
            existing = await self._insert_new(customer_id, template, key=key, source=source)
        if existing.customer_id != customer_id or existing.template_id != template_id:
            raise IdempotencyConflict(f"voucher key {key!r} was used for another customer or template")
        counters = counters_for(template, existing.customer_id)
        if existing.status == "pending":
            return await self._settle_pending(existing, counters)
        if existing.status == "refused":
            await self._give_back_all(counters, key)  # a crash may have come between decision and give-back
            raise LimitReached(f"voucher template {template_id!r} reached its issue limit")
        return existing

    async def _insert_new(
        self, customer_id: str, template: VoucherTemplate, *, key: str, source: str
    ) -> Voucher:
        now = self.clock.now()
        limited = template.total_limit is not None or template.per_customer_limit is not None
        for _ in range(_CODE_ATTEMPTS):
            voucher = Voucher(
                code=new_code(),
                customer_id=customer_id,
                template_id=template.id,
                name=template.name,
                kind=template.kind,
                value=template.value,
                max_discount=template.max_discount,
                min_spend=template.min_spend,
                issued_at=now,
                expires_at=now + timedelta(days=template.validity_days),
                status="pending" if limited else "issued",
                key=key,
                source=source,
            )
            stored = await self.repo.insert(voucher)
            if stored is not None:
                return stored
        raise RuntimeError(f"no free voucher code after {_CODE_ATTEMPTS} attempts")

    async def _settle_pending(self, voucher: Voucher, counters: tuple[Counter, ...]) -> Voucher:
        outcome: Literal["issued", "refused"] = "issued"
        for counter in counters:
            if await self.repo.take(counter, voucher.key) is Take.FULL:
                outcome = "refused"
                break
        await self.repo.decide(voucher.code, outcome)
        decided = await self.repo.get(voucher.code)
        if decided is None or decided.status == "pending":  # pragma: no cover - a decision is final
            raise RuntimeError(f"voucher {voucher.code} stayed pending")
        if decided.status == "refused":
            await self._give_back_all(counters, voucher.key)
            raise LimitReached(f"voucher template {voucher.template_id!r} reached its issue limit")
        return decided

    async def _give_back_all(self, counters: tuple[Counter, ...], key: str) -> None:
        for counter in counters:
            await self.repo.give_back(counter, key)

    # ------------------------------------------------------------------------------------------ read
    async def get(self, code: object) -> Voucher:
        """The voucher with this code (typed loosely: case, spaces and dashes do not matter)."""
        voucher = await self.repo.get(normalize_code(code))
        if voucher is None or voucher.status not in VISIBLE_STATUSES:
            raise VoucherNotFound(f"no voucher with code {code!r}")
        return voucher.model_copy(update={"status": voucher.status_at(self.clock.now())})

    async def by_key(self, key: str) -> Voucher | None:
        """The voucher issued with this idempotency key, in whatever state (rewards use it to undo)."""
        return await self.repo.by_key(key)

    async def list_for(self, customer_id: str, status: VoucherStatus | None = None) -> list[Voucher]:
        """A customer's vouchers, newest first; an issued voucher past its expiry is listed as expired."""
        require_text(customer_id, "a customer id")
        now = self.clock.now()
        if status is None:
            found = await self.repo.list_for(customer_id, VISIBLE_STATUSES, now=now, expired=None)
        elif status == "issued":
            found = await self.repo.list_for(customer_id, ("issued",), now=now, expired=False)
        elif status == "expired":
            swept = await self.repo.list_for(customer_id, ("expired",), now=now, expired=None)
            unswept = await self.repo.list_for(customer_id, ("issued",), now=now, expired=True)
            found = sorted([*swept, *unswept], key=lambda v: (v.issued_at, v.code), reverse=True)
        elif status in VISIBLE_STATUSES:
            found = await self.repo.list_for(customer_id, (status,), now=now, expired=None)
        else:
            return []
        return [v.model_copy(update={"status": v.status_at(now)}) for v in found]

    # ------------------------------------------------------------------------------------------ use
    async def quote(self, code: object, *, customer_id: str, order_total: int) -> VoucherQuote:
        """What the voucher takes off an order of ``order_total`` VND for ``customer_id``, if it can.

        Raises voucher_not_found, voucher_not_yours, voucher_void, voucher_used, voucher_expired,
        min_spend_not_met (checked in that order: a stranger learns nothing about someone else's voucher).
        """
        require_text(customer_id, "a customer id")
        voucher = await self.repo.get(normalize_code(code))
        voucher = self._check(voucher, code, customer_id=customer_id, order_total=order_total)
        return VoucherQuote(voucher=voucher, discount=voucher.discount_for(order_total))

    async def redeem(
        self,
        code: object,
        *,
        customer_id: str | None,
        order_total: int,
        order_id: str | None = None,
        by: str,
    ) -> VoucherQuote:
        """Redeem the voucher once, against an order of ``order_total`` VND.

        At the counter staff type the code they were shown (``customer_id=None``: whoever holds the code
        may use it); at Mini App checkout the customer and the order are known. A retry by the same
        order returns the first redemption. Of concurrent redeemers exactly one succeeds; the others get
        ``voucher_used``.
        """
        require_text(customer_id, "a customer id", optional=True)
        require_text(order_id, "an order id", optional=True)
        require_text(by, "who redeems")
        for _ in range(3):
            voucher = await self.repo.get(normalize_code(code))
            if (
                voucher is not None
                and order_id is not None
                and voucher.status == "redeemed"
                and voucher.order_id == order_id
                and (customer_id is None or voucher.customer_id == customer_id)
            ):
                return VoucherQuote(voucher=voucher, discount=voucher.discount or 0)
            voucher = self._check(voucher, code, customer_id=customer_id, order_total=order_total)
            discount = voucher.discount_for(order_total)
            if await self.repo.redeem(
                voucher.code,
                customer_id=customer_id,
                now=self.clock.now(),
                by=by,
                order_id=order_id,
                order_total=order_total,
                discount=discount,
            ):
                redeemed = await self.repo.get(voucher.code)
                assert redeemed is not None
                return VoucherQuote(voucher=redeemed, discount=discount)
            # Someone changed it between the read and the update: the next read says what happened.
        raise VoucherUsed(f"voucher {code!r} is changing under concurrent use")

    async def release(self, code: object, *, order_id: str) -> bool:
        """Give back a voucher that ``order_id`` redeemed (the order was cancelled or refunded).

        True if this call gave it back; False if there was nothing to give back (already released, never
        redeemed, or redeemed by another order, which this order must not undo).
        """
        normalized = normalize_code(code)
        require_text(order_id, "an order id")
        if await self.repo.get(normalized) is None:
            raise VoucherNotFound(f"no voucher with code {code!r}")
        return await self.repo.release(normalized, order_id=order_id)

    async def void(self, code: object, *, reason: str, by: str) -> bool:
        """Cancel an unused voucher (staff, or a reward rolled back); True if this call voided it."""
        normalized = normalize_code(code)
        if await self.repo.get(normalized) is None:
            raise VoucherNotFound(f"no voucher with code {code!r}")
        return await self.repo.void(normalized, reason=reason, now=self.clock.now(), by=by)

    async def expire_due(self) -> int:
        """Mark issued vouchers past their expiry as expired (a job); how many it marked."""
        return await self.repo.expire_due(self.clock.now())

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """Move a merged customer's vouchers and issue counts to the survivor (idempotent)."""
        return await self.repo.reassign_customer(from_id, into_id)

    # ------------------------------------------------------------------------------------------ checks
    def _check(
        self, voucher: Voucher | None, code: object, *, customer_id: str | None, order_total: int
    ) -> Voucher:
        if isinstance(order_total, bool) or not isinstance(order_total, int) or order_total < 0:
            raise InvalidAmount("an order total is a whole, non-negative number of VND")
        if voucher is None or voucher.status not in VISIBLE_STATUSES:
            raise VoucherNotFound(f"no voucher with code {code!r}")
        if customer_id is not None and voucher.customer_id != customer_id:
            raise VoucherNotYours("this voucher belongs to another customer")
        status = voucher.status_at(self.clock.now())
        if status == "void":
            raise VoucherVoid("this voucher was cancelled")
        if status == "redeemed":
            raise VoucherUsed("this voucher was already used")
        if status == "expired":
            raise VoucherExpired(f"this voucher expired at {voucher.expires_at.isoformat()}")
        if order_total < voucher.min_spend:
            raise MinSpendNotMet(
                f"the order total {order_total} is below the minimum spend {voucher.min_spend}"
            )
        return voucher
