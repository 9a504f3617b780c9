"""Issue 9 against the real server (`python -m recommender serve`, gunicorn, real files and signals): the
embargo over time, over-long fields, state files that are not ours, writes the file system refuses."""
import json
import resource
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest
from conftest import record, write_jsonl
from servers import ServerProcess

from recommender.config import load_settings
from recommender.jobs.index_job import build_index

TOKEN = "server-hardening-token"
BODY = "Die Donau tritt in Passau über die Ufer, Helfer füllen Sandsäcke am Inn."
EXTRA = ["Am Abend gab es eine erste Bilanz.", "Die Opposition verlangt Aufklärung über die Kosten.",
         "Beobachter rechnen mit einer langen Debatte im Herbst.", "Die Polizei meldet keine Zwischenfälle."]


def iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat()


def call(method: str, url: str, body=None, timeout: float = 10) -> tuple[int, dict, dict]:
    """(status, headers, JSON) of one request; HTTP errors are answers too."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {TOKEN}", **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A small tfidf index; "scheduled" is published an hour after the build."""
    tmp = tmp_path_factory.mktemp("hardening-index")
    records = [record(f"a{i}", title=f"Hochwasser Passau {i}", body=f"{BODY} {EXTRA[i]}",
                      published_at=iso(time.time() - 86400 * (i + 1))) for i in range(4)]
    records.append(record("scheduled", title="Hochwasser Passau geplant", body=f"{BODY} Geplant.",
                          published_at=iso(time.time() + 3600)))
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp / "index"), cache_dir="")
    build_index([write_jsonl(tmp / "c.jsonl", records)], settings.index_dir, settings)
    return settings.index_dir


def launch(index_dir, state_dir, file_size_limit: int | None = None) -> ServerProcess:
    """Start the server in its own session; returns once it is ready, or once it exited (bad state files)."""
    env = {"RECOMMENDER_PROFILE": "tfidf", "RECOMMENDER_CACHE_DIR": "", "RECOMMENDER_STATE_DIR": str(state_dir),
           "RECOMMENDER_API_TOKEN": TOKEN, "RECOMMENDER_WRITE_RATE_LIMIT": ""}

    def limit_file_size() -> None:  # a full disk, for this process only: writes past the limit fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    server = ServerProcess(index_dir, state_dir.parent / f"server-{state_dir.name}-{time.monotonic_ns()}.log", env,
                           preexec_fn=limit_file_size if file_size_limit else None)
    try:
        server.wait_ready()
    except AssertionError:
        if server.process.poll() is None:
            raise
    return server


@pytest.fixture
def server(index, tmp_path):
    with launch(index, tmp_path / "state") as process:
        assert process.process.poll() is None, process.output()
        yield process.base


def related_ids(base: str, article_id: str) -> tuple[list[str], dict]:
    status, headers, data = call("GET", f"{base}/v1/articles/{article_id}/related?k=8")
    assert status == 200, data
    return [item["id"] for item in data["items"]], headers


def test_a_scheduled_story_appears_at_its_moment_never_before_and_caches_end_then(server):
    ids, _ = related_ids(server, "a0")
    assert "scheduled" not in ids  # from the corpus, an hour ahead
    assert call("GET", f"{server}/v1/articles/scheduled/related")[0] == 200  # the CMS preview
    release = int(time.time()) + 4
    soon = {k: v for k, v in record("soon", title="Hochwasser Passau gleich", body=f"{BODY} Gleich.",
                                    published_at=iso(release)).items() if k != "id"}
    assert call("PUT", f"{server}/v1/articles/soon", soon)[0] == 201
    deadline = time.monotonic() + 30
    while True:
        asked = time.time()
        ids, headers = related_ids(server, "a0")
        if "soon" in ids:
            break
        max_age = int(headers["Cache-Control"].split("max-age=")[1].split(",")[0])
        assert asked + max_age <= release + 1  # no cache may keep this list past the release
        assert time.monotonic() < deadline, "the scheduled story never appeared"
        time.sleep(0.2)
    assert time.time() >= release and "scheduled" not in ids
    assert "max-age=60" in related_ids(server, "a0")[1]["Cache-Control"]  # next release: an hour away


def test_over_long_fields_are_refused_at_once_and_answers_carry_security_headers(server):
    for title in (30_000, 100_000):
        started = time.perf_counter()
        status, headers, data = call("POST", f"{server}/v1/related", {"title": "x" * title, "body": "b"})
        assert status == 422 and data["error"] == "invalid_article" and time.perf_counter() - started < 1
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert call("GET", f"{server}/v1/articles/{'a' * 201}/related")[0] == 422
    assert call("GET", f"{server}/v1/articles/a0/related?k=5_0")[0] == 400
    with urllib.request.urlopen(f"{server}/editor", timeout=5) as page:
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize("content", [b"", b"garbage " * 1000], ids=["empty", "garbage"])
def test_a_state_file_that_is_not_ours_stops_the_server_with_one_line(index, tmp_path, content):
    state = tmp_path / "state"
    state.mkdir()
    (state / "editorial.sqlite").write_bytes(content)
    with launch(index, state) as server:
        server.process.wait(timeout=60)
        err = server.output()
    assert server.process.returncode == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(state / "editorial.sqlite") in lines[0] and "move it away" in lines[0]


def test_writes_the_disk_refuses_answer_503_reads_go_on_and_nothing_acknowledged_is_lost(index, tmp_path):
    state = tmp_path / "state"
    acknowledged = []
    with launch(index, state, file_size_limit=2 * 1024 * 1024) as server:
        base = server.base
        for n in range(30):
            article = {k: v for k, v in record(f"big{n}", body=f"Donau {n} " * 20_000).items() if k != "id"}
            status, _, data = call("PUT", f"{base}/v1/articles/big{n}", article)
            if status == 503:
                assert data["error"] == "state_unavailable"
                break
            assert status == 201, data
            acknowledged.append(f"big{n}")
        else:
            pytest.fail("the file size limit never made a write fail")
        assert acknowledged  # some writes went through before the disk was full
        assert call("GET", f"{base}/v1/articles/a0/related")[0] == 200 and call("GET", f"{base}/readyz")[0] == 200
        assert call("GET", f"{base}/v1/audit")[0] == 200
    with launch(index, state) as server:  # restarted with room on the disk
        for article_id in acknowledged:
            assert call("GET", f"{server.base}/v1/articles/{article_id}/related")[0] == 200, article_id
