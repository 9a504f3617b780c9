"""Publishing a snapshot in another index directory (a replica's disk): verified, copied aside, switched at once."""
from __future__ import annotations

import json
import shutil

import pytest
from conftest import TINY_INDEX

from recommender.index import copying
from recommender.index.copying import copy_published
from recommender.index.snapshot import (
    IndexCorrupt,
    load_snapshot,
    publish,
    resolve_snapshot,
)


def snapshot_named(root, name):
    """A copy of the tiny snapshot under another name, published in the index directory root."""
    target = root / "snapshots" / name
    shutil.copytree(TINY_INDEX, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "snapshot": name}))
    publish(root, target)
    return target


def test_the_served_snapshot_is_copied_verified_and_published(tmp_path):
    source, replica = tmp_path / "source", tmp_path / "replica"
    snapshot_named(source, "one")
    assert copy_published(source, replica) == replica / "snapshots" / "one"
    assert load_snapshot(replica).version == "one" and resolve_snapshot(replica) == (replica / "snapshots" / "one")
    snapshot_named(source, "two")
    copy_published(source, replica)
    copy_published(source, replica)  # already there: verified and published again, not copied
    assert load_snapshot(replica).version == "two"
    assert sorted(p.name for p in replica.iterdir()) == ["current", "snapshots"]  # nothing left aside


def test_a_damaged_source_or_copy_leaves_the_replica_as_it_was(tmp_path, monkeypatch):
    source, replica = tmp_path / "source", tmp_path / "replica"
    snapshot_named(source, "one")
    copy_published(source, replica)
    damaged = snapshot_named(source, "two")
    data = bytearray((damaged / "dense_e5.npy").read_bytes())
    data[-1] ^= 0xFF
    (damaged / "dense_e5.npy").write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="dense_e5.npy"):
        copy_published(source, replica)
    snapshot_named(source, "three")

    def flipping(source_file, target_file):  # a disk or network that damages the copy on its way
        copying.shutil.copy2(source_file, target_file)
        if target_file.endswith("titles.txt"):
            with open(target_file, "r+b") as handle:
                handle.write(b"#")
        return target_file

    monkeypatch.setattr(copying, "_synced_copy", flipping)
    with pytest.raises(IndexCorrupt, match="titles.txt"):
        copy_published(source, replica)
    assert load_snapshot(replica).version == "one"
    assert sorted(p.name for p in replica.iterdir()) == ["current", "snapshots"]
    assert sorted(p.name for p in (replica / "snapshots").iterdir()) == ["one"]


def test_the_command_prints_one_line(tmp_path, runner):
    source, replica = tmp_path / "source", tmp_path / "replica"
    snapshot_named(source, "one")
    ran = runner.invoke("publish-copy", str(source), str(replica))
    assert ran.exit_code == 0 and ran.output.strip() == f"published one in {replica}"
    failed = runner.invoke("publish-copy", str(tmp_path / "nothing"), str(replica))
    assert failed.exit_code == 1 and failed.stderr.count("\n") == 1 and "no index at" in failed.stderr
