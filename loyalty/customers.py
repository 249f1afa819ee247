"""Customers and their identities: one customer across Zalo, Messenger and the Mini App, joined by phone.

A customer is one document reachable from several identities, ``(zalo, oa_user_id)``,
``(messenger, psid)``, ``(miniapp, zalo_user_id)``. Identities are unique (their own collection, keyed
``channel:user_id``), so two concurrent first messages of one person create one customer.

**Merging.** When a phone number turns out to belong to two customers (someone chatted on Messenger,
then shares the same phone on Zalo), they are merged into the *older* one: identities, wallet (balance,
lots, qualifying points), ledger entries, vouchers, orders, referral links and everything else a
:class:`CustomerOwned` repository holds move over, and an audit record (``merges``) says what moved. A
merge is a sequence of idempotent steps recorded in its audit record, so a crash part-way is finished
by running it again (:meth:`CustomerService.resume_merges`, also called by ``loyalty reconcile``). The
merged customer stays behind as ``status: merged`` with ``merged_into``, so an old id still resolves.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from loyalty.clock import Clock
from loyalty.errors import CustomerInactive, CustomerNotFound, InvalidPhone, LoyaltyError
from loyalty.ids import new_id
from loyalty.phone import normalize_phone
from loyalty.pii import mask_phone
from loyalty.program import Program

log = logging.getLogger("loyalty.customers")

CustomerStatus = Literal["active", "merging", "merged", "erased"]
Gender = Literal["male", "female", "other"]
# Referral codes: short, typed by people, no 0/O/1/I/L.
REFERRAL_ALPHABET: Final = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
REFERRAL_CODE_LENGTH: Final = 6
_MAX_MERGE_HOPS: Final = 8
_CHANNEL_PATTERN: Final = r"^[a-z][a-z0-9_]{1,19}$"


class Identity(BaseModel):
    """Who a platform says the customer is. ``user_id`` is opaque (never parsed as a number)."""

    model_config = ConfigDict(frozen=True)

    channel: str = Field(pattern=_CHANNEL_PATTERN)
    user_id: str = Field(min_length=1, max_length=128)

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.user_id}"


class Customer(BaseModel):
    """What the services and entry points see of a customer (the wallet's internals stay in storage)."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: datetime
    status: CustomerStatus = "active"
    merged_into: str | None = None
    phone: str | None = None
    phone_verified_at: datetime | None = None
    name: str | None = None
    birthday: date | None = None
    gender: Gender | None = None
    locale: str | None = None
    identities: tuple[Identity, ...] = ()
    following: dict[str, bool] = Field(default_factory=dict)
    last_interaction: dict[str, datetime] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    referral_code: str = ""
    tier: str = ""
    tier_since: datetime | None = None
    last_order_at: datetime | None = None
    balance: int = 0
    lifetime_earned: int = 0

    @property
    def masked_phone(self) -> str | None:
        return mask_phone(self.phone) if self.phone else None


class ProfileUpdate(BaseModel):
    """The profile fields a customer or staff may change. Unset fields are left as they are."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=80)
    birthday: date | None = None
    gender: Gender | None = None
    locale: Literal["vi", "en"] | None = None


@dataclass(frozen=True, slots=True)
class PhoneAttached:
    """The customer after a phone was attached; ``merged_from`` names customers merged into it."""

    customer: Customer
    merged_from: tuple[str, ...] = ()
    already_known: bool = False  # the customer already had this phone


class MergeRecord(BaseModel):
    """The audit entry of one merge (``merges`` collection)."""

    id: str  # "<from>><into>"
    from_id: str
    into_id: str
    reason: str
    started_at: datetime
    finished_at: datetime | None = None
    steps: tuple[str, ...] = ()
    moved: dict[str, int] = Field(default_factory=dict)


class CustomerOwned(Protocol):
    """A repository of documents that belong to a customer; merging moves them to the survivor."""

    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """Move every document of ``from_id`` to ``into_id``; idempotent; returns how many moved."""
        ...


class CustomerRepository(Protocol):
    async def get(self, customer_id: str) -> Customer | None: ...
    async def customer_for_identity(self, identity_key: str) -> str | None: ...
    async def claim_identity(self, identity_key: str, customer_id: str, at: datetime) -> bool:
        """Record that the identity belongs to ``customer_id``; False when it already belongs to someone."""
        ...

    async def insert(self, customer: Customer) -> bool:
        """Insert a new customer (False when the id exists already)."""
        ...

    async def referral_code_taken(self, code: str) -> bool: ...
    async def by_phone(self, phone: str) -> Customer | None: ...
    async def by_referral_code(self, code: str) -> Customer | None: ...
    async def set_phone(self, customer_id: str, phone: str, at: datetime) -> bool:
        """Set the phone of an active customer; False when another active customer has it (unique)."""
        ...

    async def update_profile(self, customer_id: str, fields: Mapping[str, Any]) -> bool: ...
    async def set_following(self, customer_id: str, channel: str, following: bool, at: datetime) -> None: ...
    async def touch(self, customer_id: str, channel: str, at: datetime) -> None: ...
    async def record_order(self, customer_id: str, at: datetime) -> None: ...
    async def add_tags(self, customer_id: str, tags: Sequence[str]) -> None: ...
    # merging
    async def start_merge(self, record: MergeRecord) -> MergeRecord: ...
    async def merge_step_done(self, merge_id: str, step: str, moved: int) -> None: ...
    async def finish_merge(self, merge_id: str, at: datetime) -> None: ...
    async def unfinished_merges(self) -> list[MergeRecord]: ...
    async def freeze(self, from_id: str, into_id: str) -> bool: ...
    async def move_wallet(self, from_id: str, into_id: str) -> int: ...
    async def move_identities(self, from_id: str, into_id: str) -> int: ...
    async def move_profile(self, from_id: str, into_id: str, at: datetime) -> int: ...
    async def mark_merged(self, from_id: str, into_id: str, at: datetime) -> None: ...


# The steps of a merge, in order. Each is idempotent; a resumed merge redoes the ones not recorded.
MERGE_STEPS: Final = ("freeze", "wallet", "ledger", "identities", "profile", "owned", "merged")


class CustomerService:
    """Customers, identities and phones. ``owned`` are the repositories a merge must move."""

    def __init__(
        self,
        repo: CustomerRepository,
        program: Program,
        clock: Clock,
        *,
        ledger_owner: CustomerOwned | None = None,
        owned: Sequence[CustomerOwned] = (),
    ) -> None:
        self._repo = repo
        self._program = program
        self._clock = clock
        self._ledger_owner = ledger_owner
        self._owned = list(owned)

    def add_owned(self, repository: CustomerOwned) -> None:
        """Register another repository whose documents a merge must move (vouchers, orders...)."""
        self._owned.append(repository)

    # ---------------------------------------------------------------- look-ups
    async def get(self, customer_id: str) -> Customer:
        """The customer, following merges to the survivor. :class:`CustomerNotFound` otherwise."""
        if not isinstance(customer_id, str) or not customer_id:
            raise CustomerNotFound("no such customer")
        current = await self._repo.get(customer_id)
        for _ in range(_MAX_MERGE_HOPS):
            if current is None:
                raise CustomerNotFound("no such customer")
            if current.status not in ("merged", "merging") or current.merged_into is None:
                return current
            current = await self._repo.get(current.merged_into)
        raise CustomerNotFound("merge chain too long")

    async def get_active(self, customer_id: str) -> Customer:
        """Like :meth:`get`, but an erased customer is refused."""
        customer = await self.get(customer_id)
        if customer.status != "active":
            raise CustomerInactive(f"customer is {customer.status}")
        return customer

    async def by_identity(self, identity: Identity) -> Customer | None:
        customer_id = await self._repo.customer_for_identity(identity.key)
        if customer_id is None:
            return None
        try:
            return await self.get(customer_id)
        except CustomerNotFound:
            return None

    async def by_phone(self, raw_phone: str) -> Customer | None:
        try:
            phone = normalize_phone(raw_phone, mobile_only=False)
        except InvalidPhone:
            return None
        return await self._repo.by_phone(phone)

    async def by_referral_code(self, code: str) -> Customer | None:
        raw: object = code  # untrusted input: a JSON body may carry anything here
        if not isinstance(raw, str):
            return None
        cleaned = raw.strip().upper().replace("-", "").replace(" ", "")
        if not cleaned or len(cleaned) > 16 or not cleaned.isalnum():
            return None
        customer = await self._repo.by_referral_code(cleaned)
        return await self.get(customer.id) if customer is not None else None

    # ---------------------------------------------------------------- creation
    async def get_or_create(self, identity: Identity, *, name: str | None = None) -> tuple[Customer, bool]:
        """The customer of ``identity``, created when new. Concurrent calls for one identity create one.

        The identity is claimed first (unique key), then the customer document written: a crash in
        between leaves an identity whose customer is missing, which the next call creates.
        """
        for _ in range(3):
            existing_id = await self._repo.customer_for_identity(identity.key)
            if existing_id is not None:
                if (found := await self._repo.get(existing_id)) is None:
                    created = await self._insert_new(existing_id, identity, name)
                    return await self.get(existing_id), created
                return await self.get(found.id), False
            customer_id = new_id()
            if await self._repo.claim_identity(identity.key, customer_id, self._clock.now()):
                await self._insert_new(customer_id, identity, name)
                return await self.get(customer_id), True
        raise LoyaltyError("could not create the customer (identity contention)")

    async def _insert_new(self, customer_id: str, identity: Identity, name: str | None) -> bool:
        now = self._clock.now()
        customer = Customer(
            id=customer_id,
            created_at=now,
            name=(name or None) and name.strip()[:80],
            identities=(identity,),
            last_interaction={identity.channel: now},
            referral_code=await self._new_referral_code(),
            tier=self._program.tiers.levels[0].id,
            tier_since=now,
        )
        inserted = await self._repo.insert(customer)
        if inserted:
            log.info("new customer %s from %s", customer_id, identity.channel)
        return inserted

    async def _new_referral_code(self) -> str:
        for _ in range(10):
            code = "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))
            if not await self._repo.referral_code_taken(code):
                return code
        # 31^6 ≈ 887 million codes: ten collisions in a row mean a very large program; go longer.
        return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH + 3))

    # ---------------------------------------------------------------- phone and merge
    async def attach_phone(self, customer_id: str, raw_phone: str, *, source: str) -> PhoneAttached:
        """Attach a (mobile) phone number. When another customer already has it, merge the two into
        the older one, which then carries the phone. :class:`InvalidPhone` for a bad number."""
        phone = normalize_phone(raw_phone)
        customer = await self.get_active(customer_id)
        if customer.phone == phone:
            return PhoneAttached(customer, already_known=True)
        for _ in range(3):
            owner = await self._repo.by_phone(phone)
            if owner is not None and owner.id != customer.id:
                older, newer = sorted((owner, customer), key=lambda c: (c.created_at, c.id))
                await self.merge(newer.id, older.id, reason=f"phone shared ({source})")
                survivor = await self.get(older.id)
                if survivor.phone != phone:
                    await self._repo.set_phone(survivor.id, phone, self._clock.now())
                log.info("merged %s into %s: same phone %s", newer.id, older.id, mask_phone(phone))
                return PhoneAttached(await self.get(older.id), merged_from=(newer.id,))
            if await self._repo.set_phone(customer.id, phone, self._clock.now()):
                return PhoneAttached(await self.get(customer.id))
            # another customer took this phone between our look-up and our write: merge with them
        raise LoyaltyError("could not attach the phone (contention)")

    async def merge(self, from_id: str, into_id: str, *, reason: str) -> MergeRecord:
        """Merge ``from_id`` into ``into_id``; idempotent and resumable (see the module docstring)."""
        if from_id == into_id:
            raise LoyaltyError("cannot merge a customer into itself")
        record = await self._repo.start_merge(
            MergeRecord(
                id=f"{from_id}>{into_id}",
                from_id=from_id,
                into_id=into_id,
                reason=reason,
                started_at=self._clock.now(),
            )
        )
        return await self._run_merge(record)

    async def resume_merges(self) -> int:
        """Finish every merge a crash left half-way; returns how many were resumed."""
        pending = await self._repo.unfinished_merges()
        for record in pending:
            log.warning("resuming the merge of %s into %s", record.from_id, record.into_id)
            await self._run_merge(record)
        return len(pending)

    async def _run_merge(self, record: MergeRecord) -> MergeRecord:
        done = set(record.steps)
        moved = dict(record.moved)
        for step in MERGE_STEPS:
            if step in done:
                continue
            count = await self._merge_step(step, record.from_id, record.into_id)
            moved[step] = count
            await self._repo.merge_step_done(record.id, step, count)
        await self._repo.finish_merge(record.id, self._clock.now())
        return record.model_copy(update={"steps": MERGE_STEPS, "moved": moved})

    async def _merge_step(self, step: str, from_id: str, into_id: str) -> int:
        now = self._clock.now()
        if step == "freeze":
            # From here on the source's wallet refuses changes: what the next step moves is final.
            return int(await self._repo.freeze(from_id, into_id))
        if step == "wallet":
            return await self._repo.move_wallet(from_id, into_id)
        if step == "ledger":
            return await self._ledger_owner.reassign_customer(from_id, into_id) if self._ledger_owner else 0
        if step == "identities":
            return await self._repo.move_identities(from_id, into_id)
        if step == "profile":
            return await self._repo.move_profile(from_id, into_id, now)
        if step == "owned":
            total = 0
            for repository in self._owned:
                total += await repository.reassign_customer(from_id, into_id)
            return total
        await self._repo.mark_merged(from_id, into_id, now)
        return 1

    # ---------------------------------------------------------------- profile and activity
    async def update_profile(self, customer_id: str, update: ProfileUpdate) -> Customer:
        customer = await self.get_active(customer_id)
        fields = update.model_dump(exclude_unset=True, exclude_none=True)
        if fields:
            await self._repo.update_profile(customer.id, fields)
        return await self.get(customer.id)

    async def set_following(self, identity: Identity, following: bool) -> Customer:
        """Follow/unfollow of the OA or Page (campaigns message followers only)."""
        customer, _ = await self.get_or_create(identity)
        await self._repo.set_following(customer.id, identity.channel, following, self._clock.now())
        return await self.get(customer.id)

    async def touch(self, customer_id: str, channel: str) -> None:
        """Record the customer's last interaction on ``channel`` (messaging windows, win-back)."""
        await self._repo.touch(customer_id, channel, self._clock.now())

    async def record_order(self, customer_id: str, at: datetime) -> None:
        customer = await self.get(customer_id)
        await self._repo.record_order(customer.id, at)

    async def add_tags(self, customer_id: str, tags: Sequence[str]) -> None:
        customer = await self.get(customer_id)
        await self._repo.add_tags(customer.id, [t.strip()[:40] for t in tags if t.strip()])
