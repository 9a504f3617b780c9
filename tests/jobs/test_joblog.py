"""How the index job reports: plain lines off a terminal, JSON lines for schedulers, nothing but the end when quiet."""
import io
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import CACHE_DIR, CORPUS, record, write_jsonl

from recommender import progress
from recommender.cli import main
from recommender.jobs import joblog
from recommender.stages import StageClock, stage

STAGES = ["read", "embed", "lexical", "write", "verify", "publish"]


@pytest.fixture
def corpus(tmp_path):
    bodies = ["Die Donau tritt über die Ufer.", "Der Stadtrat streitet über Schulden.", "Ein Erdbeben in Japan."]
    return write_jsonl(tmp_path / "c.jsonl", [record(f"a{i}", body=b) for i, b in enumerate(bodies)]
                       + [record("bad", lang=None)])


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_PROFILE", "use")  # one dense signal, so there is embedding progress
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(CACHE_DIR))
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", "")
    monkeypatch.setenv("RECOMMENDER_MAX_SKIP_SHARE", "0.5")  # 1 bad record of 4 is what these tests log
    return ["--index", str(tmp_path / "index"), "--skip-invalid"]


def test_plain_log_lines_when_stderr_is_not_a_terminal(corpus, env, capsys):
    assert main(["index", str(corpus), *env]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert all(line.startswith("recommender: ") for line in lines) and "\r" not in err  # no bar
    assert any(line.startswith("recommender: embedding (use): 3/3 articles, ") for line in lines)
    assert "recommender: embed done in " in err and "recommender: skipped 1 invalid record(s)" in err
    assert "3 new, 0 changed, 0 metadata changed, 0 unchanged, 0 deleted (against the published index); read 1 file(s)" in out and "indexed 3 articles" in out


def test_log_json_is_one_event_per_line_with_a_summary(corpus, env, capsys):
    assert main(["index", str(corpus), *env, "--log-json"]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in err.splitlines()]
    assert out == "" and all({"ts", "level", "event", "message"} <= set(e) for e in events)
    names = [e["event"] for e in events]
    assert names[0] == "start" and names[-1] == "summary" and "progress" in names
    assert [e["stage"] for e in events if e["event"] == "stage_done"][:len(STAGES)] == STAGES
    summary = events[-1]
    assert (summary["articles"], summary["new"], summary["changed"], summary["unchanged"], summary["deleted"],
            summary["skipped_invalid"]) == (3, 3, 0, 0, 0, 1)
    assert set(STAGES) <= set(summary["seconds"]) and all(s >= 0 for s in summary["seconds"].values())


def test_log_json_failure_is_an_error_event_and_exit_1(tmp_path, env, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [record("x", body="")])
    assert main(["index", str(bad), "--index", str(tmp_path / "index"), "--log-json"]) == 1
    last = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert last["event"] == "error" and last["level"] == "error" and last["exit_code"] == 1 and "body" in last["message"]


def test_quiet_prints_no_progress_only_the_summary(corpus, env, capsys):
    assert main(["index", str(corpus), *env, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "embedding" not in err and "done in" not in err and "indexing" not in err
    assert "skipped 1 invalid record(s)" in err  # warnings still show
    assert "indexed 3 articles" in out


def test_progress_lines_come_every_interval_with_rate_and_eta():
    now = [0.0]
    stream = io.StringIO()
    with joblog.configured("plain", stream):
        with progress.log_progress(interval=10, clock=lambda: now[0])("embedding (e5)", 5000) as bar:
            for _ in range(25):
                now[0] += 1
                bar.update(50)  # 50 articles a second
    lines = stream.getvalue().splitlines()
    assert lines == ["recommender: embedding (e5): 500/5000 articles, 50.0 articles/s, ETA 2m",
                     "recommender: embedding (e5): 1000/5000 articles, 50.0 articles/s, ETA 1m",
                     "recommender: embedding (e5): 1250/5000 articles, 50.0 articles/s, ETA 1m"]
    assert progress.format_duration(3 * 3600 + 5 * 60) == "3h05m" and progress.format_duration(None) == "?"


def test_nested_stages_are_timed_exclusively():
    clock = StageClock()
    with clock.running():
        with stage("write"):
            with stage("search structures"):
                pass
    with stage("outside a job"):  # no clock: nothing recorded, nothing fails
        pass
    assert list(clock.seconds) == ["search structures", "write"]


def test_sigterm_stops_the_job_with_130_and_leaves_no_snapshot(tmp_path):
    env = {**os.environ, "RECOMMENDER_PROFILE": "use", "RECOMMENDER_CACHE_DIR": str(tmp_path / "cache"),
           "RECOMMENDER_STATE_DIR": "", "RECOMMENDER_BATCH_SIZE": "4"}
    job = subprocess.Popen([sys.executable, "-m", "recommender", "index", str(CORPUS), "--index",
                            str(tmp_path / "index"), "--log-json"], env=env, stderr=subprocess.PIPE, text=True)
    for line in job.stderr:  # the corpus is read; embedding 174 articles into an empty cache takes seconds
        if json.loads(line)["event"] == "stage_done":
            break
    job.send_signal(signal.SIGTERM)
    rest = job.stderr.read().splitlines()
    assert job.wait(timeout=60) == 130
    assert json.loads(rest[-1])["event"] == "error" and json.loads(rest[-1])["exit_code"] == 130
    assert not (tmp_path / "index" / "current").exists() and not any((tmp_path / "index").glob("snapshots/*"))
