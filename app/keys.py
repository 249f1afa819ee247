"""Typed keys for the objects the application holds (``app[SETTINGS]`` is a :class:`Settings`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from app.settings import Settings
from loyalty.clock import Clock
from storage.clients import Document, MongoClient
from storage.queue import EventQueue

if TYPE_CHECKING:
    from app.resources import Resources  # noqa: F401 - named by the RESOURCES key below
    from app.worker import Worker  # noqa: F401 - named by the WORKER key below
    from bot import Dispatcher  # noqa: F401 - named by the DISPATCHER key below

SETTINGS: Final = web.AppKey("settings", Settings)
CLOCK: Final = web.AppKey("clock", Clock)
MONGO_CLIENT: Final = web.AppKey("mongo_client", MongoClient)
MONGO_DB: Final = web.AppKey("mongo_db", AsyncDatabase[Document])
REDIS: Final = web.AppKey("redis", Redis)
QUEUE: Final = web.AppKey("queue", EventQueue)
WORKER: Final = web.AppKey["Worker"]("worker")
RESOURCES: Final = web.AppKey["Resources"]("resources")
DISPATCHER: Final = web.AppKey["Dispatcher"]("dispatcher")
