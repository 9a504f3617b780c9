"""Request limits of the HTTP service: the bounds of every field and the write rate limit (JSON depth: jsonsafe)."""
from __future__ import annotations

import math
import time

from flask import Blueprint, Flask

from ..config import ConfigError


def limit_rates(app: Flask, limits: dict[str, tuple[str, Blueprint]]) -> None:
    """Apply per-client rate limits to the writes (POST, PUT, DELETE) of blueprints: setting name -> (limit,
    blueprint), one limit shared by all of a blueprint's writes; none for a limit that is ''.

    Counts live in each worker process's memory (addresses are never stored): with N gunicorn workers a client
    gets at most N times the limit (requests are spread over the workers), which is what the README documents.
    """
    given = {name: (limit, blueprint) for name, (limit, blueprint) in limits.items() if limit.strip()}
    if not given:
        return
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address
    from limits import parse_many

    for name, (limit, _) in given.items():
        try:  # a typo must fail at start-up, not as a 500 on the first write
            parse_many(limit)
        except ValueError as exc:
            raise ConfigError(f"setting {name!r}: {limit!r} is not a rate limit such as '60/minute' ({exc})") from None

    # One limiter per app: its counts are this app's alone (tests build many apps in one process).
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=False)
    app.extensions["recommender_limiter"] = limiter

    @limiter.request_filter
    def reads_are_not_limited() -> bool:
        # The extension checks every request before its view runs; reads are the hot path and never limited.
        # The block's impression pixel is a GET that writes: it counts against the event limit.
        from flask import request

        return request.method in ("GET", "HEAD", "OPTIONS") and request.endpoint != "events.block_seen"

    for name, (limit, blueprint) in given.items():
        limiter.shared_limit(limit, scope=name)(blueprint)


def retry_after_seconds(app: Flask) -> int:
    """Whole seconds until the client's exhausted write window resets (at least 1)."""
    limiter = app.extensions.get("recommender_limiter")
    current = limiter.current_limit if limiter is not None else None
    if current is None:
        return 1
    return max(1, math.ceil(current.reset_at - time.time()))


# Bounds of every field a request may carry, far above real use and far below what costs time: no field of
# any endpoint reaches a parser, a regular expression or a tokenizer unbounded. Article fields (title 1,000,
# teaser 5,000, body 1,000,000, ...) are corpus.FIELD_LIMITS; README "Limits" lists all; openapi.py
# publishes them as maxLength/maxItems so the fuzz test probes them.
MAX_ID_CHARS = 200  # article ids in paths, bodies and exclude lists (corpus.ID_PATTERN's bound)
MAX_WHO_CHARS = 100
MAX_WHY_CHARS = 500
MAX_SEARCH_CHARS = 200  # the editors' search q
MAX_LANG_CHARS = 16
MAX_SECTION_CHARS = 100
MAX_FILTER_VALUES = 100  # values of one repeatable filter (lang, section, exclude)
MAX_QUERY_PARAMS = 300  # query-string parameters of one request, all names together
MAX_AGE_DAYS = 36_500
AUDIT_LIMIT = 1_000
MAX_EVENTS = 50  # reader events in one POST /v1/events batch
MAX_STATS_DAYS = 366  # days back the click figures reach
