"""The <related-stories> widget in a real headless Chromium, on the demo pages a real server sends (with their
Content-Security-Policy): it renders the server fragment's markup, shows hostile texts as text, fails silently
and reports one impression and the clicks.

Where the server cannot produce what a test needs (an answer without a rid; javascript: and data: picture
addresses, which the corpus reader refuses), an init script edits the JSON answer in the page before the widget
reads it; everything else is the real server's, the events endpoint and the editors' figures included.
"""
from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from browsers import Network, console_errors, needs_chromium
from conftest import record, write_jsonl
from servers import ServerProcess

from recommender.config import load_settings
from recommender.jobs.index_job import build_index

pytestmark = needs_chromium
TOKEN = "widget-browser-token"
WAIT = 30  # seconds a condition may take on a machine whose other core runs a test suite
PICTURES_UNREACHABLE = "net::ERR_NAME_NOT_RESOLVED"  # only 127.0.0.1 resolves (browsers.py): the pictures' hosts
HOSTILE_TITLE = "<script>alert(1)</script>\"'"
FLOOD = ["Hochwasser an der Donau in Passau: Pegel steigt, Altstadt evakuiert",
         "Donau-Hochwasser: Passau räumt nach der Flut auf, Schäden in Millionenhöhe",
         "Pegel der Donau sinkt, Passau zählt die Schäden des Hochwassers",
         "Hochwasserschutz an der Donau: Bayern plant neue Deiche bei Passau",
         "Regensburg und Passau: Donau-Schifffahrt nach dem Hochwasser wieder frei",
         "Flut an Inn und Donau: Helfer in Passau im Dauereinsatz"]
ELBE = ["Niedrigwasser der Elbe in Dresden: Schiffe liegen fest",
        "Elbe bei Dresden auf Rekordtief: Fähren stellen den Betrieb ein",
        "Trockenheit an der Elbe: Dresdner Häfen warten auf Regen"]
# Every document first gets this: uncaught errors and unhandled rejections are kept in window.__problems, and
# the related lists' JSON answers pass through EDIT (a function of the answer) before the widget reads them.
INIT = """
window.__problems = []; window.__answers = [];
addEventListener('error', e => __problems.push('error: ' + e.message));
addEventListener('unhandledrejection', e => __problems.push('unhandled rejection: ' + e.reason));
const edit = EDIT, original = window.fetch;
window.fetch = async function (url, init) {
  const answer = await original.call(this, url, init);
  if (!edit || !answer.ok || !new URL(url, location.href).pathname.endsWith('/related')) return answer;
  const data = edit(await answer.clone().json());
  __answers.push(data);
  return new Response(JSON.stringify(data), {status: answer.status, headers: {'Content-Type': 'application/json'}});
};
"""
# A rid, a placement and a click_url per item where an answer has none (the server's are kept).
WITH_RID = """data => Object.assign({rid: 'rid-browser-test', placement: 'article_bottom', arm: 'a'}, data, {
  items: data.items.map(item => Object.assign({click_url: item.url}, item))})"""
WITHOUT_RID = "data => { const copy = Object.assign({}, data); delete copy.rid; return copy; }"
HOSTILE_PICTURES = """data => Object.assign({}, data, {items: data.items.map((item, i) => Object.assign({}, item, {
  image: [{url: 'javascript:alert(1)', alt: 'js'}, {url: 'data:image/png;base64,iVBORw0KGgo=', alt: 'data'},
          {url: ' JAVASCRIPT:alert(1)', alt: 'js2'}, {url: '/relative.png', alt: 'relative'}][i] || item.image}))})"""
# The block as a list of (tag, attributes in their order, own text), from the first .rs-block under a root.
STRUCTURE = """
const block = document.querySelector(arguments[0] + ' .rs-block');
return block && [block, ...block.querySelectorAll('*')].map(e => [e.tagName.toLowerCase(),
  [...e.attributes].map(a => a.name + '=' + a.value),
  [...e.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim()]);
"""
# One turn of the page's rendering and event loop: intersection observers have run their callbacks after it.
SETTLED = """const done = arguments[arguments.length - 1];
requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 0)));"""


def start(browser, edit: str = "null") -> Network:
    """Install INIT (with edit) for the documents the browser opens from now on; their network log."""
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INIT.replace("EDIT", edit)})
    return Network(browser)


def rendered(browser, items: int | None = None) -> list:
    """Wait until the widget rendered its block (with `items` stories, if given); the block's structure."""
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(driver) -> bool:
        count = len(texts(driver, "related-stories li.rs-item"))
        return count == items if items else count > 0

    WebDriverWait(browser, WAIT).until(shown)
    return browser.execute_script(STRUCTURE, "related-stories")


def texts(browser, selector: str) -> list[str]:
    """The text of every element the CSS selector matches, in document order."""
    return browser.execute_script("return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)",
                                  selector)


def problems(browser) -> list[str]:
    """Uncaught errors and unhandled rejections in the page, and the console's errors but unreachable pictures."""
    return browser.execute_script("return window.__problems") + console_errors(browser, (PICTURES_UNREACHABLE,))


@pytest.fixture(scope="module")
def corpus_server(corpus_index, tmp_path_factory):
    """The sample corpus served by `recommender serve`."""
    settings, index_dir = corpus_index
    tmp = tmp_path_factory.mktemp("widget-corpus")
    env = {"RECOMMENDER_STATE_DIR": str(tmp / "state"), "RECOMMENDER_CACHE_DIR": settings.cache_dir}
    with ServerProcess(index_dir, tmp / "server.log", env) as process:
        yield process.wait_ready()


def story(article_id: str, text: str, **changes) -> dict:
    """A corpus record titled text (unless changes say otherwise) whose body repeats it: distinct texts make
    distinct stories for tfidf."""
    return record(article_id, **{"title": text, "body": f"{text}. " * 3 + f"Ein Bericht ({article_id}).", **changes})


def small_corpus() -> list[dict]:
    """Flood stories, two of them hostile (markup in every text, script and data addresses as urls), and one
    Elbe story with a picture."""
    flood = [story(f"flood-{i}", text, published_at=f"2026-03-0{i + 1}T08:00:00+01:00")
             for i, text in enumerate(FLOOD[:4])]
    hostile = [story("hostile-1", FLOOD[4], title=HOSTILE_TITLE, url="javascript:alert(1)",
                     teaser="<img src=x onerror=\"window.pwned = 1\">Vorspann", section="Politik<i>",
                     image={"url": "https://bilder.example/h.jpg", "alt": "\"><script>window.pwned = 2</script>"}),
               story("hostile-2", FLOOD[5], title="<b onmouseover=\"window.pwned = 3\">fett</b> & &lt;",
                     url="data:text/html,<script>window.pwned = 4</script>")]
    return flood + hostile + [story("elbe-0", ELBE[0], image={"url": "https://bilder.example/elbe.jpg", "alt": "Elbe",
                                                              "width": 1600, "height": 900})]


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A small tfidf index (small_corpus) served with a token; two Elbe stories received through the API link
    to this server's own pages, so a click on them stays here."""
    tmp = tmp_path_factory.mktemp("widget-small")
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp / "index"), cache_dir="",
                             state_dir=str(tmp / "state"))
    build_index([write_jsonl(tmp / "corpus.jsonl", small_corpus())], settings.index_dir, settings)
    env = {"RECOMMENDER_PROFILE": "tfidf", "RECOMMENDER_STATE_DIR": settings.state_dir, "RECOMMENDER_CACHE_DIR": "",
           "RECOMMENDER_API_TOKEN": TOKEN, "RECOMMENDER_PLACEMENTS": json.dumps(READER_PLACEMENTS)}
    with ServerProcess(settings.index_dir, tmp / "server.log", env) as process:
        base = process.wait_ready()
        for i in (1, 2):
            article = story(f"elbe-{i}", ELBE[i], url=f"{base}/demo/articles/elbe-{i}/no-script")
            request = urllib.request.Request(f"{base}/v1/articles/elbe-{i}", data=json.dumps(article).encode(),
                                             method="PUT", headers={"Content-Type": "application/json",
                                                                    "Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(request, timeout=60) as answer:
                assert answer.status == 201
        yield base


# Placements of their own for the tests that read the counted events (the other tests' events count elsewhere).
READER_PLACEMENTS = {"widget_test": {"k": 3}, "no_script_test": {"k": 3}}


def test_german_and_english_articles_show_k_linked_stories_with_pictures(corpus_server, browser):
    start(browser)
    browser.get(corpus_server + "/demo/articles/kursk-nordkorea-1?k=4")
    block = rendered(browser, 4)
    assert block[0][:2] == ["section", ["class=rs-block", "lang=de", "aria-label=Das könnte Sie auch interessieren"]]
    assert block[1] == ["h2", ["class=rs-heading"], "Das könnte Sie auch interessieren"]
    links = browser.execute_script("return [...document.querySelectorAll('li.rs-item > a.rs-link[href^=\"https://\"]"
                                   " > img.rs-image[src^=\"https://\"]')].length")
    assert links == 4
    assert browser.execute_script("return document.querySelectorAll('link[href$=\"/related.css\"]').length") == 1
    assert problems(browser) == []
    browser.get(corpus_server + "/demo/articles/p4-single-valencia-floods")
    block = rendered(browser)
    assert block[0][1][:2] == ["class=rs-block", "lang=en"] and block[1][2] == "You might also like"
    assert problems(browser) == []


def without_tracking(structure: list) -> list:
    """The server block's structure as the widget renders it: links to the stories themselves (the server's go
    through click links: their redirect's Location, read with HEAD, which counts nothing) and no impression
    pixel (the widget observes the block itself)."""
    plain = []
    for tag, attributes, text in structure:
        if tag == "img" and "class=rs-seen" in attributes:
            continue
        plain.append([tag, [f"href={location(a[5:])}" if a.startswith("href=") else a for a in attributes], text])
    return plain


def location(href: str) -> str:
    """Where a click link redirects to (HEAD, not followed); other links as they are."""
    if "/v1/r/" not in href:
        return href
    address = urllib.parse.urlsplit(href)
    connection = http.client.HTTPConnection(address.netloc, timeout=30)
    try:
        connection.request("HEAD", f"{address.path}?{address.query}")
        answer = connection.getresponse()
        assert answer.status == 302, (href, answer.status)
        return answer.getheader("Location")
    finally:
        connection.close()


@pytest.mark.parametrize("article_id", ["kursk-nordkorea-1", "p4-single-valencia-floods"])
def test_the_widget_renders_the_markup_of_the_server_fragment(corpus_server, browser, article_id):
    start(browser)
    browser.get(f"{corpus_server}/demo/articles/{article_id}/no-script?k=5")
    server = browser.execute_script(STRUCTURE, "main")
    assert server and problems(browser) == []
    assert sum(tag == "img" and "class=rs-seen" in attributes for tag, attributes, _ in server) == 1
    browser.get(f"{corpus_server}/demo/articles/{article_id}?k=5")
    assert rendered(browser, len([tag for tag, *_ in server if tag == "li"])) == without_tracking(server)
    assert problems(browser) == []


def test_hostile_texts_are_text_and_script_addresses_no_links_in_both_variants(small_server, browser):
    from selenium.common.exceptions import NoAlertPresentException

    start(browser)
    variants = {"/demo/articles/flood-0/no-script?k=6": "main", "/demo/articles/flood-0?k=6": "related-stories"}
    for page, root in variants.items():
        browser.get(small_server + page)
        if root == "related-stories":
            rendered(browser, 6)
        titles = texts(browser, f"{root} .rs-title")
        assert HOSTILE_TITLE in titles and "<b onmouseover=\"window.pwned = 3\">fett</b> & &lt;" in titles
        assert "<img src=x onerror=\"window.pwned = 1\">Vorspann" in texts(browser, f"{root} .rs-teaser")
        assert "Politik<i>" in texts(browser, f"{root} .rs-section")
        injected = f"{root} :is(script, b, i, img:not(.rs-image, .rs-seen), a[href^=javascript], a[href^=data])"
        assert texts(browser, injected) == [] and len(texts(browser, f"{root} span.rs-link")) == 2
        assert browser.execute_script("return window.pwned === undefined") and problems(browser) == []
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text


def test_pictures_that_are_not_web_addresses_become_the_placeholder(small_server, browser):
    start(browser, HOSTILE_PICTURES)
    browser.get(small_server + "/demo/articles/flood-0?k=6")
    rendered(browser, 6)
    pictures = browser.execute_script("return [...document.querySelectorAll('li.rs-item > .rs-link > .rs-image')]"
                                      ".map(e => [e.tagName, e.className, e.getAttribute('src')])")
    placeholder = ["SPAN", "rs-image rs-no-image", None]
    assert pictures[:4] == [placeholder] * 4 and all(p[0] == "IMG" or p == placeholder for p in pictures[4:])
    assert browser.execute_script("return window.__answers.length") == 1 and problems(browser) == []


def publisher_page(path: Path, server: str, head: str = "", attributes: str = "") -> str:
    """A publisher's page on another origin (a file), without any policy, embedding the widget; its address."""
    path.write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>A publisher</title>'
                    f'<link rel="icon" href="data:,">{head}</head><body><p>An article.</p>'
                    f'<related-stories article-id="flood-0"{attributes}></related-stories>'
                    f'<script src="{server}/widget.js" defer></script></body></html>', encoding="utf-8")
    return path.as_uri()


def closed_port() -> socket.socket:
    """A socket bound to a port of 127.0.0.1 that does not listen: connections to it are refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def test_with_the_api_down_the_widget_renders_nothing_and_throws_nothing(small_server, browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    network = start(browser)
    with closed_port() as sock:
        api = f"http://127.0.0.1:{sock.getsockname()[1]}"
        browser.get(publisher_page(tmp_path / "down.html", small_server, attributes=f' api="{api}/"'))
        refused = f"{api}/v1/articles/flood-0/related"
        WebDriverWait(browser, WAIT).until(lambda d: network.ended(refused, "Network.loadingFailed"))
        browser.execute_async_script(SETTLED)
        assert browser.execute_script("return document.querySelector('related-stories').childNodes.length") == 0
        refused = "net::ERR_CONNECTION_REFUSED"  # the failed requests themselves (the list and the stylesheet)
        assert browser.execute_script("return window.__problems") + console_errors(browser, (refused,)) == []


def test_answers_that_are_errors_or_not_json_render_nothing(small_server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    network = start(browser)
    browser.get(small_server + "/demo/articles/flood-0")
    rendered(browser)
    # A 404 (unknown article), a 200 that is an HTML page and one that is a list without items (the api address
    # ends in a #: the list's path becomes the fragment of another address).
    browser.execute_script("""for (const [id, api] of [
          ['no-such-article', ''], ['flood-1', '/demo/articles/flood-1#'],
          ['flood-2', '/v1/articles/flood-0/related?min_relatedness=1#']]) {
        const element = document.createElement('related-stories');
        element.setAttribute('article-id', id);
        if (api) element.setAttribute('api', location.origin + api);
        element.className = 'failing';
        document.body.append(element);
    }""")
    finished = ("/v1/articles/no-such-article/related", "/demo/articles/flood-1", "min_relatedness=1")  # (no #)
    WebDriverWait(browser, WAIT).until(lambda d: all(network.ended(url) for url in finished))
    browser.execute_async_script(SETTLED)
    assert texts(browser, ".failing") == ["", "", ""]
    assert browser.execute_script("return document.querySelectorAll('.failing *').length") == 0
    assert browser.execute_script("return window.__problems") == []
    assert [m for m in console_errors(browser) if "no-such-article/related" not in m or "404" not in m] == []


def event_bodies(browser, network: Network) -> list[dict]:
    """The JSON bodies of the events posted so far from the current page (beacons carry them as text/plain)."""
    bodies = []
    for request_id, request in network.requests("/v1/events"):
        assert request["method"] == "POST" and request["headers"]["Content-Type"] == "text/plain"
        posted = browser.execute_cdp_cmd("Network.getRequestPostData", {"requestId": request_id})["postData"]
        bodies.append(json.loads(posted))
    return bodies


def test_one_impression_when_the_block_is_seen_and_one_event_per_click(small_server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.mouse_button import MouseButton
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    network = start(browser, WITH_RID)
    browser.set_window_size(1000, 500)
    browser.get(small_server + "/demo/articles/elbe-0?k=3")
    rendered(browser, 3)
    browser.execute_async_script(SETTLED)
    seen = "const r = document.querySelector('.rs-block').getBoundingClientRect(); " \
           "return Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0)) / r.height"
    assert browser.execute_script(seen) < 0.5 and network.requests("/v1/events") == []
    answer = browser.execute_script("return window.__answers[0]")
    base = {"rid": answer["rid"], "article_id": "elbe-0", "placement": answer["placement"]}

    browser.execute_script("document.querySelector('.rs-block').scrollIntoView()")
    WebDriverWait(browser, WAIT).until(lambda d: len(network.requests("/v1/events")) == 1)
    browser.execute_script("scrollTo(0, 0)")
    browser.execute_async_script(SETTLED)
    browser.execute_script("document.querySelector('.rs-block').scrollIntoView()")
    browser.execute_async_script(SETTLED)
    assert event_bodies(browser, network) == [{"events": [{"type": "impression", **base, "shown": 3}]}]

    links = browser.find_elements(By.CSS_SELECTOR, "a.rs-link")
    ids = [item["id"] for item in answer["items"]]
    ActionChains(browser).context_click(links[0]).perform()  # a menu, not a click on the story: no event
    middle = ActionBuilder(browser)
    middle.pointer_action.move_to(links[1]).pointer_down(MouseButton.MIDDLE).pointer_up(MouseButton.MIDDLE)
    middle.perform()  # opens the story in another tab; this page stays, so its beacon's body is readable
    WebDriverWait(browser, WAIT).until(lambda d: len(network.requests("/v1/events")) == 2)
    click = {"type": "click", **base, "position": 2, "item_id": ids[1]}
    assert event_bodies(browser, network)[1] == {"events": [click]}

    local = next(link for link in links if link.get_attribute("href").startswith(small_server))
    href = local.get_attribute("href")
    local.click()
    WebDriverWait(browser, WAIT).until(lambda d: d.current_url == href)
    sent = network.requests("/v1/events")  # the body went with the page it left; the request is in the log
    assert [(r["method"], r["url"]) for _, r in sent] == [("POST", small_server + "/v1/events")] * 3


def test_without_sendbeacon_events_go_by_fetch(small_server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    network = start(browser, WITH_RID)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "delete Navigator.prototype.sendBeacon"})
    browser.get(small_server + "/demo/articles/elbe-0?k=3")
    rendered(browser, 3)
    browser.execute_script("document.querySelector('.rs-block').scrollIntoView()")
    WebDriverWait(browser, WAIT).until(lambda d: network.requests("/v1/events"))
    assert [body["events"][0]["type"] for body in event_bodies(browser, network)] == ["impression"]
    assert browser.execute_script("return window.__problems") == []


def test_no_events_without_a_rid(small_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    network = start(browser, WITHOUT_RID)
    browser.get(small_server + "/demo/articles/elbe-0?k=3")
    rendered(browser, 3)
    browser.execute_script("document.querySelector('.rs-block').scrollIntoView()")
    browser.execute_async_script(SETTLED)
    local = next(link for link in browser.find_elements(By.CSS_SELECTOR, "a.rs-link")
                 if link.get_attribute("href").startswith(small_server))
    href = local.get_attribute("href")
    local.click()
    WebDriverWait(browser, WAIT).until(lambda d: d.current_url == href)
    assert network.requests("/v1/events") == []


def test_the_stylesheet_is_added_once_unless_the_page_links_it_or_says_no_style(small_server, browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    network = start(browser)
    stylesheets = "return [...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.getAttribute('href'))"
    browser.get(small_server + "/demo/articles/flood-0")
    rendered(browser)
    browser.execute_script("const second = document.createElement('related-stories'); second.id = 'second'; "
                           "second.setAttribute('article-id', 'flood-1'); document.body.append(second)")
    WebDriverWait(browser, WAIT).until(lambda d: d.execute_script("return document.querySelector('#second li')"))
    assert browser.execute_script(stylesheets) == ["/static/demo.css", small_server + "/related.css"]
    assert browser.execute_script("return getComputedStyle(document.querySelector('.rs-list')).display") == "grid"
    assert problems(browser) == []
    # The widget adds the stylesheet when it asks for the list: once that request is sent, it would be there.
    pages = {"own.html": (f'<link rel="stylesheet" href="{small_server}/related.css?v=2">', "", 1),
             "unstyled.html": ("", " no-style", 0)}
    for name, (head, attributes, links) in pages.items():
        asked = len(network.requests("/v1/articles/flood-0/related"))
        browser.get(publisher_page(tmp_path / name, small_server, head, attributes))
        WebDriverWait(browser, WAIT).until(lambda d: len(network.requests("/v1/articles/flood-0/related")) > asked)
        assert len(browser.execute_script(stylesheets)) == links


def click_figures(server: str, placement: str) -> tuple[int, int]:
    """(impressions, clicks) of a placement as the editors' API counts them."""
    request = urllib.request.Request(server + "/v1/stats/clicks", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        placements = json.load(answer)["placements"]
    found = next((p for p in placements if p["placement"] == placement), {"impressions": 0, "clicks": 0})
    return found["impressions"], found["clicks"]


def follow_a_local_story(browser, server: str, root: str) -> str:
    """Click the first story of the block under root that lives on server; the address it landed on."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    links = browser.find_elements(By.CSS_SELECTOR, f"{root} a.rs-link")
    story = next(link for link in links if location(link.get_attribute("href")).startswith(server))
    target = location(story.get_attribute("href"))
    story.click()
    WebDriverWait(browser, WAIT).until(lambda d: d.current_url == target)
    return target


def test_a_reader_sees_and_clicks_and_the_editors_page_shows_it(small_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    start(browser)
    browser.set_window_size(1000, 500)
    # The widget: an impression once the block is half in view, a click that lands on the story.
    browser.get(small_server + "/demo/articles/elbe-0?k=3&placement=widget_test")
    rendered(browser, 3)
    browser.execute_async_script(SETTLED)
    assert click_figures(small_server, "widget_test") == (0, 0)  # below the fold: not seen yet
    browser.execute_script("document.querySelector('.rs-block').scrollIntoView()")
    WebDriverWait(browser, WAIT).until(lambda d: click_figures(small_server, "widget_test") == (1, 0))
    assert "/demo/articles/elbe-" in follow_a_local_story(browser, small_server, "related-stories")
    WebDriverWait(browser, WAIT).until(lambda d: click_figures(small_server, "widget_test") == (1, 1))
    # The page without script: its pixel counts the impression, its link goes through the click link.
    browser.get(small_server + "/demo/articles/elbe-0/no-script?k=3&placement=no_script_test")
    browser.execute_script("document.querySelector('.rs-block').scrollIntoView()")
    WebDriverWait(browser, WAIT).until(lambda d: click_figures(small_server, "no_script_test") == (1, 0))
    follow_a_local_story(browser, small_server, "main")
    assert click_figures(small_server, "no_script_test") == (1, 1)
    assert problems(browser) == []
    # The editors' page shows both placements' figures.
    browser.get(small_server + "/editor")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    for placement in ("widget_test", "no_script_test"):
        heading = f".placement[data-placement={placement}] h3"
        WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, heading))
        assert browser.find_element(By.CSS_SELECTOR, heading).text == \
            f"{placement}: 1 Impressionen, 1 Klicks, CTR 100,0 %"
    assert console_errors(browser, ("/favicon.ico",)) == []  # the editors' page has no icon: the browser asks
