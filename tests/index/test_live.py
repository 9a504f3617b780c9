import numpy as np
import pytest
from conftest import CACHE_DIR, record, write_jsonl
from scipy import sparse

from recommender.config import load_settings
from recommender.index.live import Stacked
from recommender.jobs.index_job import build_index
from recommender.serve.app import create_app

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODIES = {
    "flut-0": "Die Donau tritt in Passau über die Ufer, Helfer füllen Sandsäcke am Inn. Am Abend gab es eine Bilanz.",
    "flut-1": "Passau: Das Donau-Hochwasser erreicht die Altstadt, Sandsäcke am Inn. Schulen bleiben geschlossen.",
    "wahl-0": "Bei der Landtagswahl in Bayern verliert die CSU Stimmen, die Freien Wähler legen in München zu.",
    "wahl-1": "Nach der Landtagswahl in Bayern beginnen in München Sondierungen zwischen CSU und Freien Wählern.",
    "zins-0": "Die Europäische Zentralbank senkt in Frankfurt den Leitzins, Sparer sind enttäuscht.",
}


def test_stacked_rows_and_products_match_a_real_concatenation():
    rng = np.random.default_rng(0)
    base, extra = rng.normal(size=(5, 3)), rng.normal(size=(2, 3))
    whole = np.vstack([base, extra])
    stacked = Stacked(base, extra)
    vector = rng.normal(size=3)
    np.testing.assert_allclose(stacked @ vector, whole @ vector)
    rows = np.array([6, 0, 5, 2])
    np.testing.assert_allclose(stacked[rows], whole[rows])
    np.testing.assert_allclose(stacked[6], whole[6])
    sparse_stacked = Stacked(sparse.csr_matrix(base), sparse.csr_matrix(extra))
    np.testing.assert_allclose(sparse_stacked[rows].toarray(), whole[rows])
    np.testing.assert_allclose(sparse_stacked @ vector, whole @ vector)
    assert sparse_stacked.shape == (7, 3)
    # A float16 snapshot (as stored) keeps its type: received rows are read as the stored ones would be.
    half = Stacked(base.astype(np.float16), extra.astype(np.float32))
    assert half[rows].dtype == np.float16 and half[np.array([1, 3])].dtype == np.float16
    np.testing.assert_allclose(half[rows], whole[rows].astype(np.float16))
    np.testing.assert_allclose(half[np.array([6, 5])], whole[[6, 5]].astype(np.float16))


def indexed(tmp_path, profile):
    corpus = write_jsonl(tmp_path / "c.jsonl", [record(i, title=i, body=b) for i, b in BODIES.items()])
    settings = load_settings(environ={}, profile=profile, index_dir=str(tmp_path / "index"),
                             cache_dir=str(CACHE_DIR), state_dir=str(tmp_path / "state"))
    build_index([corpus], settings.index_dir, settings)
    return settings


@pytest.fixture(params=["tfidf", "use"])
def settings(request, tmp_path):
    return indexed(tmp_path, request.param)


def ids(client, article_id, k=5):
    answer = client.get(f"/v1/articles/{article_id}/related?k={k}")
    assert answer.status_code == 200, answer.get_json()
    return [item["id"] for item in answer.get_json()["items"]]


def test_a_new_article_is_served_at_once_and_after_a_restart(settings):
    client = create_app(settings.replace(api_token=TOKEN)).test_client()
    new = record("flut-live", title="Hochwasser in Passau: Pegel der Donau sinkt",
                 body="Die Donau in Passau sinkt, am Inn werden Sandsäcke abgebaut, die Altstadt wird geputzt.",
                 published_at="2026-03-02T08:00:00+01:00")
    del new["id"]
    answer = client.put("/v1/articles/flut-live", json=new, headers=AUTH)
    assert answer.status_code == 201 and answer.get_json()["created"] is True
    assert "+live" in answer.get_json()["index_version"]
    assert "flut-live" in ids(client, "flut-0", k=2)
    assert set(ids(client, "flut-live", k=2)) == {"flut-0", "flut-1"}
    other_worker = create_app(settings.replace(api_token=TOKEN)).test_client()
    assert "flut-live" in ids(other_worker, "flut-1", k=2)
    teaser = other_worker.get("/v1/articles/flut-1/related?k=5").get_json()["items"]
    assert all(item["teaser"] for item in teaser)


def test_an_updated_article_replaces_its_indexed_version(settings):
    client = create_app(settings.replace(api_token=TOKEN)).test_client()
    assert "zins-0" not in ids(client, "wahl-0", k=1)
    changed = record("zins-0", title="Landtagswahl in Bayern: Analyse", lang="de",
                     body="Die Landtagswahl in Bayern: CSU und Freie Wähler in München, die Sondierungen beginnen.")
    answer = client.put("/v1/articles/zins-0", json=changed, headers=AUTH)
    assert answer.status_code == 200 and answer.get_json()["created"] is False
    listed = ids(client, "wahl-0", k=5)
    assert listed.count("zins-0") == 1 and listed[0] in {"zins-0", "wahl-1"}
    again = client.put("/v1/articles/zins-0", json=changed, headers=AUTH)  # same text: still one article
    assert again.status_code == 200 and ids(client, "wahl-0", k=5).count("zins-0") == 1


def test_live_articles_can_be_taken_down(settings):
    client = create_app(settings.replace(api_token=TOKEN)).test_client()
    client.put("/v1/articles/flut-live", headers=AUTH,
               json=record("flut-live", title="Donau", body="Passau Donau Inn Sandsäcke Altstadt Hochwasser."))
    client.delete("/v1/articles/flut-live", headers=AUTH)
    assert "flut-live" not in ids(client, "flut-0")


@pytest.mark.parametrize(
    "body, status",
    [({"title": "x", "body": "y"}, 422),  # no published_at, no lang
     ({**record("x"), "published_at": "2026-01-01"}, 422),
     ({**record("other-id")}, 422)],
)
def test_invalid_articles_are_refused(settings, body, status):
    client = create_app(settings.replace(api_token=TOKEN)).test_client()
    answer = client.put("/v1/articles/x", json=body, headers=AUTH)
    assert answer.status_code == status and answer.get_json()["error"] == "invalid_article"
    assert client.put("/v1/articles/x", json=record("x")).status_code == 401


def test_live_articles_from_another_profile_are_skipped_not_fatal(tmp_path):
    from recommender.engine import Recommender
    from recommender.ingest.corpus import article_from_json

    engine = Recommender.open(indexed(tmp_path, "use"))
    engine.live.put(article_from_json(record("odd", body="Donau Passau.")), {"some-other-signal": np.ones(3)})
    engine.refresh()
    assert "odd" not in engine.snapshot.row_of and engine.related("flut-0").ids


def test_a_stored_article_that_later_rules_would_refuse_still_loads(tmp_path):
    """Rules made stricter after an article was received (languages, dates, bounds) must not lose it."""
    from datetime import datetime, timezone

    from recommender.index.live import LiveStore
    from recommender.ingest.corpus import Article

    old = Article(id="old-1", title="T" * 3_000, body="Text.", lang="xx",
                  published_at=datetime(1, 1, 1, tzinfo=timezone.utc))
    store = LiveStore(tmp_path / "live.sqlite")
    store.put(old, {"tfidf": np.zeros(3, dtype=np.float32)})
    store.close()
    (loaded, vectors), = LiveStore(tmp_path / "live.sqlite").articles()[1]
    assert loaded == old and set(vectors) == {"tfidf"}


def test_a_live_store_of_the_previous_version_is_upgraded_in_place(tmp_path):
    """A live.sqlite written before the `changed` column existed keeps its articles and gains the column."""
    import sqlite3

    from recommender.index.live import UPGRADES, LiveStore

    path = tmp_path / "live.sqlite"
    with sqlite3.connect(path) as db:  # the schema as version 1 shipped it, holding one article
        db.executescript("""
            CREATE TABLE live_articles (id TEXT PRIMARY KEY, record TEXT NOT NULL, vectors BLOB NOT NULL,
                                        updated_at TEXT NOT NULL);
            CREATE TABLE state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT INTO state VALUES ('version', 1);
        """)
    old = LiveStore(tmp_path / "other.sqlite")  # the old row's bytes, written the way version 1 wrote them
    from recommender.ingest.corpus import article_from_json

    old.put(article_from_json(record("kept")), {"use": np.ones(4, dtype=np.float32)})
    row = old.db.one("SELECT id, record, vectors, updated_at FROM live_articles")
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO live_articles VALUES (?, ?, ?, ?)", row)
    store = LiveStore(path)
    assert store.db.one("PRAGMA user_version")[0] == len(UPGRADES)
    assert set(store.read().changed) == {"kept"}
    store.put(article_from_json(record("new")), {"use": np.ones(4, dtype=np.float32)})
    assert set(store.read(1).changed) == {"new"} and store.read(1).ids == {"kept", "new"}
    assert LiveStore(path).version() == 2  # opened again: nothing applied twice


def test_a_put_lays_again_only_the_article_it_changed(settings):
    """Each worker lays every live article over its snapshot after each PUT; the lexical rows and metadata of
    the others are kept, not computed again (500 received articles cost 135 ms per PUT that way)."""
    from recommender.engine import Recommender
    from recommender.ingest.corpus import article_from_json

    engine = Recommender.open(settings)
    computed = []
    lexical_rows = engine.encoder.lexical_rows
    engine.encoder.lexical_rows = lambda articles, models: (computed.append([a.id for a in articles]),
                                                            lexical_rows(articles, models))[1]
    engine._live_rows = None  # made at start with the encoder's own method
    for i in range(3):
        engine.put_article(article_from_json(record(f"live-{i}", body=f"Passau Donau Hochwasser {i}.")))
    engine.put_article(article_from_json(record("live-1", body="Passau Donau Hochwasser, berichtigt.")))
    assert computed == [["live-0"], ["live-1"], ["live-2"], ["live-1"]]
    other = Recommender.open(settings)  # another worker: reads them all once, then only what changed
    assert {f"live-{i}" for i in range(3)} <= set(other.snapshot.row_of)
    engine.put_article(article_from_json(record("live-3", body="Passau Donau.")))
    other.refresh()
    assert "live-3" in other.snapshot.row_of and other._live_read[0] == engine.live.version()
