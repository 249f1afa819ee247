from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import EX_CONFIG, EX_UNAVAILABLE, build_parser, main
from app.embedded import free_port

LOYALTY = [sys.executable, "-m", "app.cli"]


@pytest.mark.parametrize("command", [[], ["serve"], ["worker"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = subprocess.run(
        [*LOYALTY, *command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0
    assert "usage: loyalty" in result.stdout


def test_no_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args([])

    assert caught.value.code == 2


def test_an_invalid_setting_exits_78_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("PORT", "not-a-port")

    code = main(["serve"])

    err = capsys.readouterr().err
    assert code == EX_CONFIG
    assert err.startswith("loyalty: invalid setting PORT:")
    assert err.count("\n") == 1


def test_a_worker_needs_external_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))

    code = main(["worker"])

    assert code == EX_CONFIG
    assert "invalid setting MONGODB_URI" in capsys.readouterr().err


@pytest.mark.slow
def test_an_unreachable_external_server_exits_69(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, redis_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/?directConnection=true")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PORT", str(free_port()))

    code = main(["serve"])

    assert code == EX_UNAVAILABLE
    assert "a storage server is unavailable: ServerSelectionTimeoutError" in caplog.text


def test_a_taken_port_exits_69(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mongo_url: str,
    redis_url: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MONGODB_URI", mongo_url)
    monkeypatch.setenv("MONGODB_DB", "test_taken_port")
    monkeypatch.setenv("REDIS_URL", redis_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("PORT", str(taken.getsockname()[1]))

        code = main(["serve"])

    assert code == EX_UNAVAILABLE
    assert "cannot start:" in caplog.text
    assert "address already in use" in caplog.text.lower()
