"""Shared fixtures: settings in a temporary place, tiny corpora built in code, one index of corpus/ per session,
and, as in Flask's tutorial, `app`, `client` and `runner` over the committed tiny snapshot."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from recommender.config import Settings, load_settings
from recommender.ingest.corpus import Article

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
# A 12-article snapshot of the default profile, committed (tests/fixtures): loaded, never rebuilt.
TINY_INDEX = REPO / "tests" / "fixtures" / "index-exact"
API_TOKEN = "app-fixture-token-51c"  # the editors' token of the `app` fixture
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# Embeddings of corpus/ are cached beside the repository's own data (as `make run` does), so a second
# test run, or a test run after `make run`, embeds nothing again.
CACHE_DIR = REPO / "data" / "cache"


def make_article(article_id: str, title: str, body: str, days_ago: float = 1.0, lang: str = "de",
                 section: str = "Politik", teaser: str = "", now: datetime | None = None) -> Article:
    """An Article with sensible defaults for tests."""
    now = now or datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    return Article(id=article_id, title=title, body=body, published_at=now - timedelta(days=days_ago), lang=lang,
                   section=section, teaser=teaser, url=f"https://example.test/{article_id}")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records as JSON Lines."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def record(article_id: str, **changes) -> dict:
    """A valid corpus record, with fields changed or removed (value None removes)."""
    base = {
        "id": article_id, "url": f"https://example.test/{article_id}", "title": f"Titel {article_id}",
        "teaser": "Ein kurzer Vorspann.", "body": f"Der Text des Artikels {article_id}. Er hat zwei Sätze.",
        "published_at": "2026-03-01T08:00:00+01:00", "section": "Politik", "lang": "de",
        "tags": ["Test"], "author": "Redaktion",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def settings(tmp_path):
    """Settings pointing at a temporary index, with the repository's embedding cache."""
    return load_settings(environ={}, index_dir=str(tmp_path / "index"), cache_dir=str(CACHE_DIR),
                         state_dir=str(tmp_path / "state"))


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory):
    """The sample corpus indexed once per session with the default profile: (settings, index_dir)."""
    from recommender.jobs.index_job import build_index

    index_dir = tmp_path_factory.mktemp("corpus-index") / "index"
    settings = load_settings(environ={}, index_dir=str(index_dir), cache_dir=str(CACHE_DIR),
                             state_dir=str(index_dir.parent / "state"))
    build_index([CORPUS], index_dir, settings)
    return settings, index_dir


@pytest.fixture(scope="session")
def corpus_engine(corpus_index):
    """A Recommender over the session's index of corpus/."""
    from recommender.engine import Recommender

    settings, index_dir = corpus_index
    return Recommender.open(settings, index_dir)


@pytest.fixture(scope="session")
def stories() -> dict[str, dict]:
    """corpus/stories.json: story label -> {title, articles}."""
    return json.loads((CORPUS / "stories.json").read_text(encoding="utf-8"))


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """n random unit vectors of size dim, float32."""
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def tiny_engine():
    """A Recommender over the committed tiny snapshot, loaded once per session (its encoders load on first use)."""
    from recommender.engine import Recommender

    settings = load_settings(environ={}, index_dir=str(TINY_INDEX), cache_dir="", state_dir="")
    return Recommender.open(settings, TINY_INDEX)


@pytest.fixture
def app_settings(tmp_path) -> Settings:
    """Settings of the `app` fixture: the tiny snapshot, this test's own editors' state, the token API_TOKEN.

    A test module serving an index of its own overrides this fixture; `engine`, `app` and `client` follow.
    """
    return load_settings(environ={}, index_dir=str(TINY_INDEX), cache_dir="", state_dir=str(tmp_path / "state"),
                         api_token=API_TOKEN)


def _same_encoders(a: Settings, b: Settings) -> bool:
    names = ("profile", "threads", "batch_size", "sentence_transformer_model")
    return all(getattr(a, name) == getattr(b, name) for name in names)


@pytest.fixture
def engine(app_settings, tiny_engine):
    """A Recommender over app_settings' index with this test's own editors' decisions and live articles."""
    from recommender.engine import Recommender

    engine = Recommender.open(app_settings)
    if _same_encoders(app_settings, tiny_engine.settings):
        # The encoders' models take a second or more to load: the session's are shared (they hold no state).
        engine = dataclasses.replace(engine, encoder=tiny_engine.encoder)
    return engine


@pytest.fixture
def app(app_settings, engine):
    """The API serving `engine` with app_settings."""
    from recommender.serve.app import create_app

    return create_app(app_settings, engine)


@pytest.fixture
def make_app(app_settings, engine):
    """create_app over the same engine with some settings changed, e.g. make_app(write_rate_limit="3/minute")."""
    from recommender.serve.app import create_app

    return lambda **changes: create_app(app_settings.replace(**changes), engine)


@pytest.fixture
def client(app):
    """A test client of `app`."""
    return app.test_client()


@pytest.fixture
def browser():
    """A headless Chromium (tests/browsers.py), closed after the test; skip the test with browsers.needs_chromium."""
    from browsers import chromium

    driver = chromium()
    yield driver
    driver.quit()


@dataclasses.dataclass
class Ran:
    """What one command line run did."""

    exit_code: int
    output: str
    stderr: str


class CommandLine:
    """Runs `recommender ARGS...` in this process (recommender.cli.main, argparse), capturing what it prints."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def invoke(self, *argv: str) -> Ran:
        """Run the command line with argv; a usage error's SystemExit becomes its exit code."""
        from recommender.cli import main

        self._capsys.readouterr()  # only this run's output
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: bad usage
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = self._capsys.readouterr()
        return Ran(code, out, err)


@pytest.fixture
def runner(app_settings, monkeypatch, capsys) -> CommandLine:
    """The command line, configured by the environment as in production: app_settings' index, profile and state."""
    for name in ("index_dir", "profile", "cache_dir", "state_dir", "state_url"):
        monkeypatch.setenv(f"RECOMMENDER_{name.upper()}", str(getattr(app_settings, name)))
    return CommandLine(capsys)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for this test session (tests/pgserver.py), stopped and removed at its end."""
    from pgserver import PostgresServer, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres) -> str:
    """The URL of a new, empty database of the session's PostgreSQL server (one per test)."""
    if not postgres.running():  # a test that stopped it failed before starting it again
        postgres.start()
    return postgres.create_database()
