"""Composition: a reward set of named, weighted, transformed terms.

``total = sum_i w_i(progress) * f_i(r_i)`` where ``r_i`` is term i's module output, ``f_i`` its
optional transform and ``w_i`` its weight (a number or a schedule over training progress). Every
term's value is returned next to the total, so environments put them in ``info["rewards"]`` and
trainers log them as ``rewards/<name>``. A module's ``None`` ("not applicable") contributes 0 to the
total and shows as NaN in the term array. Modules get the progress in their context too
(``progress=``), so a module that holds its own weighted terms (quality x diversity) schedules them
the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from rlcreate.rewards.base import NONFINITE_POLICIES, check_values, from_trl_call, training_progress
from rlcreate.rewards.transforms import RecipeValueError, Schedule, Transform, make_transform, make_weight

__all__ = ["Term", "RewardSet", "RewardResult", "as_reward_set"]


class Term:
    """One named term: a reward module, its weight (or schedule) and an optional transform."""

    def __init__(self, name: str, module: Callable, weight: Any = 1.0, transform: Any = None):
        if not isinstance(name, str) or not name:
            raise RecipeValueError(f"term name {name!r} must be a non-empty string")
        if not callable(module):
            raise RecipeValueError(f"term {name!r}: reward {module!r} is not callable")
        self.name = name
        self.module = module
        self.weight: Schedule = make_weight(weight, field=f"rewards.{name}.weight")
        self.transform: Transform | None = make_transform(transform, field=f"rewards.{name}.transform")

    def __repr__(self) -> str:
        return f"Term({self.name!r}, {getattr(self.module, '__name__', self.module)!r}, weight={self.weight})"


@dataclass
class RewardResult:
    total: np.ndarray  # (n,) float64
    terms: dict[str, np.ndarray]  # transformed values, NaN where not applicable
    raw: dict[str, list] = field(default_factory=dict)  # module outputs before transforms
    weights: dict[str, float] = field(default_factory=dict)

    def per_sample(self, i: int) -> dict[str, float]:
        """Term values of sample ``i`` (for ``info["rewards"]``)."""
        return {k: float(v[i]) for k, v in self.terms.items()}


class RewardSet:
    """Named, weighted reward terms evaluated together on a batch.

    ``nonfinite``: what to do when a module returns inf/NaN — ``"raise"`` (default; the error names
    the module and the sample index), ``"clip"`` or ``"zero"``.
    """

    def __init__(self, terms: Sequence[Term], nonfinite: str = "raise"):
        if nonfinite not in NONFINITE_POLICIES:
            raise RecipeValueError(f"nonfinite = {nonfinite!r}; use one of {NONFINITE_POLICIES}")
        names = [t.name for t in terms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise RecipeValueError(f"reward term names must be unique; repeated: {dupes}")
        if not terms:
            raise RecipeValueError("a reward set needs at least one term")
        self.terms = list(terms)
        self.nonfinite = nonfinite

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    def weights_at(self, progress: float = 0.0) -> dict[str, float]:
        return {t.name: t.weight(progress) for t in self.terms}

    def term_values(
        self, name: str, samples: Sequence[Any], progress: float = 0.0, **context: Any
    ) -> list[float | None]:
        """One term's transformed values (``None`` kept): what a TRL per-term reward function returns."""
        term = self._term(name)
        raw = check_values(
            term.name, term.module(samples, **{**context, "progress": progress}), len(samples), self.nonfinite
        )
        vals = self._transform(term, raw)
        return [None if r is None else float(v) for r, v in zip(raw, vals)]

    #: TRL's log key for a set passed whole as ``reward_funcs`` (``rewards/<__name__>/mean``)
    __name__ = "reward_set"

    @overload
    def __call__(self, samples: Sequence[Any], progress: float = 0.0, **context: Any) -> RewardResult: ...

    @overload
    def __call__(self, samples: None = None, progress: float = 0.0, **context: Any) -> list[float]: ...

    def __call__(
        self, samples: Sequence[Any] | None = None, progress: float = 0.0, **context: Any
    ) -> RewardResult | list[float]:
        """Score a batch: ``RewardResult`` (total and every term) for ``reward_set(samples, **context)``.

        Called the way TRL calls a reward function (``prompts=, completions=, ...`` keywords, no
        samples), it returns the list of totals TRL expects, with ``progress`` from
        ``trainer_state`` (weight schedules), and logs each term's mean through TRL's ``log_metric``
        as ``rewards/<term>/mean``, so a set passed whole still shows its terms. Use
        :func:`~rlcreate.rewards.trl_adapter.trl_reward_funcs` instead to give TRL one function per
        term (its own per-term mean/std logging and ``reward_weights``).
        """
        if samples is None:
            samples, context = from_trl_call(self.__name__, context)
            result = self._evaluate(samples, training_progress(context.get("trainer_state")), context)
            log_metric = context.get("log_metric")
            if callable(log_metric):
                for name, vals in result.terms.items():
                    if np.isfinite(vals).any():
                        log_metric(f"rewards/{name}/mean", float(np.nanmean(vals)))
            return [float(v) for v in result.total]
        return self._evaluate(samples, progress, context)

    def _evaluate(self, samples: Sequence[Any], progress: float, context: dict) -> RewardResult:
        n = len(samples)
        total = np.zeros(n)
        terms, raws, weights = {}, {}, {}
        context = {**context, "progress": progress}  # modules with their own schedules read it
        for term in self.terms:
            raw = check_values(term.name, term.module(samples, **context), n, self.nonfinite)
            vals = self._transform(term, raw)
            w = term.weight(progress)
            total += w * np.nan_to_num(vals, nan=0.0)
            terms[term.name], raws[term.name], weights[term.name] = vals, raw, w
        return RewardResult(total, terms, raws, weights)

    def _transform(self, term: Term, raw: list) -> np.ndarray:
        x = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
        return term.transform(x) if term.transform is not None else x

    def _term(self, name: str) -> Term:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(f"no term {name!r} in this reward set; terms: {self.names}")

    # state: modules (archives) and transforms (running statistics) are saved with checkpoints
    def reset(self) -> None:
        for t in self.terms:
            if hasattr(t.module, "reset"):
                t.module.reset()
            if t.transform is not None:
                t.transform.reset()

    def state_dict(self) -> dict:
        return {
            t.name: {
                "module": t.module.state_dict() if hasattr(t.module, "state_dict") else {},
                "transform": t.transform.state_dict() if t.transform is not None else {},
            }
            for t in self.terms
        }

    def load_state_dict(self, state: dict) -> None:
        for t in self.terms:
            s = state.get(t.name, {})
            if hasattr(t.module, "load_state_dict"):
                t.module.load_state_dict(s.get("module", {}))
            if t.transform is not None:
                t.transform.load_state_dict(s.get("transform", {}))

    def __repr__(self) -> str:
        return f"RewardSet({self.terms!r})"


def as_reward_set(x: Any) -> RewardSet:
    """A RewardSet, a reward module or any named callable -> a RewardSet (one term, weight 1)."""
    if isinstance(x, RewardSet):
        return x
    if callable(x):
        name = getattr(x, "name", None) or getattr(x, "__name__", None) or type(x).__name__
        return RewardSet([Term(name, x)])
    raise TypeError(f"expected a RewardSet, a reward module or a callable, got {type(x).__name__}")
