"""``webhooks.common.read_body``: the body as ``request.read()`` gives it, on both of its paths."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request

from webhooks.common import read_body


def request_with(chunks: list[bytes], *, complete: bool, max_size: int = 1024) -> web.Request:
    protocol = mock.Mock(_reading_paused=False)
    payload = streams.StreamReader(protocol, limit=2**16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        payload.feed_data(chunk)
    if complete:
        payload.feed_eof()
    return make_mocked_request("POST", "/", payload=payload, client_max_size=max_size)


async def test_a_body_that_has_arrived_is_read_in_one_piece() -> None:
    request = request_with([b'{"a":', b"1}"], complete=True)

    assert await read_body(request) == b'{"a":1}'


async def test_an_empty_body_is_empty() -> None:
    assert await read_body(request_with([], complete=True)) == b""


async def test_a_body_still_arriving_is_awaited() -> None:
    request = request_with([b'{"a":'], complete=False)
    reading = asyncio.create_task(read_body(request))
    await asyncio.sleep(0)

    request.content.feed_data(b"1}")
    request.content.feed_eof()

    assert await reading == b'{"a":1}'


@pytest.mark.parametrize("complete", [True, False], ids=["arrived", "arriving"])
async def test_a_body_over_the_limit_is_413(complete: bool) -> None:
    request = request_with([b"x" * 600, b"y" * 600], complete=complete, max_size=1000)
    if not complete:
        asyncio.get_running_loop().call_soon(request.content.feed_eof)

    with pytest.raises(web.HTTPRequestEntityTooLarge):
        await read_body(request)


async def test_a_broken_connection_is_raised() -> None:
    request = request_with([b'{"a":'], complete=False)
    request.content.set_exception(ConnectionResetError("reset by peer"))

    with pytest.raises(ConnectionResetError):
        await read_body(request)
