"""What each encoder reads of an article, teasers from first sentences, language detection.

Pure functions. `TEXTPREP_VERSION` is stored in every index: change it whenever the output of
`prepare` changes for the same input, so that old caches and indexes are never mixed with new ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

TEXTPREP_VERSION = 2  # 2: titles and teasers capped (TITLE_CHARS, TEASER_CHARS)

# What an encoder reads of the title and the teaser, far above real ones (titles ~100, teasers ~400
# characters): e5's cost grows with every token, and a 1,000-character title plus a 5,000-character teaser
# of CJK text (a token per character) took 20-40 s per draft on 2 busy cores. With these caps and the
# views' head_chars, what any encoder reads is bounded whatever the article holds.
TITLE_CHARS = 400
TEASER_CHARS = 1_000

_SPACE = re.compile(r"\s+")
# A sentence ends at . ! ? (optionally followed by a closing quote) before whitespace and an upper-case
# letter, digit or opening quote; abbreviations like "z. B." or "Dr." are protected by the upper-case test
# only partly, which is acceptable for teasers.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'»«“”’]?\s+(?=[\"'»«„“‚A-ZÄÖÜ0-9])")


class HasText(Protocol):
    title: str
    teaser: str
    body: str


@dataclass(frozen=True)
class TextView:
    """Which parts of an article an encoder reads.

    head_chars / tail_chars : the start and the end of the body (the end often holds the outcome or
    the background that names the story); the middle is dropped when the body is longer than both.
    chunks : when above 1, the body is read as up to this many consecutive pieces of head_chars each,
    every piece after the title (see `prepare_chunks`); tail_chars is then ignored.
    """

    title_repeat: int = 1
    include_teaser: bool = True
    head_chars: int = 2000
    tail_chars: int = 0
    chunks: int = 1

    def to_json(self) -> dict[str, int | bool]:
        """Plain values for manifests and cache keys."""
        return {
            "title_repeat": self.title_repeat,
            "include_teaser": self.include_teaser,
            "head_chars": self.head_chars,
            "tail_chars": self.tail_chars,
            "chunks": self.chunks,
        }


def normalize_space(text: str) -> str:
    """Collapse runs of whitespace (newlines included) to single spaces."""
    return _SPACE.sub(" ", text).strip()


def _cut_head(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit * 0.8 else cut


def _cut_tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    space = cut.find(" ")
    return cut[space + 1:] if 0 <= space < limit * 0.2 else cut


def _body_read(body: str, view: TextView) -> str:
    """The body normalised as far as the view reads it: only a bounded start (and end) of a long one.

    A hostile body must cost no more than a long real one, and no regex must run over more than it needs;
    four times what the view reads leaves room for runs of white space, so real bodies come out the same.
    """
    reach = (view.head_chars * max(view.chunks, 1) + view.tail_chars) * 4 + 4096
    if len(body) <= 2 * reach:
        return normalize_space(body)
    if view.tail_chars:
        return normalize_space(body[:reach]) + " " + normalize_space(body[-reach:])
    return normalize_space(body[:reach])


def prepare(article: HasText, view: TextView) -> str:
    """The single string an encoder embeds for `article` under `view`."""
    title = _cut_head(normalize_space(article.title), TITLE_CHARS)
    body = _body_read(article.body, view)
    teaser = _cut_head(normalize_space(article.teaser), TEASER_CHARS) if view.include_teaser else ""
    if teaser and body.startswith(teaser):
        teaser = ""
    if len(body) > view.head_chars + view.tail_chars:
        parts = [_cut_head(body, view.head_chars)]
        if view.tail_chars:
            parts.append(_cut_tail(body, view.tail_chars))
        body = " … ".join(parts)
    pieces = [title] * max(view.title_repeat, 0) + [teaser, body]
    return _join_sentences(p for p in pieces if p)


def prepare_chunks(article: HasText, view: TextView) -> list[str]:
    """The strings an encoder embeds for `article`: one per chunk (the first is `prepare`'s text).

    Short encoders read only the start of a long article; embedding the next pieces too and averaging
    lets the rest of the story count (measured in docs/quality.md) without a longer, slower input.
    """
    first = prepare(article, view)
    if view.chunks <= 1:
        return [first]
    title = _cut_head(normalize_space(article.title), TITLE_CHARS)
    rest = _body_read(article.body, view)
    rest = rest[len(_cut_head(rest, view.head_chars)):].strip()
    texts = [first]
    while rest and len(texts) < view.chunks:
        piece = _cut_head(rest, view.head_chars)
        rest = rest[len(piece):].strip()
        texts.append(_join_sentences(p for p in [title] * max(view.title_repeat, 0) + [piece] if p))
    return texts


def _join_sentences(pieces) -> str:
    out = []
    for piece in pieces:
        out.append(piece if piece[-1] in ".!?:…\"'»«“”" else piece + ".")
    return " ".join(out)


_WORD = re.compile(r"\w[\w'’-]*")
_CLAUSE = re.compile(r"(?<=[.!?:])\s+|\n+")


def name_tokens(text: str) -> list[str]:
    """Lower-cased words that look like names or numbers: capitalised, but not first in their sentence,
    or starting with a digit. Crude for German (nouns are capitalised too) but cheap, language-independent
    and measured to help tell one event from another of the same kind (docs/quality.md)."""
    tokens = []
    for clause in _CLAUSE.split(text):
        for position, word in enumerate(_WORD.findall(clause)):
            if word[0].isdigit() or (position > 0 and word[0].isupper()):
                tokens.append(word.lower())
    return tokens


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, split at sentence-final punctuation."""
    return [s for s in _SENTENCE_END.split(normalize_space(text)) if s]


def make_teaser(body: str, max_chars: int = 240) -> str:
    """A teaser from the first sentences of the body, at most max_chars long (ends with … if cut)."""
    # Only the start can become the teaser: splitting a 200,000-character body into sentences would be waste.
    sentences = split_sentences(body[:max_chars * 20 + 4096])
    teaser = ""
    for sentence in sentences:
        candidate = f"{teaser} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        teaser = candidate
    if not teaser and sentences:
        teaser = _cut_head(sentences[0], max_chars - 1).rstrip(" ,;:") + "…"
    return teaser


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language (py3langid, offline); 'und' when there is no text."""
    if not text.strip():
        return "und"
    import py3langid  # imported here: loading its model costs time that most callers never need

    lang, _score = py3langid.classify(text)
    return lang
