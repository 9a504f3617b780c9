"""The recommender as one object: a loaded snapshot, its profile and the encoders for raw-text queries."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .config import ConfigError, Settings
from .db import StateUnavailable
from .embed.cache import EmbeddingCache
from .embed.signals import RawText, SignalEncoder
from .embed.vectors import QueryVectors
from .index.live import LiveRows, LiveStore, Received, Stacked, live_view
from .index.loader import BackgroundLoader, at_lowest_priority, drop_in_background
from .index.snapshot import (
    IndexProblem,
    Snapshot,
    load_snapshot,
    profile_fingerprint,
    read_manifest,
    resolve_snapshot,
    verify_snapshot,
)
from .ingest.corpus import Article
from .ingest.profiles import Profile, get_profile
from .rank.editorial import EditorialStore, Rules
from .rank.placements import (
    Arm,
    Options,
    PlacementError,
    arms_from,
    choose_arm,
    placements_from,
)
from .rank.ranking import (
    Filters,
    RankOptions,
    Related,
    allowed_rows,
    query_from_row,
    rank_rounds,
)
from .rank.selection import Selection
from .state import store_location, versions

log = logging.getLogger(__name__)


NO_SELECTION = Selection()  # the k best by score: one shared object, not one per request


class UnknownPlacement(ValueError):
    """A request named a placement the configuration does not define."""


class UnknownArticle(KeyError):
    """No article with this id is in the index."""

    def __str__(self) -> str:
        return f"unknown article id {self.args[0]!r}: it is not in the index"


class Prepared(NamedTuple):
    """A newly published snapshot made ready off the request path, served from the next request on."""

    base: Snapshot  # opened and verified
    served: Snapshot  # base with the live articles of live_version laid over it
    live_version: int
    upcoming: np.ndarray  # what `_schedule` caches for served
    newest: tuple[tuple[str, int], np.ndarray]  # what `_newest_first` caches for base


def open_cache(settings: Settings) -> EmbeddingCache | None:
    """The embedding cache the settings name, or None when caching is switched off."""
    return EmbeddingCache(Path(settings.cache_dir) / "embeddings.sqlite") if settings.cache_dir else None


def signal_encoder(settings: Settings, profile: Profile | None = None, with_cache: bool = True) -> SignalEncoder:
    """The encoders of the configured profile, with the configured threads, batch size and cache."""
    return SignalEncoder(
        profile or get_profile(settings.profile),
        threads=settings.threads,
        batch_size=settings.batch_size,
        cache=open_cache(settings) if with_cache else None,
        sentence_transformer_model=settings.sentence_transformer_model,
    )


@dataclass
class Recommender:
    """Related stories from one index snapshot (plus the articles received since through the API), under the
    settings' profile and ranking options and the editors' decisions.

    snapshot : what is served: the loaded snapshot, or a view of it with the live articles laid over it
    base : the loaded snapshot itself
    index_dir : where to look for newly published snapshots (None: never reload)
    Newly published snapshots and live articles stored by another process appear after `refresh()`, which the
    service calls before every request; a new snapshot is opened and verified in a background thread first,
    and requests meanwhile go on with the one served. Editors' decisions are re-read by `rules()` whenever
    they changed.
    """

    settings: Settings
    snapshot: Snapshot
    profile: Profile
    encoder: SignalEncoder
    editorial: EditorialStore | None = None
    live: LiveStore | None = None
    base: Snapshot | None = None
    index_dir: Path | None = None
    _rules: Rules = field(default_factory=Rules)
    _live_version: int = 0
    _live_read: tuple[int, list[Received]] = (-1, [])  # as the store last answered
    _live_rows: LiveRows | None = None  # what views need of the live articles, kept from one view to the next
    _state_down: bool = False
    _editorial_seen: int | None = None  # the counter the last refresh() read, for the next rules()
    _checked_at: float = 0.0
    _refused: Path | None = None
    _upcoming: tuple[Snapshot, np.ndarray] | None = None
    _newest: tuple[tuple[str, int], np.ndarray] | None = None
    _loader: BackgroundLoader = field(default_factory=BackgroundLoader)
    # Held while base, snapshot and _live_version change together, so that two request threads never lay
    # live articles over a base the other just replaced (a gevent or sync worker has one such thread anyway).
    _swap_lock: Any = field(default_factory=threading.Lock)
    clock: Callable[[], float] = time.time  # the embargo's wall clock (tests move it)
    # What put_article embeds with: `serve` sets its embedding process's client here (serve/embedder.py);
    # None embeds in the calling thread with the engine's encoder.
    embed_received: Callable[[Article], dict[str, np.ndarray]] | None = None
    # Whether refresh() looks for newly published snapshots itself. `serve` turns it off in gunicorn's workers:
    # its master prepares each snapshot once (`follow_published`) and replaces the workers with forks of itself,
    # so no process that answers requests ever opens one (usearch holds the GIL ~50 ms mapping a graph).
    reloads_itself: bool = True

    def __post_init__(self) -> None:
        self.base = self.base or self.snapshot
        self._live_version = -1  # build the view on first refresh
        # Casefolded once here, not per request.
        self._section_half_lives = tuple(sorted((name.casefold(), float(days))
                                                for name, days in self.settings.section_half_life_days.items()))
        try:  # at start-up: a placement with a typo must stop the server, not fail its first request
            self.placements: dict[str, Options] = placements_from(self.settings.placements, self.settings.max_k)
            self.arms: dict[str, tuple[Arm, ...]] = arms_from(self.settings.placements, self.settings.max_k)
        except PlacementError as exc:
            raise ConfigError(f"setting 'placements': {exc}") from None
        self._arm_profiles = {arm.profile: self._arm_profile(placement, arm)
                              for placement, arms in self.arms.items() for arm in arms if arm.profile}
        # Only the live articles: the snapshot was just loaded, and `serve` builds the engine in gunicorn's
        # master, where a loading thread would not survive the fork into the workers.
        self._lay_live()

    def _arm_profile(self, placement: str, arm: Arm) -> Profile:
        """The profile an A/B arm ranks with: one whose weighted signals the index holds (checked at start)."""
        where = f"setting 'placements': placement {placement!r}, arm {arm.name!r}"
        try:
            profile = get_profile(arm.profile or "")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        missing = [s.name for s in profile.weighted if s.name not in self.base.dense and s.name not in self.base.sparse]
        if missing:
            raise ConfigError(f"{where}: profile {profile.name!r} weighs signals this index does not hold "
                              f"({', '.join(missing)}); the index's profile is {self.profile.name!r}")
        return profile

    def arm_for(self, placement: str | None, seed: str) -> Arm | None:
        """The A/B arm a list of placement gets for this rid seed; None where the placement splits no traffic."""
        arms = self.arms.get(placement or "")
        return choose_arm(arms, placement or "", seed) if arms else None

    def profile_of(self, arm: Arm | None) -> Profile:
        """The profile a list ranks with: the arm's, else the index's."""
        return self._arm_profiles[arm.profile] if arm is not None and arm.profile else self.profile

    @classmethod
    def open(cls, settings: Settings, index_dir: str | Path | None = None) -> "Recommender":
        """Load the index (verified, and refused if built with another configuration) and the editors' store."""
        profile = get_profile(settings.profile)
        encoder = signal_encoder(settings, profile, with_cache=False)
        expected = profile_fingerprint(profile, encoder.identities())
        snapshot = load_snapshot(index_dir or settings.index_dir, expected=expected,
                                 expansion_search=settings.ann_expansion)
        editorial_at = store_location(settings.state_dir, settings.state_url, "editorial.sqlite")
        live_at = store_location(settings.state_dir, settings.state_url, "live.sqlite")
        editorial = EditorialStore(editorial_at) if editorial_at else None
        live = LiveStore(live_at) if live_at else None
        return cls(settings, snapshot, profile, encoder, editorial, live,
                   index_dir=Path(index_dir or settings.index_dir))

    def _expected(self) -> dict[str, Any]:
        return profile_fingerprint(self.profile, self.encoder.identities())

    def _published(self) -> Path | None:
        """The snapshot directory `current` points at, or None when nothing (valid) is published."""
        try:
            return resolve_snapshot(self.index_dir) if self.index_dir is not None else None
        except IndexProblem:
            return None

    def _notice_published(self, now: bool = False, for_forks: bool = False) -> None:
        """Start opening the snapshot `current` points at in the background if it is a new one; looked for at
        most every reload_interval seconds (at once if now). for_forks: prepared in gunicorn's master for the
        workers it forks, all of it at the lowest CPU priority, over the live articles as stored now."""
        moment = time.monotonic()
        if self.index_dir is None or (not now and moment - self._checked_at < self.settings.reload_interval):
            return
        self._checked_at = moment
        target = self._published()
        if target is None or target == self.base.path.resolve() or target == self._refused:
            return  # nothing new; a refused snapshot is tried again only once another one was published
        # One loader per engine: while it runs, a newer publish waits for the next look (it ends on the newest).
        if for_forks:
            self._lay_live()
        prepare = partial(self._prepare, target, self._expected())
        self._loader.begin(target, partial(at_lowest_priority, prepare) if for_forks else prepare)

    def _prepare(self, target: Path, expected: dict[str, Any]) -> Prepared:
        """The snapshot at target opened, verified and made ready to serve (in the loading thread)."""
        # Checksums first (nothing opens a file that fails them), in the CPU's idle time. The workers of a server
        # take turns here and the first one vouches for the others: files it found intact and now serves are
        # what they would serve, so verifying them again would only cost another second of CPU each.
        vouch = f"{target}:{read_manifest(target).get('checksum')}"
        if not self._loader.vouched(vouch):
            at_lowest_priority(partial(verify_snapshot, target))
            self._loader.vouch(vouch)
        base = load_snapshot(target, expected=expected, verify=False, expansion_search=self.settings.ann_expansion)
        # The live articles as the request path read them last: the state's connections belong to the worker's
        # requests (under gevent their waits are the hub's, which this thread has none of: a PostgreSQL read
        # from here could hang), and the first request after the swap lays any newer ones.
        version, articles = self._live_read if self.live is not None else (0, [])
        served = live_view(base, articles, version, self._rows_for(base)) if self.live is not None else base
        # What the first requests would otherwise compute (a sort of every date at a million articles: 0.1 s).
        return Prepared(base, served, version, upcoming_of(served, self.clock()),
                        (newest_key(base), newest_order(base)))

    def _swap_prepared(self, drop_now: bool = False) -> bool:
        """Serve the snapshot the loader made ready, replacing the served one whole, or log why not; True if
        swapped. The old one is dropped in a thread of its own, unless drop_now."""
        with self._swap_lock:
            outcome = self._loader.take()  # under the lock: one thread swaps it
            if outcome is None:
                return False
            if outcome.error is None:
                prepared: Prepared = outcome.result
                retired = [self.base, self.snapshot, self._upcoming, self._newest]
                self._upcoming, self._newest = (prepared.served, prepared.upcoming), prepared.newest
                self.base, self.snapshot, self._live_version = prepared.base, prepared.served, prepared.live_version
                if drop_now:
                    retired.clear()
                else:  # the old snapshot's last references: unmapping its files took 30 ms of this request
                    drop_in_background(retired)
                del retired
            else:
                self._refused = outcome.target  # not retried on every look; a newer publish is tried again
        if outcome.error is None:
            log.info("now serving snapshot %s (opened and verified in the background, ready after %.2f s)",
                     outcome.result.base.version, outcome.seconds)
        else:
            log.error("not switching to snapshot %s, still serving %s: %s", outcome.target, self.base.version,
                      outcome.error, exc_info=None if isinstance(outcome.error, IndexProblem) else outcome.error)
        return outcome.error is None

    def _lay_live(self) -> None:
        """Read the state's change counters (one read for both stores) and lay the live articles over the base
        again if another process (or request) changed them; while the state cannot be read, the live articles
        read last are served, and the editors' counter is read again by rules()."""
        stores = [store for store in (self.editorial, self.live) if store is not None]
        try:
            counters = dict(zip(map(id, stores), versions([store.db for store in stores])))
            if self.live is not None and counters[id(self.live)] != self._live_version:
                self._live_read = self._read_live_changes()
            self._editorial_seen = counters.get(id(self.editorial))
            self._state_back()
        except StateUnavailable as exc:
            self._state_lost(exc)
        version, articles = self._live_read if self.live is not None else (0, [])
        if version == self._live_version:
            return
        with self._swap_lock:
            if version != self._live_version:  # else another thread laid them meanwhile
                self.snapshot = self.base if self.live is None else live_view(self.base, articles, version,
                                                                              self._rows_for(self.base))
                self._live_version = version

    def _read_live_changes(self) -> tuple[int, list[Received]]:
        """The live store's counter and articles, reading again only those changed since the last read."""
        seen, articles = self._live_read
        read = self.live.read(seen)
        kept = {article.id: (article, vectors) for article, vectors in articles if article.id in read.ids}
        kept.update(read.changed)
        return read.version, [kept[i] for i in sorted(kept)]

    def _rows_for(self, base: Snapshot) -> LiveRows:
        """The live articles' rows kept for base's lexical models (new ones for another snapshot's)."""
        rows = self._live_rows  # one reference: the loading thread may replace it for a new snapshot's models
        if rows is None or rows.models is not base.sparse_models:
            rows = self._live_rows = LiveRows(base.sparse_models, self.encoder.lexical_rows)
        return rows

    def refresh(self, now: bool = False) -> None:
        """Serve what changed: a newly published snapshot once a background thread opened and verified it
        (looked for at most every reload_interval seconds, at once if now), and live articles another process
        stored. Each costs one cheap read when nothing changed, and no request waits for a snapshot to load.
        The served snapshot is replaced by a new object, never changed in place, so a request in flight keeps
        a consistent one."""
        if self.reloads_itself:
            if self._loader.done:
                self._swap_prepared()
            self._notice_published(now)
        self._lay_live()

    def follow_published(self) -> bool:
        """For a process that answers no requests (gunicorn's master, which forks the workers): swap in the
        snapshot its background thread finished preparing, True if it did; else start preparing a newly
        published one (looked for at most every reload_interval seconds). The live articles are read only then
        (a state that cannot be reached would hold the master up to a connection timeout on every look), so
        that what a fork inherits is up to date."""
        if self._loader.running:
            return False
        if self._loader.done:
            swapped = self._swap_prepared(drop_now=True)  # no request here to keep waiting for the unmapping
            self._lay_live()  # those stored while it was prepared
            return swapped
        # Whole at the lowest priority: here no request waits for the GIL the preparation holds, and the
        # workers' requests go first (the dates' sort at the workers' priority took half a core from them).
        self._notice_published(for_forks=True)
        return False

    @property
    def preparing(self) -> bool:
        """Whether a newly published snapshot is being prepared in a background thread now."""
        return self._loader.running

    def wait_prepared(self) -> None:
        """Wait until no snapshot is being prepared (blocks the whole thread: never for a request)."""
        self._loader.wait()

    def wait_for_swap(self, timeout: float | None = None) -> bool:
        """Look for a newly published snapshot now and wait until it is served (for tests and commands that
        need it at once; requests never wait). True once the published snapshot is served, False if it was
        refused or timeout seconds passed first."""
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh(now=True)
            if not self._loader.running and not self._loader.done:
                target = self._published()
                return target is None or target == self.base.path.resolve()
            left = None if until is None else until - time.monotonic()
            if (left is not None and left <= 0) or not self._loader.wait(left):
                return False

    def rules(self) -> Rules:
        """The editors' current decisions; re-read only when another process or request changed them (the
        counter refresh() read serves the next call, later calls read it again). While they cannot be read
        (the database is down), the rules read last keep applying."""
        if self.editorial is not None:
            seen, self._editorial_seen = self._editorial_seen, None
            try:
                if (seen if seen is not None else self.editorial.version()) != self._rules.version:
                    self._rules = self.editorial.rules()  # a new object, swapped in whole
                self._state_back()
            except StateUnavailable as exc:
                self._state_lost(exc)
        return self._rules

    def _state_lost(self, exc: StateUnavailable) -> None:
        if not self._state_down:  # once per outage, not once per request
            log.error("state unavailable, serving the editors' rules and live articles read last: %s", exc)
            self._state_down = True

    def _state_back(self) -> None:
        if self._state_down:
            log.warning("state readable again")
            self._state_down = False

    def put_article(self, article: Article) -> bool:
        """Embed an article and make it searchable at once, durably; True if its id was not served before."""
        if self.live is None:
            raise RuntimeError("live articles need a state_dir")
        new = article.id not in self.snapshot.row_of
        self.live.put(article, (self.embed_received or self.encoder.embed_dense)(article))
        self.refresh()
        return new

    def find(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Metadata of the served articles an editor may mean by query: the article with this id, else those
        whose title contains every word of it; newest first, taken-down articles left out."""
        snapshot, taken_down = self.snapshot, self.rules().taken_down
        exact = snapshot.row_of.get(query.strip())
        rows = np.array([exact]) if exact is not None else snapshot.titles.rows_with(query.split())
        if snapshot.shadowed is not None and rows.size:
            rows = rows[~snapshot.shadowed[rows]]  # the indexed version of an article updated since
        newest_first = rows[np.argsort(-snapshot.published_at[rows], kind="stable")]
        found = []
        for row in newest_first:
            meta = snapshot.articles[int(row)]
            if meta["id"] not in taken_down:
                found.append(meta)
                if len(found) == limit:
                    break
        return found

    def options(self, k: int | None = None, now: datetime | None = None) -> RankOptions:
        """Ranking options from the settings, with k and the reference time if given."""
        return RankOptions(
            k=k or self.settings.default_k,
            recency_weight=self.settings.recency_weight,
            half_life_days=self.settings.recency_half_life_days,
            duplicate_threshold=self.settings.duplicate_threshold,
            now=now,
        )

    def check_placement(self, placement: str | None) -> None:
        """UnknownPlacement for a placement name the configuration does not define (None names none)."""
        if placement is not None and placement not in self.placements:
            raise UnknownPlacement(f"unknown placement {placement!r} (known: {', '.join(sorted(self.placements))})")

    def article(self, article_id: str) -> dict[str, Any]:
        """The served metadata of an article readers may see; UnknownArticle when it is not served or taken down."""
        snapshot = self.snapshot
        row = snapshot.row_of.get(article_id)
        if row is None or article_id in self.rules().taken_down:
            raise UnknownArticle(article_id)
        return snapshot.articles[row]

    def ranking(self, k: int | None, filters: Filters, placement: str | None, request: Options,
                reference_time: float | None, now: datetime | None = None,
                arm: Arm | None = None) -> tuple[RankOptions, Filters]:
        """The ranking options and filters of one request: the settings, then the placement's options, then
        its A/B arm's, then the request's own (each wins over the one before); UnknownPlacement for a name not
        configured."""
        self.check_placement(placement)
        configured = self.placements[placement] if placement is not None else Options()
        chosen = request.over(arm.options.over(configured) if arm is not None else configured)
        settings = self.settings
        base = self.options(k or chosen.k, now)
        options = RankOptions(
            k=base.k, duplicate_threshold=base.duplicate_threshold, now=base.now,
            recency_weight=settings.recency_weight if chosen.recency_weight is None else chosen.recency_weight,
            half_life_days=chosen.half_life_days or settings.recency_half_life_days,
            min_relatedness=settings.min_relatedness if chosen.min_relatedness is None else chosen.min_relatedness,
            fallback=chosen.fallback or settings.fallback,
            # A half-life the placement or request names is for every section; else each section's own.
            section_half_life_days=() if chosen.half_life_days is not None else self._section_half_lives,
            selection=Selection(chosen.prefer_lang or "", chosen.max_per_story or 0,
                                1.0 if chosen.mmr_lambda is None else chosen.mmr_lambda)
            if chosen.prefer_lang or chosen.max_per_story or chosen.mmr_lambda is not None else NO_SELECTION,
            reference_time=reference_time,
            story_window_days=settings.story_window_days,
        )
        if chosen.lang or chosen.section or chosen.max_age_days is not None or chosen.only_before:
            filters = replace(
                filters,
                langs=filters.langs or chosen.lang or (),
                sections=filters.sections or chosen.section or (),
                max_age_days=chosen.max_age_days if filters.max_age_days is None else filters.max_age_days,
                published_before=reference_time if chosen.only_before else None,
            )
        return options, filters

    def _schedule(self, snapshot: Snapshot) -> np.ndarray:
        """The publication times still ahead when this snapshot was first served, sorted; one pass over the
        dates per snapshot (a new snapshot or live view is a new object), so requests only bisect it."""
        cached = self._upcoming
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        upcoming = upcoming_of(snapshot, self.clock())
        self._upcoming = (snapshot, upcoming)
        return upcoming

    def next_release(self, snapshot: Snapshot | None = None, now: float | None = None) -> float | None:
        """When the next scheduled (embargoed) article becomes visible (seconds since the epoch), or None."""
        upcoming = self._schedule(self.snapshot if snapshot is None else snapshot)
        now = self.clock() if now is None else now
        i = int(np.searchsorted(upcoming, now, side="right"))
        return float(upcoming[i]) if i < upcoming.size else None

    def cache_seconds(self, limit: int) -> int:
        """A list's cache lifetime: limit, cut so that no cache holds it past the next scheduled release."""
        now = self.clock()
        release = self.next_release(now=now)
        return limit if release is None else max(0, min(limit, int(release - now)))

    def _embargo(self, snapshot: Snapshot, filters: Filters) -> Filters:
        """filters plus the embargo at this moment; without a scheduled article no row needs the check."""
        now = self.clock()
        return filters if self.next_release(snapshot, now) is None else replace(filters, published_by=now)

    def related(self, article_id: str, k: int | None = None, filters: Filters = Filters(),
                placement: str | None = None, request: Options = Options(), arm: Arm | None = None) -> Related:
        """Related stories of an indexed article (never the article itself or a version of it); the article
        may be scheduled (a CMS preview), the stories in its list never are. placement, request and arm (one of
        the placement's, `arm_for`): see `ranking`."""
        snapshot, rules = self.snapshot, self.rules()  # one consistent snapshot for the whole request
        row = snapshot.row_of.get(article_id)
        if row is None or article_id in rules.taken_down:
            raise UnknownArticle(article_id)
        options, filters = self.ranking(k, filters, placement, request, float(snapshot.published_at[row]), arm=arm)
        query = query_from_row(snapshot, row)
        filters = replace(self._embargo(snapshot, filters),
                          exclude_ids=(*filters.exclude_ids, *sorted(rules.hidden_for(article_id))))
        return self._ranked(snapshot, query, filters, options, row, rules.pins.get(article_id, ()),
                            self.profile_of(arm))

    def warm_up(self, count: int = 8) -> None:
        """Rank the related lists of count articles spread over the snapshot and answer nothing: a fresh fork
        does this before it takes connections, so that its first readers do not pay for what every request
        touches first (pages of the shared snapshot and code, the state's connection). Never raises: a worker
        that failed here would fail to boot, and gunicorn stops the whole server for that."""
        try:
            self.refresh()
        except Exception as exc:  # the first request will meet it, and answer it as a request's error
            log.warning("warming up: %s", exc)
        n = len(self.snapshot)
        for row in sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(count)} if n else ()):
            try:
                self.related(self.snapshot.articles[row]["id"])
            except Exception as exc:  # a taken-down or broken article: warming up must never stop a worker
                log.debug("warming up on row %d: %s", row, exc)

    def related_to_text(self, text: RawText, k: int | None = None, filters: Filters = Filters(),
                        now: datetime | None = None, placement: str | None = None,
                        request: Options = Options(), arm: Arm | None = None) -> Related:
        """Related stories of an article that is not in the index (title + body of a draft); ages are
        measured from now (default: the present), e.g. the draft's own publication time, which is also the
        reference of the labels and of only_before."""
        snapshot = self.snapshot
        reference = (now or datetime.now(timezone.utc)).timestamp()
        options, filters = self.ranking(k, filters, placement, request, reference, now, arm)
        query = self.encoder.embed_query(text, snapshot.sparse_models)
        filters = replace(self._embargo(snapshot, filters),
                          exclude_ids=(*filters.exclude_ids, *sorted(self.rules().hidden_for(None))))
        return self._ranked(snapshot, query, filters, options, profile=self.profile_of(arm))

    def _ranked(self, snapshot: Snapshot, query: QueryVectors, filters: Filters, options: RankOptions,
                self_row: int | None = None, pins: Sequence[tuple[int, str]] = (),
                profile: Profile | None = None) -> Related:
        """rank() over the snapshot search's rounds of candidates, wider while filters or duplicates leave
        fewer than k (the policy is the search's, `GraphSearch.rounds`)."""

        def allowed() -> np.ndarray:
            return allowed_rows(snapshot, filters, options.now or datetime.now(timezone.utc))

        # Received articles (rows after the snapshot's own) are searched apart, by their vectors.
        added = {name: matrix.extra for name, matrix in snapshot.dense.items() if isinstance(matrix, Stacked)}
        rounds = snapshot.search.rounds(query.dense, self.settings.candidates, len(snapshot), self_row, allowed,
                                        added or None)
        return rank_rounds(snapshot, profile or self.profile, query, rounds, filters, options, self_row, pins,
                           lambda: self._newest_first(snapshot))

    def _newest_first(self, snapshot: Snapshot) -> np.ndarray:
        """The rows of the snapshot as it was loaded (not the live rows laid over it), newest first, int32;
        sorted once per loaded snapshot, so the fallback reads a block of the newest instead of every row's
        date. A live view keeps its snapshot's rows in place and appends its own, which are looked at apart."""
        key = newest_key(snapshot)
        cached = self._newest
        if cached is not None and cached[0] == key:
            return cached[1]
        order = newest_order(snapshot)
        self._newest = (key, order)
        return order


def upcoming_of(snapshot: Snapshot, now: float) -> np.ndarray:
    """The distinct publication times of the snapshot after now, sorted, float64."""
    stamps = np.asarray(snapshot.published_at)
    # float64, the type of the clock: searchsorted would otherwise convert the whole array per request.
    return np.unique(stamps[stamps > now]).astype(np.float64)


def newest_key(snapshot: Snapshot) -> tuple[str, int]:
    """What identifies the rows of a loaded snapshot, with or without live articles laid over it."""
    return snapshot.version.split("+live")[0], int(snapshot.manifest["n_articles"])


def newest_order(snapshot: Snapshot) -> np.ndarray:
    """The rows of the snapshot as it was loaded, newest first, int32."""
    loaded = int(snapshot.manifest["n_articles"])
    return np.argsort(-np.asarray(snapshot.published_at[:loaded]), kind="stable").astype(np.int32)
