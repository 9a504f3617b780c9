"""Index snapshots: a directory of `.npy` arrays + `articles.jsonl` + `manifest.json`, published atomically.

Layout of an index directory::

    DIR/current                  -> snapshots/<name>   (symbolic link, swapped atomically)
    DIR/snapshots/<name>/manifest.json
    DIR/snapshots/<name>/articles.jsonl               (metadata, one article a line, row order)
    DIR/snapshots/<name>/dense_<signal>.npy           (n_articles, dim) float32, memory-mapped
    DIR/snapshots/<name>/sparse_<signal>_{data,indices,indptr,idf}.npy, sparse_<signal>_vocabulary.json
    DIR/snapshots/<name>/published_at.npy             (n_articles,) int64 seconds since the epoch

A snapshot is never changed after it is written; a new build writes a new snapshot beside the old one,
verifies it and only then swaps `current`. Arrays are read with allow_pickle=False: never a pickle.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import sparse

from .corpus import Article
from .encoders import TfidfModel
from .profiles import Profile
from .textprep import TEXTPREP_VERSION, make_teaser

FORMAT_VERSION = 1
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
class SignalArrays:
    """The computed representation of every article for each signal of a profile.

    dense : signal name -> ndarray of shape (n_articles, dim), float32, rows of unit length
    sparse : signal name -> csr_matrix of shape (n_articles, n_terms), float32, rows of unit length
    sparse_models : signal name -> the fitted TfidfModel that made the sparse rows
    """

    dense: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: dict[str, sparse.csr_matrix] = field(default_factory=dict)
    sparse_models: dict[str, TfidfModel] = field(default_factory=dict)


@dataclass
class Snapshot:
    """A loaded, read-only index snapshot.

    articles : metadata dicts in row order (no bodies)
    dense : signal name -> ndarray of shape (n_articles, dim), float32, memory-mapped
    sparse : signal name -> csr_matrix of shape (n_articles, n_terms), float32 (the word signal is 'tfidf')
    sparse_models : signal name -> fitted TfidfModel, to turn a new text into a comparable row
    published_at : ndarray of shape (n_articles,), int64 seconds since the epoch
    shadowed : bool ndarray of shape (n_articles,) or None: rows replaced by a newer live version
    """

    path: Path
    manifest: dict[str, Any]
    articles: list[dict[str, Any]]
    dense: dict[str, np.ndarray]
    sparse: dict[str, sparse.csr_matrix]
    sparse_models: dict[str, TfidfModel]
    published_at: np.ndarray
    shadowed: np.ndarray | None = None
    row_of: dict[str, int] = field(default_factory=dict)

    langs: np.ndarray = field(init=False)
    sections: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.row_of = {a["id"]: i for i, a in enumerate(self.articles)}
        # Columns for filters, so a request compares arrays instead of walking dicts.
        self.langs = np.array([a["lang"] for a in self.articles], dtype=object)
        self.sections = np.array([a["section"].casefold() for a in self.articles], dtype=object)

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


def profile_fingerprint(profile: Profile, identities: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that must match for two sets of vectors to be comparable."""
    return {"profile": profile.to_json(), "encoders": dict(identities), "textprep_version": TEXTPREP_VERSION}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def article_metadata(article: Article) -> dict[str, Any]:
    """What a snapshot keeps of an article besides its vectors (no body; a teaser always)."""
    return {
        "id": article.id,
        "url": article.url,
        "title": article.title,
        "teaser": article.teaser or make_teaser(article.body),
        "teaser_generated": not article.teaser,
        "published_at": article.published_at.isoformat(),
        "section": article.section,
        "lang": article.lang,
        "tags": list(article.tags),
        "author": article.author,
        "content_hash": article.content_hash(),
    }


def write_snapshot(
    target: Path,
    articles: list[Article],
    arrays: SignalArrays,
    profile: Profile,
    identities: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a complete snapshot into the new directory target and return it."""
    if "tfidf" not in arrays.sparse:
        raise ValueError("a snapshot needs the word TF-IDF signal")
    target.mkdir(parents=True)
    n = len(articles)
    with (target / "articles.jsonl").open("w", encoding="utf-8") as handle:
        for article in articles:
            handle.write(json.dumps(article_metadata(article), ensure_ascii=False) + "\n")
    stamps = np.array([int(a.published_at.timestamp()) for a in articles], dtype=np.int64)
    np.save(target / "published_at.npy", stamps)
    for name, vectors in arrays.dense.items():
        if vectors.shape[0] != n:
            raise ValueError(f"signal {name}: {vectors.shape[0]} vectors for {n} articles")
        np.save(target / f"dense_{name}.npy", np.ascontiguousarray(vectors, dtype=np.float32))
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
    files = {p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size} for p in sorted(target.iterdir())}
    manifest = {
        "format_version": FORMAT_VERSION,
        "snapshot": target.name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_articles": n,
        "dense_dims": {name: int(v.shape[1]) for name, v in arrays.dense.items()},
        "sparse_terms": {name: len(model.vocabulary_) for name, model in arrays.sparse_models.items()},
        "config": profile_fingerprint(profile, identities),
        "python": sys.version.split()[0],
        "files": files,
        "checksum": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(),
        **(extra or {}),
    }
    tmp = target / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, target / "manifest.json")
    return target


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


def load_snapshot(index_dir: str | Path, expected: Mapping[str, Any] | None = None, verify: bool = True) -> Snapshot:
    """Load a snapshot memory-mapped; verify checksums, and the configuration when expected is given.

    expected : the `profile_fingerprint` the caller will query with; a different one raises IndexMismatch,
    because vectors of different encoders or text preparation must never be compared.
    """
    path = resolve_snapshot(index_dir)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexCorrupt(f"index {path}: unreadable manifest.json ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"index {path} has format version {manifest.get('format_version')}, this program reads "
            f"{FORMAT_VERSION}: rebuild it with `recommender index`"
        )
    if verify:
        verify_files(path, manifest)
    if expected is not None and manifest["config"] != dict(expected):
        raise IndexMismatch(describe_mismatch(path, manifest["config"], expected))
    try:
        articles = [json.loads(line) for line in (path / "articles.jsonl").read_text(encoding="utf-8").splitlines()]

        def array(name: str) -> np.ndarray:
            return np.load(path / name, mmap_mode="r", allow_pickle=False)

        dense = {name: array(f"dense_{name}.npy") for name in manifest["dense_dims"]}
        matrices, models = {}, {}
        for name in manifest["sparse_terms"]:
            vocabulary = json.loads((path / f"sparse_{name}_vocabulary.json").read_text(encoding="utf-8"))
            identity = manifest["config"]["encoders"][name]
            models[name] = TfidfModel(identity["analyzer"], identity["sublinear_tf"], identity["min_df"]).set_fitted(
                vocabulary, np.asarray(array(f"sparse_{name}_idf.npy"))
            )
            matrices[name] = sparse.csr_matrix(
                (array(f"sparse_{name}_data.npy"), array(f"sparse_{name}_indices.npy"), array(f"sparse_{name}_indptr.npy")),
                shape=(manifest["n_articles"], len(vocabulary)),
            )
        published = np.asarray(array("published_at.npy"))
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(f"index {path}: cannot read its arrays ({exc})") from None
    if len(articles) != manifest["n_articles"] or published.shape[0] != len(articles):
        raise IndexCorrupt(f"index {path}: article count does not match the manifest")
    return Snapshot(path, manifest, articles, dense, matrices, models, published)


def verify_files(path: Path, manifest: Mapping[str, Any]) -> None:
    """Raise IndexCorrupt unless every file listed in the manifest exists with its recorded size and hash."""
    files = manifest.get("files") or {}
    if hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest() != manifest.get("checksum"):
        raise IndexCorrupt(f"index {path}: the manifest's checksum does not match its file list")
    for name, meta in files.items():
        file = path / name
        if not file.is_file():
            raise IndexCorrupt(f"index {path}: file {name} is missing")
        if file.stat().st_size != meta["bytes"] or _sha256(file) != meta["sha256"]:
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


def publish(index_dir: str | Path, snapshot_dir: Path, keep: int = 3) -> None:
    """Point index_dir/current at snapshot_dir atomically, then delete all but the newest `keep` snapshots."""
    index_dir = Path(index_dir)
    link = index_dir / CURRENT
    tmp_link = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(snapshot_dir, index_dir), tmp_link)
    os.replace(tmp_link, link)  # rename(2) over the old link: readers see the old or the new, never none
    snapshots = sorted((index_dir / SNAPSHOTS).iterdir(), key=lambda p: p.name)
    live = snapshot_dir.resolve()
    for old in snapshots[:-keep] if keep > 0 else []:
        if old.resolve() != live:
            shutil.rmtree(old, ignore_errors=True)
