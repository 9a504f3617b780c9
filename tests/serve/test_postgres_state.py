"""The API over PostgreSQL (state_url) while the database goes away and comes back: readers keep the rules read
last, writes answer 503 state_unavailable, and everything works again without restarting the app."""
from __future__ import annotations

import time

import pytest
from conftest import AUTH

ARTICLE, HIDDEN = "hisbollah-finanzen-1", "hisbollah-finanzen-2"


@pytest.fixture
def app_settings(app_settings, pg_url):
    """The `app` fixture's settings with its state in a new PostgreSQL database instead of SQLite files."""
    return app_settings.replace(state_dir="", state_url=pg_url)


def ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.get_json()
    return [item["id"] for item in answer.get_json()["items"]]


def until_written(client, article_id: str, seconds: float = 10.0) -> None:
    """Take article_id down, retrying while the app still finds the database unavailable."""
    deadline = time.monotonic() + seconds
    while (answer := client.delete(f"/v1/articles/{article_id}", json={"why": "x"}, headers=AUTH)).status_code != 200:
        assert answer.status_code == 503 and time.monotonic() < deadline, answer.get_json()
        time.sleep(0.2)


def test_readers_keep_the_last_rules_while_postgresql_is_down_and_writes_answer_503(client, postgres):
    before = ids(client.get(f"/v1/articles/{ARTICLE}/related", query_string={"k": 6}))
    assert HIDDEN in before
    until_written(client, HIDDEN)
    served = ids(client.get(f"/v1/articles/{ARTICLE}/related", query_string={"k": 6}))
    answer = client.get(f"/v1/articles/{ARTICLE}/related").get_json()
    assert HIDDEN not in served
    postgres.stop()
    try:
        for _ in range(3):  # the takedown read before the outage still applies
            assert ids(client.get(f"/v1/articles/{ARTICLE}/related", query_string={"k": 6})) == served
        pin = client.put(f"/v1/articles/{ARTICLE}/overrides", json={"action": "pin", "target": before[-1],
                                                                     "position": 1}, headers=AUTH)
        assert pin.status_code == 503 and pin.get_json()["error"] == "state_unavailable"
        assert pin.headers["Retry-After"] and "PostgreSQL" in pin.get_json()["message"]
        event = {"type": "impression", "rid": answer["rid"], "article_id": ARTICLE, "shown": 3}
        assert client.post("/v1/events", json={"events": [event]}).status_code == 503
        click = client.get(answer["items"][0]["click_url"].split("localhost", 1)[1])
        assert click.status_code == 302  # the reader still reaches the story; only the count is lost
        assert client.get("/v1/audit", headers=AUTH).status_code == 503
        assert client.get("/readyz").status_code == 200
    finally:
        postgres.start()
    until_written(client, before[-1])  # no restart of the app: its connections are made again
    assert before[-1] not in ids(client.get(f"/v1/articles/{ARTICLE}/related", query_string={"k": 6}))
    changes = [e["change"] for e in client.get("/v1/audit", headers=AUTH).get_json()["entries"]]
    assert changes == ["takedown", "takedown"]
    assert client.post("/v1/events", json={"events": [event]}).status_code == 202
