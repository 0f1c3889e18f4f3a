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
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.registry import register

__all__ = [
    "human_segment_difficulty",
    "tension",
    "curve_values",
    "TensionCurve",
    "CURVES",
    "SCALES",
    "segment_play_features",
    "play_effort_model",
    "predicted_effort",
]

SEGMENT = 16
#: how a segment's tension is read: "solver" (fast-solver path difficulty) or "play" (the A*
#: agent's effort predicted from the segment's tiles and path, fitted on human training windows)
SCALES = ("solver", "play")
#: the A* agent's traced plays of human training windows (``scripts/calibrate_engagement.py``)
CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "engagement_calibration.json"
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


def segment_play_features(grids: np.ndarray) -> np.ndarray:
    """Per 16-column segment of a stack ``(n, 14, W)``, shape ``(n, W // 16, 21)``: the segment's
    tile features (:func:`rlcreate.levels.features.segment_features`: enemies, gap columns, blocks,
    coins, pipes, cannons, height, height variation, tile difficulty) and the fast solver's path
    (forced-air share, enemies-on-path share, lost share, longest forced jump / 9) of the segment,
    the one before and the one after (zeros beyond the level): a take-off for a pit at a segment's
    start happens in the segment before it."""
    from rlcreate.levels.features import segment_features
    from rlcreate.levels.objectives import path_descriptors

    g = np.ascontiguousarray(np.asarray(grids, np.int8))
    n, h, w = g.shape
    k = w // SEGMENT
    d = path_descriptors(g)
    air = d["air"][:, : k * SEGMENT].reshape(n, k, SEGMENT)
    longest = np.zeros((n, k))
    run = np.zeros((n, k))
    for c in range(SEGMENT):
        run = np.where(air[:, :, c], run + 1, 0)
        longest = np.maximum(longest, run)
    share = lambda x: x[:, : k * SEGMENT].reshape(n, k, SEGMENT).mean(axis=2)  # noqa: E731
    path = np.stack([share(d["air"]), share(d["enemy_on_path"]), share(d["lost"]), longest / 9.0], axis=2)
    prev = np.concatenate([np.zeros((n, 1, 4)), path[:, :-1]], axis=1)
    nxt = np.concatenate([path[:, 1:], np.zeros((n, 1, 4))], axis=1)
    segs = g[:, :, : k * SEGMENT].reshape(n, h, k, SEGMENT).transpose(0, 2, 1, 3).reshape(n * k, h, SEGMENT)
    tiles = segment_features(segs).reshape(n, k, -1)
    return np.concatenate([tiles, path, prev, nxt], axis=2)


#: the effort model's settings (chosen by cross-validation over calibration windows, see BENCHMARKS.md)
EFFORT_MODEL_PARAMS = {
    "n_estimators": 150,
    "max_depth": 2,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "loss": "huber",
    "random_state": 0,
}


@functools.lru_cache(maxsize=1)
def play_effort_model():
    """``(model, reference)``: a gradient-boosted regressor (scikit-learn) from
    :func:`segment_play_features` to the A* agent's effort per segment
    (:func:`rlcreate.levels.play_trace.segment_effort`: ticks / 20 + take-offs, +10 where a lost
    play ended), fitted on the traced plays of human *training* windows in :data:`CALIBRATION`
    (segments after a loss are unobserved and left out), and the sorted predictions for all those
    windows' segments: the human scale."""
    from sklearn.ensemble import GradientBoostingRegressor

    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.play_trace import PlayTrace, segment_effort

    data = json.loads(CALIBRATION.read_text())
    cfg, rows = data["config"], data["windows"]
    windows = training_windows(cfg["width"], stride=cfg["stride"])[[r["index"] for r in rows]]
    x = segment_play_features(windows)
    y = np.array(
        [
            segment_effort(
                PlayTrace(r["status"], np.array(r["ticks"], float), np.array(r["jumps"], float), r["fail_segment"])
            )
            for r in rows
        ]
    )
    ok = np.isfinite(y)
    model = GradientBoostingRegressor(**EFFORT_MODEL_PARAMS).fit(x[ok], y[ok])
    return model, np.sort(model.predict(x.reshape(-1, x.shape[2])))


def predicted_effort(grids: np.ndarray) -> np.ndarray:
    """The A* agent's effort per segment predicted by :func:`play_effort_model`, shape ``(n, W // 16)``."""
    model, _ = play_effort_model()
    x = segment_play_features(grids)
    return model.predict(x.reshape(-1, x.shape[2])).reshape(x.shape[:2])


def tension(grids: np.ndarray, scale: str = "solver") -> np.ndarray:
    """Per segment of a stack ``(n, 14, W)``: the share of human training segments that are easier
    (ties count half), shape ``(n, W // 16)``, in [0, 1]. ``scale="solver"`` reads difficulty as the
    fast solver's path difficulty; ``scale="play"`` as the A* agent's predicted effort
    (:func:`predicted_effort`)."""
    if scale == "play":
        ref, d = play_effort_model()[1], predicted_effort(grids)
    else:
        from rlcreate.levels.objectives import segment_path_difficulty

        ref, d = human_segment_difficulty(), segment_path_difficulty(grids)
    lo = np.searchsorted(ref, d, side="left")
    hi = np.searchsorted(ref, d, side="right")
    return (lo + hi) / (2.0 * len(ref))


def curve_values(curve: str | Sequence[float], k: int, total: int | None = None) -> np.ndarray:
    """The requested tension of the first ``k`` segments of a level of ``total`` segments (default
    ``k``): a named curve sampled at segment centres, or the given values, the last repeated."""
    if isinstance(curve, str):
        if curve not in CURVES:
            from rlcreate.errors import UserError

            raise UserError(
                f"tension_curve: curve = {curve!r}: use one of {sorted(CURVES)} or a list of values in [0, 1]"
            )
        return CURVES[curve]((np.arange(k) + 0.5) / max(total or k, k))
    v = np.asarray(curve, np.float64)
    return np.concatenate([v, np.full(max(k - len(v), 0), v[-1])])[:k]


@register("tension_curve")
class TensionCurve(RewardModule):
    """Engagement as a tension curve a designer sets: ``1 - mean |tension - curve| / tolerance``
    (floored at 0), tension per 16-column segment on the human scale (:func:`tension`: the share
    of human training segments the segment is harder than), difficulty read from the fast solver's
    path (``scale="solver"``, default) or from the A* agent's effort as predicted by a model fitted
    on its plays of human training windows (``scale="play"``, :func:`play_effort_model`). ``curve``:
    "rising" (default: from the 15th to the 85th human percentile), "flat" (the median
    throughout), "peak", or values per segment. ``width``: the full level's columns, so a partial
    level (per-segment shaping) is held to the start of the curve rather than the whole curve
    squeezed into it. Range [0, 1]. Gamed by: either reading is a model of play, not play: the
    solver's path ignores timing and moving enemies, and the play model (Spearman ~0.34 with the
    agent's effort, cross-validated over calibration windows) can be met by the tile patterns it weights (height
    changes, pits, enemies) placed to move the number; the A* play judge
    (:mod:`rlcreate.levels.play_trace`) checks it by play."""

    artifact = "level"

    def __init__(
        self,
        curve: str | Sequence[float] = "rising",
        tolerance: float = 0.5,
        scale: str = "solver",
        width: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        self.curve = curve if isinstance(curve, str) else [float(v) for v in curve]
        curve_values(self.curve, 1)  # validate now, not at the first reward call
        if scale not in SCALES:
            from rlcreate.errors import UserError

            raise UserError(f"tension_curve: scale = {scale!r}: use one of {list(SCALES)}")
        self.tolerance = float(tolerance)
        self.scale = scale
        self.width = None if width is None else int(width)

    def score(self, samples: Sequence[np.ndarray], **context: Any):
        from rlcreate.levels.objectives import _per_sample

        def fn(g):
            t = tension(g, self.scale)
            want = curve_values(self.curve, t.shape[1], None if self.width is None else self.width // SEGMENT)
            return np.maximum(0.0, 1 - np.abs(t - want).mean(axis=1) / self.tolerance)

        return _per_sample(samples, fn)
