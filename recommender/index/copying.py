"""Publishing a snapshot in another index directory, e.g. the disk of a replica on another machine: copied
aside, verified against its manifest, renamed into place, then published there atomically like a build's own.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from .snapshot import SNAPSHOTS, IndexCorrupt, publish, resolve_snapshot, verify_files


def _synced_copy(source: str, target: str) -> str:
    """shutil.copy2, then fsync: a copy counts as there only once it is on disk."""
    shutil.copy2(source, target)
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())
    return target


def _manifest(snapshot: Path) -> dict:
    try:
        return json.loads((snapshot / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexCorrupt(f"index {snapshot}: unreadable manifest.json ({exc})") from None


def copy_published(source: str | Path, destination: str | Path, keep: int = 3) -> Path:
    """Publish the snapshot source serves (an index directory or a snapshot) in the index directory
    destination; returns the published snapshot directory.

    The source is verified first (a damaged snapshot is not spread), copied under a temporary name beside
    destination's snapshots, verified again and renamed into place; only then does destination's `current`
    link switch (publish), so servers there see the old snapshot or the whole new one. A snapshot already
    there under the same name is verified and published without a copy. IndexCorrupt leaves destination as
    it was."""
    snapshot = resolve_snapshot(source)
    manifest = _manifest(snapshot)
    verify_files(snapshot, manifest)
    destination = Path(destination)
    (destination / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
    target = destination / SNAPSHOTS / snapshot.name
    if target.exists():
        verify_files(target, _manifest(target))
    else:
        # Beside snapshots/, not in it: publish() prunes snapshots/ and must never see a copy in progress.
        incoming = destination / f".incoming-{snapshot.name}-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(snapshot, incoming, copy_function=_synced_copy)
            verify_files(incoming, _manifest(incoming))
            os.rename(incoming, target)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
    publish(destination, target, keep=keep)
    return target
