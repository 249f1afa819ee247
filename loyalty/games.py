"""Minigames: a provably fair, oversell-proof instant-win engine (wheel, open gift, scratch, flip card,
shake tree) and a quiz, configured as data (``Program.games``, plus campaigns stored at runtime).

**A play** is one record in ``game_plays`` whose ``_id`` is the *play id*, derived from the campaign,
the customer and the client's idempotency key (:func:`play_id_for`): a double tap sends the same key and
lands on the same record, so it plays once. The id is not chosen by the server, so the operator cannot
re-roll a play by picking another id. A play moves once, by one conditional update, from ``pending`` to
``completed`` or ``rolled_back``, like a reward redemption (``loyalty/rewards.py``):

1. the record is inserted ``pending`` (a duplicate: the key played before; resume that record);
2. the *turn* is taken: one conditional update of the customer's player document (``game_players``)
   that checks the per-day and per-campaign limits and the turn it uses (a free turn of the day, a turn
   granted by an order or a check-in, or a bought one) and pushes the play id, so it is taken once;
3. a bought turn spends ``cost.points`` through the ledger (key ``game:<play_id>:cost``);
4. the *draw* is recorded on the play (round, the prize table in force, the prize), then the prize's
   stock is taken by ONE conditional ``update_one`` (total and daily stock together, ``remaining > 0``,
   the play id pushed) and, with a budget, the prize's value from the campaign's budget. A prize found
   out of stock is removed from the table and the play draws again (next round);
5. the reward is granted: points (``ledger.earn``, key ``game:<play_id>``, not qualifying for tiers) or a
   voucher (key ``game:<play_id>``); then ``pending → completed``.

Any refusal on the way (no turn, not enough points, every prize sold out, a voucher limit) moves the play
to ``rolled_back`` with the refusal's code and undoes what was done, each undo idempotent: the voucher
voided, the points given back (``:reverse`` keys), the stock, the budget and the turn given back. A retry
with the same key resumes the record where it stands; :meth:`GameService.resume_pending` does it for
plays no client came back for.

**Fairness.** Each campaign has a 32-byte server seed drawn with :mod:`secrets` (``game_seeds``); its
SHA-256 is published before the campaign starts (:meth:`GameService.commitment`), the seed itself only
after it ended (:meth:`GameService.reveal`). A play's draw value of round ``r`` is
``HMAC-SHA256(seed, "<play_id>:<r>")``; its first 8 bytes as a big-endian integer ``v`` pick ticket
``v * total_weight >> 64`` in the table in force (the prizes with stock left, in configured order, with
their configured weights). The play stores that table, so :meth:`GameService.verify` (and
``loyalty games verify``, and the public fairness page) recompute every outcome from the revealed seed,
and check that every weight is the configured one: no hidden win quota.

Prizes that ran out are removed from the draw and the remaining weights renormalised (the out-of-stock
policy is published with the odds).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from loyalty.clock import LOCAL_TZ, Clock
from loyalty.customers import Customer
from loyalty.errors import (
    GameDailyLimit,
    GameEnded,
    GameInvalid,
    GameLimitReached,
    GameNotEligible,
    GameNotFound,
    GameNotStarted,
    GameNoTurns,
    GameRateLimited,
    GameSeedHidden,
    GameSoldOut,
    GameWrongKind,
    IdempotencyConflict,
    LoyaltyError,
)
from loyalty.program import GameCampaign, GamePrize, Program
from loyalty.rewards import refusal
from loyalty.vouchers import Take, Voucher

log = logging.getLogger("loyalty.games")

_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_GRANT_KEY: Final = re.compile(r"^[A-Za-z0-9_:.-]{1,200}$")
_MAX_CUSTOMER_ID: Final = 64
_TAKE_ROUNDS: Final = 8
SEED_BYTES: Final = 32

PlayState = Literal["pending", "completed", "rolled_back"]
TurnKind = Literal["free", "bonus", "points"]


# ============================================================================================ models
class TableLine(BaseModel):
    """One prize of the table in force for a draw, with its (configured) weight."""

    model_config = ConfigDict(frozen=True)

    prize_id: str
    weight: int


class PrizeSnapshot(BaseModel):
    """What the play won, as configured when it was drawn (a later edit never changes a play)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    reward: Literal["points", "voucher", "nothing"]
    points: int = 0
    voucher_template: str | None = None
    value_vnd: int = 0

    @classmethod
    def of(cls, prize: GamePrize) -> PrizeSnapshot:
        return cls(
            id=prize.id,
            name=prize.name,
            reward=prize.reward,
            points=prize.points,
            voucher_template=prize.voucher_template,
            value_vnd=prize.value_vnd,
        )


class PlayRecord(BaseModel):
    """The stored state of one play (``game_plays``, ``_id`` = :attr:`play_id`)."""

    model_config = ConfigDict(frozen=True)

    play_id: str
    key: str
    campaign_id: str
    customer_id: str
    kind: str
    state: PlayState = "pending"
    created_at: datetime
    day: str  # local day (Asia/Ho_Chi_Minh) of the play: daily limits and daily stock
    points_cost: int = 0  # the price of a bought turn when the play started
    paid: TurnKind | None = None
    round: int | None = None  # the draw round that decided the prize (None: not drawn yet)
    table: tuple[TableLine, ...] = ()
    prize: PrizeSnapshot | None = None
    excluded: tuple[str, ...] = ()  # prizes found sold out while taking their stock
    final: bool = False  # the draw's stock is taken and no later round may replace it
    answers: dict[str, int] | None = None  # quiz
    score: int | None = None  # quiz
    finished_at: datetime | None = None
    voucher_code: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def earn_key(self) -> str:
        return f"game:{self.play_id}"

    @property
    def spend_key(self) -> str:
        return f"game:{self.play_id}:cost"


class PlayResult(BaseModel):
    """A completed play, as the entry points show it."""

    model_config = ConfigDict(frozen=True)

    play_id: str
    campaign_id: str
    customer_id: str
    kind: str
    prize: PrizeSnapshot | None  # None: a quiz score below every prize
    won: bool  # a prize other than "nothing"
    points_awarded: int
    voucher: Voucher | None
    paid: TurnKind | None
    points_spent: int
    created_at: datetime
    score: int | None = None
    questions: int | None = None
    correct_answers: dict[str, int] | None = None  # quiz: shown only after answering


class HeldTurn(BaseModel):
    model_config = ConfigDict(frozen=True)

    play_id: str
    paid: TurnKind
    day: str


class PlayerState(BaseModel):
    """A customer's counters in one campaign (``game_players``)."""

    model_config = ConfigDict(frozen=True)

    plays: int = 0  # plays holding a slot (refunded plays give theirs back)
    bonus: int = 0  # granted turns left
    day: str = ""
    day_plays: int = 0
    day_free: int = 0
    held: tuple[HeldTurn, ...] = ()

    def plays_on(self, day: str) -> int:
        return self.day_plays if self.day == day else 0

    def free_used_on(self, day: str) -> int:
        return self.day_free if self.day == day else 0

    def held_turn(self, play_id: str) -> HeldTurn | None:
        return next((turn for turn in self.held if turn.play_id == play_id), None)


class StockState(BaseModel):
    model_config = ConfigDict(frozen=True)

    remaining: int | None  # None: no total stock
    day: str = ""
    day_taken: int = 0


class SeedRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    campaign_id: str
    seed: str  # hex
    commitment: str  # SHA-256 of the seed bytes, hex
    created_at: datetime


class PlayerStatus(BaseModel):
    """What a customer can do in a campaign now (for the menu and the Mini App)."""

    model_config = ConfigDict(frozen=True)

    campaign_id: str
    free_turns_left: int
    bonus_turns: int
    plays_today: int
    plays_total: int
    points_per_play: int
    can_play: bool
    reason: str | None  # the refusal code when it cannot


class OddsLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    prize_id: str
    name: str
    reward: str
    weight: int
    probability: float  # weight / total configured weight
    stock: int | None
    daily_stock: int | None
    remaining: int | None


class QuizQuestionView(BaseModel):
    """A question as a client sees it: never the answer."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    choices: tuple[str, ...]


class ReportLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    prize_id: str
    name: str
    configured_probability: float
    observed: int
    observed_frequency: float
    expected: float  # the sum over plays of the probability the table in force gave this prize


class GameReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    campaign_id: str
    plays: int  # completed draws
    rolled_back: int
    lines: tuple[ReportLine, ...]
    chi_square: float  # observed against expected-from-tables
    degrees_of_freedom: int
    budget_vnd: int | None
    value_given_vnd: int


class VerifyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    campaign_id: str
    commitment: str
    seed: str
    commitment_ok: bool
    checked: int
    mismatches: tuple[tuple[str, str], ...]  # (play id, what does not match)

    @property
    def ok(self) -> bool:
        return self.commitment_ok and not self.mismatches


# ============================================================================================ draws
def play_id_for(campaign_id: str, customer_id: str, key: str) -> str:
    """The play id of a client key: 32 hex characters, fixed by the request (never by the server)."""
    digest = hashlib.sha256(f"{campaign_id}\x00{customer_id}\x00{key}".encode()).hexdigest()
    return digest[:32]


def draw_value(seed: bytes, play_id: str, round_no: int) -> int:
    """The 64-bit draw value of a play's round: the first 8 bytes of HMAC-SHA256(seed, "<id>:<round>")."""
    mac = hmac.new(seed, f"{play_id}:{round_no}".encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big")


def pick(value: int, table: Sequence[TableLine]) -> str:
    """The prize a 64-bit ``value`` picks: ticket ``value * total >> 64``, by cumulative weight."""
    total = sum(line.weight for line in table)
    if total <= 0:
        raise ValueError("an empty prize table")
    ticket = (value * total) >> 64
    for line in table:
        if ticket < line.weight:
            return line.prize_id
        ticket -= line.weight
    raise AssertionError("unreachable: the ticket is below the total")  # pragma: no cover


def budget_key(play_id: str, prize_id: str) -> str:
    """What holds a play's share of the budget: per prize, so a unit given back is the one taken."""
    return f"{play_id}:{prize_id}"


def commitment_of(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def secure_seed(_campaign_id: str) -> bytes:
    """The production seed source: 32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(SEED_BYTES)


def local_day(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TZ).date().isoformat()


def score_quiz(campaign: GameCampaign, answers: Mapping[str, int]) -> int:
    return sum(1 for q in campaign.questions if answers.get(q.id) == q.answer)


def prize_for_score(campaign: GameCampaign, score: int, *, excluded: Sequence[str] = ()) -> GamePrize | None:
    """The quiz prize of the highest ``min_score`` reached, skipping prizes in ``excluded`` (sold out)."""
    lines = sorted(campaign.score_prizes, key=lambda line: line.min_score, reverse=True)
    for line in lines:
        if score >= line.min_score and line.prize not in excluded:
            return campaign.prize(line.prize)
    return None


def per_campaign_limit(campaign: GameCampaign) -> int | None:
    """Plays per customer in the campaign: as configured; a quiz without a limit allows one attempt."""
    if campaign.limits.per_campaign is not None:
        return campaign.limits.per_campaign
    return 1 if campaign.kind == "quiz" else None


# ============================================================================================ storage
class GameRepository(Protocol):
    """The storage minigames need (``storage.games.MongoGameRepository``)."""

    async def stored_campaigns(self) -> list[GameCampaign]: ...
    async def save_campaign(self, campaign: GameCampaign, *, at: datetime) -> None: ...
    async def delete_campaign(self, campaign_id: str) -> bool: ...

    async def seed(self, campaign_id: str) -> SeedRecord | None: ...
    async def create_seed(self, record: SeedRecord) -> SeedRecord:
        """Insert ``record``; when the campaign has a seed already, that one (it never changes)."""
        ...

    async def play(self, play_id: str) -> PlayRecord | None: ...
    async def create_play(self, record: PlayRecord) -> PlayRecord:
        """Insert ``record``; if the play id exists, the stored record instead."""
        ...

    async def record_draw(
        self,
        play_id: str,
        *,
        expected_round: int | None,
        round_no: int,
        table: Sequence[TableLine],
        prize: PrizeSnapshot | None,
        excluded: Sequence[str],
        paid: TurnKind | None,
    ) -> bool:
        """Set the draw (and the turn that paid for it) of a pending play whose round is
        ``expected_round`` and whose draw is not final; True if this call did."""
        ...

    async def finalize_draw(self, play_id: str, *, round_no: int) -> bool:
        """Make the draw of round ``round_no`` final (a pending play still at that round); True if so."""
        ...

    async def finish_play(
        self,
        play_id: str,
        state: Literal["completed", "rolled_back"],
        *,
        at: datetime,
        voucher_code: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """``pending → state``; True if this call made the transition."""
        ...

    async def pending_plays(self, *, older_than: datetime, limit: int) -> list[PlayRecord]: ...
    def plays(self, campaign_id: str) -> AsyncIterator[PlayRecord]:
        """Every play of the campaign, oldest first."""
        ...

    async def player(self, campaign_id: str, customer_id: str) -> PlayerState | None: ...
    async def take_turn(
        self,
        campaign_id: str,
        customer_id: str,
        turn: HeldTurn,
        *,
        free_per_day: int,
        per_day: int | None,
        per_campaign: int | None,
    ) -> bool:
        """One conditional update: the limits and the turn's own condition hold, the play id is pushed."""
        ...

    async def give_back_turn(self, campaign_id: str, customer_id: str, play_id: str) -> None: ...
    async def grant_turns(self, campaign_id: str, customer_id: str, turns: int, key: str) -> bool:
        """Add ``turns`` granted turns once per ``key``; True if this call added them."""
        ...

    async def stock(self, campaign_id: str, prize_ids: Sequence[str]) -> dict[str, StockState]: ...
    async def take_stock(self, campaign_id: str, prize: GamePrize, play_id: str, day: str) -> Take: ...
    async def give_back_stock(
        self, campaign_id: str, prize: PrizeSnapshot, play_id: str, day: str
    ) -> None: ...
    async def sync_stock(self, campaign_id: str, prize: GamePrize) -> bool: ...
    async def budget_left(self, campaign_id: str) -> int | None: ...
    async def take_budget(self, campaign_id: str, budget: int, value: int, play_id: str) -> Take: ...
    async def give_back_budget(self, campaign_id: str, value: int, play_id: str) -> None: ...


class RateLimiter(Protocol):
    """A per-key rate limit (``storage.games.RedisRateLimiter``)."""

    async def allow(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one hit of ``key``; False when it is over ``limit`` hits in the current window."""
        ...


class GameLedger(Protocol):
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
    ) -> object: ...
    async def spend(
        self, customer_id: str, points: int, *, key: str, reason: str, ref: Mapping[str, str] | None = None
    ) -> object: ...
    async def reverse(self, original_key: str, *, key: str, reason: str) -> object | None: ...


class GameVouchers(Protocol):
    async def issue(self, customer_id: str, template_id: str, *, key: str, source: str) -> Voucher: ...
    async def by_key(self, key: str) -> Voucher | None: ...
    async def void(self, code: object, *, reason: str, by: str) -> bool: ...


class GameCustomers(Protocol):
    async def get_active(self, customer_id: str) -> Customer: ...


# ============================================================================================ service
class GameService:
    def __init__(  # noqa: PLR0917 - the services it composes, like the other services
        self,
        repo: GameRepository,
        ledger: GameLedger,
        vouchers: GameVouchers,
        customers: GameCustomers,
        program: Program,
        clock: Clock,
        *,
        limiter: RateLimiter | None = None,
        seed_source: Callable[[str], bytes] = secure_seed,
        cache_seconds: float = 5.0,
    ) -> None:
        self.repo = repo
        self.ledger = ledger
        self.vouchers = vouchers
        self.customers = customers
        self.program = program
        self.clock = clock
        self.limiter = limiter
        self._seed_source = seed_source
        self._cache_seconds = cache_seconds
        self._stored: tuple[float, dict[str, GameCampaign]] | None = None
        self._seeds: dict[str, bytes] = {}  # a seed never changes once created: safe to keep

    # ------------------------------------------------------------------------------------ campaigns
    async def campaigns(self) -> list[GameCampaign]:
        """The program's campaigns, each replaced by a stored one with its id, then the stored others."""
        stored = await self._stored_campaigns()
        merged = [stored.get(c.id, c) for c in self.program.games]
        known = {c.id for c in self.program.games}
        merged += [c for cid, c in sorted(stored.items()) if cid not in known]
        return merged

    async def campaign(self, campaign_id: object) -> GameCampaign:
        if not isinstance(campaign_id, str) or not _ID.match(campaign_id):
            raise GameNotFound("no such game")
        stored = await self._stored_campaigns()
        found = stored.get(campaign_id) or self.program.game(campaign_id)
        if found is None:
            raise GameNotFound(f"no game {campaign_id!r}")
        return found

    async def live_campaigns(self) -> list[GameCampaign]:
        now = self.clock.now()
        return [c for c in await self.campaigns() if c.active and c.starts_at <= now < c.ends_at]

    async def save_campaign(self, campaign: GameCampaign | Mapping[str, Any]) -> GameCampaign:
        """Add or replace (by id) a campaign at runtime. It is checked against the program like one in the
        file; a changed stock is applied to the counters (units already taken stay taken)."""
        try:
            model = campaign if isinstance(campaign, GameCampaign) else GameCampaign.model_validate(campaign)
            # The references (voucher templates, tiers) are checked as for a campaign in the program file.
            Program.model_validate(
                {**self.program.model_dump(exclude={"games"}), "games": [model.model_dump()]}
            )
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise GameInvalid(f"{where}: {first['msg']}") from None
        await self.repo.save_campaign(model, at=self.clock.now())
        self._stored = None
        for prize in model.prizes:
            if prize.stock is not None:
                await self.repo.sync_stock(model.id, prize)
        await self.commitment(model.id)
        return model

    async def remove_campaign(self, campaign_id: str) -> bool:
        """Remove a stored campaign (one from the program file then applies again). Plays stay."""
        await self.campaign(campaign_id)
        removed = await self.repo.delete_campaign(campaign_id)
        self._stored = None
        return removed

    async def _stored_campaigns(self) -> dict[str, GameCampaign]:
        now = time.monotonic()
        if self._stored is None or now - self._stored[0] > self._cache_seconds:
            self._stored = (now, {c.id: c for c in await self.repo.stored_campaigns()})
        return self._stored[1]

    # ------------------------------------------------------------------------------------ seeds
    async def commitment(self, campaign_id: str) -> str:
        """The SHA-256 (hex) of the campaign's server seed, creating the seed on first call."""
        return (await self._seed_record(campaign_id)).commitment

    async def reveal(self, campaign_id: str) -> bytes:
        """The server seed, once the campaign ended (``game_seed_hidden`` before)."""
        campaign = await self.campaign(campaign_id)
        if self.clock.now() < campaign.ends_at:
            raise GameSeedHidden("the seed is revealed when the campaign ends")
        return bytes.fromhex((await self._seed_record(campaign_id)).seed)

    async def prepare(self) -> int:
        """Start-up and jobs: a seed (and so a published commitment) for every campaign not ended, and the
        configured stock applied to the counters. Returns how many seeds were created."""
        created = 0
        now = self.clock.now()
        for campaign in await self.campaigns():
            if campaign.ends_at <= now:
                continue
            if await self.repo.seed(campaign.id) is None:
                await self._seed_record(campaign.id)
                created += 1
            for prize in campaign.prizes:
                if prize.stock is not None:
                    await self.repo.sync_stock(campaign.id, prize)
        return created

    async def _seed_record(self, campaign_id: str) -> SeedRecord:
        record = await self.repo.seed(campaign_id)
        if record is None:
            seed = self._seed_source(campaign_id)
            record = await self.repo.create_seed(
                SeedRecord(
                    campaign_id=campaign_id,
                    seed=seed.hex(),
                    commitment=commitment_of(seed),
                    created_at=self.clock.now(),
                )
            )
        return record

    async def _seed(self, campaign_id: str) -> bytes:
        seed = self._seeds.get(campaign_id)
        if seed is None:
            seed = bytes.fromhex((await self._seed_record(campaign_id)).seed)
            self._seeds[campaign_id] = seed
        return seed

    # ------------------------------------------------------------------------------------ playing
    async def play(self, customer_id: str, campaign_id: str, *, key: str) -> PlayResult:
        """Play an instant-win campaign once for ``key`` (a double tap with the same key plays once).

        Refusals: game_invalid, game_not_found, game_wrong_kind, game_not_started, game_ended,
        game_rate_limited, game_not_eligible, customer_not_found, customer_inactive, game_daily_limit,
        game_limit_reached, game_no_turns, insufficient_points, game_sold_out, limit_reached (a voucher
        prize's template limits), idempotency_conflict. A refused play leaves points, stock and turns as
        they were; the same key then gets the same refusal.
        """
        campaign, record = await self._start(customer_id, campaign_id, key, quiz=False)
        if record is None:
            if all(p.limited for p in campaign.prizes if p.weight > 0) and not await self._table_in_force(
                campaign, local_day(self.clock.now())
            ):
                raise GameSoldOut("every prize is out of stock")  # before any turn or points are taken
            record = await self.repo.create_play(self._new_record(campaign, customer_id, key))
        return await self._drive(record, campaign)

    async def quiz(self, campaign_id: str) -> tuple[QuizQuestionView, ...]:
        """The questions and choices of a quiz, without the answers."""
        campaign = await self.campaign(campaign_id)
        if campaign.kind != "quiz":
            raise GameWrongKind("this game is not a quiz")
        return tuple(QuizQuestionView(id=q.id, text=q.text, choices=q.choices) for q in campaign.questions)

    async def answer_quiz(
        self, customer_id: str, campaign_id: str, answers: object, *, key: str
    ) -> PlayResult:
        """Check a quiz attempt on the server: the score picks the prize (``score_prizes``); the correct
        answers come back with the result. The same refusals as :meth:`play`, and game_invalid for
        answers that are not a mapping of question ids to choice indexes."""
        campaign, record = await self._start(customer_id, campaign_id, key, quiz=True)
        checked = _check_answers(campaign, answers)
        if record is None:
            fresh = self._new_record(campaign, customer_id, key)
            fresh = fresh.model_copy(update={"answers": checked, "score": score_quiz(campaign, checked)})
            record = await self.repo.create_play(fresh)
        if record.answers != checked:
            raise IdempotencyConflict("this attempt key was used with other answers")
        return await self._drive(record, campaign)

    async def _start(
        self, customer_id: str, campaign_id: str, key: str, *, quiz: bool
    ) -> tuple[GameCampaign, PlayRecord | None]:
        """Validate a play request; the existing record of its key, or None after the admission checks."""
        if not isinstance(key, str) or not _KEY.match(key):
            raise GameInvalid("a play key is 1 to 100 letters, digits, '-' or '_'")
        _require_customer_id(customer_id)
        campaign = await self.campaign(campaign_id)
        if (campaign.kind == "quiz") != quiz:
            raise GameWrongKind("answer a quiz with answers; play the other games")
        existing = await self.repo.play(play_id_for(campaign.id, customer_id, key))
        if existing is not None:
            return campaign, existing
        now = self.clock.now()
        if not campaign.active or now >= campaign.ends_at:
            raise GameEnded(f"the game {campaign.id!r} is over")
        if now < campaign.starts_at:
            raise GameNotStarted(f"the game {campaign.id!r} starts at {campaign.starts_at.isoformat()}")
        if self.limiter is not None and not await self.limiter.allow(
            f"game:{campaign.id}:{customer_id}", campaign.rate_limit.plays, campaign.rate_limit.seconds
        ):
            raise GameRateLimited("too many plays: wait a few seconds")
        customer = await self.customers.get_active(customer_id)
        if customer.id != customer_id:
            raise GameInvalid("play with the customer's current id (it was merged)")
        self._check_eligible(campaign, customer)
        return campaign, None

    def _check_eligible(self, campaign: GameCampaign, customer: Customer) -> None:
        rules = campaign.eligibility
        if rules.followers_only and not any(customer.following.values()):
            raise GameNotEligible("this game is for followers of the brand")
        if rules.phone_verified and customer.phone is None:
            raise GameNotEligible("this game needs a verified phone number")
        if rules.min_tier is not None and self.program.tier_rank(customer.tier) < self.program.tier_rank(
            rules.min_tier
        ):
            raise GameNotEligible(f"this game is for members of tier {rules.min_tier} and above")

    def _new_record(self, campaign: GameCampaign, customer_id: str, key: str) -> PlayRecord:
        now = self.clock.now()
        return PlayRecord(
            play_id=play_id_for(campaign.id, customer_id, key),
            key=key,
            campaign_id=campaign.id,
            customer_id=customer_id,
            kind=campaign.kind,
            created_at=now,
            day=local_day(now),
            points_cost=campaign.cost.points,
        )

    async def status(self, customer_id: str, campaign_id: str) -> PlayerStatus:
        """The customer's turns and plays in a campaign, and whether a play would be admitted now."""
        _require_customer_id(customer_id)
        campaign = await self.campaign(campaign_id)
        state = await self.repo.player(campaign.id, customer_id) or PlayerState()
        today = local_day(self.clock.now())
        reason: str | None = None
        try:
            now = self.clock.now()
            if not campaign.active or now >= campaign.ends_at:
                raise GameEnded()
            if now < campaign.starts_at:
                raise GameNotStarted()
            self._check_eligible(campaign, await self.customers.get_active(customer_id))
            _choose_turn(campaign, state, today)
        except LoyaltyError as error:
            reason = error.code
        return PlayerStatus(
            campaign_id=campaign.id,
            free_turns_left=max(0, campaign.cost.free_turns_per_day - state.free_used_on(today)),
            bonus_turns=state.bonus,
            plays_today=state.plays_on(today),
            plays_total=state.plays,
            points_per_play=campaign.cost.points,
            can_play=reason is None,
            reason=reason,
        )

    # ------------------------------------------------------------------------------------ turns from events
    async def grant_turns(self, customer_id: str, campaign_id: str, turns: int, *, key: str) -> bool:
        """Grant ``turns`` extra turns once per ``key`` (``order:<id>``, ``checkin:<...>``); True if this
        call granted them."""
        _require_customer_id(customer_id)
        if not isinstance(key, str) or not _GRANT_KEY.match(key):
            raise GameInvalid("a grant key is 1 to 200 letters, digits or '_:.-'")
        if not isinstance(turns, int) or isinstance(turns, bool) or not 1 <= turns <= 100:
            raise GameInvalid("grant 1 to 100 turns")
        campaign = await self.campaign(campaign_id)
        return await self.repo.grant_turns(campaign.id, customer_id, turns, key)

    async def on_order_completed(self, customer_id: str, order_id: str) -> int:
        """Turns for a completed order in every live campaign that grants them; how many campaigns did."""
        granted = 0
        for campaign in await self.live_campaigns():
            if campaign.turns.per_order > 0 and await self.repo.grant_turns(
                campaign.id, customer_id, campaign.turns.per_order, f"order:{order_id}"
            ):
                granted += 1
        return granted

    async def on_checkin(self, customer_id: str, checkin_key: str) -> int:
        """Turns for a rewarded QR check-in (``checkin_key``: the scan's claim key)."""
        granted = 0
        for campaign in await self.live_campaigns():
            if campaign.turns.per_checkin > 0 and await self.repo.grant_turns(
                campaign.id, customer_id, campaign.turns.per_checkin, checkin_key
            ):
                granted += 1
        return granted

    # ------------------------------------------------------------------------------------ the protocol
    async def resume_pending(self, *, older_than: timedelta = timedelta(minutes=2), batch: int = 200) -> int:
        """Complete or roll back plays a crash left pending and no client retried (a job)."""
        records = await self.repo.pending_plays(older_than=self.clock.now() - older_than, limit=batch)
        for record in records:
            log.warning("resuming game play %s left pending", record.play_id)
            try:
                await self._drive(record, await self.campaign(record.campaign_id))
            except LoyaltyError as error:
                log.info("game play %s rolled back: %s", record.play_id, error.code)
        return len(records)

    async def _drive(self, record: PlayRecord, campaign: GameCampaign) -> PlayResult:
        if record.state == "completed":
            return await self._result(record, campaign)
        if record.state == "rolled_back":
            await self._compensate(record)
            raise refusal(record.error_code, record.error_message)
        try:
            record = await self._effects(record, campaign)
        except LoyaltyError as error:
            won = await self.repo.finish_play(
                record.play_id,
                "rolled_back",
                at=self.clock.now(),
                error_code=error.code,
                error_message=error.message,
            )
            decided = await self._reload(record.play_id)
            if decided.state == "completed":  # a concurrent attempt with the key got there first
                return await self._result(decided, campaign)
            await self._compensate(decided)
            if won:
                raise
            raise refusal(decided.error_code, decided.error_message) from error
        voucher = await self.vouchers.by_key(record.earn_key) if _wins_voucher(record) else None
        now = self.clock.now()
        code = voucher.code if voucher is not None else None
        if await self.repo.finish_play(record.play_id, "completed", at=now, voucher_code=code):
            done = record.model_copy(update={"state": "completed", "finished_at": now, "voucher_code": code})
            return await self._result(done, campaign)
        decided = await self._reload(record.play_id)
        if decided.state == "rolled_back":  # a concurrent attempt with the key was refused first
            await self._compensate(decided)
            raise refusal(decided.error_code, decided.error_message)
        return await self._result(decided, campaign)

    async def _effects(self, record: PlayRecord, campaign: GameCampaign) -> PlayRecord:
        paid = await self._take_turn(record, campaign)
        record = record.model_copy(update={"paid": paid})  # stored with the draw
        if paid == "points":
            await self.ledger.spend(
                record.customer_id,
                record.points_cost,
                key=record.spend_key,
                reason="game",
                ref={"campaign_id": record.campaign_id, "play_id": record.play_id},
            )
        record = await self._draw(record, campaign)
        prize = record.prize
        if prize is not None and prize.reward == "points":
            await self.ledger.earn(
                record.customer_id,
                prize.points,
                key=record.earn_key,
                reason="game",
                ref={"campaign_id": record.campaign_id, "play_id": record.play_id, "prize_id": prize.id},
                qualifying=False,
            )
        elif prize is not None and prize.reward == "voucher" and prize.voucher_template is not None:
            await self.vouchers.issue(
                record.customer_id, prize.voucher_template, key=record.earn_key, source="game"
            )
        return record

    async def _take_turn(self, record: PlayRecord, campaign: GameCampaign) -> TurnKind:
        for _ in range(_TAKE_ROUNDS):
            state = await self.repo.player(campaign.id, record.customer_id) or PlayerState()
            held = state.held_turn(record.play_id)
            if held is not None:
                return held.paid
            today = local_day(self.clock.now())
            paid = _choose_turn(campaign, state, today)
            turn = HeldTurn(play_id=record.play_id, paid=paid, day=today)
            if await self.repo.take_turn(
                campaign.id,
                record.customer_id,
                turn,
                free_per_day=campaign.cost.free_turns_per_day,
                per_day=campaign.limits.per_day,
                per_campaign=per_campaign_limit(campaign),
            ):
                return paid
            # another play of this customer changed the counters between the read and the update: again
        raise GameNoTurns("the turn could not be taken (too many plays at once)")

    async def _draw(self, record: PlayRecord, campaign: GameCampaign) -> PlayRecord:
        """Record the draw, take the drawn prize's stock (and budget), then make the draw *final* with one
        conditional update; a sold-out prize is excluded and the play draws again. Only a final draw is
        granted, and no round can replace a final draw, so two attempts with one key (a double tap) can
        never grant two different prizes: the attempt that loses the race gives back what it took."""
        for _ in range(2 * len(campaign.prizes) + _TAKE_ROUNDS):
            if record.final:
                return record
            if record.round is None or (record.prize is None and record.kind != "quiz"):
                record = await self._decide(record, campaign)
                continue
            prize = record.prize
            configured = campaign.prize(prize.id) if prize is not None else None
            if (
                prize is not None
                and configured is not None
                and not await self._take_prize(record, campaign, configured)
            ):
                record = record.model_copy(update={"prize": None, "excluded": (*record.excluded, prize.id)})
                record = await self._decide(record, campaign)
                continue
            assert record.round is not None
            if await self.repo.finalize_draw(record.play_id, round_no=record.round):
                return record.model_copy(update={"final": True})
            stored = (await self._reload(record.play_id)).model_copy(update={"paid": record.paid})
            if stored.final and stored.round == record.round:
                return stored
            if prize is not None and (stored.prize is None or stored.prize.id != prize.id):
                await self._give_back_prize(record.campaign_id, prize, record.play_id, record.day)
            record = stored
        raise GameSoldOut("every prize is out of stock")

    async def _decide(self, record: PlayRecord, campaign: GameCampaign) -> PlayRecord:
        """Draw the next round from the table in force (a quiz: the prize its score reaches)."""
        next_round = 0 if record.round is None else record.round + 1
        chosen: GamePrize | None
        table: tuple[TableLine, ...] = ()
        if campaign.kind == "quiz":
            chosen = prize_for_score(campaign, record.score or 0, excluded=record.excluded)
        else:
            table = await self._table_in_force(campaign, record.day, excluded=record.excluded)
            if not table:
                raise GameSoldOut("every prize is out of stock")
            value = draw_value(await self._seed(campaign.id), record.play_id, next_round)
            chosen = campaign.prize(pick(value, table))
        snapshot = PrizeSnapshot.of(chosen) if chosen is not None else None
        won = await self.repo.record_draw(
            record.play_id,
            expected_round=record.round,
            round_no=next_round,
            table=table,
            prize=snapshot,
            excluded=record.excluded,
            paid=record.paid,
        )
        if won:
            return record.model_copy(update={"round": next_round, "table": table, "prize": snapshot})
        # A concurrent attempt with the key drew first: its draw is the one that counts.
        return await self._reload(record.play_id)

    async def _table_in_force(
        self, campaign: GameCampaign, day: str, *, excluded: Sequence[str] = ()
    ) -> tuple[TableLine, ...]:
        limited = [p.id for p in campaign.prizes if p.limited and p.weight > 0]
        stock = await self.repo.stock(campaign.id, limited) if limited else {}
        budget_left = None
        if campaign.budget_vnd is not None and any(p.value_vnd > 0 for p in campaign.prizes):
            left = await self.repo.budget_left(campaign.id)
            budget_left = campaign.budget_vnd if left is None else left
        lines = []
        for prize in campaign.prizes:
            if prize.weight <= 0 or prize.id in excluded:
                continue
            if not _in_stock(prize, stock.get(prize.id), day):
                continue
            if budget_left is not None and prize.value_vnd > budget_left:
                continue
            lines.append(TableLine(prize_id=prize.id, weight=prize.weight))
        return tuple(lines)

    async def _take_prize(self, record: PlayRecord, campaign: GameCampaign, prize: GamePrize) -> bool:
        """Take the prize's budget and stock for the play (idempotent); False if either is exhausted."""
        budgeted = campaign.budget_vnd is not None and prize.value_vnd > 0
        if budgeted:
            assert campaign.budget_vnd is not None
            taken = await self.repo.take_budget(
                campaign.id, campaign.budget_vnd, prize.value_vnd, record.play_id
            )
            if taken is Take.FULL:
                return False
        if (
            prize.limited
            and await self.repo.take_stock(campaign.id, prize, record.play_id, record.day) is Take.FULL
        ):
            if budgeted:
                await self.repo.give_back_budget(
                    campaign.id, prize.value_vnd, budget_key(record.play_id, prize.id)
                )
            return False
        return True

    async def _compensate(self, record: PlayRecord) -> None:
        """Undo whatever effects the play had (each undo idempotent and a no-op where there is none)."""
        voucher = await self.vouchers.by_key(record.earn_key)
        if voucher is not None and voucher.status == "issued":
            await self.vouchers.void(voucher.code, reason="game_rolled_back", by="system")
        await self.ledger.reverse(
            record.earn_key, key=f"{record.earn_key}:reverse", reason="game_rolled_back"
        )
        await self.ledger.reverse(record.spend_key, key=f"{record.spend_key}:reverse", reason="game_refunded")
        if record.prize is not None:
            await self._give_back_prize(record.campaign_id, record.prize, record.play_id, record.day)
        await self.repo.give_back_turn(record.campaign_id, record.customer_id, record.play_id)

    async def _give_back_prize(self, campaign_id: str, prize: PrizeSnapshot, play_id: str, day: str) -> None:
        await self.repo.give_back_stock(campaign_id, prize, play_id, day)
        if prize.value_vnd > 0:
            await self.repo.give_back_budget(campaign_id, prize.value_vnd, budget_key(play_id, prize.id))

    async def _reload(self, play_id: str) -> PlayRecord:
        record = await self.repo.play(play_id)
        if record is None:  # pragma: no cover - plays are never deleted
            raise RuntimeError(f"game play {play_id} disappeared")
        return record

    async def _result(self, record: PlayRecord, campaign: GameCampaign) -> PlayResult:
        prize = record.prize
        voucher = None
        if prize is not None and prize.reward == "voucher":
            voucher = await self.vouchers.by_key(record.earn_key)
        quiz = campaign.kind == "quiz" and record.answers is not None
        return PlayResult(
            play_id=record.play_id,
            campaign_id=record.campaign_id,
            customer_id=record.customer_id,
            kind=record.kind,
            prize=prize,
            won=prize is not None and prize.reward != "nothing",
            points_awarded=prize.points if prize is not None and prize.reward == "points" else 0,
            voucher=voucher,
            paid=record.paid,
            points_spent=record.points_cost if record.paid == "points" else 0,
            created_at=record.created_at,
            score=record.score,
            questions=len(campaign.questions) if quiz else None,
            correct_answers={q.id: q.answer for q in campaign.questions} if quiz else None,
        )

    # ------------------------------------------------------------------------------------ audit
    async def odds(self, campaign_id: str) -> tuple[OddsLine, ...]:
        """The published odds: each prize's configured chance, its stock and what is left of it."""
        campaign = await self.campaign(campaign_id)
        total = sum(p.weight for p in campaign.prizes) or 1
        stock = await self.repo.stock(campaign.id, [p.id for p in campaign.prizes if p.stock is not None])
        lines = []
        for prize in campaign.prizes:
            state = stock.get(prize.id)
            remaining = None
            if prize.stock is not None:
                remaining = prize.stock if state is None or state.remaining is None else state.remaining
            lines.append(
                OddsLine(
                    prize_id=prize.id,
                    name=prize.name,
                    reward=prize.reward,
                    weight=prize.weight,
                    probability=prize.weight / total,
                    stock=prize.stock,
                    daily_stock=prize.daily_stock,
                    remaining=remaining,
                )
            )
        return tuple(lines)

    async def report(self, campaign_id: str) -> GameReport:
        """Configured odds against observed frequencies and against what the stored tables predicted."""
        campaign = await self.campaign(campaign_id)
        total = sum(p.weight for p in campaign.prizes) or 1
        observed: Tally[str] = Tally()
        expected: dict[str, float] = {p.id: 0.0 for p in campaign.prizes}
        plays = rolled_back = value = 0
        async for record in self.repo.plays(campaign.id):
            if record.state == "rolled_back":
                rolled_back += 1
            if record.state != "completed":
                continue
            plays += 1
            if record.prize is not None:
                observed[record.prize.id] += 1
                value += record.prize.value_vnd
            in_force = sum(line.weight for line in record.table)
            for line in record.table:
                expected[line.prize_id] = expected.get(line.prize_id, 0.0) + line.weight / in_force
        lines = []
        chi = 0.0
        cells = 0
        for prize in campaign.prizes:
            count = observed.get(prize.id, 0)
            want = expected.get(prize.id, 0.0)
            if want > 0:
                chi += (count - want) ** 2 / want
                cells += 1
            lines.append(
                ReportLine(
                    prize_id=prize.id,
                    name=prize.name,
                    configured_probability=prize.weight / total,
                    observed=count,
                    observed_frequency=count / plays if plays else 0.0,
                    expected=want,
                )
            )
        return GameReport(
            campaign_id=campaign.id,
            plays=plays,
            rolled_back=rolled_back,
            lines=tuple(lines),
            chi_square=chi,
            degrees_of_freedom=max(0, cells - 1),
            budget_vnd=campaign.budget_vnd,
            value_given_vnd=value,
        )

    async def export_rows(self, campaign_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every play of the campaign as a flat row (the CSV export for promotion reports)."""
        campaign = await self.campaign(campaign_id)
        async for record in self.repo.plays(campaign.id):
            prize = record.prize
            yield {
                "play_id": record.play_id,
                "time_local": record.created_at.astimezone(LOCAL_TZ).isoformat(timespec="seconds"),
                "customer_id": record.customer_id,
                "state": record.state,
                "paid": record.paid or "",
                "points_spent": record.points_cost if record.paid == "points" else 0,
                "round": "" if record.round is None else record.round,
                "weights": " ".join(f"{line.prize_id}={line.weight}" for line in record.table),
                "prize_id": prize.id if prize else "",
                "prize_name": prize.name if prize else "",
                "reward": prize.reward if prize else "",
                "points": prize.points if prize else 0,
                "voucher_code": record.voucher_code or "",
                "value_vnd": prize.value_vnd if prize else 0,
                "score": "" if record.score is None else record.score,
                "error_code": record.error_code or "",
            }

    async def verify(self, campaign_id: str) -> VerifyReport:
        """Recompute every completed play from the revealed seed (``game_seed_hidden`` before the end)."""
        campaign = await self.campaign(campaign_id)
        seed = await self.reveal(campaign.id)
        record = await self._seed_record(campaign.id)
        weights = {p.id: p.weight for p in campaign.prizes}
        mismatches: list[tuple[str, str]] = []
        checked = 0
        async for play in self.repo.plays(campaign.id):
            if play.state != "completed":
                continue
            checked += 1
            problem = _verify_play(campaign, seed, play, weights)
            if problem is not None:
                mismatches.append((play.play_id, problem))
        return VerifyReport(
            campaign_id=campaign.id,
            commitment=record.commitment,
            seed=seed.hex(),
            commitment_ok=hmac.compare_digest(commitment_of(seed), record.commitment),
            checked=checked,
            mismatches=tuple(mismatches),
        )


# ============================================================================================ helpers
def _require_customer_id(customer_id: object) -> None:
    if not isinstance(customer_id, str) or not customer_id or len(customer_id) > _MAX_CUSTOMER_ID:
        raise GameInvalid("a customer id is a short non-empty string")


def _choose_turn(campaign: GameCampaign, state: PlayerState, today: str) -> TurnKind:
    """Which turn a new play uses (a free one of the day, a granted one, a bought one), or the refusal."""
    per_campaign = per_campaign_limit(campaign)
    if per_campaign is not None and state.plays >= per_campaign:
        raise GameLimitReached("you played this game as many times as it allows")
    if campaign.limits.per_day is not None and state.plays_on(today) >= campaign.limits.per_day:
        raise GameDailyLimit("you played as many times as allowed today")
    if state.free_used_on(today) < campaign.cost.free_turns_per_day:
        return "free"
    if state.bonus > 0:
        return "bonus"
    if campaign.cost.points > 0:
        return "points"
    raise GameNoTurns("no turn left")


def _in_stock(prize: GamePrize, state: StockState | None, day: str) -> bool:
    if prize.stock is not None:
        remaining = prize.stock if state is None or state.remaining is None else state.remaining
        if remaining <= 0:
            return False
    if prize.daily_stock is not None:
        taken = state.day_taken if state is not None and state.day == day else 0
        if taken >= prize.daily_stock:
            return False
    return True


def _wins_voucher(record: PlayRecord) -> bool:
    return record.prize is not None and record.prize.reward == "voucher"


def _check_answers(campaign: GameCampaign, answers: object) -> dict[str, int]:
    """Quiz answers as ``{question id: choice index}``; anything else is game_invalid before any query."""
    if not isinstance(answers, Mapping) or len(answers) > len(campaign.questions):
        raise GameInvalid("answers are a mapping of question ids to choice indexes")
    questions = {q.id: q for q in campaign.questions}
    checked: dict[str, int] = {}
    for qid, choice in answers.items():
        question = questions.get(qid) if isinstance(qid, str) else None
        if question is None:
            raise GameInvalid("an answer to a question the quiz does not have")
        if not isinstance(choice, int) or isinstance(choice, bool) or not 0 <= choice < len(question.choices):
            raise GameInvalid(f"the answer to {qid!r} is not one of its choices")
        checked[qid] = choice
    return checked


def _verify_play(
    campaign: GameCampaign, seed: bytes, play: PlayRecord, weights: Mapping[str, int]
) -> str | None:
    if play.kind == "quiz":
        score = score_quiz(campaign, play.answers or {})
        if score != play.score:
            return f"score {play.score} recorded, {score} recomputed"
        chosen = prize_for_score(campaign, score, excluded=play.excluded)
        if (chosen.id if chosen else None) != (play.prize.id if play.prize else None):
            return "the prize does not match the score"
        return None
    if play.round is None or play.prize is None or not play.table:
        return "no draw recorded"
    for line in play.table:
        if weights.get(line.prize_id) != line.weight:
            return f"weight of {line.prize_id} was {line.weight}, configured {weights.get(line.prize_id)}"
        if line.prize_id in play.excluded:
            return f"{line.prize_id} was both excluded and drawn from"
    expected = pick(draw_value(seed, play.play_id, play.round), play.table)
    if expected != play.prize.id:
        return f"recorded {play.prize.id}, the seed gives {expected}"
    return None
