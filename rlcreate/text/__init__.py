"""The text domain: causal-LM adapter, sentence embedder and the shipped text data.

- :mod:`rlcreate.text.domain`: the text domain's :class:`~rlcreate.domains.Domain` (TextTokens-v0).
- :mod:`rlcreate.text.loading`: :func:`load_causal_lm` (any Hugging Face causal LM, or the offline
  default ``smollm2-135m-instruct``), :func:`format_prompts`, :func:`read_prompts`.
- :mod:`rlcreate.text.stepping`: :class:`LMStepper` (batched next-token stepping over a shared KV
  cache) and :func:`left_pad`.
- :mod:`rlcreate.text.scoring`: :class:`ReferenceLM` (batched per-token log-probs of completions).
- :mod:`rlcreate.text.embed`: the all-MiniLM-L6-v2 embedder for semantic rewards.
- :mod:`rlcreate.text.data`: the reference corpus and the train / held-out prompt sets.

Names are re-exported lazily so ``import rlcreate.text`` does not import torch or transformers.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "rlcreate.text.loading": (
        "DEFAULT_LM",
        "LoadedLM",
        "ModelNotFoundError",
        "PromptError",
        "cache_root",
        "format_prompts",
        "load_causal_lm",
        "locate_smollm2_gguf",
        "read_prompts",
    ),
    "rlcreate.text.stepping": ("LMStepper", "StepOutput"),
    "rlcreate.text.scoring": ("ReferenceLM",),
    "rlcreate.text.embed": ("Embedder", "default_embedder"),
    "rlcreate.text.data": ("reference_corpus", "prompts"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'rlcreate.text' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
