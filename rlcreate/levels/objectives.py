"""Designer objectives as reward modules: what a level designer asks for that no prior encodes.

Each scores finished levels (``(14, W)`` int8 grids, W a multiple of 16 or not) and has a held-out
measure computed by different code in :mod:`rlcreate.levels.objective_judges`.

- ``difficulty_ramp``: per-16-column difficulty, read off the fast solver's reachable states
  (:func:`path_descriptors`), rises across the level.
- ``style_athletic``: the "athletic" style brief: pits with platforms over them.
- ``sketch_match``: the level follows a designer's coarse ground-height sketch (one value per 16
  columns).
- ``rhythm``: one beat (a pipe or the start of a gap) in every ``period``-column window.
- ``level_variety``: few near-repeated 16-column segments inside a level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlcreate.levels import tiles as T
from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.registry import register

__all__ = [
    "path_descriptors",
    "segment_path_difficulty",
    "DifficultyRamp",
    "StyleAthletic",
    "SketchMatch",
    "Rhythm",
    "LevelVariety",
    "DEFAULT_SKETCH",
    "beats",
]

SEGMENT = 16
#: a designer's coarse sketch: ground height (tiles from the bottom) per 16 columns — a hill
DEFAULT_SKETCH = (2, 2, 3, 5, 6, 4, 2, 2)


def path_descriptors(grids: np.ndarray) -> dict[str, np.ndarray]:
    """Per column, what the fast solver's reachable Mario states say the player must do, for a stack
    ``(n, 14, W)``: ``air`` (Mario can be in the column but cannot stand in it: a jump is forced),
    ``lost`` (no state reaches the column: the solver restarts after it) and ``enemy_on_path`` (an
    enemy in a row where Mario can be, or one row below). Columns are solved one at a time with
    the exact seam state, so the result equals solving the whole level."""
    from rlcreate.levels.solver import solve_batch

    g = np.ascontiguousarray(np.asarray(grids, np.int8))
    n, h, w = g.shape
    air = np.zeros((n, w), bool)
    lost = np.zeros((n, w), bool)
    enemy = np.zeros((n, w), bool)
    state = None
    for c in range(w):
        *_, state = solve_batch(g[:, :, c : c + 1], state)
        rows = state.any(axis=2)  # (n, 14) rows Mario can occupy leaving column c
        stand = state[:, :, 0].any(axis=1)
        alive = rows.any(axis=1)
        air[:, c] = alive & ~stand
        lost[:, c] = ~alive
        near = rows.copy()
        near[:, 1:] |= rows[:, :-1]  # an enemy one row below Mario's row is on his path too
        enemy[:, c] = (near & (g[:, :, c] == T.ENEMY)).any(axis=1)
    return {"air": air, "lost": lost, "enemy_on_path": enemy}


def segment_path_difficulty(grids: np.ndarray, width: int = SEGMENT) -> np.ndarray:
    """Per ``width``-column segment, ``forced-air share + enemies-on-path share + lost share +
    longest forced jump / 9`` from :func:`path_descriptors`, shape ``(n, W // width)``; about 0 for
    flat ground, 1+ for long jumps over pits with enemies."""
    d = path_descriptors(grids)
    n, w = d["air"].shape
    k = w // width
    air = d["air"][:, : k * width].reshape(n, k, width)
    longest = np.zeros((n, k))
    run = np.zeros((n, k))
    for c in range(width):
        run = np.where(air[:, :, c], run + 1, 0)
        longest = np.maximum(longest, run)
    share = lambda x: x[:, : k * width].reshape(n, k, width).mean(axis=2)  # noqa: E731
    return share(d["air"]) + share(d["enemy_on_path"]) + share(d["lost"]) + longest / 9.0


def _stack(samples: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(indices, stacked grids) per grid shape."""
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(np.shape(s), []).append(i)
    return [(np.array(ix), np.stack([np.asarray(samples[i]) for i in ix])) for ix in groups.values()]


def _per_sample(samples: Sequence[np.ndarray], fn) -> list[float]:
    out = np.zeros(len(samples))
    for ix, grids in _stack(samples):
        out[ix] = fn(grids)
    return out.tolist()


def _rowwise_corr(y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``y`` (n, k) with 0..k-1 (0 for a constant row)."""
    x = np.arange(y.shape[1], dtype=np.float64)
    x -= x.mean()
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((yc**2).sum(axis=1) * (x**2).sum())
    return np.where(den > 0, (yc * x).sum(axis=1) / np.where(den > 0, den, 1), 0.0)


@register("difficulty_ramp")
class DifficultyRamp(RewardModule):
    """Difficulty ramp: ``(r + 1) / 2`` where r is the correlation between the segment index and
    the per-16-column difficulty read off the fast solver's reachable states
    (:func:`segment_path_difficulty`: forced jumps, their length, enemies on Mario's path, places
    the solver loses him). Range [0, 1]; 0.5 for a flat-difficulty level. Gamed by: any monotone
    trend counts, however small (a level with one enemy at the end correlates as well as a real
    ramp); pair it with the element profile so the level stays populated, and read the held-out
    ramp (tile-heuristic difficulty, different code) before trusting it."""

    artifact = "level"

    def score(self, samples: Sequence[np.ndarray], **context: Any):
        return _per_sample(samples, lambda g: (_rowwise_corr(segment_path_difficulty(g)) + 1) / 2)


def _pits_with_platform(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per level: columns whose bottom row is open (a pit) and that hold a solid tile above it
    (a platform to jump across on), and pit columns."""
    solid = T.IS_SOLID[grids.astype(np.intp)]
    pit = ~solid[:, -1, :]
    platform = solid[:, :-3, :].any(axis=1)  # a solid tile at least 3 rows above the bottom
    return (pit & platform).sum(axis=1), pit.sum(axis=1)


@register("style_athletic")
class StyleAthletic(RewardModule):
    """The "athletic" style brief (SMB's 1-3 and 4-3: platforms over pits): the number of pit
    columns with a platform above them per 128 columns, divided by ``target`` (default 24) and
    capped at 1. Range [0, 1]. Gamed by: a sky level of floating blocks over one long pit scores
    fully (playability and the element profile close that), and a brick *ceiling* over a pit counts
    as a platform: trained policies did write long ceilings over pits (seen in their levels); a
    reachability check (can Mario land on it?) would close that hole."""

    artifact = "level"

    def __init__(self, target: float = 24.0, name: str | None = None):
        super().__init__(name)
        self.target = float(target)

    def score(self, samples: Sequence[np.ndarray], **context: Any):
        def fn(g):
            bridged, _ = _pits_with_platform(g)
            return np.minimum(bridged * 128 / g.shape[2] / self.target, 1.0)

        return _per_sample(samples, fn)


@register("sketch_match")
class SketchMatch(RewardModule):
    """A designer's coarse sketch: the median ground height (solid tiles stacked from the bottom,
    pits left out) of each 16-column segment against ``sketch`` (heights, one per segment;
    default :data:`DEFAULT_SKETCH`, a hill), ``1 - mean |height - sketch| / tolerance`` floored at
    0 (tolerance 3 tiles). Segments beyond the sketch reuse its last value. Range [0, 1]. Gamed
    by: a column of stacked ground tiles per segment would set the median only with many such
    columns, but walls of ground are; playability and the profile terms penalise them."""

    artifact = "level"

    def __init__(self, sketch: Sequence[float] = DEFAULT_SKETCH, tolerance: float = 3.0, name: str | None = None):
        super().__init__(name)
        self.sketch = np.asarray(sketch, np.float64)
        self.tolerance = float(tolerance)

    def heights(self, grids: np.ndarray) -> np.ndarray:
        solid = T.IS_SOLID[grids.astype(np.intp)]
        h = np.cumprod(solid[:, ::-1, :], axis=1).sum(axis=1).astype(np.float64)  # (n, W)
        k = grids.shape[2] // SEGMENT
        seg = h[:, : k * SEGMENT].reshape(len(h), k, SEGMENT)
        # median over ground columns (pits left out); an all-pit segment has height 0
        srt = np.sort(np.where(seg > 0, seg, np.inf), axis=2)
        m = (seg > 0).sum(axis=2)
        lo = np.take_along_axis(srt, np.maximum((m - 1) // 2, 0)[..., None], axis=2)[..., 0]
        hi = np.take_along_axis(srt, np.maximum(m // 2, 0)[..., None], axis=2)[..., 0]
        return np.where(m > 0, (lo + hi) / 2, 0.0)

    def wanted(self, k: int) -> np.ndarray:
        return np.concatenate([self.sketch, np.full(max(k - len(self.sketch), 0), self.sketch[-1])])[:k]

    def score(self, samples: Sequence[np.ndarray], **context: Any):
        def fn(g):
            h = self.heights(g)
            return np.maximum(0.0, 1 - np.abs(h - self.wanted(h.shape[1])).mean(axis=1) / self.tolerance)

        return _per_sample(samples, fn)


def beats(grids: np.ndarray) -> np.ndarray:
    """Bool ``(n, W)``: columns where a beat starts — a pipe's left half (top) or the first
    column of a pit (open bottom row after a closed one)."""
    g = grids.astype(np.intp)
    pipe = (g == T.PIPE_TL).any(axis=1)
    open_ = ~T.IS_SOLID[g[:, -1, :]]
    start = open_.copy()
    start[:, 1:] &= ~open_[:, :-1]
    return pipe | start


@register("rhythm")
class Rhythm(RewardModule):
    """Rhythm: the share of aligned ``period``-column windows (default 16) holding exactly one beat
    (a pipe or a pit start, :func:`beats`). Range [0, 1]. Gamed by: one-column pits every window
    satisfy it while adding nothing to play; the profile term keeps gaps at human counts and the
    held-out regularity (spacing between beats, different code) shows whether the beat is even."""

    artifact = "level"

    def __init__(self, period: int = 16, name: str | None = None):
        super().__init__(name)
        self.period = int(period)

    def score(self, samples: Sequence[np.ndarray], **context: Any):
        def fn(g):
            b = beats(g)
            k = g.shape[2] // self.period
            per = b[:, : k * self.period].reshape(len(b), k, self.period).sum(axis=2)
            return (per == 1).mean(axis=1)

        return _per_sample(samples, fn)


@register("level_variety")
class LevelVariety(RewardModule):
    """Variety inside a level: ``1 -`` the share of its aligned 16-column segments that lie within
    ``threshold`` (fraction of tiles, default 0.05) of another segment of the same level. Range
    [0, 1]; human 128-column windows repeat 5-27% of their segments. Gamed by: noise and scattered
    single tiles make every segment unique; the element profile, LM typicality and the
    human-likeness judge close that."""

    artifact = "level"

    def __init__(self, threshold: float = 0.05, name: str | None = None):
        super().__init__(name)
        self.threshold = float(threshold)

    def score(self, samples: Sequence[np.ndarray], **context: Any):
        def fn(g):
            n, h, w = g.shape
            k = w // SEGMENT
            segs = g[:, :, : k * SEGMENT].reshape(n, h, k, SEGMENT).transpose(0, 2, 1, 3).reshape(n, k, -1)
            d = (segs[:, :, None, :] != segs[:, None, :, :]).mean(axis=3)  # (n, k, k)
            d[:, np.arange(k), np.arange(k)] = np.inf
            return 1.0 - (d.min(axis=2) < self.threshold).mean(axis=1)

        return _per_sample(samples, fn)
