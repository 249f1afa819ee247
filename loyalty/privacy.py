"""Personal data: consent per purpose, an export of everything held about a customer, and erasure.

Vietnam's Law 91/2025/QH15 on personal data protection (in force from 2026-01-01) and Decree 356/2025
ask a brand to process personal data for purposes the customer agreed to, to be able to show that
agreement (what, when, through which channel, with which text), to honour a withdrawal, to give the
customer their data, and to delete it on request, keeping only what another law requires (accounting
keeps the ledger's amounts).

**Consent** is an append-only history of acts per purpose (``marketing_zalo``, ``terms``...): a record
says given or withdrawn, when, on which channel, which version of the consent text was shown and what
recorded it (a chat button, a Mini App form, staff). The current state of a purpose is its latest
record. Every field is a code, never free text, so consent records hold no personal data beyond the
customer's id. An act that would not change the current state (a retried "given" for the same text
version, a withdrawal of something not given) is not recorded again: handlers run at least once, and
the history should show what the customer did, not how often a webhook was retried.

Records of one customer and purpose are numbered (``seq``) under a unique index, so two concurrent
acts cannot both be the next one: the loser re-reads and decides again (optimistic concurrency, no
transaction needed). ``origin_id`` is the customer a record was written for and never changes, so the
numbering stays unique after a merge moves the records to the surviving customer.

**Export and erasure** go through every :class:`PersonalDataHolder` (customers and identities, ledger,
vouchers, orders, consents...): the export gathers what each holds, the erasure asks each to delete or
anonymise. An erasure is recorded in ``erasures`` before it starts and after each holder, so a crash
part-way is finished by calling :meth:`PrivacyService.erase` again (or ``resume_erasures``).
The record holds no personal data: the customer's id, codes for who asked and why, and counts.

The services take a resolved customer id: callers follow merges first (``CustomerService.get``).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final, Literal, Protocol, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loyalty.clock import Clock
from loyalty.errors import CustomerInactive, InvalidConsent, InvalidErasure, LoyaltyError
from loyalty.ids import new_id

log = logging.getLogger("loyalty.privacy")

# The purposes the product asks consent for. Others may be added (a code: lowercase, digits, "_").
TERMS: Final = "terms"  # the program's terms and the privacy notice
MARKETING_ZALO: Final = "marketing_zalo"  # promotional messages in the Zalo OA chat
MARKETING_MESSENGER: Final = "marketing_messenger"  # promotional messages on Messenger
MARKETING_ZNS: Final = "marketing_zns"  # Zalo Notification Service messages to the phone number
PURPOSES: Final = (TERMS, MARKETING_ZALO, MARKETING_MESSENGER, MARKETING_ZNS)

EXPORT_FORMAT: Final = "social-loyalty/personal-data-export"
EXPORT_VERSION: Final = 1
_MAX_ATTEMPTS: Final = 10

_CODE: Final = r"^[a-z][a-z0-9_]{1,39}$"
_CHANNEL: Final = r"^[a-z][a-z0-9_]{1,19}$"
_TEXT_VERSION: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"  # "2026-01", "v3", "terms-1.2"
_SOURCE: Final = r"^[a-z][a-z0-9_.:-]{1,59}$"  # "chat_button", "miniapp_form", "staff:<staff_id>"

ConsentAction = Literal["given", "withdrawn"]


class ConsentRecord(BaseModel):
    """One act of consent or withdrawal, as recorded (``consents`` collection). Never changed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    customer_id: str  # the customer it belongs to now (a merge moves it)
    origin_id: str  # the customer it was recorded for (never changes)
    purpose: str = Field(pattern=_CODE)
    action: ConsentAction
    at: datetime
    channel: str = Field(pattern=_CHANNEL)
    text_version: str | None = Field(default=None, pattern=_TEXT_VERSION)  # None for a withdrawal
    source: str = Field(pattern=_SOURCE)
    seq: int = Field(ge=1)  # 1, 2, 3... per (origin_id, purpose): the order of acts


class ConsentState(BaseModel):
    """The current state of one purpose: its latest record."""

    model_config = ConfigDict(frozen=True)

    purpose: str
    status: ConsentAction
    at: datetime
    channel: str
    text_version: str | None  # the text agreed to; for a withdrawal, the one last agreed to
    source: str

    @property
    def given(self) -> bool:
        return self.status == "given"


class ErasureRecord(BaseModel):
    """The audit entry of one erasure (``erasures`` collection): codes and counts, no personal data."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    requested_by: str  # "customer", "staff:<staff_id>"
    reason: str  # "customer_request", "staff_request", "legal_order"...
    requested_at: datetime
    finished_at: datetime | None = None
    erased: dict[str, int] = Field(default_factory=dict)  # holder name -> documents erased or anonymised

    @property
    def done(self) -> bool:
        return self.finished_at is not None


class PersonalDataHolder(Protocol):
    """A repository that stores personal data of customers: it can hand it over and erase it.

    ``export_customer`` returns plain data (dicts, lists, str, int, bool, None, datetime, date,
    Decimal): what the customer would need to see everything the brand holds. ``erase_customer``
    deletes the customer's personal data or anonymises it where a record must stay (the ledger keeps
    amounts for accounting); it is idempotent and returns how many documents it changed.
    """

    @property
    def name(self) -> str: ...

    async def export_customer(self, customer_id: str) -> list[dict[str, Any]] | dict[str, Any]: ...

    async def erase_customer(self, customer_id: str) -> int: ...


class ConsentRepository(PersonalDataHolder, Protocol):
    """Consent records and erasure audits. Also a :class:`PersonalDataHolder` (its consent records)
    and a ``CustomerOwned`` (``reassign_customer`` moves records on merge)."""

    async def insert(self, record: ConsentRecord) -> bool:
        """Store a record; False when its ``(origin_id, purpose, seq)`` is taken (a concurrent act)."""
        ...

    async def latest(self, customer_id: str, purpose: str) -> ConsentRecord | None:
        """The latest record of the purpose, ordered by ``(at, seq)``."""
        ...

    async def last_seq(self, origin_id: str, purpose: str) -> int:
        """The highest ``seq`` recorded for ``origin_id`` and the purpose (0: none)."""
        ...

    async def records(self, customer_id: str) -> list[ConsentRecord]:
        """Every record of the customer, oldest first (by ``(at, seq)``)."""
        ...

    async def reassign_customer(self, from_id: str, into_id: str) -> int: ...

    async def start_erasure(self, record: ErasureRecord) -> ErasureRecord:
        """Store the record unless one exists for the customer; return the stored one."""
        ...

    async def erasure_step_done(self, customer_id: str, holder: str, count: int) -> None: ...

    async def finish_erasure(self, customer_id: str, at: datetime) -> None: ...

    async def erasure(self, customer_id: str) -> ErasureRecord | None: ...

    async def unfinished_erasures(self) -> list[ErasureRecord]: ...


class PrivacyService:
    """Consent, export and erasure. ``holders`` are the other repositories holding personal data."""

    def __init__(
        self, consents: ConsentRepository, holders: Sequence[PersonalDataHolder], clock: Clock
    ) -> None:
        self._consents = consents
        self._clock = clock
        self._holders: list[PersonalDataHolder] = [consents]
        names = {consents.name}
        for holder in holders:
            if holder is consents:
                continue
            if holder.name in names:
                raise ValueError(f"two personal data holders are named {holder.name!r}")
            names.add(holder.name)
            self._holders.append(holder)

    @property
    def holder_names(self) -> tuple[str, ...]:
        return tuple(holder.name for holder in self._holders)

    # ---------------------------------------------------------------- consent
    async def give(
        self, customer_id: str, purpose: str, *, channel: str, text_version: str, source: str
    ) -> ConsentState:
        """Record that the customer agreed to ``purpose`` after being shown ``text_version``.

        :raises InvalidConsent: a purpose, channel, text version or source that is not a code.
        :raises CustomerInactive: the customer was erased.
        """
        return await self._act(
            customer_id, purpose, "given", channel=channel, text_version=text_version, source=source
        )

    async def withdraw(
        self, customer_id: str, purpose: str, *, channel: str, source: str
    ) -> ConsentState | None:
        """Record that the customer withdrew ``purpose``; ``None`` when nothing was ever given for it.

        Withdrawing is always possible; after erasure it changes nothing (there is nothing left to
        withdraw) and returns ``None``.
        """
        if await self._erased(customer_id):
            return None
        return await self._act(
            customer_id, purpose, "withdrawn", channel=channel, text_version=None, source=source
        )

    async def current(self, customer_id: str) -> dict[str, ConsentState]:
        """The current state of every purpose the customer has a record for."""
        return current_states(await self._consents.records(customer_id))

    async def has_consent(self, customer_id: str, purpose: str) -> bool:
        """Whether ``purpose`` is currently given (what a campaign checks before sending)."""
        latest = await self._consents.latest(customer_id, purpose)
        return latest is not None and latest.action == "given"

    async def history(self, customer_id: str) -> list[ConsentRecord]:
        """Every act, oldest first."""
        return await self._consents.records(customer_id)

    @overload
    async def _act(
        self,
        customer_id: str,
        purpose: str,
        action: Literal["given"],
        *,
        channel: str,
        text_version: str | None,
        source: str,
    ) -> ConsentState: ...

    @overload
    async def _act(
        self,
        customer_id: str,
        purpose: str,
        action: Literal["withdrawn"],
        *,
        channel: str,
        text_version: str | None,
        source: str,
    ) -> ConsentState | None: ...

    async def _act(
        self,
        customer_id: str,
        purpose: str,
        action: ConsentAction,
        *,
        channel: str,
        text_version: str | None,
        source: str,
    ) -> ConsentState | None:
        if not isinstance(customer_id, str) or not customer_id:
            raise InvalidConsent("a consent needs a customer id")
        try:  # validated before anything is read, so a bad code is refused even when nothing would change
            draft = ConsentRecord(
                id=new_id(),
                customer_id=customer_id,
                origin_id=customer_id,
                purpose=purpose,
                action=action,
                at=self._clock.now(),
                channel=channel,
                text_version=text_version,
                source=source,
                seq=1,
            )
        except ValidationError as error:
            detail = error.errors(include_url=False)[0]
            raise InvalidConsent(f"{'.'.join(map(str, detail['loc']))}: {detail['msg']}") from None
        if action == "given" and await self._erased(customer_id):
            raise CustomerInactive("the customer's personal data was erased")
        for _ in range(_MAX_ATTEMPTS):
            # The place first, then the state: an act recorded after we read the place takes that place,
            # so our insert fails and we decide again; one recorded before it is in the state we read.
            seq = await self._consents.last_seq(customer_id, purpose) + 1
            latest = await self._consents.latest(customer_id, purpose)
            if _unchanged(latest, action, text_version):
                return (await self.current(customer_id)).get(purpose) if latest is not None else None
            record = draft.model_copy(update={"id": new_id(), "seq": seq, "at": self._clock.now()})
            if await self._consents.insert(record):
                if action == "given" and await self._erased(customer_id):
                    # An erasure started while we wrote. Either it began after this check, and its
                    # consents step (which runs after the erasure is recorded) deletes our record, or
                    # we see it here and delete the record ourselves: nothing survives an erasure.
                    await self._consents.erase_customer(customer_id)
                    raise CustomerInactive("the customer's personal data was erased")
                agreed = latest.text_version if latest is not None and latest.action == "given" else None
                return _state(record, agreed=agreed)
            # a concurrent act took this seq: read again and decide again
        raise LoyaltyError("could not record the consent (contention)")

    async def _erased(self, customer_id: str) -> bool:
        return await self._consents.erasure(customer_id) is not None

    # ---------------------------------------------------------------- export
    async def export(self, customer_id: str) -> dict[str, Any]:
        """Everything held about the customer, from every holder, as JSON-ready data.

        ``data`` has one entry per holder (by name). The current consent state is added for
        readability; ``erasure`` is the audit entry when the customer was erased.
        """
        data: dict[str, Any] = {}
        for holder in self._holders:
            data[holder.name] = _jsonable(await holder.export_customer(customer_id), where=holder.name)
        erasure = await self._consents.erasure(customer_id)
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "customer_id": customer_id,
            "exported_at": self._clock.now().isoformat(),
            "consent": {p: s.model_dump(mode="json") for p, s in (await self.current(customer_id)).items()},
            "erasure": erasure.model_dump(mode="json") if erasure is not None else None,
            "data": data,
        }

    # ---------------------------------------------------------------- erasure
    async def erase(self, customer_id: str, *, requested_by: str, reason: str) -> ErasureRecord:
        """Erase the customer's personal data in every holder; idempotent and resumable.

        The first request is the one recorded; a repeated request returns it (finishing it first if a
        crash interrupted it). ``requested_by`` and ``reason`` are codes (``customer``,
        ``staff:<id>``; ``customer_request``), so the audit entry cannot carry personal data.
        """
        if not isinstance(customer_id, str) or not customer_id:
            raise InvalidErasure("an erasure needs a customer id")
        wanted = ErasureRecord(
            customer_id=customer_id,
            requested_by=_code(requested_by, _SOURCE, "requested_by"),
            reason=_code(reason, _CODE, "reason"),
            requested_at=self._clock.now(),
        )
        record = await self._consents.start_erasure(wanted)
        if record.done:
            return record
        return await self._run_erasure(record)

    async def resume_erasures(self) -> int:
        """Finish every erasure a crash left half-way; returns how many were resumed."""
        pending = await self._consents.unfinished_erasures()
        for record in pending:
            log.warning("resuming the erasure of customer %s", record.customer_id)
            await self._run_erasure(record)
        return len(pending)

    async def erasure(self, customer_id: str) -> ErasureRecord | None:
        return await self._consents.erasure(customer_id)

    async def _run_erasure(self, record: ErasureRecord) -> ErasureRecord:
        erased = dict(record.erased)
        for holder in self._holders:
            if holder.name in erased:
                continue
            erased[holder.name] = await holder.erase_customer(record.customer_id)
            await self._consents.erasure_step_done(record.customer_id, holder.name, erased[holder.name])
        finished_at = self._clock.now()
        await self._consents.finish_erasure(record.customer_id, finished_at)
        return record.model_copy(update={"erased": erased, "finished_at": finished_at})


# -------------------------------------------------------------------- pure helpers
def current_states(records: Sequence[ConsentRecord]) -> dict[str, ConsentState]:
    """The latest state of each purpose in ``records`` (ordered oldest first)."""
    states: dict[str, ConsentState] = {}
    for record in records:
        before = states.get(record.purpose)
        states[record.purpose] = _state(record, agreed=before.text_version if before is not None else None)
    return states


def _unchanged(latest: ConsentRecord | None, action: ConsentAction, text_version: str | None) -> bool:
    if action == "withdrawn":
        return latest is None or latest.action == "withdrawn"
    return latest is not None and latest.action == "given" and latest.text_version == text_version


def _state(record: ConsentRecord, *, agreed: str | None) -> ConsentState:
    """The state ``record`` sets; ``agreed`` is the text version agreed to before (for a withdrawal)."""
    return ConsentState(
        purpose=record.purpose,
        status=record.action,
        at=record.at,
        channel=record.channel,
        text_version=record.text_version if record.action == "given" else agreed,
        source=record.source,
    )


def _code(value: object, pattern: str, field: str) -> str:
    if not isinstance(value, str) or re.match(pattern, value) is None:
        raise InvalidErasure(f"{field} must be a code (lowercase letters, digits, _), not free text")
    return value


def _jsonable(value: Any, *, where: str) -> Any:
    """``value`` as JSON data: datetimes and dates in ISO 8601, decimals as strings, tuples as lists.

    Anything else (an ``ObjectId``, a custom object) is a holder's bug: refused, not stringified, so an
    export never silently contains ``<object at 0x...>``.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return _jsonable(value.value, where=where)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, where=where) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, where=where) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(item, where=where) for item in value), key=repr)
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="json"), where=where)
    raise TypeError(f"the {where} export holds a {type(value).__name__}, which is not plain data")
