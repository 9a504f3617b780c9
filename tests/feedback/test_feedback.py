"""Rids, the event counts file and the click-through figures, without HTTP."""
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.db import StateUnavailable
from recommender.feedback import Click, EventStore, Impression, Rids, click_figures
from recommender.feedback.counts import Rate, p_value
from recommender.rank.placements import (
    Arm,
    Options,
    PlacementError,
    arms_from,
    choose_arm,
)


def test_a_rid_is_genuine_only_for_its_article_and_placement_and_secret():
    rids = Rids(b"s" * 32)
    rid = rids.draw("a1", "sidebar")
    assert rids.genuine(rid, "a1", "sidebar")
    assert not rids.genuine(rid, "a2", "sidebar") and not rids.genuine(rid, "a1", None)
    assert not Rids(b"t" * 32).genuine(rid, "a1", "sidebar")
    tampered = ("B" if rid[0] != "B" else "C") + rid[1:]
    assert not rids.genuine(tampered, "a1", "sidebar") and not rids.genuine(rid + "x", "a1", "sidebar")
    assert rids.genuine(rids.draw(None, None), None, None)
    assert len({rids.draw("a1", None) for _ in range(1000)}) == 1000
    with pytest.raises(ValueError):
        Rids(b"short")


def test_arms_split_by_weight_and_a_seed_always_gets_the_same_arm():
    arms = (Arm("a", 1.0, Options()), Arm("b", 3.0, Options(k=1)))
    seeds = [f"{random.Random(1).random()}-{i}" for i in range(4000)]
    drawn = [choose_arm(arms, "sidebar", seed).name for seed in seeds]
    assert 0.72 < drawn.count("b") / len(drawn) < 0.78
    assert drawn == [choose_arm(arms, "sidebar", seed).name for seed in seeds]


def test_arms_are_read_from_the_placements_table():
    arms = arms_from({"sidebar": {"k": 3, "arms": {"control": {}, "fresh": {"weight": 2, "recency_weight": 0.4,
                                                                          "profile": "use"}}}}, 50)
    assert arms == {"sidebar": (Arm("control", 1.0, Options()), Arm("fresh", 2.0, Options(recency_weight=0.4), "use"))}
    for wrong in ({"arms": []}, {"arms": {"a": {}, "b": {"weight": -1}}}, {"arms": {"a": {}, "b": {"nope": 1}}},
                  {"arms": {"a": {}, "b": {"profile": 3}}}, {"arms": {f"a{i}": {} for i in range(11)}}):
        with pytest.raises(PlacementError):
            arms_from({"sidebar": wrong}, 50)


def test_counts_add_up_per_day_and_a_failed_batch_changes_nothing(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    assert len(store.secret()) == 32 and store.secret() == EventStore(tmp_path / "events.sqlite").secret()
    batch = [Impression("sidebar", "", "default", 3), Impression("sidebar", "", "default", 3),
             Click("sidebar", "", "default", 2)]
    assert store.record(batch, day="2026-12-01") == 3 and store.record(batch, day="2026-12-02") == 3
    assert store.record([]) == 0
    counts = store.counts("2026-12-02")
    assert {(c.kind, c.position, c.n) for c in counts} == {("impression", 3, 2), ("click", 2, 1)}
    with sqlite3.connect(tmp_path / "events.sqlite") as db:  # every insert now fails, as on a full disk
        db.execute("CREATE TRIGGER fail BEFORE INSERT ON counts BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(StateUnavailable):
        store.record(batch + [Impression("archive", "", "default", 1)], day="2026-12-03")
    assert store.counts("2026-12-03") == []


def test_rates_have_wilson_intervals_and_differences_a_p_value():
    rate = Rate.of(10, 100)
    assert rate.ctr == 0.1 and 0.05 < rate.low < 0.1 < rate.high < 0.18
    assert Rate.of(0, 0).ctr is None and Rate.of(5, 3).ctr == 1.0  # more clicks than impressions: capped
    assert p_value(Rate.of(10, 100), Rate.of(12, 100)) > 0.5
    assert p_value(Rate.of(100, 10_000), Rate.of(200, 10_000)) < 1e-6
    assert p_value(Rate.of(0, 100), Rate.of(0, 100)) is None and p_value(Rate.of(1, 10), Rate.of(0, 0)) is None


def test_figures_per_placement_arm_position_and_day(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    store.record([Impression("sidebar", "a", "default", 3)] * 1000 + [Impression("sidebar", "b", "default", 2)] * 1000
                 + [Click("sidebar", "a", "default", 1)] * 50 + [Click("sidebar", "b", "default", 2)] * 120,
                 day="2026-12-01")
    [figures] = click_figures(store.counts("2026-12-01"), {"sidebar": ["a", "b"]})
    assert (figures.total.impressions, figures.total.clicks) == (2000, 170)
    a, b = figures.arms
    assert (a.arm, a.rate.ctr, a.verdict) == ("a", 0.05, "") and b.rate.ctr == 0.12
    assert b.p_value < 0.001 and b.verdict.startswith("higher than a, significant") and figures.note == ""
    assert [(p, r.impressions, r.clicks) for p, r in figures.positions] == [(1, 2000, 50), (2, 2000, 120), (3, 1000, 0)]
    assert [(d, r.impressions) for d, r in figures.days] == [("2026-12-01", 2000)]
    store.record([Impression("archive", "x", "default", 1)] * 20 + [Impression("archive", "y", "default", 1)] * 20
                 + [Click("archive", "x", "default", 1)] * 2 + [Click("archive", "y", "default", 1)] * 3, day="2026-12-01")
    archive = click_figures(store.counts("2026-12-01"), {"archive": ["y", "x"]})[0]
    assert [a.arm for a in archive.arms] == ["y", "x"] and "not yet significant" in archive.arms[1].verdict
    assert archive.note.startswith("no arm differs significantly")
    assert archive.to_json()["arms"][1]["impressions"] == 20


def test_an_acknowledged_batch_survives_the_process_being_killed(tmp_path):
    path = tmp_path / "events.sqlite"
    EventStore(path)  # created (and its secret) before the writer starts
    script = ("import os, signal, sys\n"
              "from recommender.feedback import EventStore, Impression\n"
              "store = EventStore(sys.argv[1])\n"
              "store.record([Impression('sidebar', '', 'default', 3)] * 7, day='2026-12-01')\n"
              "print('acknowledged', flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    ran = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert ran.returncode == -signal.SIGKILL and ran.stdout == "acknowledged\n"
    assert [(c.kind, c.n) for c in EventStore(path).counts("2026-12-01")] == [("impression", 7)]
    with sqlite3.connect(path) as db:  # no fsync per batch (WAL, synchronous=NORMAL): see feedback/events.py
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
