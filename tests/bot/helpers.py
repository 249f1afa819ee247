"""Helpers of the bot framework's tests: building updates, and a channel client that records replies."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot import BaseUpdate, Message
from bot.channels.base import Recipient
from bot.replies import Reply

_event_ids = itertools.count(1)


def make_update(
    kind: type[BaseUpdate] = Message,
    *,
    user: str = "u1",
    account: str = "oa",
    channel: str = "emulator",
    **fields: Any,
) -> Any:
    """An update of ``kind`` from ``user`` with a fresh event id; ``fields`` are the kind's own."""
    return kind(
        channel=channel,
        account_id=account,
        user_id=user,
        event_id=f"e{next(_event_ids)}",
        timestamp=datetime.now(UTC),
        **fields,
    )


@dataclass
class Sent:
    to: Recipient
    replies: list[Reply]
    in_reply_to: BaseUpdate | None


@dataclass
class Recorder:
    """A channel client that keeps what the bot sends (our own outbound side, faked)."""

    sent: list[Sent] = field(default_factory=list)

    async def send(self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: Any = None) -> None:
        self.sent.append(Sent(to, list(replies), in_reply_to))

    @property
    def replies(self) -> list[Reply]:
        return [reply for sent in self.sent for reply in sent.replies]
