"""The editors' write endpoints: token checks, pins, blocks, takedowns, durability."""
from pathlib import Path

import pytest
from conftest import CACHE_DIR, record, write_jsonl

from recommender.config import load_settings
from recommender.jobs.index_job import build_index
from recommender.serve.app import create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOPICS = {
    "flut": "Die Donau tritt in Passau über die Ufer, Helfer füllen Sandsäcke am Inn.",
    "wahl": "Bei der Landtagswahl in Bayern verliert die CSU Stimmen, die Freien Wähler legen zu.",
}
EXTRA = ["Am Abend gab es eine erste Bilanz.", "Die Opposition verlangt Aufklärung über die Kosten.",
         "Beobachter rechnen mit einer langen Debatte im Herbst.", "Die Polizei meldet keine Zwischenfälle."]


@pytest.fixture
def app_settings(tmp_path):
    """Eight stories on two topics, served with TOKEN (the `app` and `client` fixtures serve them)."""
    records = [record(f"{t}-{n}", title=f"{t} {n}", body=f"{body} {EXTRA[n]}") for t, body in TOPICS.items() for n in range(4)]
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir=str(CACHE_DIR),
                             state_dir=str(tmp_path / "state"), duplicate_threshold=0.99, api_token=TOKEN)
    build_index([corpus], settings.index_dir, settings)
    return settings


def related_ids(client, article_id, **params):
    answer = client.get(f"/v1/articles/{article_id}/related", query_string={"k": 7, **params})
    return [item["id"] for item in answer.get_json()["items"]]


def test_writes_need_the_token(make_app, client):
    body = {"action": "block", "target": "flut-2"}
    assert client.put("/v1/articles/flut-0/overrides", json=body).status_code == 401
    assert client.put("/v1/articles/flut-0/overrides", json=body).headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.put("/v1/articles/flut-0/overrides", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.get_json()["error"] == "forbidden"
    disabled = make_app(api_token="").test_client()
    answer = disabled.put("/v1/articles/flut-0/overrides", json=body, headers=AUTH)
    assert answer.status_code == 403 and answer.get_json()["error"] == "writes_disabled"
    assert client.get("/v1/audit").status_code == 401


def test_pin_places_a_story_and_unpin_restores(client):
    before = related_ids(client, "flut-0")
    answer = client.put("/v1/articles/flut-0/overrides", headers=AUTH,
                        json={"action": "pin", "target": "wahl-3", "position": 1, "who": "anna", "why": "Hintergrund"})
    assert answer.status_code == 200
    assert answer.get_json()["overrides"][0]["target_id"] == "wahl-3"
    after = related_ids(client, "flut-0")
    assert after[0] == "wahl-3" and after.count("wahl-3") == 1 and len(after) == len(before)
    assert related_ids(client, "flut-1")[0] != "wahl-3"  # only this article's list
    assert client.delete("/v1/articles/flut-0/overrides", headers=AUTH,
                         json={"action": "pin", "target": "wahl-3"}).status_code == 200
    assert related_ids(client, "flut-0") == before


def test_block_here_and_block_everywhere(client):
    client.put("/v1/articles/flut-0/overrides", headers=AUTH, json={"action": "block", "target": "flut-1"})
    assert "flut-1" not in related_ids(client, "flut-0") and "flut-1" in related_ids(client, "flut-2")
    client.put("/v1/articles/flut-0/overrides", headers=AUTH, json={"action": "block_everywhere", "target": "flut-3"})
    for source in ("flut-0", "flut-2", "wahl-0"):
        assert "flut-3" not in related_ids(client, source)
    draft = client.post("/v1/related", json={"title": "Donau", "body": "Passau Sandsäcke Inn Ufer", "k": 7}).get_json()
    assert "flut-3" not in [i["id"] for i in draft["items"]]


def test_takedown_removes_an_article_everywhere_and_survives_a_restart(app_settings, client):
    answer = client.delete("/v1/articles/wahl-1", headers=AUTH, json={"who": "legal", "why": "court order"})
    assert answer.status_code == 200 and answer.get_json() == {"article_id": "wahl-1", "taken_down": True, "in_index": True}
    assert all("wahl-1" not in related_ids(client, a) for a in ("wahl-0", "wahl-2", "flut-0"))
    assert client.get("/v1/articles/wahl-1/related").status_code == 404
    restarted = create_app(app_settings).test_client()  # a new process: its own engine over the same state
    assert "wahl-1" not in related_ids(restarted, "wahl-0")
    entries = restarted.get("/v1/audit", headers=AUTH).get_json()["entries"]
    assert entries[0]["change"] == "takedown" and entries[0]["who"] == "legal" and entries[0]["why"] == "court order"


def test_overrides_survive_a_reindex(app_settings, client):
    client.put("/v1/articles/flut-0/overrides", headers=AUTH, json={"action": "pin", "target": "wahl-2", "position": 2})
    corpus = Path(app_settings.index_dir).parent / "c.jsonl"
    build_index([corpus], app_settings.index_dir, app_settings)
    fresh = create_app(app_settings).test_client()
    assert related_ids(fresh, "flut-0")[1] == "wahl-2"


def test_a_change_in_another_worker_is_seen_at_once(client, app_settings):
    first = client
    second = create_app(app_settings).test_client()  # another process's app (and engine) over the same store
    assert "flut-1" in related_ids(second, "flut-0")
    first.put("/v1/articles/flut-0/overrides", headers=AUTH, json={"action": "block", "target": "flut-1"})
    assert "flut-1" not in related_ids(second, "flut-0")


@pytest.mark.parametrize(
    "method, url, body, status, code",
    [
        ("put", "/v1/articles/nope/overrides", {"action": "block", "target": "flut-1"}, 404, "unknown_article"),
        ("put", "/v1/articles/flut-0/overrides", {"action": "block", "target": "nope"}, 422, "unknown_article"),
        ("put", "/v1/articles/flut-0/overrides", {"action": "promote", "target": "flut-1"}, 422, "invalid_override"),
        ("put", "/v1/articles/flut-0/overrides", {"action": "pin", "target": "flut-1"}, 422, "invalid_override"),
        ("put", "/v1/articles/flut-0/overrides", {"action": "pin", "target": "flut-1", "position": 0}, 422,
         "invalid_override"),
        ("put", "/v1/articles/flut-0/overrides", {"action": "block", "target": "flut-0"}, 422, "invalid_override"),
        ("put", "/v1/articles/flut-0/overrides", {"action": "block", "target": "flut-1", "who": 5}, 422,
         "invalid_override"),
        ("delete", "/v1/articles/flut-0/overrides", {"action": "pin", "target": "flut-1"}, 404, "unknown_override"),
    ],
)
def test_bad_overrides_are_refused(client, method, url, body, status, code):
    answer = getattr(client, method)(url, json=body, headers=AUTH)
    assert answer.status_code == status and answer.get_json()["error"] == code


def test_overrides_list_and_not_json(client):
    client.put("/v1/articles/flut-0/overrides", headers=AUTH, json={"action": "block", "target": "flut-2", "why": "alt"})
    listing = client.get("/v1/articles/flut-0/overrides", headers=AUTH).get_json()
    assert [(o["action"], o["target_id"], o["why"]) for o in listing["overrides"]] == [("block", "flut-2", "alt")]
    assert listing["audit"][0]["change"] == "block"
    answer = client.put("/v1/articles/flut-0/overrides", headers=AUTH, data="action=block")
    assert answer.status_code == 415


def test_search_and_explain_for_the_editors_page(client):
    assert client.get("/v1/articles?q=flut").status_code == 401
    found = client.get("/v1/articles?q=WAHL 2", headers=AUTH).get_json()["articles"]
    assert [a["id"] for a in found] == ["wahl-2"]
    assert client.get("/v1/articles?q=flut-3", headers=AUTH).get_json()["articles"][0]["id"] == "flut-3"
    assert client.get("/v1/articles?q=", headers=AUTH).status_code == 400
    client.put("/v1/articles/flut-0/overrides", headers=AUTH, json={"action": "pin", "target": "wahl-3", "position": 1})
    client.put("/v1/articles/flut-0/overrides", headers=AUTH, json={"action": "block", "target": "flut-2"})
    data = client.get("/v1/articles/flut-0/explain?k=4", headers=AUTH).get_json()
    assert data["article"]["id"] == "flut-0" and len(data["items"]) == 4
    first, second = data["items"][0], data["items"][1]
    assert first["id"] == "wahl-3" and first["pinned"] and first["position"] == 1
    assert second["id"].startswith("flut-") and "passau" in second["shared_terms"] and len(second["shared_terms"]) <= 6
    assert "die" not in second["shared_terms"]  # in every article: not a reason
    assert set(second["signals"]) >= {"tfidf"} and second["signals"]["tfidf"]["weight"] == 1.0
    assert second["age_days"] >= 0 and 0 < second["freshness"] <= 1
    assert data["removed"]["exclude"] == 1  # the block
    assert [o["action"] for o in data["overrides"]] == ["block", "pin"]


def test_editor_page_is_html_and_never_renders_titles_itself(client):
    page = client.get("/editor")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "<style>" not in html  # the CSP allows only the app's own files
    script = client.get("/static/editor.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    code = script.get_data(as_text=True)
    assert "textContent" in code and "innerHTML" not in code
