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
``samples`` = completion texts and, as context, ``prompts`` (texts; the last user turn of a
conversation), ``group_ids`` (identical prompts = one GRPO group, for group rewards such as
:mod:`rlcreate.rewards.group`), ``raw_prompts``, ``raw_completions``, ``completion_ids``, the other
columns and the TRL extras (:func:`rlcreate.rewards.base.from_trl_call`).

Passing rlcreate objects to TRL directly also works, without this module: a
:class:`~rlcreate.rewards.base.RewardModule` (``get_reward("text_novelty")``), a function decorated
with ``@register`` and a whole ``RewardSet`` accept TRL's keyword call. A set passed whole is ONE
TRL reward (its weighted total, logged as ``rewards/reward_set/mean``) and logs each term's mean
through TRL's ``log_metric`` as ``rewards/<term>/mean``; this module's per-term functions give TRL
each term separately instead (per-term mean *and* std, ``reward_weights`` in the config).

Shared state: the object you pass is the object TRL calls. A stateful module (the novelty archive
of ``text_novelty``) given to two trainers, or to a trainer and an environment, keeps ONE archive
fed by both; build one module per trainer (``get_reward(...)`` twice) for separate archives.

Several processes (``torchrun`` / ``accelerate``): each rank calls the reward on its own slice of
the batch, so a group reward sees whole GRPO groups only when ``per_device_train_batch_size`` is a
multiple of ``num_generations`` (``rlcreate finetune`` sets it so); a stateful module keeps one
archive per rank.

Weight schedules: TRL's ``reward_weights`` are fixed numbers. A term whose weight is a schedule
gets weight 1.0 there and its function returns ``weight(progress) * value``, with progress =
``global_step / max_steps`` — so that term's ``rewards/<term>/mean`` log is the weighted value.

This module imports no trl (nor gymnasium / stable-baselines3): it only builds plain callables.
"""

from __future__ import annotations

from typing import Any

from rlcreate.rewards.base import from_trl_call, message_text, training_progress
from rlcreate.rewards.compose import RewardSet, as_reward_set

__all__ = ["TRLRewardFunc", "trl_reward_funcs", "trl_reward_weights", "message_text", "training_progress"]


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

    def __call__(
        self, prompts: Any = None, completions: Any = None, completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        if completions is None:
            raise TypeError(
                f"reward {self.term_name!r} was called without completions=; TRL passes "
                "prompts=, completions=, completion_ids= as keywords"
            )
        samples, context = from_trl_call(
            self.term_name, dict(kwargs, prompts=prompts, completions=completions, completion_ids=completion_ids)
        )
        progress = training_progress(kwargs.get("trainer_state"))
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
