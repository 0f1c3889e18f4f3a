"""The reward-module contract.

A reward module is a *named callable* ``reward(samples, **context) -> list[float | None]``: a batch of
artifacts in (levels, texts, ...), one value per sample out, ``None`` meaning "not applicable to this
sample". This is exactly the shape of a TRL ``reward_funcs`` entry, so every rlcreate reward also
drops into ``trl.GRPOTrainer`` (see :mod:`rlcreate.rewards.trl_adapter`).

TRL calls reward functions with keywords only (``f(prompts=..., completions=...,
completion_ids=..., **dataset_columns)``; completions may be conversational ``{"role", "content"}``
lists). :meth:`RewardModule.__call__` accepts that call too (:func:`from_trl_call`), so a module is
a valid ``GRPOTrainer(reward_funcs=[module])`` entry as it is. The object TRL calls is the object
you made: a stateful module shared by two trainers (or a trainer and an env) shares its state.

A :class:`~rlcreate.rewards.compose.RewardSet` adds ``progress`` (training progress in [0, 1]) to
every module's context; modules that need no schedule ignore it.

Group rewards (:mod:`rlcreate.rewards.group`) score the samples of one prompt together; the group
comes in the context as ``group_ids`` (derived from identical ``prompts`` when absent, see
:func:`groups_of`). A per-sample reward ignores it.

Stateful modules (a novelty archive) implement ``reset()``, ``state_dict()`` and
``load_state_dict()``; the defaults here are stateless no-ops.

Writing one::

    from rlcreate.rewards import RewardModule, register

    @register("length")
    class Length(RewardModule):
        '''Characters per text / 100, clipped to [0, 1]. Gamed by padding.'''
        def score(self, samples, **context):
            return [min(len(s) / 100, 1.0) for s in samples]

or register a plain function with ``@register`` (its ``__name__`` is its name).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rlcreate.errors import UserError

__all__ = [
    "RewardModule",
    "RewardValueError",
    "check_values",
    "NONFINITE_POLICIES",
    "message_text",
    "prompt_text",
    "from_trl_call",
    "group_ids_from",
    "groups_of",
]

NONFINITE_POLICIES = ("raise", "clip", "zero")


class RewardValueError(UserError):
    """A reward module returned the wrong number of values or a non-finite value."""


class RewardModule:
    """Base class for reward modules. Subclasses implement :meth:`score`.

    Subclasses must document, in their docstring: what they measure, their range, and how they can
    be gamed. ``name`` defaults to the registry name or the class name in snake case.
    """

    name: str = ""
    #: the artifacts it scores ("level", "text"; None = any): a recipe pairing it with another
    #: domain's environment fails at `rlcreate check`
    artifact: str | None = None

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name
        if not self.name:
            self.name = _snake(str(type(self).__name__))

    # TRL reads ``__name__`` for its per-reward log keys; keep it equal to ``name``.
    @property
    def __name__(self) -> str:
        return self.name

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement score(samples, **context)")

    def __call__(self, samples: Sequence[Any] | None = None, **context: Any) -> list[float | None]:
        """``reward(samples, **context)``, or TRL's keyword call ``reward(prompts=..., completions=...,
        completion_ids=..., **columns)`` (see :func:`from_trl_call`): both score the same way."""
        if samples is None:
            samples, context = from_trl_call(self.name, context)
        return self.score(samples, **context)

    def reset(self) -> None:
        """Forget any state (archives, running statistics)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_values(
    name: str, values: Any, n: int, nonfinite: str = "raise", clip_to: tuple[float, float] = (-1e6, 1e6)
) -> list[float | None]:
    """Validate one module's output: length ``n``, floats or None, finite per ``nonfinite`` policy.

    ``nonfinite``: ``"raise"`` (default) raises naming the module and the sample index; ``"clip"``
    maps +-inf to the ends of ``clip_to`` and NaN to 0; ``"zero"`` maps every non-finite value to 0.
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite={nonfinite!r} is not a policy; use one of {NONFINITE_POLICIES}")
    try:
        values = list(values)
    except TypeError:
        raise RewardValueError(
            f"reward {name!r} returned {type(values).__name__}, expected a list of {n} floats "
            "(one per sample, None where not applicable)"
        ) from None
    if len(values) != n:
        raise RewardValueError(
            f"reward {name!r} returned {len(values)} values for a batch of {n} samples; "
            "return exactly one value per sample (None where not applicable)"
        )
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise RewardValueError(f"reward {name!r} returned {v!r} for sample {i}; expected a float or None") from None
        if not math.isfinite(v):
            if nonfinite == "raise":
                raise RewardValueError(
                    f"reward {name!r} returned non-finite value {v} for sample {i}; fix the module or "
                    "set the reward set's nonfinite policy to 'clip' or 'zero'"
                )
            if nonfinite == "zero" or math.isnan(v):
                v = 0.0
            else:
                v = clip_to[1] if v > 0 else clip_to[0]
        out.append(v)
    return out


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


# ------------------------------------------------------------------------------ TRL's keyword call


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
                parts.extend(
                    b.get("text", "") for b in content if isinstance(b, dict) and b.get("type", "text") == "text"
                )
        return "\n".join(parts)
    raise TypeError(f"expected a string or a list of {{'role', 'content'}} messages, got {type(item).__name__}")


def prompt_text(item: Any) -> str:
    """A prompt's text: a string as is; for conversational messages the last user turn (what the
    completion answers; a system message is not part of it)."""
    if isinstance(item, (list, tuple)) and item and all(isinstance(m, dict) for m in item):
        users = [m for m in item if m.get("role") == "user"]
        if users:
            return message_text(users[-1])
    return message_text(item)


def group_ids_from(prompts: Sequence[Any]) -> list[int]:
    """One group id per item: identical prompts (same text, or same messages) share an id, numbered
    in order of first appearance. This is how a GRPO batch's groups (``num_generations``
    completions of one prompt) are recovered from TRL's call, which passes no group index."""
    ids: dict[str, int] = {}
    return [ids.setdefault(repr(p), len(ids)) for p in prompts]


def from_trl_call(name: str, kwargs: dict) -> tuple[list[str], dict]:
    """TRL's keyword call -> ``(samples, context)`` for a reward module.

    TRL (``GRPOTrainer`` / ``RLOOTrainer``) calls ``f(prompts=, completions=, completion_ids=,
    **dataset_columns, trainer_state=, log_extra=, log_metric=)``. Samples are the completions'
    texts (conversational messages joined); the context holds ``prompts`` (texts; the last user turn
    of a conversation), ``group_ids`` (identical prompts = one group, :func:`group_ids_from`),
    ``raw_prompts``, ``raw_completions``, ``completion_ids`` and every other keyword unchanged.
    """
    context = dict(kwargs)
    if context.get("completions") is None:
        raise TypeError(
            f"reward {name!r} was called without samples: call it as reward(samples, **context), "
            "or as TRL does, with prompts=, completions=, completion_ids= as keywords"
        )
    completions = context.pop("completions")
    prompts = context.pop("prompts", None)
    samples = [message_text(c) for c in completions]
    context.setdefault("completion_ids", None)
    context.update(
        raw_completions=completions,
        raw_prompts=prompts,
        prompts=None if prompts is None else [prompt_text(p) for p in prompts],
    )
    if prompts is not None and "group_ids" not in context:
        context["group_ids"] = group_ids_from(prompts)
    return samples, context


def training_progress(trainer_state: Any) -> float:
    """``global_step / max_steps`` of a transformers ``TrainerState`` in [0, 1]; 0.0 without one."""
    step = getattr(trainer_state, "global_step", None)
    total = getattr(trainer_state, "max_steps", None)
    if not step or not total:
        return 0.0
    return min(max(step / total, 0.0), 1.0)


def groups_of(n: int, context: dict) -> list[list[int]]:
    """The groups of a batch of ``n`` samples, as lists of indices (for group rewards).

    From ``context["group_ids"]`` (one hashable id per sample) when given; else samples with the
    same ``context["prompts"]`` entry form a group; else the whole batch is one group.
    """
    ids = context.get("group_ids")
    if ids is None and context.get("prompts") is not None and not isinstance(context["prompts"], str):
        ids = group_ids_from(context["prompts"])
    if ids is None:
        return [list(range(n))]
    ids = list(ids)
    if len(ids) != n:
        raise RewardValueError(
            f"group_ids has {len(ids)} entries for a batch of {n} samples; pass one "
            "group id per sample (or prompts=, one per sample)"
        )
    groups: dict[Any, list[int]] = {}
    for i, g in enumerate(ids):
        groups.setdefault(g, []).append(i)
    return list(groups.values())
