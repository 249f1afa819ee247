"""Facebook Messenger: Page webhooks in, ``bot`` updates onto the durable queue.

- ``GET  /webhooks/messenger``   the subscription handshake (``hub.verify_token`` → ``hub.challenge``)
- ``POST /webhooks/messenger``   deliveries signed with ``X-Hub-Signature-256``

The event table is :mod:`webhooks.messenger.events`; the dashboard settings, the decisions taken (Get
Started, referrals, standby, other objects) and how to replay a fixture are in this package's README.md.
"""

from __future__ import annotations

from aiohttp import web

from webhooks.messenger.config import MessengerWebhookConfig
from webhooks.messenger.view import CONFIG, receive, verify

PATH = "/webhooks/messenger"

__all__ = ["CONFIG", "PATH", "MessengerWebhookConfig", "register"]


def register(app: web.Application, config: MessengerWebhookConfig) -> None:
    """Add the Messenger webhook's routes and its config to ``app``.

    The app provides what :func:`webhooks.common.enqueue` needs (``common.SINK`` once Redis is open,
    ``common.COUNTERS``).

    :param app: the application, before it starts.
    :param config: the app secret and verify token (``FACEBOOK_APP_SECRET``, ``FACEBOOK_VERIFY_TOKEN``).
    """
    app[CONFIG] = config
    app.router.add_get(PATH, verify, allow_head=False)
    app.router.add_post(PATH, receive)
