"""The `Article` record and reading it from JSON Lines files or folders of JSON files."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

# Used with fullmatch: `$` alone would also accept a trailing newline ("a1\n"), a control character.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
LANG_PATTERN = re.compile(r"[a-z]{2,3}")
# The longest real articles are around 100,000 characters; a body far beyond is a dump or a broken export,
# and would cost minutes of tokenising for one record.
MAX_BODY_CHARS = 1_000_000
# Bounds of the other fields, far above any real article and far below what would cost seconds or memory
# in the text preparation or a tokenizer: one hostile record must not cost more than a long real one. The
# same bounds guard the corpus reader and every HTTP endpoint that takes an article or a draft.
FIELD_LIMITS = {"id": 200, "title": 1_000, "teaser": 5_000, "body": MAX_BODY_CHARS, "published_at": 64,
                "lang": 16, "url": 2_048, "section": 100, "author": 500}
MAX_TAGS = 100
MAX_TAG_CHARS = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
REQUIRED = ("id", "title", "body", "published_at", "lang")
OPTIONAL_TEXT = ("url", "teaser", "section", "author")


class CorpusError(ValueError):
    """The corpus could not be read: bad records (without --skip-invalid) or no readable files."""


@dataclass(frozen=True)
class Article:
    """One news article as the engine knows it."""

    id: str
    title: str
    body: str
    published_at: datetime
    lang: str
    url: str = ""
    teaser: str = ""
    section: str = ""
    tags: tuple[str, ...] = ()
    author: str = ""

    def content_hash(self) -> str:
        """Hash of everything that changes what the article says (not its URL or byline)."""
        payload = json.dumps([self.title, self.teaser, self.body, self.lang], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON-able values (the corpus file format)."""
        data = asdict(self)
        data["published_at"] = self.published_at.isoformat()
        data["tags"] = list(self.tags)
        return data


@dataclass(frozen=True)
class Problem:
    """One record that could not be read: where it is and why."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass
class LoadResult:
    """Articles read, plus the records that were skipped as invalid."""

    articles: list[Article] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_datetime(value: str) -> datetime:
    """An ISO 8601 timestamp that must carry a UTC offset (naive times are ambiguous across sites)."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"published_at {value!r} has no UTC offset")
    return parsed


def article_from_json(data: Any) -> Article:
    """Validate one decoded JSON record and build an `Article`; raises ValueError with the reason."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    missing = [name for name in REQUIRED if data.get(name) in (None, "")]
    if missing:
        raise ValueError(f"missing required field(s): {', '.join(missing)}")
    for name in ("id", "title", "body", "published_at", "lang", *OPTIONAL_TEXT):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise ValueError(f"field {name!r} must be a string, got {type(data[name]).__name__}")
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("field 'tags' must be a list of strings")
    for name, limit in FIELD_LIMITS.items():
        value = data.get(name) or ""
        if len(value) > limit and name != "id":  # the id's own pattern says what it may be
            raise ValueError(f"{name} has {len(value):,} characters, more than {limit:,}")
    if len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_CHARS for tag in tags):
        raise ValueError(f"tags: at most {MAX_TAGS} tags of at most {MAX_TAG_CHARS} characters each")
    if not data["title"].strip():
        raise ValueError("title is empty (only white space)")
    texts = [(name, data.get(name) or "") for name in ("id", "title", "body", "published_at", "lang", *OPTIONAL_TEXT)]
    for name, value in texts + [("tags", tag) for tag in tags]:
        # JSON's \ud800 escapes decode to half characters no UTF-8 writer accepts: the index would crash later.
        if _SURROGATE.search(value):
            raise ValueError(f"field {name!r} holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape), not text")
    article_id = data["id"]
    if not ID_PATTERN.fullmatch(article_id):
        raise ValueError(f"id {article_id!r} may hold only letters, digits and . _ : - (at most 200)")
    lang = data["lang"].lower()
    if not LANG_PATTERN.fullmatch(lang):
        raise ValueError(f"lang {data['lang']!r} is not an ISO 639 code such as 'de' or 'en'")
    if not data["body"].strip():
        raise ValueError("body is empty")
    try:
        published_at = parse_datetime(data["published_at"])
    except ValueError as exc:
        raise ValueError(f"published_at: {exc}") from None
    return Article(
        id=article_id,
        title=data["title"].strip(),
        body=data["body"].strip(),
        published_at=published_at,
        lang=lang,
        url=(data.get("url") or "").strip(),
        teaser=(data.get("teaser") or "").strip(),
        section=(data.get("section") or "").strip(),
        tags=tuple(t.strip() for t in tags if t.strip()),
        author=(data.get("author") or "").strip(),
    )


def _records(path: Path) -> Iterator[tuple[str, int, Any]]:
    """(source, line, decoded JSON or the exception) for every record of a file."""
    source = str(path)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield source, getattr(exc, "lineno", 1), exc
            return
        for data_item in data if isinstance(data, list) else [data]:
            yield source, 1, data_item
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield source, number, json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield source, number, exc


def corpus_files(paths: Iterable[str | Path]) -> list[Path]:
    """The JSON Lines / JSON files named by paths (folders are searched recursively, sorted)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in {".jsonl", ".json"} and p.is_file()
                           and p.name != "stories.json")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"corpus path not found: {path}")
    if not files:
        raise CorpusError("no .jsonl or .json files found in: " + ", ".join(map(str, paths)))
    return files


def load_corpus(paths: Iterable[str | Path], skip_invalid: bool = False) -> LoadResult:
    """Read and validate every article; bad records raise CorpusError unless skip_invalid is set.

    A later record with an id already seen replaces the earlier one only if it is identical; two
    different articles under one id are an error, because one of them would silently vanish.
    """
    result = LoadResult()
    seen: dict[str, tuple[Article, str]] = {}
    for path in corpus_files(paths):
        for source, line, data in _records(path):
            where = f"{source}:{line}"
            if isinstance(data, Exception):
                result.problems.append(Problem(source, line, f"not valid JSON: {_short(data)}"))
                continue
            try:
                article = article_from_json(data)
            except ValueError as exc:
                result.problems.append(Problem(source, line, str(exc)))
                continue
            if article.id in seen:
                earlier, earlier_where = seen[article.id]
                if earlier != article:
                    result.problems.append(
                        Problem(source, line, f"duplicate id {article.id!r} with different content (first at {earlier_where})")
                    )
                continue
            seen[article.id] = (article, where)
            result.articles.append(article)
    if result.problems and not skip_invalid:
        shown = "\n".join(f"  {p}" for p in result.problems[:20])
        more = f"\n  ... and {len(result.problems) - 20} more" if len(result.problems) > 20 else ""
        raise CorpusError(
            f"{len(result.problems)} invalid record(s); fix them or pass --skip-invalid:\n{shown}{more}"
        )
    return result


def _short(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8"
    return str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else str(exc)
