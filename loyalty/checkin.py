"""QR check-in: staff make codes, customers scan them (or type their short code) and are rewarded once.

**What a QR carries.** A *signed token* ``<code_id>.<exp>.<sig>``: the code's id (24 hex), its expiry
(Unix seconds in base 36) and an HMAC-SHA256 of both with a key derived from ``SECRET_KEY``, truncated to
144 bits (24 base64url characters, no padding, so no two spellings decode alike). A forged or altered
token is refused before any query; a database id alone would let anyone who saw one id guess nothing,
but prove nothing either. Tokens are ~56 characters, so ``checkin.<token>`` fits easily in an m.me
``ref``. A Zalo follow carries no parameter at all (``shared/platforms/zalo.md`` section 7), so every
code also has a *short code*: 8 characters from an alphabet without 0/O/1/I/L, unique (a unique index;
never reused, so an old code typed late is "expired", not another code), that a customer sends to the
Zalo OA chat (``#K7P2MXRT``). Short codes are a shared secret of ~39 bits, not a signature: entry points
rate-limit the text path.

**A scan, without transactions.** The order is chosen so that every refusal leaves nothing behind and
every award happens once:

1. validate the input's type and shape, verify the signature (constant time) and the token's expiry;
2. read the code: revoked → ``checkin_disabled``, expired → ``checkin_expired``;
3. *claim* ``checkin:<code_id>:<customer_id>`` (insert, ``_id`` = key): a duplicate means this customer
   already scanned it (``checkin_already_used``), or is scanning it right now (a double tap);
4. take one of today's rewarded scans (a counter per customer and local day, a conditional ``$inc``)
   and one use of the code (``remaining > 0`` → ``$inc: -1``): a refusal gives back what was taken and
   drops the claim, so the customer may try again tomorrow or another code;
5. deliver: the voucher (``VoucherIssuer.issue``, idempotent on the key) and then the points
   (``ledger.earn``, idempotent on the key); then mark the claim rewarded.

A failure during delivery (a database outage) keeps the claim *pending* with its lease released: the
customer's next scan resumes at step 5 and the idempotency keys make the rewards exactly-once. A process
that dies mid-scan leaves a lease that another scan takes over after :data:`CLAIM_LEASE`. The one window
not covered exactly is a crash between taking the caps and recording that they were taken: then a cap
may be counted twice, which under-rewards (never over-rewards) that one customer for that day.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from loyalty.clock import LOCAL_TZ, Clock
from loyalty.errors import (
    CheckinAlreadyUsed,
    CheckinDailyCap,
    CheckinDisabled,
    CheckinExhausted,
    CheckinExpired,
    CheckinForged,
    CheckinInvalid,
    CheckinMalformed,
    CheckinNotFound,
    LoyaltyError,
)
from loyalty.ids import new_id
from loyalty.program import Program

log = logging.getLogger("loyalty.checkin")

#: The alphabet of short codes: no 0/O, 1/I/L, so a code read off a counter card is typed right.
SHORT_CODE_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
SHORT_CODE_LENGTH: Final = 8
#: A Messenger ``ref`` (m.me link) that carries a check-in token: ``checkin.<token>``.
REF_PREFIX: Final = "checkin."
#: How long a scan in progress holds its claim before another scan of the same customer may take it over.
CLAIM_LEASE: Final = timedelta(seconds=30)
MAX_USES: Final = 1_000_000
MAX_POINTS: Final = 1_000_000
MAX_VALIDITY: Final = timedelta(days=366)
_MAX_INPUT: Final = 200
_SIG_BYTES: Final = 18  # 144 bits: 24 base64url characters exactly
_KEY_CONTEXT: Final = b"social-loyalty/checkin-token/v1"
_TOKEN: Final = re.compile(r"(?P<id>[0-9a-f]{24})\.(?P<exp>[0-9a-z]{1,8})\.(?P<sig>[A-Za-z0-9_-]{24})")
_SHORT: Final = re.compile(f"[{SHORT_CODE_ALPHABET}]{{{SHORT_CODE_LENGTH}}}")
_SHORT_NOISE: Final = re.compile(r"[\s\-_.]")
_ID_TEXT: Final = re.compile(r"[A-Za-z0-9_:-]{1,128}")
_SHORT_CODE_ATTEMPTS: Final = 8
_CLAIM_ATTEMPTS: Final = 3


# ======================================================================== models
class CheckinCode(BaseModel):
    """A check-in code as staff made it. ``remaining`` uses are taken atomically by scans."""

    model_config = ConfigDict(frozen=True)

    id: str
    short_code: str
    points: int
    voucher_template: str | None = None
    max_uses: int
    remaining: int
    expires_at: datetime
    store: str | None = None
    created_by: str
    created_at: datetime
    status: Literal["active", "revoked"] = "active"
    revoked_at: datetime | None = None

    @property
    def uses(self) -> int:
        return self.max_uses - self.remaining

    def state(self, now: datetime) -> Literal["active", "revoked", "expired", "exhausted"]:
        if self.status == "revoked":
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.remaining <= 0:
            return "exhausted"
        return "active"


class CheckinClaim(BaseModel):
    """One customer's scan of one code (``checkins``): the guard of "once per customer per code" and the
    log a resumed scan continues from."""

    model_config = ConfigDict(frozen=True)

    key: str  # checkin:<code_id>:<customer_id>, the document's _id
    reward_key: str  # the idempotency key of the voucher and the points (kept as-is by merges)
    code_id: str
    customer_id: str
    channel: str
    day: str  # the local date (Asia/Ho_Chi_Minh) whose daily cap the scan counts against
    state: Literal["pending", "rewarded"] = "pending"
    lease_until: datetime
    taken: bool = False  # the daily scan and the code's use were taken
    points: int = 0
    voucher_id: str | None = None
    created_at: datetime
    rewarded_at: datetime | None = None


class IssuedCode(BaseModel):
    """What :meth:`CheckinService.create_code` returns: the code, its signed token and its short code."""

    model_config = ConfigDict(frozen=True)

    code: CheckinCode
    token: str
    short_code: str


class CheckinResult(BaseModel):
    """A rewarded scan. ``voucher`` is whatever the voucher issuer returned (``None``: points only)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    points_awarded: int
    voucher: Any = None
    balance: int
    code: CheckinCode


# ======================================================================== interfaces
class CheckinRepository(Protocol):
    """Storage of codes (``checkin_codes``), claims (``checkins``) and daily counters (``checkin_daily``).

    Every method is one atomic single-document operation (the merge excepted); none reads then writes.
    """

    async def insert_code(self, code: CheckinCode) -> bool:
        """Insert; ``False`` when the short code is taken (the caller draws another)."""
        ...

    async def code(self, code_id: str) -> CheckinCode | None: ...
    async def code_by_short(self, short_code: str) -> CheckinCode | None: ...
    async def codes(self, *, live_at: datetime | None, store: str | None, limit: int) -> list[CheckinCode]:
        """Newest first; with ``live_at`` only codes active and unexpired at that moment."""
        ...

    async def revoke(self, code_id: str, at: datetime) -> bool:
        """Revoke (idempotent); ``False`` when there is no such code."""
        ...

    async def take_use(self, code_id: str, now: datetime) -> bool:
        """``remaining -= 1`` if the code is active, unexpired at ``now`` and ``remaining > 0``."""
        ...

    async def give_back_use(self, code_id: str) -> None: ...
    async def take_daily(self, customer_id: str, day: str, cap: int, *, expires_at: datetime) -> bool:
        """Count one rewarded scan of ``day`` unless ``cap`` are already counted."""
        ...

    async def give_back_daily(self, customer_id: str, day: str) -> None: ...
    async def daily_count(self, customer_id: str, day: str) -> int: ...
    async def claim(self, claim: CheckinClaim) -> bool:
        """Insert the claim; ``False`` when one with this key exists."""
        ...

    async def claim_of(self, key: str) -> CheckinClaim | None: ...
    async def take_over(self, key: str, seen_lease: datetime, lease_until: datetime) -> bool:
        """Extend a pending claim's lease if it still is ``seen_lease`` (one taker wins)."""
        ...

    async def mark_taken(self, key: str) -> None: ...
    async def release(self, key: str, at: datetime) -> None:
        """End a pending claim's lease now: the customer's next scan resumes it at once."""
        ...

    async def drop_claim(self, key: str) -> None: ...
    async def finish(self, key: str, *, points: int, voucher_id: str | None, at: datetime) -> None: ...
    async def claims_of_customer(self, customer_id: str, *, limit: int) -> list[CheckinClaim]: ...
    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """Move claims and daily counters to the survivor of a merge (``loyalty.customers.CustomerOwned``)."""
        ...


class PointsLedger(Protocol):
    """The part of :class:`loyalty.ledger.LedgerService` check-in uses."""

    async def earn(
        self, customer_id: str, points: int, *, key: str, reason: str, ref: Mapping[str, str] | None = None
    ) -> object: ...
    async def balance(self, customer_id: str) -> int: ...


class VoucherIssuer(Protocol):
    """Issues a voucher from a template, once per ``key`` (``loyalty.vouchers.VoucherService`` is one)."""

    async def issue(self, customer_id: str, template_id: str, *, key: str, source: str) -> Any: ...


class TierUpgrader(Protocol):
    """Re-evaluates a customer's tier after points were earned (``loyalty.tiers.TierService``)."""

    async def after_earn(self, customer_id: str) -> object: ...


# ======================================================================== the service
class CheckinService:
    """Create, list and revoke check-in codes; reward a customer's scan once (see the module docstring)."""

    def __init__(  # noqa: PLR0917 - the composition root passes the collaborators in this order
        self,
        repo: CheckinRepository,
        ledger: PointsLedger,
        vouchers: VoucherIssuer | None,
        program: Program,
        clock: Clock,
        secret_key: bytes,
        *,
        tiers: TierUpgrader | None = None,
    ) -> None:
        if len(secret_key) < 16:
            raise ValueError("the check-in signing key needs at least 16 bytes of SECRET_KEY")
        self._repo = repo
        self._ledger = ledger
        self._vouchers = vouchers
        self._program = program
        self._clock = clock
        self._tiers = tiers
        # A key of its own, so a check-in signature can never be replayed as another HMAC of SECRET_KEY.
        self._key = hmac.new(secret_key, _KEY_CONTEXT, hashlib.sha256).digest()

    # ------------------------------------------------------------------ staff side
    async def create_code(
        self,
        *,
        points: int | None = None,
        voucher_template: str | None = None,
        max_uses: int = 1,
        expires_at: datetime,
        store: str | None = None,
        created_by: str,
    ) -> IssuedCode:
        """Make a code. ``points`` defaults to the program's ``checkin.points_per_scan``; ``max_uses`` 1 is a
        one-time code. Raises :class:`CheckinInvalid` for a code that could never reward anyone."""
        now = self._clock.now()
        points = self._program.checkin.points_per_scan if points is None else points
        self._validate_new(
            points=points,
            voucher_template=voucher_template,
            max_uses=max_uses,
            expires_at=expires_at,
            store=store,
            created_by=created_by,
            now=now,
        )
        expires = expires_at.replace(microsecond=0)
        for _attempt in range(_SHORT_CODE_ATTEMPTS):
            code = CheckinCode(
                id=new_id(),
                short_code=new_short_code(),
                points=points,
                voucher_template=voucher_template,
                max_uses=max_uses,
                remaining=max_uses,
                expires_at=expires,
                store=store,
                created_by=created_by,
                created_at=now,
            )
            if await self._repo.insert_code(code):
                return IssuedCode(code=code, token=self.token_for(code), short_code=code.short_code)
        # 31^8 short codes: eight collisions in a row mean something else is wrong, not bad luck.
        raise RuntimeError("could not draw a free short code")

    def _validate_new(
        self,
        *,
        points: int,
        voucher_template: str | None,
        max_uses: int,
        expires_at: datetime,
        store: str | None,
        created_by: str,
        now: datetime,
    ) -> None:
        if isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= MAX_POINTS:
            raise CheckinInvalid(f"points must be a whole number from 0 to {MAX_POINTS:,}")
        if voucher_template is not None:
            if self._program.voucher_template(voucher_template) is None:
                raise CheckinInvalid(f"no voucher template {voucher_template!r} in the program")
            if self._vouchers is None:
                raise CheckinInvalid("vouchers are not available to this check-in service")
        if points == 0 and voucher_template is None:
            raise CheckinInvalid("a check-in code must reward points, a voucher or both")
        if isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= MAX_USES:
            raise CheckinInvalid(f"max_uses must be from 1 to {MAX_USES:,}")
        if expires_at.tzinfo is None:
            raise CheckinInvalid("expires_at must be timezone-aware")
        if expires_at.replace(microsecond=0) <= now:
            raise CheckinInvalid("expires_at must be in the future")
        if expires_at - now > MAX_VALIDITY:
            raise CheckinInvalid(f"a check-in code is valid for at most {MAX_VALIDITY.days} days")
        if store is not None and not 1 <= len(store) <= 60:
            raise CheckinInvalid("store must be 1 to 60 characters")
        if not 1 <= len(created_by) <= 100:
            raise CheckinInvalid("created_by must be 1 to 100 characters")

    async def get(self, code_id: str) -> CheckinCode:
        code = await self._repo.code(code_id) if isinstance(code_id, str) else None
        if code is None:
            raise CheckinNotFound(f"no check-in code {code_id!r}")
        return code

    async def list_codes(
        self, *, include_inactive: bool = False, store: str | None = None, limit: int = 100
    ) -> list[CheckinCode]:
        """Newest first; by default only codes that are active and unexpired (exhausted ones included)."""
        live_at = None if include_inactive else self._clock.now()
        return await self._repo.codes(live_at=live_at, store=store, limit=max(1, min(limit, 1000)))

    async def revoke(self, code_id: str) -> CheckinCode:
        """Disable a code at once (idempotent). Scans already rewarded stay rewarded."""
        if not isinstance(code_id, str) or not await self._repo.revoke(code_id, self._clock.now()):
            raise CheckinNotFound(f"no check-in code {code_id!r}")
        return await self.get(code_id)

    def token_for(self, code: CheckinCode) -> str:
        """The signed token of ``code`` (deterministic: the same code always prints the same QR)."""
        payload = f"{code.id}.{_base36(int(code.expires_at.timestamp()))}"
        return f"{payload}.{self._sign(payload)}"

    def links(self, code: CheckinCode) -> CheckinLinks:
        return checkin_links(self._program, self.token_for(code), code.short_code)

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()[:_SIG_BYTES]
        return base64.urlsafe_b64encode(digest).decode("ascii")

    # ------------------------------------------------------------------ customer side
    async def scan(self, customer_id: str, token_or_short_code: str, *, channel: str) -> CheckinResult:
        """Reward ``customer_id`` for a scanned token (or a typed short code) once; see the module docstring.

        :raises CheckinMalformed: the input is not text of a plausible size (nothing was queried).
        :raises CheckinForged, CheckinExpired, CheckinDisabled, CheckinExhausted, CheckinAlreadyUsed,
            CheckinDailyCap: the refusals, each with its own code.
        """
        _require_id(customer_id, "customer_id")
        _require_id(channel, "channel")
        code = await self._resolve(token_or_short_code)
        now = self._clock.now()
        state = code.state(now)
        if state == "revoked":
            raise CheckinDisabled("this check-in code was disabled")
        if state == "expired":
            raise CheckinExpired("this check-in code has expired")
        key = claim_key(code.id, customer_id)
        if state == "exhausted":  # a read, not a write: the customer's own replay says so instead
            if await self._repo.claim_of(key) is not None:
                raise CheckinAlreadyUsed("you already checked in with this code")
            raise CheckinExhausted("every use of this check-in code was taken")
        claim = await self._claim(code, customer_id, channel, now)
        if not claim.taken:
            await self._take_caps(claim, now)
        return await self._deliver(claim, code)

    async def history(self, customer_id: str, *, limit: int = 50) -> list[CheckinClaim]:
        """The customer's scans, newest first."""
        return await self._repo.claims_of_customer(customer_id, limit=max(1, min(limit, 500)))

    async def _resolve(self, raw: object) -> CheckinCode:
        """The code a scanned token or a typed short code names; refusals before any write."""
        if not isinstance(raw, str):
            raise CheckinMalformed(f"a check-in code is text, not {type(raw).__name__}")
        if len(raw) > _MAX_INPUT:
            raise CheckinMalformed("this is too long to be a check-in code")
        text = raw.strip().removeprefix(REF_PREFIX)
        # A token never normalises into a short code (56 characters, not 8), so the order is safe; and a
        # typed "#K7P2MXRT." (a sentence's full stop) is still read as the short code.
        if (short := normalize_short_code(text)) is not None:
            by_short = await self._repo.code_by_short(short)
            if by_short is None:
                raise CheckinForged("no check-in code has this short code")
            return by_short
        code_id, expires_at = self._verify(text)
        if expires_at <= self._clock.now():
            raise CheckinExpired("this check-in code has expired")
        code = await self._repo.code(code_id)
        if code is None or int(code.expires_at.timestamp()) != int(expires_at.timestamp()):
            raise CheckinForged("this check-in code is not one of ours")
        return code

    def _verify(self, token: str) -> tuple[str, datetime]:
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise CheckinForged("this check-in code is not one of ours")
        payload = f"{match['id']}.{match['exp']}"
        # compare_digest on the encoded strings: every character counts, in constant time.
        if not hmac.compare_digest(self._sign(payload), match["sig"]):
            raise CheckinForged("this check-in code is not one of ours")
        expires = datetime.fromtimestamp(int(match["exp"], 36), tz=UTC)
        return match["id"], expires

    async def _claim(self, code: CheckinCode, customer_id: str, channel: str, now: datetime) -> CheckinClaim:
        key = claim_key(code.id, customer_id)
        claim = CheckinClaim(
            key=key,
            reward_key=key,
            code_id=code.id,
            customer_id=customer_id,
            channel=channel,
            day=now.astimezone(LOCAL_TZ).date().isoformat(),
            lease_until=now + CLAIM_LEASE,
            created_at=now,
        )
        for _attempt in range(_CLAIM_ATTEMPTS):
            if await self._repo.claim(claim):
                return claim
            existing = await self._repo.claim_of(key)
            if existing is None:
                continue  # a refused attempt dropped its claim between our insert and our read
            if existing.state == "rewarded":
                raise CheckinAlreadyUsed("you already checked in with this code")
            if existing.lease_until > now:
                raise CheckinAlreadyUsed("this check-in is already being processed")
            # a pending claim whose scan failed or died: resume it, if no concurrent scan does first
            lease_until = now + CLAIM_LEASE
            if await self._repo.take_over(key, existing.lease_until, lease_until):
                log.info("check-in %s: resuming a scan left pending", key)
                return existing.model_copy(update={"lease_until": lease_until})
            raise CheckinAlreadyUsed("this check-in is already being processed")
        raise CheckinAlreadyUsed("this check-in is already being processed")

    async def _take_caps(self, claim: CheckinClaim, now: datetime) -> None:
        """Take today's scan and one use of the code, or neither (and drop the claim)."""
        cap = self._program.checkin.daily_cap_per_customer
        day_over = datetime.fromisoformat(claim.day).replace(tzinfo=LOCAL_TZ) + timedelta(days=2)
        daily_taken = use_taken = False
        try:
            if not await self._repo.take_daily(claim.customer_id, claim.day, cap, expires_at=day_over):
                raise CheckinDailyCap(f"at most {cap} rewarded check-in(s) a day")
            daily_taken = True
            if not await self._repo.take_use(claim.code_id, now):
                raise await self._why_not_usable(claim.code_id, now)
            use_taken = True
            await self._repo.mark_taken(claim.key)
        except BaseException:
            await self._undo(claim, daily=daily_taken, use=use_taken)
            raise

    async def _why_not_usable(self, code_id: str, now: datetime) -> LoyaltyError:
        code = await self._repo.code(code_id)
        state = code.state(now) if code is not None else "revoked"
        if state == "revoked":
            return CheckinDisabled("this check-in code was disabled")
        if state == "expired":
            return CheckinExpired("this check-in code has expired")
        return CheckinExhausted("every use of this check-in code was taken")

    async def _undo(self, claim: CheckinClaim, *, daily: bool, use: bool) -> None:
        """Give back what a refused scan took and drop its claim, so nothing of it remains."""
        if use:
            await self._repo.give_back_use(claim.code_id)
        if daily:
            await self._repo.give_back_daily(claim.customer_id, claim.day)
        await self._repo.drop_claim(claim.key)

    async def _deliver(self, claim: CheckinClaim, code: CheckinCode) -> CheckinResult:
        """Issue the voucher, then earn the points (both idempotent on the claim's reward key)."""
        voucher: Any = None
        delivered = False
        try:
            if code.voucher_template is not None:
                if self._vouchers is None:
                    raise CheckinInvalid("vouchers are not available to this check-in service")
                voucher = await self._vouchers.issue(
                    claim.customer_id, code.voucher_template, key=claim.reward_key, source="checkin"
                )
                delivered = True
            if code.points > 0:
                ref = {"code_id": code.id, "channel": claim.channel}
                if code.store is not None:
                    ref["store"] = code.store
                await self._ledger.earn(
                    claim.customer_id, code.points, key=claim.reward_key, reason="checkin", ref=ref
                )
            await self._repo.finish(
                claim.key, points=code.points, voucher_id=_voucher_id(voucher), at=self._clock.now()
            )
        except LoyaltyError:
            if delivered:
                await self._repo.release(claim.key, self._clock.now())
            else:  # refused before anything reached the customer: as if the scan never happened
                await self._undo(claim, daily=True, use=True)
            raise
        except BaseException:
            await self._repo.release(claim.key, self._clock.now())
            raise
        if code.points > 0 and self._tiers is not None:
            try:
                await self._tiers.after_earn(claim.customer_id)
            except Exception:
                # The scan is rewarded and recorded; the tier review job catches up with a missed upgrade.
                log.exception("check-in %s: tier re-evaluation failed", claim.key)
        return CheckinResult(
            points_awarded=code.points,
            voucher=voucher,
            balance=await self._ledger.balance(claim.customer_id),
            code=code,
        )

    # ------------------------------------------------------------------ merges
    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """``loyalty.customers.CustomerOwned``: the survivor keeps both customers' scans and counters."""
        return await self._repo.reassign_customer(from_id, into_id)


# ======================================================================== helpers
def claim_key(code_id: str, customer_id: str) -> str:
    return f"checkin:{code_id}:{customer_id}"


def new_short_code() -> str:
    return "".join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(SHORT_CODE_LENGTH))


def normalize_short_code(text: str) -> str | None:
    """``K7P2MXRT`` from what a customer typed (``#k7p2 mxrt``, ``K7P2-MXRT``); ``None`` if it is not one."""
    candidate = _SHORT_NOISE.sub("", text.strip().removeprefix("#")).upper()
    return candidate if _SHORT.fullmatch(candidate) else None


def token_from_ref(ref: str | None) -> str | None:
    """The token of a Messenger ``ref`` made by :func:`checkin_links` (``checkin.<token>``), else ``None``."""
    if not ref or not ref.startswith(REF_PREFIX):
        return None
    return ref.removeprefix(REF_PREFIX)


def _require_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not _ID_TEXT.fullmatch(value):
        raise CheckinMalformed(f"{what} must be an id string")


def _voucher_id(voucher: object) -> str | None:
    for attribute in ("id", "code"):
        value = getattr(voucher, attribute, None)
        if isinstance(value, str):
            return value
    return None


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if number == 0:
            return text


# ======================================================================== links
class CheckinLinks(BaseModel):
    """What a customer scans or types for one code.

    ``qr_target`` is what the printed QR encodes: the Zalo Mini App link when the brand has a Mini App (it
    opens inside Zalo, logs the customer in and posts the token: the smooth path for most Vietnamese
    customers), else the m.me link (Messenger carries the ``ref`` natively). The short code is printed
    under the QR for customers who follow the Zalo OA instead (a follow carries no parameter).
    """

    model_config = ConfigDict(frozen=True)

    token: str
    short_code: str
    chat_code: str  # what to send in the Zalo OA chat: "#K7P2MXRT"
    miniapp: str | None
    messenger: str | None
    zalo_oa: str | None
    instruction: str  # Vietnamese, printed under the QR

    @property
    def qr_target(self) -> str | None:
        return self.miniapp or self.messenger


def checkin_links(program: Program, token: str, short_code: str) -> CheckinLinks:
    """The Mini App deep link (``<miniapp_link>?checkin=<token>``, read with ``getRouteParams``), the
    m.me link (``?ref=checkin.<token>``, well under Meta's 2,083 characters) and the short code."""
    brand = program.brand
    chat_code = f"#{short_code}"
    miniapp = _with_param(brand.miniapp_link, "checkin", token) if brand.miniapp_link else None
    messenger = _with_param(brand.messenger_link, "ref", REF_PREFIX + token) if brand.messenger_link else None
    scan = "Quét mã QR để check-in nhận quà"
    if brand.zalo_oa_link:
        instruction = f"{scan}, hoặc nhắn {chat_code} cho {brand.name} trên Zalo ({brand.zalo_oa_link})."
    else:
        instruction = f"{scan}, hoặc nhắn {chat_code} cho {brand.name} trên Zalo."
    return CheckinLinks(
        token=token,
        short_code=short_code,
        chat_code=chat_code,
        miniapp=miniapp,
        messenger=messenger,
        zalo_oa=brand.zalo_oa_link,
        instruction=instruction,
    )


def _with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query: Sequence[tuple[str, str]] = [(k, v) for k, v in parse_qsl(parts.query) if k != name]
    return urlunsplit(parts._replace(query=urlencode([*query, (name, value)])))
