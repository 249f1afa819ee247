"""Personal data: consent per purpose (append-only, current state derived), export from every holder,
erasure through every holder, idempotent and resumable; against the real database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.clock import FrozenClock
from loyalty.errors import CustomerInactive, InvalidConsent, InvalidErasure
from loyalty.privacy import MARKETING_ZALO, MARKETING_ZNS, TERMS, PersonalDataHolder, PrivacyService
from storage.clients import Document
from storage.consents import CONSENTS, ERASURES, MongoConsentRepository

CUSTOMER = "c0ffee0000000000000000a1"
OTHER = "c0ffee0000000000000000b2"


class NotesHolder:
    """A second holder of personal data, as later modules will be: staff notes about a customer, with an
    amount that must survive erasure (like the ledger's). It counts its calls so tests can prove which
    holders an erasure reached."""

    name = "notes"

    def __init__(self, db: AsyncDatabase[Document], *, fail_erasures: int = 0) -> None:
        self._notes = db["test_notes"]
        self.erase_calls = 0
        self.fail_erasures = fail_erasures

    async def add(self, customer_id: str, text: str, amount: Decimal, at: datetime) -> None:
        await self._notes.insert_one(
            {"customer_id": customer_id, "text": text, "amount": str(amount), "at": at}
        )

    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        cursor = self._notes.find({"customer_id": customer_id}, {"_id": 0}, sort=[("at", 1)])
        return [{**doc, "amount": Decimal(doc["amount"])} async for doc in cursor]

    async def erase_customer(self, customer_id: str) -> int:
        self.erase_calls += 1
        if self.fail_erasures:
            self.fail_erasures -= 1
            raise ConnectionError("the database went away")
        result = await self._notes.update_many(
            {"customer_id": customer_id, "text": {"$ne": None}}, {"$set": {"text": None}}
        )
        return result.modified_count


@pytest.fixture
def consents(db: AsyncDatabase[Document]) -> MongoConsentRepository:
    return MongoConsentRepository(db)


@pytest.fixture
def notes(db: AsyncDatabase[Document]) -> NotesHolder:
    return NotesHolder(db)


@pytest.fixture
def privacy(consents: MongoConsentRepository, notes: NotesHolder, clock: FrozenClock) -> PrivacyService:
    return PrivacyService(consents, [notes], clock)


async def give(privacy: PrivacyService, purpose: str = MARKETING_ZALO, version: str = "2026-01") -> None:
    await privacy.give(CUSTOMER, purpose, channel="zalo", text_version=version, source="chat_button")


# ------------------------------------------------------------------------------------------ consent
async def test_a_consent_is_recorded_with_what_when_where_and_which_text(
    privacy: PrivacyService, clock: FrozenClock
) -> None:
    state = await privacy.give(
        CUSTOMER, MARKETING_ZALO, channel="zalo", text_version="2026-01", source="chat_button"
    )

    assert state.given
    assert (state.purpose, state.at, state.channel, state.text_version, state.source) == (
        MARKETING_ZALO,
        clock.now(),
        "zalo",
        "2026-01",
        "chat_button",
    )
    assert await privacy.current(CUSTOMER) == {MARKETING_ZALO: state}
    assert await privacy.has_consent(CUSTOMER, MARKETING_ZALO)
    assert not await privacy.has_consent(CUSTOMER, MARKETING_ZNS)
    [record] = await privacy.history(CUSTOMER)
    assert (record.action, record.seq, record.customer_id, record.origin_id) == (
        "given",
        1,
        CUSTOMER,
        CUSTOMER,
    )


async def test_withdrawal_is_a_new_record_and_keeps_what_had_been_agreed(
    privacy: PrivacyService, clock: FrozenClock
) -> None:
    await give(privacy)
    clock.advance(timedelta(days=3))

    state = await privacy.withdraw(CUSTOMER, MARKETING_ZALO, channel="miniapp", source="miniapp_settings")

    assert state is not None
    assert not state.given
    assert (state.status, state.at, state.channel, state.text_version) == (
        "withdrawn",
        clock.now(),
        "miniapp",
        "2026-01",
    )
    assert not await privacy.has_consent(CUSTOMER, MARKETING_ZALO)
    assert [(r.action, r.text_version, r.seq) for r in await privacy.history(CUSTOMER)] == [
        ("given", "2026-01", 1),
        ("withdrawn", None, 2),
    ]
    assert (await privacy.current(CUSTOMER))[MARKETING_ZALO] == state


async def test_acts_that_change_nothing_are_not_recorded_again(
    privacy: PrivacyService, clock: FrozenClock
) -> None:
    """A retried webhook must not fill the history; a new text version or a change of mind does count."""
    assert await privacy.withdraw(CUSTOMER, MARKETING_ZALO, channel="zalo", source="chat_button") is None
    await give(privacy)
    first = await privacy.current(CUSTOMER)
    clock.advance(timedelta(minutes=1))
    await give(privacy)  # the same text again
    assert await privacy.current(CUSTOMER) == first
    await give(privacy, version="2026-06")  # a new text: a new agreement
    await privacy.withdraw(CUSTOMER, MARKETING_ZALO, channel="zalo", source="chat_button")
    again = await privacy.withdraw(CUSTOMER, MARKETING_ZALO, channel="zalo", source="chat_button")
    await give(privacy, version="2026-06")

    assert again is not None
    assert again.text_version == "2026-06"
    assert [(r.action, r.text_version) for r in await privacy.history(CUSTOMER)] == [
        ("given", "2026-01"),
        ("given", "2026-06"),
        ("withdrawn", None),
        ("given", "2026-06"),
    ]
    assert await privacy.has_consent(CUSTOMER, MARKETING_ZALO)


async def test_acts_at_the_same_instant_keep_their_order(privacy: PrivacyService) -> None:
    """The clock does not move between these acts: the per-purpose sequence orders them."""
    for _ in range(3):
        await give(privacy)
        await privacy.withdraw(CUSTOMER, MARKETING_ZALO, channel="zalo", source="chat_button")

    assert not await privacy.has_consent(CUSTOMER, MARKETING_ZALO)
    assert [r.seq for r in await privacy.history(CUSTOMER)] == [1, 2, 3, 4, 5, 6]
    assert (await privacy.current(CUSTOMER))[MARKETING_ZALO].status == "withdrawn"


async def test_purposes_and_customers_are_independent(privacy: PrivacyService) -> None:
    await give(privacy, TERMS, "terms-1.0")
    await give(privacy, MARKETING_ZALO)
    await privacy.give(OTHER, MARKETING_ZNS, channel="messenger", text_version="v1", source="chat_button")
    await privacy.withdraw(CUSTOMER, MARKETING_ZALO, channel="zalo", source="chat_button")

    current = await privacy.current(CUSTOMER)
    assert {p: s.status for p, s in current.items()} == {TERMS: "given", MARKETING_ZALO: "withdrawn"}
    assert list(await privacy.current(OTHER)) == [MARKETING_ZNS]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("purpose", "Marketing Zalo"),
        ("purpose", ""),
        ("channel", "Zalo OA"),
        ("text_version", "bản mới nhất"),
        ("text_version", ""),
        ("source", "chị Lan ở quầy, số 0912345678"),  # free text could carry personal data
    ],
)
async def test_only_codes_are_recorded(privacy: PrivacyService, field: str, value: str) -> None:
    act = {"purpose": MARKETING_ZALO, "channel": "zalo", "text_version": "v1", "source": "chat_button"} | {
        field: value
    }

    with pytest.raises(InvalidConsent) as caught:
        await privacy.give(
            CUSTOMER,
            act["purpose"],
            channel=act["channel"],
            text_version=act["text_version"],
            source=act["source"],
        )
    if field != "text_version":  # a withdrawal is checked too, even when it would change nothing
        with pytest.raises(InvalidConsent):
            await privacy.withdraw(CUSTOMER, act["purpose"], channel=act["channel"], source=act["source"])

    assert caught.value.code == "invalid_consent"
    assert await privacy.history(CUSTOMER) == []


async def test_concurrent_identical_consents_are_recorded_once(privacy: PrivacyService) -> None:
    await asyncio.gather(*(give(privacy) for _ in range(20)))

    assert [(r.action, r.seq) for r in await privacy.history(CUSTOMER)] == [("given", 1)]


async def test_concurrent_changes_of_mind_form_one_consistent_history(privacy: PrivacyService) -> None:
    """Every record is a real change from the one before it, and the current state is the last one."""

    async def act(index: int) -> None:
        if index % 2:
            await privacy.withdraw(CUSTOMER, MARKETING_ZALO, channel="zalo", source="chat_button")
        else:
            await give(privacy)

    await asyncio.gather(*(act(i) for i in range(30)))

    history = await privacy.history(CUSTOMER)
    assert [r.seq for r in history] == list(range(1, len(history) + 1))
    assert history[0].action == "given"
    for before, after in itertools.pairwise(history):
        assert before.action != after.action
    assert (await privacy.current(CUSTOMER))[MARKETING_ZALO].status == history[-1].action


async def test_merge_moves_the_records_and_both_histories_count(
    privacy: PrivacyService, consents: MongoConsentRepository, clock: FrozenClock
) -> None:
    await privacy.give(
        OTHER, MARKETING_ZALO, channel="messenger", text_version="2026-01", source="chat_button"
    )
    await privacy.give(
        OTHER, MARKETING_ZNS, channel="messenger", text_version="2026-01", source="chat_button"
    )
    clock.advance(timedelta(hours=1))
    await give(privacy, TERMS, "terms-1.0")
    await give(privacy, MARKETING_ZALO)  # seq 1 for CUSTOMER, as it is for OTHER: no clash after the move
    clock.advance(timedelta(hours=1))

    moved = await consents.reassign_customer(OTHER, CUSTOMER)
    again = await consents.reassign_customer(OTHER, CUSTOMER)
    await privacy.withdraw(CUSTOMER, MARKETING_ZNS, channel="zalo", source="chat_button")

    assert (moved, again) == (2, 0)
    assert await privacy.history(OTHER) == []
    history = await privacy.history(CUSTOMER)
    assert len(history) == 5
    assert {r.origin_id for r in history} == {CUSTOMER, OTHER}
    current = await privacy.current(CUSTOMER)
    assert {p: s.status for p, s in current.items()} == {
        MARKETING_ZALO: "given",
        MARKETING_ZNS: "withdrawn",  # given as OTHER on Messenger, withdrawn after the merge on Zalo
        TERMS: "given",
    }
    assert current[MARKETING_ZALO].channel == "zalo"  # the later of the two agreements


# ------------------------------------------------------------------------------------------ export
async def test_export_gathers_every_holder_as_json(
    privacy: PrivacyService, notes: NotesHolder, clock: FrozenClock
) -> None:
    await give(privacy)
    await notes.add(CUSTOMER, "thích cà phê ít đường", Decimal("12.50"), clock.now())
    await notes.add(OTHER, "not this customer's", Decimal(1), clock.now())

    export = await privacy.export(CUSTOMER)

    assert json.loads(json.dumps(export)) == export  # plain JSON all the way down
    assert export["customer_id"] == CUSTOMER
    assert export["exported_at"] == clock.now().isoformat()
    assert export["erasure"] is None
    assert set(export["data"]) == {"consents", "notes"}
    assert export["data"]["notes"] == [
        {
            "customer_id": CUSTOMER,
            "text": "thích cà phê ít đường",
            "amount": "12.50",
            "at": clock.now().isoformat(),
        }
    ]
    [record] = export["data"]["consents"]
    assert (record["purpose"], record["action"], record["text_version"]) == (
        MARKETING_ZALO,
        "given",
        "2026-01",
    )
    assert export["consent"][MARKETING_ZALO]["status"] == "given"


async def test_an_export_refuses_data_that_is_not_plain(
    consents: MongoConsentRepository, clock: FrozenClock
) -> None:
    class Leaky:
        name = "leaky"

        async def export_customer(self, customer_id: str) -> dict[str, Any]:
            return {"customer": object()}

        async def erase_customer(self, customer_id: str) -> int:
            return 0

    with pytest.raises(TypeError, match="the leaky export holds a object"):
        await PrivacyService(consents, [Leaky()], clock).export(CUSTOMER)


def test_holder_names_are_unique(
    consents: MongoConsentRepository, notes: NotesHolder, clock: FrozenClock
) -> None:
    holders: list[PersonalDataHolder] = [notes, consents]  # the consents repository may be listed too
    assert PrivacyService(consents, holders, clock).holder_names == ("consents", "notes")

    with pytest.raises(ValueError, match="two personal data holders are named 'notes'"):
        PrivacyService(consents, [notes, NotesHolder(notes._notes.database)], clock)


# ------------------------------------------------------------------------------------------ erasure
async def test_erasure_reaches_every_holder_once_and_is_audited_without_personal_data(
    privacy: PrivacyService, notes: NotesHolder, db: AsyncDatabase[Document], clock: FrozenClock
) -> None:
    await give(privacy)
    await give(privacy, TERMS, "terms-1.0")
    await notes.add(CUSTOMER, "số cũ 0912345678", Decimal(20_000), clock.now())
    await privacy.give(OTHER, MARKETING_ZALO, channel="zalo", text_version="v1", source="chat_button")
    clock.advance(timedelta(minutes=5))

    record = await privacy.erase(CUSTOMER, requested_by="customer", reason="customer_request")
    clock.advance(timedelta(minutes=5))
    repeated = await privacy.erase(CUSTOMER, requested_by="staff:s1", reason="staff_request")

    assert record.erased == {"consents": 2, "notes": 1}
    assert record.finished_at == record.requested_at
    assert repeated == record  # the first request is the one recorded
    assert notes.erase_calls == 1
    assert await privacy.history(CUSTOMER) == []
    assert len(await privacy.history(OTHER)) == 1  # nobody else's data
    kept = await db["test_notes"].find_one({"customer_id": CUSTOMER})
    assert kept is not None
    assert (kept["text"], kept["amount"]) == (None, "20000")  # anonymised, the amount kept
    audit = await db[ERASURES].find_one({"_id": CUSTOMER})
    assert audit is not None
    assert set(audit) == {"_id", "requested_by", "reason", "requested_at", "finished_at", "erased"}
    assert (audit["requested_by"], audit["reason"]) == ("customer", "customer_request")


async def test_after_erasure_nothing_new_is_consented_and_the_export_is_empty(
    privacy: PrivacyService, clock: FrozenClock
) -> None:
    await give(privacy)
    await privacy.erase(CUSTOMER, requested_by="customer", reason="customer_request")

    with pytest.raises(CustomerInactive):
        await give(privacy)
    withdrawn = await privacy.withdraw(CUSTOMER, MARKETING_ZALO, channel="zalo", source="chat_button")
    export = await privacy.export(CUSTOMER)

    assert withdrawn is None
    assert export["data"] == {"consents": [], "notes": []}
    assert export["consent"] == {}
    assert export["erasure"]["reason"] == "customer_request"
    assert export["erasure"]["erased"] == {"consents": 1, "notes": 0}


async def test_an_interrupted_erasure_is_finished_by_asking_again(
    consents: MongoConsentRepository, db: AsyncDatabase[Document], clock: FrozenClock
) -> None:
    notes = NotesHolder(db, fail_erasures=1)
    privacy = PrivacyService(consents, [notes], clock)
    await give(privacy)
    await notes.add(CUSTOMER, "ghi chú", Decimal(1), clock.now())

    with pytest.raises(ConnectionError):
        await privacy.erase(CUSTOMER, requested_by="customer", reason="customer_request")
    half = await privacy.erasure(CUSTOMER)
    record = await privacy.erase(CUSTOMER, requested_by="customer", reason="customer_request")

    assert half is not None
    assert not half.done
    assert half.erased == {"consents": 1}  # the step that finished is recorded, and not redone
    assert record.done
    assert record.erased == {"consents": 1, "notes": 1}
    assert notes.erase_calls == 2
    assert await consents.unfinished_erasures() == []


async def test_resume_erasures_finishes_what_a_crash_left(
    consents: MongoConsentRepository, db: AsyncDatabase[Document], clock: FrozenClock
) -> None:
    notes = NotesHolder(db, fail_erasures=1)
    privacy = PrivacyService(consents, [notes], clock)
    with pytest.raises(ConnectionError):
        await privacy.erase(CUSTOMER, requested_by="staff:s1", reason="legal_order")

    assert await privacy.resume_erasures() == 1
    assert await privacy.resume_erasures() == 0
    record = await privacy.erasure(CUSTOMER)
    assert record is not None
    assert record.done
    assert (record.requested_by, record.reason) == ("staff:s1", "legal_order")


async def test_concurrent_erasure_requests_record_one_erasure(
    privacy: PrivacyService, db: AsyncDatabase[Document]
) -> None:
    await give(privacy)

    records = await asyncio.gather(
        *(privacy.erase(CUSTOMER, requested_by="customer", reason="customer_request") for _ in range(10))
    )

    assert all(r.customer_id == CUSTOMER and r.done for r in records)
    assert await db[ERASURES].count_documents({}) == 1
    assert await db[CONSENTS].count_documents({"customer_id": CUSTOMER}) == 0


@pytest.mark.parametrize(
    ("requested_by", "reason"),
    [
        ("Nguyễn Văn A", "customer_request"),
        ("customer", "khách gọi điện yêu cầu xoá, số 0912345678"),
        ("customer", ""),
        ("", "customer_request"),
    ],
)
async def test_an_erasure_request_takes_codes_not_free_text(
    privacy: PrivacyService, db: AsyncDatabase[Document], requested_by: str, reason: str
) -> None:
    with pytest.raises(InvalidErasure) as caught:
        await privacy.erase(CUSTOMER, requested_by=requested_by, reason=reason)

    assert caught.value.code == "invalid_erasure"
    assert await db[ERASURES].count_documents({}) == 0


async def test_a_consent_racing_an_erasure_does_not_survive_it(privacy: PrivacyService) -> None:
    customers = [f"c0ffee00000000000000{index:04d}" for index in range(8)]

    async def consent(customer_id: str) -> None:
        with contextlib.suppress(CustomerInactive):
            await privacy.give(
                customer_id, MARKETING_ZALO, channel="zalo", text_version="v1", source="chat_button"
            )

    for customer_id in customers:
        await asyncio.gather(
            consent(customer_id),
            privacy.erase(customer_id, requested_by="customer", reason="customer_request"),
            consent(customer_id),
        )

    for customer_id in customers:
        assert await privacy.history(customer_id) == []
        assert not await privacy.has_consent(customer_id, MARKETING_ZALO)
