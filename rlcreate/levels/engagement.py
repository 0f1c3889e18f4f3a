"""Engagement from what the player must do, calibrated on human levels, against a requested tension curve.

Per 16-column segment, :func:`rlcreate.levels.objectives.segment_path_difficulty` reads the fast
solver's reachable states: forced jumps and their length, enemies on Mario's path, places where the
solver loses him. :func:`tension` maps that onto the human scale: the share of human *training*
segments (16-column windows of the training blocks) that are easier, so 0.5 is a median human
segment, 0.9 harder than nine in ten. The reward ``tension_curve`` asks for a curve of that
tension along the level ("rising", "flat", "peak" or one value per segment).

The judge is play by another player and other code: :mod:`rlcreate.levels.play_trace` (the A*
agent's ticks and take-offs per segment).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.registry import register

__all__ = ["human_segment_difficulty", "tension", "curve_values", "TensionCurve", "CURVES"]

SEGMENT = 16
#: named tension curves (human percentile per position p in [0, 1])
CURVES = {
    "rising": lambda p: 0.15 + 0.7 * p,
    "flat": lambda p: np.full_like(p, 0.5),
    "peak": lambda p: 0.2 + 0.6 * np.sin(np.pi * p),
}


@functools.lru_cache(maxsize=1)
def human_segment_difficulty() -> np.ndarray:
    """Sorted path difficulty of the human training segments (16-column windows, stride 4)."""
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.objectives import segment_path_difficulty

    w = training_windows(SEGMENT, stride=4)
    return np.sort(segment_path_difficulty(np.asarray(w, np.int8))[:, 0])


def tension(grids: np.ndarray) -> np.ndarray:
    """Per segment of a stack ``(n, 14, W)``: the share of human training segments with lower path
    difficulty (ties count half), shape ``(n, W // 16)``, in [0, 1]."""
    from rlcreate.levels.objectives import segment_path_difficulty

    ref = human_segment_difficulty()
    d = segment_path_difficulty(grids)
    lo = np.searchsorted(ref, d, side="left")
    hi = np.searchsorted(ref, d, side="right")
    return (lo + hi) / (2.0 * len(ref))


def curve_values(curve: str | Sequence[float], k: int) -> np.ndarray:
    """The requested tension of ``k`` segments (a named curve sampled at segment centres, or the
    given values, the last repeated)."""
    if isinstance(curve, str):
        if curve not in CURVES:
            from rlcreate.errors import UserError

            raise UserError(
                f"tension_curve: curve = {curve!r}: use one of {sorted(CURVES)} or a list of values in [0, 1]"
            )
        return CURVES[curve]((np.arange(k) + 0.5) / k)
    v = np.asarray(curve, np.float64)
    return np.concatenate([v, np.full(max(k - len(v), 0), v[-1])])[:k]


@register("tension_curve")
class TensionCurve(RewardModule):
    """Engagement as a tension curve a designer sets: ``1 - mean |tension - curve| / tolerance``
    (floored at 0), tension per 16-column segment on the human scale (:func:`tension`: the share
    of human segments the segment is harder than, by the fast solver's path). ``curve``: "rising"
    (default: from the 15th to the 85th human percentile), "flat" (the median throughout), "peak",
    or values per segment. Range [0, 1]. Gamed by: the solver's path ignores what makes a jump
    *feel* hard (timing, enemies moving), so the curve can be met by pits and enemies placed to
    move the number; the A* play judge (:mod:`rlcreate.levels.play_trace`) checks it by play."""

    artifact = "level"

    def __init__(self, curve: str | Sequence[float] = "rising", tolerance: float = 0.5, name: str | None = None):
        super().__init__(name)
        self.curve = curve if isinstance(curve, str) else [float(v) for v in curve]
        curve_values(self.curve, 1)  # validate now, not at the first reward call
        self.tolerance = float(tolerance)

    def score(self, samples: Sequence[np.ndarray], **context: Any):
        from rlcreate.levels.objectives import _per_sample

        def fn(g):
            t = tension(g)
            return np.maximum(0.0, 1 - np.abs(t - curve_values(self.curve, t.shape[1])).mean(axis=1) / self.tolerance)

        return _per_sample(samples, fn)
