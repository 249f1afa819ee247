"""API keys of the server-to-server integrations API (a POS, a shop system).

A key is ``slk_<id>_<secret>``: ``id`` (12 hex digits) names it in lists and logs, ``secret`` is 256
random bits. Only ``sha256(secret)`` is stored: a high-entropy secret needs no slow hash, and a leaked
database gives no usable key. Verification looks the record up by id and compares the hashes in
constant time; a revoked key is refused like an unknown one. ``loyalty apikey create`` makes keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Final

from miniapp_api.errors import ApiError
from miniapp_api.ports import ApiKeyRecord, ApiKeyRepository

_KEY: Final = re.compile(r"^slk_([0-9a-f]{12})_([0-9a-f]{64})$")
_NAME: Final = re.compile(r"^[\w .:@/-]{1,80}$")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_api_key(name: str, *, created_by: str, now: datetime) -> tuple[str, ApiKeyRecord]:
    """A new key (shown once) and the record to store. ``ValueError`` for a name that is not simple text."""
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise ValueError("the key's name must be 1-80 letters, digits, spaces or . : @ / - _")
    key_id = secrets.token_hex(6)
    secret = secrets.token_hex(32)
    record = ApiKeyRecord(
        id=key_id, name=name.strip(), secret_hash=hash_secret(secret), created_at=now, created_by=created_by
    )
    return f"slk_{key_id}_{secret}", record


async def verify_api_key(keys: ApiKeyRepository, presented: str) -> ApiKeyRecord:
    """The record of a valid, unrevoked key; 401 ``invalid_api_key`` otherwise."""
    match = _KEY.match(presented)
    if match is None:
        raise ApiError(401, "invalid_api_key", "the API key is not valid")
    found = await keys.get(match.group(1))
    record = ApiKeyRecord.model_validate(found) if found is not None else None
    wanted = hash_secret(match.group(2))
    if record is None or not hmac.compare_digest(record.secret_hash, wanted) or record.revoked_at is not None:
        raise ApiError(401, "invalid_api_key", "the API key is not valid")
    return record
