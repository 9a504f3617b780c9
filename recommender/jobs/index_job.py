"""The offline index job: corpus → embeddings → verified snapshot → atomic publish."""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..config import Settings
from ..embed.cluster import dask_executor
from ..embed.vectors import SignalArrays
from ..engine import signal_encoder
from ..index.graph import SearchLayout, graph_signals
from ..index.incremental import SearchPlan, plan_search
from ..index.snapshot import (
    IndexProblem,
    Snapshot,
    descriptive_metadata,
    load_snapshot,
    new_snapshot_dir,
    profile_fingerprint,
    publish,
    remove_unfinished,
    verify_files,
    write_snapshot,
)
from ..ingest.corpus import (
    Article,
    CorpusError,
    LoadResult,
    Problem,
    ReadLimits,
    load_corpus,
)
from ..ingest.profiles import get_profile
from ..progress import Progress, event, no_progress
from ..stages import StageClock, stage


class IndexLocked(IndexProblem):
    """Another index job is writing to the same index directory."""


class PublishRefused(IndexProblem):
    """The job would shrink the published index too much or change its profile without being told to."""


@dataclass(frozen=True)
class Guards:
    """What a run may do to the published index: its operator's flags beside the settings' shares."""

    allow_shrink: bool = False
    profile_change: bool = False
    rebuild: bool = False  # build the search structures anew instead of updating the published ones


@contextmanager
def index_lock(index_dir: str | Path) -> Iterator[None]:
    """Hold the index directory's job lock, or raise IndexLocked at once: two jobs must never interleave.

    flock is released by the kernel when the process dies (kill -9 included), so a crashed job never
    leaves a stale lock behind.
    """
    path = Path(index_dir)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise IndexLocked(f"another index job (pid {holder}) is writing to {path}; try again when it ends") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class BuildSummary:
    """What an index run did."""

    snapshot: Path
    articles: int
    skipped: list[Problem] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def articles_per_second(self) -> float:
        """Indexing throughput over the whole run."""
        total = sum(self.seconds.values())
        return self.articles / total if total else 0.0


def build_index(
    corpus_paths: Sequence[str | Path],
    index_dir: str | Path,
    settings: Settings,
    skip_invalid: bool = False,
    progress: Progress = no_progress,
    guards: Guards = Guards(),
) -> BuildSummary:
    """Index the corpus into a new snapshot of index_dir and publish it; on any failure the previous
    snapshot stays current and the partial one is removed. Raises IndexLocked if another job is running,
    PublishRefused (before embedding) if the run would shrink the index or change its profile unasked."""
    with index_lock(index_dir):
        return _build(corpus_paths, index_dir, settings, skip_invalid, progress, guards)


def _build(
    corpus_paths: Sequence[str | Path],
    index_dir: str | Path,
    settings: Settings,
    skip_invalid: bool,
    progress: Progress,
    guards: Guards = Guards(),
) -> BuildSummary:
    clock = StageClock(on_done=_announce_stage)
    with clock.running(), ExitStack() as resources:
        executor = None
        if settings.cluster:
            # Connect first: a wrong address should fail before minutes of reading a large corpus.
            with stage("connect"):
                executor = resources.enter_context(
                    dask_executor(settings.cluster, stall_timeout=settings.cluster_stall_timeout))
        with stage("read"):
            for name in remove_unfinished(index_dir):
                event("cleanup", f"removed the unfinished snapshot {name} of an interrupted run", snapshot=name)
            loaded = load_corpus(corpus_paths, skip_invalid=skip_invalid,
                                 limits=ReadLimits(settings.max_record_bytes, settings.max_future_days))
            for note in loaded.notes:
                event("corpus_link", note, logging.WARNING, note=note)
            if not loaded.articles:
                raise CorpusError("the corpus holds no valid article")
            published = _published(index_dir)
            compared = compare_rows(published, loaded.articles)
            changes = compared.counts
            check_guards(published, loaded, changes, settings, guards)

        profile = get_profile(settings.profile)
        encoder = signal_encoder(settings, profile)
        encoder.executor = executor
        arrays = SignalArrays()
        with stage("embed"):
            encoder.embed_dense_signals(loaded.articles, arrays, progress)
            resources.close()  # the cluster is not needed any more
        with stage("lexical"):
            encoder.fit_lexical(loaded.articles, arrays)

        target = new_snapshot_dir(index_dir)
        identities = encoder.identities()
        layout = SearchLayout.from_settings(settings)
        plan = _search_plan(published, compared, profile_fingerprint(profile, identities), graph_signals(profile),
                            layout, settings, guards)
        try:
            with stage("write"):
                write_snapshot(target, loaded.articles, arrays, profile, identities,
                               extra={"skipped_invalid": len(loaded.problems)}, layout=layout, plan=plan)
            with stage("verify"):
                # Read back what was written before anyone is pointed at it.
                load_snapshot(target, expected=profile_fingerprint(profile, identities), verify=True,
                              expansion_search=settings.ann_expansion)
            with stage("publish"):
                for name in publish(index_dir, target, keep=settings.keep_snapshots):
                    event("cleanup", f"deleted the old snapshot {name}", snapshot=name)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return BuildSummary(target, len(loaded.articles), loaded.problems, clock.seconds, changes, loaded.files)


def _announce_stage(name: str, seconds: float) -> None:
    event("stage_done", f"{name} done in {seconds:.1f}s", stage=name, seconds=round(seconds, 3))


def _published(index_dir: str | Path) -> Snapshot | None:
    """The published snapshot (unverified: only its article list is compared), or None before the first run."""
    try:
        return load_snapshot(index_dir, verify=False)
    except IndexProblem:
        return None


@dataclass(frozen=True)
class Comparison:
    """How the corpus differs from the published snapshot, in counts and in rows.

    counts : new, changed (text), metadata_changed, unchanged, deleted articles
    old_to_new : (n_published,) int64, each published row's row in this run, -1 when deleted or its text changed
    fresh : (new + changed,) int64 rows of this run whose vectors the published snapshot does not hold
    """

    counts: dict[str, int]
    old_to_new: np.ndarray
    fresh: np.ndarray


def compare_with_published(published: Snapshot | None, articles: Sequence[Article]) -> dict[str, int]:
    """How the corpus differs from the published snapshot: new, changed (text), metadata changed (section,
    date, URL, tags, author), unchanged and deleted articles."""
    return compare_rows(published, articles).counts


def compare_rows(published: Snapshot | None, articles: Sequence[Article]) -> Comparison:
    """How the corpus differs from the published snapshot, with the row mapping an incremental update needs."""
    # Only the row, hash and a digest of the metadata per id: a million published rows must not be held as dicts.
    previous = ({a["id"]: (row, a["content_hash"], _digest({k: a.get(k) for k in _METADATA}))
                 for row, a in enumerate(published.articles)} if published is not None else {})
    counts = {"new": 0, "changed": 0, "metadata_changed": 0, "unchanged": 0}
    old_to_new = np.full(len(previous), -1, dtype=np.int64)
    fresh = []
    for row, article in enumerate(articles):
        stored = previous.get(article.id)
        if stored is None or stored[1] != article.content_hash():
            counts["new" if stored is None else "changed"] += 1
            fresh.append(row)
            continue
        old_to_new[stored[0]] = row
        counts["unchanged" if stored[2] == _digest(descriptive_metadata(article)) else "metadata_changed"] += 1
    counts["deleted"] = len(previous.keys() - {a.id for a in articles})
    return Comparison(counts, old_to_new, np.array(fresh, dtype=np.int64))


def _search_plan(published: Snapshot | None, compared: Comparison, expected: dict[str, object], signals: list[str],
                 layout: SearchLayout, settings: Settings, guards: Guards) -> SearchPlan:
    """Whether this run updates the published search structures or builds them anew (announced either way)."""
    plan = plan_search(published.manifest if published else None, published.path if published else None,
                       compared.old_to_new, compared.fresh, compared.counts["deleted"], expected, signals, layout,
                       settings.incremental_max_share, guards.rebuild)
    if plan.previous is not None:
        try:  # its graphs and lists are carried into the new snapshot: a flipped byte must not be
            verify_files(plan.previous.directory, published.manifest)
        except IndexProblem as exc:
            plan = SearchPlan(reason=f"the published snapshot failed verification ({exc})")
    if published is not None and published.manifest.get("graphs"):
        how = f"updated from {plan.previous.version}" if plan.previous else f"built anew: {plan.reason}"
        event("search_plan", f"search structures {how}", incremental=plan.previous is not None, reason=plan.reason)
    return plan


_METADATA = ("url", "published_at", "section", "tags", "author")  # the keys of index.descriptive_metadata


def _digest(values: dict[str, object]) -> str:
    return hashlib.blake2b(json.dumps(values, ensure_ascii=False, sort_keys=True).encode("utf-8"), digest_size=16).hexdigest()


def check_guards(published: Snapshot | None, loaded: LoadResult, changes: dict[str, int], settings: Settings,
                 guards: Guards) -> None:
    """Raise PublishRefused when the run would change the profile, delete or skip more than the settings allow."""
    keep = "the published index is unchanged"
    if published is not None and not guards.profile_change:
        before, after = published.manifest["config"]["profile"]["name"], settings.profile
        if before != after:
            raise PublishRefused(f"the published index was built with profile '{before}' and this job would replace "
                                 f"it with profile '{after}' (servers of '{before}' refuse it): pass "
                                 f"--profile-change if that is meant; {keep}")
    if guards.allow_shrink:
        return
    records = len(loaded.articles) + len(loaded.problems)
    if len(loaded.problems) > settings.max_skip_share * records:
        raise PublishRefused(f"{len(loaded.problems)} of {records} records are invalid "
                             f"({len(loaded.problems) / records:.0%}, more than max_skip_share "
                             f"{settings.max_skip_share:.0%}): fix the export or pass --allow-shrink; {keep}")
    indexed = len(published) if published is not None else 0
    if indexed and changes["deleted"] > settings.max_delete_share * indexed:
        raise PublishRefused(f"this run would delete {changes['deleted']} of the {indexed} published articles "
                             f"({changes['deleted'] / indexed:.0%}, more than max_delete_share "
                             f"{settings.max_delete_share:.0%}): check the export or pass --allow-shrink; {keep}")
