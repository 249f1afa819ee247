"""Helpers for the Zalo webhook tests: fixtures on disk, and signing with Zalo's real formula.

The signature is computed here independently of ``webhooks.zalo.view`` (zalo.md section 1:
``sha256(app_id + raw_body + timestamp + oa_secret_key)``, hex, in ``X-ZEvent-Signature: mac=...``),
so a mistake in the production formula fails the tests instead of being mirrored by them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import webhooks.zalo
from webhooks.zalo import ZnsDeliveryStatus

APP_ID: Final = "360846524940903967"  # zalo.md's example app id, as in the fixtures
OA_SECRET_KEY: Final = "test-oa-secret-key-Xq7Lm2Pz9Rt4"
OA_ID: Final = "388613280878808645"
USER_ID: Final = "6618469916374226710"
PATH: Final = "/webhooks/zalo"

FIXTURES_DIR: Final = Path(webhooks.zalo.__file__).parent / "fixtures"
# what a real OA delivery carries; a fixture's <name>.headers.json overrides these
DEFAULT_HEADERS: Final = {
    "Content-Type": "application/json",
    "User-Agent": "ZaloWebhook",
    "X-ZEvent-Server": "OA OpenAPI",
}
_DELETE: Final = object()


@dataclass(frozen=True)
class Fixture:
    name: str
    body: bytes  # the exact bytes on disk: what is signed and posted
    headers: dict[str, str]

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def event_name(self) -> str:
        return str(self.data["event_name"])

    @property
    def timestamp(self) -> str:
        return str(self.data["timestamp"])

    @property
    def sent_at(self) -> datetime:
        return from_ms(self.timestamp)

    @property
    def is_zns(self) -> bool:
        return self.headers.get("X-ZEvent-Server") == "ZNS"


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES_DIR.glob("*.json") if not p.name.endswith(".headers.json"))


@cache
def load_fixture(name: str) -> Fixture:
    headers = dict(DEFAULT_HEADERS)
    extra = FIXTURES_DIR / f"{name}.headers.json"
    if extra.exists():
        headers.update(json.loads(extra.read_text(encoding="utf-8")))
    return Fixture(name, (FIXTURES_DIR / f"{name}.json").read_bytes(), headers)


def from_ms(ms: str | int) -> datetime:
    """Epoch milliseconds as an aware datetime, exactly (no float rounding)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))


def to_ms(moment: datetime) -> str:
    return str((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1))


def mac(body: bytes, timestamp: str, *, app_id: str = APP_ID, secret: str = OA_SECRET_KEY) -> str:
    return hashlib.sha256(app_id.encode() + body + timestamp.encode() + secret.encode()).hexdigest()


def signed_headers(
    body: bytes,
    timestamp: str,
    *,
    secret: str = OA_SECRET_KEY,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    return {
        **DEFAULT_HEADERS,
        **(extra or {}),
        "X-ZEvent-Signature": f"mac={mac(body, timestamp, secret=secret)}",
    }


def compact(event: Any) -> bytes:
    """Zalo sends compact JSON (UTF-8, no spaces)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def event_at(name: str, moment: datetime, **changes: Any) -> dict[str, Any]:
    """A fixture's event, re-stamped at ``moment``, with ``changes`` applied (``"a.b"`` paths, as
    keyword arguments ``a__b``; the value :data:`DELETE` removes the field)."""
    data = copy.deepcopy(load_fixture(name).data)
    data["timestamp"] = to_ms(moment)
    for key, value in changes.items():
        set_path(data, key.split("__"), value)
    return data


def set_path(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = path[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


DELETE: Final = _DELETE


@dataclass
class RecordingRecorder:
    """A ZNS status recorder that keeps what it was given, or fails when told to."""

    calls: list[list[ZnsDeliveryStatus]] = field(default_factory=list)
    fail: bool = False

    async def record(self, statuses: Sequence[ZnsDeliveryStatus]) -> None:
        if self.fail:
            raise ConnectionError("status store unavailable")
        self.calls.append(list(statuses))
