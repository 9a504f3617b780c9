"""Issue 9, in process: bounds on every field, digits-only numbers, security headers, the embargo, the state
files (refused when not ours, 503 when a write fails, backed up online), takedown-then-PUT and its audit."""
import sqlite3
import time
from datetime import datetime, timezone

import numpy as np
import pytest
from conftest import record, write_jsonl

from recommender.config import load_settings
from recommender.db import StateFileError, StateUnavailable, backup_state
from recommender.engine import Recommender
from recommender.ingest.corpus import FIELD_LIMITS
from recommender.jobs.index_job import build_index
from recommender.rank.editorial import EditorialStore

TOKEN = "hardening-token-5e1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = "Die Donau tritt in Passau über die Ufer, Helfer füllen Sandsäcke am Inn."
EXTRA = ["Am Abend gab es eine erste Bilanz.", "Die Opposition verlangt Aufklärung über die Kosten.",
         "Beobachter rechnen mit einer langen Debatte im Herbst.", "Die Polizei meldet keine Zwischenfälle.",
         "Die Feuerwehr pumpt Keller leer."]
NOW = time.time()


def iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat()


@pytest.fixture
def app_settings(tmp_path):
    """Five stories a day apart and one scheduled an hour ahead, served with TOKEN (`app`, `client`, `engine`)."""
    records = [record(f"a{i}", title=f"Hochwasser Passau {i}", body=f"{BODY} {EXTRA[i]}",
                      published_at=iso(NOW - 86400 * (i + 1))) for i in range(5)]
    records.append(record("future", title="Hochwasser Passau morgen", body=f"{BODY} Morgen.",
                          published_at=iso(NOW + 3600)))
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="",
                             state_dir=str(tmp_path / "state"), duplicate_threshold=0.99, write_rate_limit="",
                             api_token=TOKEN)
    build_index([corpus], settings.index_dir, settings)
    return settings


def ids(answer):
    assert answer.status_code == 200, answer.get_json()
    return [item["id"] for item in answer.get_json()["items"]]


# --- point 2: bounds ---------------------------------------------------------------------------------------

LONG = "x" * 1_001
OVER_LONG = [
    ("post", "/v1/related", {"title": LONG, "body": "b"}, None),
    ("post", "/v1/related", {"title": "t", "body": "b", "teaser": "x" * 5_001}, None),
    ("post", "/v1/related", {"title": "t", "body": "b", "lang": "x" * 17}, None),
    ("post", "/v1/related", {"title": "t", "body": "b", "filters": {"exclude": ["a1"] * 101}}, None),
    ("post", "/v1/related", {"title": "t", "body": "b", "filters": {"exclude": ["x" * 201]}}, None),
    ("post", "/v1/related", {"title": "t", "body": "b", "filters": {"section": ["x" * 101]}}, None),
    ("get", "/v1/articles/" + "a" * 201 + "/related", None, None),
    ("get", "/v1/articles/a1/related?lang=" + "x" * 17, None, None),
    ("get", "/v1/articles/a1/related?" + "&".join(["exclude=a2"] * 101), None, None),
    ("get", "/v1/articles/a1/related?" + "&".join(f"x{i}=1" for i in range(301)), None, None),
    ("get", "/v1/articles?q=" + "x" * 201, None, AUTH),
    ("put", "/v1/articles/a1/overrides", {"action": "block", "target": "x" * 201}, AUTH),
    ("put", "/v1/articles/a1/overrides", {"action": "block", "target": "a2", "who": "x" * 101}, AUTH),
    ("put", "/v1/articles/a1/overrides", {"action": "block", "target": "a2", "why": "x" * 501}, AUTH),
    ("delete", "/v1/articles/a1", {"why": "x" * 501}, AUTH),
    ("put", "/v1/articles/n1", {**record("n1", title=LONG), "id": None}, AUTH),
    ("put", "/v1/articles/n1", {k: v for k, v in record("n1", section="x" * 101).items() if k != "id"}, AUTH),
]


@pytest.mark.parametrize("method, url, body, headers", OVER_LONG)
def test_an_over_long_field_is_refused_at_once_as_json(client, method, url, body, headers):
    started = time.perf_counter()
    answer = getattr(client, method)(url, json={k: v for k, v in (body or {}).items() if v is not None} or None,
                                     headers=headers or {})
    assert answer.status_code in (413, 422), answer.get_json()
    assert answer.is_json and answer.get_json()["error"] in ("too_long", "invalid_article")
    assert time.perf_counter() - started < 1.0


def test_a_draft_at_every_bound_is_answered_quickly(client):
    draft = {"title": "Hochwasser " * 90, "teaser": "Passau " * 700, "body": ("Donau Inn Passau. " * 60_000)[:FIELD_LIMITS["body"]],
             "filters": {"exclude": ["a1"] * 100, "lang": ["de"] * 100}}
    started = time.perf_counter()
    answer = client.post("/v1/related", json=draft)
    assert answer.status_code == 200 and time.perf_counter() - started < 5.0


@pytest.mark.parametrize("k", ["5_0", "+5", " 5", "5 ", "٥", "0x5", "5.0", "1e1"])
def test_k_takes_digits_only(client, k):
    answer = client.get("/v1/articles/a1/related", query_string={"k": k})
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_parameter"


@pytest.mark.parametrize("value", ["1_0", "+1", "nan", "inf", "1e3", "٣", "99999999"])
def test_max_age_days_and_audit_limit_take_plain_numbers_only(client, value):
    assert client.get("/v1/articles/a1/related", query_string={"max_age_days": value}).status_code == 400
    assert client.get("/v1/audit", query_string={"limit": value}, headers=AUTH).status_code == 400


def test_the_openapi_description_carries_the_bounds(client):
    spec = client.get("/openapi.json").get_json()
    draft = spec["components"]["schemas"]["Draft"]["properties"]
    assert draft["title"]["maxLength"] == 1_000 and draft["body"]["maxLength"] == FIELD_LIMITS["body"]
    assert draft["filters"]["properties"]["exclude"]["maxItems"] == 100
    related = spec["paths"]["/v1/articles/{article_id}/related"]["get"]
    assert related["parameters"][0]["schema"]["maxLength"] == 200 and "422" in related["responses"]


# --- point 6: headers, takedown then PUT, audit -------------------------------------------------------------

def test_every_answer_has_security_headers_and_the_page_a_strict_csp(client):
    for answer in (client.get("/healthz"), client.get("/v1/articles/a1/related"), client.get("/nope"),
                   client.post("/v1/related", data="x"), client.get("/v1/audit"), client.get("/static/editor.js")):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    page = client.get("/editor")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in page.get_data(as_text=True)


def test_a_put_after_a_takedown_is_409_until_restored_on_purpose_and_every_write_is_audited(client):
    article = {k: v for k, v in record("a1", title="Hochwasser Passau 1 neu", body=BODY + " Neu.").items() if k != "id"}
    assert client.delete("/v1/articles/a1", json={"who": "legal", "why": "court"}, headers=AUTH).status_code == 200
    refused = client.put("/v1/articles/a1", json=article, headers=AUTH)
    assert refused.status_code == 409 and refused.get_json()["error"] == "taken_down"
    assert "restore=true" in refused.get_json()["message"]
    assert "a1" not in ids(client.get("/v1/articles/a2/related", query_string={"k": 5}))
    restored = client.put("/v1/articles/a1?restore=true", json={**article, "who": "anna", "why": "cleared"},
                          headers=AUTH)
    assert restored.status_code in (200, 201)
    assert "a1" in ids(client.get("/v1/articles/a2/related", query_string={"k": 5}))
    created = client.put("/v1/articles/n1", json={k: v for k, v in record("n1").items() if k != "id"}, headers=AUTH)
    assert created.status_code == 201
    entries = client.get("/v1/audit", headers=AUTH).get_json()["entries"]
    assert [(e["change"], e["article_id"], e["who"]) for e in entries[:4]] == [
        ("article_created", "n1", "api"), ("article_updated", "a1", "anna"), ("restore", "a1", "anna"),
        ("takedown", "a1", "legal")]


# --- point 4: embargo ---------------------------------------------------------------------------------------

def test_a_scheduled_article_is_hidden_until_its_moment_then_shown_without_restart(engine, client):
    assert "future" not in ids(client.get("/v1/articles/a1/related", query_string={"k": 6}))
    assert "future" not in ids(client.post("/v1/related", json={"title": "Hochwasser Passau", "body": BODY, "k": 6}))
    preview = client.get("/v1/articles/future/related")  # the CMS previews the scheduled story's own list
    assert preview.status_code == 200 and ids(preview)
    answer = client.get("/v1/articles/a1/related")
    assert 0 < answer.cache_control.max_age <= 60  # default cache_max_age, and the release is an hour away
    engine.clock = lambda: NOW + 3600 - 10
    assert client.get("/v1/articles/a1/related").cache_control.max_age <= 10
    engine.clock = lambda: NOW + 3601
    assert "future" in ids(client.get("/v1/articles/a1/related", query_string={"k": 6}))
    assert client.get("/v1/articles/a1/related").cache_control.max_age == 60


def test_a_scheduled_article_received_through_the_api_or_pinned_stays_hidden(engine, client):
    engine.clock = lambda: NOW + 7200  # "future" from the corpus is visible; the new one is not
    later = {k: v for k, v in record("later", title="Hochwasser Passau später", body=BODY + " Später.",
                                     published_at=iso(NOW + 9000)).items() if k != "id"}
    assert client.put("/v1/articles/later", json=later, headers=AUTH).status_code == 201
    pin = {"action": "pin", "target": "later", "position": 1}
    assert client.put("/v1/articles/a1/overrides", json=pin, headers=AUTH).status_code == 200
    assert "later" not in ids(client.get("/v1/articles/a1/related", query_string={"k": 7}))
    assert client.get("/v1/articles/a1/related").cache_control.max_age == 60  # release is 1,800 s away
    engine.clock = lambda: NOW + 9000 - 5
    assert client.get("/v1/articles/a1/related").cache_control.max_age <= 5
    engine.clock = lambda: NOW + 9001
    assert ids(client.get("/v1/articles/a1/related", query_string={"k": 7}))[0] == "later"  # pinned, now public


def test_next_release_costs_a_bisection_per_request():
    from recommender.engine import Recommender as R

    stamps = np.sort(np.random.default_rng(1).integers(0, 2_000_000_000, 1_000_000))
    fake = type("S", (), {"published_at": stamps})()
    engine = object.__new__(R)
    engine._upcoming, engine.clock = None, lambda: 1_000_000_000.0
    engine.snapshot = fake
    engine.next_release(fake)  # the one pass per snapshot
    started = time.perf_counter()
    for _ in range(1_000):
        release = engine.next_release(fake)
    assert release > 1_000_000_000 and (time.perf_counter() - started) / 1_000 < 50e-6


# --- point 5: state files ------------------------------------------------------------------------------------

def _garbage(path):
    path.write_bytes(b"this is not a database at all\n" * 200)


def _wrong_schema(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x TEXT)")


def _damaged(path):
    store = EditorialStore(path)
    for i in range(300):
        store.take_down(f"id{i}", "legal", "x" * 400)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[4096 * 3: 4096 * 3 + 2000] = b"\x07" * 2000  # a page in the middle, overwritten
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("spoil", [lambda p: p.write_bytes(b""), _garbage, _wrong_schema, _damaged],
                         ids=["empty", "garbage", "wrong-schema", "damaged"])
def test_a_state_file_that_is_not_ours_refuses_start_up_with_one_line(app_settings, spoil, runner):
    from pathlib import Path

    path = Path(app_settings.state_dir) / "editorial.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    spoil(path)
    with pytest.raises(StateFileError) as refused:
        Recommender.open(app_settings)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message and "restore" in message and "move it away" in message
    ran = runner.invoke("related", "a1")
    assert ran.exit_code == 1
    assert ran.stderr.count("\n") == 1 and str(path) in ran.stderr and "Traceback" not in ran.stderr


def test_a_write_that_fails_answers_503_keeps_what_was_acknowledged_and_reads_go_on(app_settings, engine, client):
    assert client.delete("/v1/articles/a4", json={"why": "first"}, headers=AUTH).status_code == 200
    db = engine.editorial.db.connection()
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")  # the disk is full
    answers = [client.delete(f"/v1/articles/x{i}", json={"why": "y" * 500}, headers=AUTH) for i in range(40)]
    failed = [a for a in answers if a.status_code != 200]
    assert failed and all(a.status_code == 503 and a.get_json()["error"] == "state_unavailable" for a in failed)
    acknowledged = {f"x{i}" for i, a in enumerate(answers) if a.status_code == 200} | {"a4"}
    assert ids(client.get("/v1/articles/a1/related"))  # reads keep working
    assert client.get("/v1/audit", headers=AUTH).status_code == 200
    live = engine.live.db.connection()
    live.execute(f"PRAGMA max_page_count = {live.execute('PRAGMA page_count').fetchone()[0]}")
    big = {k: v for k, v in record("big", body="Donau " * 20_000).items() if k != "id"}
    assert client.put("/v1/articles/big", json=big, headers=AUTH).status_code == 503
    again = Recommender.open(app_settings)  # a restart: nothing acknowledged is lost
    assert acknowledged <= again.rules().taken_down and "big" not in again.snapshot.row_of


def test_a_failed_commit_raises_state_unavailable_and_the_store_keeps_reading(tmp_path):
    store = EditorialStore(tmp_path / "editorial.sqlite")
    store.take_down("kept", "a", "b")
    store.db.connection().execute("PRAGMA max_page_count = 1")
    with pytest.raises(StateUnavailable):
        for i in range(50):
            store.take_down(f"lost{i}", "a", "x" * 500)
    assert "kept" in store.rules().taken_down and not store.db.connection().in_transaction


def test_backup_state_copies_consistently_while_open(client, app_settings, tmp_path, runner):
    assert client.delete("/v1/articles/a2", headers=AUTH).status_code == 200
    ran = runner.invoke("backup-state", str(tmp_path / "backup"))
    assert ran.exit_code == 0 and "editorial.sqlite" in ran.output
    restored = EditorialStore(tmp_path / "backup" / "editorial.sqlite")  # passes the start-up checks
    assert "a2" in restored.rules().taken_down
    assert [p.name for p in backup_state(app_settings.state_dir, tmp_path / "b2")] == ["editorial.sqlite", "live.sqlite",
                                                                                     "events.sqlite"]


def test_what_every_encoder_reads_is_bounded_whatever_the_article_holds():
    from recommender.embed.signals import RawText
    from recommender.ingest.profiles import PROFILES
    from recommender.ingest.textprep import TEASER_CHARS, TITLE_CHARS, prepare_chunks

    draft = RawText("東" * 1_000, "語" * 1_000_000, "京" * 5_000)
    for profile in PROFILES.values():
        for signal in profile.signals:
            view = signal.view
            bound = TITLE_CHARS * max(view.title_repeat, 1) + TEASER_CHARS + view.head_chars + view.tail_chars + 10
            texts = prepare_chunks(draft, view)
            assert len(texts) <= max(view.chunks, 1) and all(len(t) <= bound for t in texts), signal.name
