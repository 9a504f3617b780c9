"""Swapping in a newly published snapshot: opened and verified in the background while requests go on with
the served one, then served from the next request on; a corrupt one refused once; the newest of two quick
publishes served; live articles laid over the new snapshot, also those stored while it loaded.

Verification is held on an Event (never a sleep), so "a request answered while the new snapshot was still
being verified" is a fact of the test, not a matter of timing."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from conftest import record, write_jsonl

import recommender.engine as engine_module
import recommender.index.snapshot as snapshot_module
from recommender.config import load_settings
from recommender.index.loader import LOWEST_PRIORITY
from recommender.ingest.corpus import article_from_json
from recommender.jobs.index_job import build_index
from recommender.serve.app import create_app
from recommender.serve.current import ENGINE

WAIT = 60.0  # seconds; only reached when a test fails
TOPICS = ["Die Donau tritt in Passau über die Ufer, Helfer füllen Sandsäcke am Inn.",
          "Bei der Landtagswahl in Bayern verliert die CSU Stimmen, die Freien Wähler legen zu.",
          "Die Europäische Zentralbank senkt in Frankfurt den Leitzins, Sparer sind enttäuscht."]
TOKEN = "swap-token-9c1"


def articles(n: int) -> list[dict]:
    return [record(f"a{i}", body=f"{TOPICS[i % 3]} Folge {i}.") for i in range(n)]


class Published:
    """An index directory with a served app over it, and a way to publish more snapshots into it."""

    def __init__(self, tmp_path: Path) -> None:
        self.corpus = tmp_path / "c.jsonl"
        self.settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="",
                                      state_dir=str(tmp_path / "state"), reload_interval=0.0, api_token=TOKEN)
        self.first = self.publish(4)
        self.app = create_app(self.settings)
        self.client = self.app.test_client()
        self.engine = self.app.extensions[ENGINE]

    def publish(self, n: int) -> str:
        """Build and publish a snapshot of articles a0 .. a{n-1}; returns its version."""
        write_jsonl(self.corpus, articles(n))
        return build_index([self.corpus], self.settings.index_dir, self.settings).snapshot.name

    def served(self, article_id: str = "a0") -> tuple[int, str | None]:
        """(status, index version) of the related list of article_id."""
        answer = self.client.get(f"/v1/articles/{article_id}/related?k=2")
        return answer.status_code, (answer.get_json() or {}).get("index_version")


@pytest.fixture
def index(tmp_path):
    return Published(tmp_path)


class HeldVerification:
    """verify_files, held on an Event and counted when the engine's loader calls it (the index job, in the
    test's own thread, verifies what it wrote as before)."""

    def __init__(self, monkeypatch) -> None:
        self.release, self.started, self.calls = threading.Event(), threading.Event(), []
        self.priorities: set[int] = set()
        original = snapshot_module.verify_files

        def held(path, manifest):
            if threading.current_thread() is not threading.main_thread():
                self.calls.append(Path(path).name)
                self.priorities.add(os.getpriority(os.PRIO_PROCESS, 0))
                self.started.set()
                assert self.release.wait(WAIT), "never released"
            return original(path, manifest)

        monkeypatch.setattr(snapshot_module, "verify_files", held)


def test_requests_are_answered_from_the_old_snapshot_while_the_new_one_is_verified(index, monkeypatch):
    held = HeldVerification(monkeypatch)
    assert index.served() == (200, index.first)
    second = index.publish(6)
    assert index.served() == (200, index.first)  # this request noticed the publish: it did not wait for it
    assert held.started.wait(WAIT) and held.calls == [second]
    for _ in range(3):  # verification still held: every request answers, from the old snapshot
        assert index.served() == (200, index.first) and index.served("a5")[0] == 404
    assert held.calls == [second]  # one load, not one per request
    assert held.priorities == {LOWEST_PRIORITY}  # checksums in the CPU's idle time
    held.release.set()
    assert index.engine.wait_for_swap(WAIT)
    assert index.served() == (200, second) and index.served("a5") == (200, second)
    assert index.client.get("/readyz").get_json()["index_version"] == second
    metrics = index.client.get("/metrics").get_data(as_text=True)
    assert f'recommender_index_info{{profile="tfidf",version="{second}"}} 1.0' in metrics
    assert f'recommender_index_info{{profile="tfidf",version="{index.first}"}} 0.0' in metrics


def test_a_corrupt_snapshot_is_refused_once_and_the_next_good_one_served(index, monkeypatch, caplog):
    held = HeldVerification(monkeypatch)
    held.release.set()
    broken = index.publish(5)
    data_file = Path(index.settings.index_dir) / "current" / "sparse_tfidf_data.npy"
    data = bytearray(data_file.read_bytes())
    data[-1] ^= 0xFF
    data_file.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="recommender.engine"):
        assert not index.engine.wait_for_swap(WAIT)
        for _ in range(5):
            assert index.served() == (200, index.first)
        assert not index.engine.wait_for_swap(WAIT)
    assert held.calls == [broken]  # verified once, not again on every look
    refusals = [r.getMessage() for r in caplog.records if "not switching to snapshot" in r.getMessage()]
    assert len(refusals) == 1 and broken in refusals[0] and "checksum" in refusals[0]
    good = index.publish(6)
    assert index.engine.wait_for_swap(WAIT) and index.served("a5") == (200, good)


def test_two_publishes_in_quick_succession_end_on_the_newest(index, monkeypatch):
    held = HeldVerification(monkeypatch)
    second = index.publish(5)
    assert index.served() == (200, index.first) and held.started.wait(WAIT)
    third = index.publish(6)  # published while the second is still being verified
    versions = {index.served()[1] for _ in range(3)}
    held.release.set()
    assert index.engine.wait_for_swap(WAIT)
    assert versions == {index.first} and held.calls == [second, third]
    assert index.served("a5") == (200, third)


def test_live_articles_are_laid_over_the_new_snapshot_also_those_stored_while_it_loaded(index, monkeypatch):
    engine = index.engine
    engine.put_article(article_from_json(record("live-1", body=f"{TOPICS[0]} Neu.")))
    built, laid = threading.Event(), threading.Event()
    original = engine_module.live_view

    def held_view(base, live, version, lexical_rows):
        view = original(base, live, version, lexical_rows)
        if threading.current_thread() is not threading.main_thread():  # the loader's, over the new base
            built.set()
            assert laid.wait(WAIT)
        return view

    monkeypatch.setattr(engine_module, "live_view", held_view)
    second = index.publish(6)
    engine.refresh()
    assert built.wait(WAIT)  # the new base is ready with live-1 over it; now another article arrives
    engine.put_article(article_from_json(record("live-2", body=f"{TOPICS[1]} Neu.")))
    assert engine.snapshot.version.startswith(index.first)  # laid over the old base meanwhile
    laid.set()
    assert engine.wait_for_swap(WAIT)
    assert engine.snapshot.version.startswith(f"{second}+live") and engine.base.version == second
    assert {"live-1", "live-2", "a5"} <= set(engine.snapshot.row_of.keys())
    assert index.served("live-2")[0] == 200


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_snapshot_one_worker_verified_is_not_verified_again_by_the_others(index, monkeypatch):
    held = HeldVerification(monkeypatch)
    held.release.set()
    second = index.publish(6)
    pid = os.fork()  # the engine as gunicorn's workers have it: made in the parent, forked
    if pid == 0:
        ok = index.engine.wait_for_swap(WAIT) and index.engine.base.version == second and held.calls == [second]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # the first worker verified it
    assert index.engine.wait_for_swap(WAIT) and index.served("a5") == (200, second)
    assert held.calls == []  # this one opened it without computing the checksums again
