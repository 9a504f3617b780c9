"""The OpenAPI 3.0 description of the app (served at /openapi.json), assembled from the operations its views
declare (operations.py) and the JSON schemas pydantic derives from the models: what is described is what is
validated. A test checks it covers every route; the fuzz test probes every bound it publishes."""
from __future__ import annotations

import re
from typing import Any, Iterable

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..config import Settings
from ..rank.placements import placements_from
from .answers import Error, Item
from .models import ArticlePath
from .operations import Operation

REF = "#/components/schemas/{model}"
# Described by name even where they are only part of another answer.
SHARED: tuple[type[BaseModel], ...] = (Error, Item)
ERRORS = {400: "bad parameter, or an unknown placement (unknown_placement, naming the known ones)", 401: "no bearer token", 403: "wrong token, or writes disabled",
          404: "unknown article (or an id no route matches)", 408: "the body did not arrive within request_read_timeout",
          409: "the article is taken down (PUT it with ?restore=true to publish it again)", 413: "body too large",
          415: "not JSON", 422: "invalid article or override, or a field longer than its bound (too_long)",
          429: "too many writes from this client (see Retry-After)",
          503: "not ready, no state_dir for editors' decisions, the state unavailable (state_unavailable), or the "
               "embedding process of PUT articles restarting or too busy (embedder_unavailable; see Retry-After)"}


def openapi_spec(app: Flask, settings: Settings) -> dict[str, Any]:
    """The description of app's routes as a JSON-able dict; k's bounds come from settings."""
    models: set[type[BaseModel]] = set(SHARED)
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        declared = getattr(app.view_functions[rule.endpoint], "operation", None)
        if declared is None:
            continue  # the static files of the editors' page
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            parameters = re.findall(r"<(?:[^<>:]+:)?([^<>]+)>", rule.rule)
            paths.setdefault(path, {})[method.lower()] = _operation(declared, parameters, models)
    document = {
        "openapi": "3.0.3",
        "info": {"title": "recommender", "version": __version__,
                 "description": "Related stories for news articles ('you might also like')."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": _schemas(models)},
    }
    _bound_k(document, settings)
    _name_placements(document, sorted(placements_from(settings.placements, settings.max_k)))
    return document


def _operation(declared: Operation, path_names: list[str], models: set[type[BaseModel]]) -> dict[str, Any]:
    """One method of one path; the models it names are added to `models`."""
    described: dict[str, Any] = {"summary": declared.summary}
    if declared.editor:
        described["security"] = [{"bearer": []}]
    path = _schema(declared.path or ArticlePath)["properties"]
    parameters = [{"name": name, "in": "path", "required": True, "schema": path[name]} for name in path_names]
    if declared.query is not None:
        parameters += _query_parameters(declared.query)
    if parameters:
        described["parameters"] = parameters
    if declared.body is not None:
        models.add(declared.body)
        schema = {"schema": {"$ref": REF.format(model=declared.body.__name__)}}
        described["requestBody"] = {"required": declared.body_required,
                                    "content": {media: schema for media in declared.body_types}}
    responses = {}
    for status, (what, description) in declared.answers.items():
        responses[str(status)] = _answer(what, description, models)
    responses.update({str(status): _answer(Error, ERRORS[status], models) for status in declared.errors})
    described["responses"] = responses
    return described


def _answer(what: Any, description: str, models: set[type[BaseModel]]) -> dict[str, Any]:
    if what is None:
        return {"description": description}
    if isinstance(what, str):  # a media type: a text answer
        return {"description": description, "content": {what: {"schema": {"type": "string"}}}}
    if isinstance(what, dict):  # a JSON schema of its own (this description's)
        return {"description": description, "content": {"application/json": {"schema": what}}}
    models.add(what)
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF.format(
        model=what.__name__)}}}}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = _schema(model)
    parameters = []
    for name, field in schema["properties"].items():
        description = field.pop("description", None)
        parameter = {"name": name, "in": "query", "schema": field}
        if name in schema.get("required", ()):
            parameter["required"] = True
        if field.get("type") == "array":
            parameter["explode"] = True  # lang=de&lang=en
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return _openapi30(model.model_json_schema(ref_template=REF))


def _schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """The components: every named model; models nested in them and not named are written out in place."""
    named = sorted(models, key=lambda model: model.__name__)
    _, top = models_json_schema([(model, "validation") for model in named], ref_template=REF)
    definitions = top.get("$defs", {})
    names = {model.__name__ for model in named}
    nested = {name: schema for name, schema in definitions.items() if name not in names}
    return {name: _openapi30(_inline(definitions[name], nested)) for name in sorted(names)}


def _inline(node: Any, nested: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(value, nested) for value in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    if name in nested:
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _inline({**nested[name], **siblings}, nested)
    return {key: _inline(value, nested) for key, value in node.items()}


def _openapi30(node: Any) -> Any:
    """A JSON Schema (2020-12, as pydantic writes it) in OpenAPI 3.0's dialect, without pydantic's titles."""
    if isinstance(node, list):
        return [_openapi30(value) for value in node]
    if not isinstance(node, dict):
        return node
    schema: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key in ("properties", "$defs"):  # names, not keywords
            schema[key] = {name: _openapi30(child) for name, child in value.items()}
        else:
            schema[key] = _openapi30(value)
    options = schema.get("anyOf", [])
    if len(options) == 2 and {"type": "null"} in options:  # X | None
        schema.pop("anyOf")
        schema = {**next(option for option in options if option != {"type": "null"}), **schema, "nullable": True}
    if isinstance(schema.get("exclusiveMinimum"), (int, float)) and not isinstance(schema["exclusiveMinimum"], bool):
        # OpenAPI 3.0 takes JSON Schema draft 4's form: exclusiveMinimum is a flag on minimum, not a number.
        schema["minimum"], schema["exclusiveMinimum"] = schema["exclusiveMinimum"], True
    return schema


def _bound_k(node: Any, settings: Settings) -> None:
    """k's bounds are settings, not constants (fields.Count): at most max_k, by default default_k."""
    if isinstance(node, list):
        for value in node:
            _bound_k(value, settings)
    elif isinstance(node, dict):
        if node.get("in") == "query" and node.get("name") == "k":
            node["schema"].update(maximum=settings.max_k, default=settings.default_k)
        if isinstance(node.get("properties"), dict) and "k" in node["properties"]:
            node["properties"]["k"].update(maximum=settings.max_k, default=settings.default_k)
        for value in node.values():
            _bound_k(value, settings)


def _name_placements(node: Any, names: list[str]) -> None:
    """The placements a request may name are configuration, not constants: listed as the parameter's enum."""
    if isinstance(node, list):
        for value in node:
            _name_placements(value, names)
    elif isinstance(node, dict):
        if node.get("in") == "query" and node.get("name") == "placement":
            node["schema"]["enum"] = names
        if isinstance(node.get("properties"), dict) and "placement" in node["properties"]:
            node["properties"]["placement"]["enum"] = names
        for value in node.values():
            _name_placements(value, names)
