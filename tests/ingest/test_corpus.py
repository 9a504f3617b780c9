import json

import pytest
from conftest import record, write_jsonl

from recommender.ingest.corpus import CorpusError, load_corpus


def test_reads_json_lines_and_a_folder_of_json_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [record("a1"), record("a2")])
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "b1.json").write_text(json.dumps(record("b1")), encoding="utf-8")
    (folder / "b2.json").write_text(json.dumps([record("b2"), record("b3")]), encoding="utf-8")
    result = load_corpus([tmp_path / "a.jsonl", folder])
    assert [a.id for a in result.articles] == ["a1", "a2", "b1", "b2", "b3"]
    first = result.articles[0]
    assert first.published_at.utcoffset().total_seconds() == 3600
    assert first.tags == ("Test",) and first.lang == "de"


def test_stories_file_in_a_corpus_folder_is_not_read_as_articles(tmp_path):
    write_jsonl(tmp_path / "articles.jsonl", [record("a1")])
    (tmp_path / "stories.json").write_text(json.dumps({"s": {"title": "x", "articles": ["a1"]}}))
    assert [a.id for a in load_corpus([tmp_path]).articles] == ["a1"]


BAD_RECORDS = [
    (record("x", body=None), "missing required field(s): body"),
    (record("x", body="   "), "body is empty"),
    (record("x", published_at="2026-03-01T08:00:00"), "has no UTC offset"),
    (record("x", published_at="gestern"), "published_at"),
    (record("x", title=42), "field 'title' must be a string"),
    (record("x", tags="Politik"), "'tags' must be a list of strings"),
    (record("x", lang="deutsch"), "not an ISO 639 code"),
    (record("../etc/passwd"), "may hold only letters"),
    (record("a\u0007b"), "may hold only letters"),
    ([1, 2], "expected a JSON object"),
]


@pytest.mark.parametrize("bad, reason", BAD_RECORDS)
def test_invalid_records_name_file_line_and_reason(tmp_path, bad, reason):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(record("ok1")) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as error:
        load_corpus([path])
    assert f"{path}:2: " in str(error.value) and reason in str(error.value)
    assert "--skip-invalid" in str(error.value)


def test_truncated_line_and_invalid_utf8_are_reported(tmp_path):
    path = tmp_path / "c.jsonl"
    good = json.dumps(record("ok1")).encode()
    path.write_bytes(good + b"\n" + good[:40] + b"\n" + b'{"id": "\xff\xfe"}\n')
    result = load_corpus([path], skip_invalid=True)
    assert [a.id for a in result.articles] == ["ok1"]
    assert [(p.line, p.reason.split(":")[0]) for p in result.problems] == [(2, "not valid JSON"), (3, "not valid JSON")]
    assert "invalid UTF-8" in result.problems[1].reason


def test_skip_invalid_keeps_exactly_the_good_records(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [record("a"), record("b", lang=None), record("c")])
    result = load_corpus([path], skip_invalid=True)
    assert [a.id for a in result.articles] == ["a", "c"]
    assert len(result.problems) == 1 and result.problems[0].line == 2


def test_duplicate_id_with_other_content_is_an_error_but_an_exact_repeat_is_not(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [record("a"), record("a"), record("a", title="Anders")])
    result = load_corpus([path], skip_invalid=True)
    assert len(result.articles) == 1
    assert len(result.problems) == 1 and "duplicate id 'a' with different content" in result.problems[0].reason
    assert f"{path}:1" in result.problems[0].reason


def test_missing_paths_and_empty_folders_fail(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus([tmp_path / "nope.jsonl"])
    with pytest.raises(CorpusError, match="no .jsonl or .json files"):
        load_corpus([tmp_path])


def test_content_hash_changes_with_text_not_with_url():
    from recommender.ingest.corpus import article_from_json

    a = article_from_json(record("a"))
    assert a.content_hash() == article_from_json(record("a", url="https://other.test/a")).content_hash()
    assert a.content_hash() != article_from_json(record("a", body="Neuer Text.")).content_hash()


def test_windows_line_endings_are_accepted(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes((json.dumps(record("a")) + "\r\n" + json.dumps(record("b")) + "\r\n").encode())
    assert [a.id for a in load_corpus([path]).articles] == ["a", "b"]
