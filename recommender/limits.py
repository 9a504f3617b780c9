"""Request limits of the HTTP service: JSON nesting depth, JSON parsing without crashes, the write rate limit."""
from __future__ import annotations

import json
import math
import time
from typing import Any, Callable

from flask import Flask

from .config import ConfigError

# Real payloads (articles, overrides, drafts with filters) nest at most three levels; anything far deeper is
# an attack on the recursive parser (RecursionError) rather than data.
MAX_JSON_DEPTH = 32


class BadJson(ValueError):
    """The body is not JSON this service accepts (malformed, not UTF-8, or nested too deeply)."""


def json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """The deepest nesting of arrays/objects in raw JSON text, counted without parsing; stops past limit."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a request body; raises BadJson with a reason instead of ever raising RecursionError."""
    if json_depth(raw, max_depth) > max_depth:
        raise BadJson(f"the JSON body nests deeper than {max_depth} levels")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadJson("the body is not valid UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise BadJson(f"the body is not valid JSON ({str(exc).split(':')[0]})") from None


def write_limiter(app: Flask, limit: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator applying one per-client rate limit shared by all write endpoints; identity if limit is ''.

    Counts live in each worker process's memory: with N gunicorn workers a client gets at most N times the
    limit (requests are spread over the workers), which is what the README documents.
    """
    if not limit.strip():
        return lambda view: view
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address
    from limits import parse_many

    try:  # a typo must fail at start-up, not as a 500 on the first write
        parse_many(limit)
    except ValueError as exc:
        raise ConfigError(f"setting 'write_rate_limit': {limit!r} is not a rate limit such as '60/minute' ({exc})") from None

    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=False)
    app.extensions["recommender_limiter"] = limiter

    @limiter.request_filter
    def reads_are_not_limited() -> bool:
        # The extension checks every request before routing; reads are the hot path and never limited.
        from flask import request

        return request.method in ("GET", "HEAD", "OPTIONS")

    return limiter.shared_limit(limit, scope="writes")


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
