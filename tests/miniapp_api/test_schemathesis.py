"""Schemathesis against the Mini App API's own OpenAPI document: generated requests (valid and not) to
every operation, with a real session token, against the running app and the real servers. Checked: no
5xx, the status is one the document declares, and every body matches its schema.

The app runs in a thread of its own (schemathesis calls it synchronously over HTTP); examples are
bounded so the whole run stays well under two minutes.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.internal import lambda_sources
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation.jsonschema import strategy as jsonschema_strategies
from schemathesis.specs.openapi import formats as format_strategies
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import miniapp_api
from app.factory import create_app
from app.settings import load_settings
from storage.clients import create_mongo_client
from tests.conftest import TEST_SECRET_KEY
from tests.fakes.zalo_graph import FakeZaloGraph

TOKEN = "schemathesis-user-token"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThreadedApp:
    """The application and the fake Graph API served by an event loop in a background thread."""

    def __init__(self, mongo_url: str, redis_url: str, data_dir: str) -> None:
        self.db_name = f"test_{uuid.uuid4().hex[:12]}"
        self.mongo_url = mongo_url
        self.graph = FakeZaloGraph()
        self.graph.add_user(TOKEN, "424242424242", name="Khách Thử")
        self.graph_port, self.app_port = _free_port(), _free_port()
        self.settings = load_settings(
            env_file=None,
            data_dir=data_dir,
            secret_key=TEST_SECRET_KEY,
            mongodb_uri=mongo_url,
            mongodb_db=self.db_name,
            redis_url=redis_url,
            zalo_app_secret=SecretStr(self.graph.app_secret),
            zalo_graph_base=f"http://127.0.0.1:{self.graph_port}",
            miniapp_rate_limit_per_ip=1_000_000,
            miniapp_rate_limit_per_customer=1_000_000,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[web.AppRunner] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    async def _start(self) -> None:
        for app, port in (
            (self.graph.app(), self.graph_port),
            (create_app(self.settings, worker=False), self.app_port),
        ):
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)

    async def _stop(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        client = create_mongo_client(self.mongo_url)
        await client.drop_database(self.db_name)
        await client.close()

    def __enter__(self) -> ThreadedApp:
        self.thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def parse_lambda_sources_now() -> None:
    """Parse, now, the modules whose lambdas Hypothesis describes while it draws this test's examples.

    Hypothesis names a lambda by parsing its module's source (``ast.parse``, once per module, cached);
    for schemathesis's strategies that happens about 90 frames deep inside a draw, on 25-90 KB of source.
    CPython 3.11 counts the AST converter's recursion in interpreter-wide state, so a parse in another
    thread meanwhile (the app's thread: 3.11's tracebacks parse the failing line to draw their carets)
    can make that parse raise ``SystemError: AST constructor recursion depth mismatch``, which
    Hypothesis reports as a flaky failure (seen in CI, one run in a few). Parsed here, in the main
    thread before the app's thread starts, they are in Hypothesis's cache and nothing that long is
    parsed during the run. Hypothesis internals: if they move, this does nothing and the test still runs.
    """
    cache = getattr(lambda_sources, "AST_LAMBDAS_CACHE", None)
    extract = getattr(lambda_sources, "extract_all_lambdas", None)
    if cache is None or extract is None:
        return
    for module in (jsonschema_strategies, format_strategies):
        lines = tuple(inspect.findsource(module)[0])  # the key Hypothesis uses: the file's lines
        cache[lines] = extract(ast.parse("".join(lines)))


@pytest.fixture(scope="module")
def running(
    mongo_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedApp]:
    parse_lambda_sources_now()
    with ThreadedApp(mongo_url, redis_url, str(tmp_path_factory.mktemp("schemathesis"))) as app:
        yield app


@pytest.fixture(scope="module")
def session_headers(running: ThreadedApp) -> dict[str, str]:
    answer = requests.post(
        f"{running.base_url}{miniapp_api.MINIAPP_PREFIX}/auth/login", json={"access_token": TOKEN}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _checker(operation: Any, base_url: str, headers: dict[str, str], statuses: list[int]) -> Any:
    @given(case=operation.as_strategy())
    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case: Any) -> None:
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=20)
        statuses.append(response.status_code)

    return check


def test_the_api_matches_its_openapi_document(running: ThreadedApp, session_headers: dict[str, str]) -> None:
    document = requests.get(f"{running.base_url}{miniapp_api.OPENAPI_PATH}", timeout=10).json()
    # erasing the account would turn every later example into a 403: erasure has its own test
    api = schemathesis.openapi.from_dict(document).exclude(method="DELETE", path="/api/miniapp/v1/me")
    tested: list[str] = []
    statuses: list[int] = []
    for result in api.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr] # an invalid schema raises here
        headers = {} if operation.path.endswith("/auth/login") else dict(session_headers)

        _checker(operation, running.base_url, headers, statuses)()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) == 22, tested
    # the examples reached the handlers: answers both accepted and refused, never a 5xx
    assert any(code < 300 for code in statuses) and any(code == 422 for code in statuses)
    assert max(statuses) < 500
