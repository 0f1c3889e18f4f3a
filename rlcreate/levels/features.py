"""Fixed-size features of level segments: the observation the Mario envs give a policy and the
structure that set-diversity rewards compare. numpy and numba (no gymnasium), so reward modules can use it."""

from __future__ import annotations

import numpy as np
from numba import njit

from rlcreate.levels import tiles as T
from rlcreate.levels.validity import check_grids

__all__ = ["FEATURE_NAMES", "segment_features", "segment_difficulty"]

FEATURE_NAMES = ("enemies", "gaps", "blocks", "coins", "pipes", "cannons", "height", "height_var", "difficulty")
# per-feature scale so that typical values land in [0, 1] (observations are clipped to [0, 1])
_FEATURE_SCALE = np.array([4, 16, 80, 16, 4, 2, 14, 4, 1], np.float64)  # ~99th pct of corpus segments
# tile id -> membership in the counted groups: enemy, block (brick / ? / coin block), coin, pipe top, cannon
_ONEHOT = np.zeros((len(T.TILES), 5), np.int32)
for _j, _ids in enumerate(((T.ENEMY,), (T.BRICK, T.QUESTION, T.QCOIN), (T.COIN,), (T.PIPE_TL,), (T.CANNON,))):
    _ONEHOT[list(_ids), _j] = 1
_DANGER = np.zeros(len(T.TILES), np.int64)  # per-column difficulty counts enemies and cannons
_DANGER[[T.ENEMY, T.CANNON]] = 1


def segment_features(segments: np.ndarray) -> np.ndarray:
    """Fixed-size features of a batch of segments ``(n, 14, W)`` -> ``(n, 9)`` in ~[0, 1]:
    enemies, gap columns, blocks, coins, pipes, cannons (counts), mean ground height, height
    variation, difficulty (see :func:`segment_difficulty`)."""
    g = check_grids(segments, "segments")  # (n, 14, W >= 1), tile ids in range
    return _features(np.ascontiguousarray(g.astype(np.int8, copy=False)), T.IS_SOLID, _ONEHOT, _DANGER) / _FEATURE_SCALE


# Compiled because MarioTokens computes it on every step (one pass over the tiles instead of ~50
# numpy calls); the same values as the array definitions (tested), all sums being exact.
@njit(cache=True)
def _features(g, solid, member, danger):
    n, height, width = g.shape
    out = np.zeros((n, 9))
    counts = np.zeros(5, np.int64)
    for i in range(n):
        counts[:] = 0
        gaps, top_sum, top_steps, prev_top, prev_ground = 0, 0, 0, 0, 0
        difficulty = 0.0
        for x in range(width):
            top, danger_x = 0, 0
            for r in range(height):
                t = g[i, r, x]
                for j in range(5):
                    counts[j] += member[t, j]
                danger_x += danger[t]
                if top == 0 and solid[t]:
                    top = height - r  # the highest solid tile, counted from the bottom
            ground = 0  # solid tiles stacked up from the bottom row
            for r in range(height - 1, -1, -1):
                if not solid[g[i, r, x]]:
                    break
                ground += 1
            gaps += ground == 0
            top_sum += top
            climb = 0
            if x > 0:
                top_steps += abs(top - prev_top)
                if ground > 0 and prev_ground > 0 and ground > prev_ground:
                    climb = ground - prev_ground
            difficulty += danger_x + (top == 0) + 0.25 * climb
            prev_top, prev_ground = top, ground
        for j, c in enumerate((0, 2, 3, 4, 5)):
            out[i, c] = counts[j]
        out[i, 1] = gaps
        out[i, 6] = top_sum / width
        out[i, 7] = top_steps / (width - 1) if width > 1 else np.nan
        out[i, 8] = min(max(difficulty / width, 0.0), 1.0)
    return out


def segment_difficulty(segments: np.ndarray) -> np.ndarray:
    """Difficulty of each segment in [0, 1] (:func:`rlcreate.levels.metrics.segment_difficulty`)."""
    from rlcreate.levels.metrics import segment_difficulty as difficulty

    return difficulty(segments)
