"""Metrics of Super Mario Bros level grids, for rewards, reports and expressive-range plots.

All functions take an integer grid ``(14, W)`` (row 0 at the top; see :mod:`rlcreate.levels.tiles`)
and raise :class:`~rlcreate.levels.tiles.LevelFormatError` (a ``ValueError``) naming the shape when
given anything else. Definitions:

Terrain
    *Solid* tiles are those of ``tiles.IS_SOLID`` (ground, bricks, question blocks, pipes, cannons).
    A *standable* tile is a solid tile whose upper neighbour is not solid (or that is in row 0): a
    surface Mario can stand on. The *ground height* of a column is the number of solid tiles stacked
    up from the bottom row without interruption; a column of ground height 0 is a *gap column*.

``element_counts``
    ``enemies`` (``E`` tiles), ``pipes`` (pipe tops: ``<`` tiles, plus ``>`` tiles with no ``<`` to
    their left, i.e. pipes cut by the left edge), ``cannons`` (``B`` tiles), ``gaps`` (maximal runs
    of gap columns; a run at an edge counts, though it may continue beyond it), ``gap_sizes`` (their
    widths, left to right), ``blocks`` (bricks ``S`` + question blocks ``?``/``Q``), ``coins``
    (``o``), ``question_blocks`` (``?`` + ``Q``), ``powerups`` (``?``, the VGLC power-up block).

``leniency`` in [-1, 1]
    The lenience sum of Smith et al. (2011, *Launchpad: a rhythm-based level generator for 2-D
    platformers*, also Smith & Whitehead 2010, *Analyzing the expressive range of a level
    generator*): each enemy -1, each cannon -0.5, each gap -0.5, the mean gap width x -1, each
    power-up block +1; divided by the level width W (so comparable across widths) and clipped to
    [-1, 1]. Negative is harsh, 0 neutral, positive generous. Summerville et al. (2017,
    *Understanding Mario*) use the same ingredients (enemies + gaps - rewards) without weights.

``linearity`` in [0, 1]
    After Smith & Whitehead (2010): fit a least-squares line through the (column, height) points of
    all standable tiles (height = 13 - row) and take ``1 - mean|residual| / 7``; 7 is half the level
    height, the largest possible mean absolute residual of a best fit over heights 0..13. 1 means
    every surface lies on one line (flat ground, or a steady slope); fewer than two distinct columns
    with a surface give 1. Smith & Whitehead normalise over the sample of levels; we use this fixed
    normalisation instead so that the value of a level does not depend on which others are scored.

``density`` in [0, 1]
    Smith & Whitehead's platform density (how many surfaces are stacked above each other): the mean
    over columns of the number of standable tiles in the column, divided by 7 (the most a 14-row
    column can hold, with solid and empty rows alternating).

``difficulty_profile`` in [0, 1] per window
    Challenge along the level, in non-overlapping windows of ``window`` columns (the last may be
    narrower): (enemies + cannons + open columns + 0.25 x climb) / window width, clipped to [0, 1].
    An *open column* holds no solid tile at all (nothing to stand on: a jump must cross it); a gap
    column bridged by a platform higher up is not open, so levels played on floating platforms over
    a bottomless pit do not read as uniformly maximal. *Climb* is the total upward change of ground
    height between neighbouring non-gap columns (a 4-tile wall counts as 1). The ingredients are the gap, enemy and cannon features that
    Pedersen, Togelius & Yannakakis (2009, *Modeling player experience in Super Mario Bros*) and
    Shaker et al. (2011, *The 2010 Mario AI Championship: level generation track*) found to drive
    perceived difficulty; one hazard per column reads as maximal difficulty.

``TilePatternKL``
    Lucas & Volz (2019, *Tile pattern KL-divergence for analysing and evolving game levels*): the
    distribution P of all ``size x size`` tile patterns of a level (no wrapping), against the
    distribution Q of the reference levels, ``KL(P' || Q')`` where both are smoothed over the union
    X of their patterns: ``P'(x) = (P(x) + eps) / (1 + eps |X|)`` (same for Q). 0 for a level whose
    pattern distribution equals the reference's; larger for levels made of rare or unseen patterns.
    Patterns are encoded as base-13 integers, so the whole computation is numpy sorting and lookups.

``CorpusNeighbours``
    Nearest-neighbour novelty: the normalised Hamming distance (fraction of tiles that differ) from a
    ``(14, w)`` segment to the closest of a set of corpus windows of width ``w`` (exact faiss binary
    k-NN over packed one-hot codes, :mod:`rlcreate.levels.hamming`). 0 means the segment is a copy of a corpus window
    (memorisation), 1 that it differs from every window in every tile. For a longer level,
    ``level_distance`` cuts it into non-overlapping ``w``-column windows (plus one right-aligned
    window covering the remainder, if any) and averages their distances.
"""

from __future__ import annotations

import numpy as np

from rlcreate.levels.tiles import (
    BRICK,
    CANNON,
    COIN,
    ENEMY,
    HEIGHT,
    IS_SOLID,
    PIPE_TL,
    PIPE_TR,
    QCOIN,
    QUESTION,
    TILES,
    LevelFormatError,
)
from rlcreate.levels.validity import check_grid, check_grids, is_valid

__all__ = [
    "element_counts",
    "ground_heights",
    "standable",
    "leniency",
    "linearity",
    "density",
    "difficulty_profile",
    "TilePatternKL",
    "CorpusNeighbours",
    "level_metrics",
]

_MAX_STACKED_SURFACES = HEIGHT // 2
_N_TILES = len(TILES)


def ground_heights(grid) -> np.ndarray:
    """Per column, the number of solid tiles stacked up from the bottom row (0 = gap column)."""
    solid = IS_SOLID[check_grid(grid)]
    return np.cumprod(solid[::-1], axis=0).sum(axis=0)


def standable(grid) -> np.ndarray:
    """Bool ``(14, W)``: solid tiles whose upper neighbour is not solid (or that are in row 0)."""
    solid = IS_SOLID[check_grid(grid)]
    covered = np.zeros_like(solid)
    covered[1:] = solid[:-1]
    return solid & ~covered


def _gap_runs(heights: np.ndarray) -> np.ndarray:
    """Widths of maximal runs of gap columns (``heights == 0``), left to right."""
    gap = np.concatenate([[False], heights == 0, [False]])
    edges = np.flatnonzero(np.diff(gap.astype(np.int8)))
    return edges[1::2] - edges[0::2]


def element_counts(grid) -> dict:
    """Counts of level elements (see the module docstring for each definition)."""
    g = check_grid(grid)
    counts = np.bincount(g.ravel().astype(np.intp), minlength=_N_TILES)
    gap_sizes = _gap_runs(ground_heights(g))
    tl = g == PIPE_TL
    left_of = np.zeros_like(tl)
    left_of[:, 1:] = tl[:, :-1]
    return {
        "enemies": int(counts[ENEMY]),
        "pipes": int(counts[PIPE_TL] + np.count_nonzero((g == PIPE_TR) & ~left_of)),
        "cannons": int(counts[CANNON]),
        "gaps": int(len(gap_sizes)),
        "gap_sizes": [int(s) for s in gap_sizes],
        "blocks": int(counts[BRICK] + counts[QUESTION] + counts[QCOIN]),
        "coins": int(counts[COIN]),
        "question_blocks": int(counts[QUESTION] + counts[QCOIN]),
        "powerups": int(counts[QUESTION]),
    }


def leniency(grid) -> float:
    """Launchpad lenience per column, in [-1, 1] (see the module docstring)."""
    g = check_grid(grid)
    c = element_counts(g)
    mean_gap = float(np.mean(c["gap_sizes"])) if c["gap_sizes"] else 0.0
    raw = -1.0 * c["enemies"] - 0.5 * c["cannons"] - 0.5 * c["gaps"] - 1.0 * mean_gap + 1.0 * c["powerups"]
    return float(np.clip(raw / g.shape[1], -1.0, 1.0))


def linearity(grid) -> float:
    """1 - mean absolute residual of a line through all surfaces / 7, in [0, 1]."""
    rows, cols = np.nonzero(standable(grid))
    if np.unique(cols).size < 2:
        return 1.0
    x = cols.astype(np.float64)
    y = (HEIGHT - 1 - rows).astype(np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    residual = np.abs(y - (slope * x + intercept)).mean()
    return float(np.clip(1.0 - residual / (HEIGHT / 2), 0.0, 1.0))


def density(grid) -> float:
    """Mean number of stacked surfaces per column / 7, in [0, 1]."""
    return float(standable(grid).sum(axis=0).mean() / _MAX_STACKED_SURFACES)


_DANGER = np.isin(np.arange(len(TILES)), (ENEMY, CANNON)).astype(np.int64)  # tiles counted per column


def _column_difficulty(g: np.ndarray) -> np.ndarray:
    """Per-column difficulty terms of a stack ``(n, 14, W)`` -> ``(n, W)`` (module docstring).
    Lookups and one argmin instead of comparisons and a cumulative product: the envs call it on
    every step."""
    solid = IS_SOLID[g]
    up = solid[:, ::-1]  # bottom row first
    heights = np.where(up.all(axis=1), g.shape[1], up.argmin(axis=1))  # solid tiles stacked from the bottom
    gap = heights == 0
    climb = np.zeros(heights.shape)
    both_ground = ~gap[:, 1:] & ~gap[:, :-1]
    climb[:, 1:] = np.where(both_ground, np.maximum(np.diff(heights, axis=1), 0), 0)
    return (_DANGER[g].sum(1) + ~solid.any(axis=1) + 0.25 * climb).astype(np.float64)


def difficulty_profile(grid, window: int = 8) -> np.ndarray:
    """Difficulty in [0, 1] of each ``window``-column stretch, left to right (module docstring)."""
    g = check_grid(grid)
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive number of columns, got {window!r}")
    per_column = _column_difficulty(g[None])[0]
    starts = np.arange(0, g.shape[1], window)
    totals = np.add.reduceat(per_column, starts)
    widths = np.diff(np.append(starts, g.shape[1]))
    return np.clip(totals / widths, 0.0, 1.0)


def segment_difficulty(grids) -> np.ndarray:
    """Difficulty of each grid of a stack ``(n, 14, W)`` taken as one window: the same value as
    ``difficulty_profile(grid, window=W)[0]``, vectorised over the batch (used per env step)."""
    g = check_grids(grids)
    return np.clip(_column_difficulty(g).mean(axis=1), 0.0, 1.0)


def _as_grid_list(grids, name: str) -> list[np.ndarray]:
    """A 2-D grid, a 3-D stack or a sequence of 2-D grids (widths may differ) as a list of grids."""
    if isinstance(grids, np.ndarray):
        if grids.ndim == 2:
            return [check_grid(grids, name)]
        return list(check_grids(grids, name))
    out = [check_grid(g, f"{name}[{i}]") for i, g in enumerate(grids)]
    if not out:
        raise ValueError(f"{name} is empty; pass at least one level grid of shape ({HEIGHT}, W)")
    return out


class TilePatternKL:
    """Tile-pattern KL divergence of levels to a reference set (Lucas & Volz 2019).

    ``reference_grids``: one grid, a stack ``(n, 14, W)`` or a sequence of grids of any widths (for
    example ``[b.grid() for b in corpus.training_blocks()]``). ``size``: pattern side, 1 to 4 (a 4x4
    pattern is the largest whose base-13 code fits in int64). ``eps``: smoothing mass per pattern.

    ``kl(grid)`` returns a float >= 0; ``kl.batch(grids)`` a float64 array for a stack ``(n, 14, W)``.
    """

    def __init__(self, reference_grids, size: int = 2, eps: float = 1e-6):
        if not isinstance(size, (int, np.integer)) or not 1 <= size <= 4:
            raise ValueError(f"size must be an integer pattern side from 1 to 4, got {size!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0 (smoothing for unseen patterns), got {eps!r}")
        self.size = int(size)
        self.eps = float(eps)
        grids = _as_grid_list(reference_grids, "reference_grids")
        codes = np.concatenate([self.pattern_codes(g[None]).ravel() for g in grids])
        self._ref_codes, counts = np.unique(codes, return_counts=True)
        self._ref_prob = counts / counts.sum()
        self._ref_log_sum = float(np.log(self._ref_prob + self.eps).sum())

    @property
    def n_reference_patterns(self) -> int:
        return int(self._ref_codes.size)

    def pattern_codes(self, grids) -> np.ndarray:
        """``(n, P)`` int64 codes of every ``size x size`` pattern of each level in a stack."""
        g = check_grids(grids)
        s = self.size
        n, h, w = g.shape
        if w < s:
            raise LevelFormatError(
                f"levels of shape {g.shape[1:]} are narrower than the {s}x{s} "
                f"tile patterns; use levels at least {s} columns wide"
            )
        codes = np.zeros((n, h - s + 1, w - s + 1), np.int64)
        base = 1
        for dr in range(s):  # loops over the s*s pattern offsets, not over cells
            for dc in range(s):
                codes += g[:, dr : dr + h - s + 1, dc : dc + w - s + 1].astype(np.int64) * base
                base *= _N_TILES
        return codes.reshape(n, -1)

    def batch(self, grids) -> np.ndarray:
        """KL divergence of each level in a stack ``(n, 14, W)`` to the reference, shape ``(n,)``."""
        codes = np.sort(self.pattern_codes(grids), axis=1)
        n, m = codes.shape
        flat = codes.ravel()
        is_new = np.ones(flat.size, bool)
        is_new.reshape(n, m)[:, 1:] = codes[:, 1:] != codes[:, :-1]
        starts = np.flatnonzero(is_new)
        counts = np.diff(np.append(starts, flat.size))
        rows = starts // m
        unique = flat[starts]
        p = counts / m
        idx = np.searchsorted(self._ref_codes, unique)
        idx_safe = np.minimum(idx, self._ref_codes.size - 1)
        found = self._ref_codes[idx_safe] == unique
        q = np.where(found, self._ref_prob[idx_safe], 0.0)
        eps = self.eps
        n_found = np.bincount(rows, weights=found, minlength=n)
        n_unique = np.bincount(rows, minlength=n)
        union = self._ref_codes.size + n_unique - n_found
        z = 1.0 + eps * union  # same normaliser for P' and Q'
        p_s = (p + eps) / z[rows]
        q_s = (q + eps) / z[rows]
        seen = np.bincount(rows, weights=p_s * np.log(p_s / q_s), minlength=n)
        # Reference patterns absent from the level: P'(x) = eps/z, summed in closed form.
        log_found = np.bincount(rows, weights=np.where(found, np.log(q + eps), 0.0), minlength=n)
        n_missing = self._ref_codes.size - n_found
        unseen = (eps / z) * (n_missing * np.log(eps) - (self._ref_log_sum - log_found))
        return seen + unseen

    def __call__(self, grid) -> float:
        return float(self.batch(check_grid(grid)[None])[0])

    def __repr__(self) -> str:
        return f"TilePatternKL(size={self.size}, eps={self.eps}, reference_patterns={self.n_reference_patterns})"


class CorpusNeighbours:
    """Distance from level segments to their nearest corpus window (normalised Hamming).

    ``windows``: a stack ``(n, 14, w)`` of reference windows, by default
    ``corpus.training_windows(16)``. Duplicate windows are dropped before indexing.
    """

    def __init__(self, windows=None, approximate: bool = False, nlist: int = 64, nprobe: int = 8):
        from rlcreate.levels.hamming import pack_grids

        if windows is None:
            from rlcreate.levels.corpus import training_windows

            windows = training_windows(16)
        w = check_grids(windows, "windows")
        if len(w) == 0:
            raise ValueError("windows is empty; pass at least one corpus window of shape (14, w)")
        self.width = int(w.shape[2])
        flat = np.unique(w.reshape(len(w), -1), axis=0)
        self.n_windows = int(len(flat))
        self._packed = pack_grids(flat.reshape(len(flat), HEIGHT, self.width))
        self._ivf = None
        if approximate:  # per-step rewards: faiss binary IVF, ~3x faster, exact on ~99% of queries
            import faiss

            bits = self._packed.shape[1] * 8
            self._ivf = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(bits), bits, min(nlist, self.n_windows))
            self._ivf.train(self._packed)
            self._ivf.add(self._packed)
            self._ivf.nprobe = nprobe

    def distance(self, grids, k: int = 1) -> np.ndarray:
        """Fraction of differing tiles to the nearest window (mean over the ``k`` nearest), for a
        stack ``(n, 14, width)``. Exact, via faiss' binary k-NN (see rlcreate.levels.hamming), unless
        built with ``approximate=True`` (a binary IVF index, ``nprobe`` of ``nlist`` lists searched:
        on decoded VAE segments it returned the exact distance for 98.9% of queries, mean error 0.02
        tiles, at a third of the time; used inside the per-step novelty reward)."""
        from rlcreate.levels.hamming import knn_tile_distance, pack_grids

        g = check_grids(grids)
        if g.shape[2] != self.width:
            raise LevelFormatError(
                f"segments have shape {g.shape[1:]} but the index holds windows of width {self.width}; "
                f"pass segments of shape ({HEIGHT}, {self.width}) or use level_distance for longer levels"
            )
        if self._ivf is not None:
            D, _ = self._ivf.search(pack_grids(g), k)
            return D.astype(np.float64).mean(axis=1) / (2.0 * HEIGHT * self.width)
        return knn_tile_distance(pack_grids(g), self._packed, k, HEIGHT * self.width).mean(axis=1)

    def level_distance(self, grid) -> float:
        """Mean nearest-window distance over the non-overlapping windows of a level ``(14, W >= width)``."""
        g = check_grid(grid)
        w = self.width
        if g.shape[1] < w:
            raise LevelFormatError(
                f"level of shape {g.shape} is narrower than the index windows "
                f"({HEIGHT}, {w}); use distance() on same-width segments"
            )
        starts = list(range(0, g.shape[1] - w + 1, w))
        if starts[-1] + w < g.shape[1]:
            starts.append(g.shape[1] - w)  # cover the remainder, right-aligned
        return float(self.distance(np.stack([g[:, s : s + w] for s in starts])).mean())

    def __repr__(self) -> str:
        return f"CorpusNeighbours(width={self.width}, windows={self.n_windows})"


def level_metrics(
    grid, kl: TilePatternKL | None = None, neighbours: CorpusNeighbours | None = None
) -> dict[str, float]:
    """All scalar metrics of one level, for reports: counts, leniency, linearity, density,
    mean/max difficulty, validity (1.0/0.0), and ``kl`` / ``novelty`` when those scorers are given."""
    g = check_grid(grid)
    c = element_counts(g)
    sizes = c.pop("gap_sizes")
    profile = difficulty_profile(g)
    out: dict[str, float] = {"width": float(g.shape[1])}
    out.update({k: float(v) for k, v in c.items()})
    out.update(
        {
            "mean_gap_size": float(np.mean(sizes)) if sizes else 0.0,
            "max_gap_size": float(max(sizes)) if sizes else 0.0,
            "leniency": leniency(g),
            "linearity": linearity(g),
            "density": density(g),
            "difficulty_mean": float(profile.mean()),
            "difficulty_max": float(profile.max()),
            "valid": float(is_valid(g)),
        }
    )
    if kl is not None:
        out["kl"] = kl(g)
    if neighbours is not None:
        out["novelty"] = neighbours.level_distance(g)
    return out
