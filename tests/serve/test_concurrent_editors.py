"""Two editors changing the same article's list at the same moment, through two workers (two apps over one
SQLite store, as gunicorn runs them): the end state is one of the orders the changes could have run in,
nothing acknowledged is lost, and the audit log has an entry for every change of both."""
import threading
from collections import Counter

import pytest
from conftest import record, write_jsonl

from recommender.config import load_settings
from recommender.jobs.index_job import build_index
from recommender.serve.app import create_app

TOKEN = "two-editors"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUNDS = 40


@pytest.fixture
def workers(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [record(f"a{i}", body=f"Die Donau in Passau, Folge {i}.") for i in range(12)])
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="",
                             state_dir=str(tmp_path / "state"), write_rate_limit="", api_token=TOKEN)
    build_index([corpus], settings.index_dir, settings)
    # Two processes: each app opens its own engine (and SQLite connections) over the one state_dir.
    return [create_app(settings).test_client() for _ in range(2)]


def at_once(*calls):
    """Run the calls in threads released together; their answers in call order."""
    barrier, answers = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i, call):
        barrier.wait()
        answers[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_pin_and_block_of_one_story_at_once_end_in_one_decision_with_both_audited(workers):
    anna, ben = workers
    outcomes = Counter()
    for round_ in range(ROUNDS):
        pin, block = at_once(
            lambda: anna.put("/v1/articles/a0/overrides", headers=AUTH,
                             json={"action": "pin", "target": "a5", "position": 1, "who": "anna", "why": f"r{round_}"}),
            lambda: ben.put("/v1/articles/a0/overrides", headers=AUTH,
                            json={"action": "block", "target": "a5", "who": "ben", "why": f"r{round_}"}))
        assert pin.status_code == block.status_code == 200
        overrides = [(o["action"], o["target_id"]) for o in anna.get("/v1/articles/a0/overrides", headers=AUTH)
                     .get_json()["overrides"]]
        assert len(overrides) == 1  # a pin and a block of one story never both stand
        last = ben.get("/v1/audit?limit=1", headers=AUTH).get_json()["entries"][0]
        assert overrides == [(last["change"], "a5")]  # the later transaction won, as the audit says
        outcomes[last["who"]] += 1
        related = [i["id"] for i in ben.get("/v1/articles/a0/related?k=5").get_json()["items"]]
        assert (related[0] == "a5") if last["change"] == "pin" else ("a5" not in related)
    entries = anna.get("/v1/audit?limit=1000", headers=AUTH).get_json()["entries"]
    assert Counter(e["who"] for e in entries) == {"anna": ROUNDS, "ben": ROUNDS}
    assert sorted(e["why"] for e in entries if e["who"] == "anna") == sorted(f"r{r}" for r in range(ROUNDS))
    print(f"{ROUNDS} rounds; last writer: {dict(outcomes)}")


def test_many_pins_and_blocks_from_two_editors_at_once_are_all_kept(workers):
    anna, ben = workers

    def editor(client, who, targets, action):
        def run():
            return [client.put("/v1/articles/a0/overrides", headers=AUTH,
                               json={"action": action, "target": t, "position": 2, "who": who}).status_code
                    for t in targets]
        return run

    pins, blocks = at_once(editor(anna, "anna", ["a1", "a2", "a3", "a4", "a5"], "pin"),
                           editor(ben, "ben", ["a6", "a7", "a8", "a9", "a10", "a11"], "block"))
    assert set(pins) == set(blocks) == {200}
    overrides = ben.get("/v1/articles/a0/overrides", headers=AUTH).get_json()["overrides"]
    assert sorted((o["action"], o["target_id"]) for o in overrides) == sorted(
        [("pin", f"a{i}") for i in range(1, 6)] + [("block", f"a{i}") for i in range(6, 12)])
    entries = anna.get("/v1/audit?limit=100", headers=AUTH).get_json()["entries"]
    assert Counter(e["who"] for e in entries) == {"anna": 5, "ben": 6}
    assert len({e["id"] for e in entries}) == 11


def test_takedown_and_pin_of_one_story_at_once(workers):
    anna, ben = workers
    pin, takedown = at_once(
        lambda: anna.put("/v1/articles/a0/overrides", headers=AUTH, json={"action": "pin", "target": "a3", "position": 1}),
        lambda: ben.delete("/v1/articles/a3", headers=AUTH, json={"who": "legal"}))
    assert takedown.status_code == 200 and pin.status_code in (200, 422)  # 422: the takedown came first
    for client in workers:
        assert "a3" not in [i["id"] for i in client.get("/v1/articles/a0/related?k=11").get_json()["items"]]
    changes = Counter(e["change"] for e in anna.get("/v1/audit", headers=AUTH).get_json()["entries"])
    assert changes["takedown"] == 1 and changes["pin"] == (pin.status_code == 200)
