"""The `Article` record and reading it from JSON Lines files or folders of JSON files."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..jsonsafe import MAX_JSON_DEPTH, json_depth

# Used with fullmatch: `$` alone would also accept a trailing newline ("a1\n"), a control character.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
LANG_PATTERN = re.compile(r"[a-z]{2,3}")
# The rule for `lang`: a two-letter code must be one of ISO 639-1 (below; "xx" is none); a three-letter code
# is taken as ISO 639-2/3 by its form (7,900 codes: a list would be a dependency for a filter value), and
# "und" (undetermined) is one of them, which drafts use.
ISO_639_1 = frozenset("""
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el
    en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu
    ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na
    nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so
    sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
""".split())
# The longest real articles are around 100,000 characters; a body far beyond is a dump or a broken export.
# The text preparation reads at most the first 20,000 characters of a body (textprep.py), so the bound only
# limits what one record holds in memory while the job runs.
MAX_BODY_CHARS = 200_000
EARLIEST = datetime(1800, 1, 1, tzinfo=timezone.utc)
_BOM = b"\xef\xbb\xbf"
# Bounds of the other fields, far above any real article and far below what would cost seconds or memory
# in the text preparation or a tokenizer: one hostile record must not cost more than a long real one. The
# same bounds guard the corpus reader and every HTTP endpoint that takes an article or a draft.
FIELD_LIMITS = {"id": 200, "title": 1_000, "teaser": 5_000, "body": MAX_BODY_CHARS, "published_at": 64,
                "lang": 16, "url": 2_048, "section": 100, "author": 500}
MAX_TAGS = 100
MAX_TAG_CHARS = 100
# An article's picture: a web address (http or https only: a javascript: or data: address in a reader's page
# is an attack or a blob), a text for screen readers, and its size so a page can reserve the space.
IMAGE_LIMITS = {"url": 2_048, "alt": 500}
MAX_IMAGE_SIDE = 20_000
_IMAGE_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f\"'<>\\]+", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")
REQUIRED = ("id", "title", "body", "published_at", "lang")
OPTIONAL_TEXT = ("url", "teaser", "section", "author")


class CorpusError(ValueError):
    """The corpus could not be read: bad records (without --skip-invalid) or no readable files."""


@dataclass(frozen=True)
class Image:
    """An article's picture as a reader's page shows it: url (http or https), alt text, size in pixels."""

    url: str
    alt: str = ""
    width: int | None = None
    height: int | None = None


def image_from_json(data: Any) -> Image | None:
    """Validate an article's `image` (null or an object with url, and optional alt, width, height)."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("image must be an object with url, alt, width and height")
    unknown = set(data) - {"url", "alt", "width", "height"}
    if unknown:
        raise ValueError(f"image: unknown field(s) {', '.join(sorted(unknown))}")
    url, alt = data.get("url"), data.get("alt", "")
    if not isinstance(url, str) or not isinstance(alt, str):
        raise ValueError("image: url and alt must be strings")
    for name, value in (("url", url), ("alt", alt)):
        if len(value) > IMAGE_LIMITS[name]:
            raise ValueError(f"image {name} has {len(value):,} characters, more than {IMAGE_LIMITS[name]:,}")
    if not _IMAGE_URL.fullmatch(url):
        raise ValueError("image url must be an http or https address without spaces, quotes or angle brackets")
    if _SURROGATE.search(alt):
        raise ValueError("image alt holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape), not text")
    sides = {}
    for name in ("width", "height"):
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 1 <= value <= MAX_IMAGE_SIDE):
            raise ValueError(f"image {name} must be a whole number of pixels from 1 to {MAX_IMAGE_SIDE:,}")
        sides[name] = value
    return Image(url=url, alt=alt.strip(), **sides)


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
    # Exempt from the freshness decay: an explainer or a guide that stays worth reading for years.
    evergreen: bool = False
    image: Image | None = None

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
    """Articles read, the records skipped as invalid, the files read and notes on links not followed."""

    articles: list[Article] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadLimits:
    """Bounds checked while reading a corpus (settings max_record_bytes and max_future_days)."""

    max_record_bytes: int = 4_194_304
    max_future_days: int = 366


def parse_datetime(value: str) -> datetime:
    """An ISO 8601 timestamp that must carry a UTC offset (naive times are ambiguous across sites)."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return parsed


def check_date(published_at: datetime, max_future_days: int, now: datetime | None = None) -> None:
    """Raise ValueError for an absurd date: before 1800 or more than max_future_days ahead (a scheduled
    story for tomorrow is fine: embargoes are handled when serving)."""
    if published_at.year < EARLIEST.year:
        raise ValueError(f"{published_at.isoformat()} is before 1800")
    latest = (now or datetime.now(timezone.utc)) + timedelta(days=max_future_days)
    try:
        too_late = published_at > latest
    except OverflowError:  # 9999-12-31 with a negative offset lies beyond what a datetime holds in UTC
        too_late = True
    if too_late:
        raise ValueError(f"{published_at.isoformat()} is more than {max_future_days} days in the future")


def article_from_json(data: Any, max_future_days: int = 366, now: datetime | None = None) -> Article:
    """Validate one decoded JSON record and build an `Article`; raises ValueError with the reason."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    missing = [name for name in REQUIRED if data.get(name) in (None, "")]
    if missing:
        raise ValueError(f"missing required field(s): {', '.join(missing)}")
    for name in ("id", "title", "body", "published_at", "lang", *OPTIONAL_TEXT):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise ValueError(f"field {name!r} must be a string, got {type(data[name]).__name__}")
    if not isinstance(data.get("evergreen", False), bool):
        raise ValueError("field 'evergreen' must be true or false")
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
    if not LANG_PATTERN.fullmatch(lang) or (len(lang) == 2 and lang not in ISO_639_1):
        raise ValueError(f"lang {data['lang']!r} is not an ISO 639 code such as 'de', 'en' or 'und'")
    if not data["body"].strip():
        raise ValueError("body is empty")
    try:
        published_at = parse_datetime(data["published_at"])
        check_date(published_at, max_future_days, now)
    except (ValueError, OverflowError) as exc:
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
        evergreen=data.get("evergreen", False),
        image=image_from_json(data.get("image")),
    )


def article_from_stored(data: dict[str, Any]) -> Article:
    """An Article from a record this service stored itself (`Article.to_json`).

    It was validated when it was received; rules made stricter since (a date range, a language list, a
    field bound) must not make an acknowledged article vanish, or stop the server that loads it.
    """
    return Article(id=data["id"], title=data["title"], body=data["body"],
                   published_at=parse_datetime(data["published_at"]), lang=data["lang"], url=data.get("url", ""),
                   teaser=data.get("teaser", ""), section=data.get("section", ""),
                   tags=tuple(data.get("tags", ())), author=data.get("author", ""),
                   evergreen=bool(data.get("evergreen", False)),
                   image=Image(**data["image"]) if data.get("image") else None)


def decode_record(raw: bytes) -> Any:
    """One record's JSON value, or a ValueError saying why it cannot be read (never raises it)."""
    # Only a line with many brackets can nest deeply: counting them runs at C speed, the exact scan does not.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        return ValueError(f"not valid JSON: nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ValueError("not valid JSON: invalid UTF-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return ValueError(f"not valid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return ValueError("not valid JSON: nested too deeply")
    except ValueError as exc:  # int() refuses numbers of more than 4300 digits (a guard against quadratic time)
        if "integer string conversion" in str(exc):
            return ValueError(f"not valid JSON: a number of more than {sys.get_int_max_str_digits()} digits")
        return ValueError(f"not valid JSON: {str(exc).split(':')[0]}")


def _records(path: Path, limits: ReadLimits) -> Iterator[tuple[int, str, Any]]:
    """(line, where-prefix, decoded JSON or a ValueError) for every record of a file."""
    if path.suffix == ".json":
        yield from _json_file_records(path, limits)
        return
    with path.open("rb") as handle:
        number = 0
        # readline(limit) never holds more than one bounded piece of a gigantic line in memory.
        while raw := handle.readline(limits.max_record_bytes + 1):
            number += 1
            if len(raw) > limits.max_record_bytes and not raw.endswith(b"\n"):
                while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass
                yield number, "", ValueError(f"line longer than {limits.max_record_bytes:,} bytes (max_record_bytes)")
                continue
            if number == 1:
                raw = raw.removeprefix(_BOM)  # Windows tools start UTF-8 files with one; it is not data
            if raw.strip():
                yield number, "", decode_record(raw)


def _json_file_records(path: Path, limits: ReadLimits) -> Iterator[tuple[int, str, Any]]:
    """The records of a .json file: one object, or a list whose elements are named by index and line."""
    with path.open("rb") as handle:
        is_list = handle.read(4096).removeprefix(_BOM).lstrip().startswith(b"[")
    if not is_list:  # one record: bounded like a line, and never read whole when it is too long
        if path.stat().st_size > limits.max_record_bytes + len(_BOM):
            yield 1, "", ValueError(f"file longer than {limits.max_record_bytes:,} bytes (max_record_bytes)")
        else:
            yield 1, "", decode_record(path.read_bytes().removeprefix(_BOM))
        return
    raw = path.read_bytes().removeprefix(_BOM)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield raw.count(b"\n", 0, exc.start) + 1, "", ValueError("not valid JSON: invalid UTF-8")
        return
    line, counted = 1, 0  # lines counted incrementally: a list of 100,000 elements must not cost n² scans
    for index, (start, end) in enumerate(_list_elements(text)):
        piece = text[start:end]
        if not piece.strip() and index == 0 and not text[end:].lstrip().startswith(","):
            return  # an empty list
        first = start + len(piece) - len(piece.lstrip())
        line, counted = line + text.count("\n", counted, first), first
        data = piece.encode("utf-8")
        if len(data) > limits.max_record_bytes:
            yield line, f"element {index}: ", ValueError(f"longer than {limits.max_record_bytes:,} bytes (max_record_bytes)")
        else:
            yield line, f"element {index}: ", decode_record(data)


# Strings (escapes included) and the structural characters of JSON: enough to split a list into its elements.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')


def _list_elements(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each top-level element of the JSON list in text; a list left open ends at the text's end."""
    depth, start = 0, 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth == 1:
                start = match.end()
        elif token in ("]", "}"):
            depth -= 1
            if depth == 0:
                yield start, match.start()
                return
        elif token == "," and depth == 1:
            yield start, match.start()
            start = match.end()
    if depth > 0:
        yield start, len(text)


def find_corpus_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """The JSON Lines / JSON files named by paths, and a note for every link not followed.

    Folders are searched recursively and symbolic links followed (archives are often mounted that way); a
    folder or file reached a second time (a link loop, two links to one place) is read once and noted.
    """
    files: list[Path] = []
    notes: list[str] = []
    seen: set[str] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(_walk(path, seen, notes))
        elif path.is_file():
            if _first_visit(path, seen, notes):
                files.append(path)
        else:
            raise CorpusError(f"corpus path not found: {path}")
    if not files:
        raise CorpusError("no .jsonl or .json files found in: " + ", ".join(map(str, paths)))
    return files, notes


def _first_visit(path: Path, seen: set[str], notes: list[str]) -> bool:
    real = os.path.realpath(path)
    if real in seen:
        notes.append(f"{path}: a symbolic link to {real}, which is read already (a loop or a second link): skipped")
        return False
    seen.add(real)
    return True


def _walk(root: Path, seen: set[str], notes: list[str]) -> list[Path]:
    """Corpus files under root, following symbolic links, each real folder and file once, sorted by path."""
    if not _first_visit(root, seen, notes):
        return []
    found: list[Path] = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        subfolders[:] = [name for name in sorted(subfolders) if _first_visit(Path(folder, name), seen, notes)]
        for name in names:
            path = Path(folder, name)
            if path.suffix not in {".jsonl", ".json"} or name == "stories.json":
                continue
            if path.is_file():
                found.append(path)
            else:
                notes.append(f"{path}: a broken symbolic link (points to {os.readlink(path)}): skipped")
    # Of two ways to one file, the first in path order is read: the same whichever the walk met first.
    return [path for path in sorted(found) if _first_visit(path, seen, notes)]


def load_corpus(paths: Iterable[str | Path], skip_invalid: bool = False, limits: ReadLimits | None = None) -> LoadResult:
    """Read and validate every article; bad records raise CorpusError unless skip_invalid is set.

    A later record with an id already seen replaces the earlier one only if it is identical; two
    different articles under one id are an error, because one of them would silently vanish.
    """
    limits = limits or ReadLimits()
    result = LoadResult()
    seen: dict[str, tuple[Article, str]] = {}
    files, result.notes = find_corpus_files(paths)
    now = datetime.now(timezone.utc)
    for path in files:
        result.files.append(str(path))
        source = str(path)
        for line, prefix, data in _records(path, limits):
            try:
                if isinstance(data, Exception):
                    raise data
                article = article_from_json(data, limits.max_future_days, now)
            except ValueError as exc:
                result.problems.append(Problem(source, line, prefix + str(exc)))
                continue
            if article.id in seen:
                earlier, earlier_where = seen[article.id]
                if earlier != article:
                    result.problems.append(Problem(
                        source, line, f"{prefix}duplicate id {article.id!r} with different content (first at {earlier_where})"))
                continue
            seen[article.id] = (article, f"{source}:{line}")
            result.articles.append(article)
    if result.problems and not skip_invalid:
        shown = "\n".join(f"  {p}" for p in result.problems[:20])
        more = f"\n  ... and {len(result.problems) - 20} more" if len(result.problems) > 20 else ""
        raise CorpusError(
            f"{len(result.problems)} invalid record(s); fix them or pass --skip-invalid:\n{shown}{more}"
        )
    return result
