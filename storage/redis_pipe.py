"""A Redis connection for one hot caller: commands packed by the caller, replies handled as they arrive.

redis-py's asyncio connection reads a reply in a coroutine: the reply's bytes arrive in the loop's I/O
phase, wake a future, and the waiting task runs later in that turn, after every callback already queued.
On a busy webhook server that is after the handlers of the thirty-odd requests that arrived meanwhile
(about a millisecond), and the :class:`~storage.queue.CoalescingPublisher` could send its next batch
only then, its callers waiting that much longer. This connection parses each reply (hiredis) in
``data_received`` and hands it to the callback given with its command, there and then, so the publisher
answers its callers and writes its next batch in the same callback. Measured in ``bench/README.md``.

It speaks RESP2 and does the handshake redis-py does (AUTH, CLIENT SETNAME, SELECT), over TCP, TLS or
a Unix socket, from the settings of the redis-py pool it stands beside (:func:`open_pipe`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.credentials import UsernamePasswordCredentialProvider
from redis.exceptions import ResponseError

#: What a callback receives: the reply (a str, decoded as UTF-8; an int, None, a list of those), the error
#: Redis answered (:class:`~redis.exceptions.ResponseError`), or a :class:`ConnectionError` when the
#: connection was lost before the reply came (the command may or may not have run).
Reply = Any
Callback = Callable[[Reply], None]


def bulk(value: bytes) -> bytes:
    """One argument in the Redis protocol (a bulk string)."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(*args: bytes | str | int) -> bytes:
    """A command in the Redis protocol (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(
        bulk(arg if isinstance(arg, bytes) else str(arg).encode()) for arg in args
    )


class RedisPipe(asyncio.Protocol):
    """Commands written in order, each reply given to its command's callback in the I/O callback.

    Not a general client: the caller packs its commands (:func:`pack`), keeps its own timeouts, and
    must not block in a callback. Replies come back in the order the commands were sent (Redis answers
    a connection's commands in order).
    """

    def __init__(self) -> None:
        # strings decoded by hiredis, in C: the publisher's callers get the entry ids as str
        self._reader = hiredis.Reader(replyError=ResponseError, encoding="utf-8")
        self._callbacks: deque[Callback] = deque()
        self._transport: asyncio.Transport | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def send(self, command: bytes, callback: Callback) -> None:
        """Write ``command``; ``callback`` gets its reply (or the :class:`ConnectionError` of a lost
        connection). Raises :class:`ConnectionError` at once when the connection is already closed."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("the connection to Redis is closed")
        self._callbacks.append(callback)
        self._transport.write(command)

    async def call(self, *args: bytes | str | int) -> Reply:
        """One command, awaited (the handshake); Redis's error answer is raised."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def answer(reply: Reply) -> None:
            if not future.done():
                future.set_result(reply)

        self.send(pack(*args), answer)
        reply = await future
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self) -> None:
        """Close the connection; the callbacks of commands still unanswered get a ConnectionError."""
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream connection (uvloop's transports are not subclasses of asyncio.Transport)
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if not self._callbacks:  # a reply nobody asked for: this connection can't be trusted
                self.close()
                return
            self._callbacks.popleft()(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        error = ConnectionError(f"the connection to Redis was lost: {exc or 'closed'}")
        callbacks, self._callbacks = self._callbacks, deque()
        for callback in callbacks:
            callback(error)
        if not self._lost.done():
            self._lost.set_result(None)


async def open_pipe(pool: ConnectionPool) -> RedisPipe:
    """A :class:`RedisPipe` to the server of ``pool``, with its credentials, client name and database.

    The pool's connection class says how to connect: TCP, TLS (its SSL context) or a Unix socket; the
    whole connection is bounded by its ``socket_connect_timeout``.
    """
    settings = pool.connection_class(**pool.connection_kwargs)  # its settings only: never connected
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(settings.socket_connect_timeout):
        if isinstance(settings, UnixDomainSocketConnection):
            _, pipe = await loop.create_unix_connection(RedisPipe, settings.path)
        elif isinstance(settings, Connection):
            ssl = settings.ssl_context.get() if isinstance(settings, SSLConnection) else None
            _, pipe = await loop.create_connection(RedisPipe, settings.host, settings.port, ssl=ssl)
        else:
            raise TypeError(f"cannot open a pipe for {type(settings).__name__}")
        try:
            if settings.credential_provider or settings.username or settings.password:
                provider = settings.credential_provider or UsernamePasswordCredentialProvider(
                    settings.username, settings.password
                )
                await pipe.call("AUTH", *await provider.get_credentials_async())
            if settings.client_name:
                await pipe.call("CLIENT", "SETNAME", settings.client_name)
            if settings.db:
                await pipe.call("SELECT", settings.db)
        except BaseException:
            pipe.close()
            raise
    return pipe
