"""Bad corpora: every kind of broken record is reported with file and line, `recommender index` never leaves a
half-written index, and --skip-invalid skips exactly the bad records (also for generated records)."""
import json
from pathlib import Path

import pytest
from conftest import record, write_jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.cli import main
from recommender.index.snapshot import load_snapshot
from recommender.ingest.corpus import MAX_BODY_CHARS, load_corpus

GOOD = [record(f"ok-{i}", title=f"Donau {i}", body=f"Die Donau in Passau, Teil {i}.") for i in range(3)]


def line(value) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode()


# name -> (the bad line's bytes, a fragment of the reason)
BAD_LINES = {
    "truncated line": (line(record("t"))[:45] + b"\n", "not valid JSON"),
    "title not a string": (line(record("t", title=["a"])), "field 'title' must be a string"),
    "published_at a number": (line(record("t", published_at=20260301)), "must be a string"),
    "tags not a list": (line(record("t", tags={"a": 1})), "'tags' must be a list of strings"),
    "a JSON array": (line([record("t")]), "expected a JSON object"),
    "a bare string": (line("t"), "expected a JSON object"),
    "missing id": (line(record("t", id=None)), "missing required field(s): id"),
    "missing title and lang": (line(record("t", title=None, lang=None)), "title, lang"),
    "duplicate id, other text": (line(record("ok-1", body="Ganz anderer Text.")), "duplicate id 'ok-1'"),
    "empty body": (line(record("t", body="")), "missing required field(s): body"),
    "blank body": (line(record("t", body=" \n\t ")), "body is empty"),
    "300 kB body": (line(record("t", body="Donau " * 50_000)), f"more than {MAX_BODY_CHARS:,}"),
    "5 MB line": (b'{"id": "t", "body": "' + b"x" * 5_000_000 + b'"}\n', "line longer than 4,194,304 bytes"),
    "100,000 nested brackets": (b"[" * 100_000 + b"]" * 100_000 + b"\n", "nests deeper than 32 levels"),
    "a 5,000-digit number": (b'{"id": "t", "n": ' + b"9" * 5_000 + b"}\n", "a number of more than 4300 digits"),
    "a NUL byte": (line(record("t")).replace(b'"t"', b'"t\x00"', 1), "not valid JSON: Invalid control character"),
    "a BOM inside the file": (b"\xef\xbb\xbf" + line(record("t")), "not valid JSON: Unexpected UTF-8 BOM"),
    "invalid UTF-8": (b'{"id": "t", "title": "Stra\xdfe"}\n', "invalid UTF-8"),
    "lone surrogate": (b'{"id": "t", "title": "\\ud800", "body": "x", "lang": "de", "published_at": "2026-01-01T00:00:00Z"}\n',
                       "surrogate"),
    "unknown language name": (line(record("t", lang="klingonisch")), "not an ISO 639 code"),
    "language with a newline": (line(record("t", lang="de\n")), "not an ISO 639 code"),
    "date without offset": (line(record("t", published_at="2026-03-01T08:00:00")), "published_at: '2026-03-01T08:00:00' has no UTC offset"),
    "date only": (line(record("t", published_at="2026-03-01")), "has no UTC offset"),
    "date nonsense": (line(record("t", published_at="31.02.2026")), "published_at"),
    "year 0001": (line(record("t", published_at="0001-01-01T00:00:00+01:00")), "published_at: 0001-01-01T00:00:00+01:00 is before 1800"),
    "year 9999": (line(record("t", published_at="9999-12-31T23:59:59-05:00")), "more than 366 days in the future"),
    "language xx": (line(record("t", lang="xx")), "not an ISO 639 code"),
    "id with slash": (line(record("a/../../etc")), "may hold only letters"),
    "id with backslash": (line(record("a\\b")), "may hold only letters"),
    "id starting with a dot": (line(record("..")), "may hold only letters"),
    "id with a NUL": (line(record("a\u0000b")), "may hold only letters"),
    "id with a trailing newline": (line(record("a1\n")), "may hold only letters"),
    "id with RTL mark": (line(record("a\u202eb")), "may hold only letters"),
    "id too long": (line(record("a" * 201)), "at most 200"),
}


def corpus_with(tmp_path: Path, bad: bytes) -> Path:
    """GOOD[0], GOOD[1], the bad line (line 3), GOOD[2], with mixed line endings."""
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(line(GOOD[0]).replace(b"\n", b"\r\n") + line(GOOD[1]) + bad + line(GOOD[2]).replace(b"\n", b"\r\n"))
    return path


@pytest.mark.parametrize("name", BAD_LINES)
def test_each_bad_record_is_reported_with_file_and_line(tmp_path, name):
    bad, reason = BAD_LINES[name]
    path = corpus_with(tmp_path, bad)
    result = load_corpus([path], skip_invalid=True)
    assert [a.id for a in result.articles] == ["ok-0", "ok-1", "ok-2"]
    assert len(result.problems) == 1
    assert str(result.problems[0]).startswith(f"{path}:3: ") and reason in str(result.problems[0]), result.problems


@pytest.fixture
def index_env(tmp_path, monkeypatch):
    """A published tfidf index of GOOD: (index_dir, the snapshot it serves, the snapshot dirs on disk)."""
    monkeypatch.setenv("RECOMMENDER_PROFILE", "tfidf")
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", "")
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", "")
    index = tmp_path / "index"
    assert main(["index", str(write_jsonl(tmp_path / "good.jsonl", GOOD)), "--index", str(index), "--quiet"]) == 0
    return index, (index / "current").resolve(), sorted((index / "snapshots").iterdir())


def ids(index: Path) -> list[str]:
    snapshot = load_snapshot(index)
    return [snapshot.articles[row]["id"] for row in range(len(snapshot))]


@pytest.mark.parametrize("name", BAD_LINES)
def test_index_job_fails_on_a_bad_record_and_leaves_the_index_as_it_was(tmp_path, index_env, capsys, name):
    index, served, snapshots = index_env
    path = corpus_with(tmp_path, BAD_LINES[name][0])
    assert main(["index", str(path), "--index", str(index), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert f"{path}:3: " in error and "--skip-invalid" in error
    assert (index / "current").resolve() == served  # the previous snapshot is still the published one
    assert sorted((index / "snapshots").iterdir()) == snapshots  # and nothing half-written lies beside it
    assert ids(index) == ["ok-0", "ok-1", "ok-2"]


def test_skip_invalid_indexes_exactly_the_good_records_of_a_very_bad_corpus(tmp_path, index_env, capsys):
    index, served, _ = index_env
    path = tmp_path / "all-bad.jsonl"
    good = [record(f"new-{i}", body=f"Neuer Text {i} über Passau.") for i in range(3)]
    bad = [name for name in BAD_LINES if not name.startswith("duplicate")]  # ok-1 is new in this file
    path.write_bytes(b"".join(BAD_LINES[name][0] + (line(good[i]) if i < 3 else b"") for i, name in enumerate(bad)))
    assert main(["index", str(path), "--index", str(index), "--skip-invalid", "--quiet"]) == 3  # the shrink guard
    assert "refusing to publish" in capsys.readouterr().err and (index / "current").resolve() == served
    assert main(["index", str(path), "--index", str(index), "--skip-invalid", "--allow-shrink", "--quiet"]) == 0
    assert (index / "current").resolve() != served
    assert sorted(ids(index)) == ["new-0", "new-1", "new-2"]
    assert load_snapshot(index).manifest["skipped_invalid"] == len(bad)


def test_a_corpus_of_only_bad_records_fails_even_with_skip_invalid(tmp_path, index_env, capsys):
    index, served, snapshots = index_env
    path = tmp_path / "bad.jsonl"
    path.write_bytes(BAD_LINES["truncated line"][0] + BAD_LINES["id with slash"][0])
    assert main(["index", str(path), "--index", str(index), "--skip-invalid", "--quiet"]) == 1
    assert "no valid article" in capsys.readouterr().err
    assert (index / "current").resolve() == served and sorted((index / "snapshots").iterdir()) == snapshots


def test_well_formed_but_unknown_languages_and_hostile_text_are_indexed_as_text(tmp_path, index_env):
    index, _, _ = index_env
    hostile = [
        record("tlh-1", lang="tlh", title="Qapla'", body="nuqneH. Heghlu'meH QaQ jajvam."),
        record("html-1", title="<script>alert(1)</script><b>Donau</b>", body="<p>Passau &amp; <i>Inn</i></p>"),
        record("rtl-1", title="\u202euanoD\u202c \u200fمرحبا", body="Die Donau \u200f\u202e in Passau."),
        record("long-1", title="Donau " * 166, body="Passau " * 10_000),
        record("nul-1", title="A\u0000B", body="Zeile\r\nzwei\rdrei\u2028vier"),
    ]
    assert main(["index", str(write_jsonl(tmp_path / "h.jsonl", GOOD + hostile)), "--index", str(index), "--quiet"]) == 0
    snapshot = load_snapshot(index)
    stored = {snapshot.articles[r]["id"]: snapshot.articles[r] for r in range(len(snapshot))}
    for given_record in hostile:
        assert stored[given_record["id"]]["title"] == given_record["title"].strip()
    assert main(["related", "html-1", "--index", str(index), "--json"]) == 0


# Hypothesis: any mix of valid records and records broken in a known way; --skip-invalid keeps exactly the valid.
BREAKERS = [
    lambda r: {**r, "title": 7}, lambda r: {k: v for k, v in r.items() if k != "body"},
    lambda r: {**r, "published_at": "2026-03-01T08:00"}, lambda r: {**r, "lang": "xx-long"},
    lambda r: {**r, "id": r["id"] + "/x"}, lambda r: {**r, "tags": "one"}, lambda r: {**r, "body": "   "},
]
text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(str.strip)
records = st.builds(
    lambda title, body, lang, offset: {"title": title, "body": body, "lang": lang,
                                       "published_at": f"2025-05-0{offset % 9 + 1}T10:00:00{'+' if offset % 2 else '-'}0{offset % 10}:00"},
    text, text, st.sampled_from(["de", "en", "fr", "tlh", "und"]), st.integers(0, 1000))
lines = st.lists(st.tuples(records, st.one_of(st.none(), st.sampled_from(range(len(BREAKERS))), st.just("garbage"))),
                 min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=lines)
def test_skip_invalid_skips_exactly_the_generated_bad_records(tmp_path, lines):
    path = tmp_path / "gen.jsonl"
    raw, expected_ids, expected_bad = [], [], []
    for number, (base, breaker) in enumerate(lines, start=1):
        rec = {**base, "id": f"g-{number}"}
        if breaker is None:
            raw.append(line(rec))
            expected_ids.append(rec["id"])
        elif breaker == "garbage":
            raw.append(line(rec)[: len(line(rec)) // 2] + b"\n")
            expected_bad.append(number)
        else:
            raw.append(line(BREAKERS[breaker](rec)))
            expected_bad.append(number)
    path.write_bytes(b"".join(raw))
    result = load_corpus([path], skip_invalid=True)
    assert [a.id for a in result.articles] == expected_ids
    assert [p.line for p in result.problems] == expected_bad
    assert all(p.source == str(path) for p in result.problems)
