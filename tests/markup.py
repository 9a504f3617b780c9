"""Reading HTML in tests: the start tags of a page or fragment with their attributes, and its text."""
from __future__ import annotations

from html.parser import HTMLParser


class Elements(HTMLParser):
    """The start tags of a fragment with their attributes, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag):
        return [attrs for name, attrs in self.tags if name == tag]
