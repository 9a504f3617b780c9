"""The one small interface every dense encoder implements, and its errors."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np


class EncoderUnavailable(RuntimeError):
    """An encoder's package or model is missing; the message says what to install or configure."""


class DenseEncoder(ABC):
    """Turns texts into L2-normalised float32 vectors; the model is loaded on first use, not at construction."""

    kind: str = ""
    dim: int = 0

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._model: Any = None

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What determines the vectors (backend, model, version); equal identities give equal vectors."""

    @abstractmethod
    def _load(self) -> Any:
        """Load and return the model."""

    @abstractmethod
    def _encode(self, model: Any, texts: list[str]) -> np.ndarray:
        """Raw vectors of shape (len(texts), dim)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of shape (len(texts), dim), float32, each of unit length (zero for empty text)."""
        if self._model is None:
            self._model = self._load()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._encode(self._model, texts), dtype=np.float32).reshape(len(texts), -1)
        return l2_normalize(vectors)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32, copy=False)


def package_version(distribution: str) -> str:
    """Installed version of a distribution, or 'missing'."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "missing"


def require(module: str, distribution: str, purpose: str) -> Any:
    """Import a backend's package or raise EncoderUnavailable naming the package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EncoderUnavailable(
            f"the {purpose} encoder needs the Python package '{distribution}' "
            f"(pip install {distribution}); import failed: {exc}"
        ) from None
