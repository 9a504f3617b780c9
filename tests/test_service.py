import pytest

from conftest import CACHE_DIR, record, write_jsonl
from recommender.config import load_settings
from recommender.jobs import build_index
from recommender.service import create_app

BODIES = {
    "flut": "Die Donau tritt über die Ufer. Passau evakuiert die Altstadt, Helfer füllen Sandsäcke am Inn.",
    "wahl": "Bei der Landtagswahl in Bayern verliert die CSU Stimmen, die Freien Wähler legen in München zu.",
}
EXTRA = ["Am Abend gab es eine erste Bilanz.", "Die Opposition verlangt Aufklärung über die Kosten.",
         "Beobachter rechnen mit einer langen Debatte im Herbst."]


@pytest.fixture
def client(tmp_path):
    records = [record(f"{t}-{n}", title=f"{t} {n}", body=f"{body} {EXTRA[n]}",
                      lang="de" if n < 2 else "en") for t, body in BODIES.items() for n in range(3)]
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir=str(CACHE_DIR),
                             duplicate_threshold=0.99)
    build_index([corpus], settings.index_dir, settings)
    return create_app(settings).test_client()


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
    answer = client.post("/v1/related", json={"title": "Hochwasser in Passau", "body": "Die Donau steigt, Sandsäcke am Inn."})
    assert answer.status_code == 200
    assert answer.get_json()["items"][0]["id"].startswith("flut-")


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
    ],
)
def test_errors_are_json(client, method, url, kwargs, status, code):
    answer = getattr(client, method)(url, **kwargs)
    assert answer.status_code == status
    assert answer.is_json and answer.get_json()["error"] == code and answer.get_json()["message"]


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
