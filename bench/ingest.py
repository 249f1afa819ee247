"""Webhook ingest: signed Messenger deliveries acknowledged per second, against a bare aiohttp endpoint.

(a) ``loyalty serve`` (embedded Redis and SecantusDB, uvloop when installed) with the Messenger webhook:
    verify the signature, validate, dedupe and append to the Redis Stream (coalesced Lua calls), 200.
    It runs with ``SERVE_WORKER=false`` so the figure is the ack path alone (production runs web and
    worker processes apart; the worker's rate is in ``bench.queue``).
(b) a bare aiohttp app in the same run, on the same kind of loop, that reads the body and answers 200.

The load generator is wrk (Debian's ``wrk``: ``make bench`` installs it when missing) with a Lua
script that cycles through pre-signed deliveries, each with its own message id (a new set each round),
so every request is a new event that must be queued. Both servers get the same connections and duration.

Both servers stay up for the whole run and take turns: each round measures one, then the other (the
order alternating from round to round), and the ratio reported is the median of the rounds' ratios. On
a shared machine the speed of both drifts by up to 2x within minutes; a pair of runs seconds apart sees
the same machine, where two long runs one after the other did not (a single pair moved the ratio by
±0.15 from one run to the next).

Besides req/s, each row reports the server's CPU time per request: utime + stime of the server process
(and, for ours, of its embedded Redis) from ``/proc/<pid>/stat`` over the measured run, divided by the
requests wrk completed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import redis

from app.embedded import free_port
from bench import cpu_seconds, descendants

APP_SECRET = "bench-app-secret-0123456789"
PAGE_ID = "1000000000001"

BARE_APP = textwrap.dedent(
    """
    import sys
    from aiohttp import web

    async def ok(request):
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/webhooks/messenger", ok)
    app.router.add_get("/readyz", lambda request: web.json_response({}))
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=loop)
    """
)

WRK_SCRIPT = textwrap.dedent(
    """
    local bodies, signatures, n = {}, {}, 0
    local file = io.open(os.getenv("BENCH_BODIES"), "r")
    for line in file:lines() do
      local tab = line:find("\\t", 1, true)
      n = n + 1
      signatures[n] = line:sub(1, tab - 1)
      bodies[n] = line:sub(tab + 1)
    end
    file:close()
    local i = tonumber(os.getenv("BENCH_OFFSET") or "0")
    request = function()
      i = i + 1
      local k = (i % n) + 1
      return wrk.format("POST", "/webhooks/messenger", {
        ["Content-Type"] = "application/json",
        ["X-Hub-Signature-256"] = signatures[k],
      }, bodies[k])
    end
    """
)


def signed_bodies(count: int, tag: str = "") -> str:
    """``count`` signed deliveries, a line each (``signature<TAB>body``), their message ids made unique
    by the time and ``tag``."""
    lines = []
    now = int(time.time() * 1000)
    for n in range(count):
        body = json.dumps(
            {
                "object": "page",
                "entry": [
                    {
                        "id": PAGE_ID,
                        "time": now,
                        "messaging": [
                            {
                                "sender": {"id": f"2400000000{n % 5000:07d}"},
                                "recipient": {"id": PAGE_ID},
                                "timestamp": now,
                                "message": {"mid": f"m_bench_{now}{tag}_{n}", "text": "điểm của tôi"},
                            }
                        ],
                    }
                ],
            },
            separators=(",", ":"),
        )
        signature = "sha256=" + hmac.new(APP_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
        lines.append(f"{signature}\t{body}")
    return "\n".join(lines) + "\n"


SERVE = [sys.executable, "-m", "app.cli", "serve"]


def serve_env(folder: Path, port: int) -> dict[str, str]:
    """``loyalty serve``'s environment: embedded servers under ``folder``, the Messenger webhook on,
    the in-process worker off (the ack path alone)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "REDIS_"))}
    env.update(
        DATA_DIR=str(folder / "var"),
        PORT=str(port),
        HOST="127.0.0.1",
        FACEBOOK_APP_SECRET=APP_SECRET,
        FACEBOOK_VERIFY_TOKEN="bench-verify-token",
        FACEBOOK_PAGE_ID=PAGE_ID,
        SERVE_WORKER="false",
        LOG_LEVEL="WARNING",
    )
    return env


def wait_ready(url: str, process: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} not ready within {within}s")


def redis_server(pid: int) -> int | None:
    """The Redis server below ``pid``, by its executable (the watchdog's arguments name it too)."""
    for child in descendants(pid):
        try:
            if "redis-server" in os.readlink(f"/proc/{child}/exe"):
                return child
        except OSError:
            continue
    return None


def empty_queue(pid: int) -> None:
    """Empty the embedded Redis of ``loyalty serve`` (``pid``) and compact its append-only file, as a
    worker keeping up with the queue would keep it, so that every round starts from the same state.

    The serve process runs without its worker here: the stream would grow by ~75,000 entries a round,
    and at some point Redis would rewrite its append-only file in the background (a forked child copying
    the whole dataset) during whichever round that happened to be.
    """
    redis_pid = redis_server(pid)
    if redis_pid is None:
        raise SystemExit("the embedded Redis of loyalty serve was not found")
    address = Path(f"/proc/{redis_pid}/cmdline").read_bytes().split(b"\0")[0].rsplit(b" ", 1)[-1]
    host, _, port = address.decode().rpartition(":")
    client = redis.Redis(host=host, port=int(port))
    try:
        client.flushall()
        client.bgrewriteaof()
        while client.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.1)
    finally:
        client.close()


class Run(NamedTuple):
    rate: float
    p50: float
    p99: float
    requests: int
    cpu_us: float  # the server process's CPU time per request
    redis_cpu_us: float  # its Redis's, when it has one (nan otherwise)


def measure(
    pid: int, port: int, bodies: Path, script: Path, *, connections: int, seconds: int, offset: int = 0
) -> Run:
    """One wrk run against ``port``, with the CPU time ``pid`` (and its Redis child) spent on it."""
    redis_pid = redis_server(pid)
    before = cpu_seconds(pid), cpu_seconds(redis_pid) if redis_pid else 0.0
    rate, p50, p99, requests = run_wrk(
        port, bodies, script, connections=connections, seconds=seconds, offset=offset
    )
    after = cpu_seconds(pid), cpu_seconds(redis_pid) if redis_pid else 0.0
    per_request = 1e6 / max(requests, 1)
    redis_us = (after[1] - before[1]) * per_request if redis_pid else float("nan")
    return Run(rate, p50, p99, requests, (after[0] - before[0]) * per_request, redis_us)


def run_wrk(
    port: int, bodies: Path, script: Path, *, connections: int, seconds: int, offset: int = 0
) -> tuple[float, float, float, int]:
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_OFFSET": str(offset)}
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/webhooks/messenger",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise SystemExit(f"{non_2xx.group(1)} requests were not acknowledged with 200:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rate, _latency(out, "50%"), _latency(out, "99%"), requests


def _latency(out: str, quantile: str) -> float:
    match = re.search(rf"{re.escape(quantile)}\s+([\d.]+)(us|ms|s)\b", out)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=5, help="each measured wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of one run of each server")
    parser.add_argument(
        "--bodies", type=int, default=150_000, help="distinct signed deliveries a round cycles through"
    )
    args = parser.parse_args(argv or [])
    if shutil.which("wrk") is None:
        raise SystemExit("bench.ingest needs wrk: apt-get install wrk (make bench installs it)")
    try:
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        loop_name = "asyncio"
    else:
        loop_name = "uvloop"

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = folder / "signed.lua"
        script.write_text(WRK_SCRIPT)
        (folder / "bare.py").write_text(BARE_APP)
        bare_port, ours_port = free_port(), free_port()
        bare = subprocess.Popen([sys.executable, str(folder / "bare.py"), str(bare_port)])
        ours = subprocess.Popen(SERVE, env=serve_env(folder, ours_port), cwd=folder)
        try:
            wait_ready(f"http://127.0.0.1:{bare_port}/readyz", bare)
            wait_ready(f"http://127.0.0.1:{ours_port}/readyz", ours)
            rounds = measure_rounds(
                {"bare": (bare.pid, bare_port), "ours": (ours.pid, ours_port)},
                folder,
                script,
                connections=args.connections,
                seconds=args.seconds,
                rounds=args.rounds,
                bodies=args.bodies,
                between=lambda: empty_queue(ours.pid),
            )
        finally:
            stop(ours)
            stop(bare)

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"loop: {loop_name}; wrk: 1 thread, {args.connections} connections, {args.seconds}s a run, "
        f"{args.rounds} rounds; load {load}"
    )
    report(rounds, {"bare": "bare aiohttp (read body, 200)", "ours": "loyalty serve (verify+queue, 200)"})


def measure_rounds(
    servers: dict[str, tuple[int, int]],
    folder: Path,
    script: Path,
    *,
    connections: int,
    seconds: int,
    rounds: int,
    bodies: int,
    between: Callable[[], None] = lambda: None,
) -> list[dict[str, Run]]:
    """``rounds`` rounds of one wrk run per server (``name: (pid, port)``), the order reversed every
    other round, each round with new deliveries; each server is warmed up first, and ``between`` runs
    before each round."""
    names = list(servers)
    warm = folder / "warm.tsv"
    warm.write_text(signed_bodies(bodies // 4, tag="w"), encoding="utf-8")
    for pid, port in servers.values():
        measure(pid, port, warm, script, connections=connections, seconds=2)
    results: list[dict[str, Run]] = []
    for number in range(rounds):
        deliveries = folder / "round.tsv"
        deliveries.write_text(signed_bodies(bodies, tag=f"r{number}"), encoding="utf-8")
        between()
        order = names if number % 2 == 0 else names[::-1]
        runs = {
            name: measure(*servers[name], deliveries, script, connections=connections, seconds=seconds)
            for name in order
        }
        if max(run.requests for run in runs.values()) > bodies:
            print(f"round {number}: more requests than deliveries (--bodies): some were duplicates")
        results.append({name: runs[name] for name in names})
    return results


def report(rounds: list[dict[str, Run]], labels: dict[str, str]) -> None:
    """Each round's runs, the medians, and the last lines: the median of the rounds' ratios of the
    second server to the first (``ratio_vs_bare_aiohttp``) and of their CPU time a request."""
    first, second = list(labels)
    row = "{:<34}{:9,.0f} req/s   p50 {:6.2f} ms   p99 {:6.2f} ms   server CPU {:6.1f} us/req"

    def line(name: str, run: Run) -> str:
        text = row.format(labels[name], run.rate, run.p50, run.p99, run.cpu_us)
        if run.redis_cpu_us == run.redis_cpu_us:  # not nan
            text += f" (+ Redis {run.redis_cpu_us:.1f})"
        return text

    for number, runs in enumerate(rounds):
        ratio = runs[second].rate / runs[first].rate
        print(f"round {number}: ratio {ratio:.2f}")
        for name in labels:
            print("  " + line(name, runs[name]))
    print("median of the rounds:")
    for name in labels:
        of_name = [r[name] for r in rounds]
        print(
            "  "
            + line(
                name,
                Run(
                    statistics.median(run.rate for run in of_name),
                    statistics.median(run.p50 for run in of_name),
                    statistics.median(run.p99 for run in of_name),
                    sum(run.requests for run in of_name),
                    statistics.median(run.cpu_us for run in of_name),
                    statistics.median(run.redis_cpu_us for run in of_name),
                ),
            )
        )
    worst_p99 = max(r[second].p99 for r in rounds)
    print(f"{labels[second]}: worst p99 of the rounds {worst_p99:.2f} ms")
    ratios = [r[second].rate / r[first].rate for r in rounds]
    cpu = [r[second].cpu_us / r[first].cpu_us for r in rounds]
    print(f"cpu_per_request_vs_bare_aiohttp={statistics.median(cpu):.2f}")
    print(f"ratio_vs_bare_aiohttp={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
