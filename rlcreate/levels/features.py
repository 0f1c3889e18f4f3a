"""Fixed-size features of level segments: the observation the Mario envs give a policy and the
structure that set-diversity rewards compare. numpy only (no gymnasium), so reward modules can use it."""

from __future__ import annotations

import numpy as np

from rlcreate.levels import tiles as T

__all__ = ["FEATURE_NAMES", "segment_features", "segment_difficulty"]

FEATURE_NAMES = ("enemies", "gaps", "blocks", "coins", "pipes", "cannons", "height", "height_var", "difficulty")
# per-feature scale so that typical values land in [0, 1] (observations are clipped to [0, 1])
_FEATURE_SCALE = np.array([4, 16, 80, 16, 4, 2, 14, 4, 1], np.float64)  # ~99th pct of corpus segments


def segment_features(segments: np.ndarray) -> np.ndarray:
    """Fixed-size features of a batch of segments ``(n, 14, W)`` -> ``(n, 9)`` in ~[0, 1]:
    enemies, gap columns, blocks, coins, pipes, cannons (counts), mean ground height, height
    variation, difficulty (see :func:`segment_difficulty`)."""
    g = np.asarray(segments)
    count = lambda *ids: np.isin(g, ids).sum(axis=(1, 2))  # noqa: E731
    solid = T.IS_SOLID[g.astype(np.intp)]
    gaps = (~solid[:, -1, :]).sum(axis=1)
    # height of the highest solid tile per column (0 = none), rows counted from the bottom
    any_solid = solid.any(axis=1)
    top = np.where(any_solid, T.HEIGHT - solid.argmax(axis=1), 0)
    feats = np.stack([count(T.ENEMY), gaps, count(T.BRICK, T.QUESTION, T.QCOIN), count(T.COIN),
                      count(T.PIPE_TL), count(T.CANNON), top.mean(1), np.abs(np.diff(top, axis=1)).mean(1),
                      segment_difficulty(g)], 1)
    return feats / _FEATURE_SCALE


def segment_difficulty(segments: np.ndarray) -> np.ndarray:
    """Difficulty of each segment in [0, 1] (:func:`rlcreate.levels.metrics.segment_difficulty`)."""
    from rlcreate.levels.metrics import segment_difficulty as difficulty

    return difficulty(segments)
