"""An article's picture in the corpus format: http(s) only, bounded, with its size; kept in the snapshot."""
import pytest
from conftest import record

from recommender.index.snapshot import article_metadata
from recommender.ingest.corpus import Image, article_from_json, article_from_stored

IMAGE = {"url": "https://bilder.example/hafen.jpg", "alt": "Containerschiffe im Hafen", "width": 1200, "height": 675}


def test_an_image_is_read_kept_in_the_snapshot_and_stored_back():
    article = article_from_json(record("a1", image=IMAGE))
    assert article.image == Image(**IMAGE)
    assert article_metadata(article)["image"] == IMAGE
    assert article_from_stored(article.to_json()) == article
    plain = article_from_json(record("a2"))
    assert plain.image is None and "image" not in article_metadata(plain)  # old snapshots compare equal


@pytest.mark.parametrize("image, problem", [
    ({"url": "javascript:alert(1)"}, "http or https"),
    ({"url": "data:image/png;base64,AAAA"}, "http or https"),
    ({"url": "https://bilder.example/a.jpg\" onerror=\"alert(1)"}, "http or https"),
    ({"url": "https://bilder.example/<script>.jpg"}, "http or https"),
    ({"url": "https://bilder.example/" + "a" * 2100}, "more than 2,048"),
    ({"url": "https://bilder.example/a.jpg", "alt": "x" * 501}, "more than 500"),
    ({"url": "https://bilder.example/a.jpg", "width": 0}, "width"),
    ({"url": "https://bilder.example/a.jpg", "height": 10 ** 9}, "height"),
    ({"url": "https://bilder.example/a.jpg", "width": "1200"}, "width"),
    ({"url": "https://bilder.example/a.jpg", "colour": "red"}, "unknown field"),
    ({"alt": "no address"}, "strings"),
    ("https://bilder.example/a.jpg", "object"),
])
def test_a_hostile_or_broken_image_is_refused_with_the_reason(image, problem):
    with pytest.raises(ValueError, match=problem):
        article_from_json(record("a1", image=image))
