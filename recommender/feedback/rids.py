"""Recommendation ids (rid): one random seed per answered list, signed with the server's secret.

A rid names a served list, not a reader: it is drawn anew for every answer (an answer a CDN caches is shared by
everybody it serves), holds nothing about the request, and is never stored with anything about a person. The
signature binds it to the article and placement it was drawn for, so events can only be counted for lists the
service really answered; the seed also decides the list's A/B arm (a stable hash, see rank.placements.Arm).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

SEED_BYTES = 9  # 72 random bits: 12 characters
SIGNATURE_BYTES = 9
RID_CHARS = 24
RID_PATTERN = re.compile(r"[A-Za-z0-9_-]{24}")


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


class Rids:
    """Draws and checks rids with one secret (the same in every worker and replica that shares the state)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a rid secret needs at least 16 bytes")
        self._secret = secret

    def _signature(self, seed: str, article_id: str | None, placement: str | None) -> str:
        message = "\x00".join((seed, article_id or "", placement or "")).encode("utf-8", "surrogatepass")
        return _text(hmac.new(self._secret, message, hashlib.sha256).digest()[:SIGNATURE_BYTES])

    def draw(self, article_id: str | None, placement: str | None) -> str:
        """A new rid for a list of article_id (None: a draft) in placement (None: no placement)."""
        seed = _text(secrets.token_bytes(SEED_BYTES))
        return seed + self._signature(seed, article_id, placement)

    def genuine(self, rid: str, article_id: str | None, placement: str | None) -> bool:
        """Whether rid was drawn by a holder of this secret for this article and placement."""
        if not RID_PATTERN.fullmatch(rid):
            return False
        seed, signature = rid[:RID_CHARS // 2], rid[RID_CHARS // 2:]
        return hmac.compare_digest(signature, self._signature(seed, article_id, placement))


def seed_of(rid: str) -> str:
    """The random part of a rid (what an A/B arm is drawn from)."""
    return rid[:RID_CHARS // 2]
