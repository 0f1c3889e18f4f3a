"""The text domain's environment: ``rlcreate/TextTokens-v0`` on the generic token-stream core
(:mod:`rlcreate.envs.text_tokens`, whose :class:`~rlcreate.envs.text_tokens.TextTokensEnv` carries
the card), with the offline SmolLM2 default, the shipped prompts and the domain's default reward."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlcreate.envs.text_tokens import TextEnvConfigError, TextTokensCore, TextTokensEnv, TextTokensVecEnv
from rlcreate.rewards.compose import RewardSet
from rlcreate.text.loading import DEFAULT_LM, LoadedLM, load_causal_lm
from rlcreate.text.stepping import LMStepper

__all__ = ["make_text_tokens_env", "make_text_tokens_vec_env", "default_text_reward"]


def default_text_reward() -> RewardSet:
    """New (MiniLM novelty) yet fluent, on-topic and not copied: the domain's default terms."""
    from rlcreate.rewards.compose import Term
    from rlcreate.rewards.registry import get_reward
    from rlcreate.text.domain import DEFAULT_TEXT_REWARDS

    return RewardSet(
        [Term(name, get_reward(spec["reward"]), spec["weight"]) for name, spec in DEFAULT_TEXT_REWARDS.items()]
    )


def _build_core(
    lm: Any,
    reward: Any,
    prompts: Sequence[str] | None,
    n: int,
    top_k: int,
    max_new_tokens: int,
    min_new_tokens: int,
    system: str | None,
    hidden_clip: float,
    max_prompt_tokens: int,
    strict_actions: bool = False,
) -> TextTokensCore:
    if isinstance(lm, LMStepper):
        stepper = lm
    else:
        if isinstance(lm, (str, bytes)) or hasattr(lm, "__fspath__"):
            lm = load_causal_lm(lm)
        if not (isinstance(lm, (tuple, LoadedLM)) and len(lm) == 2):
            raise TextEnvConfigError(
                f"lm = {type(lm).__name__}: pass a model id or folder, a (model, tokenizer) pair or an LMStepper"
            )
        stepper = LMStepper(lm[0], lm[1], top_k=top_k, system=system, max_prompt_tokens=max_prompt_tokens)
    if prompts is None:
        from rlcreate.text.data import prompts as shipped_prompts

        prompts = shipped_prompts("train")
    if reward is None:
        reward = default_text_reward()
    return TextTokensCore(
        stepper,
        reward,
        prompts,
        n=n,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        hidden_clip=hidden_clip,
        strict_actions=strict_actions,
    )


def make_text_tokens_env(
    lm: Any = DEFAULT_LM,
    reward: Any = None,
    prompts: Sequence[str] | None = None,
    top_k: int = 16,
    max_new_tokens: int = 32,
    min_new_tokens: int = 0,
    system: str | None = None,
    hidden_clip: float = 10.0,
    max_prompt_tokens: int = 512,
    render_mode: str | None = None,
    strict_actions: bool = False,
) -> TextTokensEnv:
    """Entry point of ``rlcreate/TextTokens-v0``: the single-sequence Gymnasium environment."""
    core = _build_core(
        lm,
        reward,
        prompts,
        1,
        top_k,
        max_new_tokens,
        min_new_tokens,
        system,
        hidden_clip,
        max_prompt_tokens,
        strict_actions=strict_actions,
    )
    return TextTokensEnv(core, render_mode=render_mode)


def make_text_tokens_vec_env(
    n_envs: int = 32,
    lm: Any = DEFAULT_LM,
    reward: Any = None,
    prompts: Sequence[str] | None = None,
    top_k: int = 16,
    max_new_tokens: int = 32,
    min_new_tokens: int = 0,
    system: str | None = None,
    hidden_clip: float = 10.0,
    max_prompt_tokens: int = 512,
    seed: int | None = None,
    strict_actions: bool = False,
) -> TextTokensVecEnv:
    """The batched form for SB3: ``n_envs`` texts stepped in one forward pass per step."""
    core = _build_core(
        lm,
        reward,
        prompts,
        n_envs,
        top_k,
        max_new_tokens,
        min_new_tokens,
        system,
        hidden_clip,
        max_prompt_tokens,
        strict_actions=strict_actions,
    )
    return TextTokensVecEnv(core, seed=seed)
