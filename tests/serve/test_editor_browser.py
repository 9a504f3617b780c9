"""The editors' page in a real headless Chromium: look up the Kursk article, see reasons, block a story.

Needs Debian's chromium and chromium-driver (`make test` installs them when it runs as root on Debian).
"""
import json
import urllib.request

import pytest
from browsers import needs_chromium
from servers import ServerProcess

from recommender.ingest.corpus import FIELD_LIMITS

TOKEN = "browser-test-token"

pytestmark = needs_chromium


@pytest.fixture
def server(corpus_index, tmp_path):
    settings, index_dir = corpus_index
    env = {"RECOMMENDER_API_TOKEN": TOKEN, "RECOMMENDER_STATE_DIR": str(tmp_path / "state"),
           "RECOMMENDER_CACHE_DIR": settings.cache_dir}
    with ServerProcess(index_dir, tmp_path / "server.log", env) as process:
        yield process.wait_ready()


def test_editor_looks_up_kursk_sees_reasons_and_blocks_a_story(server, browser, stories):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    # The page re-renders the list after every change: read it in one script call, and retry stale reads.
    wait = WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException])

    def listed() -> list[str]:
        return browser.execute_script("return [...document.querySelectorAll('#items tr')].map(r => r.dataset.id)")

    browser.get(server + "/editor")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    browser.find_element(By.ID, "query").send_keys("kursk-nordkorea-1")
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()

    wait.until(lambda d: len(listed()) == 5)
    assert "Nordkoreanische Soldaten" in browser.find_element(By.ID, "article-title").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#items tr")
    ids = listed()
    assert set(ids[:4]) <= set(stories["kursk-nordkorea"]["articles"])
    first_reasons = rows[0].find_element(By.CSS_SELECTOR, ".why").text
    assert "Ähnlichkeit" in first_reasons and "Alter" in first_reasons and "Gemeinsame Namen" in first_reasons
    # Every suggestion shows how it relates to the article (its label) and its relatedness.
    labels = [row.find_element(By.CSS_SELECTOR, ".badge.relation").text for row in rows]
    assert len(labels) == 5 and all(labels) and "Verwandtschaft" in rows[0].text

    blocked = ids[1]
    button = next(b for b in rows[1].find_elements(By.TAG_NAME, "button") if b.text == "Blockieren")
    button.click()
    wait.until(lambda d: len(listed()) == 5 and blocked not in listed())
    wait.until(until.text_to_be_present_in_element((By.ID, "overrides"), f"block {blocked}"))

    # min_relatedness=0: ten stories whatever their relatedness, so only the block can take one away.
    with urllib.request.urlopen(server + "/v1/articles/kursk-nordkorea-1/related?k=10&min_relatedness=0") as answer:
        public = [item["id"] for item in json.loads(answer.read())["items"]]
    assert blocked not in public and len(public) == 10


HOSTILE_TITLES = {
    "hostile-1": '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">Kursk: Soldaten aus Nordkorea',
    "hostile-2": "\u202eaeroknroN\u202c \u200fמלחמה\u200e Kursk <b onmouseover=\"window.pwned=3\">fett</b> &amp; &lt;",
    "hostile-3": ("Kursk " + "Nordkorea <i>x</i> " * 60)[:999] + "!",  # 1,000 characters: the longest title allowed
}


def put_article(server, article_id, title):
    article = {"title": title, "lang": "de", "published_at": "2024-11-02T10:00:00+01:00", "section": "Politik",
               "teaser": "<iframe src=\"javascript:window.pwned=4\"></iframe>Vorspann",
               "body": "Nordkoreanische Soldaten kämpfen nach Angaben aus Kiew im russischen Gebiet Kursk. "
                       f"<script>window.pwned = 5</script> {title[:200]}"}
    request = urllib.request.Request(server + f"/v1/articles/{article_id}", data=json.dumps(article).encode(),
                                     method="PUT", headers={"Content-Type": "application/json",
                                                            "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 201


def test_hostile_titles_are_stored_as_text_and_shown_escaped(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert len(HOSTILE_TITLES["hostile-3"]) == FIELD_LIMITS["title"]
    for article_id, title in HOSTILE_TITLES.items():
        put_article(server, article_id, title)
    browser.get(server + "/editor")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    text_of = "return document.getElementById(arguments[0]).textContent"
    for article_id, title in HOSTILE_TITLES.items():
        query = browser.find_element(By.ID, "query")
        query.clear()
        query.send_keys(article_id)
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        WebDriverWait(browser, 20).until(lambda d: d.execute_script(text_of, "article-title") == title.strip())
        assert browser.execute_script(text_of, "results").startswith(title.strip()[:50])
        # The list of related stories (other hostile articles among them, with their markup teasers) renders too.
        WebDriverWait(browser, 20).until(lambda d: d.execute_script("return document.querySelectorAll('#items tr').length"))
    assert browser.execute_script("return window.pwned === undefined")
    injected = "#article img, #article b, #article i, #article iframe, #article script, #results img, #results b, " \
               "#results i, #items img, #items iframe, #items script, #items b, #items i"
    assert not browser.find_elements(By.CSS_SELECTOR, injected)
    for article_id, title in HOSTILE_TITLES.items():  # stored as given: text, neither escaped nor stripped of tags
        lookup = urllib.request.Request(server + f"/v1/articles?q={article_id}",
                                        headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(lookup) as answer:
            assert json.loads(answer.read())["articles"][0]["title"] == title.strip()
