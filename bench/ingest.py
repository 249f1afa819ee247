"""Webhook ingest: signed Messenger deliveries acknowledged per second, against a bare aiohttp endpoint.

(a) ``loyalty serve`` (embedded Redis and SecantusDB, uvloop when installed) with the Messenger webhook:
    verify the signature, validate, dedupe and append to the Redis Stream (coalesced Lua calls), 200.
    It runs with ``SERVE_WORKER=false`` so the figure is the ack path alone (production runs web and
    worker processes apart; the worker's rate is in ``bench.queue``).
(b) a bare aiohttp app in the same run, on the same loop, that reads the body and answers 200.

The load generator is wrk (Debian's ``wrk``: ``make bench`` installs it when missing) with a Lua
script that cycles through pre-signed deliveries, each with its own message id, so every request is a
new event that must be queued. Both servers get the same connections and duration.

Besides req/s (noisy on a shared machine: wrk, the server and Redis share the cores with whatever else
runs), each row reports the server's CPU time per request: utime + stime of the server process (and, for
ours, of its embedded Redis) from ``/proc/<pid>/stat`` over the measured run, divided by the requests
wrk completed. That figure barely moves with the machine's load.
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
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

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


def signed_bodies(count: int) -> str:
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
                                "message": {"mid": f"m_bench_{now}_{n}", "text": "điểm của tôi"},
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
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--bodies", type=int, default=200_000, help="distinct signed deliveries to cycle through"
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
        bodies = folder / "bodies.tsv"
        bodies.write_text(signed_bodies(args.bodies), encoding="utf-8")
        script = folder / "signed.lua"
        script.write_text(WRK_SCRIPT)
        (folder / "bare.py").write_text(BARE_APP)

        # (b) the bare endpoint
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, str(folder / "bare.py"), str(bare_port)])
        try:
            wait_ready(f"http://127.0.0.1:{bare_port}/readyz", bare)
            run_wrk(bare_port, bodies, script, connections=args.connections, seconds=2)  # warm-up
            bare_run = measure(
                bare.pid, bare_port, bodies, script, connections=args.connections, seconds=args.seconds
            )
        finally:
            stop(bare)

        # (a) loyalty serve with the Messenger webhook
        ours_port = free_port()
        ours = subprocess.Popen(SERVE, env=serve_env(folder, ours_port), cwd=folder)
        try:
            wait_ready(f"http://127.0.0.1:{ours_port}/readyz", ours)
            # the warm-up uses the last quarter of the deliveries, the measure starts at the first
            run_wrk(
                ours_port,
                bodies,
                script,
                connections=args.connections,
                seconds=2,
                offset=args.bodies * 3 // 4,
            )
            ours_run = measure(
                ours.pid, ours_port, bodies, script, connections=args.connections, seconds=args.seconds
            )
        finally:
            stop(ours)

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"loop: {loop_name}; wrk: 1 thread, {args.connections} connections, {args.seconds}s each; load {load}"
    )
    row = "{:<34}{:9,.0f} req/s   p50 {:6.2f} ms   p99 {:6.2f} ms   server CPU {:6.1f} us/req"
    for name, run in (
        ("bare aiohttp (read body, 200)", bare_run),
        ("loyalty serve (verify+queue, 200)", ours_run),
    ):
        line = row.format(name, run.rate, run.p50, run.p99, run.cpu_us)
        if run.redis_cpu_us == run.redis_cpu_us:  # not nan
            line += f" (+ Redis {run.redis_cpu_us:.1f})"
        print(line)
    print(f"cpu_per_request_vs_bare_aiohttp={ours_run.cpu_us / bare_run.cpu_us:.2f}")
    print(f"ratio_vs_bare_aiohttp={ours_run.rate / bare_run.rate:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
