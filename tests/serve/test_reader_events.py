"""Reader events over HTTP: every answer's rid and click links, impressions and clicks counted (and only for
genuine rids), the redirect that never leads elsewhere, A/B arms, the figures for editors, and no personal data."""
import dataclasses
import random
import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from conftest import API_TOKEN

from recommender.db import StateFileError
from recommender.engine import Recommender
from recommender.serve.app import create_app

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ARTICLE = "kursk-nordkorea-3"


def related(client, article_id=ARTICLE, **query):
    response = client.get(f"/v1/articles/{article_id}/related", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def impression(answer, shown=None):
    return {"type": "impression", "rid": answer["rid"], "article_id": answer["article_id"],
            "placement": answer["placement"], "shown": shown or len(answer["items"])}


def click(answer, position=1):
    return {"type": "click", "rid": answer["rid"], "article_id": answer["article_id"],
            "placement": answer["placement"], "position": position, "item_id": answer["items"][position - 1]["id"]}


def stats(client, placement):
    answer = client.get("/v1/stats/clicks", headers=AUTH).get_json()
    return next((p for p in answer["placements"] if p["placement"] == placement), None)


def test_every_answer_has_its_own_rid_and_click_links_but_one_etag_for_one_list(client):
    first, second = related(client, placement="sidebar"), related(client, placement="sidebar")
    assert first["rid"] != second["rid"] and len(first["rid"]) == 24
    assert first["placement"] == "sidebar" and first["arm"] is None
    assert [i["id"] for i in first["items"]] == [i["id"] for i in second["items"]]
    for position, item in enumerate(first["items"], start=1):
        assert item["click_url"].startswith(f"http://localhost/v1/r/{first['rid']}/{position}?item=")
    response = client.get(f"/v1/articles/{ARTICLE}/related", query_string={"placement": "sidebar"})
    again = client.get(f"/v1/articles/{ARTICLE}/related", query_string={"placement": "sidebar"},
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304  # a revalidating browser keeps its list (and its rid, still genuine)
    draft = client.post("/v1/related", json={"title": "Kursk", "body": "Nordkoreanische Soldaten in Kursk"})
    assert len(draft.get_json()["rid"]) == 24 and draft.get_json()["article_id"] is None


def test_an_impression_and_a_click_are_counted_for_the_placement(client):
    answer = related(client, placement="article_bottom", k="4")
    sent = client.post("/v1/events", json={"events": [impression(answer), click(answer, 2)]})
    assert sent.status_code == 202 and sent.get_json() == {"accepted": 2, "ignored": 0}
    figures = stats(client, "article_bottom")
    assert (figures["impressions"], figures["clicks"], figures["ctr"]) == (1, 1, 1.0)
    assert [(p["position"], p["impressions"], p["clicks"]) for p in figures["positions"]] == [
        (1, 1, 0), (2, 1, 1), (3, 1, 0), (4, 1, 0)]
    assert figures["days"][0]["impressions"] == 1 and figures["arms"][0]["arm"] == ""
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'recommender_block_impressions_total{arm="",placement="article_bottom"} 1.0' in metrics
    assert 'recommender_block_clicks_total{arm="",placement="article_bottom",position="2"} 1.0' in metrics


def test_beacons_may_send_text_plain_and_other_bodies_are_refused(client):
    answer = related(client)
    beacon = client.post("/v1/events", data=f'{{"events": [{{"type": "impression", "rid": "{answer["rid"]}", '
                         f'"article_id": "{ARTICLE}", "shown": 3}}]}}', content_type="text/plain;charset=UTF-8")
    assert beacon.status_code == 202 and beacon.get_json()["accepted"] == 1
    assert client.post("/v1/events", data="x", content_type="application/x-www-form-urlencoded").status_code == 415
    assert client.post("/v1/events", data="{", content_type="text/plain").get_json()["error"] == "bad_json"
    too_many = client.post("/v1/events", json={"events": [impression(answer)] * 51})
    assert too_many.status_code == 422 and "50" in too_many.get_json()["message"]
    for wrong in ({"type": "view"}, {"rid": "short"}, {"shown": 0}, {"shown": 51}, {"article_id": "<x>"},
                  {"placement": "Not A Name"}, {"extra": 1}, {"type": "click"}):
        response = client.post("/v1/events", json={"events": [{**impression(answer), **wrong}]})
        assert response.status_code in (400, 422), (wrong, response.get_json())
    assert client.post("/v1/events", json={"events": []}).status_code == 422
    assert client.post("/v1/events", json={"events": [impression(answer)], "more": 1}).status_code == 400


def test_events_of_rids_not_drawn_for_their_list_are_ignored(client):
    answer = related(client, placement="sidebar")
    forged = {**impression(answer), "rid": "A" * 24}
    other_article = {**impression(answer), "article_id": "kursk-nordkorea-1"}
    other_placement = {**impression(answer), "placement": "archive"}
    sent = client.post("/v1/events", json={"events": [forged, other_article, other_placement, impression(answer)]})
    assert sent.get_json() == {"accepted": 1, "ignored": 3}
    assert stats(client, "archive") is None and stats(client, "sidebar")["impressions"] == 1


def test_a_click_link_counts_and_redirects_to_the_story_only(client):
    answer = related(client, placement="sidebar")
    item = answer["items"][0]
    head = client.head(item["click_url"])
    assert head.status_code == 302 and stats(client, "sidebar") is None  # a link checker is no reader
    followed = client.get(item["click_url"])
    assert followed.status_code == 302 and followed.headers["Location"] == item["url"]
    assert followed.headers["Cache-Control"] == "no-store" and "Set-Cookie" not in followed.headers
    assert stats(client, "sidebar")["clicks"] == 1
    # A link whose rid does not check out still takes the reader to the story, uncounted.
    path = item["click_url"].replace(answer["rid"], "B" * 24)
    assert client.get(path).headers["Location"] == item["url"] and stats(client, "sidebar")["clicks"] == 1
    # The target is always an indexed story's own address: nothing in the link can name another one.
    for query in ("item=no-such-article", "item=https://evil.example", "item=" + "x" * 300, ""):
        response = client.get(f"/v1/r/{answer['rid']}/1?{query}")
        assert response.status_code in (404, 422) and "Location" not in response.headers
    assert client.get(f"/v1/r/{answer['rid']}/0?item={item['id']}").status_code == 404
    assert client.get(f"/v1/r/short/1?item={item['id']}").status_code == 404
    assert client.delete(f"/v1/articles/{item['id']}", headers=AUTH).status_code == 200
    assert client.get(item["click_url"]).status_code == 404  # taken down: nobody is sent there any more


def test_a_scheduled_story_has_no_redirect_before_it_is_published(client, engine):
    later = datetime.now(timezone.utc) + timedelta(days=100)
    scheduled = {"title": "Kursk Truppen morgen", "body": "Nordkoreanische Soldaten im Gebiet Kursk an der Front.",
                 "lang": "de", "published_at": later.isoformat(), "url": "https://news.example/later"}
    assert client.put("/v1/articles/kursk-later", headers=AUTH, json=scheduled).status_code == 201
    rid = related(client)["rid"]
    link = f"/v1/r/{rid}/1?item=kursk-later&article={ARTICLE}"
    assert client.get(link).status_code == 404  # the address of an embargoed story is not given away
    engine.clock = lambda: later.timestamp() + 1  # published by then
    assert client.get(link).headers["Location"] == "https://news.example/later"


def test_a_story_without_a_web_address_has_no_redirect(client):
    hostile = {"title": "Kursk Truppen", "body": "Nordkoreanische Soldaten im Gebiet Kursk an der Front.",
               "lang": "de", "published_at": "2024-10-31T08:00:00+01:00", "url": "javascript:alert(1)"}
    assert client.put("/v1/articles/kursk-js", headers=AUTH, json=hostile).status_code == 201
    rid = related(client)["rid"]
    assert client.get(f"/v1/r/{rid}/1?item=kursk-js&article={ARTICLE}").status_code == 404


def test_events_are_rate_limited_per_client(make_app):
    client = make_app(event_rate_limit="2/minute").test_client()
    answer = related(client)
    statuses = [client.post("/v1/events", json={"events": [impression(answer)]}).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    refused = client.post("/v1/events", json={"events": [impression(answer)]})
    assert "reader events" in refused.get_json()["message"] and int(refused.headers["Retry-After"]) >= 1
    assert client.get(answer["items"][0]["click_url"]).status_code == 302  # clicks through links are never refused


def test_without_a_state_dir_events_are_refused_and_lists_still_have_rids(make_app):
    client = make_app(state_dir="").test_client()
    answer = related(client)
    assert len(answer["rid"]) == 24
    refused = client.post("/v1/events", json={"events": [impression(answer)]})
    assert refused.status_code == 503 and refused.get_json()["error"] == "events_disabled"
    assert client.get(answer["items"][0]["click_url"]).status_code == 302


def test_nothing_about_a_reader_is_stored_or_set(client, app_settings):
    answer = related(client)
    headers = {"X-Forwarded-For": "203.0.113.7", "User-Agent": "reader-agent-xyz", "Cookie": "session=abc"}
    for response in (client.post("/v1/events", json={"events": [impression(answer), click(answer)]}, headers=headers),
                     client.get(answer["items"][0]["click_url"], headers=headers), related_response(client)):
        assert "Set-Cookie" not in response.headers
    raw = (app_settings.state_dir and open(f"{app_settings.state_dir}/events.sqlite", "rb").read())
    assert b"203.0.113.7" not in raw and b"127.0.0.1" not in raw and b"reader-agent" not in raw
    with sqlite3.connect(f"{app_settings.state_dir}/events.sqlite") as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(counts)")}
    assert columns == {"day", "placement", "arm", "profile", "kind", "position", "n"}


def related_response(client):
    return client.get(f"/v1/articles/{ARTICLE}/related")


def test_a_damaged_events_file_stops_the_start(app_settings, engine, tmp_path):
    create_app(app_settings, engine)  # creates the state files
    path = f"{app_settings.state_dir}/events.sqlite"
    with open(path, "r+b") as file:
        file.truncate(0)
    with pytest.raises(StateFileError, match="events.sqlite is empty"):
        create_app(app_settings, engine)


ARMS = {"sidebar": {"k": 3, "arms": {"control": {}, "short": {"weight": 3, "k": 1}, "use": {"profile": "use"}}}}


@pytest.fixture
def arms_client(app_settings, engine):
    settings = app_settings.replace(placements=ARMS)
    with_arms = dataclasses.replace(Recommender.open(settings), encoder=engine.encoder)
    return create_app(settings, with_arms).test_client()


def test_a_placement_splits_its_traffic_between_arms_by_the_rid(arms_client, monkeypatch):
    seeds = random.Random(7)  # rids from a fixed source: the same split on every run
    monkeypatch.setattr("recommender.feedback.rids.secrets.token_bytes", lambda n: seeds.randbytes(n))
    answers = [related(arms_client, placement="sidebar") for _ in range(200)]
    by_arm = {}
    for answer in answers:
        by_arm.setdefault(answer["arm"], []).append(answer)
    assert set(by_arm) == {"control", "short", "use"}
    assert 0.45 < len(by_arm["short"]) / len(answers) < 0.75  # weight 3 of 5: 60 %
    assert all(len(a["items"]) == 1 for a in by_arm["short"]) and all(len(a["items"]) == 3 for a in by_arm["control"])
    # The same rid always draws the same arm: events are counted under the arm the list was ranked by.
    events = [impression(a) for a in answers[:45]] + [click(a) for a in by_arm["short"][:5]]
    assert arms_client.post("/v1/events", json={"events": events}).get_json()["accepted"] == 50
    figures = stats(arms_client, "sidebar")
    assert [a["arm"] for a in figures["arms"]] == ["control", "short", "use"]  # the configured order
    assert {a["arm"]: a["profile"] for a in figures["arms"]} == {"control": "default", "short": "default", "use": "use"}
    short = next(a for a in figures["arms"] if a["arm"] == "short")
    assert short["clicks"] == 5 and short["ctr_low"] < short["ctr"] < short["ctr_high"]
    control = figures["arms"][0]
    assert control["verdict"] == "" and control["p_value"] is None and control["clicks"] == 0
    assert short["p_value"] is not None and short["verdict"].startswith(("higher", "not yet significant"))


def test_arms_with_a_profile_the_index_cannot_rank_by_stop_the_start(app_settings):
    from recommender.config import ConfigError

    wrong = {"sidebar": {"arms": {"a": {}, "b": {"profile": "minilm"}}}}
    with pytest.raises(ConfigError, match="minilm"):
        Recommender.open(app_settings.replace(placements=wrong))
    for arms, message in (({"a": {}}, "2 to 10"), ({"a": {}, "b": {"weight": 0}}, "weight"),
                          ({"a": {}, "b": {"k": 0}}, "k must be"), ({"a": {}, "B!": {}}, "lower-case")):
        with pytest.raises(ConfigError, match=message):
            Recommender.open(app_settings.replace(placements={"sidebar": {"arms": arms}}))


def test_the_html_block_counts_its_impression_through_a_lazy_pixel(client, make_app):
    html = client.get(f"/v1/articles/{ARTICLE}/related.html", query_string={"placement": "sidebar"}).get_data(True)
    pixel = re.search(r'<img class="rs-seen" src="([^"]+)" alt="" width="1" height="1" loading="lazy"', html)
    url = pixel.group(1).replace("&amp;", "&")
    assert url.startswith("http://localhost/v1/i/") and "shown=3" in url and "placement=sidebar" in url
    assert client.head(url).status_code == 200 and stats(client, "sidebar") is None
    seen = client.get(url)
    assert seen.status_code == 200 and seen.content_type == "image/gif" and seen.headers["Cache-Control"] == "no-store"
    assert stats(client, "sidebar")["impressions"] == 1
    assert client.get(url.replace("placement=sidebar", "placement=archive")).status_code == 200  # not genuine
    assert stats(client, "sidebar")["impressions"] == 1 and stats(client, "archive") is None
    assert client.get("/v1/i/short?shown=1").status_code == 404
    limited = make_app(event_rate_limit="1/minute").test_client()
    assert [limited.get(url).status_code for _ in range(2)] == [200, 429]
