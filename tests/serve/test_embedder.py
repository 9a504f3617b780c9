"""The embedding process of PUT articles (serve/embedder.py): on its own, and under `recommender serve`."""
import json
import os
import signal
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import record
from servers import EMBEDDER_NAME, ServerProcess, get, tiny_tfidf_index

from recommender.ingest.corpus import article_from_json
from recommender.serve.embedder import (
    EmbedClient,
    EmbedderUnavailable,
    EmbeddingFailed,
    EmbeddingProcess,
)

TOKEN = "embedder-test-token-7"


def nice_of(pid: int) -> int:
    """The nice value of a process (field 19 of /proc/PID/stat)."""
    stat = open(f"/proc/{pid}/stat").read()
    return int(stat.rsplit(")", 1)[1].split()[16])


def fake_embed(article):
    if article.title == "explode":
        raise ValueError("the encoder choked")
    return {"use": np.full(3, len(article.title), dtype=np.float32)}


@pytest.fixture
def process():
    started = EmbeddingProcess(fake_embed, nice=7)
    started.start()
    yield started
    started.stop()


def test_articles_are_embedded_by_a_named_process_of_lower_priority(process):
    client = EmbedClient(process.path, timeout=30)
    vectors = client.embed_dense(article_from_json(record("a", title="fünf.")))
    assert set(vectors) == {"use"} and vectors["use"].tolist() == [5.0, 5.0, 5.0]
    assert open(f"/proc/{process.pid}/comm").read().strip() == EMBEDDER_NAME
    assert nice_of(process.pid) == nice_of(os.getpid()) + 7 or nice_of(process.pid) == 19
    with pytest.raises(EmbeddingFailed, match="the encoder choked"):
        client.embed_dense(article_from_json(record("b", title="explode")))
    assert client.embed_dense(article_from_json(record("c", title="ok")))["use"][0] == 2.0  # still serving


def test_a_dead_or_stuck_process_is_a_clear_error_and_is_started_again(process):
    client = EmbedClient(process.path, timeout=1)
    os.kill(process.pid, signal.SIGSTOP)  # stuck: the PUT gives up after embed_timeout
    try:
        started = time.monotonic()
        with pytest.raises(EmbedderUnavailable, match="nothing was stored"):
            client.embed_dense(article_from_json(record("a")))
        assert time.monotonic() - started < 10
    finally:
        os.kill(process.pid, signal.SIGCONT)
    old = process.pid
    os.kill(old, signal.SIGKILL)
    os.waitpid(old, 0)
    with pytest.raises(EmbedderUnavailable):  # refused at once, not queued for ever
        client.embed_dense(article_from_json(record("a")))
    process.keep_running()
    assert process.pid not in (None, old)
    assert client.embed_dense(article_from_json(record("a", title="vier")))["use"][0] == 4.0
    process.stop()
    assert not process.path.exists() and process.pid is None


@pytest.fixture
def served(tmp_path):
    index_dir, env = tiny_tfidf_index(tmp_path, env={"RECOMMENDER_API_TOKEN": TOKEN, "RECOMMENDER_EMBED_TIMEOUT": "2"})
    with ServerProcess(index_dir, tmp_path / "server.log", env) as server:
        server.wait_ready()
        yield server


def put(base: str, article_id: str, **changes) -> tuple[int, dict]:
    body = {k: v for k, v in record(article_id, **changes).items() if k != "id"}
    request = urllib.request.Request(f"{base}/v1/articles/{article_id}", data=json.dumps(body).encode(), method="PUT",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serve_embeds_puts_in_its_embedding_process_and_restarts_it(served):
    embedder = served.embedder()
    assert embedder is not None and len(served.workers()) == 2 and embedder not in served.workers()
    assert nice_of(embedder) >= nice_of(served.pid) + 10 or nice_of(embedder) == 19
    status, answer = put(served.base, "neu-1", body="Neuer Text über die Donau und Passau.")
    assert status == 201 and answer["created"] is True
    assert get(served.base + "/v1/articles/neu-1/related")[0] == 200
    os.kill(embedder, signal.SIGSTOP)  # a stuck embedder: PUTs fail clearly, readers are served meanwhile
    try:
        status, answer = put(served.base, "neu-2")
        assert status == 503 and answer["error"] == "embedder_unavailable", answer
        assert get(served.base + "/v1/articles/neu-2/related")[0] == 404  # nothing stored
        assert get(served.base + "/v1/articles/a0/related")[0] == 200
    finally:
        os.kill(embedder, signal.SIGCONT)
    os.kill(embedder, signal.SIGKILL)
    until = time.monotonic() + 30
    while served.embedder() in (None, embedder) and time.monotonic() < until:
        time.sleep(0.05)
    replacement = served.embedder()
    assert replacement not in (None, embedder), served.output()
    assert "the embedding process ended; starting another" in served.output()
    status, _ = put(served.base, "neu-2")
    assert status == 201 and get(served.base + "/v1/articles/neu-2/related")[0] == 200
    served.stop()
    assert not served.group_alive()  # the embedding process ended with the server


def test_embedding_in_the_worker_stays_available(tmp_path):
    """embed_received_in = worker: no embedding process, PUT embeds in the request's worker as before."""
    index_dir, env = tiny_tfidf_index(tmp_path, env={"RECOMMENDER_API_TOKEN": TOKEN,
                                                     "RECOMMENDER_EMBED_RECEIVED_IN": "worker"})
    with ServerProcess(index_dir, tmp_path / "server.log", env) as server:
        server.wait_ready()
        assert server.embedder() is None
        assert put(server.base, "neu-1")[0] == 201


def test_a_sync_worker_gives_up_on_a_stuck_embedder_before_gunicorn_replaces_it(tmp_path):
    """With sync workers a worker waiting for the vectors looks stuck to gunicorn: it answers 503 first."""
    index_dir, env = tiny_tfidf_index(tmp_path, env={"RECOMMENDER_API_TOKEN": TOKEN, "RECOMMENDER_WORKER_CLASS": "sync",
                                                     "RECOMMENDER_WORKER_TIMEOUT": "8"})
    with ServerProcess(index_dir, tmp_path / "server.log", env) as server:
        server.wait_ready()
        workers, embedder = set(server.workers()), server.embedder()
        os.kill(embedder, signal.SIGSTOP)
        try:
            started = time.monotonic()
            status, answer = put(server.base, "neu-1")
            assert status == 503 and answer["error"] == "embedder_unavailable"
            assert 2 <= time.monotonic() - started < 8
        finally:
            os.kill(embedder, signal.SIGCONT)
        assert put(server.base, "neu-1")[0] == 201
        assert set(server.workers()) == workers  # no worker was replaced
