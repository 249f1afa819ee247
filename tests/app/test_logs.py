from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from app.logs import REDACTED, configure_logging, request_id_var

SECRET = "EAAG-very-secret-page-token"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="text", secrets=[SECRET, "short"], stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


@pytest.fixture
def captured_json() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="json", secrets=[SECRET], stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_phone_numbers_are_masked_in_text_logs(captured: io.StringIO) -> None:
    logging.getLogger("loyalty.test").info("customer %s shared phone", "0912345678")

    line = captured.getvalue()
    assert "0912345678" not in line
    assert "091****678" in line


def test_secrets_are_redacted_in_messages_and_tracebacks(captured: io.StringIO) -> None:
    log = logging.getLogger("loyalty.test")
    log.warning("calling graph with token %s", SECRET)
    try:
        raise RuntimeError(f"bad token {SECRET}")
    except RuntimeError:
        log.exception("send failed")

    text = captured.getvalue()
    assert SECRET not in text
    assert text.count(REDACTED) == 2  # the warning, and the exception message in the traceback


def test_json_logs_are_one_object_per_line_and_redacted(captured_json: io.StringIO) -> None:
    token = request_id_var.set("req-12345678")
    try:
        logging.getLogger("loyalty.test").info("phone +84912345678 token %s", SECRET)
    finally:
        request_id_var.reset(token)

    entry = json.loads(captured_json.getvalue().strip())
    assert entry["level"] == "INFO"
    assert entry["logger"] == "loyalty.test"
    assert entry["request_id"] == "req-12345678"
    assert entry["msg"] == f"phone +84912***678 token {REDACTED}"


def test_short_values_are_not_treated_as_secrets(captured: io.StringIO) -> None:
    # "short" (5 characters) is below the redaction threshold: ordinary words must survive
    logging.getLogger("loyalty.test").info("a short message")

    assert "a short message" in captured.getvalue()
