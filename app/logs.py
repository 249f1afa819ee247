"""Logging: text or JSON lines, request ids, and redaction of secrets and phone numbers.

Redaction happens in the formatter, on the final text (message, arguments and traceback alike), so no
logger, including third-party ones (aiohttp's access log), can leak a configured secret or a whole
phone number.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from loyalty.pii import redact_phones

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

REDACTED: Final = "[redacted]"
# Shorter values are too likely to occur in ordinary text (and too weak to be real secrets).
_MIN_SECRET_LENGTH: Final = 6


class Redactor:
    """Replaces known secret values and phone numbers in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return redact_phones(text)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(rid)s: %(message)s")
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.rid = f" [{request_id}]" if request_id else ""
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(entry, ensure_ascii=False, default=str))


def configure_logging(
    *, level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (), stream: Any = None
) -> logging.Handler:
    """Install one handler on the root logger (replacing any earlier one of ours) and return it."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name("social-loyalty")
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter(redactor))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "social-loyalty"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty libraries stay at WARNING unless we debug.
    if level != "DEBUG":
        for name in ("pymongo", "httpx", "httpcore", "asyncio"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return handler
