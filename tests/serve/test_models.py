"""The request and answer models (serve/models.py, answers.py) over the tiny committed snapshot: each refusal
answers its documented status, code and message, every answer matches the model its operation declares, and
/openapi.json publishes the same bounds the models enforce."""
import pytest
from conftest import AUTH, record

from recommender.ingest.corpus import FIELD_LIMITS
from recommender.serve import answers, limits

ARTICLE = "p2-single-port-strike"
OTHER = "vw-werke-1"
DRAFT = {"title": "Hafenarbeiter streiken", "body": "An der Ostküste stehen die Häfen still, Container stauen sich."}
NEW = {k: v for k, v in record("neu-1", title="Hafenstreik beendet", body="Die Häfen arbeiten wieder.").items()
       if k != "id"}


def declared_answer(app, method, path, status):
    """The answer model the operation of (method, path) declares for status (errors: answers.Error)."""
    endpoint, _ = app.url_map.bind("localhost").match(path.split("?")[0], method=method.upper())
    declared = app.view_functions[endpoint].operation
    assert status in declared.answers or status in declared.errors, (method, path, status)
    return answers.Error if status >= 400 else declared.answers[status][0]


@pytest.mark.parametrize("method, path, body, status", [
    ("get", "/healthz", None, 200),
    ("get", "/readyz", None, 200),
    ("get", f"/v1/articles/{ARTICLE}/related?k=3&lang=en", None, 200),
    ("get", "/v1/articles/nope/related", None, 404),
    ("post", "/v1/related", {**DRAFT, "filters": {"section": ["business"]}}, 200),
    ("put", f"/v1/articles/{ARTICLE}/overrides", {"action": "pin", "target": OTHER, "position": 1}, 200),
    ("get", f"/v1/articles/{ARTICLE}/overrides", None, 200),
    ("get", f"/v1/articles/{ARTICLE}/explain?k=3", None, 200),
    ("get", "/v1/articles?q=kursk", None, 200),
    ("get", "/v1/audit?limit=5", None, 200),
    ("put", "/v1/articles/neu-1", NEW, 201),
    ("delete", f"/v1/articles/{OTHER}", {"who": "legal"}, 200),
    ("delete", f"/v1/articles/{ARTICLE}/overrides", {"action": "block", "target": OTHER}, 404),
])
def test_every_answer_matches_the_model_its_operation_declares(app, client, method, path, body, status):
    answer = getattr(client, method)(path, json=body, headers=AUTH)
    assert answer.status_code == status, answer.get_json()
    declared_answer(app, method, path, status).model_validate(answer.get_json())


@pytest.mark.parametrize("method, path, body, status, code, message", [
    ("get", f"/v1/articles/{ARTICLE}/related?k=%2B5", None, 400, "bad_parameter",
     "k must be an integer between 1 and 50, in digits only"),
    ("get", f"/v1/articles/{ARTICLE}/related?k=51", None, 400, "bad_parameter", "k must be an integer between 1 and 50"),
    ("get", f"/v1/articles/{ARTICLE}/related?max_age_days=inf", None, 400, "bad_parameter",
     "max_age_days must be a positive number of days, at most 36,500"),
    ("get", f"/v1/articles/{ARTICLE}/related?" + "&".join(["lang=de"] * 101), None, 422, "too_long",
     "lang is longer than 100 values"),
    ("get", f"/v1/articles/{ARTICLE}/related?lang=" + "x" * 17, None, 422, "too_long",
     "a value of lang is longer than 16 characters"),
    ("get", "/v1/articles/" + "a" * 201 + "/related", None, 422, "too_long",
     "the article id is longer than 200 characters"),
    ("get", "/v1/articles?q=%20%20", None, 400, "bad_parameter", "give q: an article id or words of its title"),
    ("get", "/v1/articles", None, 400, "bad_parameter", "give q: an article id or words of its title"),
    ("get", "/v1/audit?limit=0", None, 400, "bad_parameter", "limit must be an integer between 1 and 1000"),
    ("post", "/v1/related", {"body": "x"}, 422, "invalid_article", "give 'title' and 'body' as strings, not both empty"),
    ("post", "/v1/related", {"title": " ", "body": ""}, 422, "invalid_article",
     "give 'title' and 'body' as strings, not both empty"),
    ("post", "/v1/related", {**DRAFT, "title": "x" * 1001}, 422, "invalid_article",
     "title has 1,001 characters, more than 1,000"),
    ("post", "/v1/related", {**DRAFT, "k": True}, 400, "bad_parameter", "k must be an integer between 1 and 50"),
    ("post", "/v1/related", {**DRAFT, "filters": "en"}, 400, "bad_parameter", "filters must be an object"),
    ("post", "/v1/related", {**DRAFT, "filters": {"colour": 1, "age": 2}}, 400, "bad_parameter",
     "unknown filter(s): age, colour"),
    ("post", "/v1/related", {**DRAFT, "filters": {"lang": [1]}}, 400, "bad_parameter",
     "lang must be a string or a list of strings"),
    ("put", f"/v1/articles/{ARTICLE}/overrides", {"target": OTHER}, 422, "invalid_override",
     "'action' must be 'pin', 'block' or 'block_everywhere'"),
    ("put", f"/v1/articles/{ARTICLE}/overrides", {"action": "block", "target": 7}, 422, "invalid_override",
     "'target' must be an article id"),
    ("put", f"/v1/articles/{ARTICLE}/overrides", {"action": "block", "target": "x" * 201}, 422, "too_long",
     "'target' is longer than 200 characters"),
    ("put", f"/v1/articles/{ARTICLE}/overrides", {"action": "block", "target": OTHER, "who": 5}, 422,
     "invalid_override", "'who' must be a string of at most 100 characters"),
    ("put", f"/v1/articles/{ARTICLE}/overrides", {"action": "block", "target": OTHER, "why": "x" * 501}, 422,
     "too_long", "'why' is longer than 500 characters"),
    ("put", f"/v1/articles/{ARTICLE}/overrides", {"action": "pin", "target": OTHER, "position": 51}, 422,
     "invalid_override", "a pin needs 'position' between 1 and 50"),
    ("put", "/v1/articles/neu-1", {**NEW, "tags": ["x"] * 101}, 422, "invalid_article",
     "tags: at most 100 tags of at most 100 characters each"),
    ("put", "/v1/articles/neu-1", {**NEW, "id": "neu-2"}, 422, "invalid_article",
     "the body's id differs from the id in the URL"),
    ("put", "/v1/articles/neu 1", NEW, 422, "invalid_article",
     "the article id may hold only letters, digits and . _ : - (at most 200)"),
    ("put", "/v1/articles/neu-1", {**NEW, "published_at": "2026-01-01"}, 422, "invalid_article",
     "published_at: "),
    ("delete", f"/v1/articles/{OTHER}", {"who": ["legal"]}, 422, "invalid_override",
     "'who' must be a string of at most 100 characters"),
])
def test_a_refused_request_answers_its_status_code_and_message(client, method, path, body, status, code, message):
    answer = getattr(client, method)(path, json=body, headers=AUTH)
    assert (answer.status_code, answer.get_json()["error"]) == (status, code), answer.get_json()
    assert answer.get_json()["message"].startswith(message)


def test_openapi_publishes_the_bounds_the_models_enforce(make_app):
    spec = make_app(max_k=7, default_k=3).test_client().get("/openapi.json").get_json()
    schemas, paths = spec["components"]["schemas"], spec["paths"]
    assert spec["openapi"] == "3.0.3"
    article, draft, override = schemas["Article"]["properties"], schemas["Draft"]["properties"], \
        schemas["Override"]["properties"]
    for name in ("title", "teaser", "body", "published_at", "url", "section", "author"):
        assert article[name]["maxLength"] == FIELD_LIMITS[name], name
    for name in ("title", "teaser", "body", "lang", "published_at"):
        assert draft[name]["maxLength"] == FIELD_LIMITS[name], name
    assert draft["k"]["maximum"] == 7 and draft["k"]["default"] == 3  # settings, filled in per server
    assert override["target"]["maxLength"] == limits.MAX_ID_CHARS
    assert override["who"]["maxLength"] == limits.MAX_WHO_CHARS and override["why"]["maxLength"] == limits.MAX_WHY_CHARS
    filters = draft["filters"]["properties"]
    assert filters["max_age_days"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                                       "maximum": limits.MAX_AGE_DAYS,
                                       "description": "only stories at most this many days old"}
    related = {p["name"]: p for p in paths["/v1/articles/{article_id}/related"]["get"]["parameters"]}
    assert related["k"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 7, "default": 3}
    assert related["article_id"]["schema"]["maxLength"] == limits.MAX_ID_CHARS
    for name, item_limit in (("lang", limits.MAX_LANG_CHARS), ("section", limits.MAX_SECTION_CHARS),
                             ("exclude", limits.MAX_ID_CHARS)):
        assert related[name]["schema"]["maxItems"] == filters[name]["maxItems"] == limits.MAX_FILTER_VALUES
        assert related[name]["schema"]["items"]["maxLength"] == filters[name]["items"]["maxLength"] == item_limit
    search = paths["/v1/articles"]["get"]["parameters"][0]
    assert search["required"] and search["schema"]["maxLength"] == limits.MAX_SEARCH_CHARS
    assert paths["/v1/audit"]["get"]["parameters"][0]["schema"]["maximum"] == limits.AUDIT_LIMIT
    assert "title" not in schemas["Item"]  # pydantic's titles are left out
    assert schemas["Related"]["properties"]["article_id"] == {"type": "string", "nullable": True}
