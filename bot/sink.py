"""Where entry points hand updates over: a durable queue in production (the app adapts its event queue)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.types import BaseUpdate


class UpdateSink(Protocol):
    async def publish(self, updates: Sequence[BaseUpdate]) -> list[bool]:
        """Queue ``updates``; per update, True if it was new, False if it was a duplicate delivery.

        Raises when nothing could be queued, so the caller can answer the platform with an error
        (it will retry) rather than acknowledge an event it lost.
        """
        ...
