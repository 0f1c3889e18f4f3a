"""Batched KV-cache stepping of a causal LM, one token per row per forward pass.

:class:`LMStepper` steps a batch of sequences one token at a time in a single forward pass per step,
sharing one KV cache, and exposes the last hidden state and top-k log-probabilities, which is what
the token-stream environment (:mod:`rlcreate.envs.text_tokens`) observes. Rows can be restarted
with new prompts individually (:meth:`LMStepper.restart_rows`) so a vectorised environment can
auto-reset one sequence without re-encoding the others. :func:`left_pad` is the one left-padding
implementation (the scorer :mod:`rlcreate.text.scoring` uses it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlcreate.hf_cache import cache_argument, returned_cache
from rlcreate.text.loading import _encode, format_prompts, is_chat_tokenizer

__all__ = ["StepOutput", "LMStepper", "left_pad"]


def left_pad(ids: Sequence[Sequence[int]], pad_id: int, device: Any = "cpu"):
    """Token id lists -> ``(input_ids, attention_mask, position_ids)``, right-aligned (left padded).
    Positions count only real tokens, so a padded row sees the same positions as an unpadded one,
    and every row's last token is in the last column (``logits_to_keep`` can skip the rest)."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        if len(x):
            input_ids[i, width - len(x) :] = torch.tensor(list(x), dtype=torch.long)
            mask[i, width - len(x) :] = 1
    pos = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return input_ids.to(device), mask.to(device), pos.to(device)


@dataclass
class StepOutput:
    """What the LM offers at the next position of every row (numpy, float32 / int64).

    ``hidden``: (b, d) last-layer hidden state at the last position (after the final norm);
    ``topk_logprobs`` / ``topk_ids``: (b, k), most likely next tokens first, ``-inf`` where fewer
    than k tokens are allowed; ``logprobs_full``: (b, vocab) when the stepper was asked for it.
    """

    hidden: np.ndarray
    topk_logprobs: np.ndarray
    topk_ids: np.ndarray
    logprobs_full: np.ndarray | None = None


class LMStepper:
    """Batched next-token stepping over one shared KV cache with left padding.

    ``start(prompts)`` encodes a batch (left padded; attention mask and position ids account for
    the padding) and returns the first :class:`StepOutput`; ``step(token_ids)`` appends one token per
    row with a single forward pass (``logits_to_keep=1``, under ``torch.inference_mode()``).
    ``restart_rows(rows, prompts)`` gives some rows new prompts while the others keep their cache:
    the new prompts are encoded in one forward and spliced into the shared cache, right-aligned with
    the other rows (columns a row does not use are masked out; columns no row uses are trimmed). For
    cache types other than plain ``DynamicCache`` the whole batch is re-encoded instead (correct,
    slower).

    ``suppress_token_ids`` are never offered in the top-k (their log-probs are ``-inf`` and the
    distribution is renormalised over the rest); ``None`` suppresses BOS, UNK and a PAD distinct from
    EOS, so a policy cannot emit tokens that carry no text.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        top_k: int = 16,
        system: str | None = None,
        chat: bool | None = None,
        max_prompt_tokens: int = 512,
        suppress_token_ids: Sequence[int] | None = None,
        return_full_logprobs: bool = False,
    ):
        vocab = int(model.get_output_embeddings().weight.shape[0])
        if not 1 <= top_k <= vocab:
            raise ValueError(f"top_k={top_k} must be between 1 and the vocabulary size {vocab}")
        self.model, self.tokenizer = model, tokenizer
        self.top_k, self.system, self.max_prompt_tokens = top_k, system, max_prompt_tokens
        self.chat = is_chat_tokenizer(tokenizer) if chat is None else chat
        self.return_full_logprobs = return_full_logprobs
        self.eos_token_ids = _eos_ids(model, tokenizer)
        self.pad_token_id = (
            tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else (self.eos_token_ids[0] if self.eos_token_ids else 0)
        )
        if suppress_token_ids is None:
            suppress_token_ids = [
                t
                for t in (tokenizer.bos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id)
                if t is not None and t not in self.eos_token_ids
            ]
        self.suppress_token_ids = sorted({int(t) for t in suppress_token_ids if 0 <= int(t) < vocab})
        self.hidden_size = int(model.config.get_text_config().hidden_size)
        self.vocab_size = vocab
        self.device = next(model.parameters()).device
        self._cache_arg = cache_argument(model)
        self._cache: Any = None  # the model's KV cache object (None before start)
        self._mask: torch.Tensor | None = None  # (b, cache_len) 1 where a row attends
        self._next_pos: torch.Tensor | None = None  # (b,) position id of each row's next token
        self._history: list[list[int]] = []  # prompt + emitted ids per row (for re-encoding)

    @property
    def batch_size(self) -> int:
        return len(self._history)

    @property
    def cache_length(self) -> int:
        return 0 if self._mask is None else int(self._mask.shape[1])

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of the formatted prompts (validated: non-empty, at most max_prompt_tokens)."""
        texts = format_prompts(self.tokenizer, prompts, self.system, self.max_prompt_tokens, self.chat)
        return _encode(self.tokenizer, texts, self.chat)

    @torch.inference_mode()
    def start(self, prompts: Sequence[str]) -> StepOutput:
        """Encode a new batch of prompts (dropping any previous state); the first next-token offer."""
        ids = self.encode_prompts(prompts)
        self._history = [list(x) for x in ids]
        self._cache = None
        return self._prefill_all()

    @torch.inference_mode()
    def step(self, token_ids: Sequence[int] | np.ndarray | torch.Tensor) -> StepOutput:
        """Append one token to every row in one forward pass; the next offer for every row."""
        if self._mask is None or self._next_pos is None:  # both are set by start()
            raise RuntimeError("LMStepper.step() called before start(prompts)")
        tokens = torch.as_tensor(np.asarray(token_ids), dtype=torch.long, device=self.device).reshape(-1)
        if tokens.shape[0] != self.batch_size:
            raise ValueError(f"step() got {tokens.shape[0]} token ids for a batch of {self.batch_size} rows")
        for row, tok in zip(self._history, tokens.tolist()):
            row.append(tok)
        self._mask = torch.cat([self._mask, self._mask.new_ones((self.batch_size, 1))], dim=1)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=self._mask,
            position_ids=self._next_pos[:, None],
            **{self._cache_arg: self._cache},
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=True,
        )
        self._cache = returned_cache(out)
        self._next_pos = self._next_pos + 1
        return self._offer(out.logits[:, -1], out.hidden_states[-1][:, -1])

    @torch.inference_mode()
    def restart_rows(self, rows: Sequence[int], prompts: Sequence[str]) -> StepOutput:
        """Give ``rows`` new prompts, keeping the other rows' caches; the offer for those rows only."""
        rows = [int(r) for r in rows]
        if len(rows) != len(prompts):
            raise ValueError(f"restart_rows got {len(rows)} rows and {len(prompts)} prompts")
        if self._mask is None or self._next_pos is None:  # both are set by start()
            raise RuntimeError("LMStepper.restart_rows() called before start(prompts)")
        if any(not 0 <= r < self.batch_size for r in rows) or len(set(rows)) != len(rows):
            raise ValueError(f"rows {rows} must be distinct indices in [0, {self.batch_size})")
        ids = self.encode_prompts(prompts)
        for r, x in zip(rows, ids):
            self._history[r] = list(x)
        if len(rows) == self.batch_size or not _is_plain_dynamic_cache(self._cache):
            return _select(self._prefill_all(), rows)
        input_ids, mask, pos = self._left_pad(ids)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=True,
        )
        self._splice(rows, returned_cache(out), mask)
        self._next_pos[rows] = mask.sum(dim=1)
        return self._offer(out.logits[:, -1], out.hidden_states[-1][:, -1])

    # ------------------------------------------------------------------ internals

    def _left_pad(self, ids: Sequence[Sequence[int]]):
        return left_pad(ids, self.pad_token_id, self.device)

    def _prefill_all(self) -> StepOutput:
        input_ids, mask, pos = self._left_pad(self._history)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=True,
        )
        self._cache, self._mask = returned_cache(out), mask
        self._next_pos = mask.sum(dim=1)
        return self._offer(out.logits[:, -1], out.hidden_states[-1][:, -1])

    def _splice(self, rows: list[int], new_cache: Any, new_mask: torch.Tensor) -> None:
        """Write the new rows' KV right-aligned into the shared cache, then trim unused columns."""
        assert self._mask is not None  # only called from restart_rows, after start()
        old_len, new_len = self._mask.shape[1], new_mask.shape[1]
        grow = max(0, new_len - old_len)
        length = old_len + grow
        index = torch.tensor(rows, device=self.device)
        mask = torch.nn.functional.pad(self._mask, (grow, 0))
        mask[index] = 0
        mask[index, length - new_len :] = new_mask
        for layer, new_layer in zip(self._cache.layers, new_cache.layers):
            for attr in ("keys", "values"):
                old = getattr(layer, attr)
                if grow:
                    old = torch.nn.functional.pad(old, (0, 0, grow, 0))
                old[index, :, length - new_len :] = getattr(new_layer, attr)
                old[index, :, : length - new_len] = 0
                setattr(layer, attr, old)
        # Drop leading columns no row attends to, so the cache stays ~ max(prompt + generated) long.
        used = mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            mask = mask[:, first:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
        self._mask = mask

    def _offer(self, logits: torch.Tensor, hidden: torch.Tensor) -> StepOutput:
        logits = logits.float()
        if self.suppress_token_ids:
            logits[:, self.suppress_token_ids] = float("-inf")
        logprobs = torch.log_softmax(logits, dim=-1)
        top_lp, top_ids = torch.topk(logprobs, self.top_k, dim=-1)
        return StepOutput(
            hidden=hidden.float().cpu().numpy(),
            topk_logprobs=top_lp.cpu().numpy().astype(np.float32),
            topk_ids=top_ids.cpu().numpy().astype(np.int64),
            logprobs_full=logprobs.cpu().numpy() if self.return_full_logprobs else None,
        )

    # ------------------------------------------------------------------ baseline sampling

    @torch.inference_mode()
    def sample(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 32,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        min_new_tokens: int = 0,
    ) -> list[str]:
        """Plain ancestral sampling (temperature, nucleus) of a continuation per prompt, for baselines.

        Uses the same batched KV-cache stepping as the environment; a row stops at EOS, which is
        masked before ``min_new_tokens`` (as the environment does). The seed fixes the draws (a
        private ``torch.Generator``), so the same call gives the same texts.
        """
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be at least 1")
        gen = torch.Generator().manual_seed(int(seed))
        saved = self.return_full_logprobs
        self.return_full_logprobs = True
        try:
            offer = self.start(prompts)
            done = np.zeros(len(prompts), dtype=bool)
            emitted: list[list[int]] = [[] for _ in prompts]
            for t in range(max_new_tokens):
                logprobs = torch.from_numpy(offer.logprobs_full)
                if t < min_new_tokens and self.eos_token_ids:
                    logprobs[:, self.eos_token_ids] = float("-inf")
                    logprobs = torch.log_softmax(logprobs, dim=-1)
                tokens = _draw(logprobs, temperature, top_p, gen)
                tokens[done] = self.pad_token_id
                for i, tok in enumerate(tokens.tolist()):
                    if not done[i]:
                        if tok in self.eos_token_ids:
                            done[i] = True
                        else:
                            emitted[i].append(tok)
                if done.all() or t == max_new_tokens - 1:
                    break
                offer = self.step(tokens)
        finally:
            self.return_full_logprobs = saved
        return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in emitted]


def _draw(logprobs: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> torch.Tensor:
    if temperature == 0:
        return logprobs.argmax(dim=-1)
    probs = torch.softmax(logprobs / temperature, dim=-1)
    if top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(dim=-1) - sorted_p < top_p  # always keeps the most likely token
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and int(v) not in ids:
                ids.append(int(v))
    return ids


def _is_plain_dynamic_cache(cache: Any) -> bool:
    from transformers.cache_utils import DynamicCache, DynamicLayer

    return type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)


def _select(out: StepOutput, rows: Sequence[int]) -> StepOutput:
    return StepOutput(
        out.hidden[rows],
        out.topk_logprobs[rows],
        out.topk_ids[rows],
        None if out.logprobs_full is None else out.logprobs_full[rows],
    )
