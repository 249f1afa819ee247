"""The ``loyalty`` command.

Exit codes (from ``sysexits.h``, so service managers and scripts can tell failures apart):

====  ==========================================================================================
0     stopped normally (including by Ctrl-C or SIGTERM)
2     wrong command-line usage
69    a server is unavailable: MongoDB or Redis cannot be reached or started, the port is taken
70    an unexpected internal error (a bug: the traceback is logged)
78    invalid configuration: one line names the setting (or the program file's line and field)
130   interrupted (Ctrl-C) while still starting up
====  ==========================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Final

from aiohttp import web
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app.admin_cli import add_admin_commands
from app.apikey_cli import add_apikey_command
from app.chat import build_dispatcher, chat_worker
from app.embedded import EmbeddedServerError
from app.factory import QuietProbesAccessLogger, create_app
from app.games_cli import add_games_command
from app.jobs import JobRunner
from app.logs import configure_logging
from app.platform_cli import add_platform_commands
from app.program import load_program_for
from app.qr_cli import add_qr_command
from app.resources import open_resources
from app.runtime import storage_servers, tune_gc
from app.settings import Settings, SettingsError, load_settings
from loyalty.clock import SystemClock
from loyalty.program import ProgramError

log = logging.getLogger("loyalty.cli")

EX_OK: Final = 0
EX_USAGE: Final = 2
EX_UNAVAILABLE: Final = 69
EX_SOFTWARE: Final = 70
EX_CONFIG: Final = 78
EX_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it

# The commands that run the loyalty program: they validate PROGRAM_FILE before starting anything.
PROGRAM_COMMANDS: Final = frozenset({"serve", "worker", "qr", "reconcile", "jobs", "games"})


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

    chat = commands.add_parser(
        "chat",
        help="chat with the bot from this terminal (needs a running `loyalty serve`)",
        description="A terminal chat with the bot through the emulator of a running service: what you type "
        "takes the same queue and worker as real webhooks. Buttons are numbered: type the number to press "
        "one. /follow, /unfollow, /share-phone 0912345678, /scan <ref>, /image, /location simulate platform "
        "events; /quit or Ctrl-D leaves.",
    )
    chat.add_argument("--channel", choices=("zalo", "messenger"), default="zalo", help="platform to emulate")
    chat.add_argument("--user", help="user id to chat as (default: a new one)")
    chat.add_argument("--url", help="the service's base URL (default: PUBLIC_BASE_URL, or http://HOST:PORT)")
    chat.set_defaults(run=_chat)

    add_qr_command(commands)
    add_games_command(commands)
    add_apikey_command(commands)
    add_platform_commands(commands)
    add_admin_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {name: value for name in ("host", "port") if (value := getattr(args, name, None)) is not None}
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        print(f"loyalty: {error}", file=sys.stderr)  # noqa: T201 - before logging exists
        return EX_CONFIG
    if args.command in PROGRAM_COMMANDS:
        try:
            load_program_for(settings)
        except ProgramError as error:
            print(f"loyalty: {error}", file=sys.stderr)  # noqa: T201 - before logging exists
            return EX_CONFIG
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values())
    wants_args = args.run is _chat or getattr(args, "pass_args", False)
    run: Callable[[Settings], int] = functools.partial(args.run, args=args) if wants_args else args.run
    try:
        return run(settings)
    except KeyboardInterrupt:  # Ctrl-C while starting, before the graceful handlers are installed
        log.info("interrupted while starting")
        return EX_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - every failure becomes a logged line and an exit code
        return _failure(error)


def _failure(error: Exception) -> int:
    """Log why the command failed (a traceback only for bugs) and choose its exit code."""
    if isinstance(error, EmbeddedServerError):
        log.error("%s", error)
    elif isinstance(error, PyMongoError | RedisError | ConnectionError):
        log.error("a storage server is unavailable: %s: %s", type(error).__name__, error)
    elif isinstance(error, OSError):
        log.error("cannot start: %s", error)
    else:
        log.error("unexpected error", exc_info=error)
        return EX_SOFTWARE
    return EX_UNAVAILABLE


def _serve(settings: Settings) -> int:
    with storage_servers(settings) as effective, asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve_app(create_app(effective, worker=settings.serve_worker), settings))
    # leaving the block above stopped the embedded servers, after the app let go of them
    log.info("stopped")
    return EX_OK


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (the `bench` extra has it; about 1.3x more webhook acks per second)."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM. A repeated signal (an impatient second Ctrl-C) is
    acknowledged, not obeyed: the shutdown it would cut short closes clients and stops servers cleanly."""
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("%s again: still stopping, finishing in-flight work", signal.Signals(signum).name)
            return
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    return stop


async def _serve_app(app: web.Application, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM (see :func:`stop_on_signals`), then shut down gracefully."""
    stop = stop_on_signals()
    runner = web.AppRunner(app, handle_signals=False, access_log_class=QuietProbesAccessLogger)
    await runner.setup()
    tune_gc()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("listening on http://%s:%d (public URL %s)", settings.host, settings.port, settings.base_url)
        await stop.wait()
    finally:
        await runner.cleanup()


def _chat(settings: Settings, *, args: argparse.Namespace) -> int:
    from app.chat_cli import run_chat  # noqa: PLC0415 - only this command needs it

    return asyncio.run(run_chat(args.url or settings.base_url, user_id=args.user, flavor=args.channel))


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
    return asyncio.run(_worker_main(settings))


async def _worker_main(settings: Settings) -> int:
    """``loyalty worker``: consume until SIGINT or SIGTERM, then finish the batch in hand and exit 0."""
    stop = stop_on_signals()
    async with open_resources(settings, SystemClock(), role="worker") as resources:
        dispatcher = build_dispatcher(resources)
        await dispatcher.emit_startup()
        worker = chat_worker(resources, dispatcher)
        tune_gc()
        tasks = [asyncio.create_task(worker.run(stop))]
        if settings.jobs_interval_seconds > 0:
            jobs = JobRunner(resources.loyalty, resources.redis, interval=settings.jobs_interval_seconds)
            tasks.append(asyncio.create_task(jobs.run(stop)))
        await asyncio.gather(*tasks)
        await dispatcher.emit_shutdown()
    log.info("worker stopped: %s", worker.stats)
    return EX_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
