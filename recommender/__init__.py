"""recommender: related-content engine for news sites (corpus → text preparation → embedding → index → ranking)."""
from __future__ import annotations

__version__ = "0.1.0"
