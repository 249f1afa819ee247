"""Handlers are tested through a real dispatcher with the real copy, and a channel that records replies."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from app.paths import MESSAGES_DIR
from bot import Dispatcher
from bot.channels.base import Recipient
from bot.i18n import Messages
from bot.replies import Reply
from bot.types import BaseUpdate
from handlers import build_router

_ids = itertools.count()


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[Recipient, Reply]] = []

    async def send(
        self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: BaseUpdate | None = None
    ) -> None:
        self.sent.extend((to, reply) for reply in replies)

    @property
    def replies(self) -> list[Reply]:
        return [reply for _, reply in self.sent]


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def dispatcher(outbox: Outbox) -> Dispatcher:
    dp = Dispatcher(
        channels={"zalo": outbox, "messenger": outbox, "emulator": outbox},
        services={"copy": Messages([MESSAGES_DIR]), "brand": "Cà Phê Sữa", "clock": None},
    )
    dp.include_router(build_router())
    return dp


def make(kind: type[BaseUpdate], *, user: str = "u1", channel: str = "zalo", **fields: Any) -> BaseUpdate:
    return kind(
        channel=channel,
        account_id="oa-1",
        user_id=user,
        event_id=f"ev-{next(_ids)}",
        timestamp=datetime.now(UTC),
        **fields,
    )
