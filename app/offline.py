"""Running a command against the service's data while the service itself may be stopped.

Commands such as ``loyalty qr`` and ``loyalty reconcile`` talk to the same database as ``loyalty serve``.
With embedded defaults they start the embedded servers on ``DATA_DIR`` for their duration, which only
works while ``serve`` is stopped (whoever runs the servers holds the ``DATA_DIR`` lock): then
:func:`data_dir_in_use` explains, naming the running servers' URLs to pass as ``MONGODB_URI`` /
``REDIS_URL`` instead.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator

from app.embedded import DataDirLock, EmbeddedMongo, EmbeddedRedis, EmbeddedServer, EmbeddedServerError
from app.loyalty import build_loyalty
from app.program import load_program_for
from app.settings import Settings
from loyalty.clock import Clock, SystemClock
from loyalty.core import Loyalty
from storage.clients import create_mongo_client
from storage.indexes import ensure_indexes


def data_dir_in_use(settings: Settings, command: str) -> str | None:
    """Why the embedded servers cannot be started here (``loyalty serve`` runs them), or ``None``."""
    if not (settings.embedded_mongo or settings.embedded_redis):
        return None
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except EmbeddedServerError as error:
        servers: list[tuple[str, EmbeddedServer]] = []
        if settings.embedded_mongo:
            servers.append(("MONGODB_URI", EmbeddedMongo(settings.data_dir)))
        if settings.embedded_redis:
            servers.append(("REDIS_URL", EmbeddedRedis(settings.data_dir)))
        urls = {name: _running_url(server) for name, server in servers}
        message = (
            f"{command}: {error}.\n"
            "Is `loyalty serve` running? Stop it, or run this command against its servers"
        )
        if all(urls.values()):
            assignments = " ".join(f"{name}='{url}'" for name, url in urls.items())
            return f"{message}:\n  {assignments} {command} ..."
        return f"{message} by setting {' and '.join(urls)} (its start-up log line names them)."
    lock.release()
    return None


@contextlib.asynccontextmanager
async def open_loyalty(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Loyalty]:
    """The loyalty core on the settings' MongoDB (which must be running), closed on exit."""
    if settings.mongodb_uri is None or settings.secret_key is None:
        raise ValueError("open_loyalty needs MONGODB_URI and SECRET_KEY (start the embedded servers first)")
    mongo = create_mongo_client(settings.mongodb_uri.get_secret_value())
    try:
        db = mongo[settings.mongodb_db]
        await ensure_indexes(db)
        yield build_loyalty(
            db,
            load_program_for(settings),
            clock or SystemClock(),
            secret_key=settings.secret_key.get_secret_value(),
        )
    finally:
        await mongo.close()


def _running_url(server: EmbeddedServer) -> str | None:
    """The URL of the embedded server another process runs on this ``DATA_DIR`` (from its pid file)."""
    try:
        record = json.loads((server.home / "server.pid").read_text(encoding="utf-8"))
        pid, port = int(record["pid"]), int(record["port"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not _alive(pid):
        return None
    server.port = port
    return server.url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
