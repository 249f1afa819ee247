"""Minigames: plays per second through ``GameService.play`` against the raw operations a play needs.

A play (free turn, a prize table with one limited prize) is, on the engine's side: the play looked up by
its id, inserted ``pending``, the customer read (eligibility), the player read and its turn taken by one
conditional update, the stock read (the table in force), the draw recorded, made final and the play
finished (three conditional updates on the play); a limited prize adds one conditional stock update and
a points prize the ledger's two writes. The raw side runs the same reads and writes on the same server,
on documents of the same shape (every field of a play record, the same draw and prize) in collections
with the same indexes (they are the data model's cost, not the engine's), with no models, no
validation, no HMAC and fewer conditions in its filters than the engine's exactly-once ones: the ratio
shows what the engine itself costs. Both sides run ``--concurrency`` customers at once, each playing
one play after the other (a worker handles one user at a time), on the embedded SecantusDB
(``--sync-on-commit``), in paired rounds whose order alternates (ABBA); the median of the rounds'
ratios is the result.
``--other-players N`` first adds N other customers' player documents to the campaign (a play must not
slow down as a campaign's audience grows). A last check proves no prize was oversold.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from app.embedded import EmbeddedMongo
from app.loyalty import build_loyalty
from bench import ServerCpu, descendants, paired_round
from loyalty.clock import SystemClock
from loyalty.customers import Identity
from loyalty.games import GameService, play_id_for
from loyalty.program import GameCampaign, load_program
from storage.clients import Document, create_mongo_client
from storage.games import MongoGameRepository
from storage.indexes import INDEXES, ensure_indexes

TOP_STOCK = 50
_NOTHING = {
    "id": "none",
    "name": "Nothing",
    "reward": "nothing",
    "points": 0,
    "voucher_template": None,
    "value_vnd": 0,
}


def _campaign(plays_each: int, rounds: int) -> GameCampaign:
    now = datetime.now(UTC)
    return GameCampaign.model_validate(
        {
            "id": "bench",
            "kind": "wheel",
            "name": "Bench",
            "starts_at": now - timedelta(days=1),
            "ends_at": now + timedelta(days=1),
            "cost": {"free_turns_per_day": plays_each * rounds},
            "rate_limit": {"plays": 10_000, "seconds": 1},
            "prizes": [
                {"id": "top", "name": "Top", "weight": 1, "stock": TOP_STOCK},
                {"id": "none", "name": "Nothing", "weight": 99},
            ],
        }
    )


async def _ours(games: GameService, customers: list[str], plays_each: int, round_no: int) -> float:
    async def one(cid: str) -> None:
        for n in range(plays_each):
            await games.play(cid, "bench", key=f"r{round_no}-{n}")

    started = time.perf_counter()
    await asyncio.gather(*(one(cid) for cid in customers))
    return len(customers) * plays_each / (time.perf_counter() - started)


async def _raw(db: AsyncDatabase[Document], customers: list[str], plays_each: int, round_no: int) -> float:
    plays, players, stock, people = (
        db["raw_game_plays"],
        db["raw_game_players"],
        db["raw_game_stock"],
        db["customers"],
    )
    await stock.update_one(
        {"_id": "bench:top"}, {"$setOnInsert": {"remaining": TOP_STOCK, "held": []}}, upsert=True
    )

    async def one(cid: str) -> None:
        player_id = f"bench:{cid}"
        await players.update_one(
            {"_id": player_id},
            {"$setOnInsert": {"plays": 0, "day": "2026-12-01", "day_plays": 0, "day_free": 0, "held": []}},
            upsert=True,
        )
        for n in range(plays_each):
            play_id = play_id_for("bench", cid, f"raw{round_no}-{n}")
            now = datetime.now(UTC)
            await plays.find_one({"_id": play_id})
            # the document ours stores (every field of a PlayRecord), written as a plain dict
            await plays.insert_one(
                {
                    "_id": play_id,
                    "key": f"raw{round_no}-{n}",
                    "campaign_id": "bench",
                    "customer_id": cid,
                    "kind": "wheel",
                    "state": "pending",
                    "created_at": now,
                    "day": "2026-12-01",
                    "points_cost": 0,
                    "paid": None,
                    "round": None,
                    "table": [],
                    "prize": None,
                    "excluded": [],
                    "final": False,
                    "answers": None,
                    "score": None,
                    "finished_at": None,
                    "voucher_code": None,
                    "error_code": None,
                    "error_message": None,
                }
            )
            await people.find_one({"_id": cid})
            await players.find_one({"_id": player_id})
            await players.update_one(
                {"_id": player_id, "held.id": {"$ne": play_id}},
                {
                    "$inc": {"plays": 1, "day_plays": 1, "day_free": 1},
                    "$push": {"held": {"id": play_id, "paid": "free", "day": "2026-12-01"}},
                },
            )
            await stock.find({"_id": {"$in": ["bench:top"]}}).to_list()
            await plays.update_one(
                {"_id": play_id, "state": "pending", "round": None},
                {
                    "$set": {
                        "round": 0,
                        "table": [{"prize_id": "top", "weight": 1}, {"prize_id": "none", "weight": 99}],
                        "prize": _NOTHING,
                        "excluded": [],
                        "paid": "free",
                    }
                },
            )
            await plays.update_one(
                {"_id": play_id, "round": 0, "final": {"$ne": True}}, {"$set": {"final": True}}
            )
            await plays.update_one(
                {"_id": play_id, "state": "pending"},
                {"$set": {"state": "completed", "finished_at": now, "voucher_code": None}},
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(cid) for cid in customers))
    return len(customers) * plays_each / (time.perf_counter() - started)


async def run(
    url: str, server: ServerCpu, *, concurrency: int, plays_each: int, rounds: int, other_players: int = 0
) -> None:
    client = create_mongo_client(url)
    db = client["bench_games"]
    await client.drop_database("bench_games")
    await ensure_indexes(db)
    program = load_program()
    game = _campaign(plays_each, rounds)
    core = build_loyalty(
        db,
        program.model_copy(update={"games": (game,)}),
        SystemClock(),
        secret_key="bench-secret-key-0123456789abcdef",
    )
    games = GameService(
        MongoGameRepository(db),
        core.ledger,
        core.vouchers,
        core.customers,
        core.program,
        SystemClock(),
        seed_source=lambda cid: hashlib.sha256(cid.encode()).digest(),
    )
    # The raw side gets the same indexes: they are the data model's cost, not the engine's.
    for spec in INDEXES:
        if spec.collection in ("game_plays", "game_players", "game_stock"):
            raw_spec = replace(spec, collection=f"raw_{spec.collection}")
            await db[raw_spec.collection].create_indexes([raw_spec.model()])
    if other_players:
        # Customers who played the campaign before: a campaign's player documents grow with its
        # audience, and a play must not get slower with them (on both sides, same documents).
        idle = [
            {"_id": f"bench:idle{n}", "campaign_id": "bench", "customer_id": f"idle{n}", "plays": 1,
             "bonus": 0, "day": "2026-11-30", "day_plays": 1, "day_free": 1, "held": [], "grants": []}
            for n in range(other_players)
        ]  # fmt: skip
        await db["game_players"].insert_many(idle)
        await db["raw_game_players"].insert_many(idle)
    customers = []
    for n in range(concurrency):
        customer, _ = await core.customers.get_or_create(Identity(channel="zalo", user_id=f"bench{n}"))
        customers.append(customer.id)
    pairs: list[tuple[float, float]] = []
    for round_no in range(rounds):
        ours, raw = await paired_round(
            round_no,
            partial(server.measure, "ours", partial(_ours, games, customers, plays_each, round_no)),
            partial(server.measure, "raw", partial(_raw, db, customers, plays_each, round_no)),
        )
        pairs.append((ours, raw))
        print(
            f"round {round_no}: engine {ours:7.1f} plays/s   raw {raw:7.1f} plays/s   ratio {ours / raw:.2f}",
            flush=True,
        )
    winners = await db["game_plays"].count_documents({"prize.id": "top"})
    top = await db["game_stock"].find_one({"_id": "bench:top"})
    left = TOP_STOCK if top is None else top["remaining"]
    assert left >= 0 and winners == TOP_STOCK - left, (winners, left)
    print(f"plays: {await db['game_plays'].count_documents({})}, top prize winners {winners} of {TOP_STOCK}")
    ours_median = statistics.median(o for o, _ in pairs)
    raw_median = statistics.median(r for _, r in pairs)
    print(
        f"engine_plays_per_s={ours_median:.1f} raw_plays_per_s={raw_median:.1f}  (medians of {rounds} rounds)"
    )
    plays = rounds * concurrency * plays_each
    print(
        f"server CPU per play: raw {1e6 * server.seconds['raw'] / plays:,.0f} us, "
        f"engine {1e6 * server.seconds['ours'] / plays:,.0f} us"
    )
    print(f"ratio_vs_raw={statistics.median(o / r for o, r in pairs):.2f}")
    await client.drop_database("bench_games")
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--plays", type=int, default=5, help="plays per customer per round")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument(
        "--other-players", type=int, default=0, help="player documents of other customers in the campaign"
    )
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as data, EmbeddedMongo(Path(data)) as server:
        assert server.pid is not None
        asyncio.run(
            run(
                server.url,
                ServerCpu(descendants(server.pid)[0]),
                concurrency=args.concurrency,
                plays_each=args.plays,
                rounds=args.rounds,
                other_players=args.other_players,
            )
        )


if __name__ == "__main__":
    main()
