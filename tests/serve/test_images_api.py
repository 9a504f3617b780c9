"""Pictures through the API: sent with an article, carried in every answer's items, hostile ones refused."""
from conftest import API_TOKEN

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ARTICLE = {"title": "Hafenstreik legt Containerterminal lahm", "lang": "de", "section": "Wirtschaft",
           "body": "Die Hafenarbeiter streiken seit Montag; Schiffe warten auf Reede.",
           "published_at": "2024-10-03T08:00:00+02:00",
           "image": {"url": "https://bilder.example/hafen.jpg", "alt": "Schiffe vor dem Terminal",
                     "width": 1200, "height": 675}}


def test_an_article_put_with_an_image_shows_it_in_related_answers(client):
    assert client.put("/v1/articles/hafen-bild", json=ARTICLE, headers=AUTH).status_code == 201
    items = client.get("/v1/articles/p2-single-port-strike/related",
                       query_string={"k": "12", "min_relatedness": "0"}).get_json()["items"]
    pictured = {item["id"]: item["image"] for item in items}
    assert pictured["hafen-bild"] == ARTICLE["image"]
    assert all("image" in item for item in items)  # null where a story has none: one shape for every item


def test_hostile_image_addresses_are_refused(client):
    for url in ("javascript:alert(1)", "https://x.example/\"><script>alert(1)</script>", "data:text/html,x"):
        answer = client.put("/v1/articles/hafen-boese", json={**ARTICLE, "image": {"url": url}}, headers=AUTH)
        assert answer.status_code == 422 and answer.get_json()["error"] == "invalid_article", url
    extra = client.put("/v1/articles/hafen-boese", json={**ARTICLE, "image": {**ARTICLE["image"], "x": 1}},
                       headers=AUTH)
    assert extra.status_code == 422


def test_the_api_description_bounds_the_image(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    image = schemas["Article"]["properties"]["image"]["properties"]
    assert image["url"]["maxLength"] == 2048 and image["url"]["pattern"].startswith("^[Hh]")
    assert image["alt"]["maxLength"] == 500
    assert "image" in schemas["Item"]["properties"]
