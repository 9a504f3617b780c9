import json
import subprocess
import sys

import pytest
from conftest import CACHE_DIR, record, write_jsonl

from recommender.cli import main

FOLLOW_UPS = [
    "Am Morgen trafen weitere Einsatzkräfte ein, der Bürgermeister sprach von einer schwierigen Nacht.",
    "Experten erwarten, dass sich die Lage erst in einigen Tagen beruhigt; Schulen bleiben geschlossen.",
    "Im Rückblick zeigt sich, wie knapp die Entscheidung war und wer davon am meisten profitiert.",
]
TOPICS = {
    "flut": ("Hochwasser an der Donau", "Die Donau tritt über die Ufer. Passau evakuiert die Altstadt, Helfer füllen Sandsäcke."),
    "wahl": ("Landtagswahl in Bayern", "Bei der Landtagswahl verliert die CSU Stimmen. Die Freien Wähler legen in München zu."),
    "zins": ("EZB senkt die Zinsen", "Die Europäische Zentralbank senkt den Leitzins. Sparer in Frankfurt sind enttäuscht."),
}


@pytest.fixture
def corpus(tmp_path):
    records = []
    for topic, (title, body) in TOPICS.items():
        for n in range(3):
            records.append(record(f"{topic}-{n}", title=f"{title}: Teil {n}", body=f"{body} {FOLLOW_UPS[n]}",
                                  published_at=f"2026-0{n + 1}-05T10:00:00+01:00"))
    return write_jsonl(tmp_path / "corpus.jsonl", records)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_PROFILE", "tfidf")
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(CACHE_DIR))
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "index"


def test_index_then_related_as_table_and_json(corpus, env, capsys):
    assert main(["index", str(corpus), "--index", str(env), "--quiet"]) == 0
    assert "indexed 9 articles" in capsys.readouterr().out
    assert main(["related", "flut-0", "--index", str(env), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("flut-0: ") and len(lines) == 3
    assert "flut-" in lines[1] and "flut-" in lines[2]
    assert main(["related", "flut-0", "--index", str(env), "--json", "--exclude", "flut-1"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["article_id"] == "flut-0" and answer["index_version"]
    assert [i["id"] for i in answer["items"]][:1] == ["flut-2"]
    assert set(answer["items"][0]) == {"id", "title", "teaser", "url", "published_at", "section", "lang", "score",
                                       "relatedness", "relation", "image"}


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["related", "nope"], 1, "unknown article id 'nope'"),
        (["related", "flut-0", "-k", "0"], 2, "-k must be between 1 and 50"),
        (["related", "flut-0", "--max-age-days", "-3"], 2, "--max-age-days must be positive"),
        (["related", "flut-0", "--profile", "fast"], 1, "built with another configuration"),
        (["related", "flut-0", "--profile", "nonsense"], 2, "unknown profile 'nonsense'"),
    ],
)
def test_errors_are_one_line_and_non_zero(corpus, env, capsys, args, status, message):
    assert main(["index", str(corpus), "--index", str(env), "--quiet"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) if status == 2 else _no_exit():
        code = main(args + ["--index", str(env)])
        assert code == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("recommender: error: ")


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_missing_index_and_invalid_corpus(tmp_path, env, capsys):
    assert main(["related", "x", "--index", str(tmp_path / "none")]) == 1
    assert "no index at" in capsys.readouterr().err
    bad = write_jsonl(tmp_path / "bad.jsonl", [record("a"), record("b", published_at="2026-01-01")])
    assert main(["index", str(bad), "--index", str(env), "--quiet"]) == 1
    assert f"{bad}:2: published_at" in capsys.readouterr().err
    assert not (env / "snapshots").exists() or not any((env / "snapshots").iterdir())


def test_skip_invalid_reports_what_it_skipped(tmp_path, env, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [record("a"), record("b", lang=None), record("c")])
    assert main(["index", str(bad), "--index", str(env), "--quiet", "--skip-invalid"]) == 3  # 1 of 3: the guard
    assert "1 of 3 records are invalid (33%, more than max_skip_share 10%)" in capsys.readouterr().err
    assert main(["index", str(bad), "--index", str(env), "--quiet", "--skip-invalid", "--allow-shrink"]) == 0
    captured = capsys.readouterr()
    assert "indexed 2 articles" in captured.out
    assert "skipped 1 invalid record(s)" in captured.err and f"{bad}:2" in captured.err


def test_failed_rebuild_keeps_the_previous_index(corpus, env, tmp_path, capsys):
    assert main(["index", str(corpus), "--index", str(env), "--quiet"]) == 0
    before = (env / "current").resolve()
    bad = write_jsonl(tmp_path / "bad.jsonl", [record("x", body="")])
    assert main(["index", str(bad), "--index", str(env), "--quiet"]) == 1
    assert (env / "current").resolve() == before
    assert main(["related", "flut-0", "--index", str(env)]) == 0


def test_python_dash_m_and_bad_usage_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "recommender", "related"], capture_output=True, text=True)
    assert result.returncode == 2 and "the following arguments are required: id" in result.stderr
    result = subprocess.run([sys.executable, "-m", "recommender", "profiles"], capture_output=True, text=True)
    assert result.returncode == 0 and "default" in result.stdout and "tfidf" in result.stdout


def test_unwritable_index_directory_is_one_line(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_PROFILE", "tfidf")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["index", str(corpus), "--index", str(blocker / "index"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("recommender: error: ") and "Traceback" not in err


def test_related_and_settings_through_the_runner_over_the_tiny_snapshot(runner):
    ran = runner.invoke("related", "kursk-nordkorea-1", "-k", "2", "--json")
    assert ran.exit_code == 0, ran.stderr
    answer = json.loads(ran.output)
    assert answer["article_id"] == "kursk-nordkorea-1" and len(answer["items"]) == 2
    assert "kursk-nordkorea-1" not in [item["id"] for item in answer["items"]]
    assert runner.invoke("related", "nope").exit_code == 1
    assert runner.invoke("related", "kursk-nordkorea-1", "-k", "0").exit_code == 2
    listing = runner.invoke("settings")
    assert listing.exit_code == 0 and "api_token" in listing.output and "(not set)" in listing.output
