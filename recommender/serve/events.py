"""Reader events: impressions and clicks sent by the widget (POST /v1/events), clicks through the block's links
(GET /v1/r/<rid>/<position>, a redirect to the story), impressions of the block without script (GET /v1/i/<rid>,
a lazy-loaded pixel), and their figures for the editors (GET /v1/stats/clicks).

Nothing about a reader is kept: no cookie is set or read, no address is stored (the rate limit counts addresses
in memory only), and events become counts per day, placement, arm, profile and position (feedback.events).
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from ..db import StateUnavailable
from ..feedback import Click, Impression, click_figures
from ..feedback.events import today
from ..feedback.rids import seed_of
from . import current
from .answers import Accepted, ClickFigures
from .block import web_address
from .errors import ApiError
from .models import ClickPath, ClickQuery, ClickStatsQuery, Events, RidPath, SeenQuery
from .operations import JSON, operation

events = Blueprint("events", __name__)


def _store() -> Any:
    store = current.tracking().store
    if store is None:
        raise ApiError(503, "events_disabled", "reader events need a state_dir to be counted in")
    return store


def _counted(placement: str | None, rid: str) -> tuple[str, str, str]:
    """The placement, arm and profile an event of this rid is counted under ('' for none)."""
    engine = current.engine()
    arm = engine.arm_for(placement, seed_of(rid)) if placement in engine.placements else None
    return placement or "", arm.name if arm else "", engine.profile_of(arm).name


def _count_one(rid: str, article_id: str | None, placement: str | None,
               event: Callable[[str, str, str], Impression | Click]) -> None:
    """Count the event a link or pixel reports (event(placement, arm, profile)) when its rid is genuine and a
    reader asked (GET; a HEAD is a link checker). Never fails the reader: the story or pixel is answered all the
    same, only a count the state could not take is lost (and logged)."""
    tracking = current.tracking()
    if tracking.store is None or request.method != "GET" or not tracking.rids.genuine(rid, article_id, placement):
        return
    counted = event(*_counted(placement, rid))
    try:
        tracking.store.record([counted])
        current.metrics().reader_events([counted])
    except StateUnavailable as exc:
        current_app.logger.error("reader event not counted: %s", exc)


@events.post("/v1/events")
@operation("Reader events of a related block: impressions (the block was seen) and clicks (an item was "
           "followed); public, rate-limited per client, counted per day, placement, arm, profile and position",
           body=Events, body_types=(JSON, "text/plain"),
           answers={202: (Accepted, "counted: accepted; ignored: events whose rid was not drawn for their article "
                                    "and placement (a rid from another secret, or forged)")},
           errors=(400, 408, 413, 415, 422, 429, 503))
def post_events(body: Events) -> Any:
    """Count a batch of reader events in one transaction."""
    store, rids = _store(), current.tracking().rids
    counted: list[Impression | Click] = []
    # A batch is mostly one block's events: its rid is checked and its arm drawn once.
    lists: dict[tuple[str, str | None, str | None], tuple[str, str, str] | None] = {}
    for event in body.events:
        key = (event.rid, event.article_id, event.placement)
        if key not in lists:
            lists[key] = _counted(event.placement, event.rid) if rids.genuine(*key) else None
        if lists[key] is None:
            continue
        placement, arm, profile = lists[key]
        if event.type == "impression":
            counted.append(Impression(placement, arm, profile, event.shown or 0))
        else:
            counted.append(Click(placement, arm, profile, event.position or 0))
    store.record(counted)
    current.metrics().reader_events(counted)
    return jsonify(accepted=len(counted), ignored=len(body.events) - len(counted)), 202


@events.get("/v1/r/<rid>/<position>")
@operation("A click on an item of a related block: counts it and redirects (302) to the story's own address, "
           "never anywhere else", path=ClickPath, query=ClickQuery,
           answers={302: (None, "to the story's address (Location)")}, errors=(400, 404, 422))
def follow_click(rid: str, position: str, query: ClickQuery) -> Any:
    """Redirect a reader to the clicked story, counting the click when the link is genuine."""
    place = int(position)  # digits only (ClickPath)
    engine = current.engine()
    snapshot, rules = engine.snapshot, engine.rules()
    row = snapshot.row_of.get(query.item)
    target = snapshot.articles[row].get("url") or "" if row is not None else ""
    # Only an indexed, served story's own web address: a link can never send a reader anywhere else, nor reveal
    # the address of a story scheduled for later.
    if row is None or query.item in rules.taken_down or not web_address(target) \
            or float(snapshot.published_at[row]) > engine.clock():
        raise ApiError(404, "unknown_link", "this link leads to no story of the index")
    if place <= current.settings().max_k:
        _count_one(rid, query.article, query.placement, lambda p, a, f: Click(p, a, f, place))
    response = redirect(target, 302)
    response.headers["Cache-Control"] = "no-store"  # every click must reach us to be counted
    return response


# A transparent GIF of one pixel: the smallest answer an <img> accepts.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


@events.get("/v1/i/<rid>")
@operation("An impression of the HTML block without script: its lazy-loaded one-pixel picture, fetched when the "
           "block comes near the reader's view, counts the block as seen (rate-limited like POST /v1/events)",
           path=RidPath, query=SeenQuery, answers={200: ("image/gif", "a transparent pixel")},
           errors=(400, 404, 422, 429))
def block_seen(rid: str, query: SeenQuery) -> Any:
    """Count the impression of a server-rendered block (when its rid is genuine) and answer a pixel."""
    _count_one(rid, query.article, query.placement, lambda p, a, f: Impression(p, a, f, query.shown))
    return Response(PIXEL, content_type="image/gif", headers={"Cache-Control": "no-store"})


@events.get("/v1/stats/clicks")
@operation("Click-through figures per placement: each A/B arm's rate with a 95 % interval and whether it differs "
           "from the first arm yet, and the rates by position and by day", editor=True, query=ClickStatsQuery,
           answers={200: (ClickFigures, "the figures since a UTC date")}, errors=(400, 401, 403, 503))
def click_stats(query: ClickStatsQuery) -> Any:
    """The click figures of the last `days` days (today included)."""
    since = (date.fromisoformat(today()) - timedelta(days=query.days - 1)).isoformat()
    engine = current.engine()
    order = {placement: [arm.name for arm in arms] for placement, arms in engine.arms.items()}
    figures = click_figures(_store().counts(since), order)
    return jsonify(since=since, placements=[f.to_json() for f in figures])

