"""Conversation flows customers have with the Zalo OA and the Facebook Page, one router per flow.

``docs/conversations.md`` shows each flow as a transcript generated from the tests.
"""

from __future__ import annotations

from bot import Router
from handlers import checkin, games, menu, onboarding, points, referral, wallet


def build_router() -> Router:
    """Every flow, in the order they are tried: onboarding first (its phone-capture state must win over
    keywords), the catch-all menu and fallback last."""
    root = Router(name="handlers")
    flow_words = (
        *checkin.CHECKIN_WORDS,
        *points.POINTS_WORDS,
        *wallet.VOUCHER_WORDS,
        *wallet.REWARD_WORDS,
        *referral.REFERRAL_WORDS,
        *games.GAME_WORDS,
    )
    root.include_router(onboarding.build_router(flow_words))
    root.include_router(checkin.build_router())
    root.include_router(points.build_router())
    root.include_router(wallet.build_router())
    root.include_router(referral.build_router())
    root.include_router(games.build_router())
    root.include_router(menu.build_router())
    return root
