"""Reading untrusted JSON without crashes: the nesting depth counted before parsing (a deep document makes
the recursive parser raise RecursionError), and one error type for every way a body can be unreadable.
Used by the corpus reader and the HTTP service alike."""
from __future__ import annotations

import json
from typing import Any

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
