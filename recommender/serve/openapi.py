"""The OpenAPI 3 description of the HTTP API (served at /openapi.json; a test checks it covers every route)."""
from __future__ import annotations

from typing import Any

from .. import __version__
from ..ingest.corpus import FIELD_LIMITS, ID_PATTERN, MAX_TAG_CHARS, MAX_TAGS
from . import limits

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad parameter", 401: "no bearer token", 403: "wrong token, or writes disabled",
            404: "unknown article (or an id no route matches)", 408: "the body did not arrive within request_read_timeout",
            413: "body too large", 415: "not JSON",
            409: "the article is taken down (PUT it with ?restore=true to publish it again)",
            422: "invalid article or override, or a field longer than its bound (too_long)", 429: "too many writes from this client (see Retry-After)",
            503: "not ready, or no state_dir for editors' decisions"}
    return {str(code): _json(ERROR, text[code]) for code in codes}


def _text(limit: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": limit, **extra}


def _list(item_limit: int) -> dict[str, Any]:
    return {"type": "array", "items": _text(item_limit), "maxItems": limits.MAX_FILTER_VALUES}


ID = _text(limits.MAX_ID_CHARS)
ARTICLE_ID = {"name": "article_id", "in": "path", "required": True, "schema": ID}
# A PUT's id is refused (422 invalid_article) unless the corpus format allows it; other ids are only unknown.
NEW_ARTICLE_ID = {**ARTICLE_ID, "schema": {**ID, "pattern": f"^{ID_PATTERN.pattern}$"}}
# OpenAPI 3.0 takes JSON Schema draft 4's form: exclusiveMinimum is a flag on minimum, not a number.
POSITIVE = {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": limits.MAX_AGE_DAYS}
WHO_WHY = {"who": _text(limits.MAX_WHO_CHARS), "why": _text(limits.MAX_WHY_CHARS)}


def _filter_parameters(max_k: int) -> list[dict[str, Any]]:
    return [
        {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": max_k, "default": 5},
         "description": "number of related stories (at most the max_k setting)"},
        {"name": "lang", "in": "query", "schema": _list(limits.MAX_LANG_CHARS), "explode": True,
         "description": "only stories in these languages (ISO 639 codes)"},
        {"name": "section", "in": "query", "schema": _list(limits.MAX_SECTION_CHARS), "explode": True,
         "description": "only stories from these sections"},
        {"name": "max_age_days", "in": "query", "schema": POSITIVE,
         "description": "only stories at most this many days old"},
        {"name": "exclude", "in": "query", "schema": _list(limits.MAX_ID_CHARS), "explode": True,
         "description": "never suggest these article ids"},
    ]


def openapi_spec(max_k: int = 50) -> dict[str, Any]:
    """The API description as a JSON-able dict; max_k is the server's largest k."""
    related = {"$ref": "#/components/schemas/Related"}
    filters = _filter_parameters(max_k)
    return {
        "openapi": "3.0.3",
        "info": {"title": "recommender", "version": __version__,
                 "description": "Related stories for news articles ('you might also like')."},
        "paths": {
            "/v1/articles/{article_id}/related": {
                "get": {
                    "summary": "Related stories of an indexed article (never the article itself)",
                    "parameters": [ARTICLE_ID, *filters],
                    "responses": {"200": _json(related, "related stories; with ETag and Cache-Control (max-age "
                                                        "ends before the next scheduled story is published)"),
                                  "304": {"description": "not modified (If-None-Match matched the ETag)"},
                                  **_errors(400, 404, 422, 503)},
                }
            },
            "/v1/related": {
                "post": {
                    "summary": "Related stories of an article that is not in the index (a draft)",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Draft"}}}},
                    "responses": {"200": _json(related, "related stories"), **_errors(400, 408, 413, 415, 422, 503)},
                }
            },
            "/v1/articles/{article_id}/overrides": {
                method: {
                    "summary": summary,
                    "security": [{"bearer": []}],
                    "parameters": [ARTICLE_ID],
                    **({"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
                       if body else {}),
                    "responses": {"200": _json({"$ref": "#/components/schemas/Overrides"}, "the article's decisions"),
                                  **_errors(*codes)},
                }
                for method, summary, body, codes in (
                    ("get", "The editors' pins and blocks for this article's list, with their audit trail", None,
                     (401, 403, 404, 422, 503)),
                    ("put", "Pin a story at a position, block it from this list, or block it everywhere",
                     {"$ref": "#/components/schemas/Override"}, (400, 401, 403, 404, 408, 413, 415, 422, 429, 503)),
                    ("delete", "Undo a pin or block", {"$ref": "#/components/schemas/Override"},
                     (400, 401, 403, 404, 408, 413, 415, 422, 429, 503)),
                )
            },
            "/v1/articles/{article_id}": {
                "put": {
                    "summary": "Insert or update an article: embedded and served at once, without a rebuild",
                    "security": [{"bearer": []}],
                    "parameters": [NEW_ARTICLE_ID, {"name": "restore", "in": "query", "schema": {
                        "type": "string", "enum": ["true"]}, "description": "publish a taken-down article again"}],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Article"}}}},
                    "responses": {"201": _json({"type": "object"}, "created"), "200": _json({"type": "object"}, "updated"),
                                  **_errors(400, 401, 403, 404, 409, 408, 413, 415, 422, 429, 503)},
                },
                "delete": {
                    "summary": "Take an article down: from the next request on it appears in no list",
                    "security": [{"bearer": []}],
                    "parameters": [ARTICLE_ID],
                    "requestBody": {"required": False, "content": {"application/json": {"schema": {
                        "type": "object", "properties": WHO_WHY}}}},
                    "responses": {"200": _json({"type": "object"}, "taken down"),
                                  **_errors(400, 401, 403, 404, 408, 413, 415, 422, 429, 503)},
                }
            },
            "/v1/articles": {
                "get": {
                    "summary": "Find articles by id or title words (for the editors' page)",
                    "security": [{"bearer": []}],
                    "parameters": [{"name": "q", "in": "query", "required": True,
                                    "schema": _text(limits.MAX_SEARCH_CHARS)}],
                    "responses": {"200": _json({"type": "object"}, "up to 20 matching articles, newest first"),
                                  **_errors(400, 401, 403, 422, 503)},
                }
            },
            "/v1/articles/{article_id}/explain": {
                "get": {
                    "summary": "The related list as readers see it, with the reasons for every item",
                    "security": [{"bearer": []}],
                    "parameters": [ARTICLE_ID, *filters],
                    "responses": {"200": _json({"type": "object"}, "items with score parts, shared terms and names, "
                                                                   "age, pins; filter and override effects"),
                                  **_errors(400, 401, 403, 404, 422, 503)},
                }
            },
            "/editor": {"get": {"summary": "The editors' page (HTML; asks for the token once)",
                                "responses": {"200": {"description": "HTML page",
                                                      "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/v1/audit": {
                "get": {
                    "summary": "Who changed what and why, newest first",
                    "security": [{"bearer": []}],
                    "parameters": [{"name": "limit", "in": "query",
                                    "schema": {"type": "integer", "minimum": 1, "maximum": limits.AUDIT_LIMIT,
                                               "default": 100}}],
                    "responses": {"200": _json({"type": "object"}, "audit entries"), **_errors(400, 401, 403, 503)},
                }
            },
            "/healthz": {"get": {"summary": "The process is alive",
                                 "responses": {"200": _json({"type": "object"}, "alive")}}},
            "/readyz": {"get": {"summary": "An index is loaded and answers",
                                "responses": {"200": _json({"type": "object"}, "ready"), **_errors(503)}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This description",
                                      "responses": {"200": _json({"type": "object"}, "OpenAPI 3 document")}}},
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": {
            "Article": {"type": "object", "required": ["title", "body", "published_at", "lang"], "properties": {
                "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$",
                       "description": "optional; must equal the id in the URL"},
                "title": _text(FIELD_LIMITS["title"], minLength=1), "body": _text(FIELD_LIMITS["body"], minLength=1),
                "teaser": _text(FIELD_LIMITS["teaser"]),
                "published_at": _text(FIELD_LIMITS["published_at"], format="date-time",
                                      description="with a UTC offset; in the future: not suggested before then"),
                "lang": {"type": "string", "pattern": "^[A-Za-z]{2,3}$", "description": "ISO 639 code"},
                "url": _text(FIELD_LIMITS["url"]), "section": _text(FIELD_LIMITS["section"]),
                "author": _text(FIELD_LIMITS["author"]),
                "tags": {"type": "array", "items": _text(MAX_TAG_CHARS), "maxItems": MAX_TAGS}, **WHO_WHY}},
            "Override": {"type": "object", "required": ["action", "target"], "properties": {
                "action": {"type": "string", "enum": ["pin", "block", "block_everywhere"]},
                "target": ID, "position": {"type": "integer", "minimum": 1}, **WHO_WHY}},
            "Overrides": {"type": "object", "properties": {
                "article_id": {"type": "string"}, "overrides": {"type": "array", "items": {"type": "object"}},
                "audit": {"type": "array", "items": {"type": "object"}}}},
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
            "Item": {"type": "object", "required": ["id", "title", "teaser", "url", "published_at", "section", "lang", "score"],
                     "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                                    "teaser": {"type": "string"}, "url": {"type": "string"},
                                    "published_at": {"type": "string", "format": "date-time"},
                                    "section": {"type": "string"}, "lang": {"type": "string"},
                                    "score": {"type": "number"}}},
            "Related": {"type": "object", "required": ["article_id", "items", "index_version"],
                        "properties": {"article_id": {"type": "string", "nullable": True},
                                       "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                                       "index_version": {"type": "string"}}},
            "Draft": {"type": "object", "required": ["title", "body"],
                      "properties": {
                          "title": _text(FIELD_LIMITS["title"]), "body": _text(FIELD_LIMITS["body"]),
                          "teaser": _text(FIELD_LIMITS["teaser"]),
                          "lang": _text(FIELD_LIMITS["lang"], description="ISO 639 code of the draft"),
                          "published_at": _text(FIELD_LIMITS["published_at"], format="date-time",
                                                description="with a UTC offset; ages and max_age_days count "
                                                            "from it"),
                          "k": {"type": "integer", "minimum": 1, "maximum": max_k},
                          "filters": {"type": "object", "properties": {
                              "lang": _list(limits.MAX_LANG_CHARS),
                              "section": _list(limits.MAX_SECTION_CHARS),
                              "max_age_days": POSITIVE,
                              "exclude": _list(limits.MAX_ID_CHARS)}}}},
        }},
    }
