"""MongoDB storage of minigames, and the Redis rate limit of plays.

Collections (``_id`` in brackets):

- ``game_campaigns`` [campaign id]: campaigns edited at runtime (they override the program's);
- ``game_seeds`` [campaign id]: the server seed and its SHA-256 commitment, inserted once;
- ``game_plays`` [play id]: every play, its draw (round, table in force, prize) and its outcome;
- ``game_players`` [``<campaign>:<customer>``]: a customer's counters: ``plays``, ``bonus`` (granted
  turns), ``day``/``day_plays``/``day_free`` and ``held`` (the plays holding a turn: ``{id, paid, day}``),
  ``grants`` (the keys of granted turns);
- ``game_stock`` [``<campaign>:<prize>``]: ``remaining`` (None: no total stock), ``day``/``day_taken``
  (daily stock) and ``held`` (the plays holding a unit, never more than the units given);
- ``game_budget`` [campaign id]: ``left`` (VND) and ``held``.

Every change is one conditional ``update_one`` checked through ``modified_count``: never
read-then-write, never ``find_one_and_update``. Days are ``YYYY-MM-DD`` strings, so ``day < today``
compares as dates; a document still on an earlier day is first rolled over (its day's counters set to
zero, once, by a conditional update), so the hot update is a plain ``$inc`` whose filter has no top-level
operator (``$and``/``$or``/``$expr`` keep SecantusDB from routing an update through ``_id``: it then
decodes every document of the collection).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Final, Literal

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from redis.asyncio import Redis

from loyalty.games import (
    HeldTurn,
    PlayerState,
    PlayRecord,
    PrizeSnapshot,
    SeedRecord,
    StockState,
    TableLine,
    TurnKind,
)
from loyalty.program import GameCampaign, GamePrize
from loyalty.vouchers import Take
from storage.clients import Document

CAMPAIGNS: Final = "game_campaigns"
SEEDS: Final = "game_seeds"
PLAYS: Final = "game_plays"
PLAYERS: Final = "game_players"
STOCK: Final = "game_stock"
BUDGET: Final = "game_budget"
_ROUNDS: Final = 5

_NEW_PLAYER: Final[Document] = {
    "plays": 0,
    "bonus": 0,
    "day": "",
    "day_plays": 0,
    "day_free": 0,
    "held": [],
    "grants": [],
}


def _play_document(record: PlayRecord) -> Document:
    document = record.model_dump(exclude={"play_id"})
    document["_id"] = record.play_id
    return document


def _play(document: Document) -> PlayRecord:
    fields = {name: value for name, value in document.items() if name != "_id"}
    return PlayRecord.model_validate({**fields, "play_id": document["_id"]})


def _player(document: Document) -> PlayerState:
    held = tuple(HeldTurn(play_id=h["id"], paid=h["paid"], day=h["day"]) for h in document.get("held", []))
    return PlayerState(
        plays=document.get("plays", 0),
        bonus=document.get("bonus", 0),
        day=document.get("day", ""),
        day_plays=document.get("day_plays", 0),
        day_free=document.get("day_free", 0),
        held=held,
    )


class MongoGameRepository:
    """Implements ``loyalty.games.GameRepository``, ``CustomerOwned`` and ``PersonalDataHolder``."""

    name: Final = "game_plays"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.campaigns: AsyncCollection[Document] = db[CAMPAIGNS]
        self.seeds: AsyncCollection[Document] = db[SEEDS]
        self.plays_: AsyncCollection[Document] = db[PLAYS]
        self.players: AsyncCollection[Document] = db[PLAYERS]
        self.stock_: AsyncCollection[Document] = db[STOCK]
        self.budget: AsyncCollection[Document] = db[BUDGET]

    # ------------------------------------------------------------------------------------------ campaigns
    async def stored_campaigns(self) -> list[GameCampaign]:
        cursor = self.campaigns.find({}).sort("_id", ASCENDING)
        return [GameCampaign.model_validate(document["campaign"]) async for document in cursor]

    async def save_campaign(self, campaign: GameCampaign, *, at: datetime) -> None:
        await self.campaigns.update_one(
            {"_id": campaign.id},
            {
                "$set": {"campaign": campaign.model_dump(mode="python"), "updated_at": at},
                "$inc": {"revision": 1},
            },
            upsert=True,
        )

    async def delete_campaign(self, campaign_id: str) -> bool:
        result = await self.campaigns.delete_one({"_id": campaign_id})
        return result.deleted_count == 1

    # ------------------------------------------------------------------------------------------ seeds
    async def seed(self, campaign_id: str) -> SeedRecord | None:
        document = await self.seeds.find_one({"_id": campaign_id})
        if document is None:
            return None
        return SeedRecord(
            campaign_id=document["_id"],
            seed=document["seed"],
            commitment=document["commitment"],
            created_at=document["created_at"],
        )

    async def create_seed(self, record: SeedRecord) -> SeedRecord:
        with contextlib.suppress(DuplicateKeyError):
            await self.seeds.insert_one(
                {
                    "_id": record.campaign_id,
                    "seed": record.seed,
                    "commitment": record.commitment,
                    "created_at": record.created_at,
                }
            )
        stored = await self.seed(record.campaign_id)
        assert stored is not None  # seeds are never deleted
        return stored

    # ------------------------------------------------------------------------------------------ plays
    async def play(self, play_id: str) -> PlayRecord | None:
        document = await self.plays_.find_one({"_id": play_id})
        return None if document is None else _play(document)

    async def create_play(self, record: PlayRecord) -> PlayRecord:
        try:
            await self.plays_.insert_one(_play_document(record))
        except DuplicateKeyError:
            stored = await self.play(record.play_id)
            assert stored is not None  # plays are never deleted
            return stored
        return record

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
        result = await self.plays_.update_one(
            {"_id": play_id, "state": "pending", "round": expected_round, "final": {"$ne": True}},
            {
                "$set": {
                    "round": round_no,
                    "table": [line.model_dump() for line in table],
                    "prize": None if prize is None else prize.model_dump(),
                    "excluded": list(excluded),
                    "paid": paid,
                }
            },
        )
        return result.modified_count == 1

    async def finalize_draw(self, play_id: str, *, round_no: int) -> bool:
        result = await self.plays_.update_one(
            {"_id": play_id, "state": "pending", "round": round_no, "final": {"$ne": True}},
            {"$set": {"final": True}},
        )
        return result.modified_count == 1

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
        fields: Document = {"state": state, "finished_at": at}
        if state == "completed":
            fields["voucher_code"] = voucher_code
        else:
            fields |= {"error_code": error_code, "error_message": error_message}
        result = await self.plays_.update_one({"_id": play_id, "state": "pending"}, {"$set": fields})
        return result.modified_count == 1

    async def pending_plays(self, *, older_than: datetime, limit: int) -> list[PlayRecord]:
        cursor = (
            self.plays_.find({"state": "pending", "created_at": {"$lt": older_than}})
            .sort("created_at", ASCENDING)
            .limit(limit)
        )
        return [_play(document) async for document in cursor]

    async def plays(self, campaign_id: str) -> AsyncIterator[PlayRecord]:
        cursor = self.plays_.find({"campaign_id": campaign_id}).sort([("created_at", 1), ("_id", 1)])
        async for document in cursor:
            yield _play(document)

    # ------------------------------------------------------------------------------------------ turns
    async def player(self, campaign_id: str, customer_id: str) -> PlayerState | None:
        document = await self.players.find_one({"_id": f"{campaign_id}:{customer_id}"})
        return None if document is None else _player(document)

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
        player_id = f"{campaign_id}:{customer_id}"
        day = turn.day
        # Every condition is a field of the filter itself (no top-level `$and`/`$or`): a filter with a
        # top-level operator keeps SecantusDB from routing the update through `_id`, and it then decodes
        # every player document of every campaign on each play. The day's counters therefore apply to
        # the document's own day only: a document still on an earlier day is rolled over first.
        query: Document = {"_id": player_id, "held.id": {"$ne": turn.play_id}, "day": day}
        inc: Document = {"plays": 1, "day_plays": 1}
        if per_campaign is not None:
            query["plays"] = {"$lt": per_campaign}
        if per_day is not None:
            query["day_plays"] = {"$lt": per_day}
        if turn.paid == "free":
            query["day_free"] = {"$lt": free_per_day}
            inc["day_free"] = 1
        elif turn.paid == "bonus":
            query["bonus"] = {"$gt": 0}
            inc["bonus"] = -1
        update: Document = {
            "$inc": inc,
            "$push": {"held": {"id": turn.play_id, "paid": turn.paid, "day": day}},
        }
        for _ in range(_ROUNDS):
            result = await self.players.update_one(query, update)
            if result.modified_count == 1:
                return True
            document = await self.players.find_one({"_id": player_id}, {"day": 1})
            if document is None:
                await self._create_player(campaign_id, customer_id, day)
            elif document.get("day", "") < day:
                await self._roll_day(self.players, player_id, day, ("day_plays", "day_free"))
            else:
                return False  # the player is on this day (or later): the conditions did not hold
        return False

    @staticmethod
    async def _roll_day(
        collection: AsyncCollection[Document], document_id: str, day: str, counters: Sequence[str]
    ) -> None:
        """Move a document still on an earlier day to ``day`` with its day's counters at zero (once:
        conditional on the earlier day, so concurrent callers roll it over one time)."""
        await collection.update_one(
            {"_id": document_id, "day": {"$lt": day}},
            {"$set": {"day": day, **dict.fromkeys(counters, 0)}},
        )

    async def _create_player(self, campaign_id: str, customer_id: str, day: str) -> None:
        """A player's first document, already on ``day`` (its counters at zero)."""
        fields = {**_NEW_PLAYER, "day": day, "campaign_id": campaign_id, "customer_id": customer_id}
        with contextlib.suppress(DuplicateKeyError):
            await self.players.update_one(
                {"_id": f"{campaign_id}:{customer_id}"}, {"$setOnInsert": fields}, upsert=True
            )

    async def give_back_turn(self, campaign_id: str, customer_id: str, play_id: str) -> None:
        player_id = f"{campaign_id}:{customer_id}"
        document = await self.players.find_one({"_id": player_id, "held.id": play_id})
        if document is None:
            return  # holds no turn (never taken, or given back already)
        held = next(h for h in document["held"] if h["id"] == play_id)
        bonus = 1 if held["paid"] == "bonus" else 0
        same_day: Document = {"plays": -1, "bonus": bonus, "day_plays": -1}
        if held["paid"] == "free":
            same_day["day_free"] = -1
        # The day's counters go back only while the document is still on the day the turn was taken.
        result = await self.players.update_one(
            {"_id": player_id, "held": held, "day": held["day"]},
            {"$inc": same_day, "$pull": {"held": {"id": play_id}}},
        )
        if result.modified_count == 0:
            await self.players.update_one(
                {"_id": player_id, "held": held, "day": {"$ne": held["day"]}},
                {"$inc": {"plays": -1, "bonus": bonus}, "$pull": {"held": {"id": play_id}}},
            )

    async def grant_turns(self, campaign_id: str, customer_id: str, turns: int, key: str) -> bool:
        player_id = f"{campaign_id}:{customer_id}"
        update = {"$inc": {"bonus": turns}, "$push": {"grants": key}}
        result = await self.players.update_one({"_id": player_id, "grants": {"$ne": key}}, update)
        if result.modified_count == 1:
            return True
        if await self.players.find_one({"_id": player_id}, {"_id": 1}) is not None:
            return False  # granted before with this key
        try:
            await self.players.insert_one(
                {
                    **_NEW_PLAYER,
                    "_id": player_id,
                    "campaign_id": campaign_id,
                    "customer_id": customer_id,
                    "bonus": turns,
                    "grants": [key],
                }
            )
        except DuplicateKeyError:  # created at the same moment: grant on it
            result = await self.players.update_one({"_id": player_id, "grants": {"$ne": key}}, update)
            return result.modified_count == 1
        return True

    # ------------------------------------------------------------------------------------------ stock
    async def stock(self, campaign_id: str, prize_ids: Sequence[str]) -> dict[str, StockState]:
        if not prize_ids:
            return {}
        ids = [f"{campaign_id}:{prize_id}" for prize_id in prize_ids]
        cursor = self.stock_.find({"_id": {"$in": ids}}, {"remaining": 1, "day": 1, "day_taken": 1})
        states: dict[str, StockState] = {}
        async for document in cursor:
            prize_id = document["_id"].split(":", 1)[1]
            states[prize_id] = StockState(
                remaining=document.get("remaining"),
                day=document.get("day", ""),
                day_taken=document.get("day_taken", 0),
            )
        return states

    async def take_stock(self, campaign_id: str, prize: GamePrize, play_id: str, day: str) -> Take:
        stock_id = f"{campaign_id}:{prize.id}"
        # As in `take_turn`: the conditions are plain fields of the filter (routed through `_id`), and
        # the daily counter applies to the document's own day, rolled over first when it is earlier.
        query: Document = {"_id": stock_id, "held": {"$ne": play_id}, "day": day}
        inc: Document = {"day_taken": 1}
        if prize.stock is not None:
            query["remaining"] = {"$gt": 0}
            inc["remaining"] = -1
        if prize.daily_stock is not None:
            query["day_taken"] = {"$lt": prize.daily_stock}
        update: Document = {"$inc": inc, "$push": {"held": play_id}}
        for _ in range(_ROUNDS):
            result = await self.stock_.update_one(query, update)
            if result.modified_count == 1:
                return Take.FRESH
            document = await self.stock_.find_one({"_id": stock_id}, {"_id": 1, "held": 1, "day": 1})
            if document is None:
                with contextlib.suppress(DuplicateKeyError):
                    await self.stock_.update_one(
                        {"_id": stock_id},
                        {
                            "$setOnInsert": {
                                "campaign_id": campaign_id,
                                "remaining": prize.stock,
                                "stock": prize.stock,
                                "day": "",
                                "day_taken": 0,
                                "held": [],
                            }
                        },
                        upsert=True,
                    )
                continue
            if play_id in document.get("held", []):
                return Take.HELD
            if document.get("day", "") < day:
                await self._roll_day(self.stock_, stock_id, day, ("day_taken",))
                continue
            return Take.FULL
        return Take.FULL

    async def give_back_stock(self, campaign_id: str, prize: PrizeSnapshot, play_id: str, day: str) -> None:
        stock_id = f"{campaign_id}:{prize.id}"
        document = await self.stock_.find_one({"_id": stock_id, "held": play_id}, {"remaining": 1})
        if document is None:
            return
        total: Document = {"remaining": 1} if document.get("remaining") is not None else {}
        result = await self.stock_.update_one(
            {"_id": stock_id, "held": play_id, "day": day},
            {"$inc": {**total, "day_taken": -1}, "$pull": {"held": play_id}},
        )
        if result.modified_count == 0 and total:
            await self.stock_.update_one(
                {"_id": stock_id, "held": play_id, "day": {"$ne": day}},
                {"$inc": total, "$pull": {"held": play_id}},
            )
        elif result.modified_count == 0:
            await self.stock_.update_one(
                {"_id": stock_id, "held": play_id, "day": {"$ne": day}}, {"$pull": {"held": play_id}}
            )

    async def sync_stock(self, campaign_id: str, prize: GamePrize) -> bool:
        if prize.stock is None:
            return False
        stock_id = f"{campaign_id}:{prize.id}"
        document = await self.stock_.find_one({"_id": stock_id}, {"stock": 1, "remaining": 1})
        if document is None or document.get("stock") == prize.stock or document.get("remaining") is None:
            return False  # never used yet (seeded with the new stock when it is), or unchanged
        # Conditional on the stock it was read with: two processes syncing apply the difference once.
        result = await self.stock_.update_one(
            {"_id": stock_id, "stock": document["stock"]},
            {"$inc": {"remaining": prize.stock - int(document["stock"])}, "$set": {"stock": prize.stock}},
        )
        return result.modified_count == 1

    # ------------------------------------------------------------------------------------------ budget
    async def budget_left(self, campaign_id: str) -> int | None:
        document = await self.budget.find_one({"_id": campaign_id}, {"left": 1})
        return None if document is None else int(document["left"])

    async def take_budget(self, campaign_id: str, budget: int, value: int, play_id: str) -> Take:
        query = {"_id": campaign_id, "left": {"$gte": value}, "held": {"$ne": play_id}}
        update = {"$inc": {"left": -value}, "$push": {"held": play_id}}
        for _ in range(_ROUNDS):
            result = await self.budget.update_one(query, update)
            if result.modified_count == 1:
                return Take.FRESH
            document = await self.budget.find_one({"_id": campaign_id}, {"_id": 1, "held": 1})
            if document is None:
                with contextlib.suppress(DuplicateKeyError):
                    await self.budget.update_one(
                        {"_id": campaign_id},
                        {"$setOnInsert": {"left": budget, "budget": budget, "held": []}},
                        upsert=True,
                    )
                continue
            return Take.HELD if play_id in document.get("held", []) else Take.FULL
        return Take.FULL

    async def give_back_budget(self, campaign_id: str, value: int, play_id: str) -> None:
        await self.budget.update_one(
            {"_id": campaign_id, "held": play_id}, {"$inc": {"left": value}, "$pull": {"held": play_id}}
        )

    # ------------------------------------------------------------------------------------------ merges
    async def reassign_customer(self, from_id: str, into_id: str) -> int:
        """Plays move to the survivor; a player document's granted turns and plays are added to the
        survivor's in the same campaign (once: the survivor keeps the merged document's id), then it goes."""
        moved = (
            await self.plays_.update_many({"customer_id": from_id}, {"$set": {"customer_id": into_id}})
        ).modified_count
        async for document in self.players.find({"customer_id": from_id}):
            campaign_id = document["campaign_id"]
            target = f"{campaign_id}:{into_id}"
            with contextlib.suppress(DuplicateKeyError):
                await self.players.update_one(
                    {"_id": target, "merged": {"$ne": document["_id"]}},
                    {
                        "$inc": {"bonus": document.get("bonus", 0), "plays": document.get("plays", 0)},
                        "$push": {"merged": document["_id"]},
                        "$setOnInsert": {
                            "campaign_id": campaign_id,
                            "customer_id": into_id,
                            "day": "",
                            "day_plays": 0,
                            "day_free": 0,
                            "held": [],
                            "grants": [],
                        },
                    },
                    upsert=True,
                )
            await self.players.delete_one({"_id": document["_id"]})
            moved += 1
        return moved

    # ------------------------------------------------------------------------------------------ personal data
    async def export_customer(self, customer_id: str) -> list[dict[str, Any]]:
        cursor = self.plays_.find({"customer_id": customer_id}).sort("created_at", 1)
        return [document async for document in cursor]

    async def erase_customer(self, customer_id: str) -> int:
        """Plays stay: a promotion's plays and winners are reported to the authorities (Decree 81/2018),
        and they hold no personal data beyond the customer id (quiz answers are choice indexes)."""
        return 0


class RedisRateLimiter:
    """Implements ``loyalty.games.RateLimiter``: a fixed window per key (``SET NX EX`` + ``INCR`` in one
    round trip; the window starts at the first hit)."""

    def __init__(self, redis: Redis, *, prefix: str = "ratelimit:") -> None:
        self.redis = redis
        self.prefix = prefix

    async def allow(self, key: str, limit: int, window_seconds: int) -> bool:
        name = f"{self.prefix}{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(name, 0, ex=window_seconds, nx=True)
            pipe.incr(name)
            _, count = await pipe.execute()
        return int(count) <= limit
