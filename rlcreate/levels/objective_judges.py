"""Held-out measures of the designer objectives (:mod:`rlcreate.levels.objectives`).

Each judges what its objective asks for with *different code* from the reward (another reading of
the tiles, another statistic), so a policy that games the reward's reading does not automatically
score here. Per level, higher = more of what the designer asked for.

- ``difficulty_ramp`` -> :func:`ramp_heldout`: Spearman correlation between the segment index and
  the tile-heuristic difficulty of :func:`rlcreate.levels.metrics.difficulty_profile` (enemies,
  cannons, empty columns, climbs; no solver).
- ``style_athletic`` -> :func:`athletic_heldout`: share of columns with no ground surface but a
  standable surface above (:func:`rlcreate.levels.metrics.standable`: a place to land over a pit).
- ``sketch_match`` -> :func:`sketch_heldout`: Pearson correlation between the sketch and each
  segment's mean highest solid tile (:func:`rlcreate.levels.features.segment_features`).
- ``rhythm`` -> :func:`rhythm_heldout`: share of gaps between consecutive pipes / pits (from
  :func:`rlcreate.levels.metrics.element_counts`-style reading: pipe tops and ground-height runs)
  within ``period ± period/4`` columns.
- ``level_variety`` -> :func:`variety_heldout`: share of segments with structural descriptors no
  other segment of the level shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlcreate.levels import tiles as T

__all__ = ["ramp_heldout", "athletic_heldout", "sketch_heldout", "rhythm_heldout", "variety_heldout", "HELDOUT"]


def ramp_heldout(levels: Sequence[np.ndarray], width: int = 16) -> np.ndarray:
    from scipy.stats import spearmanr

    from rlcreate.levels.metrics import difficulty_profile

    out = []
    for g in levels:
        d = difficulty_profile(np.asarray(g), window=width)[: np.asarray(g).shape[1] // width]
        out.append(float(spearmanr(np.arange(len(d)), d).statistic) if np.ptp(d) > 0 else 0.0)
    return np.array(out)


def athletic_heldout(levels: Sequence[np.ndarray]) -> np.ndarray:
    from rlcreate.levels.metrics import standable

    out = []
    for g in levels:
        s = standable(np.asarray(g))
        no_ground = ~s[-2:].any(axis=0)  # no surface in the two bottom rows
        landing = s[:-2].any(axis=0)
        out.append(float((no_ground & landing).mean()))
    return np.array(out)


def sketch_heldout(levels: Sequence[np.ndarray], sketch: Sequence[float] | None = None, width: int = 16) -> np.ndarray:
    from rlcreate.levels.features import segment_features
    from rlcreate.levels.objectives import DEFAULT_SKETCH

    sk = np.asarray(DEFAULT_SKETCH if sketch is None else sketch, np.float64)
    out = []
    for g in levels:
        g = np.asarray(g)
        k = g.shape[1] // width
        segs = np.stack([g[:, i * width : (i + 1) * width] for i in range(k)])
        top = segment_features(segs)[:, 6]  # mean highest solid tile (scaled)
        want = np.concatenate([sk, np.full(max(k - len(sk), 0), sk[-1])])[:k]
        out.append(float(np.corrcoef(top, want)[0, 1]) if np.ptp(top) > 0 else 0.0)
    return np.array(out)


def rhythm_heldout(levels: Sequence[np.ndarray], period: int = 16) -> np.ndarray:
    from rlcreate.levels.metrics import ground_heights

    out = []
    for g in levels:
        g = np.asarray(g)
        pipes = np.flatnonzero((g == T.PIPE_TL).any(axis=0))
        h = ground_heights(g) == 0
        pits = np.flatnonzero(h & ~np.concatenate([[False], h[:-1]]))
        onsets = np.unique(np.concatenate([pipes, pits]))
        if len(onsets) < 2:
            out.append(0.0)
            continue
        gaps = np.diff(onsets)
        out.append(float((np.abs(gaps - period) <= period / 4).mean()))
    return np.array(out)


def variety_heldout(levels: Sequence[np.ndarray], width: int = 16) -> np.ndarray:
    """Share of a level's 16-column segments whose structural descriptors
    (:func:`rlcreate.levels.features.segment_features`, rounded to 0.05) no other segment of the
    level shares: variety by structure rather than by tiles."""
    from rlcreate.levels.features import segment_features

    out = []
    for g in levels:
        g = np.asarray(g)
        k = g.shape[1] // width
        f = np.round(segment_features(np.stack([g[:, i * width : (i + 1) * width] for i in range(k)])) / 0.05)
        _, inv, cnt = np.unique(f, axis=0, return_inverse=True, return_counts=True)
        out.append(float((cnt[inv.ravel()] == 1).mean()))
    return np.array(out)


#: objective reward name -> its held-out measure (per level; higher = more of what was asked)
HELDOUT = {
    "difficulty_ramp": ramp_heldout,
    "style_athletic": athletic_heldout,
    "sketch_match": sketch_heldout,
    "rhythm": rhythm_heldout,
    "level_variety": variety_heldout,
}
