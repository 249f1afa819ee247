"""`loyalty serve` as a person runs it: a real process, embedded servers, signals, crashes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
import redis

from app.cli import EX_UNAVAILABLE
from app.embedded import free_port

pytestmark = pytest.mark.slow

READY_WITHIN = 30.0
WRITES = 300


class Serve:
    """One `loyalty serve` process in its own process group, like `make run` in a terminal."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "REDIS_", "TEST_"))}
        env.update(DATA_DIR=str(data_dir), PORT=str(port), HOST="127.0.0.1", LOG_LEVEL="INFO")
        self.log = data_dir.parent / f"serve-{port}.log"
        self.log_handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            env=env,
            cwd=data_dir.parent,
            stdout=self.log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def readyz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as response:
                return int(response.status)
        except OSError:
            return 0

    def wait_ready(self) -> float:
        started = time.monotonic()
        while time.monotonic() - started < READY_WITHIN:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.output()}")
            if self.readyz() == 200:
                return time.monotonic() - started
            time.sleep(0.2)
        pytest.fail(f"/readyz not 200 within {READY_WITHIN}s:\n{self.output()}")

    def server_port(self, name: str) -> int:
        record = json.loads((self.data_dir / name / "server.pid").read_text())
        return int(record["port"])

    def server_pid(self, name: str) -> int:
        record = json.loads((self.data_dir / name / "server.pid").read_text())
        return int(record["pid"])

    def wait(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout)
        self.log_handle.close()
        return code

    def output(self) -> str:
        if not self.log_handle.closed:
            self.log_handle.flush()
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log_handle.close()


def processes_using(path: Path) -> dict[int, str]:
    """Live processes (pid: command line) that mention ``path``: our servers name their data dir."""
    found = {}
    needle = str(path).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def wait_until_gone(path: Path, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while (left := processes_using(path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return list(left.values())


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "var"
    yield path
    # never leave a server behind, whatever the test did
    for pid in processes_using(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_serve_is_ready_stops_on_ctrl_c_and_keeps_its_data(data_dir: Path) -> None:
    # given a fresh data dir and no MongoDB or Redis configured
    serve = Serve(data_dir, free_port())
    serve.wait_ready()
    assert "MongoDB embedded SecantusDB" in serve.output()
    assert "Redis embedded Redis" in serve.output()
    first_log = serve.output()

    # when Ctrl-C is pressed
    os.killpg(serve.process.pid, signal.SIGINT)

    # then it exits 0 and leaves no process behind
    assert serve.wait() == 0
    assert wait_until_gone(data_dir, within=10) == []

    # when it is started again on the same data dir
    again = Serve(data_dir, free_port())
    try:
        again.wait_ready()
        # then it finds the same deployment
        instance = first_log.split("instance ")[1].split(",")[0]
        assert f"instance {instance}" in again.output()
        assert "start #2" in again.output()
    finally:
        os.killpg(again.process.pid, signal.SIGTERM)
        assert again.wait() == 0
    assert wait_until_gone(data_dir, within=10) == []


def test_an_impatient_second_ctrl_c_does_not_cut_the_shutdown_short(data_dir: Path) -> None:
    serve = Serve(data_dir, free_port())
    serve.wait_ready()

    # when Ctrl-C is pressed twice in quick succession
    os.killpg(serve.process.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(serve.process.pid, signal.SIGINT)

    # then the shutdown still completes cleanly
    assert serve.wait() == 0
    assert "SIGINT again: still stopping" in serve.output()
    assert serve.output().rstrip().endswith("loyalty.cli: stopped")
    assert wait_until_gone(data_dir, within=10) == []


def test_sigkill_of_serve_leaves_no_orphan_servers(data_dir: Path) -> None:
    serve = Serve(data_dir, free_port())
    serve.wait_ready()

    # when the serve process group is killed outright
    serve.kill()

    # then the servers notice their parent died and stop by themselves
    assert wait_until_gone(data_dir, within=20) == []


def test_acknowledged_writes_survive_kill_9_of_everything(data_dir: Path) -> None:
    # given a running serve and writes that the servers acknowledged
    serve = Serve(data_dir, free_port())
    serve.wait_ready()
    mongo = pymongo.MongoClient(
        "127.0.0.1", serve.server_port("mongodb"), directConnection=True, retryWrites=False
    )
    cache = redis.Redis(port=serve.server_port("redis"))
    try:
        for i in range(WRITES):
            mongo.loyalty.durability.insert_one({"_id": i})
            cache.xadd("durability", {"i": i})
    finally:
        mongo.close()
        cache.close()

    # when serve and both servers are killed with SIGKILL at the same instant (no clean shutdown at all)
    victims = [serve.server_pid("mongodb"), serve.server_pid("redis")]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    serve.kill()
    assert wait_until_gone(data_dir, within=10) == []

    # then a restart finds every acknowledged write
    again = Serve(data_dir, free_port())
    try:
        again.wait_ready()
        mongo = pymongo.MongoClient("127.0.0.1", again.server_port("mongodb"), directConnection=True)
        cache = redis.Redis(port=again.server_port("redis"))
        try:
            assert mongo.loyalty.durability.count_documents({}) == WRITES
            assert cache.xlen("durability") == WRITES
        finally:
            mongo.close()
            cache.close()
    finally:
        os.killpg(again.process.pid, signal.SIGTERM)
        again.wait()


def test_a_second_serve_on_the_same_data_dir_is_refused(data_dir: Path) -> None:
    serve = Serve(data_dir, free_port())
    try:
        serve.wait_ready()

        second = Serve(data_dir, free_port())
        code = second.wait()

        assert code == EX_UNAVAILABLE
        assert "is in use by pid" in second.output()
        assert serve.readyz() == 200  # the first one is untouched
    finally:
        os.killpg(serve.process.pid, signal.SIGTERM)
        serve.wait()
