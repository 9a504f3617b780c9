"""The store contract, run against both backends: SQLite files (state_dir) and PostgreSQL (state_url).

Editors' decisions and their audit, live articles with their vectors, reader event counts and the rid secret,
the version counters other workers and replicas compare, and a failed write that changes nothing. Then what
only PostgreSQL has: numbered migrations, a server restart under an open store, refusals at start-up.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import make_article

from recommender.db import StateUnavailable
from recommender.feedback.events import _UPSERT, Click, EventStore, Impression
from recommender.index.live import LiveStore
from recommender.rank.editorial import EditorialStore
from recommender.state import is_database_url, store_location, versions


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path):
    """where(name): the location of store `name` under each backend (a file per store, or one database)."""
    if request.param == "sqlite":
        return lambda name: tmp_path / f"{name}.sqlite"
    url = request.getfixturevalue("pg_url")
    return lambda name: url


def test_decisions_become_rules_and_every_change_bumps_the_version(where):
    store = EditorialStore(where("editorial"))
    assert store.version() == 0 and store.rules() == store.rules().__class__()
    store.set_override("a", "pin", "x", who="anna", why="exclusive", position=2)
    store.set_override("a", "block", "y", who="anna", why="wrong story")
    store.set_override("b", "block_everywhere", "z", who="ben", why="legal")
    store.take_down("t", who="legal", why="court order")
    store.set_override("a", "pin", "y", who="anna", why="after all", position=1)  # the newer decision wins
    rules = store.rules()
    assert rules.version == store.version() == 5
    assert rules.pins == {"a": ((1, "y"), (2, "x"))} and rules.blocks == {}
    assert rules.hidden_for("a") == {"z", "t"} and rules.taken_down == {"t"}
    assert [(o["action"], o["target_id"], o["position"]) for o in store.overrides_for("a")] == [
        ("block_everywhere", "z", None), ("pin", "y", 1), ("pin", "x", 2)]


def test_removals_and_the_audit_trail(where):
    store = EditorialStore(where("editorial"))
    store.set_override("a", "pin", "x", who="anna", why="top story", position=1)
    assert store.remove_override("a", "pin", "x", who="ben", why="outdated")
    version = store.version()
    assert not store.remove_override("a", "pin", "x", who="ben", why="again")
    assert store.version() == version  # nothing removed: nothing changed, nothing audited
    store.take_down("a", who="legal", why="order")
    store.article_written("a", created=False, who="cms", why="fixed", restore=True)
    assert store.rules().taken_down == frozenset()
    entries = store.audit(article_id="a")
    assert [(e["who"], e["change"], e["why"]) for e in entries] == [
        ("cms", "article_updated", "fixed"), ("cms", "restore", "fixed"), ("legal", "takedown", "order"),
        ("ben", "unpin", "outdated"), ("anna", "pin", "top story")]
    assert all(e["at"] and isinstance(e["id"], int) for e in entries) and len(store.audit(limit=2)) == 2


def test_another_process_sees_every_change_through_the_version(where):
    mine, theirs = EditorialStore(where("editorial")), EditorialStore(where("editorial"))
    seen = theirs.version()
    mine.take_down("t", who="legal", why="")
    assert theirs.version() == seen + 1 and "t" in theirs.rules().taken_down
    mine.close()
    assert "t" in EditorialStore(where("editorial")).rules().taken_down  # and after a restart



def test_the_counters_of_several_stores_are_read_together(where):
    editorial, live = EditorialStore(where("editorial")), LiveStore(where("live"))
    editorial.take_down("t", who="legal", why="")
    editorial.take_down("u", who="legal", why="")
    live.put(make_article("n1", "Neu", "Ein Text."), {"e5": np.ones(4, dtype=np.float32)})
    assert versions([editorial.db, live.db]) == [2, 1] == [editorial.version(), live.version()]
    assert versions([live.db, editorial.db, live.db]) == [1, 2, 1] and versions([]) == []

def test_two_editors_at_once_lose_nothing(where):
    EditorialStore(where("editorial"))

    def editor(name: str) -> None:
        own = EditorialStore(where("editorial"))  # each editor in a connection of its own, as in two workers
        for i in range(20):
            own.set_override("a", "block", f"{name}-{i}", who=name, why="")
            own.set_override("a", "pin", f"{name}-pin-{i}", who=name, why="", position=1 + i % 5)

    threads = [threading.Thread(target=editor, args=(name,)) for name in ("anna", "ben", "cem")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = EditorialStore(where("editorial"))
    rules = store.rules()
    assert len(rules.blocks["a"]) == 60 and len(rules.pins["a"]) == 60
    assert rules.version == 120 and len(store.audit(limit=1000)) == 120


def test_a_failed_write_changes_nothing_and_the_store_goes_on(where):
    store = EditorialStore(where("editorial"))
    store.take_down("kept", who="legal", why="")
    version, audit = store.version(), store.audit()
    bad = ("INSERT INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?)", ("a", "promote", "x", None, "w", "y", "now"))
    with pytest.raises(StateUnavailable):  # the CHECK on action refuses the second statement
        store._change([("INSERT INTO takedowns VALUES ('lost', 'w', 'y', 'now')", ()), bad], ("w", "x", "a", None,
                                                                                              None, "y"))
    with pytest.raises(ZeroDivisionError):  # not a database error: rolled back and raised as it is
        store.db.write(lambda db: (db.execute("DELETE FROM takedowns"), 1 / 0))
    assert store.version() == version and store.audit() == audit
    assert store.rules().taken_down == {"kept"}
    store.take_down("after", who="legal", why="")
    assert store.rules().taken_down == {"kept", "after"}


def test_live_articles_keep_their_vectors(where):
    store = LiveStore(where("live"))
    rng = np.random.default_rng(3)
    vectors = {"e5": rng.normal(size=384).astype(np.float32), "minilm": rng.normal(size=8).astype(np.float32)}
    article = make_article("n1", "Hochwasser in Passau", "Die Donau steigt. Helfer füllen Sandsäcke.")
    assert store.version() == 0 and store.articles() == (0, [])
    assert store.put(article, vectors) is True
    assert store.put(make_article("n1", "Hochwasser in Passau (neu)", "Die Donau fällt."), vectors) is False
    store.put(make_article("m0", "Wahl", "Die Wahl."), {"e5": vectors["e5"] * 2})
    version, stored = LiveStore(where("live")).articles()
    assert version == 3 and [a.id for a, _ in stored] == ["m0", "n1"]
    assert stored[1][0].title == "Hochwasser in Passau (neu)" and stored[1][0].published_at == article.published_at
    assert set(stored[1][1]) == {"e5", "minilm"} and np.array_equal(stored[1][1]["minilm"], vectors["minilm"])
    assert stored[0][1]["e5"].dtype == np.float32 and np.allclose(stored[0][1]["e5"], vectors["e5"] * 2)


def test_a_live_read_returns_only_what_changed_since_the_counter_given(where):
    """What each worker reads after a PUT: the ids, and only the articles written after the counter it saw."""
    store, vectors = LiveStore(where("live")), {"use": np.ones(4, dtype=np.float32)}
    for article_id in ("a", "b", "c"):
        store.put(make_article(article_id, f"Titel {article_id}", "Text."), vectors)
    first = store.read()
    assert first.version == 3 and set(first.changed) == {"a", "b", "c"} == set(first.ids)
    store.put(make_article("b", "Titel b, berichtigt", "Text."), vectors)
    second = store.read(first.version)
    assert second.version == 4 and set(second.changed) == {"b"} and second.ids == first.ids
    assert second.changed["b"][0].title == "Titel b, berichtigt" and second.changed["b"][1]["use"].tolist() == [1] * 4
    assert store.read(second.version).changed == {}
    store.db.write(lambda db: db.execute("DELETE FROM live_articles WHERE id = ?", ("c",)))
    assert store.read(second.version).ids == {"a", "b"}


def test_event_counts_and_the_shared_secret(where):
    store = EventStore(where("events"))
    secret = store.secret()
    assert len(secret) == 32 and EventStore(where("events")).secret() == secret
    batch = [Impression("sidebar", "", "default", 3), Impression("sidebar", "", "default", 3),
             Click("sidebar", "b", "default", 2)]
    assert store.record(batch, day="2026-12-01") == 3 and store.record(batch, day="2026-12-02") == 3
    assert store.record(batch[:1], day="2026-12-02") == 1 and store.record([]) == 0
    counts = EventStore(where("events")).counts("2026-12-02")
    assert [(c.day, c.arm, c.kind, c.position, c.n) for c in counts] == [
        ("2026-12-02", "", "impression", 3, 3), ("2026-12-02", "b", "click", 2, 1)]
    bad = ("2026-12-03", "sidebar", "", "default", "scroll", 1, 1)  # an unknown kind: the CHECK refuses it
    with pytest.raises(StateUnavailable):
        store.db.write(lambda db: db.executemany(_UPSERT, [("2026-12-03", "sidebar", "", "default", "click", 1, 1),
                                                            bad]))
    assert store.counts("2026-12-03") == []


def test_where_the_settings_put_each_store(tmp_path):
    assert store_location(str(tmp_path), "", "live.sqlite") == tmp_path / "live.sqlite"
    assert store_location(str(tmp_path), "postgresql://db/x", "live.sqlite") == "postgresql://db/x"
    assert store_location("", "", "live.sqlite") is None
    assert is_database_url("postgres://h/x") and not is_database_url(tmp_path / "postgresql:")


# --- PostgreSQL only ---------------------------------------------------------------------------------------------

def test_migrations_are_numbered_applied_once_and_recorded(pg_url):
    import psycopg

    from recommender.pg import migrate

    stores = [EditorialStore(pg_url), LiveStore(pg_url), EventStore(pg_url), EditorialStore(pg_url)]
    with psycopg.connect(pg_url) as conn:
        applied = conn.execute("SELECT store, version FROM schema_migrations ORDER BY store").fetchall()
        counters = conn.execute("SELECT key, value FROM state ORDER BY key").fetchall()
    assert applied == [("editorial", 1), ("events", 1), ("live", 1), ("live", 2)] and counters == [("editorial", 0), ("live", 0)]
    second = ("CREATE TABLE notes (id INTEGER PRIMARY KEY)", "ALTER TABLE notes ADD COLUMN body TEXT")
    reached = []
    threads = [threading.Thread(target=lambda: reached.append(migrate(pg_url, "notes", second))) for _ in range(4)]
    for thread in threads:  # replicas starting together: each migration runs once, under the advisory lock
        thread.start()
    for thread in threads:
        thread.join()
    assert reached == [2, 2, 2, 2] and stores[0].version() == 0


def test_a_database_of_a_newer_program_or_out_of_reach_refuses_the_start(pg_url, postgres):
    from recommender.pg import DatabaseRefused, migrate

    migrate(pg_url, "editorial", ("SELECT 1", "SELECT 2", "SELECT 3"))  # as a later version would have
    with pytest.raises(DatabaseRefused, match="at migration 3, this program knows 1"):
        EditorialStore(pg_url)
    secret_url = f"postgresql://postgres:hunter2@127.0.0.1:{postgres.port + 1}/nowhere"  # nothing listens there
    with pytest.raises(DatabaseRefused) as refused:
        EditorialStore(secret_url)
    message = str(refused.value)
    assert "hunter2" not in message and "postgres:***@" in message and "\n" not in message


def test_a_restarted_server_is_used_again_without_reopening_the_store(pg_url, postgres):
    store, events = EditorialStore(pg_url), EventStore(pg_url)
    store.take_down("before", who="legal", why="")
    postgres.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            store.version()
        with pytest.raises(StateUnavailable):
            store.take_down("while-down", who="legal", why="")
        with pytest.raises(StateUnavailable):
            events.record([Click("", "", "default", 1)])
        assert time.monotonic() - started < 2  # refused at once, not after a wait
    finally:
        postgres.start()
    deadline = time.monotonic() + 10
    while True:  # the kept connections died with the server: replaced on the next use
        try:
            store.take_down("after", who="legal", why="")
            break
        except StateUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert store.rules().taken_down == {"before", "after"}


def test_backup_state_names_pg_dump_when_the_state_is_in_postgresql(runner, monkeypatch, tmp_path):
    monkeypatch.setenv("RECOMMENDER_STATE_URL", "postgresql://editor:pw@db.example/news")
    ran = runner.invoke("backup-state", str(tmp_path / "backup"))
    assert ran.exit_code == 2 and "pg_dump" in ran.stderr and "pw@" not in ran.stderr


def test_after_a_quick_restart_the_first_write_already_succeeds(pg_url, postgres):
    store = EditorialStore(pg_url)
    store.take_down("before", who="legal", why="")
    postgres.stop()
    postgres.start()  # nothing used the store meanwhile: its kept connection is dead, and found so before use
    store.take_down("after", who="legal", why="")
    assert store.rules().taken_down == {"before", "after"}
