"""Schemathesis against the Mini App API's own OpenAPI document: generated requests (valid and not) to
every operation, with a real session token, against the running app and the real servers. Checked: no
5xx, the status is one the document declares, and every body matches its schema.

The app runs in a thread of its own (schemathesis calls it synchronously over HTTP); examples are
bounded so the whole run stays well under two minutes.
"""

from __future__ import annotations

import asyncio
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
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
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


@pytest.fixture(scope="module")
def running(
    mongo_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedApp]:
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
