"""The Messenger webhook's settings, held by the app under :data:`webhooks.messenger.CONFIG`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from bot.timeutil import utc_now

#: Older items are skipped: the queue forgets event ids after 24 h, so a replay of an old signed body
#: could otherwise be handled a second time. One hour of margin under that window.
DEFAULT_MAX_AGE_SECONDS: Final = 23 * 3600


@dataclass(frozen=True)
class MessengerWebhookConfig:
    """What ``/webhooks/messenger`` needs to know.

    :param app_secret: the Meta app's App Secret (``FACEBOOK_APP_SECRET``), the HMAC key of
        ``X-Hub-Signature-256``.
    :param verify_token: the Verify Token typed in the dashboard (``FACEBOOK_VERIFY_TOKEN``), checked on GET.
    :param page_id: when set, items for any other Page (one app can be connected to several) are skipped.
    :param max_age_seconds: items older than this are skipped and counted as stale.
    :param now: the clock used for the age check (tests pin it to the fixtures' time).
    """

    app_secret: str
    verify_token: str
    page_id: str | None = None
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS
    now: Callable[[], datetime] = field(default=utc_now, repr=False, compare=False)

    def oldest_millis(self) -> int:
        """Epoch milliseconds before which an item is stale (``now`` minus ``max_age_seconds``). With the
        default clock this reads :func:`time.time` (a datetime costs more, once per delivery)."""
        now = time.time() if self.now is utc_now else self.now().timestamp()
        return int(now * 1000) - self.max_age_seconds * 1000

    def __post_init__(self) -> None:
        # An empty secret would make every signature (and an empty verify token every GET) "valid".
        if not self.app_secret:
            raise ValueError("the Messenger webhook needs the app secret (FACEBOOK_APP_SECRET)")
        if not self.verify_token:
            raise ValueError("the Messenger webhook needs a verify token (FACEBOOK_VERIFY_TOKEN)")
        if self.max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
