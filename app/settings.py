"""Settings, read from the environment and an optional ``.env`` file.

Nothing is read at import time: :func:`load_settings` is called by the CLI (or a test) and returns a
validated, frozen :class:`Settings`. Invalid settings raise :class:`SettingsError`, whose message is one
line naming the setting, which the CLI prints before exiting with ``EX_CONFIG``.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
MIN_SECRET_KEY_LENGTH = 32

_URL_SETTINGS: Final = frozenset({"mongodb_uri", "redis_url"})
# the password of scheme://user:password@host..., also for multi-host MongoDB URIs
_URL_PASSWORD: Final = re.compile(r"^[a-z+]+://[^:@/]*:([^@/]+)@")

LogFormat = Literal["text", "json"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsError(Exception):
    """A setting is missing or invalid. ``str()`` is one line that names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"invalid setting {name}: {problem}")
        self.name = name
        self.problem = problem


class Settings(BaseSettings):
    """Every knob of the service. Environment names are the field names in upper case."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    # ----------------------------------------------------------------- service
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: AnyHttpUrl | None = None
    data_dir: Path = Path("./var")
    secret_key: SecretStr | None = None
    log_format: LogFormat = "text"
    log_level: LogLevel = "INFO"

    # ----------------------------------------------------------------- storage
    mongodb_uri: SecretStr | None = None
    mongodb_db: str = Field(default="loyalty", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    redis_url: SecretStr | None = None
    redis_max_connections: int = Field(default=64, ge=1, le=10_000)
    # Embedded Redis: "always" fsyncs the append-only file before a write is acknowledged (a power cut
    # loses nothing); "everysec" survives a process crash and loses at most a second on a power cut.
    embedded_redis_appendfsync: Literal["always", "everysec"] = "always"

    # ----------------------------------------------------------------- worker
    # `loyalty serve` runs a worker in the same process; false for web-only processes when separate
    # `loyalty worker` processes consume the queue.
    serve_worker: bool = True
    # An event a worker read but did not acknowledge for this long (it died) is taken over by another.
    worker_claim_idle_seconds: float = Field(default=60.0, gt=0, le=3600)
    # A user's lock (one event of a user at a time) outlives a dead holder by at most this long.
    user_lock_ttl_seconds: float = Field(default=30.0, gt=0, le=600)
    # How often a worker runs the loyalty jobs (expiry, tier reviews, repairs); 0 turns them off here.
    jobs_interval_seconds: float = Field(default=300.0, ge=0, le=86_400)

    # ----------------------------------------------------------------- program
    program_file: Path | None = None
    brand_name: str = Field(default="Demo Café", min_length=1, max_length=80)
    # A directory of the brand's own templates (e.g. messages/vi/welcome.j2), searched before the
    # bundled ones, so copy can be edited without touching the code.
    templates_dir: Path | None = None
    # The chat emulator (/emulator, `loyalty chat`). Unset: on while no Zalo OA or Facebook Page is
    # configured (a demo or a development setup), off once a real channel is.
    emulator_enabled: bool | None = None

    # ----------------------------------------------------------------- Zalo
    zalo_app_id: str | None = None
    zalo_app_secret: SecretStr | None = None
    zalo_oa_id: str | None = None
    zalo_oa_secret_key: SecretStr | None = None
    zalo_miniapp_id: str | None = None
    zalo_oa_access_token: SecretStr | None = None
    zalo_oa_refresh_token: SecretStr | None = None
    zalo_oa_api_base: AnyHttpUrl = AnyHttpUrl("https://openapi.zalo.me")
    zalo_oauth_base: AnyHttpUrl = AnyHttpUrl("https://oauth.zaloapp.com")
    zalo_graph_base: AnyHttpUrl = AnyHttpUrl("https://graph.zalo.me")
    zalo_zns_api_base: AnyHttpUrl = AnyHttpUrl("https://business.openapi.zalo.me")

    # ----------------------------------------------------------------- Mini App API (docs/miniapp-api.md)
    # Browser origins allowed to call /api/miniapp/v1 (CORS), comma-separated, e.g.
    # "https://h5.zdn.vn,https://zalo.me" for a published Zalo Mini App, "http://localhost:3000" in dev.
    miniapp_cors_origins: str = ""
    miniapp_session_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    miniapp_refresh_ttl_seconds: int = Field(default=30 * 86_400, ge=3600, le=365 * 86_400)
    # Requests per minute, counted in Redis (so across every web process).
    miniapp_rate_limit_per_ip: int = Field(default=300, ge=1, le=1_000_000)
    miniapp_rate_limit_per_customer: int = Field(default=120, ge=1, le=1_000_000)
    integrations_rate_limit_per_key: int = Field(default=600, ge=1, le=1_000_000)

    # ----------------------------------------------------------------- Facebook
    facebook_app_secret: SecretStr | None = None
    facebook_verify_token: SecretStr | None = None
    facebook_page_id: str | None = None
    facebook_page_access_token: SecretStr | None = None
    facebook_graph_base: AnyHttpUrl = AnyHttpUrl("https://graph.facebook.com")
    facebook_graph_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "public_base_url",
        "secret_key",
        "mongodb_uri",
        "redis_url",
        "program_file",
        "templates_dir",
        "emulator_enabled",
        "zalo_app_id",
        "zalo_app_secret",
        "zalo_oa_id",
        "zalo_oa_secret_key",
        "zalo_miniapp_id",
        "zalo_oa_access_token",
        "zalo_oa_refresh_token",
        "facebook_app_secret",
        "facebook_verify_token",
        "facebook_page_id",
        "facebook_page_access_token",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `FOO=` in a .env file or a compose file means "not set", not "the empty string".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("miniapp_cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (part.strip() for part in value.split(",")):
            if origin and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
                raise ValueError(f"not an origin (scheme://host[:port], no path): {origin!r}")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_LENGTH} characters")
        return value

    @field_validator("mongodb_uri")
    @classmethod
    def _mongo_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("program_file")
    @classmethod
    def _program_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("templates_dir")
    @classmethod
    def _templates_exist(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"directory not found: {value}")
        return value

    # ----------------------------------------------------------------- derived
    @property
    def base_url(self) -> str:
        """The public URL of this service, without a trailing slash."""
        if self.public_base_url is not None:
            return str(self.public_base_url).rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def emulator_on(self) -> bool:
        if self.emulator_enabled is not None:
            return self.emulator_enabled
        return self.zalo_oa_id is None and self.facebook_page_id is None

    @property
    def miniapp_cors_origin_list(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.miniapp_cors_origins.split(",") if part.strip())

    @property
    def embedded_mongo(self) -> bool:
        return self.mongodb_uri is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    def secret_values(self) -> list[str]:
        """Every secret that is set, for the log redaction filter.

        For the server URLs only the password is secret: hosts and ports may be logged, and must be,
        for an operator to see which server is in use.
        """
        values: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not isinstance(value, SecretStr):
                continue
            if name in _URL_SETTINGS:
                values.extend(_URL_PASSWORD.findall(value.get_secret_value()))
            else:
                values.append(value.get_secret_value())
        return values


def _first_error(error: ValidationError) -> SettingsError:
    detail = error.errors(include_url=False)[0]
    name = ".".join(str(part) for part in detail["loc"]).upper() or "settings"
    problem = detail["msg"]
    if "input" in detail and detail["type"] not in ("missing",) and not _is_secret(name):
        problem = f"{problem} (got {detail['input']!r})"
    return SettingsError(name, problem)


def _is_secret(name: str) -> bool:
    annotation = Settings.model_fields.get(name.lower())
    return annotation is not None and "SecretStr" in str(annotation.annotation)


def load_settings(*, env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read, validate and complete the settings.

    :param env_file: the dotenv file to read if it exists (``None``: environment only).
    :param overrides: values that win over the environment (tests, the CLI).
    :raises SettingsError: on the first invalid setting.
    """
    try:
        settings = Settings(_env_file=env_file, **overrides)
    except ValidationError as error:
        raise _first_error(error) from None
    if settings.secret_key is None:
        settings = settings.model_copy(
            update={"secret_key": SecretStr(_stored_secret_key(settings.data_dir))}
        )
    return settings


def _stored_secret_key(data_dir: Path) -> str:
    """Return the secret key kept in ``DATA_DIR``, generating it the first time (mode 0600)."""
    path = data_dir / SECRET_KEY_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            key = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            key = ""
        if len(key) >= MIN_SECRET_KEY_LENGTH:
            return key
        key = secrets.token_urlsafe(48)
        # O_EXCL: if two processes start at once, one writes and the other reads what it wrote.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            existing = path.read_text(encoding="ascii").strip()
            if len(existing) >= MIN_SECRET_KEY_LENGTH:
                return existing
            path.unlink()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return key
    except OSError as error:
        raise SettingsError("DATA_DIR", f"cannot keep the generated SECRET_KEY in {path}: {error}") from None
