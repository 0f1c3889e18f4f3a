"""Exact nearest neighbours between tile grids under the normalised Hamming distance
(fraction of differing tiles), via faiss' binary k-NN on packed one-hot codes.

Two grids differ in ``t`` tiles exactly when their one-hot encodings differ in ``2t`` bits, so a
popcount k-NN over packed one-hot bytes is exact. It is ~20x faster here than scikit-learn's
``metric="hamming"`` brute force (scipy ``cdist``), which matters because novelty is scored at every
environment step (see BENCHMARKS.md).
"""

from __future__ import annotations

import faiss
import numpy as np

from rlcreate.levels.tiles import TILES

__all__ = ["pack_grids", "knn_tile_distance"]

# faiss' OpenMP threads spin while waiting; with a busy 2-core CPU (an RL trainer next to the env)
# one thread measured 10-20x faster for our small batched queries than the default.
faiss.omp_set_num_threads(1)

_N_TILES = len(TILES)


def pack_grids(grids: np.ndarray) -> np.ndarray:
    """``(n, 14, W)`` tile grids -> ``(n, nbytes)`` uint8 packed one-hot codes (padded to 8 bytes)."""
    g = np.asarray(grids)
    flat = g.reshape(len(g), -1)
    onehot = flat[:, :, None] == np.arange(_N_TILES, dtype=flat.dtype)
    packed = np.packbits(onehot.reshape(len(g), -1), axis=1)
    pad = (-packed.shape[1]) % 8
    return np.ascontiguousarray(np.pad(packed, ((0, 0), (0, pad))) if pad else packed)


def knn_tile_distance(queries: np.ndarray, base: np.ndarray, k: int, n_tiles_per_grid: int) -> np.ndarray:
    """Sorted distances ``(n, k)`` (fraction of differing tiles) from packed ``queries`` to their ``k``
    nearest packed ``base`` rows. ``k`` is capped at ``len(base)``."""
    k = min(int(k), len(base))
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0))
    D, _ = faiss.knn_hamming(np.ascontiguousarray(queries), np.ascontiguousarray(base), k)
    return D.astype(np.float64) / (2.0 * n_tiles_per_grid)
