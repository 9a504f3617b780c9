"""The drop-in widget's script as served (type, caching, what it may not contain, its size budget)."""
import gzip
from pathlib import Path

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
