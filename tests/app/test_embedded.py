"""The embedded-server machinery with a deliberately stubborn server that ignores SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import pytest

from app.embedded import LOOPBACK, DataDirLock, EmbeddedServer, EmbeddedServerError

pytestmark = pytest.mark.slow

STUBBORN = textwrap.dedent(
    """
    import signal, socket, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(sys.argv[1])))
    server.listen()
    print("stubborn server up", flush=True)
    while True:
        time.sleep(1)
    """
)


class StubbornServer(EmbeddedServer):
    name = "stubborn"
    stop_timeout: ClassVar[float] = 5.0  # the watchdog's grace is 2 s shorter

    def executable(self) -> Path:
        return Path(sys.executable)

    def arguments(self, port: int) -> list[str]:
        script = self.home / "stubborn.py"
        script.write_text(STUBBORN)
        return [str(script), str(port)]

    def ping(self, port: int) -> bool:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"tcp://{LOOPBACK}:{self.port}"


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def server_pids(home: Path) -> list[int]:
    """Processes running the stubborn script of this home (the watchdog names it too)."""
    needle = str(home / "stubborn" / "stubborn.py").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    server = StubbornServer(tmp_path).start()
    pids = server_pids(tmp_path)
    assert len(pids) == 2  # the watchdog and the server

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < StubbornServer.stop_timeout
    assert not any(alive(pid) for pid in pids)


def test_a_server_that_ignores_sigterm_dies_with_a_killed_parent(tmp_path: Path) -> None:
    # given a parent process that started the stubborn server and is then killed outright
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tests.app.test_embedded import StubbornServer; "
            "StubbornServer(Path(sys.argv[1])).start(); print('ready', flush=True); time.sleep(600)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == b"ready"
    pids = server_pids(tmp_path)
    assert len(pids) == 2

    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    # then the watchdog stops the server, with SIGKILL once the grace period is over
    deadline = time.monotonic() + StubbornServer.stop_timeout + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)


def test_the_data_dir_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    second = DataDirLock(tmp_path)

    with pytest.raises(EmbeddedServerError, match=f"in use by pid {os.getpid()}"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
