"""The reward-module contract.

A reward module is a *named callable* ``reward(samples, **context) -> list[float | None]``: a batch of
artifacts in (levels, texts, ...), one value per sample out, ``None`` meaning "not applicable to this
sample". This is exactly the shape of a TRL ``reward_funcs`` entry, so every rlcreate reward also
drops into ``trl.GRPOTrainer`` (see :mod:`rlcreate.rewards.trl_adapter`).

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

from rlcreate.errors import UserError

import math
from typing import Any, Sequence

__all__ = ["RewardModule", "RewardValueError", "check_values", "NONFINITE_POLICIES"]

NONFINITE_POLICIES = ("raise", "clip", "zero")


class RewardValueError(UserError):
    """A reward module returned the wrong number of values or a non-finite value."""


class RewardModule:
    """Base class for reward modules. Subclasses implement :meth:`score`.

    Subclasses must document, in their docstring: what they measure, their range, and how they can
    be gamed. ``name`` defaults to the registry name or the class name in snake case.
    """

    name: str = ""

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name
        if not self.name:
            self.name = _snake(type(self).__name__)

    # TRL reads ``__name__`` for its per-reward log keys; keep it equal to ``name``.
    @property
    def __name__(self) -> str:  # type: ignore[override]
        return self.name

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement score(samples, **context)")

    def __call__(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        return self.score(samples, **context)

    def reset(self) -> None:
        """Forget any state (archives, running statistics)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_values(name: str, values: Any, n: int, nonfinite: str = "raise",
                 clip_to: tuple[float, float] = (-1e6, 1e6)) -> list[float | None]:
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
            "(one per sample, None where not applicable)") from None
    if len(values) != n:
        raise RewardValueError(
            f"reward {name!r} returned {len(values)} values for a batch of {n} samples; "
            "return exactly one value per sample (None where not applicable)")
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise RewardValueError(
                f"reward {name!r} returned {v!r} for sample {i}; expected a float or None") from None
        if not math.isfinite(v):
            if nonfinite == "raise":
                raise RewardValueError(
                    f"reward {name!r} returned non-finite value {v} for sample {i}; fix the module or "
                    "set the reward set's nonfinite policy to 'clip' or 'zero'")
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
