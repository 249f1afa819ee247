"""The public fairness page of a minigame campaign: ``GET /games/{campaign}/fairness`` (HTML, Vietnamese)
and ``GET /games/{campaign}/fairness.json`` (every play's draw, once the seed is revealed).

Before the campaign ends it shows the published odds, the out-of-stock rule and the SHA-256 commitment of
the server seed; after the end it reveals the seed and recomputes every play (``GameService.verify``),
so anyone can check the operator's claims, and the JSON lets them recompute each draw themselves:
``v = first 8 bytes of HMAC-SHA256(seed, "<play_id>:<round>")``, ticket ``v * total_weight >> 64``.
No customer id is published: a customer finds their play by its id.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

from app import keys
from loyalty.clock import LOCAL_TZ
from loyalty.errors import GameNotFound
from loyalty.games import GameService

MAX_PLAYS_SHOWN: Final = 200


def register(app: web.Application) -> None:
    app.router.add_get("/games/{campaign}/fairness", fairness_page, name="game_fairness")
    app.router.add_get("/games/{campaign}/fairness.json", fairness_json, name="game_fairness_json")


def _games(request: web.Request) -> GameService:
    return request.app[keys.RESOURCES].loyalty.games


async def _context(request: web.Request) -> dict[str, Any]:
    games = _games(request)
    try:
        campaign = await games.campaign(request.match_info["campaign"])
    except GameNotFound:
        raise web.HTTPNotFound(text="Không có trò chơi này.") from None
    now = games.clock.now()
    ended = now >= campaign.ends_at
    context: dict[str, Any] = {
        "campaign": campaign,
        "starts": campaign.starts_at.astimezone(LOCAL_TZ).strftime("%H:%M %d/%m/%Y"),
        "ends": campaign.ends_at.astimezone(LOCAL_TZ).strftime("%H:%M %d/%m/%Y"),
        "commitment": await games.commitment(campaign.id),
        "odds": await games.odds(campaign.id),
        "ended": ended,
        "report": None,
        "plays": [],
    }
    if ended:
        context["report"] = await games.verify(campaign.id)
        context["plays"] = [
            {
                "play_id": play.play_id,
                "round": play.round,
                "prize": play.prize.id if play.prize else None,
                "table": [[line.prize_id, line.weight] for line in play.table],
                "score": play.score,
            }
            async for play in games.repo.plays(campaign.id)
            if play.state == "completed"
        ]
    return context


async def fairness_page(request: web.Request) -> web.Response:
    context = await _context(request)
    context["plays_shown"] = context["plays"][-MAX_PLAYS_SHOWN:]
    return aiohttp_jinja2.render_template("games/fairness.html", request, context)


async def fairness_json(request: web.Request) -> web.Response:
    context = await _context(request)
    report = context["report"]
    return web.json_response(
        {
            "campaign": context["campaign"].id,
            "commitment": context["commitment"],
            "seed": report.seed if report is not None else None,
            "verified": report.ok if report is not None else None,
            "odds": [line.model_dump() for line in context["odds"]],
            "plays": context["plays"],
            "algorithm": 'v = int(HMAC-SHA256(seed, "<play_id>:<round>")[:8]); ticket = v * total >> 64',
        }
    )
