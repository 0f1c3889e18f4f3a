"""The KV-cache argument of Hugging Face models across transformers versions (one definition for the
column LM, the LM stepper and the benchmarks).

transformers 5.24 renamed ``forward(past_key_values=...)`` to ``forward(cache=...)`` and will
remove the old name in 5.40; 5.23 (what the constraints pin today) only knows the old one. Asking
the model's signature keeps rlcreate working on both sides without a version bound.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

__all__ = ["cache_argument", "returned_cache", "preallocate", "append_rows"]


def cache_argument(model: Any) -> str:
    """``"cache"`` when ``model.forward`` takes it, else ``"past_key_values"`` (also for models
    whose forward takes only ``**kwargs``, e.g. peft wrappers: the base model is asked)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def returned_cache(out: Any) -> Any:
    """The KV cache a forward pass returned (``out.cache`` from 5.24 on, ``out.past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def preallocate(cache: Any, capacity: int, rows: int | None = None) -> bool:
    """Give every layer of a filled ``DynamicCache`` (B rows) a buffer of ``capacity`` positions
    and ``rows`` (>= B) batch rows that later steps write into; attention reads views of its
    filled part. :func:`append_rows` then adds copies of rows (continuations of a shared prefix)
    without touching the others. Why: ``DynamicLayer.update`` concatenates, copying the whole cache
    at every step; for short sequences decoded a column at a time that copy was half of a step.
    Attention reads the same numbers (views instead of copies). Returns False and leaves the cache
    as it was where it is not of that form (another cache type or transformers version): the
    caller then steps it as before."""
    layers = getattr(cache, "layers", None)
    if not layers or not all(type(layer).__name__ == "DynamicLayer" for layer in layers):
        return False
    if any(getattr(layer, "keys", None) is None or layer.keys.dim() != 4 for layer in layers):
        return False
    slot = _slot_layer_class()
    new = []
    for layer in layers:
        out = slot()
        out.fill(layer.keys, layer.values, capacity, rows)
        new.append(out)
    cache.layers = new
    return True


def append_rows(cache: Any, parents: Any) -> None:
    """Append a copy of each batch row in ``parents`` (a LongTensor) after the rows in use of a cache
    :func:`preallocate` prepared (within its row capacity)."""
    for layer in cache.layers:
        layer.append_rows(parents)


@functools.cache
def _slot_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class SlotLayer(DynamicLayer):
        """A ``DynamicLayer`` whose positions and rows live in buffers allocated once (see :func:`preallocate`)."""

        def fill(self, keys: Any, values: Any, capacity: int, rows: int | None) -> None:
            b, h, n, d = keys.shape
            shape = (max(int(rows or b), b), h, max(int(capacity), n), d)
            self._k, self._v = keys.new_empty(shape), values.new_empty(shape)
            self._k[:b, :, :n], self._v[:b, :, :n] = keys, values
            self.rows, self.length, self.device, self.is_initialized = b, n, keys.device, True
            self._views()

        def _views(self) -> None:
            self.keys, self.values = self._k[: self.rows, :, : self.length], self._v[: self.rows, :, : self.length]

        def append_rows(self, parents: Any) -> None:
            b, m = self.rows, len(parents)
            if b + m > self._k.shape[0]:
                raise ValueError(f"the cache holds {self._k.shape[0]} rows; {b} used, {m} more asked")
            self._k[b : b + m, :, : self.length] = self._k[parents, :, : self.length]
            self._v[b : b + m, :, : self.length] = self._v[parents, :, : self.length]
            self.rows = b + m
            self._views()

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            t, n = self.length, key_states.shape[-2]
            if t + n > self._k.shape[2]:  # past the buffer: grow it (a copy, as DynamicLayer's every step)
                self.fill(self.keys, self.values, 2 * (t + n), self._k.shape[0])
            self._k[: self.rows, :, t : t + n], self._v[: self.rows, :, t : t + n] = key_states, value_states
            self.length = t + n
            self._views()
            return self.keys, self.values

    return SlotLayer
