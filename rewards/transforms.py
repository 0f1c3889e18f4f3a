"""Per-term reward transforms and weight schedules.

A transform maps one term's raw values (a float array, NaN where the module said ``None``) to the
values that enter the weighted sum. Transforms can hold state (running statistics) and save it.

- :class:`RunningNorm` — standardise with running mean/std (Welford), then clip to ``[-clip, clip]``.
- :class:`Clip` — clip to ``[low, high]``.
- :class:`SweetSpot` — the inverted U: 1 at ``target``, falling off with ``width``; rewards a level
  of a quantity (novelty high but not chaotic, surprise present but not gibberish) rather than
  "more is better", which is what makes maximising novelty or surprise safe to optimise.
- :class:`Chain` — apply several in order.

Specs as written in recipes::

    transform: normalize                         # RunningNorm()
    transform: {clip: [-1, 1]}
    transform: {sweet_spot: {target: 0.35, width: 0.1}}
    transform: [{sweet_spot: {target: 0.35, width: 0.1}}, {clip: [0, 1]}]

Weight schedules over training progress p in [0, 1]::

    weight: 0.5
    weight: {schedule: linear, start: 0.0, end: 1.0, begin: 0.0, until: 0.5}
    weight: {schedule: cosine, start: 1.0, end: 0.1}
    weight: {schedule: step, start: 0.0, end: 1.0, at: 0.3}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rlcreate.errors import UserError

__all__ = [
    "Transform",
    "RunningNorm",
    "Clip",
    "SweetSpot",
    "Chain",
    "make_transform",
    "Schedule",
    "make_weight",
    "RecipeValueError",
]


class RecipeValueError(UserError):
    """A reward spec value is invalid; the message names the field, the value and the fix."""


def _finite(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecipeValueError(f"{field} = {value!r} is not a finite number; write a number such as 1.0")
    return float(value)


class Transform:
    """Base class: subclasses map a float array (NaN = not applicable) to transformed values."""

    def __call__(self, values: np.ndarray) -> np.ndarray:
        raise TypeError(f"{type(self).__name__} must implement __call__(values) -> np.ndarray")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def reset(self) -> None:
        pass


class RunningNorm(Transform):
    """(x - running mean) / running std, clipped to [-clip, clip]; statistics update on every call
    (NaNs are ignored). Range: [-clip, clip]. Makes terms of different scales comparable."""

    def __init__(self, clip: float = 5.0, eps: float = 1e-8, update: bool = True):
        self.clip, self.eps = _finite("normalize.clip", clip), _finite("normalize.eps", eps)
        if self.clip <= 0 or self.eps <= 0:
            raise RecipeValueError(f"normalize = {{clip: {clip}, eps: {eps}}}: clip and eps must be > 0")
        if not isinstance(update, bool):
            raise RecipeValueError(f"normalize.update = {update!r}: write true or false")
        self.update = update
        self.reset()

    def reset(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def __call__(self, values: np.ndarray) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        ok = x[~np.isnan(x)]
        if self.update and ok.size:  # Chan et al. parallel update of mean/variance
            n, mean, m2 = ok.size, float(ok.mean()), float(((ok - ok.mean()) ** 2).sum())
            total = self.count + n
            delta = mean - self.mean
            self.mean += delta * n / total
            self.m2 += m2 + delta**2 * self.count * n / total
            self.count = total
        std = math.sqrt(self.m2 / self.count) if self.count > 1 else 1.0
        return np.clip((x - self.mean) / (std + self.eps), -self.clip, self.clip)

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict) -> None:
        # checked like every number read from a state file: a negative m2 would fail in sqrt mid-run,
        # a NaN mean would silently zero the term
        from rlcreate.safe_io import state_float, state_int

        self.count = state_int(state["count"], "normalize state count")
        self.mean = state_float(state["mean"], "normalize state mean")
        self.m2 = state_float(state["m2"], "normalize state m2", low=0.0)


class Clip(Transform):
    """Clip to [low, high]."""

    def __init__(self, low: float, high: float):
        self.low, self.high = _finite("clip low", low), _finite("clip high", high)
        if self.low > self.high:
            raise RecipeValueError(f"clip = [{low}, {high}]: low must not exceed high; swap them")

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(values, dtype=np.float64), self.low, self.high)


class SweetSpot(Transform):
    """Inverted U around ``target``: ``exp(-0.5 * ((x - target) / width) ** 2)`` (``shape="gaussian"``)
    or ``max(0, 1 - |x - target| / width)`` (``shape="triangle"``). Range [0, 1], 1 at the target.
    Use it for quantities where more is not better: novelty, surprise, difficulty."""

    def __init__(self, target: float, width: float, shape: str = "gaussian"):
        self.target = _finite("sweet_spot target", target)
        self.width = _finite("sweet_spot width", width)
        if self.width <= 0:
            raise RecipeValueError(
                f"sweet_spot width = {width!r} must be > 0 (how far from the target "
                "the reward halves, roughly); try 0.1"
            )
        if shape not in ("gaussian", "triangle"):
            raise RecipeValueError(f"sweet_spot shape = {shape!r}; use 'gaussian' or 'triangle'")
        self.shape = shape

    def __call__(self, values: np.ndarray) -> np.ndarray:
        d = (np.asarray(values, dtype=np.float64) - self.target) / self.width
        if self.shape == "gaussian":
            return np.exp(-0.5 * d * d)
        return np.maximum(0.0, 1.0 - np.abs(d))


class Chain(Transform):
    def __init__(self, transforms: list[Transform]):
        self.transforms = list(transforms)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            values = t(values)
        return values

    def state_dict(self) -> dict:
        return {str(i): t.state_dict() for i, t in enumerate(self.transforms)}

    def load_state_dict(self, state: dict) -> None:
        for i, t in enumerate(self.transforms):
            t.load_state_dict(state.get(str(i), {}))

    def reset(self) -> None:
        for t in self.transforms:
            t.reset()


_TRANSFORMS = {"normalize": RunningNorm, "clip": Clip, "sweet_spot": SweetSpot}


def make_transform(spec: Any, field: str = "transform") -> Transform | None:
    """Build a transform from a recipe spec (see module docstring); ``None`` -> no transform."""
    if spec is None or isinstance(spec, Transform):
        return spec
    if isinstance(spec, list):
        return Chain([t for i, s in enumerate(spec) if (t := make_transform(s, f"{field}[{i}]")) is not None])
    if isinstance(spec, str):
        spec = {spec: {}}
    if not isinstance(spec, dict) or len(spec) != 1:
        raise RecipeValueError(
            f"{field} = {spec!r}: write one of {sorted(_TRANSFORMS)} "
            "(e.g. {sweet_spot: {target: 0.3, width: 0.1}}) or a list of them"
        )
    ((kind, args),) = spec.items()
    if kind not in _TRANSFORMS:
        from rlcreate.validate import suggest

        raise RecipeValueError(
            f"{field}: unknown transform {kind!r}; known: {sorted(_TRANSFORMS)}.{suggest(kind, _TRANSFORMS)}"
        )
    cls = _TRANSFORMS[kind]
    try:
        if isinstance(args, (list, tuple)):
            return cls(*args)
        if args is True or args is None:
            return cls()
        return cls(**args)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, RecipeValueError):
            raise RecipeValueError(f"{field}: {exc}") from None
        raise RecipeValueError(f"{field}.{kind} = {args!r}: {exc}") from None


class Schedule:
    """A weight as a function of training progress ``p`` in [0, 1].

    ``kind``: ``constant`` (``start``), ``linear`` (start -> end between ``begin`` and ``until``),
    ``cosine`` (cosine ramp start -> end over [begin, until]), ``step`` (start before ``at``, end after).
    """

    KINDS = ("constant", "linear", "cosine", "step")

    def __init__(
        self,
        kind: str = "constant",
        start: float = 1.0,
        end: float | None = None,
        begin: float = 0.0,
        until: float = 1.0,
        at: float = 0.5,
        field: str = "weight",
    ):
        if kind not in self.KINDS:
            raise RecipeValueError(f"{field}.schedule = {kind!r}; use one of {self.KINDS}")
        self.kind = kind
        self.start = _finite(f"{field}.start", start)
        self.end = self.start if end is None else _finite(f"{field}.end", end)
        self.begin, self.until = _finite(f"{field}.begin", begin), _finite(f"{field}.until", until)
        self.at = _finite(f"{field}.at", at)
        if self.until <= self.begin and kind in ("linear", "cosine"):
            raise RecipeValueError(f"{field}: until ({until}) must be greater than begin ({begin})")

    def __call__(self, progress: float) -> float:
        p = min(max(float(progress), 0.0), 1.0)
        if self.kind == "constant":
            return self.start
        if self.kind == "step":
            return self.start if p < self.at else self.end
        u = min(max((p - self.begin) / (self.until - self.begin), 0.0), 1.0)
        if self.kind == "cosine":
            u = 0.5 - 0.5 * math.cos(math.pi * u)
        return self.start + (self.end - self.start) * u

    def __repr__(self) -> str:
        return f"Schedule({self.kind!r}, start={self.start}, end={self.end})"


def make_weight(spec: Any, field: str = "weight") -> Schedule:
    """A finite number or a schedule dict (see module docstring) -> :class:`Schedule`."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, dict):
        args = dict(spec)
        kind = args.pop("schedule", "linear")
        known = {"start", "end", "begin", "until", "at"}
        unknown = set(args) - known
        if unknown:
            raise RecipeValueError(f"{field}: unknown schedule keys {sorted(unknown)}; known: {sorted(known)}")
        if "start" not in spec:  # {} or a schedule without its start value is a typo, not weight 1
            raise RecipeValueError(
                f"{field} = {spec!r}: a schedule needs at least start, e.g. "
                "{schedule: linear, start: 0.0, end: 1.0}; or write a number"
            )
        return Schedule(kind, field=field, **args)
    return Schedule("constant", start=_finite(field, spec), field=field)
