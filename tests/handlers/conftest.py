"""Handlers are tested through a real dispatcher with the real copy and the real loyalty core on the test
database (SecantusDB), and a channel that records replies."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from app.loyalty import build_loyalty
from app.paths import MESSAGES_DIR
from bot import Dispatcher
from bot.channels.base import Recipient
from bot.i18n import Messages
from bot.replies import Reply
from bot.types import BaseUpdate
from handlers import build_router
from loyalty.clock import FrozenClock
from loyalty.core import Loyalty
from loyalty.program import Program, load_program
from storage.clients import Document, MongoClient
from storage.indexes import ensure_indexes

_ids = itertools.count()
START = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 10:00 in Hồ Chí Minh City
SECRET = "handlers-test-secret-key-0123456789abcdef"


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[Recipient, Reply]] = []
        self.profiles: dict[str, dict[str, Any]] = {}

    async def send(
        self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: BaseUpdate | None = None
    ) -> None:
        self.sent.extend((to, reply) for reply in replies)

    async def profile(self, user_id: str) -> dict[str, Any]:
        return self.profiles.get(user_id, {})

    @property
    def replies(self) -> list[Reply]:
        return [reply for _, reply in self.sent]

    def take(self) -> list[Reply]:
        """The replies since the last take."""
        out = self.replies
        self.sent.clear()
        return out


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
async def db(mongo_client: MongoClient, db_name: str) -> AsyncDatabase[Document]:
    database = mongo_client[db_name]
    await ensure_indexes(database)
    return database


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def program() -> Program:
    return load_program()


@pytest.fixture
def loyalty(db: AsyncDatabase[Document], program: Program, clock: FrozenClock) -> Loyalty:
    return build_loyalty(db, program, clock, secret_key=SECRET)


@pytest.fixture
def dispatcher(outbox: Outbox, loyalty: Loyalty, program: Program, clock: FrozenClock) -> Dispatcher:
    dp = Dispatcher(
        channels={"zalo": outbox, "messenger": outbox, "emulator": outbox},
        services={
            "copy": Messages([MESSAGES_DIR]),
            "brand": "Cà Phê Sữa",
            "clock": clock,
            "loyalty": loyalty,
            "program": program,
        },
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
