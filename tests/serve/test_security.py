"""Access control and limits: the token (required, constant-time, never logged or echoed), body size, k, JSON
depth, the write rate limit and CORS."""
import hmac
import logging

import pytest
from conftest import record, write_jsonl

from recommender.config import ConfigError, load_settings
from recommender.jobs.index_job import build_index
from recommender.jsonsafe import MAX_JSON_DEPTH, json_depth, parse_json
from recommender.serve.app import create_app

TOKEN = "Tok3n-never-shown-7d41"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OVERRIDE = {"action": "block", "target": "a2"}
# Every endpoint that needs the token, with a body that would be valid: (method, url, json body).
EDITOR_ENDPOINTS = [
    ("put", "/v1/articles/a0/overrides", OVERRIDE),
    ("delete", "/v1/articles/a0/overrides", OVERRIDE),
    ("get", "/v1/articles/a0/overrides", None),
    ("put", "/v1/articles/new-1", {k: v for k, v in record("new-1").items() if k != "id"}),
    ("delete", "/v1/articles/a3", {"who": "legal"}),
    ("get", "/v1/articles?q=Donau", None),
    ("get", "/v1/articles/a0/explain", None),
    ("get", "/v1/audit", None),
]
WRITES = [e for e in EDITOR_ENDPOINTS if e[0] in ("put", "delete")]


@pytest.fixture
def app_settings(tmp_path):
    """Five short articles served with the token TOKEN (the `app` and `client` fixtures serve them)."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [record(f"a{i}", title=f"Donau {i}", body=f"Die Donau in Passau, Teil {i}.")
                                                for i in range(5)])
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="",
                             state_dir=str(tmp_path / "state"), max_request_bytes=20_000, max_k=10,
                             cors_origins="https://news.example", api_token=TOKEN)
    build_index([corpus], settings.index_dir, settings)
    return settings


def call(client, method, url, body, headers=None, **kwargs):
    return getattr(client, method)(url, json=body, headers=headers or {}, **kwargs)


@pytest.mark.parametrize("method, url, body", EDITOR_ENDPOINTS)
def test_every_editor_endpoint_needs_the_token(client, method, url, body):
    assert call(client, method, url, body).status_code == 401
    for wrong in ("Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x", "Bearer", "Basic " + TOKEN, TOKEN, "Bearer  " + TOKEN):
        answer = call(client, method, url, body, {"Authorization": wrong})
        assert answer.status_code in (401, 403) and answer.get_json()["error"] in ("unauthorized", "forbidden"), wrong
    assert call(client, method, url, body, AUTH).status_code in (200, 201, 404)  # 404: no such override yet


@pytest.mark.parametrize("method, url, body", EDITOR_ENDPOINTS)
def test_without_a_configured_token_editor_endpoints_are_disabled_not_open(app_settings, engine, make_app,
                                                                            method, url, body):
    from_environment = {f"RECOMMENDER_{name.upper()}": str(getattr(app_settings, name))
                        for name in ("profile", "index_dir", "cache_dir", "state_dir")}  # no RECOMMENDER_API_TOKEN
    for app in (make_app(api_token=""), create_app(load_settings(environ=from_environment), engine)):
        client = app.test_client()
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}):
            answer = call(client, method, url, body, headers)
            assert answer.status_code == 403 and answer.get_json()["error"] == "writes_disabled"


def test_the_token_comes_from_the_settings_not_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_API_TOKEN", TOKEN)  # read once, where the process starts: not by the app
    answer = make_app(api_token="").test_client().get("/v1/audit", headers=AUTH)
    assert answer.status_code == 403 and answer.get_json()["error"] == "writes_disabled"


def test_the_token_is_compared_in_constant_time(client, monkeypatch):
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client.get("/v1/audit", headers={"Authorization": "Bearer guess"})
    client.get("/v1/audit", headers=AUTH)
    assert seen == [(b"guess", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


def test_the_token_is_never_logged_nor_echoed(make_app, engine, caplog, monkeypatch, capsys):
    client = make_app(write_rate_limit="5/minute").test_client()
    caplog.set_level(logging.DEBUG)
    answers = []
    for method, url, body in EDITOR_ENDPOINTS:
        for headers in (AUTH, {"Authorization": "Bearer " + TOKEN[:-2]}, {"Authorization": TOKEN}):
            answers.append(call(client, method, url, body, headers))
    answers.append(client.put("/v1/articles/a0/overrides", headers=AUTH, data="{" * 50 + TOKEN,
                              content_type="application/json"))

    def boom(*args, **kwargs):
        raise RuntimeError("storage failed")

    monkeypatch.setattr(engine.editorial, "audit", boom)
    failed = client.get("/v1/audit", headers=AUTH)
    assert failed.status_code == 500 and failed.get_json()["error"] == "internal_error"
    assert any(a.status_code == 429 for a in answers)  # the rate limit answered too
    answers.append(failed)
    for answer in answers:
        assert TOKEN not in answer.get_data(as_text=True)
        assert all(TOKEN not in value for _, value in answer.headers)
    assert "storage failed" in caplog.text  # the log was captured
    logged = caplog.text + "".join(capsys.readouterr())
    assert TOKEN not in logged and TOKEN[:-2] not in logged


def test_the_token_is_a_secret_setting_never_printed(runner, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_API_TOKEN", TOKEN)
    ran = runner.invoke("settings")
    assert ran.exit_code == 0 and TOKEN not in ran.output + ran.stderr
    shown = next(line for line in ran.output.splitlines() if line.startswith("api_token"))
    assert "(not set)" in shown and "environment" in shown  # the default, and where the token belongs


def test_body_size_limit_on_every_write(client):
    big = {"action": "block", "target": "a2", "why": "x" * 30_000}
    for method, url, _ in WRITES:
        answer = call(client, method, url, big, AUTH)
        assert answer.status_code == 413 and answer.get_json()["error"] == "request_entity_too_large"
    draft = client.post("/v1/related", json={"title": "x", "body": "y" * 30_000})
    assert draft.status_code == 413


@pytest.mark.parametrize("k, status", [(10, 200), (1, 200), (11, 400), (0, 400), (-1, 400), ("1e9", 400),
                                       ("99999999999999999999", 400), ("", 400), ("5.0", 400)])
def test_k_limits(client, k, status):
    answer = client.get(f"/v1/articles/a0/related?k={k}")
    assert answer.status_code == status and (status == 200 or answer.get_json()["error"] == "bad_parameter")


@pytest.mark.parametrize("k", [11, 0, True, 2.5, "3", None, [3]])
def test_k_limits_in_json(client, k):
    answer = client.post("/v1/related", json={"title": "Donau", "body": "Passau", "k": k})
    assert answer.status_code == (200 if k in ("3", None) else 400)


def test_json_depth_is_counted_without_parsing():
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[{{{{\\"[[["}') == 1  # brackets inside strings do not count
    assert json_depth(b"[" * 10_000) == MAX_JSON_DEPTH + 1  # stops counting past the limit
    value, levels = parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH), 0
    while isinstance(value, list):
        value, levels = (value[0] if value else None), levels + 1
    assert levels == MAX_JSON_DEPTH  # exactly at the limit: parsed


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
@pytest.mark.parametrize("method, url", [("post", "/v1/related"), ("put", "/v1/articles/a0/overrides"),
                                         ("put", "/v1/articles/deep"), ("delete", "/v1/articles/a0/overrides"),
                                         ("delete", "/v1/articles/a1")])
def test_deeply_nested_json_is_a_400_with_a_json_message(make_app, method, url, depth):
    client = make_app(max_request_bytes=1_000_000).test_client()
    body = '{"title": "x", "body": "y", "k": ' + "[" * depth + "]" * depth + "}"
    answer = getattr(client, method)(url, data=body, content_type="application/json", headers=AUTH)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "bad_json" and "deeper than" in answer.get_json()["message"]


def test_nesting_up_to_the_limit_is_parsed(client):
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    answer = client.post("/v1/related", data='{"title": "x", "body": "y", "k": ' + nested + "}",
                         content_type="application/json")
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_parameter"  # k, not the JSON


@pytest.mark.parametrize("raw", [b'{"title": "x", "body": "y"', b'{"title": "\xff"}', b"NaN", b"", b"\x00"])
def test_broken_json_bodies_are_400(client, raw):
    answer = client.post("/v1/related", data=raw, content_type="application/json")
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_json"


def test_writes_are_rate_limited_per_client_with_retry_after(make_app):
    client = make_app(write_rate_limit="3/minute").test_client()
    statuses = [client.put("/v1/articles/a0/overrides", json=OVERRIDE, headers=headers).status_code
                for headers in (AUTH, {}, AUTH)]
    assert statuses == [200, 401, 200]  # failed attempts count too: guessing the token is limited
    limited = client.delete("/v1/articles/a0/overrides", json=OVERRIDE, headers=AUTH)  # shared by all writes
    assert limited.status_code == 429 and limited.get_json()["error"] == "rate_limited"
    assert "3/minute" in limited.get_json()["message"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert client.get("/v1/articles/a0/related").status_code == 200  # reads are not limited
    assert client.get("/v1/audit", headers=AUTH).status_code == 200
    other = client.put("/v1/articles/a0/overrides", json=OVERRIDE, headers=AUTH,
                       environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert other.status_code == 200  # per client address


def test_an_empty_rate_limit_disables_it_and_a_typo_fails_at_start_up(make_app):
    client = make_app(write_rate_limit="").test_client()
    assert all(client.put("/v1/articles/a0/overrides", json=OVERRIDE, headers=AUTH).status_code == 200
               for _ in range(70))
    with pytest.raises(ConfigError, match="write_rate_limit"):
        make_app(write_rate_limit="sixty a minute")


def test_cors_allows_only_configured_origins_and_never_writes(make_app, client):
    allowed = client.get("/v1/articles/a0/related", headers={"Origin": "https://news.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    for origin in ("https://evil.example", "https://news.example.evil.example", "null", "http://news.example"):
        answer = client.get("/v1/articles/a0/related", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in answer.headers, origin
    preflight = client.options("/v1/articles/a0/overrides", headers={
        "Origin": "https://news.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert "PUT" not in preflight.headers.get("Access-Control-Allow-Methods", "")
    draft = client.options("/v1/related", headers={"Origin": "https://news.example", "Access-Control-Request-Method": "POST"})
    assert "POST" in draft.headers["Access-Control-Allow-Methods"]
    closed = make_app(cors_origins="").test_client()
    answer = closed.get("/v1/articles/a0/related", headers={"Origin": "https://news.example"})
    assert "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize("field", ["title", "body", "teaser"])
def test_a_lone_surrogate_in_an_article_or_draft_is_refused_not_a_500(client, field):
    fields = {"title": "Donau", "body": "Passau", "lang": "de", "published_at": "2026-03-02T08:00:00+01:00"}
    raw = '{' + ", ".join(f'"{k}": "{v}"' for k, v in {**fields, field: "A\\ud800B"}.items()) + '}'
    answer = client.put("/v1/articles/sur-1", data=raw, content_type="application/json", headers=AUTH)
    assert answer.status_code == 422 and "surrogate" in answer.get_json()["message"]
    draft = client.post("/v1/related", data=raw, content_type="application/json")
    assert draft.status_code == 422 and "surrogate" in draft.get_json()["message"]  # encoders never see it
