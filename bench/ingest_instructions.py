"""Webhook ingest counted in instructions: ``bench.ingest``'s two servers, each run under callgrind.

On a shared machine the CPU time a request costs moves by a factor of two from one run to the next
(other processes, the host's own load), so an A/B of two versions of the ack path by time needs many
rounds to see a 5% change. Instructions do not move: each server runs under
``valgrind --tool=callgrind`` with counting off, is warmed up by wrk, then counted over one wrk run
(``callgrind_control -i on`` / ``off``), and the total is divided by the requests wrk completed. Two runs
of the same code agree within 0.1% on an idle machine, within ~2% when other processes change how the
requests batch. User-space only: system calls are not counted (they cost the same
on both sides), and valgrind hides SHA-NI from OpenSSL, so the HMAC counts more than it costs.

Needs valgrind (``apt-get install valgrind``) and wrk. About two minutes::

    .venv/bin/python -m bench.ingest_instructions
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from app.embedded import free_port
from bench.ingest import BARE_APP, SERVE, WRK_SCRIPT, run_wrk, serve_env, signed_bodies, stop, wait_ready

HOST = "127.0.0.1"


def count(command: list[str], env: dict[str, str], port: int, folder: Path, *, seconds: int) -> float:
    """Instructions per request of ``command`` (a server on ``port``) over a ``seconds`` wrk run."""
    bodies, script = folder / "bodies.tsv", folder / "signed.lua"
    out = folder / f"callgrind.{port}.out"  # its dumps: this name, and this name with .1, .2... after it
    vgdb = str(folder / "vgdb")
    # valgrind names its control pipes after $HOST, which `loyalty serve` also reads: the same on both ends
    control = {**env, "HOST": HOST}
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--vgdb-prefix={vgdb}",
            f"--callgrind-out-file={out}",
            *command,
        ],
        env=control,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://{HOST}:{port}/readyz", process, within=900)
        run_wrk(port, bodies, script, connections=64, seconds=5, offset=15_000)  # warm-up, not counted
        _control(vgdb, ["-i", "on"], process.pid, control)
        _, _, _, requests = run_wrk(port, bodies, script, connections=64, seconds=seconds)
        _control(vgdb, ["-i", "off"], process.pid, control)
        _control(vgdb, ["-d"], process.pid, control)
    finally:
        stop(process)
    total = 0
    for dump in folder.glob(f"{out.name}*"):
        match = re.search(r"^totals: (\d+)", dump.read_text(errors="replace"), re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total / max(requests, 1)


def _control(vgdb: str, args: list[str], pid: int, env: dict[str, str]) -> None:
    subprocess.run(
        ["callgrind_control", f"--vgdb-prefix={vgdb}", *args, str(pid)],
        env=env,
        check=True,
        capture_output=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="the counted wrk run")
    args = parser.parse_args(argv or [])
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench.ingest_instructions needs {tool}: apt-get install valgrind wrk")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bodies.tsv").write_text(signed_bodies(20_000), encoding="utf-8")
        (folder / "signed.lua").write_text(WRK_SCRIPT)
        (folder / "bare.py").write_text(BARE_APP)
        bare_port, ours_port = free_port(), free_port()
        bare_command = [sys.executable, str(folder / "bare.py"), str(bare_port)]
        bare = count(bare_command, dict(os.environ), bare_port, folder, seconds=args.seconds)
        ours = count(SERVE, serve_env(folder, ours_port), ours_port, folder, seconds=args.seconds)
    print(f"{'bare aiohttp (read body, 200)':<34}{bare:12,.0f} instructions/request")
    print(f"{'loyalty serve (verify+queue, 200)':<34}{ours:12,.0f} instructions/request")
    print(f"instructions_vs_bare_aiohttp={ours / bare:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
