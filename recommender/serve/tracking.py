"""What ties an answer to the events readers send about it: a rid per answer, a click link per item, and the
store the events are counted in (kept by the app; none without a state_dir, and then events are refused)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import request

from ..config import Settings
from ..feedback import EventStore, Rids
from ..rank.placements import Arm
from ..state import store_location


@dataclass(frozen=True)
class Tracking:
    """The app's rid signer and event store."""

    rids: Rids
    store: EventStore | None

    @classmethod
    def open(cls, settings: Settings) -> "Tracking":
        """The event store (state_dir's events file, checked now: a damaged one stops the start; or the tables
        of state_url) and its secret, which every worker and replica using the store shares."""
        where = store_location(settings.state_dir, settings.state_url, "events.sqlite")
        if where is None:
            # Without a store no event is counted; rids are still drawn (they choose A/B arms), per process.
            return cls(Rids(secrets.token_bytes(32)), None)
        store = EventStore(where)
        return cls(Rids(store.secret()), store)


def base_url(settings: Settings) -> str:
    """Where readers' browsers reach this API: the public_url setting, else the address of this request."""
    return (settings.public_url or request.host_url).rstrip("/")


def click_url(base: str, rid: str, position: int, item_id: str, article_id: str | None,
              placement: str | None) -> str:
    """The link that counts a click on the item at position (from 1) and sends the reader on to the item."""
    query = {"item": item_id, **({"article": article_id} if article_id else {}),
             **({"placement": placement} if placement else {})}
    return f"{base}/v1/r/{rid}/{position}?{urlencode(query)}"


def seen_url(base: str, rid: str, article_id: str | None, placement: str | None, shown: int) -> str:
    """The impression link of a server-rendered block of `shown` items (its lazy-loaded pixel)."""
    query = {**({"article": article_id} if article_id else {}), **({"placement": placement} if placement else {}),
             "shown": shown}
    return f"{base}/v1/i/{rid}?{urlencode(query)}"


def stamped(answer: dict[str, Any], rid: str, placement: str | None, arm: Arm | None, base: str) -> dict[str, Any]:
    """answer (related_json's) with its rid, placement and arm, and a click_url on every item."""
    items = [{**item, "click_url": click_url(base, rid, position, item["id"], answer["article_id"], placement)}
             for position, item in enumerate(answer["items"], start=1)]
    return {**answer, "items": items, "rid": rid, "placement": placement, "arm": arm.name if arm else None}
