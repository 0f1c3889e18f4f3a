"""Generic token-stream environments over a causal LM: steer it token by token.

The environment logic lives in :class:`TextTokensCore`, which holds ``n`` sequences in one
:class:`~rlcreate.text.stepping.LMStepper` (one shared KV cache) and advances all of them with a single
forward pass per step. :class:`TextTokensVecEnv` exposes it to stable-baselines3 as a ``VecEnv``
(the fast path: finished rows restart individually, spliced into the shared cache, while the
others keep decoding); :class:`TextTokensEnv` is the single-sequence Gymnasium form (``check_env``,
``gymnasium.make("rlcreate/TextTokens-v0", reward=...)``). The text domain configures them
(:mod:`rlcreate.text.envs`: ``rlcreate/TextTokens-v0``, its defaults and entry points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from rlcreate.envs.core_vec_env import CoreEnv, CoreVecEnv, EnvConfigError
from rlcreate.envs.token_stream import TokenStreamCore
from rlcreate.rewards.compose import RewardSet, as_reward_set

__all__ = ["TextTokensCore", "TextTokensVecEnv", "TextTokensEnv", "TextEnvConfigError", "TokenStepper", "LOGPROB_FLOOR"]

LOGPROB_FLOOR = -30.0  # observed top-k log-probs are clipped here (and -inf, a disallowed slot, maps here)


class TokenStepper(Protocol):
    """What the core needs from a language model (:class:`rlcreate.text.stepping.LMStepper` is one):
    ``start`` / ``step`` / ``restart_rows`` return the next offers (``hidden``, ``topk_logprobs``,
    ``topk_ids``) of every row, one forward pass each."""

    top_k: int
    hidden_size: int
    tokenizer: Any

    @property  # read-only, so a stepper may hold any sequence type (LMStepper keeps a list)
    def eos_token_ids(self) -> Sequence[int]: ...

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]: ...

    def start(self, prompts: Sequence[str]) -> Any: ...

    def step(self, token_ids: np.ndarray) -> Any: ...

    def restart_rows(self, rows: Sequence[int], prompts: Sequence[str]) -> Any: ...


class TextEnvConfigError(EnvConfigError):
    """An environment argument is invalid; the message names it, its value and the fix."""


class TextTokensCore(TokenStreamCore):
    """Batched state of ``n`` texts being written (shared by the VecEnv and the single env).

    ``step`` emits one token per row (the chosen top-k slot), advances every row with one forward
    pass and scores the rows that finished with one reward-set call. Resetting is the caller's job:
    ``reset(rng, rows)`` restarts the given rows with freshly sampled prompts.
    """

    def __init__(
        self,
        stepper: TokenStepper,
        reward: Any,
        prompts: Sequence[str],
        n: int = 1,
        max_new_tokens: int = 32,
        min_new_tokens: int = 0,
        hidden_clip: float = 10.0,
        strict_actions: bool = False,
    ):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise TextEnvConfigError(f"n_envs = {n!r}: must be an integer >= 1")
        if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
            raise TextEnvConfigError(f"max_new_tokens = {max_new_tokens!r}: must be an integer >= 1")
        if not 0 <= min_new_tokens <= max_new_tokens:
            raise TextEnvConfigError(
                f"min_new_tokens = {min_new_tokens!r}: must be between 0 and max_new_tokens ({max_new_tokens})"
            )
        if not hidden_clip > 0:
            raise TextEnvConfigError(f"hidden_clip = {hidden_clip!r}: must be > 0")
        if isinstance(prompts, str) or len(prompts) == 0:
            raise TextEnvConfigError(f"prompts = {prompts!r:.60}: pass a non-empty list of prompt strings")
        if reward is None:
            raise TextEnvConfigError(
                "reward = None: pass a RewardSet, a reward module or a callable "
                "texts -> list[float], e.g. reward=RewardSet([Term('novelty', ...)])"
            )
        stepper.encode_prompts(list(prompts))  # validate every prompt once, up front (empty / too long)
        self.stepper = stepper
        self.reward: RewardSet = as_reward_set(reward)
        self.prompts = list(prompts)
        d, k = stepper.hidden_size, stepper.top_k
        self._init_offers(n, k, d, hidden_clip, strict_actions, empty_logprob=LOGPROB_FLOOR)
        self.max_new_tokens, self.min_new_tokens = int(max_new_tokens), int(min_new_tokens)
        low = np.concatenate([np.full(d, -self.hidden_clip), np.full(k, LOGPROB_FLOOR), [0.0]]).astype(np.float32)
        high = np.concatenate([np.full(d, self.hidden_clip), np.zeros(k), [1.0]]).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(k)
        self.progress = 0.0  # training progress in [0, 1] for reward weight schedules (set by the trainer)
        self.t = np.zeros(self.n, np.int64)
        self.row_prompts: list[str] = [""] * self.n
        self.emitted: list[list[int]] = [[] for _ in range(self.n)]
        self.token_logprobs: list[list[float]] = [[] for _ in range(self.n)]
        self._eos = np.asarray(stepper.eos_token_ids, np.int64)
        self._started = False

    # ------------------------------------------------------------------ episodes

    def reset(self, rng: np.random.Generator, rows: Sequence[int] | None = None) -> np.ndarray:
        """Start new texts on all rows (or ``rows``) with prompts drawn from ``rng``; all rows' obs."""
        every = rows is None or not self._started
        picked = np.arange(self.n) if every else np.asarray(rows, np.int64)
        picks = rng.integers(len(self.prompts), size=len(picked))
        prompts = [self.prompts[i] for i in picks]
        offer = self.stepper.start(prompts) if every else self.stepper.restart_rows(picked.tolist(), prompts)
        self._started = True
        self._set_offers(offer.hidden, offer.topk_logprobs, offer.topk_ids, picked)
        self.t[picked] = 0
        for r, p in zip(picked.tolist(), prompts):
            self.row_prompts[r], self.emitted[r], self.token_logprobs[r] = p, [], []
        return self.observe()

    def observe(self) -> np.ndarray:
        hidden, topk = self._observe_offers(LOGPROB_FLOOR, scaled=False)
        progress = (self.t / self.max_new_tokens)[:, None]
        return np.concatenate([hidden, topk, progress], axis=1).astype(np.float32)

    def action_masks(self) -> np.ndarray:
        """(n, k) bool: top-k slots a policy may pick (a real token; no EOS before min_new_tokens)."""
        valid = np.isfinite(self.topk_logprobs)
        if self.min_new_tokens:
            early = (self.t < self.min_new_tokens)[:, None] & np.isin(self.topk_ids, self._eos)
            blocked = valid & ~early
            # Never leave a row without a legal action (k=1 with EOS on top): fall back to finiteness.
            valid = np.where(blocked.any(axis=1, keepdims=True), blocked, valid)
        return valid

    def _config_error(self, message: str) -> Exception:
        return TextEnvConfigError(message)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None):
        """Emit one token per row. Returns obs, rewards, terminated, truncated, infos (no reset).
        Rows outside ``active`` (bool mask; default all) neither end nor are scored: a caller that
        resets them right after (Gymnasium's NEXT_STEP autoreset) steps the others meanwhile."""
        chosen, replaced, tokens, logps = self._pick(actions)
        self.t += 1
        terminated = np.isin(tokens, self._eos)
        truncated = (self.t >= self.max_new_tokens) & ~terminated
        if active is not None:
            terminated, truncated = terminated & active, truncated & active
        for i in range(self.n):
            self.token_logprobs[i].append(float(logps[i]))
            if not terminated[i]:
                self.emitted[i].append(int(tokens[i]))
        # The forward pass also yields the final observation of truncated rows (SB3 bootstraps from
        # it); it is only skipped when every row just ended with EOS.
        if not terminated.all():
            offer = self.stepper.step(tokens)
            self._set_offers(offer.hidden, offer.topk_logprobs, offer.topk_ids)
        rewards = np.zeros(self.n, np.float32)
        infos = self._action_infos(chosen, replaced)
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            tok = self.stepper.tokenizer
            texts = [tok.decode(self.emitted[i], skip_special_tokens=True) for i in done]
            prompts = [self.row_prompts[i] for i in done]
            result = self.reward(
                texts,
                prompts=prompts,
                progress=self.progress,
                token_logprobs=[list(self.token_logprobs[i]) for i in done],
            )
            rewards[done] = result.total.astype(np.float32)
            for j, row in enumerate(done):
                infos[row].update(
                    text=texts[j],
                    prompt=prompts[j],
                    rewards=result.per_sample(j),
                    n_tokens=int(self.t[row]),
                    ended_by="eos" if terminated[row] else "length",
                )
        return self.observe(), rewards, terminated, truncated, infos


# ---------------------------------------------------------------------------------------- VecEnv


class TextTokensVecEnv(CoreVecEnv):
    """SB3 ``VecEnv`` writing ``n_envs`` texts at once, one LM forward pass per step.

    Auto-reset follows SB3's contract: a row that ends returns ``done=True``, the final observation
    in ``info["terminal_observation"]``, ``info["TimeLimit.truncated"]`` for the length cap, and
    already the first observation of its next episode. That row alone is restarted (its new prompt
    encoded and spliced into the shared KV cache); when every row ends together the batch restarts
    in one prefill. ``seed(s)`` (or ``seed=`` here) fixes the prompt draws.
    """

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.core.step(self._actions)
        done = terminated | truncated
        if done.any():
            rows = np.flatnonzero(done)
            for i in rows:
                infos[i]["terminal_observation"] = obs[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
            obs = self.core.reset(self._rng, rows)
            masks = self.core.action_masks()  # masks of the returned observations
            for i in rows:
                infos[i]["action_mask"] = masks[i]
        return obs, rewards, done, infos


# ------------------------------------------------------------------------------------ single env


class TextTokensEnv(CoreEnv):
    """Steer a frozen causal LM token by token toward a reward recipe.

    ## Description
    Each episode writes one continuation of a prompt drawn from ``prompts``. At every step the LM
    offers its ``top_k`` most likely next tokens; the agent picks one. The finished text is scored
    by a reward set (novelty, coherence, surprise, ... terms) once, at its end.

    ## Action Space
    ``Discrete(top_k)``: the index of the offered token to emit (0 = most likely). ``action_masks()``
    marks slots that are not allowed (fewer than ``top_k`` allowed tokens; EOS before
    ``min_new_tokens``); the mask of the current observation is also in ``info["action_mask"]``
    (after ``reset`` and every ``step``). A masked or out-of-range action emits the most likely
    allowed token and is never silent: ``info["executed_action"]`` is the slot actually used and
    ``info["action_replaced"]`` flags the swap; with ``strict_actions=True`` it raises
    :class:`~rlcreate.envs.core_vec_env.InvalidActionError`.

    ## Observation Space
    ``Box(float32, (hidden_size + top_k + 1,))``: the LM's last-layer hidden state at the last
    position (after its final norm) clipped to ``[-hidden_clip, hidden_clip]``; the top-k
    log-probabilities clipped to ``[-30, 0]``; progress ``t / max_new_tokens`` in ``[0, 1]``.

    ## Rewards
    0 on every step but the last; on the last, the reward set's weighted total for the text.
    ``info["rewards"]`` holds every term (name -> value), ``info["text"]`` the text (special
    tokens removed), ``info["prompt"]`` the raw prompt, ``info["n_tokens"]`` and ``info["ended_by"]``.
    Reward modules receive ``prompts=`` (the raw prompts) and ``token_logprobs=`` (the LM's log-prob
    of each emitted token) as context; the reward set gets ``progress=`` (set by the trainer through
    ``set_progress``) for its weight schedules.

    ## Starting State
    A prompt drawn uniformly from ``prompts`` with ``self.np_random``, formatted with the chat
    template for instruct models (after ``system`` if given).

    ## Episode End
    Terminated when the emitted token is EOS; truncated (never terminated) after ``max_new_tokens``.

    ## Arguments
    ``lm`` (model id/path, a ``(model, tokenizer)`` pair or an :class:`LMStepper`; default the
    offline SmolLM2-135M-Instruct), ``reward`` (required), ``prompts`` (default: the shipped
    training prompts), ``top_k=16``, ``max_new_tokens=32``, ``min_new_tokens=0``, ``system=None``,
    ``hidden_clip=10.0``, ``max_prompt_tokens=512``, ``strict_actions=False`` (True: an action
    outside the mask is an error).

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        return obs, {**info, "prompt": self.core.row_prompts[0], "action_mask": self.action_masks()}

    def action_masks(self) -> np.ndarray:
        return self.core.action_masks()[0]

    def render(self):
        if self.render_mode == "ansi":
            text = self.core.stepper.tokenizer.decode(self.core.emitted[0], skip_special_tokens=True)
            return f"{self.core.row_prompts[0]}\n-> {text}"
        return None
