"""Platform API tokens (Zalo OA access and refresh tokens), stored durably and refreshed one at a time.

Zalo refresh tokens are single-use: every refresh answers a new pair, and the new refresh token must be
on disk before anything else happens, or the OA is locked out until an admin authorizes again
(``shared/platforms/zalo.md`` section 3). This module gives the bot's Zalo client what it needs for that,
without knowing the bot (an import-linter contract forbids ``storage`` to import ``bot``):

- :meth:`MongoTokenStore.load` / :meth:`MongoTokenStore.save`: one document per account, written with
  a journaled majority write concern and a ``version`` compare-and-set, so two processes can never
  overwrite each other's newer tokens;
- :meth:`MongoTokenStore.refresh_lock`: a cross-process Redis lock, so one refresher at a time calls the
  token endpoint.

Tokens travel as plain mappings (the bot converts them to and from its own dataclass)::

    {"access_token": str, "refresh_token": str, "access_expires_at": datetime,
     "refresh_expires_at": datetime, "version": int, ...}

Any other key is stored and loaded back unchanged. Token values are never logged here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pymongo import WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from redis.asyncio import Redis

from storage.clients import Document
from storage.indexes import IndexSpec

log = logging.getLogger("loyalty.storage.platform_tokens")

DEFAULT_COLLECTION: Final = "platform_tokens"

# The collection is only ever read and written by ``_id`` (``"<platform>:<account_id>"``), which MongoDB
# always indexes: no secondary index is needed. Kept as a tuple for whoever wires indexes at start-up.
INDEXES: Final[tuple[IndexSpec, ...]] = ()

# Bookkeeping fields of the document that are not part of the tokens given to save().
_BOOKKEEPING: Final = frozenset({"_id", "platform", "account_id", "updated_at"})

# Delete the lock only if it still holds our token (it may have expired and been taken by another).
_RELEASE: Final = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


class TokenLockTimeoutError(TimeoutError):
    """Another process held an account's refresh lock for longer than the store's ``lock_wait``."""


class MongoTokenStore:
    """Tokens of one platform in MongoDB, one document per account, and a Redis refresh lock per account.

    It implements the bot's Zalo ``TokenStore`` protocol structurally (tokens as mappings).

    :param db: the application database.
    :param redis: the shared Redis client (the lock must be seen by every worker process).
    :param collection: the collection name.
    :param platform: the prefix of the document ids and lock keys (``"zalo"``).
    :param lock_ttl: seconds a lock survives a holder that died; longer than a refresh takes (an HTTP
        call with its own timeout and one write), so a live holder never loses it.
    :param lock_wait: seconds to wait for the lock before :class:`TokenLockTimeoutError`.
    """

    def __init__(
        self,
        db: AsyncDatabase[Document],
        redis: Redis,
        *,
        collection: str = DEFAULT_COLLECTION,
        platform: str = "zalo",
        lock_ttl: float = 30.0,
        lock_wait: float = 45.0,
    ) -> None:
        # Journaled and acknowledged by a majority: a saved refresh token survives a crash of the server
        # (on a single node, "majority" is that node).
        self.collection: AsyncCollection[Document] = db.get_collection(
            collection, write_concern=WriteConcern(w="majority", j=True)
        )
        self.redis = redis
        self.platform = platform
        self.lock_ttl_ms = int(lock_ttl * 1000)
        self.lock_wait = lock_wait

    def document_id(self, account_id: str) -> str:
        return f"{self.platform}:{account_id}"

    def lock_key(self, account_id: str) -> str:
        return f"{self.platform}:token-refresh:{account_id}"

    async def load(self, account_id: str) -> dict[str, Any] | None:
        """The tokens saved for ``account_id``, or ``None`` when there are none yet."""
        document = await self.collection.find_one({"_id": self.document_id(account_id)})
        if document is None:
            return None
        return {key: value for key, value in document.items() if key not in _BOOKKEEPING}

    async def save(self, account_id: str, tokens: Mapping[str, Any]) -> bool:
        """Store ``tokens`` if they are the next version: compare-and-set on ``version``.

        The write succeeds when the stored document has ``version == tokens["version"] - 1``, or when
        there is no document yet (the first save, whatever its version). It is durable (journaled) when
        this returns.

        :return: ``True`` if ours is now the stored version, ``False`` if another writer stored this
            version (or a later one) first.
        :raises ValueError: ``tokens`` has no integer ``version``, or carries bookkeeping fields.
        """
        version = tokens.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("tokens need an integer 'version'")
        if _BOOKKEEPING & tokens.keys():
            raise ValueError(f"tokens cannot carry the fields {sorted(_BOOKKEEPING & tokens.keys())}")
        # update_one + upsert, not find_one_and_update (which scans the collection on SecantusDB): when a
        # document exists with another version, the upsert's insert collides on _id and loses.
        try:
            result = await self.collection.update_one(
                {"_id": self.document_id(account_id), "version": version - 1},
                {
                    "$set": {**tokens, "updated_at": datetime.now(UTC)},
                    "$setOnInsert": {"platform": self.platform, "account_id": account_id},
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return result.modified_count == 1 or result.upserted_id is not None

    def refresh_lock(self, account_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """A lock held by one process at a time across all workers, for refreshing ``account_id``'s tokens.

        ``SET NX PX`` with a random token, waited for by short polling, released with a compare-and-delete
        so an expired lock taken over by another process is never deleted by us. The TTL frees it if its
        holder dies.

        :raises TokenLockTimeoutError: on entering, when the lock is still held after ``lock_wait``.
        """
        return self._lock(self.lock_key(account_id))

    @contextlib.asynccontextmanager
    async def _lock(self, name: str) -> AsyncIterator[None]:
        token = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_wait
        delay = 0.005
        while not await self.redis.set(name, token, nx=True, px=self.lock_ttl_ms):
            if loop.time() > deadline:
                raise TokenLockTimeoutError(f"token refresh lock {name} still held after {self.lock_wait:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            released = await self.redis.eval(_RELEASE, 1, name, token)
            if not released:
                log.warning("token refresh lock %s had expired before its release", name)


class OAuthStateStore:
    """One-time OAuth ``state`` values in Redis, each holding what the callback needs (the PKCE verifier).

    :meth:`put` keeps a state for ``ttl`` seconds; :meth:`take` returns its data once (``GETDEL``:
    atomic, so a replayed callback finds nothing) and ``None`` for an unknown, expired or used state.
    The state itself is not the key: the key is its SHA-256, so the lookup's timing says nothing about
    a state's characters, and the stored digest is compared again with ``hmac.compare_digest``.

    :param redis: the shared Redis client (the command that starts the flow and the web process that
        receives the callback are different processes).
    :param platform: the key prefix (``"zalo"``).
    """

    def __init__(self, redis: Redis, *, platform: str = "zalo") -> None:
        self.redis = redis
        self.platform = platform

    def _key(self, digest: str) -> str:
        return f"{self.platform}:oauth-state:{digest}"

    async def put(self, state: str, data: Mapping[str, str], *, ttl: float) -> None:
        digest = _digest(state)
        value = json.dumps({"digest": digest, "data": dict(data)})
        await self.redis.set(self._key(digest), value, px=int(ttl * 1000))

    async def take(self, state: str) -> dict[str, str] | None:
        if not state or len(state) > 512:
            return None
        digest = _digest(state)
        value = await self.redis.getdel(self._key(digest))
        if value is None:
            return None
        try:
            stored = json.loads(value)
            stored_digest, data = stored["digest"], stored["data"]
        except (ValueError, KeyError, TypeError):
            log.warning("an OAuth state record of %s is malformed; refused", self.platform)
            return None
        if not (isinstance(stored_digest, str) and hmac.compare_digest(stored_digest, digest)):
            return None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return None
        return data


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()
