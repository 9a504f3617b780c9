"""The editors' token: every editors' endpoint but the page itself needs `Authorization: Bearer <api_token>`."""
from __future__ import annotations

import hmac

from flask import request

from . import current
from .errors import ApiError

TOKEN_ENV = "RECOMMENDER_API_TOKEN"  # the api_token setting as the environment gives it


def authorize() -> None:
    """Refuse the request unless it carries the editors' token (and the editors' state is there)."""
    token = current.settings().api_token
    if not token:  # disabled, never open
        raise ApiError(403, "writes_disabled", f"write endpoints are disabled: set {TOKEN_ENV} on the server")
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": 'Bearer realm="recommender"'})
    # Constant-time comparison: response time must not reveal how much of a guess was right.
    if not hmac.compare_digest(header[len("Bearer "):].encode(), token.encode()):
        raise ApiError(403, "forbidden", "the token is not valid")
    if current.engine().editorial is None:
        raise ApiError(503, "editorial_disabled", "no state_dir is configured for editors' decisions")
