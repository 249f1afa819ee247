"""ZNS (Zalo Notification Service): approved template messages to a phone number.

``POST {ZALO_ZNS_API_BASE}/message/template`` with the OA's access token (``shared/platforms/zalo.md``
section 5). This is how a customer is reached outside the 7-day consultation window (win-back
campaigns, voucher reminders), so it is billed, quota-limited and must never go out twice.

**Sending once.** Every send carries our ``tracking_id`` (the idempotency key of the send, echoed by
Zalo's delivery event). zalo.md does *not* say that Zalo deduplicates on it (unconfirmed), so we keep our
own record (:class:`ZnsSendLog`):

1. the tracking id is claimed (``pending``) before the request; a tracking id already ``sent`` returns
   its ``msg_id`` without sending, one still ``pending`` raises :class:`DeliveryUnknownError`;
2. requests are retried only when Zalo surely did not act on them: a connection that never opened, a
   rate limit (``-32``, HTTP 429), a refused token (refreshed once);
3. a timeout, a 5xx or an unreadable answer may come after Zalo sent the message: the claim stays
   ``pending`` and :class:`DeliveryUnknownError` is raised; the delivery webhook (which carries the
   tracking id) or a person settles it with :meth:`ZnsSendLog.sent` or :meth:`ZnsSendLog.release`;
4. a refusal by Zalo (any non-zero ``error``) releases the claim, so a later call may try again.

So a tracking id is sent at most once, as durably as the send log (Redis with an fsynced append-only file
in production; :class:`RedisZnsSendLog`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal, Protocol

import httpx
from redis.asyncio import Redis

from bot.channels.base import ChannelError
from bot.channels.errors import DEFAULT_POLICY, RetryPolicy
from bot.channels.zalo import (
    NOT_SENT_CODES,
    Clock,
    ErrorTable,
    OATokens,
    RetryLaterError,
    ZaloTokens,
    ZaloTransientError,
    call_with_token,
    normalize_phone,
    send_request,
)
from bot.timeutil import utc_now

log = logging.getLogger("loyalty.bot.channels.zns")

TEMPLATE_PATH: Final = "/message/template"
#: tracking_id: "≤ 48 characters, no special characters"; the doc's own example uses ``:`` ``-`` ``_``,
#: so those are accepted (which others Zalo refuses is unconfirmed).
_TRACKING_ID: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,48}")
#: Vietnam has no daylight saving time: ZNS's quiet hours (22:00–06:00) are in UTC+7.
_VIETNAM: Final = timezone(timedelta(hours=7))
_NIGHT_CODE: Final = -133

# zalo.md section 5. Confirmed: -108, -118, -124, -144, -1472; the others are listed "unconfirmed
# individually", and -32 / -216 / -220 are the OpenAPI codes, mapped alike in case ZNS answers them too.
ZNS_ERRORS: Final = ErrorTable(
    rate_limited=frozenset({-32}),
    token=frozenset({-124, -216, -220}),
    recipient=frozenset({-118, -114, -119, -139, -141}),
    quota=frozenset({-144, -1472, -147}),
    later=frozenset({_NIGHT_CODE}),
    configuration=frozenset({-109, -115, -131, -146}),
    permanent=frozenset({-108, -1121, -1122, -1124}),
)


class DeliveryUnknownError(ChannelError):
    """Zalo may or may not have sent the message (a timeout, a 5xx after the request left).

    Neither transient (retrying could send it twice) nor permanent: the send stays ``pending`` in the
    :class:`ZnsSendLog` until the delivery webhook or a person settles it.
    """

    def __init__(self, message: str, *, tracking_id: str, code: str | None = None) -> None:
        super().__init__(message)
        self.tracking_id = tracking_id
        self.code = code


@dataclass(frozen=True, slots=True)
class ZnsRecord:
    """What the send log knows of a tracking id: ``pending`` (claimed, outcome unknown) or ``sent``."""

    state: Literal["pending", "sent"]
    msg_id: str | None = None


class ZnsSendLog(Protocol):
    """Our own record of ZNS sends by tracking id, shared by every worker process."""

    async def claim(self, tracking_id: str) -> ZnsRecord | None:
        """Mark ``tracking_id`` as being sent; ``None`` if it is ours now, else what is already recorded."""
        ...

    async def sent(self, tracking_id: str, msg_id: str) -> None:
        """Record that Zalo accepted the message as ``msg_id``."""
        ...

    async def release(self, tracking_id: str) -> None:
        """Forget a ``pending`` claim (Zalo surely did not send it): the tracking id may be sent again."""
        ...


class MemoryZnsSendLog:
    """A :class:`ZnsSendLog` in this process's memory: tests and single-process tools only."""

    def __init__(self) -> None:
        self.records: dict[str, ZnsRecord] = {}

    async def claim(self, tracking_id: str) -> ZnsRecord | None:
        existing = self.records.get(tracking_id)
        if existing is None:
            self.records[tracking_id] = ZnsRecord("pending")
        return existing

    async def sent(self, tracking_id: str, msg_id: str) -> None:
        self.records[tracking_id] = ZnsRecord("sent", msg_id)

    async def release(self, tracking_id: str) -> None:
        if self.records.get(tracking_id) == ZnsRecord("pending"):
            del self.records[tracking_id]


# Delete the claim only while it is still pending (never a recorded msg_id).
_RELEASE: Final = (
    "if redis.call('GET', KEYS[1]) == 'pending' then return redis.call('DEL', KEYS[1]) end return 0"
)


class RedisZnsSendLog:
    """A :class:`ZnsSendLog` in Redis: ``<prefix>:<tracking_id>`` = ``pending`` or ``sent:<msg_id>``.

    :param ttl: seconds a record is kept; longer than any campaign may retry the same tracking id.
    """

    def __init__(self, redis: Redis, *, prefix: str = "zns:sent", ttl: int = 90 * 24 * 3600) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    def key(self, tracking_id: str) -> str:
        return f"{self.prefix}:{tracking_id}"

    async def claim(self, tracking_id: str) -> ZnsRecord | None:
        key = self.key(tracking_id)
        for _ in range(3):
            if await self.redis.set(key, "pending", nx=True, ex=self.ttl):
                return None
            value: str | bytes | None = await self.redis.get(key)
            if value is None:
                continue  # released or expired in between: claim again
            text = value.decode() if isinstance(value, bytes) else value
            if text.startswith("sent:"):
                return ZnsRecord("sent", text.removeprefix("sent:"))
            return ZnsRecord("pending")
        raise ZaloTransientError(f"ZNS send log of {tracking_id} kept changing", code="send_log")

    async def sent(self, tracking_id: str, msg_id: str) -> None:
        await self.redis.set(self.key(tracking_id), f"sent:{msg_id}", ex=self.ttl)

    async def release(self, tracking_id: str) -> None:
        await self.redis.eval(_RELEASE, 1, self.key(tracking_id))


def seconds_until_morning(now: datetime) -> float:
    """Seconds from ``now`` to the next 06:00 in Vietnam, when ZNS may send again after ``-133``."""
    local = now.astimezone(_VIETNAM)
    morning = local.replace(hour=6, minute=0, second=0, microsecond=0)
    if morning <= local:
        morning += timedelta(days=1)
    return (morning - local).total_seconds()


def _masked(phone: str) -> str:
    return f"…{phone[-3:]}"


class ZnsClient:
    """Sends approved ZNS templates with the OA's tokens (the same :class:`ZaloTokens` as the OA client).

    :param http: the HTTP client (with a timeout).
    :param tokens: the OA's tokens; a refused token (``-124``) is refreshed once.
    :param zns_base: ``ZALO_ZNS_API_BASE`` (``https://business.openapi.zalo.me``).
    :param policy: retries of the calls that surely did not reach Zalo.
    :param send_log: the record that keeps a tracking id from being sent twice; production passes a
        :class:`RedisZnsSendLog` (the default, :class:`MemoryZnsSendLog`, protects one process only).
    :param development: send with ``"mode": "development"`` (only to the app's admins; unconfirmed).
    :param clock: the current aware UTC time (the quiet hours' ``retry_after``).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: ZaloTokens,
        *,
        zns_base: str,
        policy: RetryPolicy = DEFAULT_POLICY,
        send_log: ZnsSendLog | None = None,
        development: bool = False,
        clock: Clock = utc_now,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.zns_base = zns_base.rstrip("/")
        self.policy = policy
        self.send_log: ZnsSendLog = send_log if send_log is not None else MemoryZnsSendLog()
        self.development = development
        self.clock = clock
        #: ``remainingQuota`` of the last answer (the daily quota moves with sending quality).
        self.remaining_quota: int | None = None

    async def send_template(
        self, phone: str, template_id: str, template_data: Mapping[str, str], tracking_id: str
    ) -> str:
        """Send template ``template_id`` with ``template_data`` to ``phone``, at most once per tracking id.

        :param phone: a Vietnamese number: ``84…``, ``+84…`` or ``0…`` (spaces, dots and dashes ignored).
        :param template_data: the approved template's parameters, as strings.
        :param tracking_id: the idempotency key of this send (≤ 48 characters: letters, digits, ``_.:-``).
        :return: Zalo's ``msg_id`` (the recorded one when this tracking id was already sent).
        :raises ValueError: a phone, tracking id or template data Zalo would refuse (nothing is sent).
        :raises DeliveryUnknownError: this or an earlier attempt may have been sent; nothing is resent.
        :raises ChannelError: Zalo refused it (mapped codes: :data:`ZNS_ERRORS`); nothing was sent.
        """
        number = normalize_phone(phone)
        if not _TRACKING_ID.fullmatch(tracking_id):
            raise ValueError("a ZNS tracking_id has 1 to 48 letters, digits or _ . : -")
        if not template_id:
            raise ValueError("a ZNS template_id cannot be empty")
        bad = [key for key, value in template_data.items() if not isinstance(value, str)]
        if bad:
            raise ValueError(f"ZNS template_data values must be strings (not {bad})")
        body: dict[str, Any] = {
            "phone": number,
            "template_id": template_id,
            "template_data": dict(template_data),
            "tracking_id": tracking_id,
        }
        if self.development:
            body["mode"] = "development"

        record = await self.send_log.claim(tracking_id)
        if record is not None:
            if record.state == "sent" and record.msg_id is not None:
                log.info("ZNS %s was already sent (msg %s): not sending again", tracking_id, record.msg_id)
                return record.msg_id
            raise DeliveryUnknownError(
                f"ZNS {tracking_id} is pending from an earlier attempt whose outcome is unknown: not resent",
                tracking_id=tracking_id,
                code="pending",
            )
        try:
            msg_id = await call_with_token(
                self.tokens, lambda tokens: self._post(tokens, body), policy=self.policy, what="zns send"
            )
        except DeliveryUnknownError:
            log.error("ZNS %s to %s: outcome unknown, left pending", tracking_id, _masked(number))
            raise
        except Exception:
            # Only _post's DeliveryUnknownError means "maybe sent": anything else (Zalo's error answer,
            # a connection that never opened, a token that could not be obtained) sent nothing.
            await self.send_log.release(tracking_id)
            raise
        # A cancellation (BaseException) leaves the claim pending: it may have come mid-request.
        await self.send_log.sent(tracking_id, msg_id)
        log.info("ZNS %s sent to %s (msg %s)", tracking_id, _masked(number), msg_id)
        return msg_id

    async def _post(self, tokens: OATokens, body: Mapping[str, Any]) -> str:
        try:
            answer = await send_request(
                self.http,
                "POST",
                f"{self.zns_base}{TEMPLATE_PATH}",
                what="zns send",
                table=ZNS_ERRORS,
                headers={"access_token": tokens.access_token},
                json_body=body,
            )
        except ZaloTransientError as error:
            if error.code in NOT_SENT_CODES:
                raise  # retried by with_retries: the request never left
            raise DeliveryUnknownError(
                f"ZNS {body['tracking_id']}: {error}; Zalo may have sent it",
                tracking_id=str(body["tracking_id"]),
                code=error.code,
            ) from error
        except RetryLaterError as error:
            if error.code == str(_NIGHT_CODE):
                error.retry_after = seconds_until_morning(self.clock())
            raise
        data = answer.get("data")
        data = data if isinstance(data, dict) else {}
        quota = data.get("quota")
        if isinstance(quota, dict):
            remaining = quota.get("remainingQuota")  # a string in the doc's example
            if isinstance(remaining, int | str) and str(remaining).isdigit():
                self.remaining_quota = int(remaining)
        msg_id = data.get("msg_id")
        if not isinstance(msg_id, str) or not msg_id:
            log.warning("ZNS %s accepted without a msg_id", body["tracking_id"])
            return ""
        return msg_id


__all__ = [
    "ZNS_ERRORS",
    "DeliveryUnknownError",
    "MemoryZnsSendLog",
    "RedisZnsSendLog",
    "ZnsClient",
    "ZnsRecord",
    "ZnsSendLog",
    "seconds_until_morning",
]
