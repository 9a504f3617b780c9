"""Every setting, declared once as data, loaded from a TOML file and the environment.

Precedence, lowest first: the defaults below, a TOML file (``RECOMMENDER_CONFIG`` or ``--config``),
then environment variables ``RECOMMENDER_<NAME>``. Unknown keys fail loudly: a typo in a setting must
not silently fall back to a default.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .jsonsafe import BadJson, parse_json

ENV_PREFIX = "RECOMMENDER_"
# Entries of a table setting (sections with a half-life, placements): far above any newsroom, and each
# request looks at the sections' half-lives.
MAX_TABLE_ENTRIES = 1_000


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong kind."""


def _setting(default: Any, help: str, secret: bool | str = False) -> Any:
    # secret: True (printed only as set or not), "url" (printed with the URL's password masked), or False.
    return field(default=default, metadata={"help": help, "secret": secret})


def _table(help: str) -> Any:
    # A TOML table ([section_half_life_days], [placements.NAME]); in the environment, the same as JSON text.
    return field(default_factory=dict, hash=False, compare=True, metadata={"help": help, "secret": False})


def shown(name: str, value: Any) -> Any:
    """A setting's value as it may be printed: secrets only as "(set)" or "(not set)", URLs without password."""
    if _SECRET.get(name) == "url":
        return redacted_url(value)
    if _SECRET.get(name):
        return "(set)" if value else "(not set)"
    return value


def redacted_url(url: str) -> str:
    """url with its password (user:PASSWORD@ or ?password=) replaced by ***."""
    url = re.sub(r"(://[^/?#@:]*:)[^/?#@]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


@dataclass(frozen=True, repr=False)
class Settings:
    """The whole configuration of a process (CLI run or API server)."""

    profile: str = _setting("default", "Ranking profile: which encoders and weights (see `recommender profiles`).")
    index_dir: str = _setting("data/index", "Directory of the published index (snapshots + `current` link).")
    cache_dir: str = _setting("data/cache", "Embedding cache, keyed by prepared text and encoder; empty string disables it.")
    threads: int = _setting(2, "CPU threads for each encoder (match the machine's cores).")
    batch_size: int = _setting(32, "Articles embedded per batch.")
    cluster: str = _setting(
        "", "Dask scheduler address (tcp://host:8786) on whose workers the index job embeds; empty = this machine."
    )
    cluster_stall_timeout: float = _setting(
        600.0, "Seconds the index job waits on a cluster for the next batch to finish before it fails (workers "
        "lost or frozen); longer than the scheduler's worker-ttl (5 minutes), so Dask first retries a frozen "
        "worker's batches elsewhere."
    )
    keep_snapshots: int = _setting(
        3, "Published index snapshots kept on disk (the newest is served), plus the newest of every other configuration."
    )
    max_record_bytes: int = _setting(
        4_194_304, "Longest corpus record (one JSON line or one element of a .json list) the index job reads, in bytes."
    )
    max_future_days: int = _setting(366, "Days after now beyond which a published_at is refused as absurd (before 1800 always is).")
    max_delete_share: float = _setting(
        0.10, "Share of the published index a job may delete; more refuses to publish (unless --allow-shrink)."
    )
    max_skip_share: float = _setting(
        0.10, "Share of the corpus records a job may skip as invalid; more refuses to publish (unless --allow-shrink)."
    )
    reload_interval: float = _setting(1.0, "Seconds between a server's checks for a newly published snapshot.")
    state_dir: str = _setting("data/state", "Editors' decisions (SQLite), kept apart from index snapshots; empty disables them.")
    state_url: str = _setting(
        "", "PostgreSQL database (postgresql://user:password@host:5432/name) holding the editors' decisions, "
        "received articles and reader events instead of state_dir's SQLite files: shared by replicas on several "
        "machines; created and migrated by the service. Printed with its password masked.", secret="url"
    )
    sentence_transformer_model: str = _setting(
        "", "sentence-transformers model name or local path for the `minilm` signal; empty = the bundled all-MiniLM-L6-v2."
    )
    default_k: int = _setting(5, "Related stories returned when no k is given.")
    max_k: int = _setting(50, "Largest k a request may ask for.")
    recency_weight: float = _setting(0.1, "Share of the final score given to freshness (0 = similarity only).")
    recency_half_life_days: float = _setting(30.0, "Age in days at which an article's freshness bonus halves.")
    min_relatedness: float = _setting(
        0.05, "Calibrated relatedness (0..1, README 'How it ranks') below which a story is not suggested; "
        "requests and placements may set their own."
    )
    fallback: str = _setting(
        "none", "What fills a list left with fewer than k stories by min_relatedness or the filters: none, "
        "recent_same_section or recent (the newest stories passing the filters, labelled fallback)."
    )
    story_window_days: float = _setting(
        2.0, "Same-story links published within this many days of the article are labelled same_story; later "
        "ones follow_up, earlier ones background."
    )
    section_half_life_days: dict = _table(
        "Freshness half-life per section, overriding recency_half_life_days, e.g. {Politik = 3, Wissen = 180} "
        "(sections compared case-insensitively)."
    )
    placements: dict = _table(
        "Named placements, each a table of ranking options (k, min_relatedness, fallback, recency_weight, "
        "half_life_days, max_per_story, mmr_lambda, prefer_lang, only_before, lang, section, max_age_days); "
        "built in: article_bottom, sidebar, archive (README 'Placements')."
    )
    duplicate_threshold: float = _setting(
        0.8, "Lexical cosine above which two articles count as versions of one text (only the newest is shown)."
    )
    host: str = _setting("127.0.0.1", "Address the API listens on.")
    port: int = _setting(8000, "Port the API listens on.")
    workers: int = _setting(2, "API worker processes (gunicorn); each maps the same index files.")
    worker_class: str = _setting(
        "gevent", "gevent (slow and idle clients cost a greenlet, not a worker) or sync (one client per worker: only "
        "behind a buffering proxy such as nginx)."
    )
    worker_connections: int = _setting(
        1000, "Open connections one worker holds at most (gevent): slow and idle clients each cost one, not a worker."
    )
    request_read_timeout: float = _setting(
        15.0, "Seconds a client has to send a whole request (headers and body) before the connection is dropped."
    )
    embed_received_in: str = _setting(
        "process", "Where `serve` embeds articles received through PUT: process (one process of their own at a "
        "lower CPU priority, so readers' workers never spend a second on it) or worker (in the request's worker)."
    )
    embedder_nice: int = _setting(
        10, "How much lower the CPU priority of that process is than the workers' (a nice value, 0 to 19): the "
        "higher, the less a burst of PUTs slows readers, and the longer each PUT takes while readers keep the "
        "CPUs busy."
    )
    embed_timeout: float = _setting(
        120.0, "Seconds a PUT waits for its article to be embedded (queued behind others included) before it "
        "answers 503 and stores nothing (with worker_class sync at most worker_timeout - 5)."
    )
    worker_timeout: int = _setting(
        30, "Seconds a worker may go silent (stuck in one request) before gunicorn replaces it."
    )
    graceful_timeout: int = _setting(
        10, "Seconds a stopping, reloading or replaced (after a publish) worker may spend finishing the requests "
        "it is answering."
    )
    api_token: str = _setting(
        "", "Bearer token of the editors' endpoints (all writes, search, explain, audit); empty = they answer 403, "
        "never open. A secret: better given by the environment (RECOMMENDER_API_TOKEN) than in a settings file, "
        "which is easier to leak; printed only as (set) or (not set).", secret=True
    )
    cors_origins: str = _setting("", "Comma-separated origins allowed to call the API from a browser; empty = none.")
    cache_max_age: int = _setting(60, "Seconds browsers and CDNs may cache a related-links answer.")
    max_request_bytes: int = _setting(1_000_000, "Largest request body accepted (larger ones get 413).")
    write_rate_limit: str = _setting(
        "60/minute", "Writes (PUT/DELETE) one client address may make, per worker process, e.g. '60/minute' or "
        "'10/second;300/hour'; over it they get 429 with Retry-After. Empty = no limit."
    )
    event_rate_limit: str = _setting(
        "300/minute", "Reader events (POST /v1/events batches) one client address may send, per worker process; "
        "over it they get 429. Generous: readers behind one address (an office, a mobile carrier) share it. "
        "Empty = no limit."
    )
    public_url: str = _setting(
        "", "The API's address as readers' browsers reach it (e.g. https://related.example.com), for the click "
        "links of the JSON answers and the HTML block; empty = the address each request came to (set it behind "
        "a proxy or CDN, so a request's Host header never chooses where readers' clicks go)."
    )
    vector_dtype: str = _setting("float16", "How index snapshots store dense vectors: float16 (half the memory) or float32.")
    ann_min_articles: int = _setting(
        5_000, "Indexes with at least this many articles get an approximate-neighbour graph and precomputed candidate lists; smaller ones are scanned exactly."
    )
    candidates: int = _setting(100, "Candidates per article kept in the precomputed lists (and fetched from the graph) before re-ranking.")
    incremental_max_share: float = _setting(
        0.2, "An index run updates the published graphs and candidate lists instead of rebuilding them while at "
        "most this share of the index changed (new, changed and deleted articles) since the last full build; "
        "beyond it, or with `recommender index --rebuild`, they are built anew."
    )
    ann_expansion: int = _setting(200, "Breadth of an approximate-neighbour search (usearch `expansion_search`): higher is slower and closer to exact.")

    @property
    def cors_origin_list(self) -> list[str]:
        """The allowed CORS origins as a list."""
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some settings changed (validated like any other source)."""
        return _build({**dataclasses.asdict(self), **changes})

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: a secret must not travel with them.
        values = ", ".join(f"{f.name}={shown(f.name, getattr(self, f.name))!r}" for f in fields(self))
        return f"Settings({values})"


_SECRET = {f.name: f.metadata["secret"] for f in fields(Settings)}


def setting_docs() -> list[tuple[str, Any, str]]:
    """(name, default, help) of every setting, for the README and `--help`; a secret's default as shown()."""
    return [(f.name, shown(f.name, f.default if f.default is not dataclasses.MISSING
                           else f.default_factory()),  # type: ignore[misc]
             f.metadata["help"]) for f in fields(Settings)]


def _coerce(name: str, kind: type, value: Any) -> Any:
    if kind is dict:
        if isinstance(value, str):
            try:  # depth-checked: a deeply nested value must be a clear error, not a RecursionError
                value = parse_json(value.encode("utf-8", "surrogatepass"))
            except BadJson as exc:
                raise ConfigError(f"setting {name!r}: not a JSON object ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"setting {name!r}: expected a table, got {type(value).__name__}")
        if len(value) > MAX_TABLE_ENTRIES:
            raise ConfigError(f"setting {name!r}: more than {MAX_TABLE_ENTRIES} entries")
        return value
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() in {"1", "true", "yes", "on"}:
                    return True
                if text.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(text)
            return kind(text)
        except ValueError:
            raise ConfigError(f"setting {name!r}: {value!r} is not a valid {kind.__name__}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"setting {name!r}: expected {kind.__name__}, got {type(value).__name__}")
    return value


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "dict": dict}


def _build(values: Mapping[str, Any]) -> Settings:
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)} (known: {', '.join(known)})")
    typed = {name: _coerce(name, _TYPES[known[name].type], value) for name, value in values.items()}
    settings = Settings(**typed)
    for name in ("threads", "batch_size", "keep_snapshots", "default_k", "max_k", "workers", "worker_connections",
                 "worker_timeout", "graceful_timeout", "max_request_bytes", "candidates", "ann_expansion",
                 "max_record_bytes", "max_future_days"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"setting {name!r} must be at least 1")
    if not 0.0 <= settings.recency_weight <= 1.0:
        raise ConfigError("setting 'recency_weight' must be between 0 and 1")
    for name in ("max_delete_share", "max_skip_share", "incremental_max_share"):
        if not 0.0 <= getattr(settings, name) <= 1.0:
            raise ConfigError(f"setting {name!r} must be between 0 and 1")
    if settings.reload_interval < 0:
        raise ConfigError("setting 'reload_interval' must not be negative")
    if settings.cache_max_age < 0:
        raise ConfigError("setting 'cache_max_age' must not be negative")
    if not settings.request_read_timeout > 0:
        raise ConfigError("setting 'request_read_timeout' must be positive")
    if settings.embed_received_in not in ("process", "worker"):
        raise ConfigError("setting 'embed_received_in' must be process or worker")
    if not 0 <= settings.embedder_nice <= 19:
        raise ConfigError("setting 'embedder_nice' must be between 0 and 19")
    if not settings.embed_timeout > 0:
        raise ConfigError("setting 'embed_timeout' must be positive")
    if settings.worker_class not in ("gevent", "sync"):
        raise ConfigError("setting 'worker_class' must be gevent or sync")
    if settings.state_url and not settings.state_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"setting 'state_url' must be a postgresql:// URL (empty: SQLite files in state_dir), "
                          f"not {redacted_url(settings.state_url)[:100]!r}")
    if settings.vector_dtype not in ("float16", "float32"):
        raise ConfigError("setting 'vector_dtype' must be float16 or float32")
    if settings.ann_min_articles < 0:
        raise ConfigError("setting 'ann_min_articles' must not be negative")
    if settings.cluster_stall_timeout <= 0:
        raise ConfigError("setting 'cluster_stall_timeout' must be positive")
    if settings.recency_half_life_days <= 0:
        raise ConfigError("setting 'recency_half_life_days' must be positive")
    if not 0.0 <= settings.min_relatedness <= 1.0:
        raise ConfigError("setting 'min_relatedness' must be between 0 and 1")
    if settings.fallback not in ("none", "recent_same_section", "recent"):
        raise ConfigError("setting 'fallback' must be none, recent_same_section or recent")
    if settings.story_window_days < 0:
        raise ConfigError("setting 'story_window_days' must not be negative")
    if settings.public_url and not re.fullmatch(r"https?://[^\s/?#\\\"'<>]+(/[^\s?#\\\"'<>]*)?", settings.public_url):
        raise ConfigError(f"setting 'public_url' must be an http(s) address such as https://related.example.com, "
                          f"not {settings.public_url[:100]!r}")
    for section, days in settings.section_half_life_days.items():
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= 36_500:
            raise ConfigError(f"setting 'section_half_life_days': {section!r} needs a number of days above 0")
    return settings


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from defaults, an optional TOML file, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        path = Path(config_file)
        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    known = {f.name for f in fields(Settings)}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in known:
            values[name] = value
        else:
            raise ConfigError(f"unknown environment setting {key} (known: {', '.join(sorted(known))})")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _build(values)
