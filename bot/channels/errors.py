"""Typed delivery errors and the retry policy shared by every platform client.

Each client maps its platform's error codes onto these classes; the retry loop treats them alike:
transient and rate-limited errors are retried with exponential backoff and jitter, everything else is
final. A token error is refreshed once by the client itself before it becomes final.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from bot.channels.base import ChannelError

log = logging.getLogger("loyalty.bot.channels")

ResultT = TypeVar("ResultT")


class TransientError(ChannelError):
    """A timeout, a 5xx, a connection failure: worth trying again."""


class RateLimitedError(TransientError):
    """The platform asked us to slow down; ``retry_after`` seconds if it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """The platform refused the message for good (bad request, blocked, not a follower...)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RecipientUnavailableError(PermanentError):
    """This person cannot receive our messages (blocked us, unfollowed, banned, deactivated)."""


class WindowClosedError(PermanentError):
    """Outside the platform's messaging window: a free-form message is not allowed now.

    Campaigns fall back to a template message (ZNS on Zalo) or a message tag on Messenger.
    """


class TokenError(PermanentError):
    """The access token is invalid or expired; clients refresh it and try once more."""


class ConfigurationError(PermanentError):
    """The app, OA or Page is not set up for this call (permissions, verification, API not enabled)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; the n-th wait is ``base * 2**n`` capped at ``cap``, with full jitter."""

    attempts: int = 4
    base: float = 0.25
    cap: float = 8.0

    def delay(self, attempt: int, error: Exception) -> float:
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(error.retry_after, self.cap * 4)
        return random.uniform(0, min(self.cap, self.base * 2**attempt))  # noqa: S311 - jitter, not crypto


DEFAULT_POLICY: Final = RetryPolicy()


async def with_retries(
    call: Callable[[], Awaitable[ResultT]],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    what: str = "call",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ResultT:
    """Run ``call`` until it succeeds, fails permanently, or ``policy.attempts`` are used up."""
    for attempt in range(policy.attempts):
        try:
            return await call()
        except TransientError as error:
            if attempt + 1 >= policy.attempts:
                raise
            wait = policy.delay(attempt, error)
            log.warning(
                "%s failed (%s), retry %d/%d in %.2fs", what, error, attempt + 1, policy.attempts - 1, wait
            )
            await sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
