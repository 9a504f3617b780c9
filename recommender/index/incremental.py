"""Incremental search structures: the previous snapshot's graphs and candidate lists, updated for the articles a
run adds, changes and deletes instead of rebuilt (a full build took 46 minutes at a million articles on 2 cores).

The previous snapshot is being served from its files, so nothing of it is changed: its graph is read into
memory, updated and saved into the new snapshot. Rows are renumbered between snapshots (a snapshot keeps the
corpus order), and graph keys are rows, so the kept articles' keys are renamed to their new rows; every reader of
a graph then works as before. An article whose text changed is a deleted one plus a new one: its vectors moved.

Candidate lists: the kept articles' lists are renumbered and lose deleted and changed rows; new and changed
articles get lists searched in the updated graphs; a new article is put into the lists of the articles its own
search found (the lists it most likely belongs in: 'a new story appears under old stories'), each such list
re-scored and cut back to its length; lists that lost more than a tenth of their entries are searched again.
Quality against a full rebuild is measured by `bench/incremental_search.py` (docs/benchmarks.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .graph import NO_NEIGHBOUR, SearchLayout, candidate_lists

# Renamed keys go through this range first, so that a key is never renamed onto one still in use.
_PARKED = np.uint64(1 << 40)
# A kept article's list that lost more than this share of its entries is searched again.
REFILL_BELOW = 0.9
_BLOCK = 512  # lists re-scored at once: (block, width, dim) float32 vectors in memory


@dataclass(frozen=True)
class PreviousSearch:
    """The published snapshot whose search structures a run updates, and how its rows map to the new ones.

    directory : the previous snapshot's directory (only read: it is being served)
    version : its name, recorded in the new manifest
    old_to_new : ndarray of shape (n_previous,), int64: each previous row's row in the new snapshot, or -1 when
        the article was deleted or its text changed
    fresh : ndarray of new rows (int64) without vectors in the previous snapshot: new and changed articles
    changed_share : (fresh + deleted) / n_previous
    chain : the previous snapshot's record of how its structures were made (`SearchPlan.record`)
    """

    directory: Path
    version: str
    old_to_new: np.ndarray
    fresh: np.ndarray
    changed_share: float
    chain: Mapping[str, Any]


@dataclass(frozen=True)
class SearchPlan:
    """How a run makes its search structures: updated from `previous`, or built anew (previous None) for `reason`."""

    previous: PreviousSearch | None = None
    reason: str = "no previous search structures"

    def record(self) -> dict[str, Any]:
        """The manifest's `search_build`: how the structures were made, so a chain of updates can be audited."""
        if self.previous is None:
            return {"mode": "full", "reason": self.reason, "runs_since_full": 0, "changed_since_full": 0.0}
        chain = self.previous.chain
        return {"mode": "incremental", "from": self.previous.version,
                "changed_share": round(self.previous.changed_share, 6),
                "runs_since_full": int(chain.get("runs_since_full", 0)) + 1,
                "changed_since_full": round(changed_since_full(self.previous), 6)}


def changed_since_full(previous: PreviousSearch) -> float:
    """The share of the index changed since the last full build, this run included (drift grows with it)."""
    return float(previous.chain.get("changed_since_full", 0.0)) + previous.changed_share


def plan_search(manifest: Mapping[str, Any] | None, directory: Path | None, old_to_new: np.ndarray,
                fresh: np.ndarray, deleted: int, expected: Mapping[str, Any], signals: list[str],
                layout: SearchLayout, max_share: float, rebuild: bool = False) -> SearchPlan:
    """Update the published snapshot's structures when they fit this run, else build anew and say why.

    manifest, directory : the published snapshot's (None before the first run); old_to_new, fresh : as in
    PreviousSearch; deleted : articles of the published snapshot not in this run's corpus; expected : this run's
    profile_fingerprint; signals : the graph signals this run needs; max_share : the most of the index that
    may have changed since the last full build (setting incremental_max_share); rebuild : `--rebuild`.
    """
    if rebuild:
        return SearchPlan(reason="asked for (--rebuild)")
    if manifest is None or directory is None or not manifest.get("graphs"):
        return SearchPlan()
    if manifest["config"] != dict(expected) or list(manifest["graphs"]) != list(signals):
        return SearchPlan(reason="the profile or its encoders changed")
    if manifest["candidates"] != layout.candidates or manifest["vector_dtype"] != layout.vector_dtype:
        return SearchPlan(reason="the candidates or vector_dtype setting changed")
    previous = PreviousSearch(directory, str(manifest["snapshot"]), old_to_new, fresh,
                              (len(fresh) + deleted) / max(len(old_to_new), 1), manifest.get("search_build") or {})
    if changed_since_full(previous) > max_share:
        return SearchPlan(reason=f"{changed_since_full(previous):.1%} of the index changed since the last full "
                                 f"build, more than incremental_max_share {max_share:.0%}")
    return SearchPlan(previous)



def update_graph(path: Path, previous: PreviousSearch, vectors: np.ndarray, layout: SearchLayout) -> Any:
    """The previous snapshot's graph at path, in memory, with deleted and changed rows removed, kept rows renamed
    to their new rows and fresh rows added: a usearch Index with keys = new rows.

    vectors : (n_new, dim) the new snapshot's stored vectors of this graph's signal
    """
    from usearch.index import Index

    graph = Index.restore(str(path), view=False)  # in memory and with its key table: both are updated
    if graph is None:
        raise ValueError(f"{path.name} is not a usearch graph")
    graph.expansion_add, graph.expansion_search = layout.expansion_add, layout.expansion_search  # not in the file
    old_rows = np.arange(len(previous.old_to_new), dtype=np.uint64)
    gone = previous.old_to_new < 0
    if gone.any():
        graph.remove(old_rows[gone])
    moved = ~gone & (previous.old_to_new != old_rows.astype(np.int64))
    if moved.any():
        graph.rename(old_rows[moved], old_rows[moved] + _PARKED)
        graph.rename(old_rows[moved] + _PARKED, previous.old_to_new[moved].astype(np.uint64))
    if len(previous.fresh):
        # Removed slots are reused by these additions, so a chain of updates does not grow the file.
        graph.add(previous.fresh.astype(np.uint64), np.asarray(vectors[previous.fresh], dtype=np.float32),
                  threads=layout.threads)
    return graph


def update_lists(previous_lists: np.ndarray, previous: PreviousSearch, dense: Mapping[str, np.ndarray],
                 graphs: Mapping[str, Any], layout: SearchLayout) -> np.ndarray:
    """The candidate lists of the new snapshot from the previous ones: (n_new, candidates * graphs) int32.

    previous_lists : the previous snapshot's `candidates.npy`; dense : the new snapshot's stored vectors;
    graphs : the updated graphs (update_graph), keys = new rows.
    """
    n = next(iter(dense.values())).shape[0]
    lists = renumbered_lists(previous_lists, previous.old_to_new, n)
    before = np.zeros(n, dtype=np.int64)
    kept = previous.old_to_new >= 0
    before[previous.old_to_new[kept]] = np.count_nonzero(np.asarray(previous_lists)[kept] >= 0, axis=1)
    fresh = previous.fresh
    if len(fresh):
        lists[fresh] = candidate_lists(dense, graphs, layout, rows=fresh)
        # Converted once: re-scoring gathers about a hundred rows per touched list, and converting float16 rows
        # as they are gathered cost most of this stage (1.5 GB at a million 384-dimensional rows).
        converted = {name: np.asarray(dense[name], dtype=np.float32) for name in graphs}
        insert_new_rows(lists, fresh, converted, list(graphs), layout.candidates)
    short = np.flatnonzero(np.count_nonzero(lists >= 0, axis=1) < REFILL_BELOW * before)
    if len(short):
        lists[short] = candidate_lists(dense, graphs, layout, rows=short)
    return lists


def renumbered_lists(previous_lists: np.ndarray, old_to_new: np.ndarray, n: int) -> np.ndarray:
    """The previous lists in new rows: kept articles' lists at their new rows, deleted and changed rows dropped
    (NO_NEIGHBOUR padding after the real rows, order kept); rows without a previous list all NO_NEIGHBOUR."""
    lists = np.full((n, previous_lists.shape[1]), NO_NEIGHBOUR, dtype=np.int32)
    kept = np.flatnonzero(old_to_new >= 0)
    lookup = np.append(old_to_new, NO_NEIGHBOUR).astype(np.int32)  # index -1 (padding) reads NO_NEIGHBOUR
    for start in range(0, len(kept), 65536):
        rows = kept[start:start + 65536]
        renamed = lookup[np.asarray(previous_lists[rows])]
        order = np.argsort(renamed < 0, axis=1, kind="stable")
        lists[old_to_new[rows]] = np.take_along_axis(renamed, order, axis=1)
    return lists


def insert_new_rows(lists: np.ndarray, fresh: np.ndarray, dense: Mapping[str, np.ndarray], signals: list[str],
                    candidates: int) -> None:
    """Put each fresh row into the lists of the rows its own list holds, when it is among their best (in place).

    A touched list is re-scored over its rows and the new ones in every graph signal and keeps the rows that are
    among the `candidates` best of some signal, best first (at most its width)."""
    owners = lists[fresh].ravel()
    newcomers = np.repeat(fresh, lists.shape[1])
    own = (owners >= 0) & ~np.isin(owners, fresh)  # fresh rows' lists were just searched in the updated graphs
    owners, newcomers = owners[own].astype(np.int64), newcomers[own]
    if not len(owners):
        return
    order = np.lexsort((newcomers, owners))
    owners, newcomers = owners[order], newcomers[order]
    touched, first, counts = np.unique(owners, return_index=True, return_counts=True)
    position = np.arange(len(owners)) - np.repeat(first, counts)
    by_width = np.argsort(counts, kind="stable")  # similar widths per block: little padding
    for start in range(0, len(touched), _BLOCK):
        block = by_width[start:start + _BLOCK]
        extra = np.full((len(block), int(counts[block].max())), NO_NEIGHBOUR, dtype=np.int64)
        slot = np.repeat(np.arange(len(block)), counts[block])
        members = np.concatenate([np.arange(first[b], first[b] + counts[b]) for b in block])
        extra[slot, position[members]] = newcomers[members]
        rows = touched[block]
        merged = np.concatenate([lists[rows].astype(np.int64), extra], axis=1)
        lists[rows] = best_members(rows, merged, dense, signals, candidates, lists.shape[1])


def best_members(owners: np.ndarray, rows: np.ndarray, dense: Mapping[str, np.ndarray], signals: list[str],
                 candidates: int, width: int) -> np.ndarray:
    """Of each owner's rows (b, w) int64 (NO_NEIGHBOUR padding), those among its `candidates` nearest in some
    signal, by best rank over the signals, then padding: (b, width) int32. dense : float32 arrays."""
    valid = rows >= 0
    safe = np.where(valid, rows, 0)
    best_rank = np.full(rows.shape, np.iinfo(np.int64).max, dtype=np.int64)
    for name in signals:
        vectors = dense[name]
        queries = np.asarray(vectors[owners], dtype=np.float32)
        found = vectors[safe]
        scores = np.where(valid, np.einsum("bd,bwd->bw", queries, found), -np.inf)
        rank = np.empty_like(best_rank)
        np.put_along_axis(rank, np.argsort(-scores, axis=1, kind="stable"), np.arange(rows.shape[1])[None, :], axis=1)
        best_rank = np.minimum(best_rank, rank)
    keep = valid & (best_rank < candidates)
    order = np.argsort(np.where(keep, best_rank, np.iinfo(np.int64).max), axis=1, kind="stable")[:, :width]
    chosen = np.take_along_axis(np.where(keep, rows, NO_NEIGHBOUR), order, axis=1)
    if chosen.shape[1] < width:
        chosen = np.pad(chosen, ((0, 0), (0, width - chosen.shape[1])), constant_values=NO_NEIGHBOUR)
    return chosen.astype(np.int32)


def list_overlap(lists: np.ndarray, reference: np.ndarray, vectors: np.ndarray, k: int | None = None,
                 rows: np.ndarray | None = None) -> float:
    """Mean share of each reference list's rows that lists holds too; with k, of the k best of each list by inner
    product with its row's vector (what a query of k suggestions mostly ranks), else of the whole lists.

    lists, reference : (q, width) rows with NO_NEIGHBOUR padding, the lists of `rows` (default: of rows 0 .. q - 1);
    vectors : (n, dim) of one signal."""
    shares = []
    owners = range(len(lists)) if rows is None else rows
    for row, found, wanted in zip(owners, np.asarray(lists), np.asarray(reference)):
        found, wanted = found[found >= 0], wanted[wanted >= 0]
        if k is not None:
            query = np.asarray(vectors[row], dtype=np.float32)
            found, wanted = (rows[np.argsort(-(np.asarray(vectors[rows], dtype=np.float32) @ query),
                                             kind="stable")[:k]] for rows in (found, wanted))
        shares.append(len(np.intersect1d(found, wanted)) / max(len(wanted), 1))
    return float(np.mean(shares)) if shares else 1.0
