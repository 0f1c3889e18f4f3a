"""The KV-cache argument of Hugging Face models across transformers versions (one definition for the
column LM, the LM stepper and the benchmarks).

transformers 5.24 renamed ``forward(past_key_values=...)`` to ``forward(cache=...)`` and will
remove the old name in 5.40; 5.23 (what the constraints pin today) only knows the old one. Asking
the model's signature keeps rlcreate working on both sides without a version bound.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["cache_argument", "returned_cache"]


def cache_argument(model: Any) -> str:
    """``"cache"`` when ``model.forward`` takes it, else ``"past_key_values"`` (also for models
    whose forward takes only ``**kwargs``, e.g. peft wrappers: the base model is asked)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def returned_cache(out: Any) -> Any:
    """The KV cache a forward pass returned (``out.cache`` from 5.24 on, ``out.past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
