"""The Zalo webhook's settings and the app keys it reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from aiohttp import web

# The delivery queue forgets a dedupe id after 24 hours: anything older could be handled twice.
DEFAULT_MAX_AGE_SECONDS: Final = 23 * 3600
DEFAULT_MAX_SKEW_SECONDS: Final = 600


@dataclass(frozen=True, slots=True)
class ZaloWebhookConfig:
    """What the webhook needs to trust a delivery.

    :param app_id: the Zalo App id (``ZALO_APP_ID``), the first part of the signed string.
    :param oa_secret_key: the **OA Secret Key** of the app's webhook settings (``ZALO_OA_SECRET_KEY``),
        not the app secret (``ZALO_APP_SECRET``).
    :param max_age_seconds: deliveries whose body ``timestamp`` is older are refused as replays.
    :param max_skew_seconds: deliveries whose ``timestamp`` is further in the future are refused too.
    """

    app_id: str
    oa_secret_key: str = field(repr=False)
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS
    max_skew_seconds: int = DEFAULT_MAX_SKEW_SECONDS

    def __post_init__(self) -> None:
        if not self.app_id or not self.oa_secret_key:
            raise ValueError("the Zalo webhook needs an app id and an OA secret key")
        if self.max_age_seconds <= 0 or self.max_skew_seconds < 0:
            raise ValueError("max_age_seconds must be positive and max_skew_seconds not negative")


CONFIG: Final = web.AppKey("zalo_webhook_config", ZaloWebhookConfig)
# "now", timezone-aware UTC; the app passes its injectable clock so tests and replays can move it
CLOCK: Final = web.AppKey[Callable[[], datetime]]("zalo_webhook_clock")
