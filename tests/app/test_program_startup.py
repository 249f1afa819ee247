"""Start-up validates the program file: a broken one stops `loyalty serve` before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import EX_CONFIG, main
from app.program import load_program_for
from app.settings import load_settings
from loyalty.program import DEMO_PROGRAM, load_program


def _bad_program(tmp_path: Path) -> tuple[Path, int]:
    text = DEMO_PROGRAM.read_text(encoding="utf-8").replace("threshold: 2000,", "threshold: 900,")
    path = tmp_path / "program.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text[: text.index("threshold: 900,")].count("\n") + 1


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_invalid_program_exits_78_with_one_line_naming_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    path, line = _bad_program(tmp_path)
    monkeypatch.setenv("PROGRAM_FILE", str(path))

    code = main([command])

    err = capsys.readouterr().err
    assert code == EX_CONFIG
    assert err.startswith(f"loyalty: {path}:{line}: tiers.levels.3.threshold: thresholds must increase")
    assert err.count("\n") == 1


def test_a_program_file_that_does_not_exist_is_an_invalid_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROGRAM_FILE", str(tmp_path / "missing.yaml"))

    code = main(["serve"])

    assert code == EX_CONFIG
    assert capsys.readouterr().err.startswith("loyalty: invalid setting PROGRAM_FILE: ")


def test_the_program_comes_from_program_file_or_is_the_demo(tmp_path: Path) -> None:
    toml = Path(__file__).resolve().parents[2] / "docs" / "examples" / "program.toml"
    custom = tmp_path / "program.yaml"
    custom.write_text(
        "brand: {name: Quán Nhỏ}\ntiers:\n  levels:\n    - {id: member, name: Thành viên, threshold: 0}\n",
        encoding="utf-8",
    )

    assert load_program_for(load_settings(env_file=None, data_dir=tmp_path)) == load_program()
    assert (
        load_program_for(load_settings(env_file=None, data_dir=tmp_path, program_file=toml)) == load_program()
    )
    assert load_program_for(
        load_settings(env_file=None, data_dir=tmp_path, program_file=custom)
    ).brand.name == ("Quán Nhỏ")
