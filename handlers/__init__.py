"""Conversation flows customers have with the Zalo OA and the Facebook Page, one router per flow."""

from __future__ import annotations

from bot import Router
from handlers import basics


def build_router() -> Router:
    """Every flow, in the order they are tried (the catch-all fallback last)."""
    root = Router(name="handlers")
    root.include_router(basics.build_router())
    return root
