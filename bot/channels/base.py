"""The contract every channel client implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.replies import Reply
    from bot.types import BaseUpdate


@dataclass(frozen=True, slots=True)
class Recipient:
    channel: str
    account_id: str
    user_id: str


class ChannelError(Exception):
    """A reply could not be delivered (after the client's own retries)."""


class ChannelClient(Protocol):
    async def send(
        self, to: Recipient, replies: Sequence[Reply], *, in_reply_to: BaseUpdate | None = None
    ) -> None:
        """Render ``replies`` for this platform and deliver them to ``to``, in order."""
        ...
