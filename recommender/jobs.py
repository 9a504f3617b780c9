"""The offline index job: corpus → embeddings → verified snapshot → atomic publish."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .config import Settings
from .corpus import Problem, load_corpus
from .engine import signal_encoder
from .index import load_snapshot, new_snapshot_dir, profile_fingerprint, publish, write_snapshot
from .profiles import get_profile
from .signals import Progress, no_progress


@dataclass
class BuildSummary:
    """What an index run did."""

    snapshot: Path
    articles: int
    skipped: list[Problem] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

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
    snapshot stays current and the partial one is removed."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_corpus(corpus_paths, skip_invalid=skip_invalid)
    if not loaded.articles:
        from .corpus import CorpusError

        raise CorpusError("the corpus holds no valid article")
    timings["read"] = time.perf_counter() - start

    profile = get_profile(settings.profile)
    encoder = signal_encoder(settings, profile)
    start = time.perf_counter()
    arrays = encoder.embed_articles(loaded.articles, progress)
    timings["embed"] = time.perf_counter() - start

    start = time.perf_counter()
    target = new_snapshot_dir(index_dir)
    identities = encoder.identities()
    try:
        write_snapshot(target, loaded.articles, arrays, profile, identities,
                       extra={"skipped_invalid": len(loaded.problems)})
        # Read back what was written before anyone is pointed at it.
        load_snapshot(target, expected=profile_fingerprint(profile, identities), verify=True)
        publish(index_dir, target, keep=settings.keep_snapshots)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    timings["write"] = time.perf_counter() - start
    return BuildSummary(target, len(loaded.articles), loaded.problems, timings)
