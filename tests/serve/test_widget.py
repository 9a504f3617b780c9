"""The drop-in widget's script as served (type, caching, what it may not contain, its size budget) and the demo
page's two variants: the <related-stories> widget and the block rendered on the server without script."""
import gzip
from pathlib import Path

from conftest import AUTH
from markup import Elements

import recommender.serve

STATIC = Path(recommender.serve.__file__).parent / "static"
# "Under 5 KB gzipped" (issue 12): gzip -9 of the file as served.
WIDGET_GZIP_BUDGET = 5120
CSS_GZIP_BUDGET = 1024  # related.css, which the widget adds to the page: "a tiny CSS"
# What would break the widget under a strict CSP (style-src without 'unsafe-inline', no 'unsafe-eval'), or
# parse the API's data as HTML.
FORBIDDEN = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", ".style",
             "setTimeout(\"", "localStorage", "sessionStorage", "document.cookie")


def test_the_widget_script_is_served_as_javascript_and_cached_publicly(client):
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response.content_type.split(";")[0] == "application/javascript"
    assert response.cache_control.public and response.cache_control.max_age == 3600
    assert response.headers["ETag"] and response.headers["X-Content-Type-Options"] == "nosniff"
    again = client.get("/widget.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert response.get_data() == (STATIC / "widget.js").read_bytes()


def test_the_widget_builds_its_markup_without_html_parsing_inline_style_or_eval():
    source = (STATIC / "widget.js").read_text(encoding="utf-8")
    assert [word for word in FORBIDDEN if word in source] == []
    assert source.isascii()  # served without relying on a charset
    assert 'customElements.define("related-stories"' in source and "sendBeacon" in source


def test_the_widget_and_its_stylesheet_fit_their_size_budgets():
    widget, css = (STATIC / "widget.js").read_bytes(), (STATIC / "related.css").read_bytes()
    assert len(gzip.compress(widget, compresslevel=9)) < WIDGET_GZIP_BUDGET
    assert len(gzip.compress(css, compresslevel=9)) < CSS_GZIP_BUDGET


def test_the_widget_variant_has_the_element_and_the_script_file_under_a_strict_policy(client):
    response = client.get("/demo/articles/kursk-nordkorea-3", query_string={"k": "4", "placement": "sidebar"})
    assert response.status_code == 200 and response.content_type == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert policy == ("default-src 'none'; script-src 'self'; connect-src 'self'; img-src https: http: data:; "
                      "style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    page = Elements(response.get_data(as_text=True))
    assert page.all("related-stories") == [{"article-id": "kursk-nordkorea-3", "placement": "sidebar", "k": "4"}]
    assert page.all("script") == [{"src": "/widget.js", "defer": None}]  # a file, no inline script
    assert not page.all("section") and not any("style" in attrs for _, attrs in page.tags)
    stylesheets = {link["href"] for link in page.all("link") if link["rel"] == "stylesheet"}
    assert stylesheets == {"/static/demo.css"}  # the widget adds related.css
    assert "/demo/articles/kursk-nordkorea-3/no-script?placement=sidebar&k=4" in [a["href"] for a in page.all("a")]


def test_the_widget_variant_asks_for_the_no_script_variants_placement_by_default(client):
    page = Elements(client.get("/demo/articles/kursk-nordkorea-3").get_data(as_text=True))
    assert page.all("related-stories") == [{"article-id": "kursk-nordkorea-3", "placement": "article_bottom"}]
    assert "/demo/articles/kursk-nordkorea-3/no-script" in [a["href"] for a in page.all("a")]


def test_the_no_script_variant_has_the_fragment_and_no_script(client):
    response = client.get("/demo/articles/kursk-nordkorea-3/no-script", query_string={"k": "3"})
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy and "connect-src" not in policy
    page = Elements(response.get_data(as_text=True))
    assert not page.all("script") and not page.all("related-stories")
    assert page.all("section")[0]["class"] == "rs-block" and len(page.all("li")) == 3
    assert "/demo/articles/kursk-nordkorea-3?k=3" in [a["href"] for a in page.all("a")]


def test_unknown_articles_and_placements_are_json_errors_on_both_variants(client):
    for path in ("/demo/articles/no-such-article", "/demo/articles/no-such-article/no-script"):
        missing = client.get(path)
        assert missing.status_code == 404 and missing.get_json()["error"] == "unknown_article"
        placement = client.get(path.replace("no-such-article", "kursk-nordkorea-3"), query_string={"placement": "x"})
        assert placement.status_code == 400 and placement.get_json()["error"] == "unknown_placement"
    assert client.delete("/v1/articles/kursk-nordkorea-3", headers=AUTH).status_code == 200
    assert client.get("/demo/articles/kursk-nordkorea-3").status_code == 404  # taken down: no page either
