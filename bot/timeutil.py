"""Time helpers shared by the channels and the webhooks (which may not import ``loyalty.clock``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    """The default clock of channel clients and webhooks: now, aware, in UTC."""
    return datetime.now(UTC)


def from_millis(ms: int) -> datetime:
    """Epoch milliseconds (how both platforms stamp events) → aware UTC datetime, exact to the
    millisecond (integer arithmetic, no float rounding)."""
    return EPOCH + timedelta(milliseconds=ms)
