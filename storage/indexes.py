"""The indexes of every collection, declared in one place and created idempotently at start-up.

Each package that owns a collection adds its :class:`IndexSpec` entries to :data:`INDEXES`. Creating an
index that already exists with the same definition is a no-op; when a definition changed (the name is
the same, the keys or options differ) the old index is dropped and the new one built, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from storage.clients import Document

log = logging.getLogger("loyalty.storage.indexes")

# IndexOptionsConflict, IndexKeySpecsConflict: same name, different definition.
_CONFLICT_CODES: Final = frozenset({85, 86})


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One index: the collection, the keys in order, a stable name and its options."""

    collection: str
    keys: tuple[tuple[str, int], ...]
    name: str
    unique: bool = False
    sparse: bool = False
    partial_filter: Mapping[str, Any] | None = None
    expire_after_seconds: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def model(self) -> IndexModel:
        kwargs: dict[str, Any] = {"name": self.name, **self.options}
        if self.unique:
            kwargs["unique"] = True
        if self.sparse:
            kwargs["sparse"] = True
        if self.partial_filter is not None:
            kwargs["partialFilterExpression"] = dict(self.partial_filter)
        if self.expire_after_seconds is not None:
            kwargs["expireAfterSeconds"] = self.expire_after_seconds
        return IndexModel(list(self.keys), **kwargs)


# The application's indexes. Later modules (customers, ledger, vouchers...) add theirs here.
INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("meta", (("kind", 1),), name="meta_kind"),
    IndexSpec("zns_deliveries", (("tracking_id", 1),), name="zns_deliveries_tracking_id", sparse=True),
    # customers: one active customer per phone; referral codes unique; wallet look-ups of the jobs
    IndexSpec(
        "customers",
        (("phone", 1),),
        name="customers_phone_active",
        unique=True,
        partial_filter={"phone": {"$type": "string"}, "status": "active"},
    ),
    IndexSpec("customers", (("referral_code", 1),), name="customers_referral_code", unique=True, sparse=True),
    IndexSpec("customers", (("wallet.lots.x", 1),), name="customers_lot_expiry"),
    IndexSpec("customers", (("wallet.journal.at", 1),), name="customers_journal_at"),
    IndexSpec("customers", (("status", 1), ("tier", 1)), name="customers_status_tier"),
    IndexSpec("identities", (("customer_id", 1),), name="identities_customer"),
    IndexSpec("merges", (("finished_at", 1), ("started_at", 1)), name="merges_unfinished"),
    IndexSpec("merges", (("from_id", 1),), name="merges_from"),
    IndexSpec("merges", (("into_id", 1),), name="merges_into"),
    # ledger: history newest first, repair of entries claimed but not applied
    IndexSpec("ledger", (("customer_id", 1), ("created_at", -1), ("_id", -1)), name="ledger_customer_time"),
    IndexSpec("ledger", (("applied", 1), ("state", 1), ("created_at", 1)), name="ledger_unapplied"),
    # tiers: pending changes left by a crash; the history of a customer
    IndexSpec("customers", (("pending_tier.id", 1),), name="customers_pending_tier", sparse=True),
    IndexSpec("tier_history", (("customer_id", 1), ("at", 1)), name="tier_history_customer"),
    # vouchers (storage.vouchers): _id is the code; one voucher per issue key; a customer's list, newest
    # first; the expiry sweep. Counters are found by customer when customers merge.
    IndexSpec("vouchers", (("key", 1),), name="vouchers_key", unique=True),
    IndexSpec("vouchers", (("customer_id", 1), ("issued_at", -1)), name="vouchers_customer_issued"),
    IndexSpec("vouchers", (("status", 1), ("expires_at", 1)), name="vouchers_status_expires"),
    IndexSpec("voucher_counters", (("customer_id", 1),), name="voucher_counters_customer", sparse=True),
    # rewards (storage.rewards): _id is the client key; a customer's redemptions; unfinished ones.
    IndexSpec(
        "reward_redemptions", (("customer_id", 1), ("created_at", -1)), name="reward_redemptions_customer"
    ),
    IndexSpec("reward_redemptions", (("state", 1), ("created_at", 1)), name="reward_redemptions_state"),
    # orders (storage.orders): one order per (source, external_id) where given; a customer's, newest first
    IndexSpec(
        "orders",
        (("source", 1), ("external_id", 1)),
        name="orders_source_external_id",
        unique=True,
        partial_filter={"external_id": {"$type": "string"}},
    ),
    IndexSpec(
        "orders", (("customer_id", 1), ("created_at", -1), ("_id", -1)), name="orders_customer_created"
    ),
    # referrals (storage.referrals): among active referrals one per referee and one per phone hash;
    # every phone hash ever referred; a referrer's stats
    IndexSpec(
        "referrals",
        (("referee_id", 1),),
        name="referrals_referee_active",
        unique=True,
        partial_filter={"active": True},
    ),
    IndexSpec(
        "referrals",
        (("phone_hash", 1),),
        name="referrals_phone_active",
        unique=True,
        partial_filter={"active": True, "phone_hash": {"$type": "string"}},
    ),
    IndexSpec("referrals", (("phone_hash", 1), ("status", 1)), name="referrals_phone_hash"),
    IndexSpec("referrals", (("referrer_id", 1), ("status", 1)), name="referrals_referrer_status"),
    # QR check-in (storage.checkins): short codes never reused; the staff list, newest first; a customer's
    # scans and counters (history, merges); scans of a code; old daily counters swept (never relied on:
    # the counter's _id names its day)
    IndexSpec("checkin_codes", (("short_code", 1),), name="checkin_codes_short_code", unique=True),
    IndexSpec("checkin_codes", (("status", 1), ("created_at", -1)), name="checkin_codes_status_created"),
    IndexSpec("checkin_codes", (("created_at", -1),), name="checkin_codes_created"),
    IndexSpec("checkins", (("customer_id", 1), ("created_at", -1)), name="checkins_customer_created"),
    IndexSpec("checkins", (("code_id", 1),), name="checkins_code"),
    IndexSpec("checkin_daily", (("customer_id", 1),), name="checkin_daily_customer"),
    IndexSpec("checkin_daily", (("expires_at", 1),), name="checkin_daily_expiry", expire_after_seconds=0),
    # personal data (storage.consents): a customer's consent history in order; the order of one
    # customer's acts on one purpose, unique so two concurrent acts cannot take the same place;
    # erasures left unfinished by a crash
    IndexSpec(
        "consents",
        (("customer_id", 1), ("purpose", 1), ("at", 1), ("seq", 1)),
        name="consents_customer_purpose",
    ),
    IndexSpec("consents", (("customer_id", 1), ("at", 1), ("seq", 1)), name="consents_customer_at"),
    IndexSpec(
        "consents", (("origin_id", 1), ("purpose", 1), ("seq", 1)), name="consents_origin_seq", unique=True
    ),
    IndexSpec("erasures", (("finished_at", 1), ("requested_at", 1)), name="erasures_unfinished"),
    # minigames (storage.games): a campaign's plays in order (report, export, verify); a customer's plays
    # (export, merges); plays left pending; player documents and stock by customer and campaign
    IndexSpec("game_plays", (("campaign_id", 1), ("created_at", 1), ("_id", 1)), name="game_plays_campaign"),
    IndexSpec("game_plays", (("customer_id", 1), ("created_at", 1)), name="game_plays_customer"),
    IndexSpec("game_plays", (("state", 1), ("created_at", 1)), name="game_plays_state"),
    IndexSpec("game_players", (("customer_id", 1),), name="game_players_customer"),
    IndexSpec("game_stock", (("campaign_id", 1),), name="game_stock_campaign"),
)


async def ensure_indexes(db: AsyncDatabase[Document], specs: Iterable[IndexSpec] = INDEXES) -> int:
    """Create every index in ``specs``; return how many were (re)built rather than already there."""
    built = 0
    for spec in specs:
        collection = db[spec.collection]
        existing = await collection.index_information()
        wanted = spec.model().document
        current = existing.get(spec.name)
        if current is not None and _same_definition(current, wanted):
            continue
        try:
            await collection.create_indexes([spec.model()])
        except OperationFailure as error:
            if error.code not in _CONFLICT_CODES:
                raise
            log.warning("index %s.%s changed definition: rebuilding it", spec.collection, spec.name)
            await collection.drop_index(spec.name)
            await collection.create_indexes([spec.model()])
        built += 1
    return built


def _same_definition(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    keys = [(name, int(direction)) for name, direction in current["key"]]
    if keys != list(wanted["key"].items()):
        return False
    for option in ("unique", "sparse", "partialFilterExpression", "expireAfterSeconds"):
        if bool(current.get(option)) != bool(wanted.get(option)) or (
            option in wanted and current.get(option) != wanted[option]
        ):
            return False
    return True
