import threading

import pytest

from recommender.rank.editorial import EditorialStore


@pytest.fixture
def store(tmp_path):
    return EditorialStore(tmp_path / "editorial.sqlite")


def test_decisions_become_rules_and_bump_the_version(store):
    assert store.version() == 0 and store.rules().pins == {}
    store.set_override("a", "pin", "x", who="anna", why="exclusive", position=2)
    store.set_override("a", "block", "y", who="anna", why="wrong story")
    store.set_override("b", "block_everywhere", "z", who="ben", why="legal")
    store.take_down("t", who="legal", why="court order")
    rules = store.rules()
    assert rules.version == store.version() == 4
    assert rules.pins == {"a": ((2, "x"),)}
    assert rules.blocks == {"a": frozenset({"y"})}
    assert rules.hidden_for("a") == {"y", "z", "t"} and rules.hidden_for("c") == {"z", "t"}
    assert rules.hidden_for(None) == {"z", "t"}


def test_newer_pin_replaces_block_and_moves_position(store):
    store.set_override("a", "block", "x", who="anna", why="")
    store.set_override("a", "pin", "x", who="anna", why="", position=1)
    store.set_override("a", "pin", "x", who="anna", why="", position=3)
    rules = store.rules()
    assert rules.pins == {"a": ((3, "x"),)} and "a" not in rules.blocks


def test_remove_and_audit_trail(store):
    store.set_override("a", "pin", "x", who="anna", why="top story", position=1)
    assert store.remove_override("a", "pin", "x", who="ben", why="outdated")
    assert not store.remove_override("a", "pin", "x", who="ben", why="again")
    assert store.rules().pins == {}
    entries = store.audit(article_id="a")
    assert [(e["who"], e["change"], e["why"]) for e in entries] == [("ben", "unpin", "outdated"), ("anna", "pin", "top story")]
    assert all(e["at"] for e in entries)


def test_decisions_survive_reopening(store, tmp_path):
    store.set_override("a", "block", "y", who="anna", why="")
    store.close()
    again = EditorialStore(tmp_path / "editorial.sqlite")
    assert again.rules().blocks == {"a": frozenset({"y"})}


def test_two_editors_at_once_lose_nothing(tmp_path):
    path = tmp_path / "editorial.sqlite"
    EditorialStore(path)

    def editor(name: str) -> None:
        own = EditorialStore(path)  # each editor's request in its own connection, as in two workers
        for i in range(25):
            own.set_override("a", "block", f"{name}-{i}", who=name, why="")
            own.set_override("a", "pin", f"{name}-pin-{i}", who=name, why="", position=1 + i % 5)

    threads = [threading.Thread(target=editor, args=(name,)) for name in ("anna", "ben")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = EditorialStore(path)
    rules = store.rules()
    assert len(rules.blocks["a"]) == 50 and len(rules.pins["a"]) == 50
    assert rules.version == 100 and len(store.audit(limit=1000)) == 100
    assert {e["who"] for e in store.audit(limit=1000)} == {"anna", "ben"}


def test_unknown_action_is_refused(store):
    with pytest.raises(ValueError, match="unknown action"):
        store.set_override("a", "promote", "x", who="anna", why="")
