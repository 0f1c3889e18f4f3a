"""Hand rlcreate rewards to TRL's ``GRPOTrainer`` / ``RLOOTrainer`` as ``reward_funcs``.

::

    from rlcreate.rewards.trl_adapter import trl_reward_funcs, trl_reward_weights
    config = GRPOConfig(..., reward_weights=trl_reward_weights(reward_set))
    trainer = GRPOTrainer(model, reward_funcs=trl_reward_funcs(reward_set), args=config, ...)

A :class:`~rlcreate.rewards.compose.RewardSet` becomes one TRL reward function per term, named by
the term, so TRL logs ``rewards/<term>/mean`` and ``rewards/<term>/std`` per term and sums them
with ``reward_weights`` (TRL turns ``None`` into NaN and ``nansum``s, so a ``None`` counts 0 — the
same rule as ``RewardSet``). A single reward module or callable becomes one function.

What TRL 1.16 passes (``GRPOTrainer._calculate_rewards``): ``prompts``, ``completions`` and
``completion_ids`` as keywords, every other dataset column as a keyword list, plus
``trainer_state``, ``log_extra`` and ``log_metric``. Conversational completions are lists of
``{"role", "content"}`` messages; they reach the reward module as their text. The module receives
``samples`` = completion texts and, as context, ``prompts`` (texts), ``raw_prompts``,
``raw_completions``, ``completion_ids``, the other columns and the TRL extras.

Weight schedules: TRL's ``reward_weights`` are fixed numbers. A term whose weight is a schedule
gets weight 1.0 there and its function returns ``weight(progress) * value``, with progress =
``global_step / max_steps`` — so that term's ``rewards/<term>/mean`` log is the weighted value.

This module imports no trl (nor gymnasium / stable-baselines3): it only builds plain callables.
"""

from __future__ import annotations

from typing import Any

from rlcreate.rewards.compose import RewardSet, as_reward_set

__all__ = ["TRLRewardFunc", "trl_reward_funcs", "trl_reward_weights", "message_text", "training_progress"]


def message_text(item: Any) -> str:
    """A plain string, or conversational messages (``[{"role", "content"}, ...]``) -> their text.

    Message contents may be strings or lists of content blocks (``{"type": "text", "text": ...}``);
    non-text blocks (images) are skipped. Several messages are joined by newlines.
    """
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        item = [item]
    if isinstance(item, (list, tuple)):
        parts = []
        for msg in item:
            content = msg.get("content", "") if isinstance(msg, dict) else msg
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, (list, tuple)):
                parts.extend(b.get("text", "") for b in content
                             if isinstance(b, dict) and b.get("type", "text") == "text")
        return "\n".join(parts)
    raise TypeError(f"expected a string or a list of {{'role', 'content'}} messages, got {type(item).__name__}")


def training_progress(trainer_state: Any) -> float:
    """``global_step / max_steps`` of a transformers ``TrainerState`` in [0, 1]; 0.0 without one."""
    step = getattr(trainer_state, "global_step", None)
    total = getattr(trainer_state, "max_steps", None)
    if not step or not total:
        return 0.0
    return min(max(step / total, 0.0), 1.0)


class TRLRewardFunc:
    """One term of a reward set, called the way TRL calls a reward function.

    A small callable class rather than a closure, so trainers can pickle it; ``__name__`` is the
    term name (TRL's log key).
    """

    def __init__(self, reward_set: RewardSet, term_name: str):
        self.reward_set = reward_set
        self.term_name = term_name
        self.__name__ = term_name
        matches = [t for t in reward_set.terms if t.name == term_name]
        if not matches:
            raise KeyError(f"no term {term_name!r} in this reward set; terms: {reward_set.names}")
        self.scheduled = matches[0].weight.kind != "constant"
        self._weight = matches[0].weight

    def __call__(self, prompts: Any = None, completions: Any = None, completion_ids: Any = None,
                 **kwargs: Any) -> list[float | None]:
        if completions is None:
            raise TypeError(f"reward {self.term_name!r} was called without completions=; TRL passes "
                            "prompts=, completions=, completion_ids= as keywords")
        samples = [message_text(c) for c in completions]
        progress = training_progress(kwargs.get("trainer_state"))
        context = dict(kwargs)
        context.update(
            prompts=None if prompts is None else [message_text(p) for p in prompts],
            raw_prompts=prompts, raw_completions=completions, completion_ids=completion_ids)
        values = self.reward_set.term_values(self.term_name, samples, progress=progress, **context)
        if self.scheduled:
            w = self._weight(progress)
            values = [None if v is None else w * v for v in values]
        return values

    def __repr__(self) -> str:
        return f"TRLRewardFunc({self.term_name!r})"


def trl_reward_funcs(rewards: Any) -> list[TRLRewardFunc]:
    """A RewardSet, reward module or named callable -> TRL ``reward_funcs`` (one per term)."""
    rs = as_reward_set(rewards)
    return [TRLRewardFunc(rs, name) for name in rs.names]


def trl_reward_weights(rewards: Any) -> list[float]:
    """The matching ``GRPOConfig(reward_weights=...)``: each term's constant weight; 1.0 for a
    scheduled term (its function applies the schedule itself)."""
    rs = as_reward_set(rewards)
    return [1.0 if t.weight.kind != "constant" else float(t.weight(0.0)) for t in rs.terms]
