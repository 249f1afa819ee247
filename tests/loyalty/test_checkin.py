"""CheckinService through the real Mongo repositories: signed tokens, short codes, caps, once per customer,
concurrency, compensation of refused scans, resumption of failed ones, merges and links."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from loyalty.checkin import (
    CLAIM_LEASE,
    REF_PREFIX,
    SHORT_CODE_ALPHABET,
    CheckinClaim,
    CheckinService,
    IssuedCode,
    checkin_links,
    claim_key,
    normalize_short_code,
    token_from_ref,
)
from loyalty.clock import LOCAL_TZ, FrozenClock
from loyalty.customers import CustomerService, Identity
from loyalty.errors import (
    CheckinAlreadyUsed,
    CheckinDailyCap,
    CheckinDisabled,
    CheckinError,
    CheckinExhausted,
    CheckinExpired,
    CheckinForged,
    CheckinInvalid,
    CheckinMalformed,
    CheckinNotFound,
    CustomerNotFound,
    LimitReached,
)
from loyalty.ledger import LedgerService
from loyalty.program import CheckinRules, Program
from loyalty.vouchers import Voucher, VoucherService
from storage.checkins import MongoCheckinRepository
from storage.clients import Document
from storage.customers import MongoCustomerRepository
from storage.ledger import MongoLedgerRepository
from storage.vouchers import MongoVoucherRepository

SECRET = b"test-secret-key-0123456789abcdefghijklmnop"
TOKEN_SHAPE = re.compile(r"[0-9a-f]{24}\.[0-9a-z]{6}\.[A-Za-z0-9_-]{24}")


def with_daily_cap(program: Program, cap: int) -> Program:
    return program.model_copy(update={"checkin": CheckinRules(daily_cap_per_customer=cap)})


@pytest.fixture
def repo(db: AsyncDatabase[Document]) -> MongoCheckinRepository:
    return MongoCheckinRepository(db)


@pytest.fixture
def ledger(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> LedgerService:
    return LedgerService(MongoLedgerRepository(db), program, clock)


@pytest.fixture
def vouchers(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> VoucherService:
    return VoucherService(MongoVoucherRepository(db), program, clock)


@pytest.fixture
def make_service(
    repo: MongoCheckinRepository, ledger: LedgerService, vouchers: VoucherService, clock: FrozenClock
) -> Callable[..., CheckinService]:
    def make(program: Program, *, ledger_: Any = None, secret: bytes = SECRET) -> CheckinService:
        return CheckinService(repo, ledger_ or ledger, vouchers, program, clock, secret)

    return make


@pytest.fixture
def service(make_service: Callable[..., CheckinService], program: Program) -> CheckinService:
    return make_service(program)


@pytest.fixture
def new_customer(
    db: AsyncDatabase[Document], program: Program, clock: FrozenClock
) -> Callable[[str], Awaitable[str]]:
    customers = CustomerService(MongoCustomerRepository(db), program, clock)

    async def make(user_id: str) -> str:
        customer, _ = await customers.get_or_create(Identity(channel="zalo", user_id=user_id))
        return customer.id

    return make


async def create(service: CheckinService, clock: FrozenClock, **options: Any) -> IssuedCode:
    options.setdefault("expires_at", clock.now() + timedelta(days=7))
    options.setdefault("created_by", "manager")
    return await service.create_code(**options)


# ======================================================================== creating codes
async def test_a_code_has_a_compact_signed_token_and_a_short_code(
    service: CheckinService, clock: FrozenClock, program: Program
) -> None:
    issued = await create(service, clock, max_uses=100, store="q1")

    assert TOKEN_SHAPE.fullmatch(issued.token)
    assert issued.token.split(".")[0] == issued.code.id
    assert service.token_for(issued.code) == issued.token  # the same code always prints the same QR
    assert len(issued.short_code) == 8 and set(issued.short_code) <= set(SHORT_CODE_ALPHABET)
    assert not set(issued.short_code) & set("0O1IL")
    assert issued.code.points == program.checkin.points_per_scan
    assert (issued.code.max_uses, issued.code.remaining, issued.code.store) == (100, 100, "q1")
    assert (await service.get(issued.code.id)) == issued.code


async def test_short_codes_differ_between_codes(service: CheckinService, clock: FrozenClock) -> None:
    codes = [await create(service, clock) for _ in range(20)]

    assert len({issued.short_code for issued in codes}) == 20
    assert len({issued.token for issued in codes}) == 20


async def test_a_taken_short_code_is_drawn_again(
    service: CheckinService, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await create(service, clock)
    draws = iter([first.short_code, first.short_code, "ZZZZ2222"])
    monkeypatch.setattr("loyalty.checkin.new_short_code", lambda: next(draws))

    second = await create(service, clock)

    assert second.short_code == "ZZZZ2222"
    assert len(await service.list_codes()) == 2


async def test_a_short_code_that_never_comes_free_is_an_error_not_a_duplicate(
    service: CheckinService, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await create(service, clock)
    monkeypatch.setattr("loyalty.checkin.new_short_code", lambda: first.short_code)

    with pytest.raises(RuntimeError, match="free short code"):
        await create(service, clock)
    assert len(await service.list_codes()) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"points": 0}, "points, a voucher or both"),
        ({"points": -1}, "points must be"),
        ({"voucher_template": "no_such_template"}, "no voucher template"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": True}, "max_uses"),
        ({"expires_at": datetime(2026, 11, 30, tzinfo=UTC)}, "in the future"),
        ({"expires_at": datetime(2027, 12, 31, tzinfo=UTC)}, "at most 366 days"),
        ({"expires_at": datetime(2026, 12, 8)}, "timezone-aware"),
        ({"store": ""}, "store"),
        ({"created_by": ""}, "created_by"),
    ],
)
async def test_a_code_that_could_never_reward_is_refused(
    service: CheckinService, clock: FrozenClock, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(CheckinInvalid, match=message):
        await create(service, clock, **options)

    assert await service.list_codes(include_inactive=True) == []


async def test_a_voucher_code_needs_a_voucher_issuer(
    repo: MongoCheckinRepository, ledger: LedgerService, program: Program, clock: FrozenClock
) -> None:
    without_vouchers = CheckinService(repo, ledger, None, program, clock, SECRET)

    with pytest.raises(CheckinInvalid, match="vouchers are not available"):
        await create(without_vouchers, clock, voucher_template="free_drink")


async def test_a_short_secret_key_is_refused(
    repo: MongoCheckinRepository, ledger: LedgerService, program: Program, clock: FrozenClock
) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        CheckinService(repo, ledger, None, program, clock, b"short")


# ======================================================================== scanning
async def test_a_scan_earns_the_points_once_with_the_checkin_key(
    service: CheckinService,
    clock: FrozenClock,
    ledger: LedgerService,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock, points=15, max_uses=10, store="q1")

    result = await service.scan(customer, issued.token, channel="miniapp")

    assert (result.points_awarded, result.balance, result.voucher) == (15, 15, None)
    assert result.code.id == issued.code.id
    entry = await ledger.entry(f"checkin:{issued.code.id}:{customer}")
    assert entry is not None and entry.points == 15 and entry.reason == "checkin"
    assert entry.ref == {"code_id": issued.code.id, "channel": "miniapp", "store": "q1"}
    claim = await repo.claim_of(claim_key(issued.code.id, customer))
    assert claim is not None and claim.state == "rewarded" and claim.points == 15
    assert (await service.get(issued.code.id)).remaining == 9
    assert [c.key for c in await service.history(customer)] == [claim.key]


async def test_a_messenger_ref_is_accepted_as_it_arrives(
    service: CheckinService, clock: FrozenClock, new_customer: Callable[[str], Awaitable[str]]
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock)
    ref = REF_PREFIX + issued.token

    result = await service.scan(customer, ref, channel="messenger")

    assert result.points_awarded == 10
    assert token_from_ref(ref) == issued.token
    assert token_from_ref("welcome") is None and token_from_ref(None) is None


# ======================================================================== forged tokens
def _one_changed(token: str, position: int) -> str:
    """``token`` with the character at ``position`` replaced by another of the same kind."""
    original = token[position]
    pool = "0123456789abcdef" if position < 24 else "0123456789abcdefghijklmnopqrstuvwxyz"
    if token.count(".") == 2 and position > token.rindex("."):
        pool = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = pool[(pool.index(original) + 1) % len(pool)]
    return token[:position] + replacement + token[position + 1 :]


@pytest.mark.parametrize("part", ["id", "expiry", "signature"])
async def test_one_changed_character_anywhere_is_forged_before_any_query(
    *,
    db: AsyncDatabase[Document],
    service: CheckinService,
    program: Program,
    clock: FrozenClock,
    ledger: LedgerService,
    new_customer: Callable[[str], Awaitable[str]],
    part: str,
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock, max_uses=1000)
    counting = CountingRepository(db)
    scanner = CheckinService(counting, ledger, None, program, clock, SECRET)
    first_dot, second_dot = issued.token.index("."), issued.token.rindex(".")
    positions = {
        "id": range(first_dot),
        "expiry": range(first_dot + 1, second_dot),
        "signature": range(second_dot + 1, len(issued.token)),
    }[part]

    for position in positions:
        altered = _one_changed(issued.token, position)
        assert altered != issued.token
        with pytest.raises(CheckinForged) as caught:
            await scanner.scan(customer, altered, channel="zalo")
        assert caught.value.code == "checkin_forged"

    assert counting.calls == []  # the signature refused it: no code was even looked up
    assert await ledger.balance(customer) == 0
    assert (await scanner.scan(customer, issued.token, channel="zalo")).balance == 10  # the original works


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1],  # truncated
        lambda token: token + "A",  # extended
        lambda token: token.replace(".", ":"),
        lambda token: token.upper(),
        lambda token: token.split(".")[0],  # the database id alone
        lambda token: "",
        lambda token: "checkin.",
    ],
)
async def test_a_mangled_token_is_forged(
    service: CheckinService,
    clock: FrozenClock,
    new_customer: Callable[[str], Awaitable[str]],
    mangle: Callable[[str], str],
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock)

    with pytest.raises(CheckinForged):
        await service.scan(customer, mangle(issued.token), channel="zalo")


async def test_a_token_signed_with_another_key_is_forged(
    make_service: Callable[..., CheckinService],
    program: Program,
    clock: FrozenClock,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    customer = await new_customer("u1")
    ours = make_service(program)
    theirs = make_service(program, secret=b"another-deployment-secret-key-0123456789")
    issued = await create(ours, clock)

    with pytest.raises(CheckinForged):
        await theirs.scan(customer, issued.token, channel="zalo")
    assert (await ours.scan(customer, issued.token, channel="zalo")).points_awarded == 10


class CountingRepository(MongoCheckinRepository):
    """The real repository, counting the calls that reach the database."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db)
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if callable(attribute) and not name.startswith("_") and name != "calls":
            super().__getattribute__("calls").append(name)
        return attribute


@pytest.mark.parametrize(
    ("customer_id", "code"),
    [
        ("c1", {"$gt": ""}),
        ("c1", {"$ne": None}),
        ("c1", ["abc"]),
        ("c1", 123),
        ("c1", None),
        ("c1", "A" * 201),
        ({"$ne": ""}, "K7P2MXRT"),
        ("c 1; drop", "K7P2MXRT"),
    ],
)
async def test_operator_input_is_refused_before_any_query(
    *,
    db: AsyncDatabase[Document],
    ledger: LedgerService,
    vouchers: VoucherService,
    program: Program,
    clock: FrozenClock,
    customer_id: Any,
    code: Any,
) -> None:
    counting = CountingRepository(db)
    service = CheckinService(counting, ledger, vouchers, program, clock, SECRET)

    with pytest.raises(CheckinMalformed) as caught:
        await service.scan(customer_id, code, channel="zalo")

    assert caught.value.code == "checkin_malformed"
    assert isinstance(caught.value, CheckinForged)  # entry points that only know "forged" still refuse it
    assert counting.calls == []


# ======================================================================== expiry, revocation
async def test_an_expired_code_is_refused_by_token_and_by_short_code(
    service: CheckinService, clock: FrozenClock, new_customer: Callable[[str], Awaitable[str]]
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock, expires_at=clock.now() + timedelta(hours=2), max_uses=5)
    clock.advance(timedelta(hours=2))

    with pytest.raises(CheckinExpired) as by_token:
        await service.scan(customer, issued.token, channel="zalo")
    with pytest.raises(CheckinExpired):
        await service.scan(customer, issued.short_code, channel="zalo")

    assert by_token.value.code == "checkin_expired"
    assert (await service.get(issued.code.id)).remaining == 5


async def test_a_code_works_until_its_last_second(
    service: CheckinService, clock: FrozenClock, new_customer: Callable[[str], Awaitable[str]]
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock, expires_at=clock.now() + timedelta(hours=2))
    clock.advance(timedelta(hours=2) - timedelta(seconds=1))

    assert (await service.scan(customer, issued.token, channel="zalo")).points_awarded == 10


async def test_a_revoked_code_is_disabled(
    service: CheckinService, clock: FrozenClock, new_customer: Callable[[str], Awaitable[str]]
) -> None:
    first, second = await new_customer("u1"), await new_customer("u2")
    issued = await create(service, clock, max_uses=10)
    await service.scan(first, issued.token, channel="zalo")

    revoked = await service.revoke(issued.code.id)
    again = await service.revoke(issued.code.id)  # idempotent

    assert revoked.status == again.status == "revoked" and revoked.revoked_at is not None
    with pytest.raises(CheckinDisabled) as caught:
        await service.scan(second, issued.token, channel="zalo")
    assert caught.value.code == "checkin_disabled"
    with pytest.raises(CheckinDisabled):
        await service.scan(second, issued.short_code, channel="zalo")


async def test_an_unknown_code_cannot_be_revoked_or_read(service: CheckinService) -> None:
    with pytest.raises(CheckinNotFound):
        await service.revoke("0" * 24)
    with pytest.raises(CheckinNotFound):
        await service.get("0" * 24)


# ======================================================================== caps and replays
async def test_max_uses_three_and_ten_customers_at_once_award_exactly_three(
    service: CheckinService,
    clock: FrozenClock,
    ledger: LedgerService,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    customers = [await new_customer(f"u{n}") for n in range(10)]
    issued = await create(service, clock, max_uses=3)

    outcomes = await asyncio.gather(
        *(service.scan(customer, issued.token, channel="zalo") for customer in customers),
        return_exceptions=True,
    )

    awarded = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(awarded) == 3
    assert all(isinstance(error, CheckinExhausted) for error in refused), refused
    assert sum([await ledger.balance(customer) for customer in customers]) == 30
    assert (await service.get(issued.code.id)).remaining == 0
    with pytest.raises(CheckinExhausted) as caught:
        await service.scan(await new_customer("late"), issued.token, channel="zalo")
    assert caught.value.code == "checkin_exhausted"


async def test_a_one_time_code_scanned_by_two_stores_at_once_awards_once(
    service: CheckinService,
    clock: FrozenClock,
    ledger: LedgerService,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    first, second = await new_customer("u1"), await new_customer("u2")
    issued = await create(service, clock, max_uses=1)

    outcomes = await asyncio.gather(
        service.scan(first, issued.token, channel="miniapp"),
        service.scan(second, issued.short_code, channel="zalo"),
        return_exceptions=True,
    )

    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["CheckinExhausted", "CheckinResult"]
    assert await ledger.balance(first) + await ledger.balance(second) == 10


async def test_a_replay_by_the_same_customer_is_already_used(
    make_service: Callable[..., CheckinService],
    program: Program,
    clock: FrozenClock,
    ledger: LedgerService,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    service = make_service(with_daily_cap(program, 10))  # within the cap: only the replays are refused
    customer = await new_customer("u1")
    multi = await create(service, clock, max_uses=100)
    one_time = await create(service, clock, max_uses=1)

    await service.scan(customer, multi.token, channel="zalo")
    await service.scan(customer, one_time.token, channel="zalo")
    for replay in (multi.token, multi.short_code, one_time.token):
        with pytest.raises(CheckinAlreadyUsed) as caught:
            await service.scan(customer, replay, channel="zalo")
        assert caught.value.code == "checkin_already_used"

    assert await ledger.balance(customer) == 20
    assert (await service.get(multi.code.id)).remaining == 99


async def test_the_same_customer_tapping_five_times_at_once_is_awarded_once(
    *,
    make_service: Callable[..., CheckinService],
    program: Program,
    clock: FrozenClock,
    ledger: LedgerService,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    service = make_service(with_daily_cap(program, 5))
    customer = await new_customer("u1")
    issued = await create(service, clock, max_uses=100)

    outcomes = await asyncio.gather(
        *(service.scan(customer, issued.token, channel="zalo") for _ in range(5)), return_exceptions=True
    )

    assert sum(not isinstance(outcome, BaseException) for outcome in outcomes) == 1
    assert all(isinstance(o, CheckinAlreadyUsed) for o in outcomes if isinstance(o, BaseException))
    assert await ledger.balance(customer) == 10
    assert (await service.get(issued.code.id)).remaining == 99
    assert await repo.daily_count(customer, "2026-12-01") == 1


async def test_the_daily_cap_spans_codes_and_resets_at_local_midnight(
    *,
    service: CheckinService,
    program: Program,
    clock: FrozenClock,
    ledger: LedgerService,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    assert program.checkin.daily_cap_per_customer == 1
    customer = await new_customer("u1")
    first = await create(service, clock, max_uses=10)
    second = await create(service, clock, max_uses=10)
    clock.set(datetime(2026, 12, 1, 23, 59, tzinfo=LOCAL_TZ))

    await service.scan(customer, first.token, channel="zalo")
    with pytest.raises(CheckinDailyCap) as caught:
        await service.scan(customer, second.token, channel="zalo")

    assert caught.value.code == "checkin_daily_cap"
    # the refused scan left nothing behind: the use was given back and no claim blocks a later scan
    assert (await service.get(second.code.id)).remaining == 10
    assert await repo.claim_of(claim_key(second.code.id, customer)) is None
    assert await repo.daily_count(customer, "2026-12-01") == 1

    clock.set(datetime(2026, 12, 2, 0, 1, tzinfo=LOCAL_TZ))  # 17:01 UTC: a new day in Hồ Chí Minh City
    result = await service.scan(customer, second.token, channel="zalo")

    assert result.balance == 20
    assert await repo.daily_count(customer, "2026-12-02") == 1


async def test_the_daily_cap_holds_under_concurrent_scans_of_many_codes(
    *,
    make_service: Callable[..., CheckinService],
    program: Program,
    clock: FrozenClock,
    ledger: LedgerService,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    service = make_service(with_daily_cap(program, 2))
    customer = await new_customer("u1")
    codes = [await create(service, clock, max_uses=5) for _ in range(6)]

    outcomes = await asyncio.gather(
        *(service.scan(customer, issued.token, channel="zalo") for issued in codes), return_exceptions=True
    )

    assert sum(not isinstance(outcome, BaseException) for outcome in outcomes) == 2
    assert all(isinstance(o, CheckinDailyCap) for o in outcomes if isinstance(o, BaseException))
    assert await ledger.balance(customer) == 20
    assert await repo.daily_count(customer, "2026-12-01") == 2
    remaining = [(await service.get(issued.code.id)).remaining for issued in codes]
    assert sorted(remaining) == [4, 4, 5, 5, 5, 5]  # refused scans gave their uses back


# ======================================================================== short codes
async def test_a_typed_short_code_rewards_like_the_token(
    service: CheckinService,
    clock: FrozenClock,
    ledger: LedgerService,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock, max_uses=10)
    typed = f"  #{issued.short_code[:4].lower()} {issued.short_code[4:].lower()}. "

    result = await service.scan(customer, typed, channel="zalo")

    assert result.code.id == issued.code.id and result.balance == 10
    with pytest.raises(CheckinAlreadyUsed):
        await service.scan(customer, issued.token, channel="miniapp")  # the same code by the other path


@pytest.mark.parametrize("typed", ["#ABCDEFGO", "ABCD", "ABCDEFGHJ", "#", "hello", "ABCDEFG1"])
def test_what_is_not_a_short_code_is_not_normalised_into_one(typed: str) -> None:
    assert normalize_short_code(typed) is None


async def test_an_unknown_short_code_is_forged(
    service: CheckinService, clock: FrozenClock, new_customer: Callable[[str], Awaitable[str]]
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock)
    unknown = next(
        candidate for candidate in ("22222222", "33333333", "44444444") if candidate != issued.short_code
    )

    with pytest.raises(CheckinForged, match="short code"):
        await service.scan(customer, unknown, channel="zalo")
    with pytest.raises(CheckinForged):
        await service.scan(customer, "#O0O0O0O0", channel="zalo")


# ======================================================================== vouchers
async def test_a_voucher_code_issues_the_voucher_once(
    *,
    service: CheckinService,
    clock: FrozenClock,
    vouchers: VoucherService,
    ledger: LedgerService,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock, points=0, voucher_template="free_drink", max_uses=10)

    result = await service.scan(customer, issued.token, channel="zalo")
    with pytest.raises(CheckinAlreadyUsed):
        await service.scan(customer, issued.token, channel="zalo")

    assert isinstance(result.voucher, Voucher) and result.voucher.template_id == "free_drink"
    assert (result.points_awarded, result.balance) == (0, 0)
    claim = await repo.claim_of(claim_key(issued.code.id, customer))
    assert claim is not None and claim.voucher_id == result.voucher.code
    assert [v.code for v in await vouchers.list_for(customer)] == [result.voucher.code]
    assert await ledger.entry(claim.reward_key) is None  # no points entry for a voucher-only code


async def test_a_refused_voucher_gives_back_the_caps(
    *,
    service: CheckinService,
    clock: FrozenClock,
    vouchers: VoucherService,
    ledger: LedgerService,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    customer = await new_customer("u1")
    await vouchers.issue(customer, "welcome_20k", key="welcome:u1", source="welcome")  # limit 1 a customer
    welcome_again = await create(service, clock, points=5, voucher_template="welcome_20k", max_uses=10)
    plain = await create(service, clock, max_uses=10)

    with pytest.raises(LimitReached):
        await service.scan(customer, welcome_again.token, channel="zalo")

    assert await ledger.balance(customer) == 0  # nothing reached the customer...
    assert (await service.get(welcome_again.code.id)).remaining == 10  # ...and nothing was kept
    assert await repo.claim_of(claim_key(welcome_again.code.id, customer)) is None
    assert await repo.daily_count(customer, "2026-12-01") == 0
    assert (await service.scan(customer, plain.token, channel="zalo")).balance == 10  # today's scan is free


async def test_a_scan_for_an_unknown_customer_gives_back_the_caps(
    service: CheckinService, clock: FrozenClock, repo: MongoCheckinRepository
) -> None:
    issued = await create(service, clock, max_uses=10)

    with pytest.raises(CustomerNotFound):
        await service.scan("a" * 24, issued.token, channel="zalo")

    assert (await service.get(issued.code.id)).remaining == 10
    assert await repo.daily_count("a" * 24, "2026-12-01") == 0
    assert await repo.claim_of(claim_key(issued.code.id, "a" * 24)) is None


# ======================================================================== failures and resumption
class FailingLedger:
    """The real ledger, failing the next ``failures`` earns as a database outage would."""

    def __init__(self, ledger: LedgerService, failures: int) -> None:
        self._ledger = ledger
        self.failures = failures

    async def earn(self, customer_id: str, points: int, **options: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the database went away")
        return await self._ledger.earn(customer_id, points, **options)

    async def balance(self, customer_id: str) -> int:
        return await self._ledger.balance(customer_id)


async def test_a_scan_that_failed_mid_way_is_resumed_by_the_next_one(
    *,
    make_service: Callable[..., CheckinService],
    program: Program,
    clock: FrozenClock,
    ledger: LedgerService,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    failing = FailingLedger(ledger, failures=1)
    service = make_service(program, ledger_=failing)
    customer = await new_customer("u1")
    issued = await create(service, clock, max_uses=10)

    with pytest.raises(ConnectionError):
        await service.scan(customer, issued.token, channel="zalo")
    pending = await repo.claim_of(claim_key(issued.code.id, customer))
    assert pending is not None and pending.state == "pending" and pending.taken

    result = await service.scan(customer, issued.token, channel="zalo")  # the customer taps again

    assert result.balance == 10
    assert (await service.get(issued.code.id)).remaining == 9  # the use was taken once, not twice
    assert await repo.daily_count(customer, "2026-12-01") == 1
    with pytest.raises(CheckinAlreadyUsed):
        await service.scan(customer, issued.token, channel="zalo")


async def test_a_scan_left_by_a_dead_process_is_taken_over_after_its_lease(
    service: CheckinService,
    clock: FrozenClock,
    ledger: LedgerService,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    customer = await new_customer("u1")
    issued = await create(service, clock, max_uses=10)
    key = claim_key(issued.code.id, customer)
    # what a process that died right after claiming leaves behind
    await repo.claim(
        CheckinClaim(
            key=key,
            reward_key=key,
            code_id=issued.code.id,
            customer_id=customer,
            channel="zalo",
            day="2026-12-01",
            lease_until=clock.now() + CLAIM_LEASE,
            created_at=clock.now(),
        )
    )

    with pytest.raises(CheckinAlreadyUsed, match="being processed"):
        await service.scan(customer, issued.token, channel="zalo")
    clock.advance(CLAIM_LEASE + timedelta(seconds=1))
    result = await service.scan(customer, issued.token, channel="zalo")

    assert result.balance == 10
    assert (await service.get(issued.code.id)).remaining == 9
    claim = await repo.claim_of(key)
    assert claim is not None and claim.state == "rewarded"


# ======================================================================== listing
async def test_the_list_shows_live_codes_newest_first(service: CheckinService, clock: FrozenClock) -> None:
    old = await create(service, clock, store="q1")
    clock.advance(timedelta(minutes=1))
    short_lived = await create(service, clock, store="q3", expires_at=clock.now() + timedelta(hours=1))
    clock.advance(timedelta(minutes=1))
    revoked = await create(service, clock, store="q1")
    clock.advance(timedelta(minutes=1))
    newest = await create(service, clock, store="q2")
    await service.revoke(revoked.code.id)
    clock.advance(timedelta(hours=2))

    live = await service.list_codes()
    everything = await service.list_codes(include_inactive=True)
    in_q1 = await service.list_codes(include_inactive=True, store="q1")

    assert [c.id for c in live] == [newest.code.id, old.code.id]
    assert [c.id for c in everything] == [c.code.id for c in (newest, revoked, short_lived, old)]
    assert [c.id for c in in_q1] == [revoked.code.id, old.code.id]
    assert everything[2].state(clock.now()) == "expired"


# ======================================================================== merges
async def test_a_merge_moves_scans_and_counters_and_keeps_once_per_code(
    make_service: Callable[..., CheckinService],
    program: Program,
    clock: FrozenClock,
    repo: MongoCheckinRepository,
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    service = make_service(with_daily_cap(program, 3))
    survivor, merged = await new_customer("u1"), await new_customer("u2")
    shared = await create(service, clock, max_uses=10)
    only_merged = await create(service, clock, max_uses=10)
    await service.scan(survivor, shared.token, channel="zalo")
    await service.scan(merged, shared.token, channel="zalo")
    await service.scan(merged, only_merged.token, channel="zalo")

    moved = await service.reassign_customer(merged, survivor)
    again = await service.reassign_customer(merged, survivor)

    assert (moved, again) == (2, 0)  # one claim copied (the shared one was the survivor's already), one day
    keys = sorted(claim.key for claim in await service.history(survivor))
    assert keys == sorted(claim_key(c.code.id, survivor) for c in (shared, only_merged))
    assert await service.history(merged) == []
    assert await repo.daily_count(survivor, "2026-12-01") == 3
    with pytest.raises(CheckinAlreadyUsed):
        await service.scan(survivor, only_merged.token, channel="zalo")
    extra = await create(service, clock, max_uses=10)
    with pytest.raises(CheckinDailyCap):  # the merged customer's scans count against today's cap
        await service.scan(survivor, extra.token, channel="zalo")


# ======================================================================== links
def test_links_for_the_demo_program(program: Program) -> None:
    token = "0123456789abcdef01234567.tqhf5s.ABCDEFGHIJKLMNOPQRSTUVWX"

    links = checkin_links(program, token, "K7P2MXRT")

    assert links.miniapp == f"https://zalo.me/s/0000000000000000000/?checkin={token}"
    assert links.messenger == f"https://m.me/democafe?ref=checkin.{token}"
    assert links.qr_target == links.miniapp
    assert links.chat_code == "#K7P2MXRT"
    assert "#K7P2MXRT" in links.instruction and "Zalo" in links.instruction
    assert len(REF_PREFIX + token) < 1000  # what the webhook keeps of a ref (Meta allows 2,083)


def test_without_a_mini_app_the_qr_opens_messenger(program: Program) -> None:
    brand = program.brand.model_copy(update={"miniapp_link": None, "messenger_link": "https://m.me/x?a=1"})
    token = "0123456789abcdef01234567.tqhf5s.ABCDEFGHIJKLMNOPQRSTUVWX"

    links = checkin_links(program.model_copy(update={"brand": brand}), token, "K7P2MXRT")

    assert links.miniapp is None
    assert links.qr_target == links.messenger == f"https://m.me/x?a=1&ref=checkin.{token}"


def test_every_refusal_is_a_checkin_error_with_a_distinct_code() -> None:
    refusals = [
        CheckinForged,
        CheckinExpired,
        CheckinExhausted,
        CheckinAlreadyUsed,
        CheckinDailyCap,
        CheckinDisabled,
        CheckinMalformed,
    ]

    codes = [refusal.code for refusal in refusals]

    assert all(issubclass(refusal, CheckinError) for refusal in refusals)
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"checkin_[a-z_]+", code) for code in codes)


# ======================================================================== personal data
async def test_export_and_erasure_of_a_customers_scans(
    *,
    program: Program,
    clock: FrozenClock,
    repo: MongoCheckinRepository,
    make_service: Callable[..., CheckinService],
    new_customer: Callable[[str], Awaitable[str]],
) -> None:
    service = make_service(with_daily_cap(program, 5))
    customer, other = await new_customer("u1"), await new_customer("u2")
    in_q1 = await create(service, clock, max_uses=10, store="q1")
    anywhere = await create(service, clock, max_uses=10)
    await service.scan(customer, in_q1.token, channel="miniapp")
    clock.advance(timedelta(minutes=5))
    await service.scan(customer, anywhere.short_code, channel="zalo")
    await service.scan(other, in_q1.token, channel="zalo")

    exported = await repo.export_customer(customer)

    assert repo.name == "checkins"
    assert [(e["code_id"], e["store"], e["channel"], e["points"]) for e in exported] == [
        (in_q1.code.id, "q1", "miniapp", 10),
        (anywhere.code.id, None, "zalo", 10),
    ]
    assert all(e["customer_id"] == customer and e["state"] == "rewarded" for e in exported)

    erased = await repo.erase_customer(customer)

    assert erased == 3  # two scans and one day's counter
    assert await repo.export_customer(customer) == []
    assert await repo.daily_count(customer, "2026-12-01") == 0
    assert await repo.erase_customer(customer) == 0
    assert len(await repo.export_customer(other)) == 1  # nobody else's scans go
