"""Replicas: two real `recommender serve` processes (2 workers each) on their own ports over one PostgreSQL
database and one published index folder. A change made through one is honoured by the other on its next
request; a replica killed with SIGKILL during writes loses nothing it acknowledged; PostgreSQL restarted under
load costs readers nothing and writers a 503 while it is down; a snapshot copied to a replica's own folder
(`recommender publish-copy`) is served there."""
from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import write_jsonl
from servers import ServerProcess
from test_faults import TOKEN, TOPICS, corpus_records, index_job, request

pytestmark = pytest.mark.replicas


class Replica(ServerProcess):
    """`recommender serve` over index_dir with its state in the PostgreSQL database state_url."""

    def __init__(self, index_dir: Path, log: Path, state_url: str, **env: str) -> None:
        super().__init__(index_dir, log, {
            "RECOMMENDER_PROFILE": "tfidf", "RECOMMENDER_CACHE_DIR": "", "RECOMMENDER_STATE_DIR": "",
            "RECOMMENDER_STATE_URL": state_url, "RECOMMENDER_API_TOKEN": TOKEN, "RECOMMENDER_RELOAD_INTERVAL": "0.2",
            "RECOMMENDER_WRITE_RATE_LIMIT": "", "RECOMMENDER_EVENT_RATE_LIMIT": "", **env})


@pytest.fixture
def published(tmp_path):
    """The shared index folder (tfidf, articles a0..a59): its path."""
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_records("a"))
    assert index_job(corpus, tmp_path / "index").returncode == 0
    return tmp_path / "index"


@pytest.fixture
def replicas(tmp_path, published, pg_url):
    """Two replicas over the shared index folder and one database, both ready."""
    servers = [Replica(published, tmp_path / f"replica-{n}.log", pg_url) for n in (1, 2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.__exit__()


def related(server: ServerProcess, article_id: str, k: int = 10) -> dict:
    status, data = request(server.base, "GET", f"/v1/articles/{article_id}/related?k={k}")
    assert status == 200, data
    return data


def ids(answer: dict) -> list[str]:
    return [item["id"] for item in answer["items"]]


def test_a_change_through_one_replica_is_honoured_by_the_other_on_its_next_request(replicas):
    one, two = replicas
    listing = ids(related(two, "a0"))
    assert len(listing) >= 4 and "a1" not in listing  # a1 is on another topic
    assert request(one.base, "PUT", "/v1/articles/a0/overrides", {"action": "pin", "target": "a1",
                                                                  "position": 1})[0] == 200
    assert ids(related(two, "a0"))[0] == "a1"
    assert request(one.base, "PUT", "/v1/articles/a0/overrides", {"action": "block", "target": listing[0]})[0] == 200
    assert listing[0] not in ids(related(two, "a0"))
    assert request(one.base, "DELETE", f"/v1/articles/{listing[1]}", {"why": "legal"})[0] == 200
    assert listing[1] not in ids(related(two, "a0"))
    fresh = {"title": "Passau meldet Hochwasser", "body": f"{TOPICS[0]} Neu gemeldet.", "lang": "de",
             "published_at": "2026-03-02T08:00:00+01:00"}
    assert request(one.base, "PUT", "/v1/articles/fresh-1", fresh)[0] == 201
    assert related(two, "fresh-1")["article_id"] == "fresh-1"
    assert request(two.base, "PUT", "/v1/articles/fresh-1", fresh)[0] == 200  # known to both: an update
    answer = related(two, "a0", k=4)  # the rid secret is shared: one counts an impression two's answer drew
    event = {"type": "impression", "rid": answer["rid"], "article_id": "a0", "shown": len(answer["items"])}
    assert request(one.base, "POST", "/v1/events", {"events": [event]}) == (202, {"accepted": 1, "ignored": 0})
    changes = [e["change"] for e in request(two.base, "GET", "/v1/audit")[1]["entries"]]
    assert changes == ["article_updated", "article_created", "takedown", "block", "pin"]


def write_until(stop: threading.Event, base: str, name: str, acknowledged: list, lock: threading.Lock) -> None:
    """Blocks and new articles through base until stop, noting each one answered 2xx."""
    i = 0
    while not stop.is_set():
        i += 1
        try:
            if i % 3:
                source, target = f"a{(i * 7) % 60}", f"a{(i * 11 + 1) % 60}"
                if source == target:
                    continue
                status, _ = request(base, "PUT", f"/v1/articles/{source}/overrides",
                                    {"action": "block", "target": target, "who": name})
                what = ("override", f"{source} {target}")
            else:
                body = {"title": f"Neu {name} {i}", "body": f"{TOPICS[i % 3]} {name} {i}.", "lang": "de",
                        "published_at": "2026-03-02T08:00:00+01:00"}
                status, _ = request(base, "PUT", f"/v1/articles/live-{name}-{i}", body)
                what = ("article", f"live-{name}-{i}")
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)  # the replica died under this request: not acknowledged
            continue
        if 200 <= status < 300:
            with lock:
                acknowledged.append(what)


def test_a_replica_killed_during_writes_loses_nothing_it_acknowledged(replicas):
    one, two = replicas
    acknowledged: list[tuple[str, str]] = []
    lock, stop = threading.Lock(), threading.Event()
    writers = [threading.Thread(target=write_until, args=(stop, one.base, f"w{n}", acknowledged, lock))
               for n in range(4)]
    for writer in writers:
        writer.start()
    try:
        time.sleep(3)
        one.kill()  # SIGKILL to master and workers, whatever they were doing
        time.sleep(0.5)
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    print(f"{len(acknowledged)} acknowledged writes, {sum(k == 'article' for k, _ in acknowledged)} articles")
    assert len(acknowledged) > 10
    overrides: dict[str, set[str]] = {}
    for kind, what in acknowledged:
        if kind == "override":
            source, target = what.split()
            if source not in overrides:
                overrides[source] = {o["target_id"] for o in request(two.base, "GET",
                                                                       f"/v1/articles/{source}/overrides")[1]["overrides"]}
            assert target in overrides[source], what
        else:
            assert related(two, what)["article_id"] == what


def test_postgresql_restarted_under_load_costs_readers_nothing_and_writers_a_503_while_down(replicas, postgres):
    one, two = replicas
    answers: dict[str, list[int]] = {"read": [], "write": []}
    acknowledged, errors = set(), []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for server in replicas:
                try:
                    answers["read"].append(request(server.base, "GET", "/v1/articles/a3/related")[0])
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(f"read: {exc}")

    def write() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            status, data = request(replicas[i % 2].base, "DELETE", f"/v1/articles/ghost-{i}", {"why": "load"})
            answers["write"].append(status)
            if status == 200:
                acknowledged.add(f"ghost-{i}")
            elif data.get("error") != "state_unavailable":
                errors.append(f"write: {status} {data}")
            time.sleep(0.02)

    threads = [threading.Thread(target=read), threading.Thread(target=read), threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        postgres.stop()
        down_from = len(answers["write"])
        time.sleep(2.5)
        postgres.start()
        up_from = len(answers["write"])
        deadline = time.monotonic() + 15
        while answers["write"][-1] != 200 or answers["write"][-3:] != [200] * 3:
            assert time.monotonic() < deadline, "writes did not recover"
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(f"{len(answers['read'])} reads, writes before/while down/after: {answers['write'][:down_from].count(200)} "
          f"acknowledged / {answers['write'][down_from:up_from].count(503)} of {up_from - down_from} answered 503 / "
          f"{answers['write'][up_from:].count(200)} of {len(answers['write']) - up_from} acknowledged")
    assert set(answers["read"]) == {200} and len(answers["read"]) > 50
    assert errors == [] and 503 in answers["write"][down_from:up_from]
    assert 200 in answers["write"][:down_from] and answers["write"][-1] == 200
    stored = {e["article_id"] for e in request(two.base, "GET", "/v1/audit?limit=1000")[1]["entries"]}
    # Every acknowledged write is there. (A write cut off by the stop between its COMMIT and the answer may be
    # there too, unacknowledged: the client saw a 503 and would retry it, which a takedown allows.)
    assert acknowledged <= stored and len(stored) - len(acknowledged) <= 1


def test_a_query_waiting_on_postgresql_holds_its_request_not_the_worker(tmp_path, published, pg_url):
    import psycopg

    with Replica(published, tmp_path / "replica.log", pg_url, RECOMMENDER_WORKERS="1") as server:
        server.wait_ready(workers=1)
        with psycopg.connect(pg_url) as lock:
            lock.execute("LOCK TABLE audit IN ACCESS EXCLUSIVE MODE")  # held until this transaction ends
            taken: list[int] = []
            waiting = threading.Thread(target=lambda: taken.append(
                request(server.base, "DELETE", "/v1/articles/a5", {"why": "x"})[0]))
            waiting.start()
            time.sleep(0.5)
            started = time.monotonic()
            assert related(server, "a3")["items"] and time.monotonic() - started < 10  # frozen, it would wait 30 s
            assert not taken  # while the takedown still waits for the lock
        waiting.join(timeout=30)
        assert taken == [200]


def test_a_snapshot_copied_to_a_replicas_own_folder_is_served_there(tmp_path, published, pg_url):
    own = tmp_path / "own-index"
    copy = [sys.executable, "-m", "recommender", "publish-copy", str(published), str(own)]
    assert subprocess.run(copy, capture_output=True, timeout=60).returncode == 0
    with Replica(published, tmp_path / "shared.log", pg_url) as one, Replica(own, tmp_path / "own.log", pg_url) as two:
        one.wait_ready()
        two.wait_ready()
        first = related(two, "a0")["index_version"]
        assert related(one, "a0")["index_version"] == first
        corpus = write_jsonl(tmp_path / "c2.jsonl", corpus_records("ab"))
        assert index_job(corpus, published).returncode == 0  # a new build, published on the shared folder only
        newer = wait_for_version(one, lambda v: v != first)
        assert related(two, "a0")["index_version"] == first
        done = subprocess.run(copy, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.startswith("published "), done.stderr
        assert wait_for_version(two, lambda v: v == newer) == newer
        # Each worker swaps in the copy when its own loader is done: wait until both serve it.
        deadline = time.monotonic() + 20
        while sum(request(two.base, "GET", "/v1/articles/b3/related")[0] == 200 for _ in range(6)) < 6:
            assert time.monotonic() < deadline, "the copied snapshot is not served by every worker"
            time.sleep(0.1)


def wait_for_version(server: ServerProcess, wanted, seconds: float = 20.0) -> str:
    """The index_version server answers with, once wanted(version) holds."""
    deadline = time.monotonic() + seconds
    while not wanted(version := related(server, "a0")["index_version"]):
        assert time.monotonic() < deadline, f"still serving {version}"
        time.sleep(0.1)
    return version
