"""Hostile corpora against the index job (issue 16): lines no parser should meet, records at every limit, folders
of links and loops, exports that collapse, a profile swapped unasked, a damaged, unwritable or full embedding cache.
Everything is generated here; the published index must be untouched whenever the job refuses."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, record, write_jsonl

from recommender.cli import EXIT_REFUSED, main
from recommender.config import load_settings
from recommender.embed.cache import EmbeddingCache
from recommender.index.snapshot import load_snapshot
from recommender.ingest.corpus import FIELD_LIMITS, MAX_BODY_CHARS, load_corpus
from recommender.jobs import index_job as jobs


def line(value) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode()


def good(n: int, prefix: str = "ok") -> list[dict]:
    return [record(f"{prefix}-{i}", title=f"Donau {i}", body=f"Die Donau in Passau, Teil {i}.") for i in range(n)]


# Each line under --skip-invalid: skipped, counted, and named with its line and reason.
HOSTILE = {
    "100,000 nested brackets": (b"[" * 100_000 + b"]" * 100_000 + b"\n", "nests deeper than 32 levels"),
    "an object nested 100,000 deep": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n", "nests deeper than 32"),
    "a 5,000-digit number": (b'{"id": "n", "n": ' + b"9" * 5_000 + b"}\n", "a number of more than 4300 digits"),
    "NUL bytes": (line(record("nul")).replace(b"Titel", b"Ti\x00tel"), "Invalid control character"),
    "a gigantic line": (b'{"id": "g", "body": "' + b"Donau " * 1_000_000 + b'"}\n', "line longer than 4,194,304 bytes"),
    "a BOM inside the file": (b"\xef\xbb\xbf" + line(record("bom2")), "Unexpected UTF-8 BOM"),
    "year 0001": (line(record("y1", published_at="0001-01-01T00:00:00Z")), "is before 1800"),
    "year 9999": (line(record("y9", published_at="9999-12-31T00:00:00Z")), "more than 366 days in the future"),
    "language xx": (line(record("xx", lang="xx")), "not an ISO 639 code"),
    "title of white space": (line(record("ws", title=" \t\u00a0 ")), "title is empty"),
    "title over its limit": (line(record("tt", title="T" * 1_001)), "title has 1,001 characters, more than 1,000"),
}


def hostile_file(tmp_path: Path) -> Path:
    """A BOM on line 1 (tolerated: Windows tools write it), then good and hostile lines alternating."""
    path = tmp_path / "hostile.jsonl"
    oks = good(len(HOSTILE))
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(line(ok) + HOSTILE[name][0] for ok, name in zip(oks, HOSTILE)))
    return path


def test_every_hostile_line_is_skipped_and_counted_with_its_line_and_reason(tmp_path):
    path = hostile_file(tmp_path)
    result = load_corpus([path], skip_invalid=True)
    assert [a.id for a in result.articles] == [f"ok-{i}" for i in range(len(HOSTILE))]
    assert len(result.problems) == len(HOSTILE)
    for number, (problem, name) in enumerate(zip(result.problems, HOSTILE)):
        assert problem.line == 2 * number + 2, name
        assert HOSTILE[name][1] in problem.reason, (name, problem.reason)
    assert all("\n" not in str(p) for p in result.problems)  # one line each


def test_a_scheduled_story_is_fine_an_absurd_date_and_dates_past_the_setting_are_not(tmp_path):
    from datetime import datetime, timedelta, timezone

    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    in_a_month = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()
    path = write_jsonl(tmp_path / "d.jsonl", [record("t", published_at=tomorrow), record("m", published_at=in_a_month),
                                              record("old", published_at="1799-12-31T23:00:00+00:00"),
                                              record("hist", published_at="1800-01-01T00:00:00+00:00")])
    from recommender.ingest.corpus import ReadLimits

    result = load_corpus([path], skip_invalid=True, limits=ReadLimits(max_future_days=7))
    assert [a.id for a in result.articles] == ["t", "hist"]
    assert [p.line for p in result.problems] == [2, 3] and "more than 7 days in the future" in result.problems[0].reason


def test_language_rule_iso_639_1_two_letters_three_letter_codes_and_und(tmp_path):
    langs = ["de", "EN", "und", "tlh", "gsw", "xx", "qq", "d", "deu-x"]
    path = write_jsonl(tmp_path / "l.jsonl", [record(f"l{i}", lang=lang) for i, lang in enumerate(langs)])
    result = load_corpus([path], skip_invalid=True)
    assert [a.lang for a in result.articles] == ["de", "en", "und", "tlh", "gsw"]
    assert [p.line for p in result.problems] == [6, 7, 8, 9]


def test_json_list_reports_each_element_by_index_and_line(tmp_path):
    path = tmp_path / "list.json"
    elements = [json.dumps(record("j0")), json.dumps(record("j1", lang="xx")), "[" * 100 + "]" * 100,
                json.dumps(record("j3")), '{"id": "n", "n": ' + "9" * 5000 + "}", json.dumps(record("j5", body=""))]
    path.write_text("[\n" + ",\n".join(elements) + "\n]\n", encoding="utf-8")
    result = load_corpus([path], skip_invalid=True)
    assert [a.id for a in result.articles] == ["j0", "j3"]
    assert [(p.line, p.reason.split(":")[0]) for p in result.problems] == [
        (3, "element 1"), (4, "element 2"), (6, "element 4"), (7, "element 5")]
    assert "nests deeper than 32" in result.problems[1].reason and "4300 digits" in result.problems[2].reason
    path.write_text('[{"id": "a"}, {"id": ', encoding="utf-8")  # cut off: the open element is reported
    assert [p.reason.split(":")[0] for p in load_corpus([path], skip_invalid=True).problems] == ["element 0", "element 1"]
    path.write_text("\ufeff[]", encoding="utf-8")
    result = load_corpus([path], skip_invalid=True)
    assert (result.articles, result.problems) == ([], [])


@pytest.fixture
def env(tmp_path, monkeypatch):
    """tfidf profile, no cache, no editors' state: an index job costs about a second."""
    monkeypatch.setenv("RECOMMENDER_PROFILE", "tfidf")
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", "")
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", "")
    return tmp_path / "index"


def state(index: Path) -> tuple[Path, list[str]]:
    """What a refused run must leave as it was: the published snapshot and the snapshots on disk."""
    return (index / "current").resolve(), sorted(p.name for p in (index / "snapshots").iterdir())


def events(err: str) -> list[dict]:
    return [json.loads(text) for text in err.splitlines()]


def test_index_job_skips_hostile_lines_and_logs_each_with_a_count(tmp_path, env, capsys):
    path = hostile_file(tmp_path)
    args = ["index", str(path), "--index", str(env), "--skip-invalid", "--log-json"]
    assert main(args) == EXIT_REFUSED  # half the records are bad: the skip guard
    error = events(capsys.readouterr().err)[-1]
    assert error["event"] == "error" and error["exit_code"] == EXIT_REFUSED
    assert error["message"] == (f"refusing to publish: {len(HOSTILE)} of {2 * len(HOSTILE)} records are invalid (50%, "
                                "more than max_skip_share 10%): fix the export or pass --allow-shrink; the published "
                                "index is unchanged")
    assert not (env / "current").exists()
    assert main(args + ["--allow-shrink"]) == 0
    logged = events(capsys.readouterr().err)
    skipped = [e for e in logged if e["event"] == "skipped"]
    assert len(skipped) == len(HOSTILE) + 1 and skipped[-1]["count"] == len(HOSTILE)
    assert logged[-1]["skipped_invalid"] == len(HOSTILE) and logged[-1]["articles"] == len(HOSTILE)


def test_symlinked_folders_and_files_are_read_once_and_loops_noted(tmp_path, env, capsys):
    corpus, arch = tmp_path / "corpus", tmp_path / "arch"
    (corpus / "2026").mkdir(parents=True)
    arch.mkdir()
    write_jsonl(corpus / "2026" / "new.jsonl", good(5, "new"))
    write_jsonl(arch / "old.jsonl", good(5, "old"))
    os.symlink("../arch", corpus / "archive")  # the archive mounted by a link: must be read
    os.symlink("..", corpus / "2026" / "up")  # a loop back to corpus/
    os.symlink("../arch/old.jsonl", corpus / "same.jsonl")  # a second way to one file
    os.symlink("../nowhere.jsonl", corpus / "gone.jsonl")  # a broken link
    assert main(["index", str(corpus), "--index", str(env), "--log-json"]) == 0
    logged = events(capsys.readouterr().err)
    summary = logged[-1]
    assert summary["articles"] == 10 and summary["files_read"] == 2
    assert summary["files"] == [str(corpus / "2026" / "new.jsonl"), str(corpus / "archive" / "old.jsonl")]
    notes = sorted(e["message"] for e in logged if e["event"] == "corpus_link")
    assert len(notes) == 3 and all(e["level"] == "warning" for e in logged if e["event"] == "corpus_link")
    assert "2026/up: a symbolic link to " in notes[0] and "(a loop or a second link): skipped" in notes[0]
    assert "gone.jsonl: a broken symbolic link (points to ../nowhere.jsonl): skipped" in notes[1]
    assert "same.jsonl: a symbolic link to " in notes[2]


def test_shrinking_export_is_refused_and_allow_shrink_means_it(tmp_path, env, capsys):
    full = write_jsonl(tmp_path / "full.jsonl", good(40))
    assert main(["index", str(full), "--index", str(env), "--quiet"]) == 0
    before = state(env)
    capsys.readouterr()
    three = write_jsonl(tmp_path / "three.jsonl", good(3))
    assert main(["index", str(three), "--index", str(env), "--quiet"]) == EXIT_REFUSED
    assert capsys.readouterr().err == ("recommender: error: refusing to publish: this run would delete 37 of the 40 "
                                       "published articles (92%, more than max_delete_share 10%): check the export or "
                                       "pass --allow-shrink; the published index is unchanged\n")
    assert state(env) == before
    # An export that dropped the UTC offset of nearly every date: the skip guard, even though nothing is deleted.
    broken = write_jsonl(tmp_path / "broken.jsonl", [{**r, "published_at": "2026-03-01T08:00:00"} if i else r
                                                     for i, r in enumerate(good(40))])
    assert main(["index", str(broken), "--index", str(env), "--skip-invalid", "--quiet"]) == EXIT_REFUSED
    assert "39 of 40 records are invalid (98%" in capsys.readouterr().err and state(env) == before
    four = write_jsonl(tmp_path / "four.jsonl", good(36))  # 4 of 40 deleted = 10%: allowed
    assert main(["index", str(four), "--index", str(env), "--quiet"]) == 0 and len(load_snapshot(env)) == 36
    assert main(["index", str(three), "--index", str(env), "--quiet", "--allow-shrink"]) == 0
    assert len(load_snapshot(env)) == 3


def test_metadata_only_changes_are_counted(tmp_path, env, capsys):
    records = good(4)
    assert main(["index", str(write_jsonl(tmp_path / "a.jsonl", records)), "--index", str(env), "--quiet"]) == 0
    records[0]["section"], records[1]["published_at"], records[2]["url"] = "Sport", "2026-03-02T08:00:00Z", "https://x.test/2"
    capsys.readouterr()
    assert main(["index", str(write_jsonl(tmp_path / "a.jsonl", records)), "--index", str(env), "--quiet"]) == 0
    assert "0 new, 0 changed, 3 metadata changed, 1 unchanged, 0 deleted" in capsys.readouterr().out
    assert load_snapshot(env).articles[0]["section"] == "Sport"


def test_profile_change_needs_the_flag_and_cleanup_keeps_the_snapshot_a_server_uses(tmp_path, monkeypatch):
    """A server on a `use` index refuses tfidf snapshots and keeps serving its own: clean-up must keep it."""
    corpus = write_jsonl(tmp_path / "c.jsonl", good(3))
    base = load_settings(environ={}, index_dir=str(tmp_path / "index"), cache_dir=str(tmp_path / "cache"),
                         state_dir="", keep_snapshots=1)
    served = jobs.build_index([corpus], base.index_dir, base.replace(profile="use")).snapshot
    tfidf = base.replace(profile="tfidf")
    with pytest.raises(jobs.PublishRefused, match="built with profile 'use' and this job would replace it with "
                                                  "profile 'tfidf' .*--profile-change"):
        jobs.build_index([corpus], base.index_dir, tfidf)
    assert (tmp_path / "index" / "current").resolve() == served.resolve()
    newest = [jobs.build_index([corpus], base.index_dir, tfidf, guards=jobs.Guards(profile_change=i == 0)).snapshot
              for i in range(3)]
    on_disk = sorted(p.name for p in (tmp_path / "index" / "snapshots").iterdir())
    assert on_disk == sorted([served.name, newest[-1].name])  # keep_snapshots=1, plus the newest `use` one
    assert len(load_snapshot(served)) == 3  # still whole: a server on it goes on answering


def test_a_damaged_cache_is_moved_aside_and_tfidf_never_touches_the_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", "")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "embeddings.sqlite").write_bytes(b"this is not a database" * 100)
    corpus = write_jsonl(tmp_path / "c.jsonl", good(3))
    args = ["index", str(corpus), "--index", str(tmp_path / "index"), "--quiet"]
    assert main(args + ["--profile", "tfidf"]) == 0
    assert capsys.readouterr().err == "" and [p.name for p in cache.iterdir()] == ["embeddings.sqlite"]
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(cache))
    assert main(args + ["--profile", "use", "--profile-change"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "was damaged (file is not a database): moved aside to embeddings.sqlite.damaged-" in err[0]
    assert len(EmbeddingCache(cache / "embeddings.sqlite").get_many([])) == 0
    assert sorted(p.name.split(".damaged-")[0] for p in cache.iterdir() if "damaged" in p.name) == ["embeddings.sqlite"]


def test_an_unwritable_cache_is_bypassed_and_a_full_one_fails_the_job_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", "")
    monkeypatch.setenv("RECOMMENDER_PROFILE", "use")
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(tmp_path / "file" / "cache"))
    corpus = write_jsonl(tmp_path / "c.jsonl", good(3))
    index = tmp_path / "index"
    assert main(["index", str(corpus), "--index", str(index), "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cannot be created" in err[0] and err[0].endswith("embedding without it")
    before = state(index)
    # A full disk, for real as far as SQLite can tell: the file may not grow by a single page.
    real_open = EmbeddingCache._open

    def full_open(self):
        db = real_open(self)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    monkeypatch.setattr(EmbeddingCache, "_open", full_open)
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(tmp_path / "cache"))
    changed = write_jsonl(tmp_path / "c.jsonl", good(3, "other") + good(3))
    assert main(["index", str(changed), "--index", str(index), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full (database or disk is full)" in err and "Traceback" not in err
    assert state(index) == before


def test_resumed_progress_never_overshoots_when_texts_repeat(tmp_path):
    from recommender.embed.cache import encode_cached
    from recommender.embed.encoders.base import DenseEncoder

    class Fake(DenseEncoder):
        dim = 2

        def identity(self):
            return {"fake": 1}

        def _load(self):
            return None

        def _encode(self, model, texts):
            import numpy as np

            return np.ones((len(texts), 2), dtype=np.float32)

    cache = EmbeddingCache(tmp_path / "e.sqlite")
    texts = ["a", "a", "b", "b", "c"] * 2 + ["d"]
    encode_cached(Fake(), texts[:6], cache)  # an interrupted first run: a, b, c cached
    reported = []
    encode_cached(Fake(), texts, cache, on_batch=reported.append)
    assert sum(reported) == len(texts)


# Peak memory: one job over records at every limit against one over ordinary records of the same count.
WORST = dict(title="T" * FIELD_LIMITS["title"], teaser="V " * (FIELD_LIMITS["teaser"] // 2),
             body="Donau. " * (MAX_BODY_CHARS // 7), tags=["t" * 100] * 100, author="A" * 500, section="S" * 100,
             url="https://x.test/" + "u" * 2000)
MEMORY_BUDGET_MIB = 64


def peak_rss_mib(corpus: Path, index: Path) -> float:
    """The job's peak resident memory, measured as the only child of a small wrapper process."""
    wrapper = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
    job = [sys.executable, "-m", "recommender", "index", str(corpus), "--index", str(index), "--quiet",
           "--skip-invalid", "--allow-shrink", "--profile", "tfidf"]
    done = subprocess.run([sys.executable, "-c", wrapper, *job], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "RECOMMENDER_CACHE_DIR": "", "RECOMMENDER_STATE_DIR": ""})
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1]) / 1024


def test_peak_memory_of_a_job_stays_within_a_budget_whatever_the_records_hold(tmp_path):
    n = 40
    normal = write_jsonl(tmp_path / "normal.jsonl", good(n))
    worst = tmp_path / "worst.jsonl"
    with worst.open("wb") as out:
        for i in range(n):
            out.write(line(record(f"w{i}", **WORST)))
        out.write(b'{"id": "g", "body": "' + b"x" * 40_000_000 + b'"}\n')  # 40 MB on one line
        out.write(HOSTILE["100,000 nested brackets"][0] + HOSTILE["a 5,000-digit number"][0])
    base = peak_rss_mib(normal, tmp_path / "i1")
    peak = peak_rss_mib(worst, tmp_path / "i2")
    print(f"peak RSS: {base:.0f} MiB for {n} ordinary records, {peak:.0f} MiB for {n} records at every limit "
          f"and three hostile lines")
    assert peak - base < MEMORY_BUDGET_MIB


def test_bounded_text_preparation_reads_real_bodies_as_before(monkeypatch):
    """Reading only a bounded start (and end) of the body changes nothing for real text: caches stay valid."""
    import random

    from recommender.embed.signals import RawText
    from recommender.ingest import textprep
    from recommender.ingest.profiles import PROFILES

    words = "Die Donau tritt in Passau über die Ufer. Helfer füllen\nSandsäcke,  der Pegel steigt! Was nun?".split(" ")
    rng = random.Random(7)
    bodies = [" ".join(rng.choice(words) for _ in range(n)) for n in (10, 3_000, 30_000)]  # up to 180,000 chars
    views = {s.view for profile in PROFILES.values() for s in profile.signals}
    views.add(textprep.TextView(head_chars=1_000, tail_chars=500))  # no profile reads the end yet; it is bounded too

    def texts(body: str, view) -> tuple:
        return textprep.prepare(RawText("Titel", body, "Vorspann."), view), textprep.prepare_chunks(RawText("T", body), view)

    bounded = {(len(body), view): texts(body, view) for body in bodies for view in views}
    teasers = [textprep.make_teaser(body) for body in bodies]
    monkeypatch.setattr(textprep, "_body_read", lambda body, view: textprep.normalize_space(body))  # the whole body
    for body, teaser in zip(bodies, teasers):
        for view in views:
            assert bounded[(len(body), view)] == texts(body, view)
        whole = ""  # make_teaser over every sentence of the body, as before
        for sentence in textprep.split_sentences(body):
            if len(f"{whole} {sentence}".strip()) > 240:
                break
            whole = f"{whole} {sentence}".strip()
        assert teaser == whole
