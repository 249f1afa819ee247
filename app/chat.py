"""Chat wiring: updates into the queue, and the worker's handler that feeds them to the dispatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pydantic import SecretStr
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.paths import MESSAGES_DIR
from app.resources import Resources
from app.settings import Settings
from app.worker import EventHandler, Worker
from bot import UPDATE_ADAPTER, Dispatcher
from bot.channels.base import ChannelClient
from bot.channels.emulator import EmulatorChannel, EmulatorOutbox
from bot.channels.messenger import MessengerClient
from bot.channels.zalo import ZaloOAClient, ZaloTokens
from bot.channels.zns import RedisZnsSendLog
from bot.fsm.redis import RedisIsolation, RedisStorage
from bot.i18n import Messages
from bot.interactions import RedisInteractionLog
from bot.outbox import RedisOutbox
from bot.types import BaseUpdate, Channel
from handlers import build_router
from loyalty.program import Program
from storage.platform_tokens import MongoTokenStore
from storage.queue import CoalescingPublisher, Delivery, EventQueue
from storage.zns_deliveries import ZnsDeliveries
from webhooks.common import Prepared
from webhooks.zalo import ZnsDeliveryStatus

log = logging.getLogger("loyalty.chat")

CHAT_UPDATE: Final = "chat.update"

# Failures worth retrying later (the event stays pending and is delivered again); anything else is a
# bug or bad data, already logged by the dispatcher, and retrying would only repeat it.
TRANSIENT: Final = (ConnectionError, TimeoutError, ConnectionFailure, RedisConnectionError, RedisTimeoutError)


class QueuedUpdates:
    """The :class:`~webhooks.common.PreparedSink` of this app: chat updates as ``chat.update`` queue events.

    The dedupe id is the platform's event id within its channel and account; the ordering key is the
    user, so one user's updates are handled in order. Events are encoded for the queue here, on the
    caller's turn of the loop, and published together by a :class:`CoalescingPublisher`.
    """

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue
        self.publisher = CoalescingPublisher(queue)

    def submit(self, prepared: Sequence[Prepared]) -> asyncio.Future[list[str | None]]:
        encode = self.queue.encode
        encoded = []
        for p in prepared:  # (a loop, not a comprehension: on 3.11 that is a function call more)
            account = f"{p.channel}:{p.account_id}:"
            encoded.append(encode(CHAT_UPDATE, account + p.user_id, p.json, account + p.event_id))
        return self.publisher.submit(encoded)

    async def publish(self, updates: Sequence[BaseUpdate]) -> list[bool]:
        # the channel is a StrEnum, so it is its own value; the model's serializer is called directly,
        # skipping model_dump_json's keyword handling
        encode = self.queue.encode
        entries = await self.publisher.submit(
            [
                encode(
                    CHAT_UPDATE,
                    f"{update.channel}:{update.account_id}:{update.user_id}",
                    update.__pydantic_serializer__.to_json(update),
                    f"{update.channel}:{update.account_id}:{update.event_id}",
                )
                for update in updates
            ]
        )
        return [entry is not None for entry in entries]

    async def aclose(self) -> None:
        """Close the publisher's Redis connection (after the calls in flight)."""
        await self.publisher.aclose()


def channel_clients(resources: Resources) -> dict[str, ChannelClient]:
    """A client per channel this deployment is configured for (the emulator always)."""
    settings = resources.settings
    clients: dict[str, ChannelClient] = {
        Channel.EMULATOR.value: EmulatorChannel(EmulatorOutbox(resources.redis)),
    }
    if settings.facebook_page_id and settings.facebook_page_access_token is not None:
        clients[Channel.MESSENGER.value] = MessengerClient(
            resources.http,
            graph_base=str(settings.facebook_graph_base),
            graph_version=settings.facebook_graph_version,
            page_id=settings.facebook_page_id,
            page_access_token=settings.facebook_page_access_token.get_secret_value(),
            interactions=RedisInteractionLog(resources.redis),
        )
    if settings.zalo_oa_id and settings.zalo_app_id and settings.zalo_app_secret is not None:
        tokens = ZaloTokens(
            resources.http,
            MongoTokenStore(resources.db, resources.redis),
            oauth_base=str(settings.zalo_oauth_base),
            app_id=settings.zalo_app_id,
            app_secret=settings.zalo_app_secret.get_secret_value(),
            account_id=settings.zalo_oa_id,
            seed_access_token=_secret(settings.zalo_oa_access_token),
            seed_refresh_token=_secret(settings.zalo_oa_refresh_token),
        )
        clients[Channel.ZALO.value] = ZaloOAClient(
            resources.http, tokens, api_base=str(settings.zalo_oa_api_base)
        )
    return clients


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def message_directories(settings: Settings, program: Program) -> list[Path]:
    """Where the bot's copy is looked up, first match wins: the brand's own templates (the program's
    ``brand.templates_dir``, then ``TEMPLATES_DIR``; each holds ``messages/<locale>/*.j2``), then the
    bundled ones. A brand overrides any message by writing a file of the same name."""
    own = (program.brand.templates_dir, settings.templates_dir)
    return [d / "messages" for d in own if d is not None] + [MESSAGES_DIR]


def brand_name(settings: Settings, program: Program) -> str:
    """The name the bot says: ``BRAND_NAME`` when it is set, else the program's ``brand.name``."""
    return settings.brand_name if "brand_name" in settings.model_fields_set else program.brand.name


def build_dispatcher(resources: Resources) -> Dispatcher:
    settings = resources.settings
    directories = message_directories(settings, resources.program)
    dispatcher = Dispatcher(
        storage=RedisStorage(resources.redis),
        isolation=RedisIsolation(resources.redis, ttl=settings.user_lock_ttl_seconds),
        channels=channel_clients(resources),
        # a lease shorter than the worker's takeover time: a send left by a dead worker is retried
        outbox=RedisOutbox(resources.redis, lease=settings.worker_claim_idle_seconds / 2),
        services={
            "copy": Messages(directories),
            "brand": brand_name(settings, resources.program),
            "clock": resources.clock,
            "loyalty": resources.loyalty,
            "program": resources.program,
        },
    )
    dispatcher.include_router(build_router())
    return dispatcher


def chat_update_handler(
    dispatcher: Dispatcher, interactions: RedisInteractionLog | None = None
) -> EventHandler:
    async def handle(delivery: Delivery) -> None:
        update = UPDATE_ADAPTER.validate_python(delivery.data)
        if interactions is not None:
            await interactions.record(update)  # before handling: replies are inside the window
        result = await dispatcher.feed_update(update)
        if result.error is not None and isinstance(result.error, TRANSIENT):
            raise result.error  # keep it pending: the worker delivers it again later
        if not result.handled and result.error is None:
            log.info("update %s (%s) matched no handler", update.event_id, update.kind.value)

    return handle


def chat_worker(resources: Resources, dispatcher: Dispatcher) -> Worker:
    """The worker that feeds queued chat updates to ``dispatcher``, with the deployment's settings."""
    return Worker(
        resources.queue,
        {CHAT_UPDATE: chat_update_handler(dispatcher, RedisInteractionLog(resources.redis))},
        claim_idle_ms=int(resources.settings.worker_claim_idle_seconds * 1000),
    )


class ZnsReceipts:
    """What the Zalo webhook does with ZNS delivery events: keep the receipt (reports) and settle our
    send record, so a send whose outcome was unknown (a timeout) is known to have gone out."""

    def __init__(self, resources: Resources) -> None:
        self.deliveries = ZnsDeliveries(resources.db)
        self.send_log = RedisZnsSendLog(resources.redis)

    async def record(self, statuses: Sequence[ZnsDeliveryStatus]) -> None:
        await self.deliveries.record(statuses)
        for status in statuses:
            if status.tracking_id:
                await self.send_log.sent(status.tracking_id, status.msg_id)
