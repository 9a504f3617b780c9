"""Index snapshots: a directory of `.npy` arrays + `articles.jsonl` + `manifest.json`, published atomically.

Layout of an index directory::

    DIR/current                  -> snapshots/<name>   (symbolic link, swapped atomically)
    DIR/snapshots/<name>/manifest.json
    DIR/snapshots/<name>/articles.jsonl               (metadata, one article a line, row order)
    DIR/snapshots/<name>/articles_offsets.npy         (n_articles + 1,) int64 byte offset of each line
    DIR/snapshots/<name>/titles.txt, titles_offsets.npy   casefolded titles, one a line (editors' search)
    DIR/snapshots/<name>/id_hashes.npy, id_rows.npy   sorted 64-bit id hashes and their rows (id lookup)
    DIR/snapshots/<name>/lang_codes.npy, section_codes.npy   small integer codes (values in the manifest)
    DIR/snapshots/<name>/dense_<signal>.npy           (n_articles, dim) float16 or float32, memory-mapped
    DIR/snapshots/<name>/sparse_<signal>_{data,indices,indptr,idf}.npy, sparse_<signal>_vocabulary.json
    DIR/snapshots/<name>/published_at.npy             (n_articles,) int64 seconds since the epoch
    DIR/snapshots/<name>/evergreen.npy                (n_articles,) bool, only when some article is evergreen
    DIR/snapshots/<name>/graph_<signal>.usearch       large indexes only: neighbour graph (search.GraphSearch)
    DIR/snapshots/<name>/candidates.npy               large indexes only: (n_articles, C) int32 candidate rows

A snapshot is never changed after it is written; a new build writes a new snapshot beside the old one,
verifies it and only then swaps `current`. Arrays are read with allow_pickle=False: never a pickle.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import sys
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import xxhash
from scipy import sparse

from ..embed.encoders import TfidfModel
from ..embed.vectors import SignalArrays
from ..ingest.corpus import Article
from ..ingest.profiles import Profile
from ..ingest.textprep import TEXTPREP_VERSION, make_teaser
from ..stages import stage
from .graph import SearchLayout, graph_signals
from .incremental import SearchPlan
from .metadata import (
    ArticleTable,
    RowLookup,
    TitleIndex,
    codes_of,
    encode_column,
    jsonl_with_offsets,
    sorted_id_hashes,
)
from .search import ExactSearch, GraphSearch, Search, open_search

# 2: float16 vectors, metadata read on demand, xxh3 checksums, graphs and candidate lists.
FORMAT_VERSION = 2
CURRENT = "current"
SNAPSHOTS = "snapshots"


class IndexProblem(RuntimeError):
    """Base of the index errors."""


class IndexNotFound(IndexProblem):
    """There is no index at the given place."""


class IndexCorrupt(IndexProblem):
    """A snapshot's files do not match its manifest (a flipped byte, a truncated file, a missing array)."""


class IndexMismatch(IndexProblem):
    """A snapshot was built with another configuration than the one asked for."""


@dataclass
class Snapshot:
    """A loaded, read-only index snapshot; `load_snapshot` opens one from disk, `Snapshot.in_memory` makes one
    of articles and their vectors without writing anything.

    articles : metadata dicts in row order (no bodies), decoded on access
    dense : signal name -> ndarray of shape (n_articles, dim); memory-mapped float16 in large indexes
    sparse : signal name -> csr_matrix of shape (n_articles, n_terms), float32 (the word signal is 'tfidf')
    sparse_models : signal name -> fitted TfidfModel, to turn a new text into a comparable row (loaded lazily)
    published_at : ndarray of shape (n_articles,), int64 seconds since the epoch
    row_of : id -> row
    lang_codes, section_codes : ndarray of shape (n_articles,), unsigned int: per row, the index into
        lang_values / section_values (sections casefolded)
    titles : the titles, for editors' searches by words of a title
    search : which rows are worth ranking for a query (ExactSearch, or GraphSearch in large indexes); it
        covers rows 0 .. search.n_rows_ - 1, rows after those (live articles) are candidates of every query
    shadowed : bool ndarray of shape (n_articles,) or None: rows replaced by a newer live version
    evergreen : bool ndarray of shape (n_articles,) or None (no evergreen article): rows exempt from the decay
    """

    path: Path
    manifest: dict[str, Any]
    articles: Sequence[dict[str, Any]]
    dense: Mapping[str, Any]
    sparse: Mapping[str, Any]
    sparse_models: Mapping[str, TfidfModel]
    published_at: np.ndarray
    row_of: Mapping[str, int]
    lang_codes: np.ndarray
    lang_values: list[str]
    section_codes: np.ndarray
    section_values: list[str]
    titles: TitleIndex
    search: Search
    shadowed: np.ndarray | None = None
    evergreen: np.ndarray | None = None

    @classmethod
    def in_memory(cls, articles: Sequence[Article], arrays: SignalArrays,
                  search: Search | None = None, name: str = "in-memory") -> "Snapshot":
        """A snapshot of articles and their vectors held in memory (nothing written, no path on disk).

        arrays : as for write_snapshot, dense rows float32; search : built over arrays.dense (default: exact)
        name : the snapshot's version
        """
        metadata = [article_metadata(a) for a in articles]
        lang_codes, langs = encode_column([m["lang"] for m in metadata])
        section_codes, sections = encode_column([m["section"].casefold() for m in metadata])
        search = search or ExactSearch().build(arrays.dense)
        manifest = {
            "format_version": FORMAT_VERSION, "snapshot": name, "n_articles": len(metadata),
            "dense_dims": {k: int(v.shape[1]) for k, v in arrays.dense.items()}, "vector_dtype": "float32",
            "sparse_terms": {k: len(m.vocabulary_) for k, m in arrays.sparse_models.items()},
            "langs": langs, "sections": sections,
        }  # no files, checksums or configuration: it was never written
        return cls(
            Path(name), manifest, metadata, dict(arrays.dense), {k: m.tocsr() for k, m in arrays.sparse.items()},
            dict(arrays.sparse_models),
            np.array([int(a.published_at.timestamp()) for a in articles], dtype=np.int64),
            row_of={m["id"]: i for i, m in enumerate(metadata)}, lang_codes=lang_codes, lang_values=langs,
            section_codes=section_codes, section_values=sections,
            titles=TitleIndex.build([m["title"] for m in metadata]), search=search,
            evergreen=evergreen_column(articles),
        )

    def __len__(self) -> int:
        return len(self.articles)

    @property
    def tfidf(self) -> sparse.csr_matrix:
        """The word TF-IDF rows, which also decide what counts as a version of the same text."""
        return self.sparse["tfidf"]

    @property
    def version(self) -> str:
        """The snapshot's name, which changes with every build."""
        return str(self.manifest["snapshot"])

    @property
    def searched_by_graph(self) -> bool:
        """Whether queries go through the precomputed lists and graphs instead of an exact scan."""
        return self.search.approximate

    def lang_mask(self, rows: np.ndarray, langs: Sequence[str]) -> np.ndarray:
        """For each row, whether its language is one of langs."""
        return np.isin(self.lang_codes[rows], codes_of(langs, self.lang_values))

    def section_mask(self, rows: np.ndarray, sections: Sequence[str]) -> np.ndarray:
        """For each row, whether its section is one of sections (case-insensitive)."""
        return np.isin(self.section_codes[rows], codes_of([s.casefold() for s in sections], self.section_values))


class LazyModels(Mapping[str, TfidfModel]):
    """The fitted lexical models of a snapshot, read from disk on first use: only queries by text need them,
    and a large vocabulary takes a while to parse."""

    def __init__(self, path: Path, manifest: Mapping[str, Any]) -> None:
        self._path, self._manifest = path, manifest
        self._models: dict[str, TfidfModel] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> TfidfModel:
        if name not in self._manifest["sparse_terms"]:
            raise KeyError(name)
        with self._lock:
            if name not in self._models:
                path, identity = self._path, self._manifest["config"]["encoders"][name]
                vocabulary = json.loads((path / f"sparse_{name}_vocabulary.json").read_text(encoding="utf-8"))
                idf = np.load(path / f"sparse_{name}_idf.npy", allow_pickle=False)
                self._models[name] = TfidfModel(identity["analyzer"], identity["sublinear_tf"],
                                                identity["min_df"]).set_fitted(vocabulary, idf)
            return self._models[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._manifest["sparse_terms"])

    def __len__(self) -> int:
        return len(self._manifest["sparse_terms"])


def profile_fingerprint(profile: Profile, identities: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that must match for two sets of vectors to be comparable."""
    return {"profile": profile.to_json(), "encoders": dict(identities), "textprep_version": TEXTPREP_VERSION}


def _digest(path: Path) -> str:
    # xxh3-128 streams at memory speed (~14 GB/s here, sha256 ~1.4): a million-article snapshot is verified
    # at every load in well under a second. It guards against corruption, not against an attacker who can
    # write the index directory (who could rewrite the manifest as well). The file is mapped, not read: one
    # call per file that hashes without the GIL throughout (a worker verifies a new snapshot beside its
    # requests, and every time it took the GIL back between 16 MB blocks its requests waited) and no copy
    # (4.4 GB in 0.8 s instead of 1.6 s).
    digest = xxhash.xxh3_128()
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                digest.update(mapped)
    return digest.hexdigest()


def descriptive_metadata(article: Article) -> dict[str, Any]:
    """What a snapshot keeps of an article beside its text and language: a change here changes no vector."""
    return {"url": article.url, "published_at": article.published_at.isoformat(), "section": article.section,
            "tags": list(article.tags), "author": article.author,
            # Only when set: snapshots written before the flag existed then compare equal, and stay unchanged.
            **({"evergreen": True} if article.evergreen else {}),
            **({"image": asdict(article.image)} if article.image else {})}


def evergreen_column(articles: Sequence[Article]) -> np.ndarray | None:
    """Which articles are evergreen: bool ndarray of shape (n_articles,), or None when none is."""
    flags = np.array([a.evergreen for a in articles], dtype=bool)
    return flags if flags.any() else None


def article_metadata(article: Article) -> dict[str, Any]:
    """What a snapshot keeps of an article besides its vectors (no body; a teaser always)."""
    return {
        "id": article.id,
        "title": article.title,
        "teaser": article.teaser or make_teaser(article.body),
        "teaser_generated": not article.teaser,
        "lang": article.lang,
        **descriptive_metadata(article),
        "content_hash": article.content_hash(),
    }


def write_snapshot(
    target: Path,
    articles: list[Article],
    arrays: SignalArrays,
    profile: Profile,
    identities: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    layout: SearchLayout = SearchLayout(),
    plan: SearchPlan = SearchPlan(),
) -> Path:
    """Write a complete snapshot into the new directory target and return it; large ones (layout) get
    neighbour graphs and candidate lists (timed as the job stage 'search structures'), built anew or updated
    from a previous snapshot's as the plan says (manifest: `search_build`)."""
    if "tfidf" not in arrays.sparse:
        raise ValueError("a snapshot needs the word TF-IDF signal")
    target.mkdir(parents=True)
    n = len(articles)
    metadata = [article_metadata(a) for a in articles]
    blob, offsets = jsonl_with_offsets(metadata)
    (target / "articles.jsonl").write_bytes(blob)
    np.save(target / "articles_offsets.npy", offsets)
    titles, title_offsets = TitleIndex.encode([m["title"] for m in metadata])
    (target / "titles.txt").write_bytes(titles)
    np.save(target / "titles_offsets.npy", title_offsets)
    hashes, rows = sorted_id_hashes([m["id"] for m in metadata])
    np.save(target / "id_hashes.npy", hashes)
    np.save(target / "id_rows.npy", rows)
    lang_codes, langs = encode_column([m["lang"] for m in metadata])
    section_codes, sections = encode_column([m["section"].casefold() for m in metadata])
    np.save(target / "lang_codes.npy", lang_codes)
    np.save(target / "section_codes.npy", section_codes)
    stamps = np.array([int(a.published_at.timestamp()) for a in articles], dtype=np.int64)
    np.save(target / "published_at.npy", stamps)
    evergreen = evergreen_column(articles)
    if evergreen is not None:  # an optional file: snapshots without it (and older ones) have no evergreen row
        np.save(target / "evergreen.npy", evergreen)
    for name, vectors in arrays.dense.items():
        if vectors.shape[0] != n:
            raise ValueError(f"signal {name}: {vectors.shape[0]} vectors for {n} articles")
        np.save(target / f"dense_{name}.npy", np.ascontiguousarray(vectors, dtype=layout.vector_dtype))
    for name, matrix in arrays.sparse.items():
        matrix = matrix.tocsr()
        model = arrays.sparse_models[name]
        np.save(target / f"sparse_{name}_data.npy", matrix.data.astype(np.float32))
        np.save(target / f"sparse_{name}_indices.npy", matrix.indices.astype(np.int32))
        np.save(target / f"sparse_{name}_indptr.npy", matrix.indptr.astype(np.int64))
        np.save(target / f"sparse_{name}_idf.npy", model.idf_)
        (target / f"sparse_{name}_vocabulary.json").write_text(
            json.dumps(model.vocabulary_, ensure_ascii=False), encoding="utf-8"
        )
    entries = _search_structures(target, list(arrays.dense), n, profile, layout, plan)
    files = {p.name: {"xxh3_128": _digest(p), "bytes": p.stat().st_size} for p in sorted(target.iterdir())}
    manifest = {
        "format_version": FORMAT_VERSION,
        "snapshot": target.name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_articles": n,
        "dense_dims": {name: int(v.shape[1]) for name, v in arrays.dense.items()},
        "vector_dtype": layout.vector_dtype,
        "sparse_terms": {name: len(model.vocabulary_) for name, model in arrays.sparse_models.items()},
        "langs": langs,
        "sections": sections,
        **entries,  # graphs, candidates
        "config": profile_fingerprint(profile, identities),
        "python": sys.version.split()[0],
        "files": files,
        "checksum": _manifest_checksum(files),
        **(extra or {}),
    }
    tmp = target / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, target / "manifest.json")
    return target


def _search_structures(target: Path, dense: list[str], n: int, profile: Profile, layout: SearchLayout,
                       plan: SearchPlan) -> dict[str, Any]:
    """Write the snapshot's search structures (graphs and lists when large enough); returns their manifest entries."""
    # A profile without dense signals (the TF-IDF baseline) has nothing to build a graph over: scanned exactly.
    if n < max(layout.ann_min_articles, 2) or not graph_signals(profile):
        return ExactSearch().save(target)
    with stage("search structures"):
        # Built from the vectors as they are stored, so candidate lists and queries score the same numbers.
        stored = {name: np.load(target / f"dense_{name}.npy", mmap_mode="r", allow_pickle=False) for name in dense}
        search = GraphSearch(graph_signals(profile), layout)
        search = search.update(stored, plan.previous) if plan.previous else search.build(stored)
        return {**search.save(target), "search_build": plan.record()}


def _manifest_checksum(files: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def resolve_snapshot(index_dir: str | Path) -> Path:
    """The snapshot directory an index path stands for: itself, or what its `current` link points to."""
    path = Path(index_dir)
    if (path / "manifest.json").is_file():
        return path
    current = path / CURRENT
    if current.is_symlink() or current.exists():
        resolved = current.resolve()
        if (resolved / "manifest.json").is_file():
            return resolved
        raise IndexCorrupt(f"index {path}: '{CURRENT}' points to {resolved}, which holds no manifest.json")
    raise IndexNotFound(f"no index at {path}: build one with `recommender index CORPUS --index {path}`")


def load_snapshot(
    index_dir: str | Path, expected: Mapping[str, Any] | None = None, verify: bool = True, expansion_search: int = 200
) -> Snapshot:
    """Load a snapshot memory-mapped; verify checksums, and the configuration when expected is given.

    expected : the `profile_fingerprint` the caller will query with; a different one raises IndexMismatch,
    because vectors of different encoders or text preparation must never be compared.
    expansion_search : breadth of graph searches (large indexes only)
    """
    path = resolve_snapshot(index_dir)
    manifest = read_manifest(path)
    if verify:
        verify_files(path, manifest)
    if expected is not None and manifest["config"] != dict(expected):
        raise IndexMismatch(describe_mismatch(path, manifest["config"], expected))
    try:
        return _open_arrays(path, manifest, expansion_search)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise IndexCorrupt(f"index {path}: cannot read its arrays ({exc})") from None


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the snapshot directory path; IndexCorrupt if unreadable, IndexMismatch if of another
    format version."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexCorrupt(f"index {path}: unreadable manifest.json ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"index {path} has format version {manifest.get('format_version')}, this program reads "
            f"{FORMAT_VERSION}: rebuild it with `recommender index`"
        )
    return manifest


def verify_snapshot(index_dir: str | Path) -> None:
    """Raise IndexProblem unless the snapshot index_dir stands for has every file its manifest lists, each
    matching its checksum (what `load_snapshot` checks first, for a caller that opens it later)."""
    path = resolve_snapshot(index_dir)
    verify_files(path, read_manifest(path))


def _open_arrays(path: Path, manifest: dict[str, Any], expansion_search: int) -> Snapshot:
    def array(name: str) -> np.ndarray:
        return np.load(path / name, mmap_mode="r", allow_pickle=False)

    n = manifest["n_articles"]
    articles = ArticleTable.open(path / "articles.jsonl", array("articles_offsets.npy"))
    row_of = RowLookup(array("id_hashes.npy"), array("id_rows.npy"), articles)
    dense = {name: array(f"dense_{name}.npy") for name in manifest["dense_dims"]}
    if not manifest["graphs"]:
        # A small index is scanned whole on every query: float32 in memory makes that one BLAS call.
        dense = {name: np.asarray(v, dtype=np.float32) for name, v in dense.items()}
    matrices = {}
    for name, terms in manifest["sparse_terms"].items():
        parts = array(f"sparse_{name}_data.npy"), array(f"sparse_{name}_indices.npy"), array(f"sparse_{name}_indptr.npy")
        matrices[name] = sparse.csr_matrix(parts, shape=(n, terms), copy=False)
    published = np.asarray(array("published_at.npy"))
    if len(articles) != n or published.shape[0] != n or any(v.shape[0] != n for v in dense.values()):
        raise IndexCorrupt(f"index {path}: article count does not match the manifest")
    return Snapshot(
        path, manifest, articles, dense, matrices, LazyModels(path, manifest), published,
        row_of=row_of, lang_codes=np.asarray(array("lang_codes.npy")), lang_values=manifest["langs"],
        section_codes=np.asarray(array("section_codes.npy")), section_values=manifest["sections"],
        titles=TitleIndex.open(path / "titles.txt", array("titles_offsets.npy")),
        search=open_search(path, manifest, dense, expansion_search),
        evergreen=np.asarray(array("evergreen.npy"), dtype=bool) if "evergreen.npy" in manifest.get("files", {}) else None,
    )


def verify_files(path: Path, manifest: Mapping[str, Any]) -> None:
    """Raise IndexCorrupt unless every file listed in the manifest exists with its recorded size and hash."""
    files = manifest.get("files") or {}
    if _manifest_checksum(files) != manifest.get("checksum"):
        raise IndexCorrupt(f"index {path}: the manifest's checksum does not match its file list")
    for name, meta in files.items():
        file = path / name
        if not file.is_file():
            raise IndexCorrupt(f"index {path}: file {name} is missing")
        if file.stat().st_size != meta["bytes"] or _digest(file) != meta["xxh3_128"]:
            raise IndexCorrupt(f"index {path}: file {name} does not match its checksum (corrupted or changed)")


def describe_mismatch(path: Path, found: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """One readable line saying how a snapshot's configuration differs from the expected one."""
    differences = []
    if found.get("profile", {}).get("name") != expected.get("profile", {}).get("name"):
        differences.append(f"profile {found.get('profile', {}).get('name')!r} vs {expected['profile']['name']!r}")
    elif found.get("profile") != expected.get("profile"):
        differences.append("signals, views or weights of the profile")
    if found.get("encoders") != expected.get("encoders"):
        differences.append("encoder models or versions")
    if found.get("textprep_version") != expected.get("textprep_version"):
        differences.append(f"text preparation v{found.get('textprep_version')} vs v{expected['textprep_version']}")
    return (
        f"index {path} was built with another configuration ({'; '.join(differences) or 'details differ'}): "
        "rebuild it with `recommender index` using the current settings"
    )


def new_snapshot_dir(index_dir: str | Path) -> Path:
    """A fresh, not yet existing directory for the next snapshot of index_dir."""
    # Names sort in creation order (microseconds), which is what `publish` keeps the newest by.
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
    return Path(index_dir) / SNAPSHOTS / f"{stamp}-{uuid.uuid4().hex[:6]}"


def remove_unfinished(index_dir: str | Path) -> list[str]:
    """Delete snapshot directories without a manifest (a job killed while writing them): never served, they
    would only take places that `keep_snapshots` counts. Call with the job lock held. Returns their names."""
    snapshots = Path(index_dir) / SNAPSHOTS
    removed = []
    for candidate in sorted(snapshots.iterdir()) if snapshots.is_dir() else []:
        if candidate.is_dir() and not (candidate / "manifest.json").exists():
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate.name)
    return removed


def publish(index_dir: str | Path, snapshot_dir: Path, keep: int = 3) -> list[str]:
    """Point index_dir/current at snapshot_dir atomically, then delete all but the newest `keep` snapshots and
    the newest of each configuration; returns the names deleted."""
    index_dir = Path(index_dir)
    link = index_dir / CURRENT
    tmp_link = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(snapshot_dir, index_dir), tmp_link)
    os.replace(tmp_link, link)  # rename(2) over the old link: readers see the old or the new, never none
    snapshots = sorted((index_dir / SNAPSHOTS).iterdir(), key=lambda p: p.name)
    kept = {snapshot_dir.resolve(), *(p.resolve() for p in snapshots[-keep:] if keep > 0)}
    # A server refuses snapshots of another configuration than its own and keeps serving the one it has:
    # the newest snapshot of every configuration may be in use, so it stays.
    newest_of: dict[str, Path] = {}
    for candidate in snapshots:
        newest_of[_configuration_key(candidate)] = candidate.resolve()
    kept.update(path for key, path in newest_of.items() if key)
    deleted = []
    for old in snapshots:
        if old.resolve() not in kept:
            shutil.rmtree(old, ignore_errors=True)
            deleted.append(old.name)
    return deleted


def _configuration_key(snapshot: Path) -> str:
    """The snapshot's configuration (profile fingerprint) as a comparable string; '' if unreadable."""
    try:
        return json.dumps(json.loads((snapshot / "manifest.json").read_text(encoding="utf-8"))["config"], sort_keys=True)
    except (OSError, ValueError, KeyError, TypeError):
        return ""
