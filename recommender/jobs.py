"""The offline index job: corpus → embeddings → verified snapshot → atomic publish."""
from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .cluster import dask_executor
from .config import Settings
from .corpus import Article, CorpusError, Problem, load_corpus
from .engine import signal_encoder
from .index import (
    IndexProblem,
    SignalArrays,
    load_snapshot,
    new_snapshot_dir,
    profile_fingerprint,
    publish,
    remove_unfinished,
    write_snapshot,
)
from .joblog import event
from .neighbours import SearchLayout
from .profiles import get_profile
from .signals import Progress, no_progress
from .stages import StageClock, stage


class IndexLocked(IndexProblem):
    """Another index job is writing to the same index directory."""


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
) -> BuildSummary:
    """Index the corpus into a new snapshot of index_dir and publish it; on any failure the previous
    snapshot stays current and the partial one is removed. Raises IndexLocked if another job is running."""
    with index_lock(index_dir):
        return _build(corpus_paths, index_dir, settings, skip_invalid, progress)


def _build(
    corpus_paths: Sequence[str | Path],
    index_dir: str | Path,
    settings: Settings,
    skip_invalid: bool,
    progress: Progress,
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
            loaded = load_corpus(corpus_paths, skip_invalid=skip_invalid)
            if not loaded.articles:
                raise CorpusError("the corpus holds no valid article")
            changes = compare_with_published(index_dir, loaded.articles)

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
        try:
            with stage("write"):
                write_snapshot(target, loaded.articles, arrays, profile, identities,
                               extra={"skipped_invalid": len(loaded.problems)},
                               layout=SearchLayout.from_settings(settings))
            with stage("verify"):
                # Read back what was written before anyone is pointed at it.
                load_snapshot(target, expected=profile_fingerprint(profile, identities), verify=True,
                              expansion_search=settings.ann_expansion)
            with stage("publish"):
                publish(index_dir, target, keep=settings.keep_snapshots)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return BuildSummary(target, len(loaded.articles), loaded.problems, clock.seconds, changes)


def _announce_stage(name: str, seconds: float) -> None:
    event("stage_done", f"{name} done in {seconds:.1f}s", stage=name, seconds=round(seconds, 3))


def compare_with_published(index_dir: str | Path, articles: Sequence[Article]) -> dict[str, int]:
    """How the corpus differs from the published snapshot: new, changed, unchanged and deleted articles."""
    try:
        previous = {a["id"]: a["content_hash"] for a in load_snapshot(index_dir, verify=False).articles}
    except IndexProblem:
        previous = {}
    hashes = {a.id: a.content_hash() for a in articles}
    known = hashes.keys() & previous.keys()
    unchanged = sum(1 for i in known if hashes[i] == previous[i])
    return {"new": len(hashes.keys() - previous.keys()), "changed": len(known) - unchanged,
            "unchanged": unchanged, "deleted": len(previous.keys() - hashes.keys())}
