"""One declaration per endpoint: what it takes and answers, and whether it needs the editors' token.

`@operation(...)` checks the token (auth.py) and validates the request against the declared models before the view
runs, passing them as `query=` and `body=`; openapi.py describes the app from the same declarations.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable, Mapping

from flask import request
from pydantic import BaseModel
from werkzeug.exceptions import ClientDisconnected

from ..jsonsafe import BadJson, parse_json
from .auth import authorize
from .errors import ApiError
from .models import validate

JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    """An endpoint as described in /openapi.json.

    answers : status -> (what, description); what is an answer model, a media type (a text answer), a JSON
        schema, or None (no body)
    errors : the error statuses it may answer (each with the Error body)
    path : the model of the path's parameters, if narrower than models.ArticlePath (checked for every route)
    """

    summary: str
    answers: Mapping[int, tuple[Any, str]]
    errors: tuple[int, ...] = ()
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    editor: bool = False
    path: type[BaseModel] | None = None
    body_types: tuple[str, ...] = (JSON,)


def operation(summary: str, answers: Mapping[int, tuple[Any, str]], errors: tuple[int, ...] = (),
              query: type[BaseModel] | None = None, body: type[BaseModel] | None = None,
              body_required: bool = True, editor: bool = False, path: type[BaseModel] | None = None,
              body_types: tuple[str, ...] = (JSON,)) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a view's operation; the view gets the validated `query` and `body` models as keyword arguments.
    body_types: the media types the JSON body may come as (text/plain too for navigator.sendBeacon)."""
    declared = Operation(summary, answers, errors, query, body, body_required, editor, path, body_types)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if editor:
                authorize()
            if path is not None:
                validate(path, request.view_args or {})
            if query is not None:
                kwargs["query"] = validate(query, query_values(query))
            if body is not None:
                present = body_required or request.content_length
                kwargs["body"] = validate(body, json_object(body_types) if present else {})
            return view(*args, **kwargs)

        checked.operation = declared  # type: ignore[attr-defined]
        return checked

    return decorate


def query_values(model: type[BaseModel]) -> dict[str, Any]:
    """The query string's values of model's fields: all of a list field's, the first of any other."""
    args = request.args
    return {name: args.getlist(name) if typing.get_origin(info.annotation) is list else args[name]
            for name, info in model.model_fields.items() if name in args}


def json_object(types: tuple[str, ...] = (JSON,)) -> dict[str, Any]:
    """The request body, a JSON object (415 if not of types, 400 if broken or too deeply nested, 408 if late)."""
    if not (request.is_json or request.mimetype in types):
        raise ApiError(415, "unsupported_media_type", f"send JSON (Content-Type: {' or '.join(types)})")
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
