"""The newsroom's ranking options over HTTP: relatedness and relation in every item, placements, thresholds,
fallbacks and the other options as query parameters and draft fields, each bounded, in the API description."""
from datetime import datetime

import pytest
from conftest import API_TOKEN

RELATIONS = {"same_story", "follow_up", "background", "related_topic", "fallback"}


def items(response):
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_every_item_carries_relatedness_and_its_relation(client):
    listed = items(client.get("/v1/articles/p2-single-port-strike/related", query_string={"min_relatedness": "0"}))
    assert listed
    for item in listed:
        assert 0.0 <= item["relatedness"] <= 1.0 and item["relation"] in RELATIONS


def test_a_placement_sets_the_options_and_a_request_overrides_one(client):
    assert len(items(client.get("/v1/articles/p2-single-port-strike/related",
                                query_string={"placement": "sidebar"}))) <= 3
    assert len(items(client.get("/v1/articles/p2-single-port-strike/related",
                                query_string={"placement": "sidebar", "k": "5", "min_relatedness": "0"}))) == 5


def test_an_unknown_placement_is_a_400_naming_the_known_ones(client):
    response = client.get("/v1/articles/p2-single-port-strike/related", query_string={"placement": "footer"})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "unknown_placement" and "archive, article_bottom, sidebar" in body["message"]
    draft = client.post("/v1/related", json={"title": "Streik im Hafen", "body": "Die Hafenarbeiter streiken.",
                                             "placement": "footer"})
    assert draft.status_code == 400 and draft.get_json()["error"] == "unknown_placement"


@pytest.mark.parametrize("name, value", [
    ("min_relatedness", "abc"), ("min_relatedness", "1.5"), ("min_relatedness", "-0.1"), ("min_relatedness", "inf"),
    ("fallback", "random"), ("only_before", "maybe"), ("only_before", "1"), ("prefer_lang", "deutsch"),
    ("max_per_story", "-1"), ("max_per_story", "51"), ("mmr_lambda", "0"), ("mmr_lambda", "2"),
    ("placement", "Side Bar"),
])
def test_each_option_is_bounded(client, name, value):
    response = client.get("/v1/articles/p2-single-port-strike/related", query_string={name: value})
    assert response.status_code == 400, (name, value)
    assert response.get_json()["error"] == "bad_parameter" and name in response.get_json()["message"]


def test_an_overlong_placement_name_is_too_long_like_every_bounded_field(client):
    response = client.get("/v1/articles/p2-single-port-strike/related", query_string={"placement": "x" * 51})
    assert response.status_code == 422 and response.get_json()["error"] == "too_long"


def test_a_short_list_is_filled_by_the_fallback(client):
    strict = items(client.get("/v1/articles/p2-single-port-strike/related",
                              query_string={"min_relatedness": "1", "k": "4"}))
    filled = items(client.get("/v1/articles/p2-single-port-strike/related",
                              query_string={"min_relatedness": "1", "k": "4", "fallback": "recent"}))
    assert len(filled) == 4 and [i["id"] for i in filled[:len(strict)]] == [i["id"] for i in strict]
    assert {i["relation"] for i in filled[len(strict):]} == {"fallback"}
    assert "p2-single-port-strike" not in [i["id"] for i in filled]


def test_only_before_and_prefer_lang_as_parameters(client):
    # kursk-nordkorea-3 has both older and newer stories in the fixture.
    source = client.get("/v1/articles/kursk-nordkorea-3/explain", headers={"Authorization": f"Bearer {API_TOKEN}"})
    published = datetime.fromisoformat(source.get_json()["article"]["published_at"])
    before = items(client.get("/v1/articles/kursk-nordkorea-3/related",
                              query_string={"only_before": "true", "min_relatedness": "0", "k": "10"}))
    assert len(before) == 9 and all(datetime.fromisoformat(i["published_at"]) < published for i in before)
    preferred = items(client.get("/v1/articles/kursk-nordkorea-3/related",
                                 query_string={"prefer_lang": "en", "min_relatedness": "0", "k": "8"}))
    langs = [i["lang"] for i in preferred]
    assert "de" in langs and langs == sorted(langs, key=lambda lang: lang != "en")  # English first, then others


def test_a_draft_takes_the_same_options(client):
    response = client.post("/v1/related", json={
        "title": "Streik im Hafen", "body": "Die Hafenarbeiter streiken seit Tagen.", "k": 3,
        "min_relatedness": 1, "fallback": "recent", "only_before": False, "prefer_lang": "de",
        "max_per_story": 1, "mmr_lambda": 0.7})
    listed = items(response)
    assert len(listed) == 3 and {i["relation"] for i in listed} == {"fallback"}
    bad = client.post("/v1/related", json={"title": "T", "body": "B", "only_before": "yes"})
    assert bad.status_code == 400 and "only_before" in bad.get_json()["message"]


def test_the_api_description_lists_the_options_and_the_placements(client):
    spec = client.get("/openapi.json").get_json()
    parameters = {p["name"]: p["schema"] for p in spec["paths"]["/v1/articles/{article_id}/related"]["get"]["parameters"]}
    assert parameters["placement"]["enum"] == ["archive", "article_bottom", "sidebar"]
    assert parameters["min_relatedness"]["maximum"] == 1 and parameters["fallback"]["enum"][0] == "none"
    assert {"only_before", "prefer_lang", "max_per_story", "mmr_lambda"} <= set(parameters)
    item = spec["components"]["schemas"]["Item"]["properties"]
    assert item["relation"]["enum"] and item["relatedness"]["type"] == "number"
    draft = spec["components"]["schemas"]["Draft"]["properties"]
    assert draft["placement"]["enum"] == ["archive", "article_bottom", "sidebar"]


def test_an_article_put_as_evergreen_does_not_age(client):
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    article = {"title": "Was ist ein Leitzins? Eine Erklärung", "lang": "de", "section": "Wirtschaft",
               "body": "Der Leitzins ist der Zins, zu dem sich Banken bei der Zentralbank Geld leihen.",
               "published_at": "2015-03-01T08:00:00+01:00", "evergreen": True}
    assert client.put("/v1/articles/leitzins-erklaert", json=article, headers=auth).status_code == 201
    explained = client.get("/v1/articles/intel-magdeburg-2/explain", headers=auth,
                           query_string={"k": "12", "min_relatedness": "0"}).get_json()
    freshness = {item["id"]: item["freshness"] for item in explained["items"]}
    assert freshness["leitzins-erklaert"] == 1.0  # eleven years old, and as fresh as today
    wrong = client.put("/v1/articles/leitzins-2", json={**article, "evergreen": "yes"}, headers=auth)
    assert wrong.status_code == 422 and wrong.get_json()["error"] == "invalid_article"


def test_explain_names_the_freshness_share_the_list_was_ranked_with(client):
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    archive = client.get("/v1/articles/kursk-nordkorea-3/explain", headers=auth,
                         query_string={"placement": "archive"}).get_json()
    assert archive["items"] and {item["recency_weight"] for item in archive["items"]} == {0.0}
    assert {item["relation"] for item in archive["items"]} <= RELATIONS
    unknown = client.get("/v1/articles/kursk-nordkorea-3/explain", headers=auth, query_string={"placement": "x"})
    assert unknown.status_code == 400 and unknown.get_json()["error"] == "unknown_placement"


def test_freshness_options_over_http(client):
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    explained = client.get("/v1/articles/kursk-nordkorea-3/explain", headers=auth,
                           query_string={"recency_weight": "0.5", "half_life_days": "1"}).get_json()
    assert {item["recency_weight"] for item in explained["items"]} == {0.5}
    for name, value in [("recency_weight", "1.5"), ("half_life_days", "0"), ("half_life_days", "inf")]:
        response = client.get("/v1/articles/kursk-nordkorea-3/related", query_string={name: value})
        assert response.status_code == 400 and name in response.get_json()["message"]
