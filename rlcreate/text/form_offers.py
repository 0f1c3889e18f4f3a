"""Token-level steering on a creative form: what each offered token does to the form.

A policy over ``rlcreate/TextTokens-v0`` picks one of the LM's top-k offers per step but observes
only the LM's hidden state and the offers' log-probs, not which token each slot holds: on a
lipogram it cannot tell an offer that spells the banned letter from one that does not (and an MLP's
k outputs are tied to rank positions, whose tokens change every step). :class:`FormOffersCore`
adds what a token-level policy needs to act on the form, per row and per offered slot:

==========  ===========================================================================
form        per-slot flag (1 = this offer breaks the form)
==========  ===========================================================================
lipogram    the token's text holds the banned letter (either case)
==========  ===========================================================================

(rows of other forms get 0 everywhere). The layout is the one :class:`rlcreate.sb3.policies.LMPriorPolicy`
reads with ``offer_features: 1`` and ``prior_start: hidden_size``: ``[hidden (d), top-k log-probs
(k), progress (1), form active (1), flags (k)]``. The policy starts at the LM's own top-k
distribution (the flags are ignored until PPO learns a weight for them), so the untrained start is
the ``lm_topk`` sampler.

The flags are features, not a rule: a hand-written rule that never takes a flagged offer
(:func:`avoid_flagged`) is constrained decoding, and the benchmark reports it next to the learnt
policy, so what RL adds over writing the rule by hand is visible. Hand-written here: no library
maps a tokenizer's vocabulary to letter flags.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from rlcreate.envs.text_tokens import TextTokensCore
from rlcreate.text.forms import parse_form_prompt

__all__ = ["FORM_OFFER_FORMS", "FormOffersCore", "letter_table", "avoid_flagged", "follow_lm", "write_texts"]

#: forms whose offers get a flag (others observe zeros)
FORM_OFFER_FORMS = ("lipogram",)


@functools.lru_cache(maxsize=4)
def _letter_table(tokenizer: Any, vocab: int) -> np.ndarray:
    texts = tokenizer.batch_decode([[i] for i in range(vocab)])
    table = np.zeros((vocab, 26), bool)
    for i, t in enumerate(texts):
        low = t.lower()
        for j, ch in enumerate(string.ascii_lowercase):
            if ch in low:
                table[i, j] = True
    return table


def letter_table(tokenizer: Any, vocab: int) -> np.ndarray:
    """``(vocab, 26)`` bool: token ``i`` decodes to text holding letter ``j`` (a-z, either case)."""
    return _letter_table(tokenizer, int(vocab))


class FormOffersCore(TextTokensCore):
    """:class:`~rlcreate.envs.text_tokens.TextTokensCore` whose observation ends with the form
    flags of the offered tokens (see the module table). Same actions, masks, rewards and episodes."""

    def __init__(self, stepper: Any, reward: Any, prompts: Sequence[str], **kwargs: Any):
        super().__init__(stepper, reward, prompts, **kwargs)
        vocab = int(getattr(stepper, "vocab_size", 0) or len(stepper.tokenizer))
        self._letters = letter_table(stepper.tokenizer, vocab)
        self._banned = np.full(self.n, -1, np.int64)  # per row: banned letter index, -1 = no lipogram
        low, high = self.observation_space.low, self.observation_space.high
        self.observation_space = spaces.Box(
            np.concatenate([low, np.zeros(1 + self.k, np.float32)]),
            np.concatenate([high, np.ones(1 + self.k, np.float32)]),
            dtype=np.float32,
        )

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _target(prompt: str) -> int:
        parsed = parse_form_prompt(prompt)
        if parsed is None or parsed[0] not in FORM_OFFER_FORMS:
            return -1
        return string.ascii_lowercase.index(parsed[2])

    def reset(self, rng: np.random.Generator, rows: Sequence[int] | None = None) -> np.ndarray:
        super().reset(rng, rows)
        self._banned = np.array([self._target(p) for p in self.row_prompts], np.int64)
        return self.observe()

    def reset_with(self, prompts: Sequence[str]) -> np.ndarray:
        """Start every row on the given prompts (one per row, in order): for evaluation on a fixed
        prompt list, where :meth:`reset` would draw prompts at random."""
        if len(prompts) != self.n:
            raise self._config_error(f"reset_with got {len(prompts)} prompts for {self.n} rows")
        offer = self.stepper.start(list(prompts))
        self._started = True
        self._set_offers(offer.hidden, offer.topk_logprobs, offer.topk_ids)
        self.t[:] = 0
        self.row_prompts = list(prompts)
        self.emitted = [[] for _ in range(self.n)]
        self.token_logprobs = [[] for _ in range(self.n)]
        self._banned = np.array([self._target(p) for p in self.row_prompts], np.int64)
        return self.observe()

    def flags(self) -> np.ndarray:
        """``(n, k)`` float32: 1 where an offered token breaks its row's form."""
        active = self._banned >= 0
        out = np.zeros((self.n, self.k), np.float32)
        if active.any():
            rows = np.flatnonzero(active)
            out[rows] = self._letters[self.topk_ids[rows], self._banned[rows, None]]
        return out

    def observe(self) -> np.ndarray:
        base = super().observe()
        active = (self._banned >= 0).astype(np.float32)[:, None]
        return np.concatenate([base, active, self.flags()], axis=1).astype(np.float32)


# ------------------------------------------------------------------ samplers over a FormOffersCore


def follow_lm(core: FormOffersCore, rng: np.random.Generator) -> np.ndarray:
    """A slot per row from the LM's top-k distribution (masked slots excluded): the policy's
    untrained start."""
    lp = core.topk_logprobs.astype(np.float64)
    p = np.where(core.action_masks(), np.exp(lp - lp.max(axis=1, keepdims=True)), 0.0)
    p /= p.sum(axis=1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in p])


def avoid_flagged(core: FormOffersCore, rng: np.random.Generator) -> np.ndarray:
    """The hand-written rule: the LM's top-k distribution with flagged offers removed (all kept
    when every allowed offer is flagged): constrained decoding, no learning."""
    lp = core.topk_logprobs.astype(np.float64)
    masks = core.action_masks()
    ok = masks & (core.flags() < 0.5)
    ok = np.where(ok.any(axis=1, keepdims=True), ok, masks)
    p = np.where(ok, np.exp(lp - lp.max(axis=1, keepdims=True)), 0.0)
    p /= p.sum(axis=1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in p])


def write_texts(
    core: FormOffersCore, prompts: Sequence[str], choose: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[list[str], list[bool]]:
    """One text per prompt (``len(prompts) == core.n``): ``choose(obs, masks) -> slots`` picks every
    step until each row ends (EOS or the length cap). Returns the texts and whether each ended
    with EOS (False = cut at ``max_new_tokens``). Rows are scored by the core's reward, so pass a
    core built with a cheap reward and score the texts afterwards."""
    obs = core.reset_with(prompts)
    texts: list[str | None] = [None] * core.n
    eos = [False] * core.n
    while any(t is None for t in texts):
        active = np.array([t is None for t in texts])
        obs, _, terminated, truncated, infos = core.step(choose(obs, core.action_masks()), active=active)
        for i in np.flatnonzero(terminated | truncated):
            texts[i], eos[i] = infos[i]["text"], bool(terminated[i])
    return [str(t) for t in texts], eos
