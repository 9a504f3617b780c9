import pytest
from conftest import record, write_jsonl

from recommender.config import load_settings
from recommender.embed.encoders.use import UseEncoder
from recommender.index.snapshot import load_snapshot, resolve_snapshot
from recommender.jobs import index_job as jobs

BODIES = [
    "Die Donau tritt in Passau über die Ufer, Helfer füllen Sandsäcke.",
    "Der Stadtrat von Hallenbach stimmt über den Haushalt ab und streitet über Schulden.",
    "Ein Erdbeben erschüttert die Küste Japans, Züge stehen still.",
]


@pytest.fixture
def corpus(tmp_path):
    return write_jsonl(tmp_path / "c.jsonl", [record(f"a{i}", body=body) for i, body in enumerate(BODIES)])


def test_second_run_embeds_nothing_again(tmp_path, corpus, monkeypatch):
    calls = []
    real = UseEncoder._encode
    monkeypatch.setattr(UseEncoder, "_encode", lambda self, model, texts: calls.append(len(texts)) or real(self, model, texts))
    settings = load_settings(environ={}, profile="use", index_dir=str(tmp_path / "index"), cache_dir=str(tmp_path / "cache"))
    first = jobs.build_index([corpus], settings.index_dir, settings)
    assert sum(calls) == 3
    second = jobs.build_index([corpus], settings.index_dir, settings)
    assert sum(calls) == 3  # every prepared text was in the cache
    assert first.snapshot != second.snapshot and resolve_snapshot(settings.index_dir) == second.snapshot.resolve()
    write_jsonl(corpus, [record(f"a{i}", body=body) for i, body in enumerate(BODIES)] + [record("new", body="Neu.")])
    jobs.build_index([corpus], settings.index_dir, settings)
    assert sum(calls) == 4  # only the new article
    write_jsonl(corpus, [record("a0", body=BODIES[0]), record("a1", body="Geändert."), record("new", body="Neu.")])
    summary = jobs.build_index([corpus], settings.index_dir, settings, guards=jobs.Guards(allow_shrink=True))
    assert summary.changes == {"new": 0, "changed": 1, "metadata_changed": 0, "unchanged": 2, "deleted": 1}
    assert sum(calls) == 5  # only the changed article; the deleted one left the index
    assert [a["id"] for a in load_snapshot(settings.index_dir).articles] == ["a0", "a1", "new"]


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_while_publishing_keeps_the_old_index_and_no_partial_snapshot(tmp_path, corpus, monkeypatch, failure):
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="")
    before = jobs.build_index([corpus], settings.index_dir, settings).snapshot

    def broken_publish(*args, **kwargs):
        raise failure

    monkeypatch.setattr(jobs, "publish", broken_publish)
    with pytest.raises(type(failure)):
        jobs.build_index([corpus], settings.index_dir, settings)
    assert resolve_snapshot(settings.index_dir) == before.resolve()
    assert [p.name for p in (tmp_path / "index" / "snapshots").iterdir()] == [before.name]
    assert len(load_snapshot(settings.index_dir)) == 3


def test_summary_counts_and_timings(tmp_path, corpus):
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="")
    summary = jobs.build_index([corpus], settings.index_dir, settings)
    assert summary.articles == 3 and summary.skipped == []
    stages = ["read", "embed", "lexical", "write", "verify", "publish"]  # the index may time stages of its own too
    assert [name for name in summary.seconds if name in stages] == stages
    assert summary.articles_per_second > 0
    assert load_snapshot(summary.snapshot).manifest["skipped_invalid"] == 0


def test_a_second_job_on_the_same_index_is_refused_while_the_first_runs(tmp_path, corpus, capsys):
    from recommender.cli import main
    from recommender.jobs.index_job import IndexLocked, index_lock

    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="")
    with index_lock(settings.index_dir):
        with pytest.raises(IndexLocked, match=r"another index job \(pid \d+\) is writing"):
            jobs.build_index([corpus], settings.index_dir, settings)
        assert main(["index", str(corpus), "--index", settings.index_dir, "--profile", "tfidf", "--quiet"]) == 1
        assert "another index job" in capsys.readouterr().err
    assert jobs.build_index([corpus], settings.index_dir, settings).articles == 3  # free again


def test_search_structures_are_updated_unless_rebuilt_or_much_changed(tmp_path, settings):
    """Over the sample corpus (embedded from the repository's cache) with graphs from 10 articles on."""
    from conftest import CORPUS

    from recommender.ingest.corpus import load_corpus

    records = [a.to_json() for a in load_corpus([CORPUS]).articles]
    settings = settings.replace(ann_min_articles=10, candidates=5)
    corpus = tmp_path / "c.jsonl"

    def run(subset, **guards):
        write_jsonl(corpus, subset)
        summary = jobs.build_index([corpus], settings.index_dir, settings, guards=jobs.Guards(**guards))
        return summary.snapshot.name, load_snapshot(summary.snapshot).manifest["search_build"]

    first, record = run(records[:-1])
    assert record["mode"] == "full"
    # One new article (a known text under a new id: nothing to embed) is within incremental_max_share.
    share = 1 / (len(records) - 1)
    second, record = run(records[:-1] + [{**records[0], "id": "copy"}])
    assert record["mode"] == "incremental" and record["from"] == first
    assert abs(record["changed_since_full"] - share) < 1e-6
    assert run(records[:-1], rebuild=True)[1]["reason"] == "asked for (--rebuild)"
    lists = resolve_snapshot(settings.index_dir) / "candidates.npy"
    lists.write_bytes(lists.read_bytes()[:-1] + b"\x01")  # a flipped byte is not carried into the next snapshot
    assert "failed verification" in run(records[:-1] + [{**records[0], "id": "copy"}])[1]["reason"]
    settings = settings.replace(incremental_max_share=share / 2)
    assert "incremental_max_share" in run(records[:-1])[1]["reason"]  # the copy deleted: more than half of share
