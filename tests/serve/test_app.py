import os
import subprocess
import sys

import pytest
from conftest import CACHE_DIR, REPO, record, write_jsonl

from recommender.config import load_settings
from recommender.jobs.index_job import build_index
from recommender.serve.app import create_app
from recommender.serve.current import ENGINE

BODIES = {
    "flut": "Die Donau tritt über die Ufer. Passau evakuiert die Altstadt, Helfer füllen Sandsäcke am Inn.",
    "wahl": "Bei der Landtagswahl in Bayern verliert die CSU Stimmen, die Freien Wähler legen in München zu.",
}
EXTRA = ["Am Abend gab es eine erste Bilanz.", "Die Opposition verlangt Aufklärung über die Kosten.",
         "Beobachter rechnen mit einer langen Debatte im Herbst."]


@pytest.fixture
def app_settings(tmp_path):
    """Six stories on two topics, in German and English (the `app` and `client` fixtures serve them)."""
    records = [record(f"{t}-{n}", title=f"{t} {n}", body=f"{body} {EXTRA[n]}",
                      lang="de" if n < 2 else "en") for t, body in BODIES.items() for n in range(3)]
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir=str(CACHE_DIR),
                             duplicate_threshold=0.99, max_request_bytes=4000, cors_origins="https://news.example",
                             state_dir=str(tmp_path / "state"))
    build_index([corpus], settings.index_dir, settings)
    return settings


def test_related_by_id(client):
    answer = client.get("/v1/articles/flut-0/related?k=2")
    assert answer.status_code == 200
    data = answer.get_json()
    assert data["article_id"] == "flut-0" and len(data["items"]) == 2
    assert all(item["id"].startswith("flut-") for item in data["items"])
    assert "flut-0" not in [item["id"] for item in data["items"]]


def test_filters_in_the_query_string(client):
    data = client.get("/v1/articles/flut-0/related?lang=en&k=5").get_json()
    assert {item["lang"] for item in data["items"]} == {"en"}


def test_related_by_text(client):
    draft = {"title": "Hochwasser in Passau", "body": "Die Donau steigt, Sandsäcke am Inn."}
    answer = client.post("/v1/related", json=draft)
    assert answer.status_code == 200
    assert answer.get_json()["items"][0]["id"].startswith("flut-") and answer.get_json()["article_id"] is None
    english = client.post("/v1/related", json={**draft, "k": 2, "filters": {"lang": ["en"]}}).get_json()
    assert len(english["items"]) == 2 and {i["lang"] for i in english["items"]} == {"en"}
    # The corpus is dated 2026-03-01: a draft dated a week later finds it within 10 days, today's would not.
    dated = {**draft, "lang": "de", "published_at": "2026-03-08T12:00:00+01:00", "filters": {"max_age_days": 10}}
    assert client.post("/v1/related", json=dated).get_json()["items"]
    assert client.post("/v1/related", json={**dated, "published_at": None} | {"filters": {"max_age_days": 10}}
                       ).status_code == 422


@pytest.mark.parametrize(
    "method, url, kwargs, status, code",
    [
        ("get", "/v1/articles/nope/related", {}, 404, "unknown_article"),
        ("get", "/v1/articles/flut-0/related?k=0", {}, 400, "bad_parameter"),
        ("get", "/v1/articles/flut-0/related?k=abc", {}, 400, "bad_parameter"),
        ("get", "/v1/articles/flut-0/related?max_age_days=x", {}, 400, "bad_parameter"),
        ("get", "/nowhere", {}, 404, "not_found"),
        ("delete", "/v1/articles/flut-0/related", {}, 405, "method_not_allowed"),
        ("post", "/v1/related", {"data": "title=x"}, 415, "unsupported_media_type"),
        ("post", "/v1/related", {"json": {"title": 3, "body": "x"}}, 422, "invalid_article"),
        ("post", "/v1/related", {"json": [1]}, 400, "bad_json"),
        ("post", "/v1/related", {"json": {"title": "x", "body": "y", "k": 99}}, 400, "bad_parameter"),
        ("post", "/v1/related", {"json": {"title": "x", "body": "y", "filters": {"colour": 1}}}, 400, "bad_parameter"),
        ("post", "/v1/related", {"json": {"title": "x", "body": "y", "filters": {"max_age_days": -1}}}, 400,
         "bad_parameter"),
        ("post", "/v1/related", {"json": {"title": "x", "body": "y" * 5000}}, 413, "request_entity_too_large"),
        ("post", "/v1/related", {"json": {"title": "x", "body": "y", "lang": "deutsch"}}, 422, "invalid_article"),
        ("post", "/v1/related", {"json": {"title": "x", "body": "y", "published_at": "2026-01-01"}}, 422,
         "invalid_article"),
    ],
)
def test_errors_are_json(client, method, url, kwargs, status, code):
    answer = getattr(client, method)(url, **kwargs)
    assert answer.status_code == status
    assert answer.is_json and answer.get_json()["error"] == code and answer.get_json()["message"]


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_etag_cache_control_and_304(client):
    first = client.get("/v1/articles/flut-0/related")
    assert first.headers["ETag"] and "max-age=60" in first.headers["Cache-Control"]
    again = client.get("/v1/articles/flut-0/related", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    other = client.get("/v1/articles/flut-0/related?k=1", headers={"If-None-Match": first.headers["ETag"]})
    assert other.status_code == 200


def test_cors_only_for_configured_origins(client):
    allowed = client.get("/v1/articles/flut-0/related", headers={"Origin": "https://news.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://news.example"
    other = client.get("/v1/articles/flut-0/related", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_readyz_and_metrics(client):
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["articles"] == 6 and ready["index_version"]
    client.get("/v1/articles/flut-0/related")
    client.get("/v1/articles/nope/related")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'recommender_requests_total{endpoint="/v1/articles/<article_id>/related",method="GET",status="200"} 1.0' in text
    assert 'status="404"' in text and "recommender_request_seconds_bucket" in text
    assert "recommender_index_articles 6.0" in text


def test_openapi_describes_every_route(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    app = client.application
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in spec["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], (path, method)
    routes = {r.rule.replace("<", "{").replace(">", "}") for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert set(spec["paths"]) == routes  # nothing described that does not exist


def test_a_newly_published_snapshot_is_served_without_restart_and_without_failed_requests(tmp_path):
    import threading

    corpus = write_jsonl(tmp_path / "c.jsonl", [record(f"a{i}", body=f"{BODIES['flut']} {EXTRA[i % 3]} {i}")
                                                for i in range(6)])
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="",
                             state_dir=str(tmp_path / "state"), reload_interval=0.0)
    build_index([corpus], settings.index_dir, settings)
    app = create_app(settings)
    client = app.test_client()
    first = client.get("/v1/articles/a0/related").get_json()["index_version"]
    failures, versions, stop = [], set(), threading.Event()

    def reader():
        while not stop.is_set():
            answer = client.get("/v1/articles/a0/related?k=3")
            if answer.status_code != 200:
                failures.append(answer.status_code)
            else:
                versions.add(answer.get_json()["index_version"])

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    write_jsonl(corpus, [record(f"a{i}", body=f"{BODIES['wahl']} {EXTRA[i % 3]} {i}") for i in range(8)])
    published = {first} | {build_index([corpus], settings.index_dir, settings).snapshot.name for _ in range(2)}
    stop.set()
    for thread in threads:
        thread.join()
    assert app.extensions[ENGINE].wait_for_swap(timeout=60)  # opened and verified in the background
    latest = client.get("/v1/articles/a7/related").get_json()
    assert failures == [] and latest["index_version"] != first
    assert versions <= published  # every answer came from one whole, published snapshot
    text = client.get("/metrics").get_data(as_text=True)
    assert f'version="{latest["index_version"]}"' in text and "recommender_index_articles 8.0" in text


def test_a_corrupt_new_snapshot_is_refused_and_the_old_one_keeps_serving(tmp_path):
    from recommender.index.snapshot import resolve_snapshot

    corpus = write_jsonl(tmp_path / "c.jsonl", [record(f"a{i}", body=f"{BODIES['flut']} {EXTRA[i % 3]}") for i in range(3)])
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="",
                             state_dir=str(tmp_path / "state"), reload_interval=0.0)
    build_index([corpus], settings.index_dir, settings)
    app = create_app(settings)
    client = app.test_client()
    first = client.get("/v1/articles/a0/related").get_json()["index_version"]
    build_index([corpus], settings.index_dir, settings)
    broken = resolve_snapshot(settings.index_dir) / "sparse_tfidf_data.npy"
    data = bytearray(broken.read_bytes())
    data[-1] ^= 0xFF
    broken.write_bytes(bytes(data))
    assert not app.extensions[ENGINE].wait_for_swap(timeout=60)  # refused
    answer = client.get("/v1/articles/a0/related")
    assert answer.status_code == 200 and answer.get_json()["index_version"] == first


def test_importing_serve_leaves_prometheus_client_unloaded_until_create_app_is_asked_for():
    # `recommender serve` must point prometheus_client at its multiprocess folder before the metrics load.
    code = ("import sys, recommender.serve as serve; assert 'prometheus_client' not in sys.modules; "
            "serve.create_app; assert 'prometheus_client' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
