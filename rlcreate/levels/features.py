"""Fixed-size features of level segments: the observation the Mario envs give a policy and the
structure that set-diversity rewards compare. numpy only (no gymnasium), so reward modules can use it."""

from __future__ import annotations

import numpy as np

from rlcreate.levels import tiles as T

__all__ = ["FEATURE_NAMES", "segment_features", "segment_difficulty"]

FEATURE_NAMES = ("enemies", "gaps", "blocks", "coins", "pipes", "cannons", "height", "height_var", "difficulty")
# per-feature scale so that typical values land in [0, 1] (observations are clipped to [0, 1])
_FEATURE_SCALE = np.array([4, 16, 80, 16, 4, 2, 14, 4, 1], np.float64)  # ~99th pct of corpus segments
# tile id -> membership in the counted groups: enemy, block (brick / ? / coin block), coin, pipe top, cannon
_ONEHOT = np.zeros((len(T.TILES), 5), np.int32)
for _j, _ids in enumerate(((T.ENEMY,), (T.BRICK, T.QUESTION, T.QCOIN), (T.COIN,), (T.PIPE_TL,), (T.CANNON,))):
    _ONEHOT[list(_ids), _j] = 1


def segment_features(segments: np.ndarray) -> np.ndarray:
    """Fixed-size features of a batch of segments ``(n, 14, W)`` -> ``(n, 9)`` in ~[0, 1]:
    enemies, gap columns, blocks, coins, pipes, cannons (counts), mean ground height, height
    variation, difficulty (see :func:`segment_difficulty`)."""
    g = np.asarray(segments).astype(np.intp)
    # counts of enemy, block, coin, pipe top, cannon: a per-grid tile histogram (one bincount) times
    # the membership table, instead of one np.isin per element (the envs call this every step)
    n, n_tiles = len(g), len(T.TILES)
    if g.size and (g.min() < 0 or g.max() >= n_tiles):
        raise ValueError(f"tile ids must lie in 0..{n_tiles - 1}, got {int(g.min())}..{int(g.max())}")
    hist = np.bincount((g + (np.arange(n) * n_tiles)[:, None, None]).ravel(), minlength=n * n_tiles)
    counts = hist.reshape(n, n_tiles) @ _ONEHOT
    count = lambda j: counts[:, j]  # noqa: E731
    solid = T.IS_SOLID[g]
    gaps = (~solid[:, -1, :]).sum(axis=1)
    # height of the highest solid tile per column (0 = none), rows counted from the bottom
    any_solid = solid.any(axis=1)
    top = np.where(any_solid, T.HEIGHT - solid.argmax(axis=1), 0)
    feats = np.stack(
        [
            count(0),
            gaps,
            count(1),
            count(2),
            count(3),
            count(4),
            top.mean(1),
            np.abs(np.diff(top, axis=1)).mean(1),
            segment_difficulty(g),
        ],
        1,
    )
    return feats / _FEATURE_SCALE


def segment_difficulty(segments: np.ndarray) -> np.ndarray:
    """Difficulty of each segment in [0, 1] (:func:`rlcreate.levels.metrics.segment_difficulty`)."""
    from rlcreate.levels.metrics import segment_difficulty as difficulty

    return difficulty(segments)
