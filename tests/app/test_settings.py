from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.settings import MIN_SECRET_KEY_LENGTH, SECRET_KEY_FILE, SettingsError, load_settings


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    # given no environment at all
    settings = load_settings(env_file=None, data_dir=tmp_path)

    # then every documented default holds
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.mongodb_uri is None and settings.embedded_mongo
    assert settings.redis_url is None and settings.embedded_redis
    assert settings.mongodb_db == "loyalty"
    assert settings.program_file is None
    assert (settings.log_format, settings.log_level) == ("text", "INFO")
    assert str(settings.zalo_oa_api_base) == "https://openapi.zalo.me/"
    assert str(settings.zalo_oauth_base) == "https://oauth.zaloapp.com/"
    assert str(settings.zalo_graph_base) == "https://graph.zalo.me/"
    assert str(settings.zalo_zns_api_base) == "https://business.openapi.zalo.me/"
    assert str(settings.facebook_graph_base) == "https://graph.facebook.com/"
    assert settings.facebook_graph_version == "v25.0"
    assert settings.base_url == "http://127.0.0.1:8080"


def test_every_documented_name_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "program.yaml"
    program.write_text("name: demo\n")
    env = {
        "HOST": "0.0.0.0",
        "PORT": "9000",
        "PUBLIC_BASE_URL": "https://loyalty.example.vn/",
        "DATA_DIR": str(tmp_path / "d"),
        "SECRET_KEY": "k" * 40,
        "MONGODB_URI": "mongodb://loyalty:mongo-pass@db1.internal:27017,db2.internal:27017/?replicaSet=rs0",
        "MONGODB_DB": "brand",
        "REDIS_URL": "redis://cache.internal:6379/2",  # no password: nothing of it is secret
        "PROGRAM_FILE": str(program),
        "LOG_FORMAT": "JSON",
        "LOG_LEVEL": "debug",
        "ZALO_APP_ID": "123",
        "ZALO_APP_SECRET": "zalo-app-secret",
        "ZALO_OA_ID": "456",
        "ZALO_OA_SECRET_KEY": "zalo-oa-secret",
        "ZALO_MINIAPP_ID": "789",
        "ZALO_OA_ACCESS_TOKEN": "zalo-access",
        "ZALO_OA_REFRESH_TOKEN": "zalo-refresh",
        "ZALO_OA_API_BASE": "http://127.0.0.1:1/",
        "ZALO_OAUTH_BASE": "http://127.0.0.1:2/",
        "ZALO_GRAPH_BASE": "http://127.0.0.1:3/",
        "ZALO_ZNS_API_BASE": "http://127.0.0.1:4/",
        "FACEBOOK_APP_SECRET": "fb-secret",
        "FACEBOOK_VERIFY_TOKEN": "fb-verify",
        "FACEBOOK_PAGE_ID": "111",
        "FACEBOOK_PAGE_ACCESS_TOKEN": "fb-page-token",
        "FACEBOOK_GRAPH_BASE": "http://127.0.0.1:5/",
        "FACEBOOK_GRAPH_VERSION": "v24.0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = load_settings(env_file=None)

    assert settings.host == "0.0.0.0"
    assert settings.port == 9000
    assert settings.base_url == "https://loyalty.example.vn"
    assert settings.data_dir == tmp_path / "d"
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == "k" * 40
    assert not settings.embedded_mongo and not settings.embedded_redis
    assert settings.mongodb_db == "brand"
    assert settings.program_file == program
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    assert (settings.zalo_app_id, settings.zalo_oa_id, settings.zalo_miniapp_id) == ("123", "456", "789")
    assert settings.facebook_page_id == "111"
    assert settings.facebook_graph_version == "v24.0"
    assert str(settings.zalo_zns_api_base) == "http://127.0.0.1:4/"
    assert sorted(settings.secret_values()) == sorted(
        [
            "k" * 40,
            "mongo-pass",
            "zalo-app-secret",
            "zalo-oa-secret",
            "zalo-access",
            "zalo-refresh",
            "fb-secret",
            "fb-verify",
            "fb-page-token",
        ]
    )


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9100\nMONGODB_DB=from_file\n")
    monkeypatch.setenv("PORT", "9200")

    settings = load_settings(env_file=env_file, data_dir=tmp_path)

    assert settings.mongodb_db == "from_file"
    assert settings.port == 9200


@pytest.mark.parametrize(
    ("_case", "name", "value", "expected"),
    [
        ("port not a number", "PORT", "eighty", "invalid setting PORT:"),
        ("port out of range", "PORT", "70000", "invalid setting PORT:"),
        ("unknown log format", "LOG_FORMAT", "xml", "invalid setting LOG_FORMAT:"),
        ("unknown log level", "LOG_LEVEL", "loud", "invalid setting LOG_LEVEL:"),
        ("mongo uri scheme", "MONGODB_URI", "postgres://x", "invalid setting MONGODB_URI:"),
        ("redis url scheme", "REDIS_URL", "http://x", "invalid setting REDIS_URL:"),
        ("database name", "MONGODB_DB", "a/b", "invalid setting MONGODB_DB:"),
        ("graph version", "FACEBOOK_GRAPH_VERSION", "25", "invalid setting FACEBOOK_GRAPH_VERSION:"),
        ("base url", "ZALO_OA_API_BASE", "not a url", "invalid setting ZALO_OA_API_BASE:"),
        (
            "missing program file",
            "PROGRAM_FILE",
            "/nonexistent/program.yaml",
            "invalid setting PROGRAM_FILE:",
        ),
        ("short secret key", "SECRET_KEY", "short", "invalid setting SECRET_KEY:"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it(
    _case: str, name: str, value: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None, data_dir=tmp_path)

    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert caught.value.name == name


def test_an_invalid_secret_is_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "postgres://admin:hunter2-password@db")

    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None, data_dir=tmp_path)

    assert "hunter2" not in str(caught.value)


def test_blank_values_mean_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "")
    monkeypatch.setenv("REDIS_URL", "  ")

    settings = load_settings(env_file=None, data_dir=tmp_path)

    assert settings.embedded_mongo and settings.embedded_redis


def test_secret_key_is_generated_once_and_kept_in_data_dir(tmp_path: Path) -> None:
    # given no SECRET_KEY
    first = load_settings(env_file=None, data_dir=tmp_path)
    second = load_settings(env_file=None, data_dir=tmp_path)

    # then both loads share one generated key, stored privately
    assert first.secret_key is not None and second.secret_key is not None
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    assert len(first.secret_key.get_secret_value()) >= MIN_SECRET_KEY_LENGTH
    key_file = tmp_path / SECRET_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_configured_secret_key_is_not_written_to_disk(tmp_path: Path) -> None:
    load_settings(env_file=None, data_dir=tmp_path, secret_key="s" * 40)

    assert not (tmp_path / SECRET_KEY_FILE).exists()


def test_an_unwritable_data_dir_is_a_settings_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None, data_dir=blocker / "sub")

    assert caught.value.name == "DATA_DIR"
