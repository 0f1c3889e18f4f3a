"""Quality-diversity summary of a level set in a FIXED behaviour grid.

RL runs, random search, CMA-ES and MAP-Elites runs are all summarised in the same grid, so their
coverage and QD-score are comparable as single numbers. The grid is a pyribs ``GridArchive``
(descriptors outside the ranges land in the edge cells, as pyribs clips them):

* coverage = filled cells / all cells;
* QD-score = sum over filled cells of (best objective in the cell - ``offset``); the offset makes
  every elite count positively (objectives are composite episode returns, which are >= 0 for the
  default reward; a negative objective below the offset is clipped to count as 0).

Descriptors (per level): ``leniency`` and ``linearity`` (Smith & Whitehead), ``density``,
``enemies`` and ``gaps`` per 16 columns. Default grid: leniency [-0.6, 0.1] x linearity [0.3, 1.0],
14 x 14 cells; the ranges cover the 0th-100th percentile of 128-column corpus windows
(leniency -0.48..0.02, linearity 0.34..0.91).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rlcreate.errors import UserError
from rlcreate.validate import suggest

__all__ = ["DESCRIPTORS", "BehaviourGrid", "DEFAULT_GRID", "DescriptorError", "describe", "qd_summary"]


class DescriptorError(UserError):
    """An unknown behaviour descriptor or a bad grid; the message names the value and the fix."""


def _enemies_per16(g: np.ndarray) -> float:
    from rlcreate.levels.metrics import element_counts

    return element_counts(g)["enemies"] * 16.0 / g.shape[1]


def _gaps_per16(g: np.ndarray) -> float:
    from rlcreate.levels.metrics import element_counts

    return element_counts(g)["gaps"] * 16.0 / g.shape[1]


def _metric(name: str) -> Callable[[np.ndarray], float]:
    def fn(g: np.ndarray) -> float:
        from rlcreate.levels import metrics

        return float(getattr(metrics, name)(g))

    fn.__name__ = name
    return fn


#: descriptor name -> (function of a level grid, default range)
DESCRIPTORS: dict[str, tuple[Callable[[np.ndarray], float], tuple[float, float]]] = {
    "leniency": (_metric("leniency"), (-0.6, 0.1)),
    "linearity": (_metric("linearity"), (0.3, 1.0)),
    "density": (_metric("density"), (0.0, 0.5)),
    "enemies": (_enemies_per16, (0.0, 4.0)),
    "gaps": (_gaps_per16, (0.0, 2.0)),
}


def check_descriptors(names: Sequence[str]) -> list[str]:
    """Validate descriptor names (``DescriptorError`` with a "Did you mean" for typos)."""
    names = list(names)
    if not names:
        raise DescriptorError(
            f"no behaviour descriptors given; name one or two of {sorted(DESCRIPTORS)}, e.g. leniency,linearity"
        )
    for n in names:
        if n not in DESCRIPTORS:
            raise DescriptorError(
                f"unknown behaviour descriptor {n!r}.{suggest(n, DESCRIPTORS)} Known: {sorted(DESCRIPTORS)}"
            )
    return names


def describe(levels: Sequence[np.ndarray] | np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Descriptor values ``(n_levels, len(names))`` of a list of level grids."""
    names = check_descriptors(names)
    return np.array([[DESCRIPTORS[n][0](np.asarray(g)) for n in names] for g in levels], np.float64).reshape(
        len(levels), len(names)
    )


@dataclass(frozen=True)
class BehaviourGrid:
    """A fixed grid over named descriptors: ``cells`` per axis, ranges default to DESCRIPTORS'."""

    names: tuple[str, ...] = ("leniency", "linearity")
    cells: tuple[int, ...] = (14, 14)
    ranges: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self):
        check_descriptors(self.names)
        if len(self.cells) != len(self.names) or any(int(c) < 1 for c in self.cells):
            raise DescriptorError(f"cells = {self.cells!r}: give one positive cell count per descriptor {self.names!r}")

    @property
    def bounds(self) -> list[tuple[float, float]]:
        return list(self.ranges) if self.ranges else [DESCRIPTORS[n][1] for n in self.names]

    def archive(self, solution_dim: int = 1, offset: float = 0.0, seed: int | None = None):
        """An empty pyribs ``GridArchive`` over this grid."""
        from ribs.archives import GridArchive

        return GridArchive(
            solution_dim=solution_dim, dims=list(self.cells), ranges=self.bounds, qd_score_offset=offset, seed=seed
        )

    def to_dict(self) -> dict:
        return {"descriptors": list(self.names), "cells": list(self.cells), "ranges": [list(r) for r in self.bounds]}


DEFAULT_GRID = BehaviourGrid()


def qd_summary(
    levels: Sequence[np.ndarray] | np.ndarray,
    objectives: Sequence[float] | np.ndarray,
    grid: BehaviourGrid = DEFAULT_GRID,
    offset: float = 0.0,
) -> dict:
    """Coverage and QD-score of a level set in ``grid`` (see the module docstring).

    ``objectives``: one quality value per level (the composite episode return). Returns
    ``{"coverage", "qd_score", "filled", "cells", "n_levels", "offset", "grid"}``.
    """
    if len(levels) != len(objectives):
        raise DescriptorError(f"got {len(levels)} levels but {len(objectives)} objectives; pass one per level")
    obj = np.asarray(objectives, np.float64)
    if not np.isfinite(obj).all():
        raise DescriptorError("objectives contain NaN/inf; score every level with a finite composite return")
    total_cells = int(np.prod(grid.cells))
    out = {"n_levels": len(levels), "cells": total_cells, "offset": float(offset), "grid": grid.to_dict()}
    if not len(levels):
        return {**out, "coverage": 0.0, "qd_score": 0.0, "filled": 0}
    archive = grid.archive(offset=offset)
    # Clip so an objective below the offset counts 0 rather than reducing the QD-score.
    archive.add(
        np.arange(len(levels), dtype=np.float64)[:, None], np.maximum(obj, offset), describe(levels, grid.names)
    )
    return {
        **out,
        "coverage": float(archive.stats.coverage),
        "qd_score": float(archive.stats.qd_score),
        "filled": int(archive.stats.num_elites),
    }
