"""Reading what a request carries: digits-only numbers, bounded strings and lists, filters, JSON object bodies."""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

from flask import request
from werkzeug.exceptions import ClientDisconnected

from ..config import Settings
from ..jsonsafe import BadJson, parse_json
from ..rank.ranking import Filters
from . import limits
from .errors import ApiError, bad_parameter, too_long

# ASCII digits only: int() and float() also take "5_0", "+5", " 5", "٥" and "inf", which no client means.
DIGITS = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")


def bounded(name: str, value: str, limit: int) -> str:
    """value, unless it is longer than limit (422 too_long)."""
    if len(value) > limit:
        raise too_long(name, limit)
    return value


def k(raw: Any, settings: Settings) -> int:
    """The number of related stories asked for: default_k when not given, else 1 to max_k."""
    if raw is None:
        return settings.default_k
    if isinstance(raw, str):
        if not DIGITS.fullmatch(raw):
            raise bad_parameter(f"k must be an integer between 1 and {settings.max_k}, in digits only")
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= settings.max_k:
        raise bad_parameter(f"k must be an integer between 1 and {settings.max_k}")
    return raw


def _string_list(name: str, value: Any, item_limit: int) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_parameter(f"{name} must be a string or a list of strings")
    if len(value) > limits.MAX_FILTER_VALUES:
        raise too_long(name, limits.MAX_FILTER_VALUES, "values")
    return tuple(bounded(f"a value of {name}", v, item_limit) for v in value)


def _max_age(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, str) and _DECIMAL.fullmatch(raw):
        raw = float(raw)
    if not isinstance(raw, (int, float)) or isinstance(raw, bool) or not math.isfinite(raw) \
            or not 0 < raw <= limits.MAX_AGE_DAYS:
        raise bad_parameter(f"max_age_days must be a positive number of days, at most {limits.MAX_AGE_DAYS:,}")
    return float(raw)


def _filters(lang: Any, section: Any, max_age_days: Any, exclude: Any) -> Filters:
    return Filters(
        langs=tuple(v.lower() for v in _string_list("lang", lang or [], limits.MAX_LANG_CHARS)),
        sections=_string_list("section", section or [], limits.MAX_SECTION_CHARS),
        max_age_days=_max_age(max_age_days),
        exclude_ids=_string_list("exclude", exclude or [], limits.MAX_ID_CHARS),
    )


def query_filters() -> Filters:
    """The filters of the query string (lang, section, max_age_days, exclude)."""
    args = request.args
    return _filters(args.getlist("lang"), args.getlist("section"), args.get("max_age_days"), args.getlist("exclude"))


def json_filters(data: Mapping[str, Any]) -> Filters:
    """The filters of a draft's `filters` object."""
    filters = data.get("filters") or {}
    if not isinstance(filters, dict):
        raise bad_parameter("filters must be an object")
    unknown = set(filters) - {"lang", "section", "max_age_days", "exclude"}
    if unknown:
        raise bad_parameter(f"unknown filter(s): {', '.join(sorted(unknown))}")
    return _filters(filters.get("lang"), filters.get("section"), filters.get("max_age_days"), filters.get("exclude"))


def text(data: Mapping[str, Any], name: str, default: str, limit: int = limits.MAX_WHY_CHARS) -> str:
    """A bounded string of the body (who, why), stripped; default when missing or blank."""
    value = data.get(name, default)
    if not isinstance(value, str):
        raise ApiError(422, "invalid_override", f"'{name}' must be a string of at most {limit} characters")
    return bounded(f"'{name}'", value, limit).strip() or default


def check_request_bounds() -> None:
    """Path ids and the number of query parameters, before any view spends time on them."""
    article_id = (request.view_args or {}).get("article_id")
    if article_id is not None:
        bounded("the article id", article_id, limits.MAX_ID_CHARS)
    if sum(len(values) for values in request.args.listvalues()) > limits.MAX_QUERY_PARAMS:
        raise too_long("the query string", limits.MAX_QUERY_PARAMS, "parameters")


def json_object() -> dict[str, Any]:
    """The request body, a JSON object (415 if not JSON, 400 if broken or too deeply nested, 408 if late)."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send JSON (Content-Type: application/json)")
    # Parsed here, not by request.get_json: that one lets a deeply nested body raise RecursionError (a 500).
    try:
        raw = request.get_data(cache=True)
    except (OSError, ClientDisconnected):  # the body did not arrive within request_read_timeout
        raise ApiError(408, "request_timeout", "the request body did not arrive in time") from None
    try:
        data = parse_json(raw)
    except BadJson as exc:
        raise ApiError(400, "bad_json", str(exc)) from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return data
