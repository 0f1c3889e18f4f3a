"""Batched scoring of completions under a frozen causal LM: per-token log-probs and entropies.

:class:`ReferenceLM` scores completions in context (after the prompt, chat-templated as the
generator saw it), batched, left padded with :func:`rlcreate.text.stepping.left_pad` so the LM head
runs only on completion positions, with an LRU cache of scored pairs. The fluency, surprise and
perplexity rewards and judges share one instance per model (:func:`default_reference_lm`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlcreate.errors import UserError

__all__ = ["TokenStats", "ReferenceLM", "default_reference_lm", "ScoringError"]


class ScoringError(UserError):
    """Bad scorer settings; the message names the value and the fix."""


@dataclass(frozen=True)
class TokenStats:
    """Per completion token: log-probability under the reference LM and the entropy (nats) of the
    LM's predictive distribution at that position. Empty arrays for an empty completion."""

    logprobs: np.ndarray
    entropies: np.ndarray

    @property
    def n(self) -> int:
        return int(self.logprobs.shape[0])


class ReferenceLM:
    """A frozen causal LM that scores completions token by token, batched and cached.

    The completion is scored *in context*: after the prompt (chat-templated for instruct models,
    as the generator saw it) when a prompt is given, else after the tokenizer's BOS token (or EOS,
    GPT-2's document separator). Prompt and completion are tokenised separately and concatenated,
    so exactly the completion's own tokens are scored.

    Args:
        model, tokenizer: any Hugging Face causal LM and its tokenizer (tests pass a tiny GPT-2);
            both ``None`` loads ``name_or_path`` through :func:`rlcreate.text.loading.load_causal_lm`.
        name_or_path: model to load when ``model`` is None (default: offline SmolLM2-135M-Instruct).
        batch_size: sequences per forward pass (sorted by length to limit padding).
        max_completion_tokens: longer completions are scored on their first tokens only.
        max_prompt_tokens: longer prompts keep their last tokens.
        chat: format prompts with the chat template; ``None`` decides from the tokenizer.
        cache_size: (context, completion) pairs whose scores are kept (0: no cache).
    """

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        *,
        name_or_path: str | None = None,
        batch_size: int = 16,
        max_completion_tokens: int = 256,
        max_prompt_tokens: int = 512,
        chat: bool | None = None,
        cache_size: int = 4096,
    ):
        if (model is None) != (tokenizer is None):
            raise ScoringError("pass both model and tokenizer, or neither (then name_or_path is loaded)")
        for field, v in (
            ("batch_size", batch_size),
            ("max_completion_tokens", max_completion_tokens),
            ("max_prompt_tokens", max_prompt_tokens),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ScoringError(f"{field}={v!r} must be an integer >= 1")
        from rlcreate.text.loading import DEFAULT_LM, is_chat_tokenizer, load_causal_lm  # torch, lazily

        if model is None:
            model, tokenizer = load_causal_lm(name_or_path or DEFAULT_LM)
        self.name_or_path = name_or_path or getattr(model, "name_or_path", None) or type(model).__name__
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size = batch_size
        self.max_completion_tokens, self.max_prompt_tokens = max_completion_tokens, max_prompt_tokens
        self.chat = is_chat_tokenizer(tokenizer) if chat is None else bool(chat)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self._start_ids = [int(start)] if start is not None else []
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pad_id = int(pad) if pad is not None else 0
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, TokenStats] = OrderedDict()
        self._lock = threading.Lock()
        self.sequences_scored = 0  # cache misses that went through the model
        import inspect

        self._accepts_logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters

    def _context_ids(self, prompts: Sequence[str] | None, n: int) -> list[list[int]]:
        if prompts is None:
            return [list(self._start_ids)] * n
        from rlcreate.text.loading import format_prompts

        out = []
        for p in prompts:
            if not p.strip():  # no prompt for this sample: score from the start token
                out.append(list(self._start_ids))
                continue
            text = format_prompts(self.tokenizer, [p], chat=self.chat)[0]
            # a chat template writes its special tokens as text; don't add BOS a second time
            ids = self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"]
            out.append(list(ids)[-self.max_prompt_tokens :])
        return out

    def token_stats(self, completions: Sequence[str], prompts: Sequence[str] | None = None) -> list[TokenStats]:
        """Per-token log-probs and predictive entropies of each completion (in nats)."""
        completions = list(completions)
        ctx = self._context_ids(prompts, len(completions))
        comp = [
            list(self.tokenizer(c, add_special_tokens=False)["input_ids"])[: self.max_completion_tokens]
            for c in completions
        ]
        results: list[TokenStats | None] = [None] * len(completions)
        todo: dict[tuple, list[int]] = {}
        with self._lock:
            for i, (c, t) in enumerate(zip(ctx, comp)):
                key = (tuple(c), tuple(t))
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    results[i] = hit
                else:
                    todo.setdefault(key, []).append(i)
        keys = sorted(todo, key=lambda k: len(k[0]) + len(k[1]))
        for b in range(0, len(keys), self.batch_size):
            chunk = keys[b : b + self.batch_size]
            for key, stats in zip(chunk, self._forward(chunk)):
                for i in todo[key]:
                    results[i] = stats
                with self._lock:
                    if self.cache_size:
                        self._cache[key] = stats
                        while len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
        return results  # type: ignore[return-value]

    def _forward(self, pairs: list[tuple]) -> list[TokenStats]:
        import torch

        from rlcreate.text.stepping import left_pad

        empty = TokenStats(np.zeros(0, np.float32), np.zeros(0, np.float32))
        seqs, spans = [], []
        for c, t in pairs:
            c, t = list(c), list(t)
            if not c:  # nothing to condition the first token on: score from the second token
                c, t = t[:1], t[1:]
            seqs.append(c + t)
            spans.append((len(c), len(t)))
        live = [j for j, (_, m) in enumerate(spans) if m > 0]
        out = [empty] * len(pairs)
        if not live:
            return out
        self.sequences_scored += len(live)
        width = max(len(seqs[j]) for j in live)
        keep = max(spans[j][1] for j in live) + 1  # positions whose logits predict completion tokens
        device = next(self.model.parameters()).device
        # Left padding puts every completion at the end of its row, so the LM head (a large share of
        # a small LM's compute: 49k x 576 for SmolLM2) runs only on the last `keep` positions.
        ids, mask, positions = left_pad([seqs[j] for j in live], self._pad_id, device)
        kwargs = {"logits_to_keep": keep} if self._accepts_logits_to_keep else {}
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, **kwargs).logits
            logits = logits[:, -keep:]
            for r, j in enumerate(live):
                m = spans[j][1]
                # the logit at position p predicts token p + 1: the last m + 1 positions minus one
                logp = torch.log_softmax(logits[r, keep - m - 1 : keep - 1].float(), dim=-1)
                target = ids[r, width - m :]
                lp = logp.gather(1, target[:, None])[:, 0]
                ent = -(logp.exp() * logp).sum(-1)
                out[j] = TokenStats(lp.cpu().numpy().astype(np.float32), ent.cpu().numpy().astype(np.float32))
        return out

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def __repr__(self) -> str:
        return f"ReferenceLM({self.name_or_path!r}, chat={self.chat}, batch_size={self.batch_size})"


_SHARED_LMS: dict[str, ReferenceLM] = {}
_SHARED_LOCK = threading.Lock()


def default_reference_lm(name_or_path: str | None = None) -> ReferenceLM:
    """One shared :class:`ReferenceLM` per model name (default: offline SmolLM2-135M-Instruct), so
    fluency and surprise terms of a recipe load and run one model."""
    from rlcreate.text.loading import DEFAULT_LM

    key = str(name_or_path or DEFAULT_LM)
    with _SHARED_LOCK:
        if key not in _SHARED_LMS:
            _SHARED_LMS[key] = ReferenceLM(name_or_path=key)
        return _SHARED_LMS[key]
