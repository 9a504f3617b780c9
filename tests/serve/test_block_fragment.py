"""The server-rendered block: a fragment a page includes as it is, in the article's language, with pictures that
keep their place, every text escaped, no script, cacheable like the JSON list."""
from types import SimpleNamespace

from conftest import API_TOKEN
from markup import Elements

from recommender.rank.ranking import Related, Suggestion
from recommender.serve.block import block

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
HOSTILE = {"title": "<script>alert('x')</script> \"Zitat\" & <b>fett</b>", "lang": "de", "section": "Politik<i>",
           "body": "Nordkoreanische Soldaten im Gebiet Kursk, die Nato bestätigt die Verlegung an die Front.",
           "teaser": "<img src=x onerror=alert(1)>", "url": "javascript:alert(document.cookie)",
           "published_at": "2024-10-31T08:00:00+01:00",
           "image": {"url": "https://bilder.example/kursk.jpg", "alt": "\"><script>alert(2)</script>",
                     "width": 1200, "height": 675}}


def fragment(client, article_id, **query):
    response = client.get(f"/v1/articles/{article_id}/related.html", query_string=query)
    assert response.status_code == 200 and response.content_type == "text/html; charset=utf-8"
    return response


def test_the_heading_speaks_the_language_of_the_article(client):
    german = Elements(fragment(client, "kursk-nordkorea-3", k="3").get_data(as_text=True))
    english = Elements(fragment(client, "p4-single-valencia-floods", k="3", min_relatedness="0").get_data(as_text=True))
    assert "Das könnte Sie auch interessieren" in german.text and german.all("section")[0]["lang"] == "de"
    assert "You might also like" in english.text and english.all("section")[0]["lang"] == "en"


def test_a_list_of_linked_stories_with_pictures_that_keep_their_place(client):
    assert client.put("/v1/articles/kursk-bild", headers=AUTH, json={**HOSTILE, "title": "Kursk: neue Truppen",
                      "url": "https://www.tagesblick.example/kursk-bild", "teaser": "Kurz.", "section": "Politik",
                      "image": {"url": "https://bilder.example/kursk.jpg", "alt": "Soldaten", "width": 1200,
                                "height": 675}}).status_code == 201
    page = Elements(fragment(client, "kursk-nordkorea-3", k="4", min_relatedness="0").get_data(as_text=True))
    assert len(page.all("li")) == 4 and len(page.all("ol")) == 1 and not page.all("script")
    assert not any("style" in attrs for _, attrs in page.tags)  # no inline style: related.css styles it
    pictures = [attrs for attrs in page.all("img") if attrs["src"] == "https://bilder.example/kursk.jpg"]
    assert pictures == [{"class": "rs-image", "src": "https://bilder.example/kursk.jpg", "alt": "Soldaten",
                         "width": "1200", "height": "675", "loading": "lazy", "decoding": "async"}]
    # Each link goes through the click link, which counts the click and sends the reader on to the story.
    links = {client.get(a["href"]).headers["Location"]: a["href"] for a in page.all("a")}
    assert "https://www.tagesblick.example/kursk-bild" in links
    assert links["https://www.tagesblick.example/kursk-bild"].startswith("http://localhost/v1/r/")


def test_hostile_texts_render_as_text_and_a_script_address_is_no_link(client):
    assert client.put("/v1/articles/kursk-boese", headers=AUTH, json=HOSTILE).status_code == 201
    html = fragment(client, "kursk-nordkorea-3", k="12", min_relatedness="0").get_data(as_text=True)
    page = Elements(html)
    assert "<script>alert('x')</script> \"Zitat\" & <b>fett</b>" in page.text  # shown, not run
    assert not page.all("script") and not page.all("b") and not page.all("i")
    assert all(not a["href"].lower().startswith("javascript") for a in page.all("a"))
    assert all(not attrs.get("onerror") for attrs in page.all("img"))
    assert "&lt;script&gt;" in html and "javascript:" not in html


def test_the_block_is_cached_like_the_json_and_empty_when_nothing_passes(client):
    first = fragment(client, "kursk-nordkorea-3")
    assert first.headers["ETag"] and "public" in first.headers["Cache-Control"]
    again = client.get("/v1/articles/kursk-nordkorea-3/related.html", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert fragment(client, "kursk-nordkorea-3", min_relatedness="1").get_data() == b""
    missing = client.get("/v1/articles/no-such-article/related.html")
    assert missing.status_code == 404 and missing.get_json()["error"] == "unknown_article"
    assert client.get("/v1/articles/kursk-nordkorea-3/related.html", query_string={"placement": "x"}).status_code == 400


def test_the_stylesheet_is_served_with_custom_properties_to_override(client):
    css = client.get("/related.css")
    assert css.status_code == 200 and css.content_type.startswith("text/css")
    text = css.get_data(as_text=True)
    assert "--rs-accent" in text and ".rs-block" in text and ":focus-visible" in text


def test_the_demo_page_shows_an_article_with_its_block_and_runs_nothing(client):
    assert client.put("/v1/articles/kursk-boese", headers=AUTH, json=HOSTILE).status_code == 201
    response = client.get("/demo/articles/kursk-boese/no-script")
    assert response.status_code == 200 and response.content_type.startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy and "img-src https:" in policy
    page = Elements(response.get_data(as_text=True))
    assert page.all("html")[0]["lang"] == "de" and not page.all("script")
    assert HOSTILE["title"] in page.text  # the hostile title as text, in the heading and the page's title
    assert len(page.all("li")) >= 1 and "Das könnte Sie auch interessieren" in page.text
    stylesheets = {link["href"] for link in page.all("link") if link["rel"] == "stylesheet"}
    assert stylesheets == {"/related.css", "/static/demo.css"}
    assert client.get("/static/demo.css").status_code == 200
    assert client.get("/demo/articles/no-such-article/no-script").status_code == 404


def test_a_picture_is_shown_only_from_a_web_address_whatever_the_index_holds():
    # The corpus reader refuses such addresses; an index written by other code must not bring them to a page.
    pictures = ["https://bilder.example/a.jpg", "javascript:alert(1)", "data:image/png;base64,iVBORw0KGgo=",
                " JAVASCRIPT:alert(1)", "/relative.png"]
    articles = [{"title": f"T{i}", "teaser": "", "section": "", "url": "https://example.test/a",
                 "image": {"url": url, "alt": "", "width": None, "height": None}} for i, url in enumerate(pictures)]
    engine = SimpleNamespace(snapshot=SimpleNamespace(articles=articles, row_of={}))
    related = Related([Suggestion(f"a{i}", i, 1.0, 1.0, 1.0, {}) for i in range(len(pictures))], len(pictures))
    shown = [item["image"] and item["image"]["url"] for item in block(engine, None, related, "de")["items"]]
    assert shown == ["https://bilder.example/a.jpg", None, None, None, None]
