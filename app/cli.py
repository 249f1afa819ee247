"""The ``loyalty`` command.

Exit codes (from ``sysexits.h``, so service managers and scripts can tell failures apart):

====  ==========================================================================================
0     stopped normally (including by Ctrl-C or SIGTERM)
2     wrong command-line usage
69    a server is unavailable: MongoDB or Redis cannot be reached or started, the port is taken
70    an unexpected internal error (a bug: the traceback is logged)
78    invalid configuration: one line names the setting
====  ==========================================================================================
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Final

from aiohttp import web
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app.embedded import EmbeddedServerError
from app.factory import QuietProbesAccessLogger, create_app
from app.logs import configure_logging
from app.runtime import storage_servers
from app.settings import Settings, SettingsError, load_settings

log = logging.getLogger("loyalty.cli")

EX_OK: Final = 0
EX_USAGE: Final = 2
EX_UNAVAILABLE: Final = 69
EX_SOFTWARE: Final = 70
EX_CONFIG: Final = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty",
        description="social-loyalty: a self-hostable, chat-first loyalty backend.",
        epilog="Settings come from the environment and ./.env (see README: Configuration). "
        "Exit codes: 0 ok, 2 usage, 69 server unavailable, 70 internal error, 78 invalid setting.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the web service with an in-process worker",
        description="Run the HTTP service (webhooks, Mini App API, staff console, health checks) and an "
        "in-process worker. With MONGODB_URI / REDIS_URL unset it starts embedded SecantusDB and Redis "
        "servers with their data under DATA_DIR, and stops them on exit.",
    )
    serve.add_argument("--host", help="listen address (overrides HOST)")
    serve.add_argument("--port", type=int, help="listen port (overrides PORT)")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker",
        help="run a worker process only (needs MONGODB_URI and REDIS_URL)",
        description="Run a worker that consumes the event queue, for deployments that scale workers "
        "apart from web processes. Workers share MongoDB and Redis with the web processes, so both "
        "MONGODB_URI and REDIS_URL must be set (the embedded servers belong to `loyalty serve`).",
    )
    worker.set_defaults(run=_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {name: value for name in ("host", "port") if (value := getattr(args, name, None)) is not None}
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        print(f"loyalty: {error}", file=sys.stderr)  # noqa: T201 - before logging exists
        return EX_CONFIG
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values())
    run: Callable[[Settings], int] = args.run
    try:
        return run(settings)
    except EmbeddedServerError as error:
        log.error("%s", error)
        return EX_UNAVAILABLE
    except (PyMongoError, RedisError, ConnectionError) as error:
        log.error("a storage server is unavailable: %s: %s", type(error).__name__, error)
        return EX_UNAVAILABLE
    except OSError as error:
        log.error("cannot start: %s", error)
        return EX_UNAVAILABLE
    except Exception:
        log.exception("unexpected error")
        return EX_SOFTWARE


def _serve(settings: Settings) -> int:
    with storage_servers(settings) as effective:
        app = create_app(effective)
        log.info("listening on http://%s:%d (public URL %s)", settings.host, settings.port, settings.base_url)
        # run_app turns SIGINT and SIGTERM into a graceful shutdown: the app's cleanup contexts close
        # the clients, then leaving this block stops the embedded servers.
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=None,
            handle_signals=True,
            access_log_class=QuietProbesAccessLogger,
        )
    log.info("stopped")
    return EX_OK


def _worker(settings: Settings) -> int:
    missing = [
        name
        for name, value in (("MONGODB_URI", settings.mongodb_uri), ("REDIS_URL", settings.redis_url))
        if value is None
    ]
    if missing:
        print(  # noqa: T201
            f"loyalty: invalid setting {missing[0]}: `loyalty worker` needs external servers; "
            "with embedded defaults `loyalty serve` runs the worker in-process",
            file=sys.stderr,
        )
        return EX_CONFIG
    from app.worker import run_worker  # noqa: PLC0415 - keep `loyalty serve` start-up lean

    return run_worker(settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
